//! What a shared cache may store (RFC 9111 §3, §5.2), and for how long.
//!
//! Requests: only `GET` (and `HEAD`, answered from a stored `GET`), and
//! only without a body: a `Content-Length` other than 0 (or unreadable),
//! any `Transfer-Encoding`, or a body not known to be empty bypasses (the
//! key holds no body, so a body's answer must not answer body-less
//! requests). Never a request carrying a credential
//! ([`CREDENTIAL_HEADERS`], configurable) unless the route varies on the
//! authenticated identity; never one asking for another method
//! (`X-HTTP-Method-Override` and kin). A request saying `Cache-Control:
//! no-store` (or whose `Cache-Control` cannot be read) may be answered from
//! the cache, but what the handler answers it is not stored (RFC 9111
//! §5.2.1.5); nor is what it answers a request carrying `If-Match`,
//! `If-Unmodified-Since`, `Range` or `If-Range` (a 412, a 416: the key
//! holds none of them, so that answer is the request's own). Such a
//! request is still answered from a stored response when there is one,
//! which then ignores them as RFC 9110 lets a cache (§13.1.1, §13.1.4,
//! §14.2).
//!
//! Responses: only the configured statuses (200 by default; never 1xx, 206,
//! 304 or 5xx); never with `Set-Cookie`; never with `private`, `no-store`
//! or `no-cache` written as a token anywhere in any `Cache-Control` line
//! (in any casing, qualified forms and arguments too), nor with `Pragma:
//! no-cache`; never with a `Cache-Control`, `Pragma`, `Vary`, `Age` or
//! `Date` that cannot be read strictly (RFC 9110 §5.6 lists of
//! `token [ "=" ( token / quoted-string ) ]`, comma-separated, spaces and
//! tabs around the commas only: `private; max-age=60` is not a list of
//! directives, so nothing in it can be trusted); never `Vary: *` nor a
//! `Vary` naming a header the route does not key on (it keys on the
//! declared ones and the host and forwarding headers); never one already
//! stale on arrival (`max-age=0`, an `Expires` in the past, unreadable or
//! given twice, an `Age` past its lifetime). The TTL is the configured one, shortened by what is left of
//! the response's own lifetime: `s-maxage`, else `max-age`, else `Expires`
//! − `Date`, less its `Age` (the largest, if several).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode, request, response};
use http_body::SizeHint;

use super::fields;
pub use super::fields::CacheControl;

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
    /// Another credential header ([`CREDENTIAL_HEADERS`]) on a route that
    /// does not vary on identity.
    Credential(HeaderName),
    /// A `GET` or `HEAD` with a body, or one that may have one.
    RequestBody,
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
    /// `Cache-Control: no-cache`, or a `Pragma` saying `no-cache` or that
    /// cannot be read.
    NoCache,
    /// A field that cannot be read strictly (named here).
    Unreadable(&'static str),
    /// `max-age=0` / `s-maxage=0`.
    MaxAgeZero,
    /// Shared-cache mode: no explicit or heuristic freshness and no
    /// validator.
    NoFreshness,
    /// Stale on arrival: an `Expires` in the past, unreadable or given
    /// twice, or an `Age` at or past the response's lifetime.
    Expired,
    /// The request asks the handler for another method
    /// (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`).
    MethodOverride,
    /// `Vary: *`.
    VaryStar,
    /// The request's `Connection` names a header field: a proxy on the way
    /// drops it, so what the cache keys or records may not be what the
    /// handler sees.
    HopByHop,
    /// `Vary` names a header the route does not key on.
    UndeclaredVary(String),
}

/// What the request side of the policy needs to know about the route.
#[derive(Debug, Clone, Copy)]
pub struct RequestRules<'a> {
    /// The route keys on the authenticated identity
    /// ([`vary_on`](super::ResponseCacheLayer::vary_on)): credentials are
    /// checked against it instead.
    pub varies_on_identity: bool,
    /// A request's `Cache-Control: no-cache` bypasses the cache.
    pub honour_no_cache: bool,
    /// The request headers that count as credentials.
    pub credentials: &'a [HeaderName],
}

