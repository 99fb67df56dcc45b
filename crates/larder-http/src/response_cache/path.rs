//! The one spelling of a path that is stored: many spellings reach the same
//! handler with the same arguments (escapes, dot and empty segments, path
//! parameters), and a path stored under one of them would be out of reach
//! of invalidating another. Re-exported by [`key`](super::key).

/// Whether `path` is in the one spelling that is stored. axum matches the
/// raw path and decodes what it captures, so many spellings reach the same
/// handler with the same arguments; exactly one of them is canonical:
///
/// - the unreserved characters (`A–Z a–z 0–9 - . _ ~`), the sub-delimiters
///   but `;` (`! $ & ' ( ) * + , =`), `:` and `@` appear as themselves,
///   never escaped;
/// - `/` appears as itself; `%2F` is never canonical (a wildcard route
///   decodes it into a separator, other routes do not), nor is `%5C` (`\`,
///   a separator to some file APIs);
/// - no `;` at all, as itself or `%3B`: Tomcat, Jetty and Spring cut path
///   parameters (`;jsessionid=…`, any `;…` up to the next `/`) from every
///   segment before they resolve dot segments, so `/admin/report;x=1` is
///   `/admin/report` to them and `/static/..;/admin/report` is too (and
///   to an origin that keeps the `;`, axum among them, `%3B` and `;` are
///   one byte);
/// - no segment is `.` or `..` (nor `%2e` spellings of them, already
///   excluded above), and no segment but the last is empty (`//`): a
///   handler that resolves its path as a file server does answers
///   `/files/x/../report`, `/files/./report` and `/files//report` as
///   `/files/report`;
/// - every other byte (`%`, non-ASCII, `"`, `{`, …) is escaped, in
///   upper-case hex.
///
/// Other spellings bypass the cache, so invalidating a path reaches every
/// stored copy of it. (A path with parameters is never stored, even where
/// the origin gives them a meaning of its own: failing closed costs those
/// paths their caching, never a stale page.)
pub fn is_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut segment = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match escaped(bytes, i) {
                Some(byte) if !is_plain(byte) && !b"/\\;".contains(&byte) => {
                    if bytes[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
                        return false;
                    }
                }
                _ => return false,
            }
            i += 3;
        } else if bytes[i] == b'/' {
            if i > 0 && is_dot_or_empty(&bytes[segment..i]) {
                return false;
            }
            i += 1;
            segment = i;
        } else if is_plain(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    // The last segment may be empty (`/files/`), not a dot segment.
    !matches!(&bytes[segment..], b"." | b"..")
}

fn is_dot_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// `path` in its canonical spelling ([`is_canonical`]), with path
/// parameters cut from each segment and then `.` and `..` segments
/// resolved and empty ones dropped, as a servlet container and a file
/// server resolve them (RFC 3986 §5.2.4): `/files/x/%2e%2e//report` and
/// `/files/x/..;/report;v=2` are `/files/report`. `%2F`, `%5C`, `%3B` and
/// malformed escapes are kept as they are (such a path is never stored).
pub fn canonical_path(path: &str) -> String {
    let path = without_parameters(path);
    let bytes = path.as_bytes();
    let mut canonical = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let (byte, width) = match (bytes[i], escaped(bytes, i)) {
            (b'%', Some(byte)) => (byte, 3),
            (byte, _) => (byte, 1),
        };
        if width == 3 && (byte == b'/' || byte == b'\\') {
            canonical.push_str(&format!("%{byte:02X}"));
        } else if is_plain(byte) || (byte == b'/' && width == 1) {
            canonical.push(char::from(byte));
        } else if byte == b'%' && width == 1 {
            canonical.push('%'); // a malformed escape, as it was
        } else {
            canonical.push_str(&format!("%{byte:02X}"));
        }
        i += width;
    }
    without_dot_segments(&canonical)
}

