//! Shared-cache mode ([`CacheMode::Shared`](super::CacheMode::Shared)):
//! what the origin's headers say about storing a response and reusing it
//! later (RFC 9111 §3, §4.2, §4.2.4; RFC 9213 for `CDN-Cache-Control`).
//!
//! Application mode decides once, when it stores (the route's TTL,
//! shortened by the headers). Here a response is kept past its freshness
//! when it can be revalidated or served stale, so freshness is worked out
//! again on every read from what was recorded when it was stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{StatusCode, response};
use serde::{Deserialize, Serialize};

use super::fields::{self, CacheControl, is_tchar};
use super::policy::{Skip, http_date, single};

/// How a stored response may be reused, from its headers when it was
/// stored (or last revalidated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lifetime {
    /// The freshness lifetime (RFC 9111 §4.2.1), in milliseconds.
    pub(crate) fresh_ms: u64,
    /// Its age when it arrived (RFC 9111 §4.2.3 `corrected_initial_age`),
    /// in milliseconds.
    pub(crate) initial_age_ms: u64,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served
    /// stale without revalidation.
    pub(crate) stale_forbidden: bool,
    /// `stale-while-revalidate`, seconds.
    pub(crate) stale_while_revalidate: u64,
    /// `stale-if-error`, seconds.
    pub(crate) stale_if_error: u64,
    /// It carries `ETag` or `Last-Modified`: a stale copy can be
    /// revalidated.
    pub(crate) validator: bool,
}

/// What shared-cache mode is configured with.
#[derive(Debug, Clone)]
pub(crate) struct SharedRules {
    /// The share of the time since `Last-Modified` a response without
    /// explicit freshness stays fresh (RFC 9111 §4.2.2; 10% by default).
    pub(crate) heuristic_fraction: f64,
    /// The longest heuristic freshness (one day by default).
    pub(crate) heuristic_cap: Duration,
    /// How long past its freshness a response is kept: to be revalidated
    /// (when it has a validator), or served when the origin cannot be
    /// reached (unless its headers forbid stale use). One hour by default.
    pub(crate) keep_stale: Duration,
    /// Honour `CDN-Cache-Control` (RFC 9213; on by default).
    pub(crate) cdn_cache_control: bool,
}

impl Default for SharedRules {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            heuristic_cap: Duration::from_secs(24 * 60 * 60),
            keep_stale: Duration::from_secs(60 * 60),
            cdn_cache_control: true,
        }
    }
}

/// Statuses that may be given heuristic freshness (RFC 9110 §15.1),
/// except 206, which is never stored.
const HEURISTIC: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The final status codes this cache understands (RFC 9110 and the
/// registered extensions), for `must-understand` (RFC 9111 §5.2.2.3).
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
            | 500..=508 | 510 | 511
    ) && status != StatusCode::PARTIAL_CONTENT
}

/// The directives that govern this cache: `CDN-Cache-Control` when it is
/// honoured, present and readable (it then replaces `Cache-Control`
/// entirely, RFC 9213 §2.1), else `Cache-Control`.
/// `None` when `CDN-Cache-Control` is honoured and present but not a valid
/// dictionary: what it meant cannot be known, so nothing is stored.
pub(crate) fn directives(headers: &HeaderMap, rules: &SharedRules) -> Option<(CacheControl, bool)> {
    if rules.cdn_cache_control && headers.contains_key("cdn-cache-control") {
        return targeted(headers).map(|targeted| (targeted, true));
    }
    Some((CacheControl::parse(headers), false))
}

