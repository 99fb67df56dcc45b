//! Redis-compatible glob matching.
//!
//! This is a port of Redis's `stringmatchlen` (`src/util.c`, Redis 7.x,
//! including the `skipLongerMatches` optimisation from CVE-2022-36021 and the
//! nesting limit from CVE-2024-31228), restricted to the case-sensitive mode
//! used by `KEYS` and `SCAN MATCH`.
//!
//! The C implementation relies on the pattern being NUL-terminated and
//! occasionally reads the byte just past the end of the pattern; that read is
//! emulated here by [`byte_at`], which yields `0` out of bounds. Character
//! ranges compare bytes as C `char`, which is signed on x86-64 (the platform
//! Redis is overwhelmingly deployed on), so bytes `0x80..=0xFF` sort *below*
//! ASCII inside `[a-b]` ranges, exactly as they do there.

/// Recursion limit for `*` expansion, as in Redis (`nesting > 1000` fails).
const MAX_NESTING: u32 = 1000;

/// Whether `subject` matches the Redis glob `pattern`, with exactly the semantics of Redis's `SCAN MATCH`.
///
/// Supported syntax: `*` (any run of bytes), `?` (any single byte),
/// `[abc]`, `[a-z]` (reversed ranges such as `[z-a]` are accepted), `[^...]`
/// (negation) and `\x` (a literal `x`, both outside and inside classes).
/// Malformed patterns never panic; they behave as they do in Redis (an
/// unterminated `[` class is closed by the end of the pattern, a trailing `\`
/// matches a literal backslash).
pub(crate) fn glob_match(pattern: &[u8], subject: &[u8]) -> bool {
    // `SCAN ... MATCH *` (and `KEYS *`) bypass the matcher entirely, which
    // matters for the empty key: `stringmatchlen("*", "")` is false.
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer_matches = false;
    match_impl(pattern, 0, subject, 0, &mut skip_longer_matches, 0)
}

