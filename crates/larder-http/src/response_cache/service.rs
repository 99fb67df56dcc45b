use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use larder::__private::{self as support, Computed};
use tower_service::Service;

use super::CacheMode;
use super::body::ResponseBody;
use super::buffer::{self, Read};
use super::future::{ResponseFuture, x_cache};
use super::key::{self, Query, Variant};
use super::pending::Route;
use super::policy;
use super::settings::Settings;
use super::stored::StoredResponse;

/// The service [`ResponseCacheLayer`](super::ResponseCacheLayer) wraps
/// around an inner service. Keeps the inner service's error type: a cache
/// failure falls through to the inner service.
///
/// The request body must implement `Default` (axum's `Body` does; wrap a
/// `hyper::body::Incoming` service with `map_request` into one that does):
/// shared-cache mode sometimes asks the origin a second time for one
/// request (a 304 naming another representation than the stored one is
/// followed by the same request without conditions), and only a `GET`
/// known to have no body gets there, so the second request's body is the
/// empty default.
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("namespace", &self.settings.namespace)
            .finish_non_exhaustive()
    }
}

impl<S> ResponseCache<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }
}

/// Why a computed response was not stored: it is passed on as it is.
pub(crate) enum Pass<B, E> {
    Response(Response<ResponseBody<B>>),
    /// A 5xx whose headers would let it be stored but for its status,
    /// buffered: it also answers the requests that waited on it.
    Failure(Box<StoredResponse>),
    /// A buffered response that may not be stored (a revalidated one whose
    /// new headers forbid it): it answers its own request only.
    Unstored(Box<StoredResponse>),
    Error(E),
    /// Shared-cache mode, for the requests that waited: the origin could
    /// not be reached (the inner service failed). Each answers with its
    /// stale copy if it may, or asks the origin itself.
    Unreachable,
    /// Shared-cache mode, for the requests that waited: the origin answered
    /// with a 5xx that may not answer them (marked `private`, with a
    /// `Vary`, too large, of unknown length). Each answers with its stale
    /// copy if `stale-if-error` lets it, or asks the origin itself.
    OriginFailed,
}

/// A failure as it travels to the requests that waited on it.
#[derive(serde::Serialize, serde::Deserialize)]
enum SharedFailure {
    Response(StoredResponse),
    Unreachable,
    OriginFailed,
}

/// Encodes a failure for the requests that waited on it: a buffered 5xx,
/// and — if `errors` — the inner service's failing (as
/// [`Pass::Unreachable`]) and the fact of any other 5xx (as
/// [`Pass::OriginFailed`]: the waiters need not its body to answer with
/// their stale copies, only to know the origin failed).
pub(crate) fn share<B, E>(pass: &Pass<B, E>, errors: bool) -> Option<Bytes> {
    let shared = match pass {
        Pass::Failure(stored) => SharedFailure::Response(StoredResponse::clone(stored)),
        Pass::Error(_) | Pass::Unreachable if errors => SharedFailure::Unreachable,
        Pass::Response(_) | Pass::Unstored(_) | Pass::OriginFailed if errors && pass.is_error() => {
            SharedFailure::OriginFailed
        }
        _ => return None,
    };
    rmp_serde::to_vec_named(&shared).ok().map(Bytes::from)
}

/// Rebuilds a failure [`share`] encoded; `None` for foreign bytes (the
/// waiter then asks the origin itself).
pub(crate) fn unshare<B, E>(bytes: &Bytes) -> Option<Pass<B, E>> {
    Some(match rmp_serde::from_slice(bytes).ok()? {
        SharedFailure::Response(stored) => Pass::Failure(Box::new(stored)),
        SharedFailure::Unreachable => Pass::Unreachable,
        SharedFailure::OriginFailed => Pass::OriginFailed,
    })
}

