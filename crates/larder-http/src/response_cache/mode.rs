/// Where a layer's freshness rules come from.
///
/// | | [`Application`](CacheMode::Application) (default) | [`Shared`](CacheMode::Shared) |
/// |---|---|---|
/// | for | your own handlers: the Django original's `@cache_api_response(timeout=…)` | a reverse proxy or gateway in front of origins you do not write |
/// | lifetime | the route's [`ttl`](super::ResponseCacheLayer::ttl); the response's headers can only shorten it or forbid storing | the response's `s-maxage`, `max-age`, `CDN-Cache-Control`, `Expires`, else a heuristic share of its `Last-Modified` age; nothing else is stored |
/// | statuses | the configured ones (200) | any final status with explicit freshness; the heuristically cacheable ones with `Last-Modified` |
/// | query | allow-listed parameters ([`vary_on_query`](super::ResponseCacheLayer::vary_on_query)) | the whole query string |
/// | `Vary` | only headers the route declares | any header: the request's values are stored beside the response and must match |
/// | stale entries | refetched in full (or served within the cache's stale grace) | revalidated with `If-None-Match` / `If-Modified-Since`; a 304 refreshes the stored headers |
/// | request `Cache-Control` | ignored (unless [`honour_request_no_cache`](super::ResponseCacheLayer::honour_request_no_cache)) | `max-age`, `min-fresh`, `max-stale`, `no-cache`, `only-if-cached` honoured |
///
/// In both modes the fail-closed rules of the [module docs](super) hold:
/// credentials, a body on a `GET`, a `Host` that disagrees with the
/// target, a non-canonical path or an unreadable field bypass or forbid
/// storing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheMode {
    /// The route's TTL rules; the handler's headers can only forbid or
    /// shorten.
    #[default]
    Application,
    /// RFC 9111 shared-cache semantics, driven by the origin's headers.
    Shared,
}
