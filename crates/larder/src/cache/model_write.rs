//! Writing and invalidating models: `cache_model`,
//! `invalidate_model_cache`, `invalidate_model_cache_id`.

use std::time::Duration;

use super::Cache;
use super::budget::Budget;
use crate::envelope::Stamp;
use crate::store::{Granted, MARKERS_LAST};

use crate::model::{
    CachedModel, DependencyTags, MAX_DEPENDENCIES, MAX_DEPENDENCY_TAG_BYTES, check_prefix,
    generation_tag, instance_key, instance_tag,
};
use crate::{Error, ErrorKind, Result};

/// Ids per round trip of [`Cache::invalidate_model_cache_ids`].
const INVALIDATION_BATCH: usize = 1000;

/// The checked tags of `model`'s dependencies.
pub(super) fn model_dependencies<M: CachedModel>(key: &str, model: &M) -> Result<DependencyTags> {
    let tags = DependencyTags::of(&M::OPTIONS, &model.dependencies())?;
    check_dependencies(key, &tags.indexed)?;
    Ok(tags)
}

/// Refuses dependencies the envelope could not record whole: silently
/// dropping one would let its invalidation miss the entry.
fn check_dependencies(key: &str, tags: &[String]) -> Result<()> {
    if tags.len() > MAX_DEPENDENCIES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "`{key}` names {} dependencies, over the {MAX_DEPENDENCIES} one entry records; \
                 not cached (depend on the row that holds them instead)",
                tags.len()
            ),
        ));
    }
    if let Some(tag) = tags.iter().find(|tag| tag.len() > MAX_DEPENDENCY_TAG_BYTES) {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "`{key}` depends on an id of {} bytes, over the {MAX_DEPENDENCY_TAG_BYTES} \
                 an entry records; not cached",
                tag.len()
            ),
        ));
    }
    Ok(())
}

impl Cache {
    /// Stores `model` under `{prefix}:{id}` for its model's
    /// [`timeout`](crate::model::ModelOptions::timeout), jittered (the
    /// Django original's `cache_model(product)`). Like [`Cache::set`], the
    /// write voids the key's lease, so no computation that began before it
    /// fills over it.
    ///
    /// With [dependencies](crate::model#related-models), the current stamp
    /// of each one's tag is read first (one round trip, creating missing
    /// stamps) and recorded in the envelope, and the entry joins the tags'
    /// indexes; without, the write is one round trip. It stores what the
    /// caller loaded — see [what this does not guard
    /// yet](crate::model#what-this-does-not-guard-yet). With
    /// [`ModelOptions::enabled`](crate::model::ModelOptions::enabled)
    /// `false`, does nothing.
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
    /// cache.cache_model(&Product { id: 1, name: "Teapot".into() }).await?;
    /// assert!(cache.delete_cached_data("product:1").await?); // the Django original's key
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid model prefix or a dependency on
    /// a model missing from [`ModelOptions::related`](crate::model::ModelOptions::related);
    /// [`ErrorKind::Encode`] and [`ErrorKind::TooLarge`] as [`Cache::set`],
    /// and [`ErrorKind::TooLarge`] for more than [`MAX_DEPENDENCIES`](crate::model::MAX_DEPENDENCIES)
    /// dependencies or one whose tag is over [`MAX_DEPENDENCY_TAG_BYTES`](crate::model::MAX_DEPENDENCY_TAG_BYTES)
    /// (nothing is written: the entry could not record them all); in fail-closed mode, the store failure. In
    /// fail-open mode a store failure is counted and the entry not written.
    pub async fn cache_model<M: CachedModel>(&self, model: &M) -> Result<()> {
        let options = &M::OPTIONS;
        if !options.enabled {
            return Ok(());
        }
        let key = instance_key(options, &model.id())?;
        let tags = model_dependencies(&key, model)?;
        let budget = Budget::new(self.inner.config.deadline);
        let stamps = if tags.is_empty() {
            Vec::new()
        } else {
            // Without its dependencies' stamps the entry could not be
            // checked on read: it is not written.
            let kept = self.longest_kept(options.timeout);
            let stamps = self.dependency_stamps(&tags.recorded, kept, &budget).await;
            let Some(stamps) = self.absorb(stamps)? else {
                return Ok(());
            };
            stamps
        };
        let schema = const { M::OPTIONS.fingerprint() };
        let encoded = self.envelope_for(&model.stored(), options.timeout, 0, stamps, schema)?;
        self.check_size(&key, &encoded)?;
        let mut entry = self.entry(&key, encoded);
        entry.indexes = tags
            .indexed
            .iter()
            .map(|tag| self.inner.keys.tag_index(tag))
            .collect();
        let entry = [entry];
        let stored = self.write_announced("SET", &entry, &budget).await;
        self.absorb(stored).map(drop)
    }

