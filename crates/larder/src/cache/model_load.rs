//! Loading models through the cache: `get_or_load_model`, the read-through
//! whose fill is guarded against the writes that race it.

use std::future::Future;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

use super::Cache;
use super::model_write::model_dependencies;
use super::read_through::{Computed, ReadFailure, ReadThrough, Served, Sharing};
use super::tiered::LocalForm;
use crate::model::{CachedModel, instance_key};
use crate::{Error, ErrorKind};

/// A model as the read path stores and reads it: written as its
/// [`CachedModel::stored`] view, read back through
/// [`CachedModel::from_loaded`].
struct ModelValue<M>(M);

impl<M: CachedModel> Serialize for ModelValue<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.stored().serialize(serializer)
    }
}

impl<'de, M: CachedModel> Deserialize<'de> for ModelValue<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        M::Loaded::deserialize(deserializer).map(|loaded| ModelValue(M::from_loaded(loaded)))
    }
}

/// Why a load stored nothing.
enum Unloaded<M, E> {
    /// No such row: nothing to cache; callers waiting on the load share
    /// the answer.
    Absent,
    /// A row that must not be cached under the key asked for: returned to
    /// its caller; waiters load their own.
    Unstorable(M),
    /// The load failed.
    Failed(E),
}

/// What a flight's waiters are told when the row was absent.
const ABSENT: &[u8] = b"absent";