/// The largest failure body that is buffered to answer waiting requests;
/// a longer one goes to its own request only, and the waiters call the
/// handler themselves (at once, in parallel).
pub(crate) const SHARED_FAILURE_MAX_BYTES: u64 = 64 * 1024;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResponseCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: fmt::Display + Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let settings = &self.settings;
        let shared = settings.mode == CacheMode::Shared;
        if super::write::invalidates(settings, &request) {
            return ResponseFuture::cache(Box::pin(super::write::write(
                settings,
                &mut self.inner,
                request,
            )));
        }
        let (parts, body) = request.into_parts();
        let body_hint = if body.is_end_stream() {
            http_body::SizeHint::with_exact(0)
        } else {
            body.size_hint()
        };
        let rules = policy::RequestRules {
            varies_on_identity: settings.identity.is_some(),
            honour_no_cache: settings.honour_request_no_cache && !shared,
            credentials: &settings.credentials,
        };
        if let Err(skip) = policy::check_request(&parts, &body_hint, &rules) {
            tracing::trace!(?skip, "larder-http: request bypasses the cache");
            let request = Request::from_parts(parts, body);
            return ResponseFuture::inner(self.inner.call(request), "BYPASS");
        }
        let mut parts = parts;
        let key = match request_key(settings, &parts) {
            Some(Keyed {
                key,
                stripped: Some(pairs),
            }) if strip_query(&mut parts, &pairs) => key,
            Some(Keyed {
                key,
                stripped: None,
            }) => key,
            _ => {
                let request = Request::from_parts(parts, body);
                return ResponseFuture::inner(self.inner.call(request), "BYPASS");
            }
        };
        let may_store = policy::request_allows_storing(&parts);
        // The ready service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(settings);
        let request = Request::from_parts(parts, body);
        if shared {
            return ResponseFuture::cache(Box::pin(super::shared::through_shared_cache(
                settings, inner, key, request, may_store,
            )));
        }
        ResponseFuture::cache(Box::pin(through_cache(
            settings, inner, key, request, may_store,
        )))
    }
}

pub(crate) async fn pass<S, ReqBody, ResBody>(
    mut inner: S,
    request: Request<ReqBody>,
    label: &'static str,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let response = inner.call(request).await?;
    Ok(x_cache(response.map(ResponseBody::inner), label))
}

