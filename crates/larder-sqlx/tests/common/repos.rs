//! The test repositories: one [`Repo`] for every model, told by the
//! model's [`Table`] what to query; the same queries on SQLite and
//! PostgreSQL. Hooks count loads and hold one load after its query.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::stream::BoxStream;
use larder::model::CachedModel;
use larder_sqlx::{ConnectionOf, Repository};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};
use tokio::sync::oneshot;

use super::models::{Category, Note, Product, ProductV2};

/// Counts loads; holds the next load after its query, on request.
#[derive(Debug, Default)]
pub struct Hooks {
    loads: AtomicUsize,
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

/// A load held after its query: `loaded` fires once it has read its row;
/// sending on `release` lets it go on.
#[derive(Debug)]
pub struct Held {
    pub loaded: oneshot::Receiver<()>,
    pub release: oneshot::Sender<()>,
}

impl Hooks {
    /// How many loads ran (each `load` of the repository).
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    /// The next load stops after its query until released.
    pub fn hold_next_load(&self) -> Held {
        let (loaded_tx, loaded) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.hold.lock().unwrap() = Some((loaded_tx, release_rx));
        Held { loaded, release }
    }

    async fn after_query(&self) {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let held = self.hold.lock().unwrap().take();
        if let Some((loaded, release)) = held {
            loaded.send(()).unwrap();
            release.await.unwrap();
        }
    }
}

/// Repositories that expose their hooks.
pub trait Hooked {
    fn hooks(&self) -> &Hooks;
}

/// A column type of the test tables (`BIGINT`, `TEXT`) on `DB`: read,
/// bound and typed.
pub trait Column<DB: Database>: for<'r> Decode<'r, DB> + for<'t> Encode<'t, DB> + Type<DB> {}

impl<DB: Database, T> Column<DB> for T where
    T: for<'r> Decode<'r, DB> + for<'t> Encode<'t, DB> + Type<DB>
{
}

/// A bound query on `DB`.
pub type BoundQuery<DB> = Query<'static, DB, <DB as Database>::Arguments>;

/// A model's table on `DB`: the four queries of its [`Repo`], how its
/// columns bind, and how a row reads back.
pub trait Table<DB: Database>: Sized {
    /// The row whose id is `$1`.
    const LOAD: &'static str;
    /// Every row, in id order.
    const ALL: &'static str;
    /// Inserts or updates a row; its parameters are bound by `bind`.
    const SAVE: &'static str;
    /// Deletes the row whose id is `$1`.
    const DELETE: &'static str;

    /// Binds this model's columns, in `SAVE`'s order.
    fn bind(&self, query: BoundQuery<DB>) -> BoundQuery<DB>;

    /// The model a row of `LOAD` or `ALL` holds.
    fn read(row: &DB::Row) -> sqlx::Result<Self>;
}

/// The product query (with its category), then `$tail`.
macro_rules! product_sql {
    ($tail:literal) => {
        concat!(
            "SELECT p.id, p.name, p.price_cents, p.internal_notes, ",
            "c.id AS category_id, c.name AS category_name ",
            "FROM products p JOIN categories c ON c.id = p.category_id",
            $tail
        )
    };
}

impl<DB: Database> Table<DB> for Product
where
    i64: Column<DB>,
    String: Column<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    const LOAD: &'static str = product_sql!(" WHERE p.id = $1");
    const ALL: &'static str = product_sql!(" ORDER BY p.id");
    const SAVE: &'static str = "INSERT INTO products (id, name, price_cents, category_id, internal_notes) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
         name = excluded.name, price_cents = excluded.price_cents, \
         category_id = excluded.category_id, internal_notes = excluded.internal_notes";
    const DELETE: &'static str = "DELETE FROM products WHERE id = $1";

    fn bind(&self, query: BoundQuery<DB>) -> BoundQuery<DB> {
        query
            .bind(self.id)
            .bind(self.name.clone())
            .bind(self.price_cents)
            .bind(self.category.id)
            .bind(self.internal_notes.clone())
    }

    fn read(row: &DB::Row) -> sqlx::Result<Self> {
        Ok(Product {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            price_cents: row.try_get("price_cents")?,
            internal_notes: row.try_get("internal_notes")?,
            category: Category {
                id: row.try_get("category_id")?,
                name: row.try_get("category_name")?,
            },
        })
    }
}

impl<DB: Database> Table<DB> for Category
where
    i64: Column<DB>,
    String: Column<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    const LOAD: &'static str = "SELECT id, name FROM categories WHERE id = $1";
    const ALL: &'static str = "SELECT id, name FROM categories ORDER BY id";
    const SAVE: &'static str = "INSERT INTO categories (id, name) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name";
    const DELETE: &'static str = "DELETE FROM categories WHERE id = $1";

    fn bind(&self, query: BoundQuery<DB>) -> BoundQuery<DB> {
        query.bind(self.id).bind(self.name.clone())
    }

    fn read(row: &DB::Row) -> sqlx::Result<Self> {
        Ok(Category {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
        })
    }
}

