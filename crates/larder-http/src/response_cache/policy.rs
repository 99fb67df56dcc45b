//! What a shared cache may store (RFC 9111 §3, §5.2), and for how long.
//!
//! Requests: only `GET` (and `HEAD`, answered from a stored `GET`); never a
//! request carrying `Authorization` or a cookie unless the route varies on
//! the authenticated identity; never one asking for another method
//! (`X-HTTP-Method-Override` and kin). Responses: only the configured
//! statuses (200 by default; never 1xx, 206, 304 or 5xx); never with
//! `Set-Cookie`; never with `Cache-Control: no-store`, `private` or
//! `no-cache` (in any casing, qualified forms too); never `Vary: *` nor a
//! `Vary` naming a header the route does not key on (it keys on the
//! declared ones and the host headers); never one already
//! stale on arrival (`max-age=0`, an `Expires` in the past or unreadable,
//! an `Age` past its lifetime). The TTL is the configured one, shortened by
//! what is left of the response's own lifetime: `s-maxage`, else
//! `max-age`, else `Expires` − `Date`, less its `Age`.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode, request, response};

/// Why a request or response is not cached. Shown in logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// Not `GET` or `HEAD`.
    Method,
    /// `Authorization` on a route that does not vary on identity.
    Authorization,
    /// A cookie on a route that does not vary on identity.
    Cookie,
    /// The request asked for a fresh response (`Cache-Control: no-cache`)
    /// and the layer honours that.
    RequestNoCache,
    /// A status that is not cached.
    Status(StatusCode),
    /// The response sets a cookie.
    SetCookie,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-cache`.
    NoCache,
    /// `max-age=0` / `s-maxage=0`.
    MaxAgeZero,
    /// Stale on arrival: an `Expires` in the past (or unreadable), or an
    /// `Age` at or past the response's lifetime.
    Expired,
    /// The request asks the handler for another method
    /// (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`).
    MethodOverride,
    /// `Vary: *`.
    VaryStar,
    /// `Vary` names a header the route does not key on.
    UndeclaredVary(String),
}

/// The request side of the policy.
///
/// # Errors
/// The reason the request bypasses the cache.
pub fn check_request(
    request: &request::Parts,
    varies_on_identity: bool,
    honour_no_cache: bool,
) -> Result<(), Skip> {
    if request.method != Method::GET && request.method != Method::HEAD {
        return Err(Skip::Method);
    }
    if METHOD_OVERRIDES
        .iter()
        .any(|name| request.headers.contains_key(*name))
    {
        return Err(Skip::MethodOverride);
    }
    if !varies_on_identity {
        if request.headers.contains_key(header::AUTHORIZATION) {
            return Err(Skip::Authorization);
        }
        if request.headers.contains_key(header::COOKIE) {
            return Err(Skip::Cookie);
        }
    }
    if honour_no_cache {
        let directives = CacheControl::parse(&request.headers);
        if directives.no_cache || directives.no_store {
            return Err(Skip::RequestNoCache);
        }
    }
    Ok(())
}

