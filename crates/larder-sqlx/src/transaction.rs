//! [`Transaction`]: a database transaction whose writes invalidate after
//! its commit.

use std::collections::HashMap;
use std::fmt;

use larder::model::CachedModel;
use sqlx::{Database, Pool};

use crate::cached_repository::CachedRepository;
use crate::error::{Error, Result};
use crate::pending::{Invalidation, Pending, describe_key};
use crate::repository::{IdOf, Repository};

/// A database transaction whose writes invalidate the cache only after it
/// commits: from [`CachedRepository::begin`] or [`Transaction::begin`].
///
/// - [`save`](Self::save) and [`delete`](Self::delete) write inside the
///   transaction and queue the invalidation of what they wrote;
///   [`commit`](Self::commit) runs the queue once the commit succeeded.
///   A [`rollback`](Self::rollback), or dropping the transaction
///   uncommitted (which rolls it back), runs none of it.
/// - Reads ([`get`](Self::get), [`get_many`](Self::get_many)) take the
///   repository to read from. Before the transaction has written, a hit
///   comes from the cache and a miss is read on the transaction's
///   connection, and **not** stored: the transaction's snapshot may be
///   older than the latest invalidation (SQLite's transactions,
///   `REPEATABLE READ` and `SERIALIZABLE` on PostgreSQL), so what it read
///   could already be stale. Once it has written, reads go around the
///   cache to the transaction's own rows.
///
/// An open transaction holds one pool connection; read through it, not
/// through the repository, while it is open (the repository takes a
/// connection of its own, and waits for one if the pool has no other).
///
/// One transaction can write through several repositories of the same
/// database (a Category and its Products; [the crate docs](crate) have a
/// runnable example of a transaction):
///
/// ```text
/// let mut tx = products.begin().await?;
/// tx.save(&categories, &kitchen).await?;
/// tx.save(&products, &teapot).await?;
/// tx.commit().await?; // then invalidates category:3 (and its products) and product:1
/// ```
pub struct Transaction<DB: Database> {
    tx: sqlx::Transaction<'static, DB>,
    pending: Pending,
    written: bool,
}

impl<DB: Database> Transaction<DB> {
    /// Begins a transaction on `pool`.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if `BEGIN`
    /// failed.
    pub async fn begin(pool: &Pool<DB>) -> Result<Self> {
        let tx = pool
            .begin()
            .await
            .map_err(|error| Error::database("beginning a transaction", error))?;
        Ok(Self {
            tx,
            pending: Pending::default(),
            written: false,
        })
    }

    /// The instance `id` of `repository`'s model, as this transaction
    /// sees it; see [the type's docs](Self) for when the cache answers.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the load
    /// failed; [`ErrorKind::Cache`](crate::ErrorKind::Cache) as
    /// [`CachedRepository::get`].
    pub async fn get<R>(
        &mut self,
        repository: &CachedRepository<R>,
        id: IdOf<R>,
    ) -> Result<Option<R::Model>>
    where
        R: Repository<Database = DB>,
    {
        if !self.written
            && let Some(hit) = repository
                .cache()
                .get_cached_model::<R::Model>(id.clone())
                .await?
        {
            return Ok(Some(hit));
        }
        self.load(repository, id).await
    }

    /// The row `id` as this transaction sees it, from the database,
    /// never the cache, written or not: for read-modify-write (a cached
    /// copy lacks the model's excluded fields).
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the load
    /// failed.
    pub async fn load<R>(
        &mut self,
        repository: &CachedRepository<R>,
        id: IdOf<R>,
    ) -> Result<Option<R::Model>>
    where
        R: Repository<Database = DB>,
    {
        repository
            .repository()
            .load(&mut self.tx, &id)
            .await
            .map_err(failed::<R::Model>("loading", &id))
    }

