//! Reads through the local (L1) tier, the tier and outcome reported with
//! each value, and the invalidations every instance's tier hears.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use super::fill::decode_shared;
use super::local::message::Invalidation;
use super::local::{LocalValue, Ticket};
use super::read::Entry;
use super::read_through::{Computed, ReadFailure, ReadThrough, Served, Sharing};
use crate::Result;
use crate::envelope::{self, now_ms};
use crate::key::namespace_of;

/// Which tier answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// This process's memory (the L1 tier): no round trip, no decode.
    Local,
    /// The shared store: Redis, or the in-process store when no Redis is
    /// configured.
    Redis,
    /// The origin: the computation ran (here, or in a caller this one
    /// waited for).
    Origin,
}

impl Tier {
    /// The name the Django original's `get_user_with_tiered_cache`
    /// returns: `"local_cache"`, `"redis_cache"` or `"database_miss"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local_cache",
            Tier::Redis => "redis_cache",
            Tier::Origin => "database_miss",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the answering tier got the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It held the value.
    Hit,
    /// Another caller computed it (in this process or, through the store,
    /// in another) while this one waited.
    Waited,
    /// This caller computed it.
    Computed,
    /// An expired value, served inside its stale grace period while one
    /// caller refreshes it.
    Stale,
}

/// A value with the tier that answered and how: what
/// [`Cache::fetch_or_compute`] returns, so that callers can log it or set
/// their own headers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched<T> {
    /// The value.
    pub value: T,
    /// The tier that answered.
    pub tier: Tier,
    /// How.
    pub outcome: Outcome,
}

/// How values of `T` go into the local tier and come back, and for how
/// long they may stay.
pub(crate) struct LocalForm<T> {
    pub(crate) ttl: Duration,
    pub(crate) keep: fn(&T) -> Option<LocalValue>,
    pub(crate) take: fn(&LocalValue) -> Option<T>,
}

/// Where a read-through value came from, and what the local tier needs to
/// keep it (only a value the store holds, fresh, may be kept).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) tier: Tier,
    pub(crate) outcome: Outcome,
    pub(crate) keep: Option<Keep>,
}

impl Source {
    pub(crate) fn new(tier: Tier, outcome: Outcome, keep: Option<Keep>) -> Self {
        Self {
            tier,
            outcome,
            keep,
        }
    }
}

/// What the local tier needs to keep a value: its weight, when its store
/// copy expires, the tags it was filled under — and, for a value this
/// caller computed, the envelope it stored: the tier keeps what the store
/// holds (decoded from it), never the computed value itself, which may
/// carry what the encoding drops (a `#[serde(skip)]` field, say).
#[derive(Debug)]
pub(crate) struct Keep {
    weight: usize,
    expires_at_ms: u64,
    tags: Vec<String>,
    envelope: Option<Bytes>,
}

/// An entry's weight in the tier: twice its uncompressed encoded size (or
/// its envelope's, if larger). Approximate: decoded values usually take
/// more memory than their MessagePack.
fn weight(envelope: usize, raw: usize) -> usize {
    envelope.max(raw).saturating_mul(2)
}

impl Keep {
    /// From an entry read from the store; `grace_ms` is the stale grace
    /// period the store's TTL includes.
    pub(super) fn of_entry<T>(entry: &Entry<T>, grace_ms: u64) -> Self {
        // The store's clock bounds the envelope's (the writer's): an entry
        // the store drops sooner leaves the tier sooner too.
        let by_store = entry.store_ttl.map(|ttl| {
            let left = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            now_ms().saturating_add(left.saturating_sub(grace_ms))
        });
        Self {
            weight: weight(entry.size, entry.raw_size),
            expires_at_ms: by_store.map_or(entry.expires_at_ms, |at| at.min(entry.expires_at_ms)),
            tags: entry.stamps.iter().map(|s| s.key.clone()).collect(),
            envelope: None,
        }
    }

    /// From an envelope this caller stored or was handed by the store.
    pub(crate) fn of_envelope(bytes: &Bytes) -> Option<Self> {
        let (header, _) = envelope::parse(bytes, usize::MAX).ok()?;
        Some(Self {
            weight: weight(bytes.len(), header.payload_len as usize),
            expires_at_ms: header.expires_at_ms,
            tags: header.stamps.into_iter().map(|s| s.key).collect(),
            envelope: Some(bytes.clone()),
        })
    }
}

