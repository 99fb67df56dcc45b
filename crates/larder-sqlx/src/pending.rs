//! Invalidations that wait for a commit: collected by a write, run once
//! the write has committed, dropped with a rolled-back transaction.

use std::fmt;

use futures::future::BoxFuture;
use larder::Cache;
use larder::model::{CachedModel, model_key};

use crate::error::Error;

type Run = Box<dyn FnOnce(Cache) -> BoxFuture<'static, larder::Result<bool>> + Send>;

/// One model instance to invalidate after the commit.
pub(crate) struct Invalidation {
    /// The logical key (`product:1`), for the error that names what may be
    /// stale, and to run each key once.
    key: String,
    cache: Cache,
    run: Run,
}

impl Invalidation {
    /// The invalidation of `M`'s instance `id` in `cache` (its entry, its
    /// lease and every entry embedding it).
    pub(crate) fn of<M>(cache: &Cache, id: M::Id) -> Self
    where
        M: CachedModel,
        M::Id: Send + 'static,
    {
        Self {
            key: describe_key::<M>(&id),
            cache: cache.clone(),
            run: Box::new(move |cache| {
                Box::pin(async move { cache.invalidate_model_cache_id::<M>(id).await })
            }),
        }
    }
}

impl fmt::Debug for Invalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidation")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The invalidations a transaction's writes collected, in order, each key
/// once.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    invalidations: Vec<Invalidation>,
}

impl Pending {
    pub(crate) fn push(&mut self, invalidation: Invalidation) {
        if !self.invalidations.iter().any(|queued| {
            queued.key == invalidation.key && same_cache(&queued.cache, &invalidation.cache)
        }) {
            self.invalidations.push(invalidation);
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.invalidations.iter().map(|i| i.key.as_str())
    }

    /// Runs every invalidation, after the commit, in a task of its own,
    /// and waits for it. The write has committed: dropping the caller's
    /// future (a request timeout, a `select!`, a client gone) must not
    /// drop its invalidations with it, or the old row is served until it
    /// expires and nobody hears of it. The task goes on alone and logs
    /// what fails ([`run`](Self::run)).
    ///
    /// # Errors
    /// [`ErrorKind::StaleAfterCommit`](crate::ErrorKind::StaleAfterCommit)
    /// naming every key whose invalidation failed, or every key if the
    /// task ended early (a panic, the runtime shutting down).
    pub(crate) async fn run_after_commit(self) -> Result<(), Error> {
        if self.invalidations.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = self.keys().map(str::to_owned).collect();
        match tokio::spawn(self.run()).await {
            Ok(done) => done,
            Err(aborted) => {
                tracing::error!(
                    keys = ?keys,
                    error = %aborted,
                    "the invalidation after commit ended early; the entries may be stale"
                );
                Err(Error::stale_after_aborted_invalidation(keys, aborted))
            }
        }
    }

    /// Runs every invalidation (all of them, even after one fails).
    ///
    /// # Errors
    /// [`ErrorKind::StaleAfterCommit`](crate::ErrorKind::StaleAfterCommit)
    /// naming every key whose invalidation failed.
    async fn run(self) -> Result<(), Error> {
        let mut stale = Vec::new();
        let mut failures = Vec::new();
        for Invalidation { key, cache, run } in self.invalidations {
            if let Err(error) = run(cache).await {
                tracing::warn!(%key, %error, "invalidation after commit failed; the entry may be stale");
                stale.push(key);
                failures.push(error);
            }
        }
        if stale.is_empty() {
            Ok(())
        } else {
            Err(Error::stale_after_commit(stale, failures))
        }
    }
}

/// Two handles on one cache (same store and key space).
fn same_cache(a: &Cache, b: &Cache) -> bool {
    std::sync::Arc::ptr_eq(a.store(), b.store()) && a.physical_key("") == b.physical_key("")
}

/// `product:1`, or, for an id the cache would refuse, a description of it.
pub(crate) fn describe_key<M: CachedModel>(id: &M::Id) -> String {
    model_key::<M>(id).unwrap_or_else(|_| format!("{}:{id}", M::OPTIONS.prefix))
}