/// `path` with every segment cut at its first `;` (its parameters gone).
fn without_parameters(path: &str) -> String {
    if !path.contains(';') {
        return path.to_owned();
    }
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with `.`, `..` and empty segments resolved; a path ending in one
/// of them (or in `/`) keeps its trailing `/`.
fn without_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_owned();
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in rest.split('/') {
        trailing = is_dot_or_empty(segment.as_bytes());
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let mut resolved = String::with_capacity(path.len());
    for segment in &kept {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if trailing || kept.is_empty() {
        resolved.push('/');
    }
    resolved
}

/// The byte a `%XY` escape at `at` stands for.
fn escaped(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = bytes.get(at + 1..at + 3)?;
    let high = char::from(hex[0]).to_digit(16)?;
    let low = char::from(hex[1]).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

/// The bytes a canonical path spells as themselves (besides `/`): RFC
/// 3986's `pchar` without escapes, and without `;`.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_paths_are_stored() {
        for canonical in [
            "/users/abc",
            "/users/a:b@c,d=e,f+g",
            "/caf%C3%A9",
            "/q%3F%23%25%20",
            "/",
            "",
        ] {
            assert!(is_canonical(canonical), "{canonical}");
            assert_eq!(canonical_path(canonical), canonical);
        }
        for (other, canonical) in [
            ("/users/a%62c", "/users/abc"),
            ("/%7Euser/x%2Dy", "/~user/x-y"),
            ("/users/a%3Ab%40c", "/users/a:b@c"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/a{b}", "/a%7Bb%7D"),
        ] {
            assert!(!is_canonical(other), "{other}");
            assert_eq!(canonical_path(other), canonical, "{other}");
            assert!(is_canonical(&canonical_path(other)), "{other}");
        }
        // A wildcard route decodes %2F into a separator, others do not:
        // never stored, in any case.
        for never in ["/files/a%2Fb", "/files/a%2fb"] {
            assert!(!is_canonical(never), "{never}");
            assert_eq!(canonical_path(never), "/files/a%2Fb");
        }
        for malformed in ["/bad%zz", "/bad%2", "/bad%"] {
            assert!(!is_canonical(malformed), "{malformed}");
            assert_eq!(canonical_path(malformed), malformed);
        }
        for backslash in ["/files/..%5C..%5Cetc", "/files/a%5cb"] {
            assert!(!is_canonical(backslash), "{backslash}");
        }
    }

    #[test]
    fn path_parameters_are_not_canonical_and_are_cut() {
        for (other, canonical) in [
            ("/users/a:b@c;d=e,f+g", "/users/a:b@c"),
            ("/admin/report;jsessionid=0A1B", "/admin/report"),
            ("/static/..;/admin/report", "/admin/report"),
            ("/static/.;x=1/report", "/static/report"),
            ("/static/;/report", "/static/report"),
            ("/admin;v=2/report;", "/admin/report"),
        ] {
            assert!(!is_canonical(other), "{other}");
            assert_eq!(canonical_path(other), canonical, "{other}");
            assert!(is_canonical(canonical), "{canonical}");
        }
        // `%3B` is `;` to an origin that keeps it: never stored either.
        for escaped in ["/users/a%3Bb", "/users/a%3bb"] {
            assert!(!is_canonical(escaped), "{escaped}");
            assert_eq!(canonical_path(escaped), "/users/a%3Bb");
        }
    }

    #[test]
    fn dot_and_empty_segments_are_not_canonical_and_resolve() {
        for (other, canonical) in [
            ("/files/x/../report", "/files/report"),
            ("/files//report", "/files/report"),
            ("/files/./report", "/files/report"),
            ("/files/x/%2e%2E/report", "/files/report"),
            ("/files/x/.%2e/report", "/files/report"),
            ("/files/report/.", "/files/report/"),
            ("/files/report/x/..", "/files/report/"),
            ("/files/report//", "/files/report/"),
            ("/../../report", "/report"),
            ("//", "/"),
            ("/.", "/"),
        ] {
            assert!(!is_canonical(other), "{other}");
            assert_eq!(canonical_path(other), canonical, "{other}");
            assert!(is_canonical(canonical), "{canonical}");
        }
        for canonical in [
            "/",
            "/files/",
            "/files/report",
            "/a.b/..c/c..",
            "/.well-known/x",
        ] {
            assert!(is_canonical(canonical), "{canonical}");
            assert_eq!(canonical_path(canonical), canonical);
        }
    }
}