    /// [`Cache::dependency_stamps`], unless one of the tags' change markers
    /// was set since the lease `granted` was (`None`): a fill that learnt
    /// `tags` after computing reads its stamps so.
    pub(super) async fn unchanged_stamps(
        &self,
        tags: &[String],
        granted: Granted<'_>,
        kept: Duration,
        budget: &Budget,
    ) -> Result<Option<Vec<Stamp>>> {
        let keys: Vec<String> = tags
            .iter()
            .map(|tag| self.inner.keys.tag_stamp(tag))
            .collect();
        let markers: Vec<String> = tags
            .iter()
            .map(|tag| self.inner.keys.change_marker(tag))
            .collect();
        let values = self
            .call_in(
                "stamps",
                budget,
                self.inner
                    .store
                    .stamps_unless(&keys, &markers, granted, kept),
            )
            .await?;
        values.map(|values| stamps_of(tags, values)).transpose()
    }

    /// Sets the change markers of `tags`, before their stamps go: a fill
    /// that read a tag's data before the invalidation but learns the tag
    /// only after it (a model's related instance) sees a marker set since
    /// its lease was granted, and does not store; fills granted after the
    /// marker are not concerned. A marker lives `max(2 × lease_ttl, 30
    /// s)`; a guarded fill whose lease is older than 30 s
    /// ([`MARKERS_LAST`]) is refused, whatever its own `lease_ttl`, since a
    /// marker set after its grant may have expired.
    pub(super) async fn change_markers(&self, tags: &[String]) -> Result<()> {
        let ttl = (self.inner.config.lease_ttl * 2).max(MARKERS_LAST);
        for chunk in tags.chunks(INVALIDATION_BATCH) {
            let markers: Vec<String> = chunk
                .iter()
                .map(|tag| self.inner.keys.change_marker(tag))
                .collect();
            self.call("set_markers", self.inner.store.set_markers(&markers, ttl))
                .await?;
        }
        Ok(())
    }

    /// The current stamps of `tags`, created where missing, each kept at
    /// least `kept`.
    pub(super) async fn dependency_stamps(
        &self,
        tags: &[String],
        kept: Duration,
        budget: &Budget,
    ) -> Result<Vec<Stamp>> {
        let keys: Vec<String> = tags
            .iter()
            .map(|tag| self.inner.keys.tag_stamp(tag))
            .collect();
        let values = self
            .call_in("stamps", budget, self.inner.store.stamps(&keys, kept))
            .await?;
        stamps_of(tags, values)
    }

    /// Invalidates `model`'s entry and every entry that depends on it (the
    /// Django original's `invalidate_model_cache(product)`); returns whether
    /// its own entry existed. See [`Cache::invalidate_model_cache_id`].
    ///
    /// # Errors
    /// As [`Cache::invalidate_model_cache_id`].
    pub async fn invalidate_model_cache<M: CachedModel>(&self, model: &M) -> Result<bool> {
        self.invalidate_model_cache_id::<M>(model.id()).await
    }

    /// Invalidates the entry of `M`'s instance `id` and every entry that
    /// depends on it (the Django original's `invalidate_model_cache(Product,
    /// 1)`); returns whether its own entry existed. Call it after the write
    /// commits.
    ///
    /// Removes `{prefix}:{id}` and its lease (as
    /// [`Cache::delete_cached_data`]), then deletes the stamp of the tag
    /// `model:{prefix}:{id}` — every dependent stored under it is a miss
    /// from then on — and removes the dependents its index lists. Before
    /// the stamp goes, it sets the tag's change marker for a short while,
    /// so that a guarded load of a dependent that read this instance
    /// before the write is not stored (see
    /// [`Cache::get_or_load_model`]). On Redis: one round trip for the
    /// entry, one for the marker, one for the stamp, one `SSCAN` per
    /// `scan_batch` dependents and one pipeline to remove each batch.
    ///
    /// With [`ModelOptions::enabled`](crate::model::ModelOptions::enabled)
    /// `false` the invalidation still runs in full: the entry written while
    /// caching was on (by this build earlier, or by another build of a
    /// rolling deploy) is removed, and so are its dependents — entries of
    /// other, enabled models that embed it. Turning one model's caching off
    /// must leave nobody serving its old data.
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
    /// cache.cache_model(&Product { id: 1, name: "Teapot".into() }).await?;
    /// assert!(cache.invalidate_model_cache_id::<Product>(1).await?);
    /// assert!(!cache.invalidate_model_cache_id::<Product>(1).await?); // already gone
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid model prefix; the store failure,
    /// in every fail mode (a skipped invalidation would leave stale data
    /// behind).
    pub async fn invalidate_model_cache_id<M: CachedModel>(&self, id: M::Id) -> Result<bool> {
        let options = &M::OPTIONS;
        // Keys first: the id is not held across an await (it need not be
        // `Sync` for this future to be `Send`).
        let key = instance_key(options, &id)?;
        let tag = instance_tag(options.prefix, &id)?;
        drop(id);
        let existed = self.invalidate_instances(&[key], &[tag]).await?;
        Ok(existed > 0)
    }

