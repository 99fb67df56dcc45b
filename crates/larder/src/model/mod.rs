//! Model caching: the Django original's `RedisCachedModel`, `cache_model`,
//! `get_cached_model` and `invalidate_model_cache`.
//!
//! A type implements [`CachedModel`] (its id, what is stored, how it is
//! rebuilt, its [`ModelOptions`]) — derived from `#[larder(...)]`
//! attributes ([`#[derive(CachedModel)]`](macro@CachedModel)) or written by
//! hand — and [`Cache`](crate::Cache) caches its instances under the
//! Django original's keys, `{prefix}:{id}`:
//!
//! - [`Cache::cache_model`](crate::Cache::cache_model) stores an instance
//!   for its model's timeout (jittered);
//! - [`Cache::get_cached_model`](crate::Cache::get_cached_model) and
//!   [`Cache::get_cached_models`](crate::Cache::get_cached_models) read
//!   one, or many in one round trip;
//! - [`Cache::invalidate_model_cache`](crate::Cache::invalidate_model_cache)
//!   and [`Cache::invalidate_model_cache_id`](crate::Cache::invalidate_model_cache_id)
//!   remove one, and make every entry that embeds it a miss;
//! - the free functions of the same names do the same on the
//!   [global cache](mod@crate::global).
//!
//! ```
//! use larder::CachedModel;
//!
//! #[derive(Debug, Clone, PartialEq, CachedModel)]
//! #[larder(prefix = "product", version = "2.0")]
//! struct Product { id: u64, name: String, price_cents: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
//! larder::init(larder::Cache::in_memory())?;
//! let teapot = Product { id: 1, name: "Teapot".into(), price_cents: 1999 };
//!
//! larder::cache_model(&teapot).await?;
//! assert_eq!(larder::get_cached_model::<Product>(1).await?, Some(teapot.clone()));
//!
//! // After the price change commits:
//! assert!(larder::invalidate_model_cache(&teapot).await?);
//! assert_eq!(larder::get_cached_model::<Product>(1).await?, None);
//!
//! // The entries are plain keys of the Django original's shape.
//! larder::cache_model(&teapot).await?;
//! assert!(larder::delete_cached_data("product:1").await?);
//! # Ok(()) }
//! ```
//!
//! # Versions and schemas
//!
//! Every entry's envelope carries [`ModelOptions::fingerprint`] (of the
//! model's `version` and `schema`). An entry with another fingerprint is a
//! miss that is left in place, so bumping `version` invalidates a model's
//! entries at once, with no scan, and during a rolling deploy the old
//! build keeps reading its own entries while the new one writes its own
//! (the last writer of a key wins the key). Plain reads
//! ([`Cache::get`](crate::Cache::get)) never take a model entry for a plain
//! value, nor a model read a plain value for a model.
//!
//! # Related models
//!
//! An instance's [`dependencies`](CachedModel::dependencies) — the related
//! instances it embeds, e.g. a Product's Category 3 — are recorded in its
//! envelope with the current stamp of each one's tag (`model:category:3`),
//! and the entry joins those tags' indexes. Invalidating Category 3
//! deletes its stamp and the entries in its index; a Product recorded under
//! the old stamp is a miss on read even if the index was lost (evicted,
//! deleted by hand), because reading an entry with dependencies checks its
//! stamps. Costs, on Redis: a hit of a model without related models is one
//! `GET`; of a model with related models, one round trip too — a
//! read-only script that gets the entry and the stamps its envelope
//! records (measured by `cargo bench -p larder --bench model_hit` against a
//! plain `GET` of the same bytes);
//! [`get_cached_models`](crate::Cache::get_cached_models) is one `MGET` for
//! the values and at most one more for all their stamps. A store that
//! cannot read both at once (a custom [`Store`](crate::store::Store))
//! takes a second round trip for the stamps.
//!
//! # Loading: the guarded read
//!
//! [`Cache::get_or_load_model`](crate::Cache::get_or_load_model) is the
//! read to use: a hit, or your query on a miss, whose result is cached
//! only if no write raced it. It takes the entry's lease *before* the
//! query runs (an invalidation of the instance voids it), and once loaded
//! it reads the stamps of the row's related instances together with their
//! change markers (an invalidation of a related instance sets one, for
//! `max(2 × lease_ttl, 30 s)`, before deleting the instance's stamp): a
//! marker set since the lease was granted means the load may have read the
//! related row before its write. A load that may have read an old row —
//! its own, or an embedded one — is returned to its caller but never
//! stored; writes to unrelated instances cost it nothing. With leases off
//! there is no guard.
//! Concurrent misses share one query, in this process and across
//! processes.
//!
//! [`cache_model`](crate::Cache::cache_model) stores what the caller
//! loaded, unguarded: if the row changed and was invalidated between the
//! caller's query and `cache_model`, the older data is stored. Use it to
//! warm, or right after a write the caller itself committed; invalidate
//! after the write commits, as the Django original does.
//!
//! # Generations
//!
//! Every entry that embeds an instance of a related model also records
//! that model's generation (the stamp of the tag `model:{prefix}`).
//! [`Cache::bump_model_generation`](crate::Cache::bump_model_generation)
//! removes all of a model's entries and deletes that stamp: every entry
//! embedding any of its instances is then a miss, with no scan and no
//! index. It is what a change feed does after missing notifications, and
//! what an operator does after a bulk write that bypassed the application.
//!
//! # On Redis Cluster
//!
//! Larder has no cluster store yet; this is what the model scheme costs
//! there, and why it was chosen. An entry, the stamps it records and the
//! change markers its fill checks hash to different slots. On a single
//! node a hit with related models is one script that reads the entry and
//! the stamps its envelope names; a cluster allows a script only keys of
//! one slot, so there a hit would be a `GET` on the entry's node and an
//! `MGET` of its stamps, which a cluster client splits per node (one round
//! trip per node holding a stamp, in parallel) — a stamp-per-dependency
//! scheme, not a set per table (cachalot) nor a many-key Lua script over
//! the whole dependency graph (cacheops, which cannot run on a cluster at
//! all). Correctness rests on the order of the steps (an invalidation sets
//! the marker before it deletes the instance's stamp; a fill reads the
//! stamps and markers after its query, then stores), not on atomicity
//! across slots.

mod cached_model;
mod key;
mod options;

pub use cached_model::{CachedModel, Dependency};
pub use key::model_key;
pub(crate) use key::{DependencyTags, check_prefix, generation_tag, instance_key, instance_tag};
#[cfg(feature = "macros")]
#[doc = include_str!("derive.md")]
pub use larder_macros::CachedModel;
pub use options::ModelOptions;

/// The most dependencies one model entry records. Each costs a stamp read
/// on every write and every read of the entry; a model embedding more
/// related rows than this should depend on what holds them instead.
pub const MAX_DEPENDENCIES: usize = 1024;

/// The longest dependency tag (`model:{prefix}:{escaped id}`) an entry
/// records: the envelope stores each tag with a 16-bit length.
pub const MAX_DEPENDENCY_TAG_BYTES: usize = u16::MAX as usize;