/// The request headers that count as credentials by default (see
/// [`credential_headers`](super::ResponseCacheLayer::credential_headers)):
/// a request carrying any of them bypasses the cache unless the route keys
/// on the authenticated identity and finds one. What a handler can unlock
/// with them is someone's, never everyone's.
///
/// - HTTP authentication: `Authorization`, `Proxy-Authorization` (RFC 9110
///   §11.6.2, §11.7.2; a proxy usually consumes the latter, but an app
///   behind none can read it);
/// - session cookies: `Cookie` (and the obsolete `Cookie2`);
/// - API keys and tokens under their common names: `X-API-Key` (AWS API
///   Gateway and most APIs), `Api-Key` (Azure), `ApiKey` (Kong, Supabase),
///   `X-Goog-Api-Key`, `Ocp-Apim-Subscription-Key` (Azure API Management),
///   `X-Functions-Key` (Azure Functions), `Private-Token` (GitLab),
///   `X-Vault-Token`, `X-Auth-Token` (OpenStack, Spring Session),
///   `X-Access-Token`, `X-Amz-Security-Token` (AWS temporary credentials);
/// - anti-forgery tokens, which are per session: `X-CSRF-Token`,
///   `X-XSRF-Token`;
/// - the identity an authenticating proxy hands the app: oauth2-proxy's
///   `X-Forwarded-User`, `X-Forwarded-Email`, `X-Forwarded-Access-Token`,
///   `X-Auth-Request-User`, `X-Auth-Request-Email`,
///   `X-Auth-Request-Access-Token`; AWS ALB's `X-Amzn-Oidc-Data`,
///   `X-Amzn-Oidc-Identity`, `X-Amzn-Oidc-Accesstoken`; Google IAP's
///   `X-Goog-IAP-JWT-Assertion`, `X-Goog-Authenticated-User-Email`;
///   Cloudflare Access's `Cf-Access-Jwt-Assertion`; `Remote-User` and
///   `X-Remote-User` (Apache, nginx `auth_request`).
///
/// A name not here that your app reads a user from is added with
/// [`add_credential_headers`](super::ResponseCacheLayer::add_credential_headers).
pub static CREDENTIAL_HEADERS: [HeaderName; 31] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("cookie2"),
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("apikey"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("ocp-apim-subscription-key"),
    HeaderName::from_static("x-functions-key"),
    HeaderName::from_static("private-token"),
    HeaderName::from_static("x-vault-token"),
    HeaderName::from_static("x-auth-token"),
    HeaderName::from_static("x-access-token"),
    HeaderName::from_static("x-amz-security-token"),
    HeaderName::from_static("x-csrf-token"),
    HeaderName::from_static("x-xsrf-token"),
    HeaderName::from_static("x-forwarded-user"),
    HeaderName::from_static("x-forwarded-email"),
    HeaderName::from_static("x-forwarded-access-token"),
    HeaderName::from_static("x-auth-request-user"),
    HeaderName::from_static("x-auth-request-email"),
    HeaderName::from_static("x-auth-request-access-token"),
    HeaderName::from_static("x-amzn-oidc-data"),
    HeaderName::from_static("x-amzn-oidc-identity"),
    HeaderName::from_static("x-amzn-oidc-accesstoken"),
    HeaderName::from_static("x-goog-iap-jwt-assertion"),
    HeaderName::from_static("x-goog-authenticated-user-email"),
    HeaderName::from_static("cf-access-jwt-assertion"),
    HeaderName::from_static("remote-user"),
    HeaderName::from_static("x-remote-user"),
];

/// Headers with which middleware lets a `GET` run another method.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The response side of the policy: `Ok(ttl)` to store for `ttl`. `now` is
/// the time an `Expires` is measured from when there is no `Date`.
///
/// # Errors
/// The reason the response is not stored.
pub fn check_response(
    response: &response::Parts,
    statuses: &[StatusCode],
    declared_vary: &[HeaderName],
    ttl: Duration,
    now: SystemTime,
) -> Result<Duration, Skip> {
    let status = response.status;
    let never = status.is_informational()
        || status.is_server_error()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if never || !statuses.contains(&status) {
        return Err(Skip::Status(status));
    }
    if response.headers.contains_key(header::SET_COOKIE)
        || response.headers.contains_key("set-cookie2")
    {
        return Err(Skip::SetCookie);
    }
    let directives = CacheControl::parse(&response.headers);
    if directives.no_store {
        return Err(Skip::NoStore);
    }
    if directives.private {
        return Err(Skip::Private);
    }
    if directives.no_cache {
        return Err(Skip::NoCache);
    }
    for value in response.headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else {
            return Err(Skip::UndeclaredVary("<non-ASCII>".into()));
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(Skip::VaryStar);
            }
            let declared = declared_vary
                .iter()
                .any(|d| d.as_str().eq_ignore_ascii_case(name));
            if !declared && !super::key::is_always_keyed(name) {
                return Err(Skip::UndeclaredVary(name.to_ascii_lowercase()));
            }
        }
    }
    let lifetime = match directives.s_maxage.or(directives.max_age) {
        Some(0) => return Err(Skip::MaxAgeZero),
        Some(secs) => Some(Duration::from_secs(secs)),
        None => expires_lifetime(&response.headers, now)?,
    };
    let Some(lifetime) = lifetime else {
        return Ok(ttl);
    };
    let age = Duration::from_secs(current_age_secs(&response.headers, now));
    let left = lifetime.saturating_sub(age);
    if left.is_zero() {
        return Err(Skip::Expired);
    }
    Ok(ttl.min(left))
}

