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
///
/// # Shared-cache mode in detail
///
/// - **Storing**: any final status but 206 and 304 with explicit freshness
///   (`must-understand` limits that to the statuses this cache knows); the
///   heuristically cacheable ones with `Last-Modified` (10% of its age,
///   capped at a day: [`heuristic_freshness`](super::ResponseCacheLayer::heuristic_freshness));
///   a response with only a validator (or `no-cache` and a validator) is
///   stored to be revalidated on every use. `CDN-Cache-Control` (RFC 9213)
///   replaces `Cache-Control` when it is a valid dictionary
///   ([`cdn_cache_control`](super::ResponseCacheLayer::cdn_cache_control)),
///   but `private` in `Cache-Control` still forbids storing, and in it a
///   restriction counts whatever its value (`private="x-user-token"`,
///   `no-cache="x"`: as in `Cache-Control`, the whole response). What the
///   origin answers a request carrying `If-Match`, `If-Unmodified-Since`,
///   `Range` or `If-Range` (a 412, a 416, a 206) goes to that client alone,
///   never stored: none of them is keyed. A body of unknown length
///   (chunked) is read up to
///   [`max_body_bytes`](super::ResponseCacheLayer::max_body_bytes) and
///   stored if it ends within it; past it, it streams on unstored.
/// - **Keeping**: past its freshness a response is kept for
///   [`keep_stale`](super::ResponseCacheLayer::keep_stale) (an hour), or as
///   long as its `stale-while-revalidate` / `stale-if-error` say.
/// - **Reusing**: fresh by its current age (RFC 9111 §4.2.3) and by the
///   request's `max-age`, `min-fresh` and `no-cache` (or `Pragma:
///   no-cache`); stale only within the request's `max-stale`, the
///   response's `stale-while-revalidate` (the revalidation then runs in the
///   background) or `stale-if-error` (on a 5xx), or when the inner service
///   fails outright (the origin cannot be reached) — never for
///   `must-revalidate`, `proxy-revalidate` or `s-maxage` responses.
///   `only-if-cached` with nothing usable is a 504.
/// - **Revalidating**: the request goes to the inner service with
///   `If-None-Match` / `If-Modified-Since` from the stored response; a 304
///   replaces the stored header fields it carries (all but
///   `Content-Length`; a 304 without `Date` is dated when it arrived, and
///   its `Age` counts) and refreshes the freshness; a 304 naming another
///   representation than the stored one does not update it (RFC 9111
///   §4.3.4): the origin is asked once more without conditions, and that
///   answer is taken as a miss's would be; anything else replaces
///   the stored response. Misses and revalidations go through Larder's
///   read path: concurrent ones for a key call the inner service once.
/// - **Variants**: the whole query string as sent is keyed; `Vary` names
///   any request header, whose values are stored beside the response and
///   must match (another variant replaces the stored one).
///   A revalidation that finds the resource gone (404, 410) or kept from
///   shared caches (a `private` or `no-store` 200 or 304), and stores
///   nothing in its place, drops the stored copy: withdrawn content is not
///   served again, stale or not (if the store cannot take the delete, the
///   path's invalidation is owed and retried as a failed write's is, and
///   the path bypasses the cache meanwhile). Any other answer it cannot
///   store (a 400,
///   406 or 431 the request's own headers provoked, a body too large)
///   goes to its client and leaves the stored copy alone. At most 64 background revalidations
///   run at once per layer; past that the stale copy is served and a later
///   request revalidates.
/// - **Failures**: a 5xx from a revalidation, and an origin that cannot be
///   reached, reach the requests that waited on it: each answers with its
///   stale copy if it may, and none repeats the failed request at once. A
///   5xx that may not be shared (`private`, a `Vary`, over 64 KiB or of
///   unknown length) reaches them as the fact that the origin failed.
/// - **Invalidating**: a 2xx/3xx answer to any method but `GET`, `HEAD`,
///   `OPTIONS` and `TRACE` (or to a `GET` that tunnels one through
///   `X-HTTP-Method-Override` and kin) drops the stored responses of its
///   path and of a same-host `Location` / `Content-Location`; so does an
///   answer that leaves the outcome unknown (a 502 or 504, an inner service
///   that failed), even when the client has gone away meanwhile.
/// - **Clients' say**: the request's `no-cache`, `max-age=0` and
///   `min-fresh` are honoured, so any client can make a request reach the
///   origin (as with every shared cache that follows RFC 9111); the
///   concurrent ones still reach it once. Put a rate limit in front of the
///   layer where that matters, or use application mode, which ignores them.
///
/// Against the HTTP caching test suite (http-tests/cache-tests, run by
/// `scripts/cache-tests.sh`), shared-cache mode passes 150 of its 160
/// required tests — more than any cache in the suite's shipped results
/// (Traffic Server 132, httpd 131, Squid 122). The ten it does not pass
/// are choices or limits: an `Age` that is not a number makes a response
/// unstorable, and of several `Age` values the largest counts (5 tests);
/// `Set-Cookie` is never stored (2); 1xx responses are not relayed (1);
/// range requests are not served from the cache (2).
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