/// Whether a response may be stored in shared-cache mode, and how it may
/// be reused; `now` is when it arrived.
///
/// # Errors
/// Why it is not stored.
pub(crate) fn lifetime(
    response: &response::Parts,
    rules: &SharedRules,
    now: SystemTime,
) -> Result<Lifetime, Skip> {
    let status = response.status;
    let never = status.is_informational()
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || status.as_u16() > 599;
    if never {
        return Err(Skip::Status(status));
    }
    let headers = &response.headers;
    if headers.contains_key(header::SET_COOKIE) || headers.contains_key("set-cookie2") {
        return Err(Skip::SetCookie);
    }
    let Some((directives, targeted)) = directives(headers, rules) else {
        return Err(Skip::Unreadable("cdn-cache-control"));
    };
    // `CDN-Cache-Control` replaces `Cache-Control` on freshness and
    // storage (RFC 9213), but a response its origin marked `private`
    // still belongs to one user: never shared.
    if targeted && CacheControl::parse(headers).private {
        return Err(Skip::Private);
    }
    if directives.no_store {
        return Err(Skip::NoStore);
    }
    if directives.private {
        return Err(Skip::Private);
    }
    if directives.unreadable {
        return Err(Skip::Unreadable("cache-control"));
    }
    // A status this cache does not know is stored with explicit freshness
    // (RFC 9111 §3), unless the origin said the cache must understand it.
    if directives.must_understand && !understood(status) {
        return Err(Skip::Status(status));
    }
    let validator =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    // `no-cache` (in any form: a field list counts as the whole response)
    // allows storing, but never reuse without revalidation: only worth it
    // with a validator.
    let no_cache = directives.no_cache || (!targeted && fields::pragma_forbids_storing(headers));
    if no_cache && !validator {
        return Err(Skip::NoCache);
    }
    let Some(vary) = fields::vary(headers) else {
        return Err(Skip::Unreadable("vary"));
    };
    if vary.iter().any(|name| *name == b"*") {
        return Err(Skip::VaryStar);
    }
    let Some(age) = fields::age(headers) else {
        return Err(Skip::Unreadable("age"));
    };
    let date = match single(headers, header::DATE) {
        Err(()) => return Err(Skip::Unreadable("date")),
        Ok(None) => None,
        Ok(Some(date)) => Some(http_date(date).ok_or(Skip::Unreadable("date"))?),
    };
    let explicit = match directives.s_maxage.or(directives.max_age) {
        Some(secs) => Some(Duration::from_secs(secs)),
        None if targeted => None,
        None => match single(headers, header::EXPIRES) {
            Err(()) => Some(Duration::ZERO),
            Ok(None) => None,
            // An unreadable `Expires` (`0`) is in the past.
            Ok(Some(expires)) => Some(http_date(expires).map_or(Duration::ZERO, |expires| {
                expires
                    .duration_since(date.unwrap_or(now))
                    .unwrap_or_default()
            })),
        },
    };
    let fresh = match explicit {
        Some(fresh) => fresh,
        None => match heuristic(status, headers, date.unwrap_or(now), rules) {
            Some(fresh) => fresh,
            // Nothing says how long it may be reused: stored only to be
            // revalidated on every use, if it can be.
            None if validator => Duration::ZERO,
            None => return Err(Skip::NoFreshness),
        },
    };
    let apparent = date.and_then(|date| now.duration_since(date).ok());
    let initial_age = Duration::from_secs(age).max(apparent.unwrap_or_default());
    if fresh <= initial_age && !validator {
        return Err(Skip::Expired);
    }
    if no_cache {
        return Ok(Lifetime {
            fresh_ms: 0,
            initial_age_ms: millis(initial_age),
            stale_forbidden: true,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            validator,
        });
    }
    Ok(Lifetime {
        fresh_ms: millis(fresh),
        initial_age_ms: millis(initial_age),
        stale_forbidden: directives.must_revalidate || directives.s_maxage.is_some(),
        stale_while_revalidate: directives.stale_while_revalidate.unwrap_or(0),
        stale_if_error: directives.stale_if_error.unwrap_or(0),
        validator,
    })
}

/// Heuristic freshness (RFC 9111 §4.2.2): a share of the time between
/// `Last-Modified` and `Date`, capped, for the statuses that allow it.
fn heuristic(
    status: StatusCode,
    headers: &HeaderMap,
    date: SystemTime,
    rules: &SharedRules,
) -> Option<Duration> {
    if !HEURISTIC.contains(&status.as_u16()) || rules.heuristic_fraction <= 0.0 {
        return None;
    }
    let modified = http_date(single(headers, header::LAST_MODIFIED).ok()??)?;
    let since = date.duration_since(modified).ok()?;
    let fresh = since.mul_f64(rules.heuristic_fraction.min(1.0));
    (!fresh.is_zero()).then(|| fresh.min(rules.heuristic_cap))
}

