//! Reading models: `get_cached_model`, `get_cached_models`, and the check
//! of the dependency stamps an entry was stored under.

use std::collections::HashMap;

use super::Cache;
use super::budget::Budget;
use super::read::{Entry, same_length};
use super::tiered::Keep;
use crate::Result;
use crate::envelope::now_ms;
use crate::model::{CachedModel, instance_key};
use crate::store::decimal;

impl Cache {
    /// The cached instance `id` of `M` (the Django original's
    /// `get_cached_model(Product, id)`), or `None` on a miss.
    ///
    /// Absent, expired, undecodable entries are misses, and so are entries
    /// of another [version or schema](crate::model#versions-and-schemas)
    /// of the model (kept for the build that wrote them) and entries one of
    /// whose [dependencies](crate::model#related-models) was invalidated
    /// since they were stored. On Redis, a model without related models
    /// costs one `GET`; one with related models, one script that reads the
    /// entry and the stamps it recorded (one round trip).
    /// With [`ModelOptions::enabled`](crate::model::ModelOptions::enabled)
    /// `false`, always `None`, without asking the store.
    ///
    /// ```
    /// # use larder::model::{CachedModel, ModelOptions};
    /// # #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// # struct Product { id: u64, name: String }
    /// # impl CachedModel for Product {
    /// #     type Id = u64; type Stored<'a> = &'a Self; type Loaded = Self;
    /// #     const OPTIONS: ModelOptions = ModelOptions::new("product");
    /// #     fn id(&self) -> u64 { self.id } fn stored(&self) -> &Self { self }
    /// #     fn from_loaded(p: Self) -> Self { p }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
    /// let cache = larder::Cache::in_memory();
    /// assert_eq!(cache.get_cached_model::<Product>(1).await?, None);
    /// cache.cache_model(&Product { id: 1, name: "Teapot".into() }).await?;
    /// assert_eq!(cache.get_cached_model::<Product>(1).await?.unwrap().name, "Teapot");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an invalid model
    /// prefix; in fail-closed mode, the store failure.
    pub async fn get_cached_model<M: CachedModel>(&self, id: M::Id) -> Result<Option<M>> {
        if !M::OPTIONS.enabled {
            return Ok(None);
        }
        let key = instance_key(&M::OPTIONS, &id)?;
        let physical = self.inner.keys.physical(&key);
        let local = self.model_local_ttl::<M>();
        if local.is_some()
            && let Some(model) = self.local_model::<M>(&physical)
        {
            self.count_local_hit(&key);
            return Ok(Some(model));
        }
        // Before the store is asked (see `local/`).
        let ticket = local.and_then(|_| self.local_ticket());
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let schema = const { M::OPTIONS.fingerprint() };
        let fail_open = self.fail_open();
        let entry = if M::OPTIONS.related.is_empty() {
            // No dependencies to check: a plain GET.
            let with_ttl = ticket.is_some();
            self.fetch_entry_with::<M::Loaded>(
                &key, &physical, schema, fail_open, &budget, with_ttl,
            )
            .await?
        } else {
            self.fetch_stamped_entry::<M::Loaded>(&key, &physical, schema, fail_open, &budget)
                .await?
        }
        .filter(|entry| entry.is_fresh(now));
        self.count_read(&key, entry.is_some());
        let Some(entry) = entry else {
            return Ok(None);
        };
        let keep = Keep::of_entry(&entry, self.grace_ms());
        let model = M::from_loaded(entry.value);
        if let (Some(ttl), Some(ticket)) = (local, ticket) {
            self.keep_local_model(&physical, &model, &keep, ttl, ticket);
        }
        Ok(Some(model))
    }

    /// The cached instances `ids` of `M`, in order, `None` for each miss:
    /// one `MGET` for the values, and at most one more for the stamps of
    /// all their dependencies together (none when no entry found has
    /// dependencies). Misses as in [`Cache::get_cached_model`].
    ///
    /// ```
    /// # use larder::model::{CachedModel, ModelOptions};
    /// # #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// # struct Product { id: u64, name: String }
    /// # impl CachedModel for Product {
    /// #     type Id = u64; type Stored<'a> = &'a Self; type Loaded = Self;
    /// #     const OPTIONS: ModelOptions = ModelOptions::new("product");
    /// #     fn id(&self) -> u64 { self.id } fn stored(&self) -> &Self { self }
    /// #     fn from_loaded(p: Self) -> Self { p }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
    /// let cache = larder::Cache::in_memory();
    /// cache.cache_model(&Product { id: 2, name: "Kettle".into() }).await?;
    /// let found = cache.get_cached_models::<Product>(&[1, 2]).await?;
    /// assert!(found[0].is_none());
    /// assert_eq!(found[1].as_ref().unwrap().name, "Kettle");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Cache::get_cached_model`]; an invalid id fails the whole batch.
    pub async fn get_cached_models<M: CachedModel>(&self, ids: &[M::Id]) -> Result<Vec<Option<M>>> {
        if !M::OPTIONS.enabled {
            return Ok(ids.iter().map(|_| None).collect());
        }
        let keys = ids
            .iter()
            .map(|id| instance_key(&M::OPTIONS, id))
            .collect::<Result<Vec<_>>>()?;
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let schema = const { M::OPTIONS.fingerprint() };
        let mut entries: Vec<Option<Entry<M::Loaded>>> = self
            .fetch_entries(&keys, schema, &budget)
            .await?
            .into_iter()
            .map(|entry| entry.filter(|entry| entry.is_fresh(now)))
            .collect();
        self.drop_stale_dependents(&mut entries, &budget).await?;
        Ok(keys
            .iter()
            .zip(entries)
            .map(|(key, entry)| {
                self.count_read(key, entry.is_some());
                entry.map(|entry| M::from_loaded(entry.value))
            })
            .collect())
    }

    /// Turns into `None` every entry one of whose dependency stamps no
    /// longer holds the value it was stored under: deleted by an
    /// invalidation of the dependency, or evicted. One `MGET` for all the
    /// entries' stamps; none if no entry has any. If the stamps cannot be
    /// read (fail-open), the entries with dependencies are misses: they
    /// cannot be vouched for.
    pub(super) async fn drop_stale_dependents<T>(
        &self,
        entries: &mut [Option<Entry<T>>],
        budget: &Budget,
    ) -> Result<()> {
        // Each tag once, however many entries depend on it.
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut stamp_keys = Vec::new();
        for stamp in entries.iter().flatten().flat_map(|entry| &entry.stamps) {
            if !positions.contains_key(&stamp.key) {
                positions.insert(stamp.key.clone(), stamp_keys.len());
                stamp_keys.push(self.inner.keys.tag_stamp(&stamp.key));
            }
        }
        if stamp_keys.is_empty() {
            return Ok(());
        }
        let fetched = self
            .call_in("MGET", budget, self.inner.store.mget(&stamp_keys))
            .await
            .and_then(|found| same_length(found, stamp_keys.len()));
        let current: Option<Vec<Option<u64>>> = self.absorb(fetched)?.map(|found| {
            found
                .iter()
                .map(|value| decimal(value.as_deref()?))
                .collect()
        });
        for slot in entries.iter_mut() {
            let holds = slot.as_ref().is_none_or(|entry| {
                entry.stamps.is_empty()
                    || current.as_ref().is_some_and(|current| {
                        entry
                            .stamps
                            .iter()
                            .all(|stamp| current[positions[&stamp.key]] == Some(stamp.value))
                    })
            });
            if !holds {
                *slot = None;
            }
        }
        Ok(())
    }
}
