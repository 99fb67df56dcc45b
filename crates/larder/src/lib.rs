//! Larder: a caching layer for Rust services on Redis.
//!
//! One [`Cache`] gives a service read-through caching with stampede
//! protection, model caching, invalidation by key and by pattern, and a
//! global version —
//! on Redis, or on an in-process store when no `REDIS_URL` is set.
//!
//! ```
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
//! // REDIS_URL unset: the embedded in-process store.
//! let cache = larder::Cache::from_env().await?;
//! let user: String = cache
//!     .get_or_compute("user_data:42", Duration::from_secs(3600), || async {
//!         "Ada".to_string() // an expensive database query
//!     })
//!     .await?;
//! assert_eq!(user, "Ada");
//! # Ok(()) }
//! ```
//!
//! - [`config`]: settings, from a builder or the environment.
//! - [`Cache`]: reads, writes, `get_or_compute`, invalidation.
//! - [`global`](mod@global): the global default cache and the Django original's free functions.
//! - [`key`]: the key scheme, argument digests, safe patterns.
//! - [`model`]: model caching — the [`CachedModel`](trait@model::CachedModel)
//!   trait and its derive, `cache_model`, `get_cached_model(s)`, `invalidate_model_cache`,
//!   per-model versions and related models.
//! - [`store`]: the [`Store`](store::Store) trait, [`MemoryStore`](store::MemoryStore) and [`RedisStore`](store::RedisStore).
//!
//! HTTP response caching for axum and tower services (the Django original's
//! `@cache_api_response`, and a reverse proxy's shared cache) is the
//! companion crate `larder-http` (`ResponseCacheLayer`), built on this one.
//!
//! # Metrics and tracing
//!
//! Larder records through the [`metrics`](https://docs.rs/metrics) facade;
//! install any recorder (e.g. the Prometheus exporter) to collect them.
//! Labels: `namespace` is the first `:`-separated segment of the logical key
//! (`product` for `product:1`); beyond 256 namespaces the rest share
//! `_other`, so label cardinality stays bounded whatever the keys look like.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `larder_hits_total` | counter | reads answered by the cache |
//! | `larder_misses_total` | counter | reads not answered (absent, expired, undecodable, store failure) |
//! | `larder_store_errors_total` | counter | store calls that failed or timed out (label `op`) |
//! | `larder_breaker_rejections_total` | counter | store calls skipped because the breaker is open |
//! | `larder_decode_failures_total` | counter | stored values that could not be decoded: corrupt or foreign bytes (removed) |
//! | `larder_shape_mismatches_total` | counter | intact values of another shape of the type, or of another model version or schema, e.g. from another build during a rolling deploy (misses, kept) |
//! | `larder_oversize_total` | counter | values over `max_value_bytes`, not cached |
//! | `larder_coalesced_total` | counter | misses that waited for another caller's computation |
//! | `larder_lease_wins_total` | counter | leases taken (this caller computes) |
//! | `larder_lease_losses_total` | counter | misses that found another process's lease and waited |
//! | `larder_early_refreshes_total` | counter | XFetch refreshes before expiry |
//! | `larder_stale_serves_total` | counter | values served in their grace period (refreshing, or origin failing) |
//! | `larder_fills_rejected_total` | counter | fills refused because an invalidation voided the lease |
//! | `larder_compute_seconds` | histogram | time spent in the origin on a miss |
//! | `larder_fill_seconds` | histogram | time to store a computed value |
//!
//! Misses run the origin inside a `larder.compute` span (field `key`),
//! pattern invalidations inside `larder.invalidate_pattern` (`pattern`,
//! `removed`); store failures, breaker changes and undecodable entries are
//! events. Hits create no span: they are the hot path.

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;
mod cache;
pub mod config;
mod envelope;
mod error;
mod expiring;
pub mod global;
pub mod key;
pub mod model;
mod runtime;
pub mod store;

pub use cache::{Cache, Fetched, MAX_TTL, Outcome, Tier};
pub use config::{Codec, Compression, Config, FailMode};
pub use error::{Error, ErrorKind, Result};
pub use expiring::Expiring;
pub use global::{
    bump_model_generation, cache_model, delete_cached_data, delete_many, get, get_cached_model,
    get_cached_models, get_many, get_or_compute, get_or_compute_expiring, get_or_load_model,
    get_or_revalidate, init, init_from_env, invalidate_cache_pattern, invalidate_model_cache,
    invalidate_model_cache_id, invalidate_model_cache_ids, refresh, set, set_many,
    try_get_or_compute,
};
#[cfg(feature = "macros")]
#[doc = include_str!("cached.md")]
pub use larder_macros::cached;
/// The [`CachedModel`](trait@model::CachedModel) trait and, with the `macros`
/// feature, its derive (as `serde::Serialize` is both).
pub use model::CachedModel;
pub use runtime::block_on;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