/// The request side of the policy. `body` is the request body's size hint
/// (exactly 0 when it is known to be empty).
///
/// # Errors
/// The reason the request bypasses the cache.
pub fn check_request(
    request: &request::Parts,
    body: &SizeHint,
    rules: &RequestRules<'_>,
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
    if !has_no_body(&request.headers, body) {
        return Err(Skip::RequestBody);
    }
    if names_hop_by_hop_fields(&request.headers) {
        return Err(Skip::HopByHop);
    }
    if !rules.varies_on_identity {
        match credential(&request.headers, rules.credentials) {
            Some(name) if name == header::AUTHORIZATION => return Err(Skip::Authorization),
            Some(name) if name == header::COOKIE => return Err(Skip::Cookie),
            Some(name) => return Err(Skip::Credential(name)),
            None => {}
        }
    }
    if rules.honour_no_cache && request.headers.contains_key(header::CACHE_CONTROL) {
        let directives = CacheControl::parse(&request.headers);
        if directives.no_cache || directives.no_store {
            return Err(Skip::RequestNoCache);
        }
    }
    Ok(())
}

/// The first of `credentials` that `headers` carries, else the first
/// header of a credential family ([`CREDENTIAL_PREFIXES`]).
pub fn credential(headers: &HeaderMap, credentials: &[HeaderName]) -> Option<HeaderName> {
    if headers.is_empty() {
        return None;
    }
    // One walk over the request's (few) headers rather than a lookup per
    // credential name: names compare by length first, prefixes only for
    // names starting with one of their first letters.
    let mut family = None;
    for name in headers.keys() {
        if let Some(credential) = credentials.iter().find(|c| *c == name) {
            return Some(credential.clone());
        }
        let spelled = name.as_str();
        if family.is_none()
            && spelled
                .bytes()
                .next()
                .is_some_and(|first| PREFIX_FIRST_BYTES.contains(&first))
            && CREDENTIAL_PREFIXES
                .iter()
                .any(|prefix| spelled.starts_with(prefix))
        {
            family = Some(name.clone());
        }
    }
    family
}

/// Families of request headers that carry who the caller is, by the
/// start of their names: whatever one a product adds, it is a credential.
/// Always in force, besides [`CREDENTIAL_HEADERS`] (or the names that
/// replace them).
///
/// Cloudflare Access (`Cf-Access-*`), Google IAP
/// (`X-Goog-Authenticated-*`, `X-Goog-IAP-*`), AWS ALB (`X-Amzn-Oidc-*`),
/// oauth2-proxy (`X-Auth-Request-*`, `X-Forwarded-Preferred-*`), Azure App
/// Service (`X-MS-Client-Principal*`, `X-MS-Token-*`), authentik
/// (`X-Authentik-*`), Pomerium (`X-Pomerium-*`), Vouch (`X-Vouch-*`),
/// Tailscale (`Tailscale-User-*`), Grafana-style auth proxies
/// (`X-WebAuth-*`), client certificates passed on by a TLS terminator
/// (`X-SSL-Client-*`, `X-Client-Cert*`, `X-Forwarded-Client-Cert`,
/// `SSL-Client-*`), and `X-Remote-*`, `Remote-*`, `X-User-*`.
pub static CREDENTIAL_PREFIXES: [&str; 20] = [
    "cf-access-",
    "x-goog-authenticated-",
    "x-goog-iap-",
    "x-amzn-oidc-",
    "x-auth-request-",
    "x-forwarded-preferred-",
    "x-ms-client-principal",
    "x-ms-token-",
    "x-authentik-",
    "x-pomerium-",
    "x-vouch-",
    "tailscale-user-",
    "x-webauth-",
    "x-ssl-client-",
    "x-client-cert",
    "x-forwarded-client-cert",
    "ssl-client-",
    "x-remote-",
    "remote-",
    "x-user-",
];

/// The first letters of [`CREDENTIAL_PREFIXES`]: other names skip them.
const PREFIX_FIRST_BYTES: [u8; 5] = [b'c', b'r', b's', b't', b'x'];

/// Whether `Connection` names a field other than the `close` and
/// `keep-alive` options (RFC 9110 §7.6.1), or cannot be read.
fn names_hop_by_hop_fields(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|line| {
        line.to_str().map_or(true, |line| {
            line.split(',').map(str::trim).any(|option| {
                !option.is_empty()
                    && !option.eq_ignore_ascii_case("close")
                    && !option.eq_ignore_ascii_case("keep-alive")
            })
        })
    })
}

/// Whether the request certainly has no body: no `Transfer-Encoding`, every
/// `Content-Length` exactly `0`, and a body known to be empty.
fn has_no_body(headers: &HeaderMap, body: &SizeHint) -> bool {
    body.upper() == Some(0)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .all(|length| length.as_bytes() == b"0")
}

/// Whether the response to `request` may be stored: not when it says
/// `Cache-Control: no-store` (RFC 9111 §5.2.1.5), nor when its
/// `Cache-Control` cannot be read. It may still be answered from the cache.
pub fn request_allows_storing(request: &request::Parts) -> bool {
    if !request.headers.contains_key(header::CACHE_CONTROL) {
        return true;
    }
    let directives = CacheControl::parse(&request.headers);
    !directives.no_store && !directives.unreadable
}

