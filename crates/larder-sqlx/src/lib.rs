//! Cached model repositories over [sqlx](https://docs.rs/sqlx) for Larder:
//! the Django original's "`save()` and `delete()` invalidate
//! automatically", done so that no reader is left with the old row.
//!
//! The application implements [`Repository`] for a model — its own
//! queries to load, save, delete and stream rows, each on a `&mut`
//! connection — and wraps it in a [`CachedRepository`]:
//!
//! - [`get`](CachedRepository::get) reads through the cache, guarded: the
//!   lease (and the stamps of the related rows it embeds) are taken
//!   *before* the query, so a load that read a row before a concurrent
//!   save committed is never stored (while the cache's leases are on, the
//!   default; with `leases(false)` there is no such guard);
//! - [`get_many`](CachedRepository::get_many) reads every hit in one round
//!   trip and loads the misses;
//! - [`save`](CachedRepository::save) and
//!   [`delete`](CachedRepository::delete) write, commit, and only then
//!   invalidate the instance and every cached entry that embeds it
//!   (saving a Category invalidates the Products embedding it), in a task
//!   of their own that finishes even if the caller's future is dropped;
//! - [`begin`](CachedRepository::begin) opens a [`Transaction`]: its
//!   writes invalidate after its commit, never on rollback, and its reads
//!   after a write see its own rows, not the cache;
//! - [`load`](CachedRepository::load) reads the database around the
//!   cache, for read-modify-write: a cached copy lacks the model's
//!   excluded fields, so saving it back would blank them.
//!
//! Writes that bypass the repository (bulk SQL, other services) are
//! caught on PostgreSQL by the change feed (`change_feed`, feature
//! `postgres`).
//!
//! Failures are one [`Error`] with an [`ErrorKind`], the change feed's
//! included; a write that committed but could not invalidate is
//! [`ErrorKind::StaleAfterCommit`], naming the keys that may be stale.
//!
//! Kept out of `larder` so that the cache itself has no database
//! dependencies. Needs Rust 1.94 (sqlx 0.9).
//!
//! # Example
//!
//! ```
//! use futures::{StreamExt, stream::BoxStream};
//! use larder::CachedModel;
//! use larder_sqlx::{CachedRepository, Repository};
//! use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};
//!
//! #[derive(Debug, Clone, PartialEq, CachedModel)]
//! #[larder(prefix = "product", timeout = 86400, exclude(internal_notes))]
//! struct Product { id: i64, name: String, price_cents: i64, internal_notes: String }
//!
//! fn product(row: SqliteRow) -> sqlx::Result<Product> {
//!     Ok(Product {
//!         id: row.try_get("id")?,
//!         name: row.try_get("name")?,
//!         price_cents: row.try_get("price_cents")?,
//!         internal_notes: row.try_get("internal_notes")?,
//!     })
//! }
//!
//! struct Products;
//!
//! impl Repository for Products {
//!     type Database = sqlx::Sqlite;
//!     type Model = Product;
//!
//!     async fn load(&self, conn: &mut SqliteConnection, id: &i64) -> sqlx::Result<Option<Product>> {
//!         sqlx::query("SELECT * FROM products WHERE id = $1")
//!             .bind(id)
//!             .fetch_optional(&mut *conn)
//!             .await?
//!             .map(product)
//!             .transpose()
//!     }
//!
//!     async fn save(&self, conn: &mut SqliteConnection, p: &Product) -> sqlx::Result<()> {
//!         sqlx::query("REPLACE INTO products (id, name, price_cents, internal_notes) VALUES ($1, $2, $3, $4)")
//!             .bind(p.id)
//!             .bind(&p.name)
//!             .bind(p.price_cents)
//!             .bind(&p.internal_notes)
//!             .execute(&mut *conn)
//!             .await?;
//!         Ok(())
//!     }
//!
//!     async fn delete(&self, conn: &mut SqliteConnection, id: &i64) -> sqlx::Result<bool> {
//!         let done = sqlx::query("DELETE FROM products WHERE id = $1").bind(id).execute(&mut *conn).await?;
//!         Ok(done.rows_affected() > 0)
//!     }
//!
//!     fn stream_all<'c>(&'c self, conn: &'c mut SqliteConnection) -> BoxStream<'c, sqlx::Result<Product>> {
//!         sqlx::query("SELECT * FROM products").fetch(conn).map(|row| row.and_then(product)).boxed()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One connection: each connection to `sqlite::memory:` is a database of its own.
//! let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
//! sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price_cents INTEGER, internal_notes TEXT)")
//!     .execute(&pool)
//!     .await?;
//! let products = CachedRepository::new(larder::Cache::in_memory(), pool, Products);
//!
//! let mut teapot = Product { id: 1, name: "Teapot".into(), price_cents: 1999, internal_notes: "owed".into() };
//! products.save(&teapot).await?;
//! let loaded = products.get(1).await?.expect("the row");      // loaded, then cached
//! assert_eq!(loaded.internal_notes, "owed");
//! let cached = products.get(1).await?.expect("a hit");
//! assert_eq!(cached.internal_notes, "");                       // excluded: never cached
//!
//! teapot.price_cents = 2499;
//! products.save(&teapot).await?;                                // commits, then invalidates
//! assert_eq!(products.get(1).await?.unwrap().price_cents, 2499);
//!
//! // A transaction invalidates after its commit, and never on rollback.
//! let mut tx = products.begin().await?;
//! teapot.price_cents = 1;
//! tx.save(&products, &teapot).await?;
//! assert_eq!(tx.get(&products, 1).await?.unwrap().price_cents, 1); // its own row
//! tx.rollback().await?;
//! assert_eq!(products.get(1).await?.unwrap().price_cents, 2499);
//!
//! assert!(products.delete(1).await?);
//! assert_eq!(products.get(1).await?, None);
//! # Ok(()) }
//! ```

mod cached_repository;
#[cfg(feature = "postgres")]
pub mod change_feed;
mod error;
mod pending;
mod repository;
mod transaction;

pub use cached_repository::{CachedRepository, CachedRepositoryBuilder, DEFAULT_CONCURRENCY};
pub use error::{Error, ErrorKind, Result};
pub use repository::{ConnectionOf, IdOf, Repository};
pub use transaction::Transaction;