impl Cache {
    /// The instance `id` of `M`: from the cache, or from `load` (your
    /// database query) on a miss, which is then cached — the read-through
    /// form of [`Cache::get_cached_model`] and [`Cache::cache_model`], and
    /// the one to use for reads, because its fill is **guarded**.
    ///
    /// A miss takes the entry's lease *before* `load` runs. An invalidation
    /// of the instance ([`Cache::invalidate_model_cache_id`], after its
    /// write commits) voids the lease; an invalidation of a related
    /// instance leaves a change marker behind, and once loaded, the fill
    /// reads the stamps of the row's related instances together with their
    /// markers: one set since the lease was granted means the load may
    /// have read the related row before its write. Either way the loaded
    /// row is returned to its caller but not stored. So a read that raced
    /// a write never leaves the old row cached — neither the model's own
    /// nor an embedded related one (a Product whose Category was saved
    /// meanwhile) — while writes to other instances (other categories)
    /// cost nothing. With leases turned off
    /// ([`ConfigBuilder::leases`](crate::config::ConfigBuilder::leases)),
    /// there are no guards: a load that raced a write can store the old
    /// row.
    ///
    /// Concurrent misses share one load, in this process (single-flight)
    /// and across processes (the lease), as
    /// [`Cache::try_get_or_compute`] does; an `Err` reaches its caller and
    /// releases the waiters at once, each with [`ErrorKind::Origin`]. A
    /// load that finds no row (`Ok(None)`) is not cached; the callers that
    /// waited on it get `None` too, without a query of their own. A loaded
    /// row is stored only under its own key (its `id()` must name the key
    /// asked for) and only if its entry can record all its dependencies;
    /// otherwise it is returned, not cached, and a warning logged. With the cache's
    /// [`stale_if_error`](crate::config::ConfigBuilder::stale_if_error), a
    /// failed load serves the entry in its stale grace period, if any; a
    /// row found absent never does.
    ///
    /// Costs on Redis: a hit is one round trip (as
    /// [`Cache::get_cached_model`]: a `GET`, or for a model with related
    /// models a read-only script that also reads the stamps). A miss adds the lease script, the
    /// stamps script for the loaded row's dependencies (if any), and the
    /// fill script. With
    /// [`ModelOptions::enabled`](crate::model::ModelOptions::enabled)
    /// `false`, it only calls `load`.
    ///
    /// ```
    /// use larder::CachedModel;
    ///
    /// #[derive(Debug, Clone, PartialEq, CachedModel)]
    /// #[larder(prefix = "product")]
    /// struct Product { id: u64, name: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
    /// let cache = larder::Cache::in_memory();
    /// let load = |id: u64| async move {
    ///     // Your query; `Ok(None)` when there is no such row.
    ///     Ok::<_, larder::Error>(Some(Product { id, name: "Teapot".into() }))
    /// };
    /// let first = cache.get_or_load_model::<Product, _, _, _>(1, || load(1)).await?;
    /// assert_eq!(first.unwrap().name, "Teapot");
    /// // Cached: the same entry `get_cached_model` reads.
    /// assert!(cache.get_cached_model::<Product>(1).await?.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `load`'s error (waiters: [`ErrorKind::Origin`]); converted with
    /// `E: From<larder::Error>`: [`ErrorKind::Config`] for an invalid
    /// model prefix or a dependency on a model missing from
    /// [`ModelOptions::related`](crate::model::ModelOptions::related),
    /// [`ErrorKind::TooLarge`] for dependencies an entry cannot record (as
    /// [`Cache::cache_model`]), and in fail-closed mode the store failure.
    pub async fn get_or_load_model<M, E, F, Fut>(&self, id: M::Id, load: F) -> Result<Option<M>, E>
    where
        M: CachedModel,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>, E>>,
    {
        let model = &M::OPTIONS;
        if !model.enabled {
            return load().await;
        }
        let key = instance_key(model, &id)?;
        let options = ReadThrough {
            stamped: !model.related.is_empty(),
            schema: const { M::OPTIONS.fingerprint() },
            ..self.options(model.timeout)
        };
        let compute = || async {
            let found = match load().await {
                Ok(Some(found)) => found,
                Ok(None) => return Err(Unloaded::Absent),
                Err(err) => return Err(Unloaded::Failed(err)),
            };
            // Stored only under its own key: a lookup that is not exact
            // (a case-insensitive slug, a merged id) must not cache the
            // row under a second key that its invalidation never reaches.
            if instance_key(model, &found.id()).ok().as_deref() != Some(key.as_str()) {
                tracing::warn!(
                    key,
                    "larder: the loaded model's id() names another key; returned, not cached"
                );
                return Err(Unloaded::Unstorable(found));
            }
            match model_dependencies(&key, &found) {
                Ok(depends) => Ok(Computed {
                    depends,
                    ..Computed::plain(ModelValue(found))
                }),
                // More related rows than an entry records: the row is
                // good, it just cannot be cached (as an oversized value).
                Err(err) if err.kind() == ErrorKind::TooLarge => {
                    tracing::warn!(key, error = %err, "larder: loaded model returned, not cached");
                    Err(Unloaded::Unstorable(found))
                }
                Err(err) => Err(Unloaded::Failed(E::from(err))),
            }
        };
        let unshare = |shared: &Bytes| {
            if shared.as_ref() == ABSENT {
                return Some(Unloaded::Absent);
            }
            Some(Unloaded::Failed(E::from(Error::new(
                ErrorKind::Origin,
                format!(
                    "loading `{key}` failed for a concurrent caller; \
                     this call waited for that load"
                ),
            ))))
        };
        let sharing = Sharing {
            passes: &|unloaded| matches!(unloaded, Unloaded::Unstorable(_)),
            share: &|unloaded| match unloaded {
                Unloaded::Absent => Some(Bytes::from_static(ABSENT)),
                _ => Some(Bytes::new()),
            },
            unshare: &unshare,
        };
        let form = self.model_local_ttl::<M>().map(|ttl| LocalForm {
            ttl,
            keep: |value: &ModelValue<M>| value.0.to_local(),
            take: |held| M::from_local(held).map(ModelValue),
        });
        match self
            .read_local(&key, options, form, &sharing, compute)
            .await
        {
            Ok(Served { value, .. }) => Ok(Some(value.0)),
            Err(ReadFailure::Origin {
                error: Unloaded::Absent,
                ..
            }) => Ok(None),
            Err(ReadFailure::Origin {
                error: Unloaded::Unstorable(found),
                ..
            }) => Ok(Some(found)),
            Err(ReadFailure::Origin {
                stale: Some(value), ..
            }) if self.inner.config.stale_if_error => {
                self.count_stale_serve(&key);
                tracing::debug!(key, "larder: loading failed; serving the stale model");
                Ok(Some(value.0))
            }
            Err(ReadFailure::Origin {
                error: Unloaded::Failed(err),
                ..
            }) => Err(err),
            Err(ReadFailure::Cache(err)) => Err(E::from(err)),
        }
    }
}