/// `Expires` − `Date` (or − `now` without a readable `Date`), if there is
/// an `Expires`; one in the past, or unreadable (`Expires: 0`), means the
/// response is already stale (RFC 9111 §5.3).
fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Result<Option<Duration>, Skip> {
    let Some(expires) = headers.get(header::EXPIRES) else {
        return Ok(None);
    };
    let date = |value: &http::HeaderValue| {
        value
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let expires = date(expires).ok_or(Skip::Expired)?;
    let date = headers.get(header::DATE).and_then(date).unwrap_or(now);
    match expires.duration_since(date) {
        Ok(lifetime) if !lifetime.is_zero() => Ok(Some(lifetime)),
        _ => Err(Skip::Expired),
    }
}

/// How old the response already is, in seconds (RFC 9111 §4.2.3): its
/// `Age`, or the time since its `Date` if that is longer.
pub(crate) fn current_age_secs(headers: &HeaderMap, now: SystemTime) -> u64 {
    let apparent = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|date| now.duration_since(date).ok())
        .map_or(0, |age| age.as_secs());
    age_secs(headers).max(apparent)
}

/// The largest `Age` a cache reports (RFC 9111 §1.2.2): larger values,
/// including ones that do not fit a `u64`, count as this.
const MAX_AGE_SECS: u64 = 1 << 31;

/// The response's `Age` in seconds: 0 when absent or not a number (only
/// the first of several values counts), at most [`MAX_AGE_SECS`].
fn age_secs(headers: &HeaderMap) -> u64 {
    let Some(value) = headers.get(header::AGE).and_then(|v| v.to_str().ok()) else {
        return 0;
    };
    let first = value.split(',').next().unwrap_or_default().trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    first
        .parse::<u64>()
        .map_or(MAX_AGE_SECS, |age| age.min(MAX_AGE_SECS))
}

/// The directives of every `Cache-Control` header, as far as a shared cache
/// cares. Directive names are case-insensitive; `private="x"` and
/// `no-cache="x"` (qualified forms) count as `private` and `no-cache`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`
    pub no_store: bool,
    /// `private`
    pub private: bool,
    /// `no-cache`
    pub no_cache: bool,
    /// `max-age`
    pub max_age: Option<u64>,
    /// `s-maxage`
    pub s_maxage: Option<u64>,
    /// `must-revalidate` or `proxy-revalidate`
    pub must_revalidate: bool,
}

impl CacheControl {
    /// Whether a shared cache may serve the response after it expires
    /// (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10: `must-revalidate`,
    /// `proxy-revalidate` and `s-maxage` forbid it).
    pub fn allows_stale(&self) -> bool {
        !self.must_revalidate && self.s_maxage.is_none()
    }
}

impl CacheControl {
    /// Reads every `Cache-Control` header in `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            // Unreadable bytes: be safe, store nothing.
            let Ok(value) = value.to_str() else {
                parsed.no_store = true;
                continue;
            };
            for directive in split_directives(value) {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive.trim(), None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => parsed.no_store = true,
                    "private" => parsed.private = true,
                    "no-cache" => parsed.no_cache = true,
                    "must-revalidate" | "proxy-revalidate" => parsed.must_revalidate = true,
                    // A malformed age is treated as 0: do not store.
                    "max-age" => {
                        parsed.max_age = Some(argument.and_then(|a| a.parse().ok()).unwrap_or(0))
                    }
                    "s-maxage" => {
                        parsed.s_maxage = Some(argument.and_then(|a| a.parse().ok()).unwrap_or(0))
                    }
                    _ => {}
                }
            }
        }
        parsed
    }
}

