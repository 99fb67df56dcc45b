//! The request flow of shared-cache mode
//! ([`CacheMode::Shared`](super::CacheMode::Shared)): a stored response is
//! reused while fresh (by the request's directives too), served stale only
//! where the response or the request allows it, and otherwise revalidated
//! with a conditional request whose 304 refreshes the stored headers.
//! Misses and revalidations go through Larder's read path, so concurrent
//! ones call the origin once.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use larder::__private::{self as support, Computed};
use tower_service::Service;

use super::body::ResponseBody;
use super::fields::{self, CacheControl};
use super::freshness::{self, Reuse};
use super::future::x_cache;
use super::key;
use super::service::{Pass, bad_gateway, buffer, pass, respond};
use super::settings::Settings;
use super::stored::StoredResponse;

/// Headers a 304 never replaces in the stored response (RFC 9111 §3.2):
/// the stored body's length, and what this layer sets itself.
const NOT_UPDATED: [&str; 4] = ["content-length", "x-cache", "age", "transfer-encoding"];

/// A GET or HEAD in shared-cache mode; what the origin answers is stored
/// only if `may_store`.
pub(crate) async fn through_shared_cache<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    inner: S,
    key: String,
    request: Request<ReqBody>,
    may_store: bool,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: fmt::Display + Send,
{
    let now = settings.clock;
    let directives = request_directives(request.headers());
    let tags = [key::path_tag(&key).to_owned()];
    if settings.pending.contains(&tags[0]) {
        return pass(inner, request, "BYPASS").await;
    }
    let existing = support::get_tagged::<StoredResponse>(&settings.cache, &key, &tags)
        .await
        .ok()
        .flatten();
    // Another variant (or an application-mode entry) under the key is
    // replaced, not reused.
    let replace = existing.is_some();
    let stored = existing
        .filter(|stored| stored.shared.is_some() && varies_alike(stored, request.headers()));
    let validators = request.headers().clone();
    let with_body = request.method() != Method::HEAD;
    let Some(stored) = stored else {
        if directives.only_if_cached {
            return Ok(gateway_timeout());
        }
        if !with_body {
            return pass(inner, request, "MISS").await;
        }
        return fetch(
            settings,
            inner,
            key,
            tags,
            request,
            may_store,
            Plan {
                stale: None,
                replace,
            },
            &directives,
        )
        .await;
    };
    let lifetime = stored.shared.unwrap_or_default();
    let age_ms = lifetime.age_ms(stored.stored_at_ms, now());
    match freshness::reuse(&lifetime, age_ms, &directives) {
        Reuse::Fresh => Ok(respond_shared(
            &stored,
            now(),
            "HIT",
            &validators,
            with_body,
        )),
        Reuse::Stale => Ok(respond_shared(
            &stored,
            now(),
            "STALE",
            &validators,
            with_body,
        )),
        Reuse::StaleWhileRevalidate if with_body => {
            let response = respond_shared(&stored, now(), "STALE", &validators, true);
            tokio::spawn(async move {
                let directives = CacheControl::default();
                let _ = fetch(
                    settings,
                    inner,
                    key,
                    tags,
                    request,
                    may_store,
                    Plan {
                        stale: Some(stored),
                        replace: true,
                    },
                    &directives,
                )
                .await;
            });
            Ok(response)
        }
        _ if directives.only_if_cached => Ok(gateway_timeout()),
        _ if !with_body => pass(inner, request, "MISS").await,
        _ => {
            fetch(
                settings,
                inner,
                key,
                tags,
                request,
                may_store,
                Plan {
                    stale: Some(stored),
                    replace: true,
                },
                &directives,
            )
            .await
        }
    }
}

/// What a fetch starts from.
struct Plan {
    /// The stored response being revalidated, if any.
    stale: Option<StoredResponse>,
    /// Something is stored under the key that must not answer this
    /// request: the fetch replaces it rather than reading it back.
    replace: bool,
}

