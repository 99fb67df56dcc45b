//! [`Repository`]: the application's own queries for one model.

use std::future::Future;
use std::hash::Hash;

use futures::stream::BoxStream;
use larder::model::CachedModel;

/// The id type of a repository's model.
pub type IdOf<R> = <<R as Repository>::Model as CachedModel>::Id;

/// The connection type of a repository's database (`SqliteConnection`,
/// `PgConnection`): what a pool connection and a transaction both
/// dereference to.
pub type ConnectionOf<R> = <<R as Repository>::Database as sqlx::Database>::Connection;

/// The application's data access for one model, over its own `sqlx`
/// queries. [`CachedRepository`](crate::CachedRepository) wraps it with
/// the cache: it decides when to call these methods (on a miss, on a
/// write) and invalidates after each write commits.
///
/// Every method takes a `&mut` connection, so the same code runs on a
/// pool connection and inside a transaction; the methods should not begin
/// or commit transactions of their own — the caller does.
///
/// Implement the methods with `async fn`; their futures must be `Send`
/// (a `sqlx` query on `&mut *conn` is).
///
/// ```
/// use futures::{StreamExt, stream::BoxStream};
/// use larder::CachedModel;
/// use larder_sqlx::Repository;
/// use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};
///
/// #[derive(Debug, Clone, PartialEq, CachedModel)]
/// #[larder(prefix = "product", timeout = 86400)]
/// struct Product { id: i64, name: String, price_cents: i64 }
///
/// fn product(row: SqliteRow) -> sqlx::Result<Product> {
///     Ok(Product { id: row.try_get("id")?, name: row.try_get("name")?, price_cents: row.try_get("price_cents")? })
/// }
///
/// struct Products;
///
/// impl Repository for Products {
///     type Database = sqlx::Sqlite;
///     type Model = Product;
///
///     async fn load(&self, conn: &mut SqliteConnection, id: &i64) -> sqlx::Result<Option<Product>> {
///         sqlx::query("SELECT id, name, price_cents FROM products WHERE id = $1")
///             .bind(id)
///             .fetch_optional(&mut *conn)
///             .await?
///             .map(product)
///             .transpose()
///     }
///
///     async fn save(&self, conn: &mut SqliteConnection, p: &Product) -> sqlx::Result<()> {
///         sqlx::query(
///             "INSERT INTO products (id, name, price_cents) VALUES ($1, $2, $3) \
///              ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents",
///         )
///         .bind(p.id)
///         .bind(&p.name)
///         .bind(p.price_cents)
///         .execute(&mut *conn)
///         .await?;
///         Ok(())
///     }
///
///     async fn delete(&self, conn: &mut SqliteConnection, id: &i64) -> sqlx::Result<bool> {
///         let done = sqlx::query("DELETE FROM products WHERE id = $1").bind(id).execute(&mut *conn).await?;
///         Ok(done.rows_affected() > 0)
///     }
///
///     fn stream_all<'c>(&'c self, conn: &'c mut SqliteConnection) -> BoxStream<'c, sqlx::Result<Product>> {
///         sqlx::query("SELECT id, name, price_cents FROM products ORDER BY id")
///             .fetch(conn)
///             .map(|row| row.and_then(product))
///             .boxed()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sqlx::Result<()> {
/// use sqlx::Connection;
/// let mut conn = SqliteConnection::connect("sqlite::memory:").await?;
/// sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL)")
///     .execute(&mut conn)
///     .await?;
/// let teapot = Product { id: 1, name: "Teapot".into(), price_cents: 1999 };
/// Products.save(&mut conn, &teapot).await?;
/// assert_eq!(Products.load(&mut conn, &1).await?, Some(teapot.clone()));
/// assert_eq!(Products.load_many(&mut conn, &[1, 2]).await?, vec![teapot]);
/// let all: Vec<Product> = Products.stream_all(&mut conn).map(|p| p.unwrap()).collect().await;
/// assert_eq!(all.len(), 1);
/// assert!(Products.delete(&mut conn, &1).await?);
/// # Ok(()) }
/// ```
pub trait Repository: Send + Sync + 'static {
    /// The database: `sqlx::Sqlite` or `sqlx::Postgres`.
    type Database: sqlx::Database;

    /// The cached model this repository loads and saves.
    type Model: CachedModel<Id: Clone + Eq + Hash + Send + Sync + 'static> + Send + Sync + 'static;

    /// The row `id`, or `None` if there is none.
    fn load(
        &self,
        conn: &mut ConnectionOf<Self>,
        id: &IdOf<Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Model>>> + Send;

    /// The rows of `ids` that exist, in any order. The default calls
    /// [`Repository::load`] once per id; override it with one query
    /// (`WHERE id = ANY($1)` on PostgreSQL, `IN (…)` on SQLite) where the
    /// batch matters.
    fn load_many(
        &self,
        conn: &mut ConnectionOf<Self>,
        ids: &[IdOf<Self>],
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Model>>> + Send {
        async move {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                found.extend(self.load(conn, id).await?);
            }
            Ok(found)
        }
    }

    /// Inserts `model`, or updates the row with its id.
    fn save(
        &self,
        conn: &mut ConnectionOf<Self>,
        model: &Self::Model,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Deletes the row `id`; whether there was one.
    fn delete(
        &self,
        conn: &mut ConnectionOf<Self>,
        id: &IdOf<Self>,
    ) -> impl Future<Output = sqlx::Result<bool>> + Send;

    /// Every row, as a stream (for warming the cache).
    fn stream_all<'c>(
        &'c self,
        conn: &'c mut ConnectionOf<Self>,
    ) -> BoxStream<'c, sqlx::Result<Self::Model>>;
}