    /// [`Cache::invalidate_model_cache_id`] for many instances of `M` at
    /// once — what a change feed or a bulk write needs; returns how many of
    /// their own entries existed.
    ///
    /// The entries and their leases go in one round trip, the tags' change
    /// markers in one more and their stamps in one more (each per 1,000
    /// ids), and the tags' indexes are scanned concurrently (up to 64
    /// `SSCAN`s in flight on the multiplexed connection), instead of four
    /// sequential round trips per id.
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
    /// for id in 1..=3 {
    ///     cache.cache_model(&Product { id, name: "Teapot".into() }).await?;
    /// }
    /// assert_eq!(cache.invalidate_model_cache_ids::<Product>(&[1, 2, 9]).await?, 2);
    /// assert!(cache.get_cached_model::<Product>(3).await?.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Cache::invalidate_model_cache_id`]; an invalid id fails the
    /// whole call before anything is removed.
    pub async fn invalidate_model_cache_ids<M: CachedModel>(&self, ids: &[M::Id]) -> Result<u64> {
        let options = &M::OPTIONS;
        let keys = ids
            .iter()
            .map(|id| instance_key(options, id))
            .collect::<Result<Vec<_>>>()?;
        let tags = ids
            .iter()
            .map(|id| instance_tag(options.prefix, id))
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Ok(0);
        }
        self.invalidate_instances(&keys, &tags).await
    }

    /// Removes the entries `keys` of model instances and invalidates their
    /// `tags`: what [`Cache::invalidate_model_cache_ids`] does once the
    /// keys are known.
    async fn invalidate_instances(&self, keys: &[String], tags: &[String]) -> Result<u64> {
        // Even with caching off: entries written while it was on (by this
        // build before, or by others in a rolling deploy) must not be
        // served again when it is back on.
        let mut existed = 0;
        for chunk in keys.chunks(INVALIDATION_BATCH) {
            existed += self.delete_many(chunk).await?;
        }
        // The markers before the stamps (see `Cache::change_markers`).
        self.change_markers(tags).await?;
        self.invalidate_tags(tags).await?;
        Ok(existed)
    }

    /// Makes every entry of `M` a miss, and every entry that embeds any
    /// instance of `M`: what to do when writes may have been missed (a
    /// change feed that was disconnected, a bulk import, a restore), and
    /// the operator's "bump the version" of one model at run time.
    ///
    /// Removes the model's entries as
    /// [`invalidate_cache_pattern("{prefix}:*")`](Cache::invalidate_cache_pattern)
    /// does (voiding the leases of fills in flight), and deletes the stamp
    /// of the model's generation, which every entry embedding one of its
    /// instances recorded: those are misses on their next read, wherever
    /// they are, with no scan. Fills in flight that embed an instance are
    /// dropped too.
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
    /// cache.cache_model(&Product { id: 1, name: "Teapot".into() }).await?;
    /// cache.bump_model_generation::<Product>().await?;
    /// assert_eq!(cache.get_cached_model::<Product>(1).await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid model prefix; the store
    /// failure, in every fail mode.
    pub async fn bump_model_generation<M: CachedModel>(&self) -> Result<()> {
        let options = &M::OPTIONS;
        check_prefix(options.prefix)?;
        let generation = [generation_tag(options.prefix)];
        self.change_markers(&generation).await?;
        self.invalidate_cache_pattern(&format!("{}:*", options.prefix))
            .await?;
        self.invalidate_tag(&generation[0]).await?;
        Ok(())
    }
}

/// `tags` with their stamp `values`, which must be one per tag.
fn stamps_of(tags: &[String], values: Vec<u64>) -> Result<Vec<Stamp>> {
    if values.len() != tags.len() {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "stamps of {} tags answered {} values",
                tags.len(),
                values.len()
            ),
        ));
    }
    Ok(tags
        .iter()
        .zip(values)
        .map(|(tag, value)| Stamp {
            key: tag.clone(),
            value,
        })
        .collect())
}