impl Lifetime {
    /// Its current age at `now_ms` (RFC 9111 §4.2.3), in milliseconds.
    pub(crate) fn age_ms(&self, stored_at_ms: u64, now_ms: u64) -> u64 {
        self.initial_age_ms
            .saturating_add(now_ms.saturating_sub(stored_at_ms))
    }

    /// How long the store should keep it: while fresh, then as long as it
    /// may be served stale or revalidated.
    pub(crate) fn retention(&self, rules: &SharedRules) -> Duration {
        let fresh_left = Duration::from_millis(self.fresh_ms.saturating_sub(self.initial_age_ms));
        let mut kept = Duration::from_secs(self.stale_while_revalidate.max(self.stale_if_error));
        if self.validator || !self.stale_forbidden {
            kept = kept.max(rules.keep_stale);
        }
        fresh_left
            .saturating_add(kept)
            .max(Duration::from_secs(1))
            .min(larder::MAX_TTL)
    }
}

/// What a request may be answered with, in shared-cache mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Fresh enough for the request.
    Fresh,
    /// Stale, but the request (`max-stale`) accepts it.
    Stale,
    /// Stale within `stale-while-revalidate`: served, and revalidated in
    /// the background.
    StaleWhileRevalidate,
    /// Must be revalidated (or fetched) before use.
    Validate,
}

/// Decides how a stored response with `lifetime`, `age_ms` old, may answer
/// a request with `request` directives.
pub(crate) fn reuse(lifetime: &Lifetime, age_ms: u64, request: &CacheControl) -> Reuse {
    if request.no_cache {
        return Reuse::Validate;
    }
    if request
        .max_age
        .is_some_and(|max| age_ms > max.saturating_mul(1000))
    {
        return Reuse::Validate;
    }
    let fresh_left = lifetime.fresh_ms.saturating_sub(age_ms);
    if fresh_left > 0 {
        let wanted = request.min_fresh.unwrap_or(0).saturating_mul(1000);
        return if fresh_left >= wanted.max(1) {
            Reuse::Fresh
        } else {
            Reuse::Validate
        };
    }
    if lifetime.stale_forbidden {
        return Reuse::Validate;
    }
    let staleness = age_ms - lifetime.fresh_ms;
    match request.max_stale {
        Some(None) => return Reuse::Stale,
        Some(Some(secs)) if staleness <= secs.saturating_mul(1000) => return Reuse::Stale,
        _ => {}
    }
    if request.max_age.is_none()
        && staleness <= lifetime.stale_while_revalidate.saturating_mul(1000)
        && lifetime.stale_while_revalidate > 0
    {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Validate
}

/// Whether a stale copy `age_ms` old may answer for a failed
/// revalidation: `stale-if-error` in the stored response or the request
/// (RFC 5861 §4), and nothing forbidding stale use.
pub(crate) fn may_answer_error(lifetime: &Lifetime, age_ms: u64, request: &CacheControl) -> bool {
    if lifetime.stale_forbidden {
        return false;
    }
    let staleness = age_ms.saturating_sub(lifetime.fresh_ms);
    let allowed = lifetime
        .stale_if_error
        .max(request.stale_if_error.unwrap_or(0));
    allowed > 0 && staleness <= allowed.saturating_mul(1000)
}

/// `CDN-Cache-Control` read as an RFC 8941 dictionary, or `None` when it
/// is absent or not a valid dictionary (then it is ignored, RFC 9213 §2.1).
///
/// A directive that permits (`public`, the ages) with a value of the
/// wrong type is ignored. One that restricts (`private`, `no-store`,
/// `no-cache`, `must-revalidate`, `proxy-revalidate`, `must-understand`)
/// counts whatever its value: `private="x-user-token"` names a field that
/// belongs to one user (RFC 9111 §5.2.2.7), and neither it nor the rest
/// of the response is shared; `no-cache="x"` means revalidate every time.
/// And, as in `Cache-Control`, `private`, `no-store` and `no-cache`
/// written as a token anywhere (a parameter, inside a string) count too:
/// this field weighs no less than `Cache-Control` would.
fn targeted(headers: &HeaderMap) -> Option<CacheControl> {
    let mut lines = headers.get_all("cdn-cache-control").iter().peekable();
    lines.peek()?;
    let mut joined = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(line.as_bytes());
    }
    let mut parsed = CacheControl {
        no_store: fields::mentions(&joined, b"no-store"),
        private: fields::mentions(&joined, b"private"),
        no_cache: fields::mentions(&joined, b"no-cache"),
        ..CacheControl::default()
    };
    for (key, value) in sf_dictionary(&joined)? {
        let integer = || match value {
            SfItem::Integer(n) if n >= 0 => {
                Some(u64::try_from(n).unwrap_or(0).min(fields::MAX_DELTA_SECS))
            }
            _ => None,
        };
        let flag = value == SfItem::True;
        match key {
            b"no-store" => parsed.no_store = true,
            b"private" => parsed.private = true,
            b"no-cache" => parsed.no_cache = true,
            b"must-revalidate" | b"proxy-revalidate" => parsed.must_revalidate = true,
            b"must-understand" => parsed.must_understand = true,
            b"public" if flag => parsed.public = true,
            b"max-age" => parsed.max_age = integer().or(parsed.max_age),
            b"s-maxage" => parsed.s_maxage = integer().or(parsed.s_maxage),
            b"stale-while-revalidate" => {
                parsed.stale_while_revalidate = integer().or(parsed.stale_while_revalidate);
            }
            b"stale-if-error" => parsed.stale_if_error = integer().or(parsed.stale_if_error),
            _ => {}
        }
    }
    Some(parsed)
}