/// Splits a header value on commas outside quoted strings
/// (`no-cache="set-cookie, x-private", max-age=60`).
fn split_directives(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request, Response};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn response(status: u16, headers: &[(&str, &str)]) -> response::Parts {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, HeaderValue::from_str(value).unwrap());
        }
        builder.body(()).unwrap().into_parts().0
    }

    /// 2026-11-25T12:00:00Z, the `now` of these tests.
    fn now() -> SystemTime {
        httpdate::parse_http_date("Wed, 25 Nov 2026 12:00:00 GMT").unwrap()
    }

    fn stored(status: u16, headers: &[(&str, &str)]) -> Result<Duration, Skip> {
        check_response(
            &response(status, headers),
            &[StatusCode::OK, StatusCode::NOT_FOUND],
            &[HeaderName::from_static("accept-language")],
            HOUR,
            now(),
        )
    }

    #[test]
    fn cache_control_variants_in_odd_casing_are_refused() {
        for (value, skip) in [
            ("no-store", Skip::NoStore),
            ("No-Store", Skip::NoStore),
            ("max-age=60, NO-STORE", Skip::NoStore),
            ("PRIVATE", Skip::Private),
            ("private=\"x-user\"", Skip::Private),
            ("public, Private", Skip::Private),
            ("no-cache", Skip::NoCache),
            ("No-Cache=\"Set-Cookie, X-Foo\"", Skip::NoCache),
            ("max-age=0", Skip::MaxAgeZero),
            ("s-maxage=0, max-age=60", Skip::MaxAgeZero),
            ("max-age=soon", Skip::MaxAgeZero),
        ] {
            assert_eq!(
                stored(200, &[("cache-control", value)]),
                Err(skip),
                "{value}"
            );
        }
    }

    #[test]
    fn ttl_is_the_shorter_of_configured_and_s_maxage_or_max_age() {
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60")]),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60, s-maxage=30")]),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            stored(200, &[("cache-control", "public, max-age=86400")]),
            Ok(HOUR)
        );
        assert_eq!(stored(200, &[]), Ok(HOUR));
    }

    #[test]
    fn expires_and_age_shorten_or_refuse() {
        let expires = |at: &str| stored(200, &[("expires", at)]);
        assert_eq!(
            expires("Wed, 25 Nov 2026 12:10:00 GMT"),
            Ok(Duration::from_secs(600)),
            "measured from now without a Date"
        );
        assert_eq!(
            stored(
                200,
                &[
                    ("expires", "Wed, 25 Nov 2026 12:10:00 GMT"),
                    ("date", "Wed, 25 Nov 2026 12:09:00 GMT"),
                ]
            ),
            Ok(Duration::from_secs(60)),
            "measured from Date"
        );
        assert_eq!(expires("Thu, 01 Jan 1970 00:00:00 GMT"), Err(Skip::Expired));
        assert_eq!(expires("0"), Err(Skip::Expired), "unreadable is past");
        assert_eq!(
            stored(
                200,
                &[
                    ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                    ("cache-control", "max-age=60")
                ]
            ),
            Ok(Duration::from_secs(60)),
            "max-age wins over Expires"
        );
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60"), ("age", "50")]),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60"), ("age", "60")]),
            Err(Skip::Expired)
        );
        assert_eq!(
            stored(200, &[("age", "600")]),
            Ok(HOUR),
            "no lifetime of its own"
        );
        for huge in ["99999999999999999999", "2147483649"] {
            assert_eq!(
                stored(200, &[("cache-control", "max-age=60"), ("age", huge)]),
                Err(Skip::Expired),
                "{huge} is old, not new"
            );
        }
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60"), ("age", "30, 30")]),
            Ok(Duration::from_secs(30)),
            "the first of a list"
        );
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60"), ("age", "soon")]),
            Ok(Duration::from_secs(60))
        );
        // A Date 50 s ago counts as an age of 50 s.
        let old_date = [("date", "Wed, 25 Nov 2026 11:59:10 GMT")];
        assert_eq!(
            stored(200, &[old_date[0], ("cache-control", "max-age=60")]),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            stored(
                200,
                &[
                    ("date", "Sat, 01 Jan 2000 00:00:00 GMT"),
                    ("expires", "Sat, 01 Jan 2000 01:00:00 GMT")
                ]
            ),
            Err(Skip::Expired),
            "an hour's lifetime, spent long ago"
        );
    }

    #[test]
    fn only_configured_statuses_and_never_the_unstorable_ones() {
        assert!(stored(200, &[]).is_ok());
        assert!(stored(404, &[]).is_ok(), "configured");
        for status in [100, 201, 206, 304, 500, 503] {
            assert_eq!(
                stored(status, &[]),
                Err(Skip::Status(StatusCode::from_u16(status).unwrap()))
            );
        }
        let statuses = [
            StatusCode::PARTIAL_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::BAD_GATEWAY,
        ];
        for status in statuses {
            let refused =
                check_response(&response(status.as_u16(), &[]), &statuses, &[], HOUR, now());
            assert_eq!(
                refused,
                Err(Skip::Status(status)),
                "never, even if configured"
            );
        }
    }

    #[test]
    fn set_cookie_and_vary_rules() {
        for name in ["set-cookie", "Set-Cookie2"] {
            assert_eq!(stored(200, &[(name, "session=1")]), Err(Skip::SetCookie));
        }
        assert_eq!(stored(200, &[("vary", "*")]), Err(Skip::VaryStar));
        assert_eq!(
            stored(200, &[("vary", "Accept-Language, *")]),
            Err(Skip::VaryStar)
        );
        assert_eq!(
            stored(200, &[("vary", "Accept-Language, X-Tenant")]),
            Err(Skip::UndeclaredVary("x-tenant".into()))
        );
        assert!(
            stored(200, &[("vary", "Host, X-Forwarded-Host, Forwarded")]).is_ok(),
            "keyed on the host anyway"
        );
        assert!(
            stored(200, &[("vary", "accept-language")]).is_ok(),
            "declared, any casing"
        );
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = Request::builder().method(method).uri("/products");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn requests_with_credentials_bypass_unless_keyed_on_identity() {
        assert_eq!(check_request(&request("GET", &[]), false, false), Ok(()));
        assert_eq!(check_request(&request("HEAD", &[]), false, false), Ok(()));
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(
                check_request(&request(method, &[]), false, false),
                Err(Skip::Method)
            );
        }
        for name in [
            "X-HTTP-Method-Override",
            "x-http-method",
            "X-Method-Override",
        ] {
            assert_eq!(
                check_request(&request("GET", &[(name, "DELETE")]), true, false),
                Err(Skip::MethodOverride),
                "{name}"
            );
        }
        let auth = request("GET", &[("authorization", "Bearer t")]);
        assert_eq!(check_request(&auth, false, false), Err(Skip::Authorization));
        assert_eq!(check_request(&auth, true, false), Ok(()));
        let cookie = request("GET", &[("cookie", "session=1")]);
        assert_eq!(check_request(&cookie, false, false), Err(Skip::Cookie));
        assert_eq!(check_request(&cookie, true, false), Ok(()));
        let no_cache = request("GET", &[("cache-control", "No-Cache")]);
        assert_eq!(
            check_request(&no_cache, false, false),
            Ok(()),
            "ignored by default"
        );
        assert_eq!(
            check_request(&no_cache, false, true),
            Err(Skip::RequestNoCache)
        );
    }
}