/// A GET or HEAD that may be answered from the cache; what the handler
/// answers it is stored only if `may_store`.
async fn through_cache<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    mut inner: S,
    key: String,
    request: Request<ReqBody>,
    may_store: bool,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: fmt::Display + Send,
{
    let now = settings.clock;
    // A precondition or range only the handler evaluates shapes its
    // answer (a 412, a 416): that answer is this request's own.
    let may_store = may_store && !policy::carries_unkeyed_conditions(request.headers());
    let mut validators = http::HeaderMap::new();
    for tag in request.headers().get_all(header::IF_NONE_MATCH) {
        validators.append(header::IF_NONE_MATCH, tag.clone());
    }
    // Every variant of a path joins the path's tag: a write to the path
    // makes them all misses at once, and drops them at a cost in proportion
    // to their number.
    let tags = [key::path_tag(&key).to_owned()];
    if settings.pending.contains(&tags[0]) {
        // A write's invalidation of this path is still owed: what is
        // stored may predate it.
        return pass(inner, request, "BYPASS").await;
    }
    if request.method() == Method::HEAD {
        // Answered from a stored GET; never written into it.
        return match support::get_tagged::<StoredResponse>(&settings.cache, &key, &tags).await {
            Ok(Some(stored)) => Ok(respond(&stored, now(), "HIT", &validators, false)),
            _ => pass(inner, request, "MISS").await,
        };
    }
    let cache = &settings.cache;
    // The request goes to the handler only if the read path computes; it
    // is taken back when a stale copy may not be served.
    let mut unsent = Some(request);
    let computed_here = AtomicBool::new(false);
    // Borrowed outside the closure so that the borrows move into its future.
    let (slot, handler, computing) = (&mut unsent, &mut inner, &computed_here);
    let layer = &*settings;
    let compute = move || {
        computing.store(true, Ordering::Relaxed);
        let request = slot.take();
        async move {
            let request = request.expect("the read path computes at most once");
            let response = handler.call(request).await.map_err(Pass::Error)?;
            if !may_store {
                // The request said `no-store` (RFC 9111 §5.2.1.5).
                return Err(Pass::Response(response.map(ResponseBody::inner)));
            }
            store_or_pass(layer, response, now()).await
        }
    };
    // An unstorable response is not a failure: requests waiting on it go to
    // the handler at once. A failure reaches them too, at once: a buffered
    // 5xx as it is, anything else by a call of their own.
    let share = |pass: &Pass<ResBody, S::Error>| share(pass, false);
    let unshare = |bytes: &Bytes| unshare(bytes);
    let sharing = support::Sharing {
        passes: &|pass: &Pass<ResBody, S::Error>| !pass.is_error(),
        share: &share,
        unshare: &unshare,
    };
    let result = support::cached_served_sharing::<StoredResponse, Pass<ResBody, S::Error>, _, _>(
        cache,
        &key,
        settings.ttl,
        settings.local,
        &tags,
        &sharing,
        compute,
    )
    .await;
    let stale_if_error = cache.config().stale_if_error();
    match result {
        Ok(served) if served.stale && served.value.stale_forbidden => match unsent.take() {
            // `must-revalidate` and kin: past its TTL, only the handler answers.
            Some(request) => pass(inner, request, "MISS").await,
            None => Ok(respond(&served.value, now(), "MISS", &validators, true)),
        },
        Ok(served) => {
            let label = if served.stale {
                "STALE"
            } else if computed_here.load(Ordering::Relaxed) {
                "MISS"
            } else {
                "HIT"
            };
            Ok(respond(&served.value, now(), label, &validators, true))
        }
        // Stale-if-error: a handler error or a 5xx is answered with the
        // expired copy; any other unstored response is the answer.
        Err((failure, Some(stale)))
            if stale_if_error && !stale.stale_forbidden && failure.is_error() =>
        {
            support::count_stale_serve(cache, &key);
            tracing::debug!(
                key,
                "larder-http: handler failed; serving the stale response"
            );
            Ok(respond(&stale, now(), "STALE", &validators, true))
        }
        Err((Pass::Response(response), _)) => Ok(x_cache(response, "MISS")),
        Err((Pass::Failure(failure) | Pass::Unstored(failure), _)) => {
            Ok(respond(&failure, now(), "MISS", &validators, true))
        }
        Err((Pass::Error(err), _)) => Err(err),
        // Only shared-cache mode shares these.
        Err((Pass::Unreachable | Pass::OriginFailed, _)) => match unsent.take() {
            Some(request) => pass(inner, request, "MISS").await,
            None => Ok(gateway_error(StatusCode::BAD_GATEWAY)),
        },
    }
}

impl<B, E> Pass<B, E> {
    /// A failure a stale copy may answer: an error or a 5xx.
    pub(crate) fn is_error(&self) -> bool {
        match self {
            Pass::Response(response) => response.status().is_server_error(),
            Pass::Failure(_) | Pass::Error(_) | Pass::Unreachable | Pass::OriginFailed => true,
            Pass::Unstored(stored) => stored.status >= 500,
        }
    }
}

/// Where a cacheable request is stored.
pub(crate) struct Keyed {
    /// The key.
    pub(crate) key: String,
    /// With `strip_unlisted_query`, when parameters were dropped: the
    /// allow-listed ones, all the handler may see.
    pub(crate) stripped: Option<Vec<(String, String)>>,
}