/// Fetches from the origin (conditionally, when `stale` can be
/// revalidated), stores what may be stored and answers the request.
#[allow(clippy::too_many_arguments)]
async fn fetch<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    mut inner: S,
    key: String,
    tags: [String; 1],
    request: Request<ReqBody>,
    may_store: bool,
    plan: Plan,
    directives: &CacheControl,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: fmt::Display + Send,
{
    let now = settings.clock;
    let Plan { stale, replace } = plan;
    let request_headers = request.headers().clone();
    let mut unsent = Some(request);
    let computed_here = AtomicBool::new(false);
    let (slot, handler, computing) = (&mut unsent, &mut inner, &computed_here);
    let layer = &*settings;
    let previous = stale.as_ref();
    let headers = &request_headers;
    let compute = move || {
        computing.store(true, Ordering::Relaxed);
        let request = slot.take();
        async move {
            let mut request = request.expect("the read path computes at most once");
            if let Some(previous) = previous {
                make_conditional(&mut request, previous);
            }
            let response = handler.call(request).await.map_err(Pass::Error)?;
            if response.status() == StatusCode::NOT_MODIFIED
                && let Some(previous) = previous
            {
                let (parts, _) = response.into_parts();
                return updated(layer, previous, &parts.headers, now(), may_store)
                    .map_err(Pass::Unstored);
            }
            if !may_store {
                return Err(Pass::Response(response.map(ResponseBody::inner)));
            }
            store_shared(layer, response, now(), headers).await
        }
    };
    let sharing = support::Sharing {
        passes: &|pass: &Pass<ResBody, S::Error>| !pass.is_error(),
        share: &|_| None,
        unshare: &|_| None,
    };
    // The read path's own TTL is only a fallback: every stored response
    // carries the retention its headers chose.
    let ttl = settings.shared.keep_stale;
    let result = if replace {
        support::refresh_served_sharing::<StoredResponse, Pass<ResBody, S::Error>, _, _>(
            &settings.cache,
            &key,
            ttl,
            &tags,
            &sharing,
            compute,
        )
        .await
    } else {
        support::cached_served_sharing::<StoredResponse, Pass<ResBody, S::Error>, _, _>(
            &settings.cache,
            &key,
            ttl,
            &tags,
            &sharing,
            compute,
        )
        .await
    };
    let computed = computed_here.load(Ordering::Relaxed);
    match result {
        Ok(served) => {
            if !computed && !varies_alike(&served.value, &request_headers) {
                // Another request's variant: this one asks the origin.
                if let Some(request) = unsent.take() {
                    return pass(inner, request, "MISS").await;
                }
            }
            let label = if computed { "MISS" } else { "HIT" };
            Ok(respond_shared(
                &served.value,
                now(),
                label,
                &request_headers,
                true,
            ))
        }
        // The origin could not be reached (the inner service failed, no
        // response at all): a stale copy may answer unless its headers
        // forbid stale use (RFC 9111 §4.2.4, "disconnected").
        Err((Pass::Error(err), _)) => {
            match &stale {
                Some(stale) if !stale.shared.unwrap_or_default().stale_forbidden => Ok(
                    respond_shared(stale, now(), "STALE", &request_headers, true),
                ),
                _ => Err(err),
            }
        }
        Err((failure, _)) if failure.is_error() => match &stale {
            Some(stale)
                if freshness::may_answer_error(
                    &stale.shared.unwrap_or_default(),
                    stale
                        .shared
                        .unwrap_or_default()
                        .age_ms(stale.stored_at_ms, now()),
                    directives,
                ) =>
            {
                Ok(respond_shared(
                    stale,
                    now(),
                    "STALE",
                    &request_headers,
                    true,
                ))
            }
            _ => answer_failure(failure, now(), &request_headers),
        },
        Err((Pass::Unstored(response), _)) => Ok(respond_shared(
            &response,
            now(),
            "MISS",
            &request_headers,
            true,
        )),
        Err((failure, _)) => answer_failure(failure, now(), &request_headers),
    }
}

fn answer_failure<B, E>(
    failure: Pass<B, E>,
    now_ms: u64,
    request_headers: &HeaderMap,
) -> Result<Response<ResponseBody<B>>, E> {
    match failure {
        Pass::Response(response) => Ok(x_cache(response, "MISS")),
        Pass::Failure(stored) | Pass::Unstored(stored) => {
            Ok(respond(&stored, now_ms, "MISS", request_headers, true))
        }
        Pass::Error(err) => Err(err),
    }
}

/// The stored response, with the request's own preconditions applied.
fn respond_shared<B>(
    stored: &StoredResponse,
    now_ms: u64,
    label: &'static str,
    request_headers: &HeaderMap,
    with_body: bool,
) -> Response<ResponseBody<B>> {
    let mut response = respond(stored, now_ms, label, request_headers, with_body);
    if let Some(lifetime) = stored.shared {
        // The age to the millisecond, not from the stored second.
        let age = lifetime.age_ms(stored.stored_at_ms, now_ms) / 1000;
        response
            .headers_mut()
            .insert(header::AGE, HeaderValue::from(age));
    }
    if response.status() != StatusCode::NOT_MODIFIED
        && (200..300).contains(&stored.status)
        && !request_headers.contains_key(header::IF_NONE_MATCH)
        && not_modified_since(stored, request_headers)
    {
        let mut not_modified = stored.to_response(now_ms, label, true);
        if let Some(lifetime) = stored.shared {
            let age = lifetime.age_ms(stored.stored_at_ms, now_ms) / 1000;
            not_modified
                .headers_mut()
                .insert(header::AGE, HeaderValue::from(age));
        }
        return not_modified.map(|_| ResponseBody::empty());
    }
    response
}

/// `If-Modified-Since` at or after the stored `Last-Modified` (RFC 9110
/// §13.1.3).
fn not_modified_since(stored: &StoredResponse, request_headers: &HeaderMap) -> bool {
    let date = |value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let Some(since) = request_headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| date(v.as_bytes()))
    else {
        return false;
    };
    stored
        .header("last-modified")
        .and_then(|v| date(v))
        .is_some_and(|modified| modified <= since)
}

