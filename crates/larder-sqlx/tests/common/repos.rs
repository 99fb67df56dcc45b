//! The test repositories, the same queries on SQLite and PostgreSQL, with
//! hooks that count loads and hold one load after its query.

use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::stream::BoxStream;
use larder_sqlx::{ConnectionOf, Repository};
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

#[derive(Debug)]
pub struct ProductRepo<DB> {
    pub hooks: Hooks,
    _db: PhantomData<fn() -> DB>,
}

#[derive(Debug)]
pub struct CategoryRepo<DB> {
    pub hooks: Hooks,
    _db: PhantomData<fn() -> DB>,
}

#[derive(Debug)]
pub struct NoteRepo<DB>(PhantomData<fn() -> DB>);

impl<DB> Default for NoteRepo<DB> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<DB> Default for ProductRepo<DB> {
    fn default() -> Self {
        Self {
            hooks: Hooks::default(),
            _db: PhantomData,
        }
    }
}

impl<DB> Default for CategoryRepo<DB> {
    fn default() -> Self {
        Self {
            hooks: Hooks::default(),
            _db: PhantomData,
        }
    }
}

impl<DB> Hooked for ProductRepo<DB> {
    fn hooks(&self) -> &Hooks {
        &self.hooks
    }
}

impl<DB> Hooked for CategoryRepo<DB> {
    fn hooks(&self) -> &Hooks {
        &self.hooks
    }
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

macro_rules! repositories {
    ($db:ty) => {
        impl Repository for ProductRepo<$db> {
            type Database = $db;
            type Model = Product;

            async fn load(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &i64,
            ) -> sqlx::Result<Option<Product>> {
                let row = sqlx::query(product_sql!(" WHERE p.id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let product = row.map(|row| product_from(&row)).transpose()?;
                self.hooks.after_query().await;
                Ok(product)
            }

            async fn save(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                p: &Product,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO products (id, name, price_cents, category_id, internal_notes) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                     name = excluded.name, price_cents = excluded.price_cents, \
                     category_id = excluded.category_id, internal_notes = excluded.internal_notes",
                )
                .bind(p.id)
                .bind(&p.name)
                .bind(p.price_cents)
                .bind(p.category.id)
                .bind(&p.internal_notes)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn delete(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &i64,
            ) -> sqlx::Result<bool> {
                let done = sqlx::query("DELETE FROM products WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            fn stream_all<'c>(
                &'c self,
                conn: &'c mut <$db as sqlx::Database>::Connection,
            ) -> BoxStream<'c, sqlx::Result<Product>> {
                sqlx::query(product_sql!(" ORDER BY p.id"))
                    .fetch(conn)
                    .map(|row| row.and_then(|row| product_from(&row)))
                    .boxed()
            }
        }

        impl Repository for CategoryRepo<$db> {
            type Database = $db;
            type Model = Category;

            async fn load(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &i64,
            ) -> sqlx::Result<Option<Category>> {
                let row = sqlx::query("SELECT id, name FROM categories WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let category = row.map(|row| category_from(&row)).transpose()?;
                self.hooks.after_query().await;
                Ok(category)
            }

            async fn save(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                c: &Category,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO categories (id, name) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                )
                .bind(c.id)
                .bind(&c.name)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn delete(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &i64,
            ) -> sqlx::Result<bool> {
                let done = sqlx::query("DELETE FROM categories WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            fn stream_all<'c>(
                &'c self,
                conn: &'c mut <$db as sqlx::Database>::Connection,
            ) -> BoxStream<'c, sqlx::Result<Category>> {
                sqlx::query("SELECT id, name FROM categories ORDER BY id")
                    .fetch(conn)
                    .map(|row| row.and_then(|row| category_from(&row)))
                    .boxed()
            }
        }

        impl Repository for NoteRepo<$db> {
            type Database = $db;
            type Model = Note;

            async fn load(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                slug: &String,
            ) -> sqlx::Result<Option<Note>> {
                let row = sqlx::query("SELECT slug, body FROM notes WHERE slug = $1")
                    .bind(slug)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(|row| {
                    use sqlx::Row;
                    Ok(Note {
                        slug: row.try_get("slug")?,
                        body: row.try_get("body")?,
                    })
                })
                .transpose()
            }

            async fn save(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                n: &Note,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO notes (slug, body) VALUES ($1, $2) \
                     ON CONFLICT (slug) DO UPDATE SET body = excluded.body",
                )
                .bind(&n.slug)
                .bind(&n.body)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn delete(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                slug: &String,
            ) -> sqlx::Result<bool> {
                let done = sqlx::query("DELETE FROM notes WHERE slug = $1")
                    .bind(slug)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            fn stream_all<'c>(
                &'c self,
                _conn: &'c mut <$db as sqlx::Database>::Connection,
            ) -> BoxStream<'c, sqlx::Result<Note>> {
                futures::stream::empty().boxed()
            }
        }
    };
}

repositories!(sqlx::Sqlite);
repositories!(sqlx::Postgres);

fn product_from<R: sqlx::Row>(row: &R) -> sqlx::Result<Product>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
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

fn category_from<R: sqlx::Row>(row: &R) -> sqlx::Result<Category>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(Category {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
    })
}

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
