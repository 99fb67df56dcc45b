//! Strict readers of the fields the policy reads: `Cache-Control`,
//! `Pragma`, `Vary`, `Age` (RFC 9110 §5.6, RFC 9111 §5).
//!
//! A shared cache reads them to decide whether one caller's answer may be
//! given to others, so it reads them the way the RFCs write them and takes
//! anything else as unreadable, which the policy turns into "do not
//! store". A list is `element *( OWS "," OWS element )`, empty elements
//! allowed; an element is `token [ "=" ( token / quoted-string ) ]`; OWS is
//! spaces and tabs. `private; max-age=60`, `private max-age=60` or
//! `public;private` are not lists of directives: unreadable.
//!
//! Besides, `private`, `no-store` and `no-cache` written as a token anywhere
//! in a `Cache-Control` line — an argument, inside a quoted string — count
//! as that directive: another cache on the way may read the line less
//! strictly than this one.

use bytes::Bytes;
use http::header::{self, HeaderMap};

/// The directives of every `Cache-Control` line in a header map, as far as
/// a shared cache cares. Directive names are case-insensitive;
/// `private="x"` and `no-cache="x"` (qualified forms) count as `private`
/// and `no-cache`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheControl {
    /// `no-store`
    pub no_store: bool,
    /// `private`
    pub private: bool,
    /// `no-cache`
    pub no_cache: bool,
    /// `max-age`, at most 2^31 (RFC 9111 §1.2.2)
    pub max_age: Option<u64>,
    /// `s-maxage`, at most 2^31
    pub s_maxage: Option<u64>,
    /// `must-revalidate` or `proxy-revalidate`
    pub must_revalidate: bool,
    /// `public`
    pub public: bool,
    /// `stale-while-revalidate` (response), at most 2^31
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (response or request), at most 2^31
    pub stale_if_error: Option<u64>,
    /// `min-fresh` (request), at most 2^31
    pub min_fresh: Option<u64>,
    /// `max-stale` (request): `Some(None)` without an argument (any
    /// staleness), `Some(Some(secs))` with one
    pub max_stale: Option<Option<u64>>,
    /// `only-if-cached` (request)
    pub only_if_cached: bool,
    /// `must-understand` (response)
    pub must_understand: bool,
    /// A line that is not a list of directives, an age that is not a
    /// number of seconds, or `max-age`/`s-maxage` given twice with two
    /// values: a shared cache must not store (or trust) such a response.
    pub unreadable: bool,
}

/// The largest number of seconds a cache represents (RFC 9111 §1.2.2):
/// larger values, including ones that do not fit a `u64`, count as this.
pub(crate) const MAX_DELTA_SECS: u64 = 1 << 31;

impl CacheControl {
    /// Reads every `Cache-Control` line in `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        for line in headers.get_all(header::CACHE_CONTROL) {
            let line = line.as_bytes();
            let readable = list(line, |name, argument| parsed.directive(name, argument));
            parsed.unreadable |= !readable;
            parsed.no_store |= mentions(line, b"no-store");
            parsed.private |= mentions(line, b"private");
            parsed.no_cache |= mentions(line, b"no-cache");
        }
        parsed
    }

    fn directive(&mut self, name: &[u8], argument: Option<&[u8]>) {
        let seconds = |slot: &mut Option<u64>, unreadable: &mut bool| match argument
            .and_then(delta_seconds)
        {
            Some(secs) if slot.is_none_or(|s| s == secs) => *slot = Some(secs),
            _ => *unreadable = true,
        };
        if name.eq_ignore_ascii_case(b"no-store") {
            self.no_store = true;
        } else if name.eq_ignore_ascii_case(b"private") {
            self.private = true;
        } else if name.eq_ignore_ascii_case(b"no-cache") {
            self.no_cache = true;
        } else if name.eq_ignore_ascii_case(b"must-revalidate")
            || name.eq_ignore_ascii_case(b"proxy-revalidate")
        {
            self.must_revalidate = true;
        } else if name.eq_ignore_ascii_case(b"max-age") {
            seconds(&mut self.max_age, &mut self.unreadable);
        } else if name.eq_ignore_ascii_case(b"s-maxage") {
            seconds(&mut self.s_maxage, &mut self.unreadable);
        } else if name.eq_ignore_ascii_case(b"public") {
            self.public = true;
        } else if name.eq_ignore_ascii_case(b"stale-while-revalidate") {
            seconds(&mut self.stale_while_revalidate, &mut self.unreadable);
        } else if name.eq_ignore_ascii_case(b"stale-if-error") {
            seconds(&mut self.stale_if_error, &mut self.unreadable);
        } else if name.eq_ignore_ascii_case(b"min-fresh") {
            seconds(&mut self.min_fresh, &mut self.unreadable);
        } else if name.eq_ignore_ascii_case(b"only-if-cached") {
            self.only_if_cached = true;
        } else if name.eq_ignore_ascii_case(b"must-understand") {
            self.must_understand = true;
        } else if name.eq_ignore_ascii_case(b"max-stale") {
            match argument {
                None => self.max_stale = Some(None),
                Some(argument) => match delta_seconds(argument) {
                    Some(secs) => self.max_stale = Some(Some(secs)),
                    None => self.unreadable = true,
                },
            }
        }
    }

    /// Whether a shared cache may serve the response after it expires
    /// (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10: `must-revalidate`,
    /// `proxy-revalidate` and `s-maxage` forbid it).
    pub fn allows_stale(&self) -> bool {
        !self.must_revalidate && self.s_maxage.is_none()
    }
}