/// The value of a dictionary member, as far as these directives care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SfItem {
    Integer(i64),
    True,
    Other,
}

/// A strict RFC 8941 §4.2.2 dictionary parser (parameters are read and
/// dropped); `None` if `input` is not a dictionary. A repeated key keeps
/// its last value.
fn sf_dictionary(input: &[u8]) -> Option<Vec<(&[u8], SfItem)>> {
    let mut members: Vec<(&[u8], SfItem)> = Vec::new();
    let mut i = 0;
    let sp = |i: &mut usize| {
        while input.get(*i) == Some(&b' ') {
            *i += 1;
        }
    };
    let ows = |i: &mut usize| {
        while matches!(input.get(*i), Some(b' ' | b'\t')) {
            *i += 1;
        }
    };
    sp(&mut i);
    if i == input.len() {
        return Some(members);
    }
    loop {
        let key = sf_key(input, &mut i)?;
        let value = if input.get(i) == Some(&b'=') {
            i += 1;
            sf_bare_item(input, &mut i)?
        } else {
            SfItem::True
        };
        sf_parameters(input, &mut i)?;
        members.retain(|(k, _)| *k != key);
        members.push((key, value));
        ows(&mut i);
        if i == input.len() {
            return Some(members);
        }
        if input[i] != b',' {
            return None;
        }
        i += 1;
        ows(&mut i);
        if i == input.len() {
            return None;
        }
    }
}

fn sf_key<'a>(input: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let start = *i;
    match input.get(*i) {
        Some(c) if c.is_ascii_lowercase() || *c == b'*' => *i += 1,
        _ => return None,
    }
    while matches!(input.get(*i), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(c))
    {
        *i += 1;
    }
    Some(&input[start..*i])
}

fn sf_parameters(input: &[u8], i: &mut usize) -> Option<()> {
    while input.get(*i) == Some(&b';') {
        *i += 1;
        while input.get(*i) == Some(&b' ') {
            *i += 1;
        }
        sf_key(input, i)?;
        if input.get(*i) == Some(&b'=') {
            *i += 1;
            sf_bare_item(input, i)?;
        }
    }
    Some(())
}