/// The request's `Cache-Control`, with `Pragma: no-cache` counting as
/// `no-cache` when there is no `Cache-Control` (RFC 9111 §5.4).
fn request_directives(headers: &HeaderMap) -> CacheControl {
    let mut directives = CacheControl::parse(headers);
    if !headers.contains_key(header::CACHE_CONTROL) && fields::pragma_forbids_storing(headers) {
        directives.no_cache = true;
    }
    directives
}

/// Whether `headers` send what the request that fetched `stored` sent
/// for every header its `Vary` names (RFC 9111 §4.1).
fn varies_alike(stored: &StoredResponse, headers: &HeaderMap) -> bool {
    stored
        .vary
        .iter()
        .all(|(name, value)| combined(headers, name).as_ref() == value.as_ref())
}

/// Every value of `name`, joined with `, `; `None` when absent.
fn combined(headers: &HeaderMap, name: &str) -> Option<Bytes> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut joined = first.as_bytes().to_vec();
    for value in values {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    Some(Bytes::from(joined))
}

/// Asks the origin whether `previous` is still good: its `ETag` in
/// `If-None-Match`, its `Last-Modified` in `If-Modified-Since`.
fn make_conditional<B>(request: &mut Request<B>, previous: &StoredResponse) {
    let headers = request.headers_mut();
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ] {
        headers.remove(name);
    }
    if let Some(etag) = previous
        .header("etag")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        headers.insert(header::IF_NONE_MATCH, etag);
    }
    if let Some(modified) = previous
        .header("last-modified")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        headers.insert(header::IF_MODIFIED_SINCE, modified);
    }
}

/// `previous` refreshed by a 304's headers (RFC 9111 §4.3.4): each field
/// the 304 carries replaces the stored one, but for the body's length.
/// `Err` when the refreshed response may not be stored (it still answers
/// its own request).
fn updated(
    settings: &Settings,
    previous: &StoredResponse,
    fresh_headers: &HeaderMap,
    now_ms: u64,
    may_store: bool,
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
    let mut parts = Response::new(()).into_parts().0;
    parts.status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::OK);
    parts.headers = headers;
    let mut merged = StoredResponse::new(&parts, previous.body.clone(), now_ms);
    merged.vary.clone_from(&previous.vary);
    match freshness::lifetime(&parts, &settings.shared, freshness::at(now_ms)) {
        Ok(lifetime) if may_store => {
            merged.shared = Some(lifetime);
            Ok(Computed {
                ttl: Some(lifetime.retention(&settings.shared)),
                value: merged,
            })
        }
        _ => Err(Box::new(merged)),
    }
}

/// Decides on a response from the origin: stored (buffered) or passed on.
async fn store_shared<B, E>(
    settings: &Settings,
    response: Response<B>,
    now_ms: u64,
    request_headers: &HeaderMap,
) -> Result<Computed<StoredResponse>, Pass<B, E>>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let (parts, body) = response.into_parts();
    let lifetime = match freshness::lifetime(&parts, &settings.shared, freshness::at(now_ms)) {
        Ok(lifetime) => lifetime,
        Err(skip) => {
            tracing::trace!(?skip, "larder-http: response not stored");
            return Err(Pass::Response(Response::from_parts(
                parts,
                ResponseBody::inner(body),
            )));
        }
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(body.size_hint().exact());
    let declared = match declared {
        Some(len) if len <= settings.max_body_bytes => len,
        _ => {
            return Err(Pass::Response(Response::from_parts(
                parts,
                ResponseBody::inner(body),
            )));
        }
    };
    let bytes = match buffer(body, declared).await {
        Ok(bytes) => bytes,
        Err(reason) => return Err(bad_gateway(&reason)),
    };
    let mut stored = StoredResponse::new(&parts, bytes, now_ms);
    stored.shared = Some(lifetime);
    stored.vary = fields::vary(&parts.headers)
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = combined(request_headers, &name);
            (name, value)
        })
        .collect();
    Ok(Computed {
        ttl: Some(lifetime.retention(&settings.shared)),
        value: stored,
    })
}

fn gateway_timeout<B>() -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    x_cache(response, "MISS")
}

/// After a non-error answer to an unsafe method, the target's stored
/// responses go, and so do those of `Location` and `Content-Location`
/// when they name a path on the same host (RFC 9111 §4.4).
pub(crate) fn invalidated_paths(
    request: &http::request::Parts,
    response_headers: &HeaderMap,
) -> Vec<String> {
    let mut paths = vec![key::canonical_path(key::request_path(request))];
    let host = request
        .uri
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase())
        .or_else(|| {
            request
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_ascii_lowercase)
        });
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        for value in response_headers.get_all(name) {
            let Ok(value) = value.to_str() else { continue };
            let Ok(uri) = value.parse::<http::Uri>() else {
                continue;
            };
            let same_host = match uri.authority() {
                None => true,
                Some(authority) => {
                    host.as_deref() == Some(&authority.as_str().to_ascii_lowercase())
                }
            };
            if same_host && uri.path().starts_with('/') {
                paths.push(key::canonical_path(uri.path()));
            }
        }
    }
    paths.dedup();
    paths
}