    /// The instances `ids`, in order, `None` where there is no row, as
    /// this transaction sees them: one `MGET` and then one
    /// [`Repository::load_many`] for the misses on the transaction's
    /// connection (not stored), or, once it has written, only the
    /// `load_many`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_many<R>(
        &mut self,
        repository: &CachedRepository<R>,
        ids: &[IdOf<R>],
    ) -> Result<Vec<Option<R::Model>>>
    where
        R: Repository<Database = DB>,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = if self.written {
            ids.iter().map(|_| None).collect()
        } else {
            repository
                .cache()
                .get_cached_models::<R::Model>(ids)
                .await?
        };
        let misses: Vec<IdOf<R>> = ids
            .iter()
            .zip(&found)
            .filter(|(_, model)| model.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if misses.is_empty() {
            return Ok(found);
        }
        let loaded = repository
            .repository()
            .load_many(&mut self.tx, &misses)
            .await
            .map_err(|error| {
                Error::database(
                    format_args!(
                        "loading {} `{}` rows in a transaction",
                        misses.len(),
                        <R::Model as CachedModel>::OPTIONS.prefix
                    ),
                    error,
                )
            })?;
        let mut by_id: HashMap<IdOf<R>, R::Model> = loaded
            .into_iter()
            .map(|model| (model.id(), model))
            .collect();
        let mut repeated = Vec::new();
        for (at, (id, slot)) in ids.iter().zip(&mut found).enumerate() {
            if slot.is_none() {
                match by_id.remove(id) {
                    Some(model) => *slot = Some(model),
                    // Asked for twice: the row once more (models need not be `Clone`).
                    None if ids[..at].contains(id) => repeated.push(at),
                    None => {}
                }
            }
        }
        for at in repeated {
            found[at] = self.load(repository, ids[at].clone()).await?;
        }
        Ok(found)
    }

    /// Inserts or updates `model` through `repository` inside this
    /// transaction; its invalidation runs after [`commit`](Self::commit).
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the write
    /// failed. The transaction stays open; roll it back.
    pub async fn save<R>(
        &mut self,
        repository: &CachedRepository<R>,
        model: &R::Model,
    ) -> Result<()>
    where
        R: Repository<Database = DB>,
    {
        let id = model.id();
        // Before the write: a write that fails half-way must still be read
        // around the cache, and invalidated if the transaction commits anyway.
        self.written = true;
        self.pending.push(repository.invalidation(id.clone()));
        repository
            .repository()
            .save(&mut self.tx, model)
            .await
            .map_err(failed::<R::Model>("saving", &id))
    }

    /// Deletes the row `id` through `repository` inside this transaction;
    /// whether there was one. Its invalidation runs after
    /// [`commit`](Self::commit).
    ///
    /// # Errors
    /// As [`save`](Self::save).
    pub async fn delete<R>(&mut self, repository: &CachedRepository<R>, id: IdOf<R>) -> Result<bool>
    where
        R: Repository<Database = DB>,
    {
        self.written = true;
        self.pending.push(repository.invalidation(id.clone()));
        repository
            .repository()
            .delete(&mut self.tx, &id)
            .await
            .map_err(failed::<R::Model>("deleting", &id))
    }

    /// Queues the invalidation of `M`'s instance `id` for after the commit,
    /// for a write made with [`connection`](Self::connection).
    ///
    /// ```
    /// use larder::CachedModel;
    /// use larder_sqlx::Transaction;
    ///
    /// #[derive(Debug, Clone, PartialEq, CachedModel)]
    /// #[larder(prefix = "product")]
    /// struct Product { id: i64, price_cents: i64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    /// # sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, price_cents INTEGER)").execute(&pool).await?;
    /// let cache = larder::Cache::in_memory();
    /// cache.cache_model(&Product { id: 1, price_cents: 1999 }).await?;
    ///
    /// let mut tx = Transaction::begin(&pool).await?;
    /// sqlx::query("INSERT INTO products VALUES (1, 2499)").execute(tx.connection()).await?;
    /// tx.invalidate_after_commit::<Product>(&cache, 1);
    /// assert_eq!(tx.pending_invalidations(), ["product:1"]);
    /// assert!(cache.get_cached_model::<Product>(1).await?.is_some()); // not before the commit
    /// tx.commit().await?;
    /// assert_eq!(cache.get_cached_model::<Product>(1).await?, None);
    /// # Ok(()) }
    /// ```
    pub fn invalidate_after_commit<M>(&mut self, cache: &larder::Cache, id: M::Id)
    where
        M: CachedModel,
        M::Id: Send + 'static,
    {
        self.pending.push(Invalidation::of::<M>(cache, id));
    }

    /// The transaction's connection, for queries of your own. Counts as a
    /// write: later reads of this transaction go around the cache. Queue
    /// what your queries change with
    /// [`invalidate_after_commit`](Self::invalidate_after_commit).
    pub fn connection(&mut self) -> &mut DB::Connection {
        self.written = true;
        &mut self.tx
    }

    /// Whether this transaction has written (its reads go around the
    /// cache).
    pub fn has_written(&self) -> bool {
        self.written
    }

    /// The logical keys (`product:1`) that [`commit`](Self::commit) will
    /// invalidate.
    pub fn pending_invalidations(&self) -> Vec<&str> {
        self.pending.keys().collect()
    }

    /// Commits, then runs the queued invalidations.
    ///
    /// Cancellation: the invalidations run in a task of their own
    /// (`tokio::spawn`) that this future awaits, so dropping the future
    /// after the commit landed — a request timeout, a `select!` — does not
    /// stop them: the task finishes on its own and logs a failure
    /// (`tracing`, at `warn`). Dropped before the `COMMIT` was sent, the
    /// transaction rolls back and nothing is invalidated; dropped while it
    /// was in flight, whether it landed is unknown: invalidate what it
    /// wrote to be sure.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if the commit
    /// failed (nothing is invalidated);
    /// [`ErrorKind::StaleAfterCommit`](crate::ErrorKind::StaleAfterCommit)
    /// if it committed but an invalidation failed — every queued
    /// invalidation is still tried, and the error names the keys that
    /// failed.
    pub async fn commit(self) -> Result<()> {
        self.tx
            .commit()
            .await
            .map_err(|error| Error::database("committing a transaction", error))?;
        self.pending.run_after_commit().await
    }

    /// Rolls back; no invalidation runs.
    ///
    /// # Errors
    /// [`ErrorKind::Database`](crate::ErrorKind::Database) if `ROLLBACK`
    /// failed.
    pub async fn rollback(self) -> Result<()> {
        self.tx
            .rollback()
            .await
            .map_err(|error| Error::database("rolling back a transaction", error))
    }
}

/// The error of `doing` (`"saving"`) `M`'s instance `id` in a transaction.
fn failed<M: CachedModel>(doing: &'static str, id: &M::Id) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        Error::database(
            format_args!("{doing} `{}` in a transaction", describe_key::<M>(id)),
            error,
        )
    }
}

impl<DB: Database> fmt::Debug for Transaction<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("database", &DB::NAME)
            .field("written", &self.written)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}