/// The key a request is stored under, or `None` when it must bypass the
/// cache: a non-canonical path spelling, a query parameter outside the
/// allow-list, credentials on an identity route without an identity, or a
/// target and `Host` that disagree.
pub(crate) fn request_key(settings: &Settings, parts: &http::request::Parts) -> Option<Keyed> {
    if !key::is_canonical(key::request_path(parts)) {
        tracing::trace!("larder-http: non-canonical path spelling; bypassing");
        return None;
    }
    let shared = settings.mode == CacheMode::Shared;
    let (query, stripped) = match key::query(
        if shared { None } else { parts.uri.query() },
        &settings.query,
        settings.strip_unlisted_query,
    ) {
        Query::Keyed(pairs) => (pairs, false),
        Query::Stripped(pairs) => (pairs, true),
        Query::Unlisted(name) => {
            tracing::trace!(%name, "larder-http: unlisted query parameter; bypassing");
            return None;
        }
    };
    let identity = match &settings.identity {
        Some(identify) => match identify(parts) {
            Some(identity) => Some(identity),
            // Credentials but no identity: never share what they unlock.
            None if policy::credential(&parts.headers, &settings.credentials).is_some() => {
                return None;
            }
            None => None,
        },
        None => None,
    };
    let key = key::key(
        &settings.namespace,
        parts,
        &Variant {
            query: &query,
            vary: &settings.vary,
            forwarding: &settings.forwarding,
            identity: identity.as_deref(),
            raw_query: if shared {
                Some(parts.uri.query().unwrap_or_default())
            } else {
                None
            },
        },
    );
    let Some(key) = key else {
        tracing::trace!("larder-http: the target and Host disagree; bypassing");
        return None;
    };
    Some(Keyed {
        key,
        stripped: stripped.then_some(query),
    })
}

/// Rewrites the query of `parts` to `pairs` (the URI the handler sees, and
/// axum's `OriginalUri`), so that a dropped parameter cannot shape a body
/// stored for requests without it. `false` if the URI cannot be rebuilt.
fn strip_query(parts: &mut http::request::Parts, pairs: &[(String, String)]) -> bool {
    let Some(uri) = with_query(&parts.uri, pairs) else {
        return false;
    };
    parts.uri = uri;
    #[cfg(feature = "axum")]
    if let Some(original) = parts.extensions.get_mut::<axum::extract::OriginalUri>() {
        let Some(uri) = with_query(&original.0, pairs) else {
            return false;
        };
        original.0 = uri;
    }
    true
}

fn with_query(uri: &http::Uri, pairs: &[(String, String)]) -> Option<http::Uri> {
    let mut path_and_query = uri.path().to_owned();
    if !pairs.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
    }
    key::with_path_and_query(uri, &path_and_query)
}

/// Builds the response for a stored entry; `If-None-Match` → 304.
pub(crate) fn respond<B>(
    stored: &StoredResponse,
    now_ms: u64,
    label: &'static str,
    request_headers: &http::HeaderMap,
    with_body: bool,
) -> Response<ResponseBody<B>> {
    // Preconditions apply only to what would otherwise be a 2xx (RFC 9110
    // §13.1): a stored 404 is never turned into a 304.
    let not_modified = (200..300).contains(&stored.status) && stored.matches(request_headers);
    let response = stored.to_response(now_ms, label, not_modified);
    response.map(|body| match body {
        Some(body) if with_body => ResponseBody::cached(body),
        _ => ResponseBody::empty(),
    })
}

/// Decides on a computed response: stored (buffered) or passed through.
async fn store_or_pass<B, E>(
    settings: &Settings,
    response: Response<B>,
    now_ms: u64,
) -> Result<Computed<StoredResponse>, Pass<B, E>>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let (parts, body) = response.into_parts();
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
    let keyed = |name: &str| {
        settings
            .vary
            .iter()
            .any(|declared| declared.as_str().eq_ignore_ascii_case(name))
            || key::is_always_keyed(name, &settings.forwarding)
    };
    let ttl = match policy::check_response(&parts, &settings.statuses, keyed, settings.ttl, now) {
        Ok(ttl) => ttl,
        Err(skip) => {
            tracing::trace!(?skip, "larder-http: response not stored");
            return Err(failure_or_response(settings, parts, body, now_ms, keyed).await);
        }
    };
    let (parts, bytes) = body_to_store(settings, parts, body).await?;
    Ok(Computed::expiring(
        StoredResponse::new(&parts, bytes, now_ms),
        ttl,
    ))
}

