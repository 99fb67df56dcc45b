//! Shared-cache mode's revalidation: the conditional request a stored
//! response is revalidated with, and what a 304 does to it (RFC 9111
//! §4.3).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use larder::__private::Computed;

use super::fields::{self, CacheControl};
use super::freshness::{self, SharedRules};
use super::policy;
use super::settings::Settings;
use super::stored::StoredResponse;

/// Headers a 304 never replaces in the stored response (RFC 9111 §3.2):
/// the stored body's length, and what this layer sets itself. (A 304's
/// `Age` is merged, to count in the refreshed response's age, and then
/// not stored, as no `Age` is.)
const NOT_UPDATED: [&str; 3] = ["content-length", "x-cache", "transfer-encoding"];

/// Asks the origin whether `previous` is still good: its `ETag` in
/// `If-None-Match`, else its `Last-Modified` in `If-Modified-Since` (an
/// origin that reads only the date cannot then answer 304 for another
/// tag). The client's own preconditions and `Range` go: the cache
/// revalidates the whole representation it holds.
pub(crate) fn make_conditional<B>(request: &mut Request<B>, previous: &StoredResponse) {
    without_conditions(request);
    let headers = request.headers_mut();
    if let Some(etag) = previous
        .header("etag")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        headers.insert(header::IF_NONE_MATCH, etag);
    } else if let Some(modified) = previous
        .header("last-modified")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        headers.insert(header::IF_MODIFIED_SINCE, modified);
    }
}

/// `request` without preconditions or a range: what the origin answers it
/// is the whole current representation.
pub(crate) fn without_conditions<B>(request: &mut Request<B>) {
    let headers = request.headers_mut();
    for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE]
        .iter()
        .chain(&policy::UNKEYED_CONDITIONS)
    {
        headers.remove(name);
    }
}

/// Whether a 304's validators name another representation than the
/// stored one: a different entity tag (weakly compared), or no tag of
/// its own but another `Last-Modified`.
pub(crate) fn validators_conflict(stored: &StoredResponse, not_modified: &HeaderMap) -> bool {
    let weak = |tag: &[u8]| tag.strip_prefix(b"W/").unwrap_or(tag).to_vec();
    match (not_modified.get(header::ETAG), stored.header("etag")) {
        (Some(fresh), Some(stored)) => weak(fresh.as_bytes()) != weak(stored),
        // A tag where the stored response had none (the origin turned
        // tags on): the date the 304 answered decides.
        (_, None) | (None, _) => match (
            not_modified.get(header::LAST_MODIFIED),
            stored.header("last-modified"),
        ) {
            (Some(fresh), Some(stored)) => fresh.as_bytes() != stored.as_ref(),
            _ => false,
        },
    }
}

/// `previous` refreshed by a 304's headers (RFC 9111 §4.3.4): each field
/// the 304 carries replaces the stored one, but for the body's length; a
/// 304 without `Date` gives it a `Date` of now.
/// `Err` when the refreshed response may not be stored (it still answers
/// its own request).
pub(crate) fn updated(
    settings: &Settings,
    previous: &StoredResponse,
    fresh_headers: &HeaderMap,
    now_ms: u64,
    may_store: bool,
    request_headers: &HeaderMap,
) -> Result<Computed<StoredResponse>, Box<StoredResponse>> {
    let mut headers = previous.header_map();
    for name in fresh_headers.keys() {
        if NOT_UPDATED.contains(&name.as_str()) {
            continue;
        }
        headers.remove(name);
        for value in fresh_headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !fresh_headers.contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(freshness::at(now_ms)))
    {
        // A 304 without `Date` is dated when it arrived (RFC 9110 §6.6.1):
        // the refreshed response is as old as the 304, not as the first
        // fetch (whose `Date` would make it stale at once).
        headers.insert(header::DATE, date);
    }
    let mut parts = Response::new(()).into_parts().0;
    parts.status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::OK);
    parts.headers = headers;
    let mut merged = StoredResponse::new(&parts, previous.body.clone(), now_ms);
    // The request that revalidated is the variant the 304 vouched for,
    // under the `Vary` the merged response now says.
    merged.vary = fields::varied_values(&parts.headers, request_headers);
    match freshness::lifetime(&parts, &settings.shared, freshness::at(now_ms)) {
        Ok(lifetime) if may_store => {
            merged.shared = Some(lifetime);
            Ok(Computed::expiring(
                merged,
                lifetime.retention(&settings.shared),
            ))
        }
        _ => Err(Box::new(merged)),
    }
}

/// Whether a revalidation's answer, not stored, says the stored response
/// must not be served again, stale or not: the resource is gone (404,
/// 410), or its current representation is kept from shared caches (a 2xx
/// saying `private` or `no-store`, see [`kept_from_shared_caches`]).
///
/// Any other answer says nothing about the stored response, and leaves it
/// alone: the revalidation is made from a client's own request, so a 400,
/// 406 or 431 may answer that request's faults (an oversized or
/// unsatisfiable header sent with `no-cache`), and a body too large or of
/// unknown length is only one this cache cannot hold.
pub(crate) fn withdraws(status: StatusCode, headers: &HeaderMap, rules: &SharedRules) -> bool {
    matches!(status.as_u16(), 404 | 410)
        || (status.is_success() && kept_from_shared_caches(headers, rules))
}

/// Whether `headers` keep a response from shared caches: `private` or
/// `no-store` in the directives that govern this cache
/// (`CDN-Cache-Control` when honoured and present), or `private` in
/// `Cache-Control` whatever governs. For a 304, the stored response's
/// headers as the 304 refreshed them.
pub(crate) fn kept_from_shared_caches(headers: &HeaderMap, rules: &SharedRules) -> bool {
    let private = CacheControl::parse(headers).private;
    private
        || freshness::directives(headers, rules)
            .is_some_and(|(directives, _)| directives.private || directives.no_store)
}