/// Request headers that shape the answer but are in no key: the
/// preconditions only an origin evaluates (`If-Match`,
/// `If-Unmodified-Since`: RFC 9110 §13.1.1, §13.1.4) and a range
/// (`Range`, `If-Range`: RFC 9110 §14.2, §13.1.5). What the origin
/// answers a request carrying one (a 412, a 416, a 206) is that request's
/// own: it goes to its client and is never stored. (`If-None-Match` and
/// `If-Modified-Since` need no such rule: their answer, a 304, is never
/// stored.)
pub(crate) const UNKEYED_CONDITIONS: [HeaderName; 4] = [
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::RANGE,
    header::IF_RANGE,
];

/// Whether a request carries one of [`UNKEYED_CONDITIONS`]: its answer
/// may not be stored.
pub(crate) fn carries_unkeyed_conditions(headers: &HeaderMap) -> bool {
    UNKEYED_CONDITIONS
        .iter()
        .any(|name| headers.contains_key(name))
}

/// The request headers that count as credentials by default (see
/// [`credential_headers`](super::ResponseCacheLayer::credential_headers)):
/// a request carrying any of them bypasses the cache unless the route keys
/// on the authenticated identity and finds one. What a handler can unlock
/// with them is someone's, never everyone's.
///
/// - HTTP authentication: `Authorization`, `Proxy-Authorization` (RFC 9110
///   §11.6.2, §11.7.2; a proxy usually consumes the latter, but an app
///   behind none can read it), and `X-Authorization`, where clients put
///   the token when something on the way strips `Authorization`;
/// - session cookies: `Cookie` (and the obsolete `Cookie2`);
/// - API keys and tokens under their common names: `X-API-Key` (AWS API
///   Gateway and most APIs), `Api-Key` (Azure), `ApiKey` (Kong, Supabase),
///   `X-Goog-Api-Key`, `Ocp-Apim-Subscription-Key` (Azure API Management),
///   `X-Functions-Key` (Azure Functions), `Private-Token` (GitLab),
///   `X-Vault-Token`, `X-Auth-Token` (OpenStack, Spring Session),
///   `X-Session-Token`,
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
///   `X-Remote-User` (Apache, nginx `auth_request`); `X-Forwarded-Groups`,
///   `X-User`, `X-UserId`, `X-Email`;
/// - and every header of the families in [`CREDENTIAL_PREFIXES`].
///
/// A name not here that your app reads a user from is added with
/// [`add_credential_headers`](super::ResponseCacheLayer::add_credential_headers).
pub static CREDENTIAL_HEADERS: [HeaderName; 37] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("x-authorization"),
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
    HeaderName::from_static("x-session-token"),
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
    HeaderName::from_static("x-forwarded-groups"),
    HeaderName::from_static("x-user"),
    HeaderName::from_static("x-userid"),
    HeaderName::from_static("x-email"),
];

/// Headers with which middleware lets a `GET` run another method.
pub(crate) const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The response side of the policy: `Ok(ttl)` to store for `ttl`. `keyed`
/// tells whether the route keys on a request header (a `Vary` may name
/// those); `now` is the time an `Expires` is measured from when there is
/// no `Date`.
///
/// # Errors
/// The reason the response is not stored.
pub fn check_response(
    response: &response::Parts,
    statuses: &[StatusCode],
    keyed: impl Fn(&str) -> bool,
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
    let headers = &response.headers;
    let directives = check_reusable(response, &keyed)?;
    let Some(age) = fields::age(headers) else {
        return Err(Skip::Unreadable("age"));
    };
    let date = match single(headers, header::DATE) {
        Err(()) => return Err(Skip::Unreadable("date")),
        Ok(None) => None,
        Ok(Some(date)) => Some(http_date(date).ok_or(Skip::Unreadable("date"))?),
    };
    let lifetime = match directives.s_maxage.or(directives.max_age) {
        Some(0) => return Err(Skip::MaxAgeZero),
        Some(secs) => Some(Duration::from_secs(secs)),
        None => expires_lifetime(headers, date.unwrap_or(now))?,
    };
    let Some(lifetime) = lifetime else {
        return Ok(ttl);
    };
    let apparent = date.and_then(|date| now.duration_since(date).ok());
    let age = Duration::from_secs(age).max(apparent.unwrap_or_default());
    let left = lifetime.saturating_sub(age);
    if left.is_zero() {
        return Err(Skip::Expired);
    }
    Ok(ttl.min(left))
}