/// Whether `Pragma` says `no-cache` (RFC 9111 §5.4), or cannot be read:
/// either way, a response carrying it is not stored.
pub(crate) fn pragma_forbids_storing(headers: &HeaderMap) -> bool {
    headers.get_all(header::PRAGMA).iter().any(|line| {
        let line = line.as_bytes();
        !list(line, |_, _| {}) || mentions(line, b"no-cache")
    })
}

/// The field names of every `Vary` line, or `None` when one is not a list
/// of field names (and `*`).
pub(crate) fn vary(headers: &HeaderMap) -> Option<Vec<&[u8]>> {
    let mut names = Vec::new();
    for line in headers.get_all(header::VARY) {
        let mut arguments = false;
        let readable = list(line.as_bytes(), |name, argument| {
            arguments |= argument.is_some();
            names.push(name);
        });
        if !readable || arguments {
            return None;
        }
    }
    Some(names)
}

/// The response's `Age` in seconds (RFC 9111 §5.1): 0 when absent; the
/// largest when several are given (never younger than any cache on the way
/// said); `None` when one is not a number of seconds.
pub(crate) fn age(headers: &HeaderMap) -> Option<u64> {
    let mut age = 0;
    for line in headers.get_all(header::AGE) {
        let mut readable = true;
        let mut values = 0;
        let listed = list(line.as_bytes(), |value, argument| {
            values += 1;
            match (argument, delta_seconds(value)) {
                (None, Some(secs)) => age = age.max(secs),
                _ => readable = false,
            }
        });
        if !listed || !readable || values == 0 {
            return None;
        }
    }
    Some(age)
}

/// The header names `response_headers`' `Vary` lists, with the values
/// `request_headers` sent for them.
pub(crate) fn varied_values(
    response_headers: &HeaderMap,
    request_headers: &HeaderMap,
) -> Vec<(String, Option<Bytes>)> {
    vary(response_headers)
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = combined(request_headers, &name);
            (name, value)
        })
        .collect()
}

/// Every value of `name`, joined with `, `; `None` when absent.
pub(crate) fn combined(headers: &HeaderMap, name: &str) -> Option<Bytes> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut joined = first.as_bytes().to_vec();
    for value in values {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    Some(Bytes::from(joined))
}

/// `1*DIGIT` (RFC 9111 §1.2.2), in its token or quoted-string form, at most
/// [`MAX_DELTA_SECS`].
fn delta_seconds(value: &[u8]) -> Option<u64> {
    let digits = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // 11 digits are more than 2^31: no need to read further.
    let secs = digits
        .iter()
        .take(11)
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(secs.min(MAX_DELTA_SECS))
}