/// The body of a response that may be stored, read whole within
/// `max_body_bytes`; or the response as passed on instead: as it streams
/// when it is too long, a 502 when its body broke. Only shared-cache mode
/// reads a body of unknown length ahead (an origin's chunked answer is
/// as storable as any); application mode passes it on untouched (a
/// handler that streams means it).
pub(crate) async fn body_to_store<B, E>(
    settings: &Settings,
    parts: http::response::Parts,
    body: B,
) -> Result<(http::response::Parts, Bytes), Pass<B, E>>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let read_ahead = settings.mode == CacheMode::Shared;
    match buffer::within_limit(&parts.headers, body, settings.max_body_bytes, read_ahead).await {
        Read::Whole(bytes) => Ok((parts, bytes)),
        Read::TooLong(body) => Err(Pass::Response(Response::from_parts(parts, body))),
        Read::Broken(reason) => Err(bad_gateway(&reason)),
    }
}

/// A response that is not stored, as passed on: a small failure that may
/// answer the requests waiting on it buffered ([`Pass::Failure`]), any
/// other as it is.
pub(crate) async fn failure_or_response<B, E>(
    settings: &Settings,
    parts: http::response::Parts,
    body: B,
    now_ms: u64,
    keyed: impl Fn(&str) -> bool,
) -> Pass<B, E>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let limit = settings.max_body_bytes.min(SHARED_FAILURE_MAX_BYTES);
    match buffer::declared_length(&parts.headers, &body) {
        Some(declared) if declared <= limit && policy::shareable_failure(&parts, keyed) => {
            match buffer::buffer(body, declared).await {
                Ok(bytes) => Pass::Failure(Box::new(StoredResponse::new(&parts, bytes, now_ms))),
                Err(reason) => bad_gateway(&reason),
            }
        }
        _ => Pass::Response(Response::from_parts(parts, ResponseBody::inner(body))),
    }
}

/// A body that broke while it was buffered: the request gets a 502, and
/// nothing is stored.
pub(crate) fn bad_gateway<B, E>(reason: &str) -> Pass<B, E> {
    tracing::warn!(%reason, "larder-http: response body not buffered; answering 502");
    Pass::Response(gateway_error(StatusCode::BAD_GATEWAY))
}

/// An empty `status` (502, 504) of the layer's own.
pub(crate) fn gateway_error<B>(status: StatusCode) -> Response<ResponseBody<B>> {
    let mut failed = Response::new(ResponseBody::empty());
    *failed.status_mut() = status;
    x_cache(failed, "MISS")
}

/// Drops every stored variant of `path` in this layer's namespace; if the
/// store cannot take it now, retries in the background and bypasses the
/// path meanwhile (see `pending.rs`).
pub(crate) async fn invalidate_path(settings: &Settings, path: &str) {
    let tag = key::path_prefix(&settings.namespace, path);
    if let Err(err) = support::invalidate_tag(&settings.cache, &tag).await {
        tracing::warn!(
            path,
            error = %err,
            "larder-http: invalidation after a write failed; retrying, and bypassing the path meanwhile"
        );
        settings.pending.owe(&owed_route(settings), tag);
    }
}

/// What a retry of this layer's invalidations needs: the longest a stored
/// response lives is the TTL (as capped and jittered upwards by the cache)
/// plus the stale grace, and a margin for the retry's own backoff.
pub(crate) fn owed_route(settings: &Settings) -> Route {
    let config = settings.cache.config();
    let longest = match settings.mode {
        // What the origin's headers chose and kept past freshness: the
        // retention of a stored response is capped at the cache's cap.
        CacheMode::Shared => larder::MAX_TTL,
        _ => settings.ttl.min(larder::MAX_TTL),
    };
    // `Duration::mul_f64` panics past `Duration::MAX` (`keep_stale(MAX)`).
    let stored =
        std::time::Duration::try_from_secs_f64(longest.as_secs_f64() * (1.0 + config.ttl_jitter()))
            .unwrap_or(std::time::Duration::MAX);
    Route {
        cache: settings.cache.clone(),
        pattern: key::route_pattern(&settings.namespace),
        lifetime: stored
            .saturating_add(config.stale_grace())
            .saturating_add(std::time::Duration::from_secs(5)),
    }
}
