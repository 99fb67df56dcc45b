use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{StatusCode, request};
use larder::Cache;
use tower_layer::Layer;

use super::CacheMode;
use super::service::ResponseCache;
use super::settings::Settings;

/// Caches the responses of the wrapped service. Configure with by-value
/// setters; see the [module docs](super) for the rules. The wrapped
/// service's request body must implement `Default`, as axum's does (see
/// [`ResponseCache`]).
#[derive(Clone)]
#[must_use]
pub struct ResponseCacheLayer {
    pub(crate) settings: Arc<Settings>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("ResponseCacheLayer")
            .field("namespace", &s.namespace)
            .field("ttl", &s.ttl)
            .field("query", &s.query)
            .field("vary", &s.vary)
            .field("varies_on_identity", &s.identity.is_some())
            .field("max_body_bytes", &s.max_body_bytes)
            .field("statuses", &s.statuses)
            .finish_non_exhaustive()
    }
}

impl ResponseCacheLayer {
    /// A layer storing in `cache`: 60 s TTL, namespace `http`, no query
    /// parameters keyed (any query bypasses), 1 MiB bodies, status 200.
    pub fn new(cache: Cache) -> Self {
        Self {
            settings: Arc::new(Settings::new(cache)),
        }
    }

    /// Where freshness comes from: the route's rules
    /// ([`CacheMode::Application`], the default) or the origin's headers
    /// ([`CacheMode::Shared`], for a reverse proxy). See [`CacheMode`].
    pub fn mode(mut self, mode: CacheMode) -> Self {
        Arc::make_mut(&mut self.settings).mode = mode;
        self
    }

    /// Shared-cache mode: the share of the time since `Last-Modified` that
    /// a response without explicit freshness stays fresh, and the most it
    /// may get (RFC 9111 §4.2.2; default 10%, one day). Only for the
    /// heuristically cacheable statuses (200, 203, 204, 300, 301, 308,
    /// 404, 405, 410, 414, 501). A fraction of 0 (or not a number) turns
    /// heuristic freshness off; above 1 counts as 1.
    pub fn heuristic_freshness(mut self, fraction: f64, cap: Duration) -> Self {
        let shared = &mut Arc::make_mut(&mut self.settings).shared;
        shared.heuristic_fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        shared.heuristic_cap = cap;
        self
    }

    /// Shared-cache mode: how long past its freshness a response is kept
    /// (default one hour), to be revalidated with its validator or to
    /// answer while the origin cannot be reached (unless its headers forbid
    /// stale use). `stale-while-revalidate` / `stale-if-error` keep it at
    /// least as long as they say.
    pub fn keep_stale(mut self, keep: Duration) -> Self {
        Arc::make_mut(&mut self.settings).shared.keep_stale = keep;
        self
    }

    /// Shared-cache mode: whether `CDN-Cache-Control` (RFC 9213) replaces
    /// `Cache-Control` for this cache (default on). `private` in
    /// `Cache-Control` forbids storing either way.
    pub fn cdn_cache_control(mut self, honour: bool) -> Self {
        Arc::make_mut(&mut self.settings).shared.cdn_cache_control = honour;
        self
    }