impl<DB: Database> Table<DB> for Note
where
    String: Column<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    const LOAD: &'static str = "SELECT slug, body FROM notes WHERE slug = $1";
    const ALL: &'static str = "SELECT slug, body FROM notes ORDER BY slug";
    const SAVE: &'static str = "INSERT INTO notes (slug, body) VALUES ($1, $2) \
         ON CONFLICT (slug) DO UPDATE SET body = excluded.body";
    const DELETE: &'static str = "DELETE FROM notes WHERE slug = $1";

    fn bind(&self, query: BoundQuery<DB>) -> BoundQuery<DB> {
        query.bind(self.slug.clone()).bind(self.body.clone())
    }

    fn read(row: &DB::Row) -> sqlx::Result<Self> {
        Ok(Note {
            slug: row.try_get("slug")?,
            body: row.try_get("body")?,
        })
    }
}

/// The repository of the model `M` on `DB`: `M`'s [`Table`] queries, and
/// [`Hooks`] on its loads.
#[derive(Debug)]
pub struct Repo<M, DB> {
    hooks: Hooks,
    _model: PhantomData<fn() -> (M, DB)>,
}

impl<M, DB> Default for Repo<M, DB> {
    fn default() -> Self {
        Self {
            hooks: Hooks::default(),
            _model: PhantomData,
        }
    }
}

impl<M, DB> Hooked for Repo<M, DB> {
    fn hooks(&self) -> &Hooks {
        &self.hooks
    }
}

/// `Repository` for every [`Table`] on `$db`. A macro rather than one
/// generic impl: sqlx has no trait for `rows_affected`, each database's
/// query result has its own.
macro_rules! repository_on {
    ($db:ty) => {
        impl<M> Repository for Repo<M, $db>
        where
            M: Table<$db> + CachedModel + Send + Sync + 'static,
            M::Id: Column<$db> + Clone + Eq + Hash + Send + Sync + 'static,
        {
            type Database = $db;
            type Model = M;

            async fn load(
                &self,
                conn: &mut <$db as Database>::Connection,
                id: &M::Id,
            ) -> sqlx::Result<Option<M>> {
                let row = sqlx::query(M::LOAD)
                    .bind(id.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                let model = row.as_ref().map(M::read).transpose()?;
                self.hooks.after_query().await;
                Ok(model)
            }

            async fn save(
                &self,
                conn: &mut <$db as Database>::Connection,
                model: &M,
            ) -> sqlx::Result<()> {
                model.bind(sqlx::query(M::SAVE)).execute(&mut *conn).await?;
                Ok(())
            }

            async fn delete(
                &self,
                conn: &mut <$db as Database>::Connection,
                id: &M::Id,
            ) -> sqlx::Result<bool> {
                let done = sqlx::query(M::DELETE)
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            fn stream_all<'c>(
                &'c self,
                conn: &'c mut <$db as Database>::Connection,
            ) -> BoxStream<'c, sqlx::Result<M>> {
                sqlx::query(M::ALL)
                    .fetch(conn)
                    .map(|row| row.and_then(|row| M::read(&row)))
                    .boxed()
            }
        }
    };
}

#[cfg(feature = "sqlite")]
repository_on!(sqlx::Sqlite);
repository_on!(sqlx::Postgres);

/// The product repository, caching under `version = "2.0"`.
#[derive(Debug, Default)]
pub struct VersionTwo<R>(pub R);

impl<R: Repository<Model = Product>> Repository for VersionTwo<R> {
    type Database = R::Database;
    type Model = ProductV2;

    async fn load(
        &self,
        conn: &mut ConnectionOf<Self>,
        id: &i64,
    ) -> sqlx::Result<Option<ProductV2>> {
        Ok(self.0.load(conn, id).await?.map(ProductV2::from))
    }

    async fn save(&self, conn: &mut ConnectionOf<Self>, p: &ProductV2) -> sqlx::Result<()> {
        self.0.save(conn, &Product::from(p)).await
    }

    async fn delete(&self, conn: &mut ConnectionOf<Self>, id: &i64) -> sqlx::Result<bool> {
        self.0.delete(conn, id).await
    }

    fn stream_all<'c>(
        &'c self,
        conn: &'c mut ConnectionOf<Self>,
    ) -> BoxStream<'c, sqlx::Result<ProductV2>> {
        self.0
            .stream_all(conn)
            .map(|p| p.map(ProductV2::from))
            .boxed()
    }
}
