//! A scratch database per test: a SQLite file in a temporary directory,
//! or a PostgreSQL schema of its own (`larder_t_<random>`) on
//! `DATABASE_URL`, dropped when the test ends (pass or fail), with any
//! login role the test made.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use larder_sqlx::Repository;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Connection, Pool, Postgres};

use super::models::{Category, Note, Product};
use super::repos::{Hooked, Repo};

const SCHEMA: &str = "\
    CREATE TABLE categories (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE products (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        price_cents BIGINT NOT NULL,
        category_id BIGINT NOT NULL REFERENCES categories (id),
        internal_notes TEXT NOT NULL
    );
    CREATE TABLE notes (slug TEXT PRIMARY KEY, body TEXT NOT NULL);";

/// Pool connections per test: enough for a held load beside a write.
const POOL_SIZE: u32 = 5;

/// A database the tests run on.
#[allow(async_fn_in_trait)]
pub trait TestDb: sqlx::Database {
    /// `sqlite` or `postgres`: the name of each test's variant.
    const BACKEND: &'static str;
    type Products: Repository<Database = Self, Model = Product> + Hooked + Default;
    type Categories: Repository<Database = Self, Model = Category> + Hooked + Default;
    type Notes: Repository<Database = Self, Model = Note> + Default;

    /// A fresh, empty database with the tables; `None` if this backend is
    /// not configured (PostgreSQL without `DATABASE_URL`). Panics if it
    /// is configured but cannot be reached.
    async fn create() -> Option<Scratch<Self>>;

    /// A pool on the scratch database `locator` names (from another process).
    async fn reopen(locator: &str) -> Pool<Self>;
}

/// A scratch database: its pool, how another process finds it, and what
/// removes it.
pub struct Scratch<DB: sqlx::Database> {
    pub pool: Pool<DB>,
    pub locator: String,
    pub cleanup: Cleanup,
}

/// Removes a scratch database on drop.
pub enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    /// The schema, then the login roles made for the test.
    Schema {
        url: String,
        schema: String,
        roles: Mutex<Vec<String>>,
    },
}

impl Cleanup {
    /// Drops the PostgreSQL role `role` with the schema.
    pub fn drop_role_too(&self, role: &str) {
        match self {
            Cleanup::Schema { roles, .. } => roles.lock().unwrap().push(role.to_owned()),
            Cleanup::Directory(_) => panic!("login roles are for PostgreSQL"),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Schema { url, schema, roles } = self {
            let (url, name) = (url.clone(), schema.clone());
            let roles = std::mem::take(roles.get_mut().unwrap_or_else(|e| e.into_inner()));
            // Drop may run inside the test's runtime: a thread of its own
            // with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&url).await?;
                        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                            .execute(&mut conn)
                            .await?;
                        for role in roles {
                            sqlx::raw_sql(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{role}\"")))
                                .execute(&mut conn)
                                .await?;
                        }
                        conn.close().await
                    })
            })
            .join()
            .unwrap();
            if let Err(error) = dropped {
                eprintln!("could not drop the test schema {schema}: {error}");
            }
        }
    }
}

/// Sixteen hex digits no other test of this run shares.
pub fn random_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |now| now.as_nanos()));
    format!("{:016x}", hasher.finish())
}

#[cfg(feature = "sqlite")]
fn sqlite_options(path: &str) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
}

#[cfg(feature = "sqlite")]
impl TestDb for Sqlite {
    const BACKEND: &'static str = "sqlite";
    type Products = Repo<Product, Sqlite>;
    type Categories = Repo<Category, Sqlite>;
    type Notes = Repo<Note, Sqlite>;

    async fn create() -> Option<Scratch<Self>> {
        let dir = tempfile::tempdir().expect("a temporary directory for the SQLite file");
        let path = dir.path().join("larder.db").to_str().unwrap().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(sqlite_options(&path))
            .await
            .unwrap_or_else(|error| panic!("cannot open SQLite at {path}: {error}"));
        sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
        Some(Scratch {
            pool,
            locator: path,
            cleanup: Cleanup::Directory(dir),
        })
    }

    async fn reopen(locator: &str) -> Pool<Self> {
        SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(sqlite_options(locator).create_if_missing(false))
            .await
            .unwrap_or_else(|error| panic!("cannot reopen SQLite at {locator}: {error}"))
    }
}

/// `DATABASE_URL`, if set and not empty.
pub fn database_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The options of `url` (`DATABASE_URL`), with `schema` as the search path.
pub fn pg_options(url: &str, schema: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(url)
        .unwrap_or_else(|error| panic!("DATABASE_URL is not a PostgreSQL URL: {error}"))
        .options([("search_path", schema)])
}

async fn pg_pool(url: &str, schema: &str) -> Pool<Postgres> {
    let options = pg_options(url, schema);
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to PostgreSQL (DATABASE_URL): {error}"))
}

impl TestDb for Postgres {
    const BACKEND: &'static str = "postgres";
    type Products = Repo<Product, Postgres>;
    type Categories = Repo<Category, Postgres>;
    type Notes = Repo<Note, Postgres>;

    async fn create() -> Option<Scratch<Self>> {
        let url = database_url()?;
        let schema = format!("larder_t_{}", random_suffix());
        let mut admin = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "DATABASE_URL is set but PostgreSQL cannot be reached: {error}; \
                 start it or unset DATABASE_URL"
                )
            });
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        // From here on the schema is dropped whatever happens.
        let cleanup = Cleanup::Schema {
            url: url.clone(),
            schema: schema.clone(),
            roles: Mutex::default(),
        };
        let pool = pg_pool(&url, &schema).await;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
        Some(Scratch {
            pool,
            locator: schema,
            cleanup,
        })
    }

    async fn reopen(locator: &str) -> Pool<Self> {
        let url = database_url().expect("the parent passes DATABASE_URL on");
        pg_pool(&url, locator).await
    }
}