    /// How long responses are stored (shortened by the response's own
    /// `s-maxage`/`max-age`). The Django original's `timeout=900` is
    /// `ttl(15 min)`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.settings).ttl = ttl;
        self
    }

    /// Keeps stored responses in this process's memory for at most `ttl`
    /// (the local, or L1, tier; off by default): a hit there costs no
    /// round trip and no decode. Entries never outlive their Redis copy,
    /// and every invalidation (a write's tags, a pattern, a key) and every
    /// store from another instance reaches every instance's tier (see
    /// `larder::config::ConfigBuilder::local`). Freshness is still judged
    /// per request from when the response was stored.
    pub fn local(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.settings).local = Some(ttl);
        self
    }

    /// The key namespace of this route (for invalidation).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).namespace = namespace.into();
        self
    }

    /// The query parameters that select a variant (the Django original's
    /// `vary_on_query_params`): any iterable of string-likes, `["a", "b"]`,
    /// `&["a"]` or a `Vec<String>`. A request with any other parameter
    /// bypasses the cache unless
    /// [`strip_unlisted_query`](Self::strip_unlisted_query).
    ///
    /// ```
    /// use larder_http::ResponseCacheLayer;
    ///
    /// let cache = larder::Cache::in_memory();
    /// let _ = ResponseCacheLayer::new(cache.clone()).vary_on_query(["category", "sort"]);
    /// let _ = ResponseCacheLayer::new(cache.clone()).vary_on_query(&["category"]);
    /// let _ = ResponseCacheLayer::new(cache).vary_on_query(vec![String::from("sort")]);
    /// ```
    pub fn vary_on_query<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        Arc::make_mut(&mut self.settings).query = names
            .into_iter()
            .map(|name| name.as_ref().to_owned())
            .collect();
        self
    }

    /// Drop unlisted query parameters from the key instead of bypassing —
    /// only for handlers that ignore them.
    pub fn strip_unlisted_query(mut self, strip: bool) -> Self {
        Arc::make_mut(&mut self.settings).strip_unlisted_query = strip;
        self
    }

    /// Request headers that select a variant (e.g. `accept-language`). A
    /// response whose `Vary` names any other header is not stored.
    pub fn vary_on_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        Arc::make_mut(&mut self.settings).vary = names.into_iter().collect();
        self
    }

    /// Key on the authenticated identity that `identity` reads from the
    /// request (e.g. an extension set by the auth middleware) — never on a
    /// caller-supplied id, and never on the raw token. Requests carrying a
    /// credential header ([`credential_headers`](Self::credential_headers):
    /// `Authorization`, a cookie, an API key, …) are cached only on such
    /// routes, and only when `identity` returns one.
    pub fn vary_on<F>(mut self, identity: F) -> Self
    where
        F: Fn(&request::Parts) -> Option<String> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.settings).identity = Some(Arc::new(identity));
        self
    }

    /// Replaces the request headers that count as credentials (default
    /// [`CREDENTIAL_HEADERS`](super::policy::CREDENTIAL_HEADERS)): a request
    /// carrying any of them bypasses the cache unless the route keys on the
    /// identity ([`vary_on`](Self::vary_on)) and finds one. Replacing drops
    /// the defaults; to keep them, use
    /// [`add_credential_headers`](Self::add_credential_headers).
    pub fn credential_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        Arc::make_mut(&mut self.settings).credentials = names.into_iter().collect();
        self
    }

    /// Adds request headers that count as credentials (an API key header of
    /// your own, say) to the ones already set.
    pub fn add_credential_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        Arc::make_mut(&mut self.settings).credentials.extend(names);
        self
    }

    /// Adds request headers that every key includes, declared or not, to
    /// the built-in host and forwarding family
    /// ([`FORWARDING_HEADERS`](super::key::FORWARDING_HEADERS)): the ones
    /// your proxy uses to tell the app the host, scheme, port or path the
    /// client asked for. Each distinct value is a variant of its own.
    pub fn add_forwarding_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        Arc::make_mut(&mut self.settings).forwarding.extend(names);
        self
    }

    /// Largest body stored (default 1 MiB); larger ones pass through
    /// uncached, as they stream. A body of unknown length (streamed,
    /// chunked) passes through uncached in application mode; in
    /// shared-cache mode, if its headers let it be stored, it is read up to
    /// this size first, and stored if it ends within it.
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        Arc::make_mut(&mut self.settings).max_body_bytes = bytes;
        self
    }

    /// Statuses that may be stored (default 200). 1xx, 206, 304 and 5xx are
    /// never stored.
    pub fn cache_statuses<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator<Item = StatusCode>,
    {
        Arc::make_mut(&mut self.settings).statuses = statuses.into_iter().collect();
        self
    }

    /// Let `Cache-Control: no-cache` (or `no-store`) on a request bypass the
    /// cache (default off: clients must not be able to force origin load).
    /// Whatever this says, the response to a request saying `no-store` is
    /// never stored (RFC 9111 §5.2.1.5); it may still be answered from the
    /// cache.
    pub fn honour_request_no_cache(mut self, honour: bool) -> Self {
        Arc::make_mut(&mut self.settings).honour_request_no_cache = honour;
        self
    }

    /// After a 2xx/3xx answer to POST/PUT/PATCH/DELETE on a path, drop the
    /// stored variants of that path.
    pub fn invalidate_on_write(mut self, invalidate: bool) -> Self {
        Arc::make_mut(&mut self.settings).invalidate_on_write = invalidate;
        self
    }

    /// The clock (ms since the Unix epoch) for `Age`; for tests.
    pub fn clock(mut self, now_ms: fn() -> u64) -> Self {
        Arc::make_mut(&mut self.settings).clock = now_ms;
        self
    }
}

/// Invalidation, from anywhere that holds the layer (e.g. a write handler).
impl ResponseCacheLayer {
    /// Drops every stored response of this layer's namespace (the route);
    /// returns how many went.
    ///
    /// # Errors
    /// The store failure.
    pub async fn invalidate_route(&self) -> larder::Result<u64> {
        let pattern = super::key::route_pattern(&self.settings.namespace);
        self.settings.cache.invalidate_cache_pattern(&pattern).await
    }