/// Whether a failure (a 5xx) may answer the requests that waited on its
/// computation: by its headers, it could be stored but for its status — no
/// cookie, nothing private, `no-store` or `no-cache`, a readable `Vary`
/// naming only keyed headers. It is never stored; only requests with the
/// same key, already waiting, receive it.
pub(crate) fn shareable_failure(response: &response::Parts, keyed: impl Fn(&str) -> bool) -> bool {
    response.status.is_server_error() && check_reusable(response, &keyed).is_ok()
}

/// The checks of a response's headers that decide whether it may answer
/// anyone but the request it was made for; the parsed `Cache-Control`.
fn check_reusable(
    response: &response::Parts,
    keyed: &impl Fn(&str) -> bool,
) -> Result<CacheControl, Skip> {
    let headers = &response.headers;
    if headers.contains_key(header::SET_COOKIE) || headers.contains_key("set-cookie2") {
        return Err(Skip::SetCookie);
    }
    let directives = CacheControl::parse(headers);
    if directives.no_store {
        return Err(Skip::NoStore);
    }
    if directives.private {
        return Err(Skip::Private);
    }
    if directives.no_cache || fields::pragma_forbids_storing(headers) {
        return Err(Skip::NoCache);
    }
    if directives.unreadable {
        return Err(Skip::Unreadable("cache-control"));
    }
    let Some(vary) = fields::vary(headers) else {
        return Err(Skip::Unreadable("vary"));
    };
    for name in vary {
        if name == b"*" {
            return Err(Skip::VaryStar);
        }
        // Tokens are ASCII.
        let name = std::str::from_utf8(name).unwrap_or_default();
        if !keyed(name) {
            return Err(Skip::UndeclaredVary(name.to_ascii_lowercase()));
        }
    }
    Ok(directives)
}

/// The one value of `name`, if any; `Err` if there are several.
pub(crate) fn single(
    headers: &HeaderMap,
    name: HeaderName,
) -> Result<Option<&http::HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (value, None) => Ok(value),
        _ => Err(()),
    }
}

pub(crate) fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

/// `Expires` − `date`, if there is an `Expires`; one in the past, unreadable
/// (`Expires: 0`) or given twice means the response is already stale (RFC
/// 9111 §4.2.1, §5.3).
fn expires_lifetime(headers: &HeaderMap, date: SystemTime) -> Result<Option<Duration>, Skip> {
    let Some(expires) = single(headers, header::EXPIRES).map_err(|()| Skip::Expired)? else {
        return Ok(None);
    };
    let expires = http_date(expires).ok_or(Skip::Expired)?;
    match expires.duration_since(date) {
        Ok(lifetime) if !lifetime.is_zero() => Ok(Some(lifetime)),
        _ => Err(Skip::Expired),
    }
}

