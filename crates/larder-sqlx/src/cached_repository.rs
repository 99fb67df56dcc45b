//! [`CachedRepository`]: a [`Repository`] behind the cache — guarded
//! read-through, write-through with invalidation after the commit.

use std::fmt;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use larder::Cache;
use larder::model::CachedModel;
use sqlx::Pool;

use crate::error::{Error, Result};
use crate::pending::{Invalidation, Pending, describe_key};
use crate::repository::{IdOf, Repository};
use crate::transaction::Transaction;

/// How many misses of one [`CachedRepository::get_many`] load at once,
/// unless [`CachedRepositoryBuilder::concurrency`] says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A [`Repository`] with its model cached in a [`Cache`]: reads go through
/// the cache, writes go to the database and then invalidate.
///
/// - [`get`](Self::get) is a guarded read-through
///   ([`Cache::get_or_load_model`]): a hit, or one load under a lease
///   taken *before* the query, so a load that read a row before a
///   concurrent save committed (and invalidated) is never stored. The
///   guard is the cache's leases: with a cache built with
///   [`leases(false)`](larder::config::ConfigBuilder::leases) (or
///   `LARDER_LEASES=false`) it is off, and a load that raced a save can
///   store the old row, served until its timeout.
/// - [`save`](Self::save) and [`delete`](Self::delete) write in a
///   transaction of their own and invalidate the instance — its entry and
///   every entry embedding it — only after the commit succeeded.
/// - [`begin`](Self::begin) opens a [`Transaction`] whose writes
///   invalidate after its commit, and not at all if it rolls back.
///
/// Cloning is cheap (one `Arc`); clones share the cache, pool and
/// repository.
///
/// See [the crate docs](crate) for an example.
pub struct CachedRepository<R: Repository> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Repository> {
    cache: Cache,
    pool: Pool<R::Database>,
    repository: R,
    concurrency: usize,
}

/// Settings of a [`CachedRepository`]; from [`CachedRepository::builder`].
#[must_use]
pub struct CachedRepositoryBuilder<R: Repository> {
    cache: Cache,
    pool: Pool<R::Database>,
    repository: R,
    concurrency: usize,
}

impl<R: Repository> CachedRepositoryBuilder<R> {
    /// How many misses of one [`CachedRepository::get_many`] are loaded at
    /// once, each on a pool connection of its own. Default
    /// [`DEFAULT_CONCURRENCY`]; keep it at or below the pool's size. `0`
    /// is taken as `1`.
    pub fn concurrency(mut self, loads: usize) -> Self {
        self.concurrency = loads.max(1);
        self
    }

    /// The repository.
    pub fn build(self) -> CachedRepository<R> {
        CachedRepository {
            inner: Arc::new(Inner {
                cache: self.cache,
                pool: self.pool,
                repository: self.repository,
                concurrency: self.concurrency,
            }),
        }
    }
}

impl<R: Repository> CachedRepository<R> {
    /// `repository`'s model cached in `cache`, its queries run on `pool`.
    pub fn new(cache: Cache, pool: Pool<R::Database>, repository: R) -> Self {
        Self::builder(cache, pool, repository).build()
    }