/// Reads `line` as a list of `token [ "=" ( token / quoted-string ) ]`
/// elements, calling `element` with each name and argument (a quoted
/// argument with its quotes); `false` if it is not such a list (elements
/// before the fault have been passed on).
fn list<'a>(line: &'a [u8], mut element: impl FnMut(&'a [u8], Option<&'a [u8]>)) -> bool {
    let ows = |i: &mut usize| {
        while *i < line.len() && matches!(line[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < line.len() && is_tchar(line[*i]) {
            *i += 1;
        }
        (*i > start).then_some(start..*i)
    };
    let mut i = 0;
    loop {
        ows(&mut i);
        match line.get(i) {
            None => return true,
            Some(b',') => {
                // An empty element (RFC 9110 §5.6.1: recipients accept them).
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let Some(name) = token(&mut i) else {
            return false;
        };
        let mut argument = None;
        if line.get(i) == Some(&b'=') {
            i += 1;
            let range = if line.get(i) == Some(&b'"') {
                quoted_string(line, &mut i)
            } else {
                token(&mut i)
            };
            let Some(range) = range else {
                return false;
            };
            argument = Some(&line[range]);
        }
        element(&line[name], argument);
        ows(&mut i);
        match line.get(i) {
            None => return true,
            Some(b',') => i += 1,
            Some(_) => return false,
        }
    }
}

/// The range of the quoted-string starting at `*i` (quotes included).
fn quoted_string(line: &[u8], i: &mut usize) -> Option<std::ops::Range<usize>> {
    let start = *i;
    *i += 1;
    loop {
        match *line.get(*i)? {
            b'"' => {
                *i += 1;
                return Some(start..*i);
            }
            // quoted-pair: HTAB, SP, VCHAR or obs-text after the backslash.
            b'\\' => match *line.get(*i + 1)? {
                b'\t' | b' '..=b'~' | 0x80..=0xff => *i += 2,
                _ => return None,
            },
            // qdtext: HTAB, SP, VCHAR but `"` and `\`, obs-text.
            b'\t' | b' '..=b'~' | 0x80..=0xff => *i += 1,
            _ => return None,
        }
    }
}

/// Whether `word` appears in `line` as a whole run of token characters,
/// in any case, wherever it is (a name, an argument, inside quotes).
pub(crate) fn mentions(line: &[u8], word: &[u8]) -> bool {
    line.split(|&b| !is_tchar(b))
        .any(|run| run.eq_ignore_ascii_case(word))
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(name: &'static str, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn cc(lines: &[&str]) -> CacheControl {
        CacheControl::parse(&headers("cache-control", lines))
    }

    #[test]
    fn lists_are_read_as_the_rfc_writes_them() {
        for readable in [
            "",
            "public",
            "max-age=60 , public",
            "public,,\tmax-age=60,",
            ", max-age=\"60\"",
            "x=\"a, b; c \\\" d\", max-age=60",
            "stale-while-revalidate=30, immutable",
        ] {
            assert!(!cc(&[readable]).unreadable, "{readable:?}");
        }
        for unreadable in [
            "private; max-age=60",
            "no-store; no-cache",
            "private max-age=60",
            "public\tprivate",
            "public;private",
            "max-age = 60",
            "max-age= 60",
            "max-age=\"60",
            "max-age=60\"",
            "x=\"a\"b",
            "=60",
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=6e1",
            "max-age=60, max-age=3600",
            "s-maxage=1.5",
            "a=b=c",
        ] {
            assert!(cc(&[unreadable]).unreadable, "{unreadable:?}");
        }
        assert!(
            !cc(&["max-age=60, max-age=60"]).unreadable,
            "the same twice"
        );
    }

    #[test]
    fn forbidding_tokens_count_anywhere() {
        assert!(cc(&["max-age=60, community=\"private\""]).private);
        assert!(cc(&["max-age=60, x=no-store"]).no_store);
        assert!(cc(&["No-Cache=\"Set-Cookie\""]).no_cache);
        assert!(cc(&["public", "PRIVATE"]).private);
        let harmless = cc(&["x-private-ish=1, max-age=60"]);
        assert!(!harmless.private && !harmless.unreadable);
    }

    #[test]
    fn ages_and_lifetimes() {
        assert_eq!(cc(&["max-age=60"]).max_age, Some(60));
        assert_eq!(cc(&["Max-Age=\"60\""]).max_age, Some(60));
        assert_eq!(
            cc(&["max-age=99999999999999999999999"]).max_age,
            Some(MAX_DELTA_SECS)
        );
        let age = |lines: &[&str]| super::age(&headers("age", lines));
        assert_eq!(age(&[]), Some(0));
        assert_eq!(age(&["30"]), Some(30));
        assert_eq!(age(&["30, 50"]), Some(50), "the oldest");
        assert_eq!(age(&["30", "3600"]), Some(3600));
        assert_eq!(age(&["99999999999999999999"]), Some(MAX_DELTA_SECS));
        for bad in ["soon", "-5", "1.5", "", " ,", "30 s", "30=1"] {
            assert_eq!(age(&[bad]), None, "{bad:?}");
        }
    }

    #[test]
    fn pragma_and_vary() {
        let pragma = |line: &str| pragma_forbids_storing(&headers("pragma", &[line]));
        assert!(pragma("no-cache"));
        assert!(pragma("x, No-Cache"));
        assert!(pragma("x; y"), "unreadable");
        assert!(!pragma("x-tracing=on"));
        let vary = |line: &str| {
            super::vary(&headers("vary", &[line]))
                .map(|names| names.iter().map(|n| n.to_vec()).collect::<Vec<_>>())
        };
        assert_eq!(
            vary("Accept-Language, *"),
            Some(vec![b"Accept-Language".to_vec(), b"*".to_vec()])
        );
        for bad in ["accept-language;q=1", "\"host\"", "a b", "a=b"] {
            assert_eq!(vary(bad), None, "{bad:?}");
        }
    }
}