fn sf_bare_item(input: &[u8], i: &mut usize) -> Option<SfItem> {
    let c = *input.get(*i)?;
    if c == b'-' || c.is_ascii_digit() {
        let start = *i;
        if c == b'-' {
            *i += 1;
        }
        let digits = *i;
        while matches!(input.get(*i), Some(d) if d.is_ascii_digit()) {
            *i += 1;
        }
        if *i == digits {
            return None;
        }
        if input.get(*i) == Some(&b'.') {
            *i += 1;
            let fraction = *i;
            while matches!(input.get(*i), Some(d) if d.is_ascii_digit()) {
                *i += 1;
            }
            let (whole, frac) = (fraction - 1 - digits, *i - fraction);
            return (whole <= 12 && (1..=3).contains(&frac)).then_some(SfItem::Other);
        }
        if *i - digits > 15 {
            return None;
        }
        let text = std::str::from_utf8(&input[start..*i]).ok()?;
        return text.parse().ok().map(SfItem::Integer);
    }
    match c {
        b'"' => {
            *i += 1;
            loop {
                match *input.get(*i)? {
                    b'\\' => {
                        if !matches!(input.get(*i + 1), Some(b'"' | b'\\')) {
                            return None;
                        }
                        *i += 2;
                    }
                    b'"' => {
                        *i += 1;
                        return Some(SfItem::Other);
                    }
                    0x20..=0x7e => *i += 1,
                    _ => return None,
                }
            }
        }
        b'?' => {
            let value = *input.get(*i + 1)?;
            *i += 2;
            match value {
                b'1' => Some(SfItem::True),
                b'0' => Some(SfItem::Other),
                _ => None,
            }
        }
        b':' => {
            *i += 1;
            while matches!(input.get(*i), Some(c) if c.is_ascii_alphanumeric() || b"+/=".contains(c))
            {
                *i += 1;
            }
            if input.get(*i) != Some(&b':') {
                return None;
            }
            *i += 1;
            Some(SfItem::Other)
        }
        c if c.is_ascii_alphabetic() || c == b'*' => {
            *i += 1;
            while matches!(input.get(*i), Some(c) if is_tchar(*c) || *c == b':' || *c == b'/') {
                *i += 1;
            }
            Some(SfItem::Other)
        }
        _ => None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `now_ms` as a time.
pub(crate) fn at(now_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_cache_control_is_a_strict_dictionary() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("cdn-cache-control", value.parse().unwrap());
            targeted(&headers)
        };
        assert_eq!(parse("max-age=3600").unwrap().max_age, Some(3600));
        assert_eq!(parse("foobar, max-age=3600").unwrap().max_age, Some(3600));
        assert_eq!(
            parse("max-age=99999999999").unwrap().max_age,
            Some(fields::MAX_DELTA_SECS)
        );
        assert!(parse("private").unwrap().private);
        assert!(parse("no-store").unwrap().no_store);
        // A restriction counts whatever its value; a token anywhere too.
        assert!(
            parse("private=\"x-user-token\", max-age=60")
                .unwrap()
                .private
        );
        assert!(
            parse("no-cache=\"x-user-token\", max-age=60")
                .unwrap()
                .no_cache
        );
        assert!(parse("no-store=?0").unwrap().no_store);
        assert!(parse("must-revalidate=1").unwrap().must_revalidate);
        assert!(parse("max-age=60;private").unwrap().private);
        assert!(parse("max-age=60, x=\"no-store\"").unwrap().no_store);
        assert!(!parse("public=\"x\"").unwrap().public, "wrong type");
        assert_eq!(
            parse("max-age=\"10000\"").unwrap().max_age,
            None,
            "wrong type"
        );
        for invalid in [
            "max-age=10000, &&&&&",
            "MaX-aGe=3600",
            "max-age =100",
            "max-age= 100",
            "a,",
        ] {
            assert_eq!(parse(invalid), None, "{invalid}");
        }
    }
}