/// Escapes the glob metacharacters `* ? [ ] \` in `literal` with a backslash, so the result matches only itself when used inside a Redis pattern.
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for ch in literal.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Whether `s` contains any glob metacharacter (`* ? [ ] \`), i.e. whether it
/// could match anything other than itself when used as a pattern.
#[cfg(test)]
pub(crate) fn has_glob_meta(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\'))
}

/// The byte at `i`, or `0` past the end (emulating C's NUL terminator).
#[inline]
fn byte_at(buf: &[u8], i: usize) -> u8 {
    buf.get(i).copied().unwrap_or(0)
}

/// C `char` (signed on x86-64) promoted to `int`, as used by Redis's ranges.
#[inline]
fn as_c_char(b: u8) -> i32 {
    i32::from(b as i8)
}

/// Port of `stringmatchlen_impl` (with `nocase == 0`).
///
/// `pi`/`si` are the current positions in `pat`/`s`; Redis's `patternLen`
/// and `stringLen` are `pat.len() - pi` and `s.len() - si`. Invariants:
/// `pi <= pat.len()` and `si <= s.len()` throughout.
fn match_impl(
    pat: &[u8],
    mut pi: usize,
    s: &[u8],
    mut si: usize,
    skip_longer_matches: &mut bool,
    nesting: u32,
) -> bool {
    // Protection against abusive patterns.
    if nesting > MAX_NESTING {
        return false;
    }

    while pi < pat.len() && si < s.len() {
        match pat[pi] {
            b'*' => {
                while byte_at(pat, pi + 1) == b'*' {
                    pi += 1;
                }
                if pat.len() - pi == 1 {
                    return true; // match
                }
                while si < s.len() {
                    if match_impl(pat, pi + 1, s, si, skip_longer_matches, nesting + 1) {
                        return true; // match
                    }
                    if *skip_longer_matches {
                        return false; // no match
                    }
                    si += 1;
                }
                // The rest of the pattern matches nowhere in the rest of the
                // string, so no earlier `*` can help by matching a longer
                // substring: give up on the whole search.
                *skip_longer_matches = true;
                return false; // no match
            }
            b'?' => {
                si += 1;
            }
            b'[' => {
                let c = s[si];
                pi += 1;
                let negate = byte_at(pat, pi) == b'^';
                if negate {
                    pi += 1;
                }
                let mut matched = false;
                loop {
                    let rem = pat.len() - pi;
                    let pc = byte_at(pat, pi);
                    if pc == b'\\' && rem >= 2 {
                        pi += 1;
                        if pat[pi] == c {
                            matched = true;
                        }
                    } else if pc == b']' {
                        break;
                    } else if rem == 0 {
                        // Unterminated class: the end of the pattern closes it.
                        // `pi >= 1` here because the `[` was consumed.
                        pi -= 1;
                        break;
                    } else if rem >= 3 && pat[pi + 1] == b'-' {
                        let mut start = as_c_char(pat[pi]);
                        let mut end = as_c_char(pat[pi + 2]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        pi += 2;
                        let cc = as_c_char(c);
                        if cc >= start && cc <= end {
                            matched = true;
                        }
                    } else if pc == c {
                        matched = true;
                    }
                    pi += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false; // no match
                }
                si += 1;
            }
            first => {
                let mut pc = first;
                if first == b'\\' && pat.len() - pi >= 2 {
                    pi += 1;
                    pc = pat[pi];
                }
                if pc != s[si] {
                    return false; // no match
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while byte_at(pat, pi) == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi == pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            // literals
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("ab", "abc", false),
            ("ABC", "abc", false),
            // `*`
            ("*", "", true),
            ("*", "anything", true),
            ("**", "", false), // only the exact pattern `*` is special-cased
            ("**", "x", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("a**b", "ab", true),
            ("a*", "", false),
            // `?`
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("??", "ab", true),
            // classes
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[abc]", "", false),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hillo", false),
            ("[a-c]", "b", true),
            ("[a-c]", "d", false),
            ("[c-a]", "b", true), // reversed range, swapped
            ("[c-a]", "d", false),
            ("[a-]", "-", false), // `a-]` is a range a..]
            ("[a-]", "]", true),
            ("[-a]", "-", true),
            ("[]", "]", false),
            ("[]a]", "]", false),
            ("[]a]", "a", false),
            ("[]a]", "]a]", false), // `[]` is an empty class: never matches
            ("[^a]", "b", true),
            ("[^a]", "a", false),
            ("[^a-c]", "d", true),
            ("[^a-c]", "b", false),
            ("[^]", "x", true),
            ("[\\]]", "]", true),
            ("[\\]]", "\\", false),
            ("[\\^a]", "^", true),
            ("[a\\-z]", "-", true),
            ("[a\\-z]", "m", false),
            ("[*?]", "*", true),
            ("[*?]", "a", false),
            // unterminated classes: end of pattern closes the class
            ("[", "", false),
            ("[", "a", false),
            ("[a", "a", true),
            ("[a", "b", false),
            ("[^", "x", true),
            ("[^a", "a", false),
            ("[^a", "b", true),
            ("[a-", "a", true),
            ("[\\", "\\", true),
            ("x[ab", "xa", true),
            ("x[ab", "xab", false),
            // escapes
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("\\?", "?", true),
            ("\\?", "a", false),
            ("\\[a]", "[a]", true),
            ("\\\\", "\\", true),
            ("\\a", "a", true),
            ("\\", "\\", true), // trailing backslash is a literal
            ("a\\", "a\\", true),
            ("a\\", "a", false),
        ];
        for &(pattern, subject, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), subject.as_bytes()),
                expected,
                "glob_match({pattern:?}, {subject:?})"
            );
        }
    }

    #[test]
    fn byte_oriented_and_signed_ranges() {
        // `?` matches a single byte, not a character.
        assert!(!glob_match(b"?", "é".as_bytes()));
        assert!(glob_match(b"??", "é".as_bytes()));
        assert!(glob_match(b"a\0*", b"a\0b"));
        // Bytes >= 0x80 are negative C chars: `[\x80-a]` is the range -128..=97.
        assert!(glob_match(b"[\x80-a]", b"0"));
        assert!(glob_match(b"[\x80-a]", b"\xff"));
        assert!(!glob_match(b"[\x80-a]", b"b"));
        assert!(!glob_match(b"[a-z]", b"\xe9"));
    }

    #[test]
    fn escape_round_trip() {
        let literals = [
            "",
            "plain",
            "a*",
            "[x]",
            "\\",
            "?",
            "a\\*b",
            "]",
            "[",
            "^",
            "-",
            "[^a-z]",
            "\\\\",
            "*?[]\\",
            "trailing\\",
            "ünïcødé ☃ 日本語",
            "émoji 🦀*",
        ];
        for s in literals {
            let escaped = escape_glob(s);
            assert!(
                glob_match(escaped.as_bytes(), s.as_bytes()),
                "escape_glob({s:?}) = {escaped:?} does not match itself"
            );
        }
        assert_eq!(escape_glob("a*"), "a\\*");
        assert_eq!(escape_glob("[x]"), "\\[x\\]");
        assert!(!glob_match(escape_glob("a*").as_bytes(), b"ab"));
        assert!(!glob_match(escape_glob("?").as_bytes(), b"x"));
        assert!(!glob_match(escape_glob("[x]").as_bytes(), b"x"));
        assert!(!glob_match(escape_glob("a\\*b").as_bytes(), b"a\\xxb"));
        assert!(!has_glob_meta(&escape_glob("plain")));
    }

    #[test]
    fn meta_detection() {
        assert!(!has_glob_meta(""));
        assert!(!has_glob_meta("user:1000"));
        assert!(!has_glob_meta("^-ü"));
        for s in ["*", "a?", "[", "]", "\\", "x[1]"] {
            assert!(has_glob_meta(s), "{s:?}");
        }
    }

    #[test]
    fn malformed_patterns_do_not_panic() {
        let patterns: &[&[u8]] = &[
            b"",
            b"[",
            b"[^",
            b"[\\",
            b"[^\\",
            b"[a-",
            b"[a\\",
            b"[-",
            b"[]",
            b"[^]",
            b"]",
            b"\\",
            b"\\\\\\",
            b"*[",
            b"*\\",
            b"?[",
            b"*[^",
            b"[[[[",
            b"***",
            b"\0",
            b"[\xff-\x00]",
        ];
        let subjects: &[&[u8]] = &[b"", b"a", b"[", b"\\", b"]", b"-", b"^", b"abc", b"\0\xff"];
        for p in patterns {
            for s in subjects {
                let _ = glob_match(p, s);
            }
        }
        // Exhaustive over all short patterns on a hostile alphabet.
        let alphabet = b"a*?[]^-\\";
        let mut pattern = Vec::new();
        for len in 0..=4u32 {
            for mut n in 0..alphabet.len().pow(len) {
                pattern.clear();
                for _ in 0..len {
                    pattern.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for s in subjects {
                    let _ = glob_match(&pattern, s);
                }
            }
        }
    }

    #[test]
    fn pathological_patterns_complete() {
        let subject = vec![b'a'; 50_000];
        assert!(!glob_match(b"a*a*a*a*a*a*a*b", &subject));
        assert!(!glob_match(
            b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
        assert!(glob_match(b"a*a*a*a*a*a*a*a", &subject));
        // Redis's regression test for CVE-2024-31228: deep `*` nesting is
        // cut off (no match) instead of recursing 50_000 levels.
        assert!(!glob_match("*?".repeat(50_000).as_bytes(), &subject));
        assert!(!glob_match("*a".repeat(1_500).as_bytes(), &subject));
        // Within the limit, nesting still works.
        assert!(glob_match("*a".repeat(500).as_bytes(), &subject));
    }
}

/// Differential check against a real Redis: every pattern of up to four
/// characters over a hostile alphabet selects exactly the keys `KEYS` does.
#[cfg(test)]
mod against_redis {
    use std::collections::BTreeSet;

    use super::glob_match;

    #[test]
    fn every_short_pattern_matches_like_redis_keys() {
        let server = larder_test_support::RedisServer::spawn();
        let mut conn = server.connection();
        let subjects: Vec<&[u8]> = vec![
            b"", b"a", b"[", b"\\", b"]", b"-", b"^", b"abc", b"aa", b"a]", b"a-", b"[a]", b"\\a",
            b"a\\", b"*", b"?", b"ab", b"-a", b"^a", b"]a", b"\xff", b"a\xff", b"b", b"a[", b"a^",
            b"[]", b"a*", b"aaa", b"a-a", b"\\\\",
        ];
        for subject in &subjects {
            let _: () = redis::cmd("SET")
                .arg(*subject)
                .arg(1)
                .query(&mut conn)
                .unwrap();
        }
        let alphabet = b"ab*?[]^-\\";
        let mut mismatches = Vec::new();
        for len in 0..=4_u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut pattern = Vec::new();
                for _ in 0..len {
                    pattern.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let redis: BTreeSet<Vec<u8>> = redis::cmd("KEYS")
                    .arg(pattern.as_slice())
                    .query::<Vec<Vec<u8>>>(&mut conn)
                    .unwrap()
                    .into_iter()
                    .collect();
                let ours: BTreeSet<Vec<u8>> = subjects
                    .iter()
                    .filter(|s| glob_match(&pattern, s))
                    .map(|s| s.to_vec())
                    .collect();
                if redis != ours {
                    mismatches.push(String::from_utf8_lossy(&pattern).into_owned());
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "patterns matching unlike Redis: {mismatches:?}"
        );
    }
}