    /// Drops every stored variant of `path` (all params, headers, hosts,
    /// identities); returns how many went. Any spelling of the path will
    /// do: `/users/a%62c` is `/users/abc`.
    ///
    /// Every variant of a path joins the path's tag when it is stored, so
    /// this costs in proportion to the path's variants, not to the
    /// keyspace (no `SCAN`); responses being computed meanwhile are not
    /// stored.
    ///
    /// # Errors
    /// The store failure.
    pub async fn invalidate_path(&self, path: &str) -> larder::Result<u64> {
        let path = super::key::canonical_path(path);
        let tag = super::key::path_prefix(&self.settings.namespace, &path);
        larder::__private::invalidate_tag(&self.settings.cache, &tag).await
    }

    /// Drops the one stored response that `request` would be answered with
    /// (route, allow-listed params, declared headers, host, identity);
    /// returns whether there was one.
    ///
    /// Give the request as a client sends it, `Host` included: responses
    /// are stored per host (see [`key`](super::key)), so a request without
    /// one names no stored response. Its copies for HTTP/1.1 origin-form
    /// (`GET /p`, `Host: h`) and for absolute-form or HTTP/2
    /// (`http://h/p`, `https://h/p`), stored apart since the scheme is
    /// keyed, all go. To drop every variant of a path whatever the host,
    /// use [`invalidate_path`](Self::invalidate_path).
    ///
    /// # Errors
    /// The store failure, or [`ErrorKind::Config`](larder::ErrorKind::Config)
    /// if the request's URI cannot be rebuilt with its canonical path.
    pub async fn invalidate_request<B>(&self, request: &http::Request<B>) -> larder::Result<bool> {
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = request.method().clone();
        parts.uri = request.uri().clone();
        parts.headers = request.headers().clone();
        parts.extensions = request.extensions().clone();
        // Any spelling of the path names the stored response; the path is
        // the whole one the client sent (before a nested router's cut).
        let path = super::key::canonical_path(super::key::request_path(&parts));
        let query = parts.uri.query().map(|q| format!("?{q}"));
        let path_and_query = format!("{path}{}", query.unwrap_or_default());
        parts.uri =
            super::key::with_path_and_query(&parts.uri, &path_and_query).ok_or_else(|| {
                larder::Error::new(
                    larder::ErrorKind::Config,
                    format!("cannot rebuild the request's URI with the path {path_and_query:?}"),
                )
            })?;
        #[cfg(feature = "axum")]
        parts.extensions.remove::<axum::extract::OriginalUri>();
        let Some(keyed) = super::service::request_key(&self.settings, &parts) else {
            return Ok(false);
        };
        if !self.settings.cache.config().leases() {
            // Without leases nothing stops a render that began before this
            // call from storing its page after it; the path's tag (checked
            // on every read) does: all its variants go.
            let tag = super::key::path_tag(&keyed.key).to_owned();
            larder::__private::invalidate_tag(&self.settings.cache, &tag).await?;
        }
        let mut deleted = self.settings.cache.delete_cached_data(&keyed.key).await?;
        for spelled in transport_spellings(&parts) {
            if let Some(other) = super::service::request_key(&self.settings, &spelled)
                && other.key != keyed.key
            {
                deleted |= self.settings.cache.delete_cached_data(&other.key).await?;
            }
        }
        Ok(deleted)
    }
}

/// `parts` as HTTP/1.1 origin-form with a `Host`, and in absolute-form with
/// `http` and `https`: one request to the handler, three keys (the scheme
/// is keyed). None without a host.
fn transport_spellings(parts: &request::Parts) -> Vec<request::Parts> {
    let host = match parts.uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => match parts.headers.get(http::header::HOST) {
            Some(host) => match host.to_str() {
                Ok(host) => host.to_owned(),
                Err(_) => return Vec::new(),
            },
            None => return Vec::new(),
        },
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let targets = [
        path_and_query.to_owned(),
        format!("http://{host}{path_and_query}"),
        format!("https://{host}{path_and_query}"),
    ];
    targets
        .iter()
        .filter_map(|target| {
            let mut spelled = http::Request::new(()).into_parts().0;
            spelled.method = parts.method.clone();
            spelled.uri = target.parse().ok()?;
            spelled.headers = parts.headers.clone();
            spelled.extensions = parts.extensions.clone();
            let host = http::HeaderValue::from_str(&host).ok()?;
            spelled.headers.insert(http::header::HOST, host);
            Some(spelled)
        })
        .collect()
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache::new(inner, Arc::clone(&self.settings))
    }
}
