//! Caching whole responses, the Django original's
//! `@cache_api_response(timeout=900,
//! vary_on_query_params=['category', 'sort'])`, as a tower layer.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use larder_http::ResponseCacheLayer;
//!
//! async fn products() -> &'static str { "[...]" }
//!
//! let cache = larder::Cache::in_memory();
//! let app: Router = Router::new().route(
//!     "/api/products",
//!     get(products).layer(
//!         ResponseCacheLayer::new(cache)
//!             .namespace("products")
//!             .ttl(Duration::from_secs(900))
//!             .vary_on_query(["category", "sort"]),
//!     ),
//! );
//! ```
//!
//! Two modes ([`CacheMode`]): *application mode* (the default, above) takes
//! the route's TTL and lets the handler's headers only shorten it or forbid
//! storing; *shared-cache mode* (`.mode(CacheMode::Shared)`, for a reverse
//! proxy such as `examples/reverse_proxy/`) takes freshness from the
//! origin's headers and revalidates stale responses. The rest of this page
//! holds for both; [`CacheMode`] has the differences and how shared-cache
//! mode fares against the HTTP caching test suite.
//!
//! What is stored follows RFC 9111 for a shared cache ([`policy`]); what a
//! request is keyed on is the method, the whole path the client sent (in
//! its canonical spelling; other spellings bypass), allow-listed query
//! parameters, declared headers, the host and scheme (the target's, which
//! must agree with `Host`), the forwarding headers (`X-Forwarded-Host`,
//! `X-Forwarded-Proto` and kin, declared or not) and — for per-user routes —
//! the authenticated identity ([`key`]). Hits carry `X-Cache: HIT`, a
//! recomputed `Age` and a strong `ETag`; `If-None-Match` gets a 304. Misses
//! go through Larder's read path, so concurrent identical misses call the
//! handler once, and a failing Redis means the handler answers.
//!
//! # Failing closed
//!
//! The layer stores one caller's answer and hands it to others, so a wrong
//! key is a data leak. Every input a handler can read is in the key, or the
//! request bypasses the cache; what the layer cannot read is not stored:
//!
//! - **host**: a target's authority (absolute-form, HTTP/2 `:authority`)
//!   and a `Host` header that differ, or several `Host`s, bypass; the host
//!   is keyed as sent, and so is the scheme ([`key`](key#the-host));
//! - **forwarding headers**: [`key::FORWARDING_HEADERS`] and the ones added
//!   with [`add_forwarding_headers`](ResponseCacheLayer::add_forwarding_headers)
//!   are keyed; client-address headers (`X-Forwarded-For`, `X-Real-IP`, …)
//!   are not, on purpose;
//! - **credentials**: a request carrying any of
//!   [`policy::CREDENTIAL_HEADERS`] (configurable with
//!   [`credential_headers`](ResponseCacheLayer::credential_headers)) bypasses
//!   unless the route keys on the identity and finds one;
//! - **bodies**: a `GET` or `HEAD` with a body (`Content-Length` other than
//!   `0` or unreadable, any `Transfer-Encoding`, a body not known to be
//!   empty) bypasses;
//! - **paths**: `.`/`..` segments (in any `%2e` spelling), empty segments
//!   (`//`), path parameters (any `;`, or `%3B`: a servlet container cuts
//!   them, so `/static/..;/admin` is `/admin` to it), `%2F` and `%5C`
//!   bypass; `invalidate_path` resolves them ([`key::is_canonical`]);
//! - **response headers**: `private`, `no-store` or `no-cache` as a token
//!   anywhere in `Cache-Control`, `Pragma: no-cache`, or a `Cache-Control`,
//!   `Pragma`, `Vary`, `Age` or `Date` that is not strictly what RFC 9110/
//!   9111 write (`private; max-age=60`) is not stored ([`policy`]);
//! - **request `no-store`**: the response to a request saying
//!   `Cache-Control: no-store` is never stored (it may be answered from the
//!   cache).
//!
//! # Per-user responses
//!
//! The Django original cached its user dashboard with
//! `vary_on_query_params=['user_id']`: the key came from a parameter the
//! caller chooses, so anyone could read anyone's cached dashboard by asking
//! for `?user_id=<victim>`. Here a per-user route keys on the identity the
//! authentication middleware established, never on what the request says:
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use larder_http::ResponseCacheLayer;
//!
//! /// Set by the authentication middleware once the token checks out.
//! #[derive(Clone)]
//! struct UserId(u64);
//!
//! async fn dashboard(Extension(user): Extension<UserId>) -> String {
//!     format!("dashboard of user {}", user.0)
//! }
//!
//! let cache = larder::Cache::in_memory();
//! let app: Router = Router::new().route(
//!     "/api/dashboard",
//!     get(dashboard).layer(
//!         ResponseCacheLayer::new(cache)
//!             .namespace("dashboard")
//!             .vary_on(|parts| parts.extensions.get::<UserId>().map(|u| u.0.to_string())),
//!     ),
//! );
//! ```
//!
//! Requests carrying a credential (`Authorization`, a cookie, an API key or
//! token header, an authenticating proxy's identity header: see
//! [`policy::CREDENTIAL_HEADERS`]) are cached only on such a route, and only
//! when the closure finds an identity; the key holds the identity, never the
//! token.
//!
//! # `X-Cache`
//!
//! Every response says what the cache did in `X-Cache`:
//!
//! | `X-Cache` | meaning |
//! |---|---|
//! | `HIT` | answered from the cache; the handler was not called |
//! | `MISS` | the handler answered (and the response was stored if it may be) |
//! | `BYPASS` | the request may not be cached (a write, credentials without an identity, an unlisted query parameter, a body, a `Host` that disagrees with the target, a non-canonical path, …): the handler answered |
//! | `STALE` | answered with an expired response (see below) |
//!
//! # Stale responses
//!
//! Stale responses follow the cache's own settings. With
//! [`stale_grace`](larder::config::ConfigBuilder::stale_grace), a response
//! past its TTL is served `STALE` to every request while one of them (by
//! lease, across processes) calls the handler and stores the new one. With
//! [`stale_if_error`](larder::config::ConfigBuilder::stale_if_error), a
//! handler that fails (its error, or a 5xx) inside the grace period is
//! answered with the expired response instead; any other response the
//! handler gives is passed on as it is. A response that says
//! `must-revalidate`, `proxy-revalidate` or `s-maxage` is never served
//! stale (RFC 9111 §4.2.4).

mod body;
mod buffer;
mod fields;
mod freshness;
mod future;
pub mod key;
mod layer;
mod mode;
mod path;
mod pending;
pub mod policy;
mod revalidation;
mod service;
mod settings;
mod shared;
mod stored;
mod write;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::ResponseCacheLayer;
pub use mode::CacheMode;
pub use service::ResponseCache;
pub use settings::IdentityFn;