    /// A builder, for settings other than the defaults.
    pub fn builder(
        cache: Cache,
        pool: Pool<R::Database>,
        repository: R,
    ) -> CachedRepositoryBuilder<R> {
        CachedRepositoryBuilder {
            cache,
            pool,
            repository,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<R::Database> {
        &self.inner.pool
    }

    /// The application's repository.
    pub fn repository(&self) -> &R {
        &self.inner.repository
    }

    /// The instance `id`: from the cache, or loaded with
    /// [`Repository::load`] on a pool connection and cached. A missing row
    /// is `None` and is not cached.
    ///
    /// The fill is guarded (see [the type's docs](Self)) only while the
    /// cache's leases are on, the default: with
    /// [`leases(false)`](larder::config::ConfigBuilder::leases) a load
    /// that read the row before a concurrent save committed can store the
    /// old row after that save's invalidation, and it stays until it
    /// expires.
    ///
    /// Costs on a hit: one `GET` (and an `MGET` of the stamps of a model
    /// with related models). On a miss: the lease, the query, the fill.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the load
    /// failed; [`ErrorKind::Cache`](crate::ErrorKind::Cache) for an invalid
    /// model prefix, or a store failure in fail-closed mode (in the default
    /// fail-open mode a store failure is a miss: the row is loaded).
    pub async fn get(&self, id: IdOf<R>) -> Result<Option<R::Model>> {
        let load_id = id.clone();
        self.inner
            .cache
            .get_or_load_model(id, || self.load(load_id))
            .await
    }

    /// The row `id` from the database, around the cache (neither read
    /// nor filled): for read-modify-write. A cached copy lacks the
    /// model's excluded fields (they read back as their `Default`), so
    /// saving it would overwrite them; load the row, change it, save it —
    /// or do all three in a [`Transaction`].
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the load
    /// failed.
    pub async fn load(&self, id: IdOf<R>) -> Result<Option<R::Model>> {
        let key = describe_key::<R::Model>(&id);
        let mut conn = self.inner.pool.acquire().await.map_err(|error| {
            Error::database(
                format_args!("acquiring a connection to load `{key}`"),
                error,
            )
        })?;
        self.inner
            .repository
            .load(&mut conn, &id)
            .await
            .map_err(|error| Error::database(format_args!("loading `{key}`"), error))
    }

    /// The instances `ids`, in order, `None` where there is no row.
    ///
    /// Costs: one `MGET` for all of them (and at most one more for the
    /// stamps of their related models), then each miss as in
    /// [`get`](Self::get) — a lease, one [`Repository::load`] on a pool
    /// connection of its own, a fill — with at most
    /// [`concurrency`](CachedRepositoryBuilder::concurrency) loads at
    /// once. Misses are not batched into one query: each one's fill is
    /// guarded by a lease of its own taken before its query.
    ///
    /// # Errors
    /// As [`get`](Self::get); the first failure fails the batch.
    pub async fn get_many(&self, ids: &[IdOf<R>]) -> Result<Vec<Option<R::Model>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self.inner.cache.get_cached_models::<R::Model>(ids).await?;
        let misses: Vec<usize> = found
            .iter()
            .enumerate()
            .filter_map(|(at, model)| model.is_none().then_some(at))
            .collect();
        let loaded: Vec<(usize, Option<R::Model>)> = stream::iter(misses)
            .map(|at| async move { Ok::<_, Error>((at, self.get(ids[at].clone()).await?)) })
            .buffer_unordered(self.inner.concurrency)
            .try_collect()
            .await?;
        for (at, model) in loaded {
            found[at] = model;
        }
        Ok(found)
    }

    /// Inserts or updates `model` with [`Repository::save`] in a
    /// transaction of its own; once it has committed, invalidates the
    /// instance's entry and every entry that embeds it.
    ///
    /// Cancellation: the invalidations run in a task of their own
    /// (`tokio::spawn`) that this future awaits. If the future is dropped
    /// after the commit — a request timeout, a `select!`, a client gone —
    /// the task still finishes them, and logs a failure (`tracing`, at
    /// `warn`) since nobody is left to receive the error. Dropped before
    /// the `COMMIT` was sent, nothing is written; dropped while it was in
    /// flight, whether it landed is unknown (as for any database client):
    /// [`invalidate`](Self::invalidate) the row to be sure.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the write
    /// failed (nothing is invalidated);
    /// [`ErrorKind::StaleAfterCommit`](crate::ErrorKind::StaleAfterCommit)
    /// if it committed but the invalidation failed.
    pub async fn save(&self, model: &R::Model) -> Result<()> {
        let id = model.id();
        let key = describe_key::<R::Model>(&id);
        let mut tx = self.inner.pool.begin().await.map_err(|error| {
            Error::database(format_args!("beginning the save of `{key}`"), error)
        })?;
        self.inner
            .repository
            .save(&mut tx, model)
            .await
            .map_err(|error| Error::database(format_args!("saving `{key}`"), error))?;
        tx.commit().await.map_err(|error| {
            Error::database(format_args!("committing the save of `{key}`"), error)
        })?;
        self.invalidate_committed(id).await
    }

    /// Deletes the row `id` with [`Repository::delete`] in a transaction
    /// of its own; once it has committed, invalidates as
    /// [`save`](Self::save) does. Returns whether there was a row.
    ///
    /// Cancellation: as [`save`](Self::save), the invalidations run in a
    /// task of their own, so dropping this future after the commit does
    /// not stop them.
    ///
    /// # Errors
    /// As [`save`](Self::save).
    pub async fn delete(&self, id: IdOf<R>) -> Result<bool> {
        let key = describe_key::<R::Model>(&id);
        let mut tx = self.inner.pool.begin().await.map_err(|error| {
            Error::database(format_args!("beginning the delete of `{key}`"), error)
        })?;
        let existed = self
            .inner
            .repository
            .delete(&mut tx, &id)
            .await
            .map_err(|error| Error::database(format_args!("deleting `{key}`"), error))?;
        tx.commit().await.map_err(|error| {
            Error::database(format_args!("committing the delete of `{key}`"), error)
        })?;
        self.invalidate_committed(id).await?;
        Ok(existed)
    }

    /// Begins a [`Transaction`] on the pool: its writes through this or
    /// any other repository on the same database invalidate after its
    /// commit.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if `BEGIN`
    /// failed.
    pub async fn begin(&self) -> Result<Transaction<R::Database>> {
        Transaction::begin(&self.inner.pool).await
    }

    /// Invalidates the instance `id` — its entry and every entry that
    /// embeds it — without writing (after a write made elsewhere);
    /// whether its own entry existed.
    ///
    /// # Errors
    /// [`ErrorKind::Cache`](crate::ErrorKind::Cache) if the store failed.
    pub async fn invalidate(&self, id: IdOf<R>) -> Result<bool> {
        Ok(self
            .inner
            .cache
            .invalidate_model_cache_id::<R::Model>(id)
            .await?)
    }

    /// Makes every cached instance of the model a miss, and every entry
    /// that embeds one ([`Cache::bump_model_generation`]): after a write
    /// that bypassed the repository (bulk SQL, another service, a
    /// restore), once it has committed.
    ///
    /// # Errors
    /// [`ErrorKind::Cache`](crate::ErrorKind::Cache) if the store failed.
    pub async fn invalidate_all(&self) -> Result<()> {
        Ok(self.inner.cache.bump_model_generation::<R::Model>().await?)
    }

    /// The invalidation of `id` after its write committed.
    pub(crate) fn invalidation(&self, id: IdOf<R>) -> Invalidation {
        Invalidation::of::<R::Model>(&self.inner.cache, id)
    }

    async fn invalidate_committed(&self, id: IdOf<R>) -> Result<()> {
        let mut pending = Pending::default();
        pending.push(self.invalidation(id));
        pending.run_after_commit().await
    }
}

impl<R: Repository> Clone for CachedRepository<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Repository> fmt::Debug for CachedRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRepository")
            .field("model", &<R::Model as CachedModel>::OPTIONS.prefix)
            .field("cache", &self.inner.cache)
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

impl<R: Repository> fmt::Debug for CachedRepositoryBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRepositoryBuilder")
            .field("model", &<R::Model as CachedModel>::OPTIONS.prefix)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}