/// How old a stored response already was when it arrived, in seconds (RFC
/// 9111 §4.2.3): its `Age`, or the time since its `Date` if that is longer.
/// Only called on responses [`check_response`] accepted.
pub(crate) fn current_age_secs(headers: &HeaderMap, now: SystemTime) -> u64 {
    let apparent = headers
        .get(header::DATE)
        .and_then(http_date)
        .and_then(|date| now.duration_since(date).ok())
        .map_or(0, |age| age.as_secs());
    fields::age(headers).unwrap_or(0).max(apparent)
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
        let keyed = |name: &str| {
            name.eq_ignore_ascii_case("accept-language")
                || super::super::key::is_always_keyed(name, &[])
        };
        check_response(
            &response(status, headers),
            &[StatusCode::OK, StatusCode::NOT_FOUND],
            keyed,
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
            ("max-age=soon", Skip::Unreadable("cache-control")),
            ("private; max-age=60", Skip::Private),
            ("no-store; no-cache", Skip::NoStore),
            ("public;private", Skip::Private),
            ("public\tprivate", Skip::Private),
            ("max-age=60, x=\"no-cache\"", Skip::NoCache),
            ("public max-age=60", Skip::Unreadable("cache-control")),
            ("max-age=60, max-age=30", Skip::Unreadable("cache-control")),
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
            stored(200, &[("cache-control", "max-age=60"), ("age", "30, 20")]),
            Ok(Duration::from_secs(30)),
            "the oldest of a list"
        );
        assert_eq!(
            stored(200, &[("cache-control", "max-age=60"), ("age", "soon")]),
            Err(Skip::Unreadable("age"))
        );
        assert_eq!(
            stored(
                200,
                &[
                    ("expires", "Wed, 25 Nov 2026 12:10:00 GMT"),
                    ("expires", "Wed, 25 Nov 2026 12:20:00 GMT")
                ]
            ),
            Err(Skip::Expired),
            "two Expires: stale (RFC 9111 §4.2.1)"
        );
        assert_eq!(
            stored(
                200,
                &[
                    ("expires", "Wed, 25 Nov 2026 12:10:00 GMT"),
                    ("date", "soon")
                ]
            ),
            Err(Skip::Unreadable("date"))
        );
        assert_eq!(stored(200, &[("pragma", "no-cache")]), Err(Skip::NoCache));
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
            let refused = check_response(
                &response(status.as_u16(), &[]),
                &statuses,
                |_: &str| false,
                HOUR,
                now(),
            );
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
            stored(200, &[("vary", "Host, X-Forwarded-Host, Forwarded, Via")]).is_ok(),
            "keyed on the host anyway"
        );
        assert_eq!(
            stored(200, &[("vary", "accept-language;q=1")]),
            Err(Skip::Unreadable("vary"))
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

    fn check(parts: &request::Parts, identity: bool, honour_no_cache: bool) -> Result<(), Skip> {
        let rules = RequestRules {
            varies_on_identity: identity,
            honour_no_cache,
            credentials: &CREDENTIAL_HEADERS,
        };
        check_request(parts, &SizeHint::with_exact(0), &rules)
    }

    #[test]
    fn every_credential_prefix_starts_with_a_listed_letter() {
        for prefix in CREDENTIAL_PREFIXES {
            assert!(
                PREFIX_FIRST_BYTES.contains(&prefix.as_bytes()[0]),
                "{prefix}"
            );
        }
    }

    #[test]
    fn requests_with_credentials_bypass_unless_keyed_on_identity() {
        assert_eq!(check(&request("GET", &[]), false, false), Ok(()));
        assert_eq!(check(&request("HEAD", &[]), false, false), Ok(()));
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(
                check(&request(method, &[]), false, false),
                Err(Skip::Method)
            );
        }
        for name in [
            "X-HTTP-Method-Override",
            "x-http-method",
            "X-Method-Override",
        ] {
            assert_eq!(
                check(&request("GET", &[(name, "DELETE")]), true, false),
                Err(Skip::MethodOverride),
                "{name}"
            );
        }
        let auth = request("GET", &[("authorization", "Bearer t")]);
        assert_eq!(check(&auth, false, false), Err(Skip::Authorization));
        assert_eq!(check(&auth, true, false), Ok(()));
        let cookie = request("GET", &[("cookie", "session=1")]);
        assert_eq!(check(&cookie, false, false), Err(Skip::Cookie));
        assert_eq!(check(&cookie, true, false), Ok(()));
        let key = request("GET", &[("X-Api-Key", "k")]);
        assert_eq!(
            check(&key, false, false),
            Err(Skip::Credential(HeaderName::from_static("x-api-key")))
        );
        assert_eq!(check(&key, true, false), Ok(()));
        let no_cache = request("GET", &[("cache-control", "No-Cache")]);
        assert_eq!(check(&no_cache, false, false), Ok(()), "ignored by default");
        assert_eq!(check(&no_cache, false, true), Err(Skip::RequestNoCache));
    }

    #[test]
    fn requests_with_a_body_bypass() {
        let rules = RequestRules {
            varies_on_identity: false,
            honour_no_cache: false,
            credentials: &[],
        };
        let empty = SizeHint::with_exact(0);
        let check = |headers: &[(&str, &str)], body: &SizeHint| {
            check_request(&request("GET", headers), body, &rules)
        };
        assert_eq!(check(&[("content-length", "0")], &empty), Ok(()));
        assert_eq!(check(&[], &SizeHint::with_exact(3)), Err(Skip::RequestBody));
        assert_eq!(
            check(&[], &SizeHint::new()),
            Err(Skip::RequestBody),
            "unknown"
        );
        for headers in [
            &[("content-length", "3")][..],
            &[("content-length", "x")],
            &[("content-length", "00")],
            &[("content-length", "0, 0")],
            &[("content-length", "0"), ("content-length", "3")],
            &[("transfer-encoding", "chunked")],
            &[("transfer-encoding", "identity")],
        ] {
            assert_eq!(
                check(headers, &empty),
                Err(Skip::RequestBody),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_request_saying_no_store_allows_no_storing() {
        assert!(request_allows_storing(&request("GET", &[])));
        assert!(request_allows_storing(&request(
            "GET",
            &[("cache-control", "max-age=0")]
        )));
        for value in ["no-store", "No-Store", "max-age=0, no-store", "no-cache; x"] {
            let parts = request("GET", &[("cache-control", value)]);
            assert!(!request_allows_storing(&parts), "{value}");
        }
    }
}
