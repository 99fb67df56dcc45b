//! The request flow of shared-cache mode
//! ([`CacheMode::Shared`](super::CacheMode::Shared)): a stored response is
//! reused while fresh (by the request's directives too), served stale only
//! where the response or the request allows it, and otherwise revalidated
//! with a conditional request whose 304 refreshes the stored headers.
//! Misses and revalidations go through Larder's read path, so concurrent
//! ones call the origin once.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
use super::policy;
use super::revalidation::{
    kept_from_shared_caches, make_conditional, updated, validators_conflict, withdraws,
    without_conditions,
};
use super::service::{
    Pass, bad_gateway, body_to_store, failure_or_response, gateway_error, owed_route, pass, respond,
};
use super::settings::Settings;
use super::stored::StoredResponse;

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
    ReqBody: Default + Send + 'static,
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
        // A precondition or range only the origin evaluates shapes its
        // answer: the origin answers it as sent, for this client alone.
        let may_store = may_store && !policy::carries_unkeyed_conditions(request.headers());
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
        Reuse::StaleWhileRevalidate => {
            let response = respond_shared(&stored, now(), "STALE", &validators, with_body);
            // One background revalidation per key in this process (leases
            // order them across processes); `only-if-cached` never
            // reaches the origin.
            if with_body
                && !directives.only_if_cached
                && let Some(guard) = Revalidating::begin(&settings, &key)
            {
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
                    drop(guard);
                });
            }
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
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: fmt::Display + Send,
{
    let now = settings.clock;
    let Plan { stale, replace } = plan;
    let request_headers = request.headers().clone();
    let mut unsent = Some(request);
    let computed_here = AtomicBool::new(false);
    // The revalidation's answer says the stored response is withdrawn
    // (see `withdraws`).
    let withdrawn = AtomicBool::new(false);
    let (slot, handler, computing, withdrawal) =
        (&mut unsent, &mut inner, &computed_here, &withdrawn);
    let layer = &*settings;
    let previous = stale.as_ref();
    let headers = &request_headers;
    let compute = move || {
        computing.store(true, Ordering::Relaxed);
        let request = slot.take();
        async move {
            let request = request.expect("the read path computes at most once");
            let response = match previous {
                None => handler.call(request).await.map_err(Pass::Error)?,
                Some(previous) => {
                    let (parts, body) = request.into_parts();
                    let mut conditional = Request::from_parts(parts.clone(), body);
                    make_conditional(&mut conditional, previous);
                    let response = handler.call(conditional).await.map_err(Pass::Error)?;
                    if response.status() != StatusCode::NOT_MODIFIED {
                        response
                    } else {
                        let (answer, _) = response.into_parts();
                        if !validators_conflict(previous, &answer.headers) {
                            return updated(
                                layer,
                                previous,
                                &answer.headers,
                                now(),
                                may_store,
                                headers,
                            )
                            .map_err(|merged| {
                                if kept_from_shared_caches(&merged.header_map(), &layer.shared) {
                                    withdrawal.store(true, Ordering::Relaxed);
                                }
                                Pass::Unstored(merged)
                            });
                        }
                        // A 304 naming another representation than the
                        // stored one may not update it (RFC 9111 §4.3.4),
                        // but the origin answered: it is asked once more,
                        // without conditions, and that answer is taken as
                        // a miss's would be.
                        let mut unconditional = Request::from_parts(parts, ReqBody::default());
                        without_conditions(&mut unconditional);
                        std::future::poll_fn(|cx| handler.poll_ready(cx))
                            .await
                            .map_err(Pass::Error)?;
                        let response = handler.call(unconditional).await.map_err(Pass::Error)?;
                        if response.status() == StatusCode::NOT_MODIFIED {
                            return Err(bad_gateway(
                                "the origin answered 304 to a request without conditions",
                            ));
                        }
                        response
                    }
                }
            };
            let status = response.status();
            if let Some(previous) = previous {
                if withdraws(status, response.headers(), &layer.shared) {
                    // Only if it is not stored in its place, below.
                    withdrawal.store(true, Ordering::Relaxed);
                }
                let lifetime = previous.shared.unwrap_or_default();
                let age_ms = lifetime.age_ms(previous.stored_at_ms, now());
                if is_gateway_error(status)
                    && freshness::may_answer_error(&lifetime, age_ms, directives)
                {
                    // The stale copy answers this error (`stale-if-error`),
                    // even one the origin marked cacheable; a small one is
                    // buffered, so that the requests that waited on this
                    // revalidation learn of it instead of repeating it.
                    let (parts, body) = response.into_parts();
                    return Err(failure_or_response(layer, parts, body, now(), |_| false).await);
                }
            }
            if !may_store {
                return Err(Pass::Response(response.map(ResponseBody::inner)));
            }
            store_shared(layer, response, now(), headers).await
        }
    };
    // A failure the origin gave (a small 5xx that would be storable but
    // for its status, with no `Vary`) answers the requests waiting on it
    // too; of any other 5xx, and of an origin that could not be reached,
    // they learn the fact: one failed revalidation is not repeated by each
    // of them.
    let share = |pass: &Pass<ResBody, S::Error>| super::service::share(pass, true);
    let unshare = |bytes: &Bytes| super::service::unshare(bytes);
    let sharing = support::Sharing {
        passes: &|pass: &Pass<ResBody, S::Error>| !pass.is_error(),
        share: &share,
        unshare: &unshare,
    };
    // The read path's own TTL is only a fallback: every stored response
    // carries the retention its headers chose.
    let ttl = settings.shared.keep_stale;
    let result = if replace {
        support::refresh_served_sharing::<StoredResponse, Pass<ResBody, S::Error>, _, _>(
            &settings.cache,
            &key,
            ttl,
            settings.local,
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
            settings.local,
            &tags,
            &sharing,
            compute,
        )
        .await
    };
    let computed = computed_here.load(Ordering::Relaxed);
    // (What a request saying `no-store` gets is not stored for its own
    // sake, not because the origin withdrew anything.)
    if computed
        && may_store
        && stale.is_some()
        && match &result {
            Err(_) => withdrawn.load(Ordering::Relaxed),
            Ok(_) => false,
        }
    {
        // The revalidation found the stored response withdrawn (gone, or
        // made `private`) and nothing stored in its place: it must not
        // answer anyone again, stale or not.
        // If the store cannot take that now, the path's invalidation is
        // owed as a failed write's is: retried, the path bypassed
        // meanwhile.
        if let Err(err) = settings.cache.delete_cached_data(&key).await {
            tracing::warn!(
                key,
                error = %err,
                "larder-http: a withdrawn response could not be dropped; retrying, and bypassing the path meanwhile"
            );
            let [tag] = tags;
            settings.pending.owe(&owed_route(&settings), tag);
        }
    }
    let stale_lifetime = stale.as_ref().map(|stale| {
        let lifetime = stale.shared.unwrap_or_default();
        (lifetime, lifetime.age_ms(stale.stored_at_ms, now()))
    });
    match result {
        Ok(served) if computed => Ok(respond_shared(
            &served.value,
            now(),
            "MISS",
            &request_headers,
            true,
        )),
        Ok(served) => {
            // Filled by another request, or read back from the store: it
            // answers this one only if it would have on a first lookup
            // (fresh enough for this request, this variant).
            let usable = !served.stale
                && varies_alike(&served.value, &request_headers)
                && served.value.shared.is_some_and(|lifetime| {
                    let age_ms = lifetime.age_ms(served.value.stored_at_ms, now());
                    freshness::reuse(&lifetime, age_ms, directives) == Reuse::Fresh
                });
            match unsent.take() {
                Some(request) if !usable => pass(inner, request, "MISS").await,
                _ => Ok(respond_shared(
                    &served.value,
                    now(),
                    "HIT",
                    &request_headers,
                    true,
                )),
            }
        }
        // The origin could not be reached (the inner service failed, no
        // response at all): a stale copy may answer unless its headers
        // forbid stale use (RFC 9111 §4.2.4, "disconnected") or the
        // request asked for a validated or young response.
        Err((unreachable @ (Pass::Error(_) | Pass::Unreachable), _)) => {
            match (&stale, stale_lifetime) {
                (Some(stale), Some((lifetime, _)))
                    if !lifetime.stale_forbidden
                        && !directives.no_cache
                        && directives.max_age.is_none() =>
                {
                    Ok(respond_shared(
                        stale,
                        now(),
                        "STALE",
                        &request_headers,
                        true,
                    ))
                }
                _ => match (unreachable, unsent.take()) {
                    (Pass::Error(err), _) => Err(err),
                    // Told by the request it waited on; tries for itself.
                    (_, Some(request)) => pass(inner, request, "MISS").await,
                    _ => Ok(gateway_error(StatusCode::BAD_GATEWAY)),
                },
            }
        }
        // The origin failed with a 5xx this request may not see (see
        // `Pass::OriginFailed`): its stale copy answers if it may, else it
        // asks the origin itself.
        Err((Pass::OriginFailed, _)) => match (&stale, stale_lifetime, unsent.take()) {
            (Some(stale), Some((lifetime, age_ms)), _)
                if freshness::may_answer_error(&lifetime, age_ms, directives) =>
            {
                Ok(respond_shared(
                    stale,
                    now(),
                    "STALE",
                    &request_headers,
                    true,
                ))
            }
            (_, _, Some(request)) => pass(inner, request, "MISS").await,
            _ => Ok(gateway_error(StatusCode::BAD_GATEWAY)),
        },
        Err((failure, _)) if failure.is_error() => match (&stale, stale_lifetime) {
            (Some(stale), Some((lifetime, age_ms)))
                if freshness::may_answer_error(&lifetime, age_ms, directives) =>
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

/// 500, 502, 503 and 504: what `stale-if-error` covers (RFC 5861 §4).
fn is_gateway_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The most background (`stale-while-revalidate`) revalidations a layer
/// runs at once: each holds an origin request open and a copy of the
/// stored response, and a client naming many keys must not open as many.
pub(crate) const MAX_BACKGROUND_REVALIDATIONS: usize = 64;

/// A key's background revalidation in this process; the key is free again
/// when it drops.
pub(crate) struct Revalidating {
    keys: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Revalidating {
    /// `None` when one is already running for `key`, or
    /// [`MAX_BACKGROUND_REVALIDATIONS`] for other keys (the stale copy is
    /// served; a later request revalidates).
    fn begin(settings: &Settings, key: &str) -> Option<Revalidating> {
        let keys = Arc::clone(&settings.revalidating);
        let fresh = {
            let mut running = keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            running.len() < MAX_BACKGROUND_REVALIDATIONS && running.insert(key.to_owned())
        };
        fresh.then(|| Revalidating {
            keys,
            key: key.to_owned(),
        })
    }
}

impl Drop for Revalidating {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
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
        Pass::Unreachable | Pass::OriginFailed => Ok(gateway_error(StatusCode::BAD_GATEWAY)),
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
        .all(|(name, value)| fields::combined(headers, name).as_ref() == value.as_ref())
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
            return Err(failure_or_response(settings, parts, body, now_ms, |_| false).await);
        }
    };
    let (parts, bytes) = body_to_store(settings, parts, body).await?;
    let mut stored = StoredResponse::new(&parts, bytes, now_ms);
    stored.shared = Some(lifetime);
    stored.vary = fields::varied_values(&parts.headers, request_headers);
    Ok(Computed::expiring(
        stored,
        lifetime.retention(&settings.shared),
    ))
}

fn gateway_timeout<B>() -> Response<ResponseBody<B>> {
    gateway_error(StatusCode::GATEWAY_TIMEOUT)
}

/// After a non-error answer to an unsafe method, the target's stored
/// responses go, and so do those of `Location` and `Content-Location`
/// when they name a path on the same host (RFC 9111 §4.4): resolved
/// against the request's target, scheme and port compared with their
/// defaults (`//other.example/x` is another host, `x` a sibling path).
pub(crate) fn invalidated_paths(
    request: &http::request::Parts,
    response_headers: &HeaderMap,
) -> Vec<String> {
    let target = key::request_path(request);
    let mut paths = vec![key::canonical_path(target)];
    let scheme = request
        .uri
        .scheme_str()
        .unwrap_or("http")
        .to_ascii_lowercase();
    let here = request
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .and_then(|authority| origin_of(&scheme, &authority));
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        for value in response_headers.get_all(name) {
            let Ok(value) = value.to_str() else { continue };
            let reference = value.split(['?', '#']).next().unwrap_or_default();
            let path = if let Some(rest) = reference.strip_prefix("//") {
                same_origin(&scheme, rest, here.as_ref())
            } else if let Some((other_scheme, rest)) = reference.split_once("://") {
                rest.split_once('/')
                    .map_or(Some((rest, "/")), |(authority, _)| {
                        Some((authority, &rest[authority.len()..]))
                    })
                    .and_then(|(authority, path)| {
                        let other = origin_of(&other_scheme.to_ascii_lowercase(), authority)?;
                        (here.as_ref() == Some(&other)).then(|| path.to_owned())
                    })
            } else if reference.starts_with('/') {
                Some(reference.to_owned())
            } else if reference.contains(':') || reference.is_empty() {
                // Another scheme (`mailto:`), or the target itself.
                None
            } else {
                let directory = target.rsplit_once('/').map_or("", |(dir, _)| dir);
                Some(format!("{directory}/{reference}"))
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                paths.push(key::canonical_path(&path));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// `//authority/path` resolved against this request's scheme: its path if
/// the authority is this request's.
fn same_origin(scheme: &str, rest: &str, here: Option<&(String, u16)>) -> Option<String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let other = origin_of(scheme, authority)?;
    (here == Some(&other)).then(|| path.to_owned())
}

/// A host (lowercase) and port (the scheme's default when absent), or
/// `None` when `authority` has user-info or cannot be read.
fn origin_of(scheme: &str, authority: &str) -> Option<(String, u16)> {
    if authority.contains('@') {
        return None;
    }
    let authority: http::uri::Authority = authority.parse().ok()?;
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some((
        authority.host().to_ascii_lowercase(),
        authority.port_u16().unwrap_or(default),
    ))
}