impl Cache {
    /// The value under `key` with the tier that answered and how; on a
    /// miss, computes it as [`Cache::get_or_compute`] does.
    ///
    /// When `key`'s namespace has the local tier
    /// ([`ConfigBuilder::local`](crate::config::ConfigBuilder::local)), the
    /// value is looked for in this process first and kept there after a
    /// store hit or a fill. This is the Django original's
    /// `get_user_with_tiered_cache`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use larder::{Cache, Config, Tier};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
    /// let config = Config::builder().local("user", Duration::from_secs(60)).build()?;
    /// let cache = Cache::connect(config).await?; // no REDIS_URL: the in-process store
    /// let user = || async { String::from("ada") }; // the database query
    /// let ttl = Duration::from_secs(3600);
    /// let first = cache.fetch_or_compute("user:1", ttl, user).await?;
    /// assert_eq!((first.value.as_str(), first.tier), ("ada", Tier::Origin));
    /// let second = cache.fetch_or_compute("user:1", ttl, user).await?;
    /// assert_eq!(second.tier.as_str(), "local_cache");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn fetch_or_compute<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<Fetched<T>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let compute = || async { Ok::<_, Infallible>(Computed::plain(compute().await)) };
        let local = self.local_ttl(key);
        match self
            .read_tiered(key, self.options(ttl), local, &Sharing::none(), compute)
            .await
        {
            Ok(served) => Ok(Fetched {
                value: served.value,
                tier: served.source.tier,
                outcome: served.source.outcome,
            }),
            Err(ReadFailure::Cache(err)) => Err(err),
            Err(ReadFailure::Origin { error, .. }) => match error {},
        }
    }

    /// How long `key` may stay in the local tier by its namespace's
    /// setting.
    pub(crate) fn local_ttl(&self, key: &str) -> Option<Duration> {
        let by_namespace = &self.inner.config.local_ttl_by_namespace;
        if by_namespace.is_empty() {
            return None;
        }
        by_namespace.get(namespace_of(key)).copied()
    }

    /// [`Cache::read_through_served`] behind the local tier when `local`
    /// (its TTL) is set: a value held there answers at once; a value read
    /// from the store, or computed and stored, is kept there — unless an
    /// invalidation arrived since the read began.
    pub(crate) async fn read_tiered<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough<'_>,
        local: Option<Duration>,
        sharing: &Sharing<'_, E>,
        compute: F,
    ) -> Result<Served<T>, ReadFailure<T, E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let local = local.map(|ttl| LocalForm {
            ttl,
            keep: |value: &T| Some(Arc::new(value.clone()) as LocalValue),
            take: |held: &LocalValue| held.downcast_ref::<T>().cloned(),
        });
        self.read_local(key, options, local, sharing, compute).await
    }

    /// [`Cache::read_tiered`] for values that say themselves how they go
    /// into the tier and come back (`form`): models, whose derive knows
    /// whether they are `Clone`.
    pub(crate) async fn read_local<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough<'_>,
        form: Option<LocalForm<T>>,
        sharing: &Sharing<'_, E>,
        compute: F,
    ) -> Result<Served<T>, ReadFailure<T, E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let Some(form) = form else {
            return self
                .read_through_served(key, options, sharing, compute)
                .await;
        };
        let options = ReadThrough {
            local: true,
            ..options
        };
        let tier = &self.inner.local;
        let physical = self.inner.keys.physical(key);
        if !options.refresh
            && let Some(value) = tier.get_any(&physical).and_then(|held| (form.take)(&held))
        {
            self.count_local_hit(key);
            return Ok(Served {
                value,
                stale: false,
                source: super::tiered::Source::new(Tier::Local, Outcome::Hit, None),
            });
        }
        // Before the store is asked: an invalidation from now on voids
        // what this read would keep.
        let ticket = tier.ticket();
        let served = self
            .read_through_served(key, options, sharing, compute)
            .await?;
        if let (Some(ticket), Some(keep)) = (ticket, &served.source.keep)
            && let Some(value) = match &keep.envelope {
                Some(bytes) => decode_shared::<T>(bytes).as_ref().and_then(form.keep),
                None => (form.keep)(&served.value),
            }
        {
            let left = Duration::from_millis(keep.expires_at_ms.saturating_sub(now_ms()));
            let tags: Vec<&str> = keep.tags.iter().map(String::as_str).collect();
            tier.insert_any(
                &physical,
                value,
                keep.weight,
                form.ttl.min(left),
                &tags,
                ticket,
            );
        }
        Ok(served)
    }

    /// How long instances of `M` may stay in the local tier: the model's
    /// own setting, else its prefix's namespace setting; `None` when `M`
    /// cannot be copied out of the tier (see `CachedModel::to_local`).
    pub(crate) fn model_local_ttl<M: crate::CachedModel>(&self) -> Option<Duration> {
        M::OPTIONS
            .local
            .or_else(|| self.local_ttl(M::OPTIONS.prefix))
    }

    /// A model instance from the local tier, if it holds one.
    pub(crate) fn local_model<M: crate::CachedModel>(&self, physical: &str) -> Option<M> {
        let held = self.inner.local.get_any(physical)?;
        M::from_local(&held)
    }

    /// Keeps `model` (read from the store as `keep` says, under a ticket
    /// taken before the read) in the local tier for at most `ttl`.
    pub(crate) fn keep_local_model<M: crate::CachedModel>(
        &self,
        physical: &str,
        model: &M,
        keep: &Keep,
        ttl: Duration,
        ticket: Ticket,
    ) {
        let Some(value) = model.to_local() else {
            return;
        };
        let left = Duration::from_millis(keep.expires_at_ms.saturating_sub(now_ms()));
        let tags: Vec<&str> = keep.tags.iter().map(String::as_str).collect();
        self.inner
            .local
            .insert_any(physical, value, keep.weight, ttl.min(left), &tags, ticket);
    }

    /// A ticket for a store read whose value may enter the local tier.
    pub(crate) fn local_ticket(&self) -> Option<Ticket> {
        self.inner.local.ticket()
    }

    /// Counts a read answered by the local tier.
    pub(crate) fn count_local_hit(&self, key: &str) {
        self.inner.metrics.with(key, |m| {
            m.hits.increment(1);
            m.local_hits.increment(1);
        });
    }

    /// Tells every instance's local tier (this one's at once) that
    /// `invalidation` happened: after the store has applied it.
    ///
    /// # Errors
    /// The store failure of the `PUBLISH`.
    pub(crate) async fn announce(&self, invalidation: Invalidation) -> Result<()> {
        self.inner.local.apply(&invalidation);
        let message = Bytes::from(invalidation.encode());
        self.call(
            "PUBLISH",
            self.inner.store.publish(self.inner.keys.channel(), message),
        )
        .await
    }

    /// [`Cache::announce`] of a written key (a refresh): every write is
    /// announced, since any instance may hold the key in its local tier —
    /// this one cannot know which do.
    pub(crate) async fn announce_written(&self, key: &str) -> Result<()> {
        let physical = self.inner.keys.physical(key);
        self.announce(Invalidation::Keys(vec![physical])).await
    }

    /// Entries the local tier holds now, and their weight in bytes.
    #[doc(hidden)]
    pub fn local_tier_usage(&self) -> (usize, u64) {
        (self.inner.local.len(), self.inner.local.weight())
    }

    /// Whether the local tier holds a servable value under the logical
    /// `key`: for tests and diagnostics.
    #[doc(hidden)]
    pub fn local_tier_serves(&self, key: &str) -> bool {
        self.inner.local.serves(&self.inner.keys.physical(key))
    }

    /// Whether the local tier hears invalidations now (its subscription
    /// is up and answers pings).
    #[doc(hidden)]
    pub fn local_tier_hearing(&self) -> bool {
        self.inner.local.hearing()
    }

    /// A receiver that changes whenever the local tier applies an
    /// invalidation or empties: tests wait on it rather than sleep.
    #[doc(hidden)]
    pub fn local_tier_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.local.applied()
    }

    /// Turns the local tier's in-flight guard off: only for the test that
    /// shows what it prevents.
    #[doc(hidden)]
    pub fn local_tier_guard(&self, on: bool) {
        self.inner.local.set_guard(on);
    }
}
