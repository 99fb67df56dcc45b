//! Set-up of the change-feed tests: a schema and a channel of their own on
//! the PostgreSQL of `DATABASE_URL`, a private redis-server, and the
//! models (a product embedding its category).
#![allow(dead_code, missing_docs)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use larder::{Cache, CachedModel, Config};
use larder_sqlx::change_feed::install_notify_trigger;
use larder_test_support::RedisServer;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "category")]
pub struct Category {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "product", related(category))]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub category: Category,
}

/// The database of `DATABASE_URL`, or `None` — after saying so — when it is
/// unset: these tests then did not run. Set but unreachable, they fail.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "{test}: DID NOT RUN — DATABASE_URL is unset; set it to a PostgreSQL \
                 database (e.g. postgres://postgres@127.0.0.1:5432/test) to run the \
                 change-feed tests"
            );
            None
        }
    }
}

/// A name no other run uses: `larder_feed_<pid>_<time>_<n>`.
pub fn unique_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "larder_feed_{}_{:x}_{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A schema of the test's own (the pool's `search_path`), dropped on drop
/// even when the test panics; the channel shares its name.
pub struct TestDb {
    url: String,
    pub schema: String,
    pub pool: PgPool,
    roles: std::sync::Mutex<Vec<String>>,
}

impl TestDb {
    pub async fn create(url: &str) -> Self {
        let schema = unique_name();
        let mut admin = PgConnection::connect(url).await.unwrap_or_else(|error| {
            panic!(
                "DATABASE_URL is set but PostgreSQL cannot be reached ({error}); \
                 start it or unset DATABASE_URL"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test's schema");
        admin.close().await.ok();
        let options = PgConnectOptions::from_str(url)
            .expect("DATABASE_URL parses")
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("connect the test's pool");
        Self {
            url: url.to_owned(),
            schema,
            pool,
            roles: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A login role of the test's own (dropped with the schema) and a pool
    /// that connects as it: a test can refuse its logins (`ALTER ROLE …
    /// NOLOGIN`) to keep a listener from reconnecting. Needs a
    /// `DATABASE_URL` user with `CREATEROLE`.
    pub async fn login_role(&self) -> (String, PgPool) {
        let role = unique_name();
        let password = unique_name();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}';
             GRANT USAGE ON SCHEMA \"{}\" TO \"{role}\";",
            self.schema
        )))
        .execute(&self.pool)
        .await
        .expect("create a login role (the DATABASE_URL user needs CREATEROLE)");
        self.roles.lock().unwrap().push(role.clone());
        let options = PgConnectOptions::from_str(&self.url)
            .unwrap()
            .username(&role)
            .password(&password)
            .options([("search_path", self.schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect as the test's role");
        (role, pool)
    }

    /// Allows or refuses new logins of `role`; sessions already open stay.
    pub async fn set_login(&self, role: &str, allowed: bool) {
        let login = if allowed { "LOGIN" } else { "NOLOGIN" };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE \"{role}\" {login}"
        )))
        .execute(&self.pool)
        .await
        .unwrap();
    }

    pub fn channel(&self) -> &str {
        &self.schema
    }

    /// `categories` and `products` with `products` rows
    /// (`price_cents = 1000 + id`, category `id % categories + 1`), and the
    /// triggers on both.
    pub async fn shop(&self, categories: i64, products: i64) {
        sqlx::raw_sql(
            "CREATE TABLE categories (id bigint PRIMARY KEY, name text NOT NULL);
             CREATE TABLE products (
                 id bigint PRIMARY KEY,
                 name text NOT NULL,
                 price_cents bigint NOT NULL,
                 category_id bigint NOT NULL REFERENCES categories (id) ON UPDATE CASCADE
             );",
        )
        .execute(&self.pool)
        .await
        .expect("create the tables");
        sqlx::query(
            "INSERT INTO categories SELECT g, 'Category ' || g FROM generate_series(1, $1) g",
        )
        .bind(categories)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO products SELECT g, 'Product ' || g, 1000 + g, g % $2 + 1
             FROM generate_series(1, $1) g",
        )
        .bind(products)
        .bind(categories)
        .execute(&self.pool)
        .await
        .unwrap();
        for table in ["categories", "products"] {
            install_notify_trigger(&self.pool, table, "id", self.channel())
                .await
                .expect("install the trigger");
        }
    }

    /// Every product, as the database has it now, by id.
    pub async fn products(&self) -> Vec<Product> {
        sqlx::query(
            "SELECT p.id, p.name, p.price_cents, c.id AS category_id, c.name AS category_name
             FROM products p JOIN categories c ON c.id = p.category_id ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| Product {
            id: row.get("id"),
            name: row.get("name"),
            price_cents: row.get("price_cents"),
            category: Category {
                id: row.get("category_id"),
                name: row.get("category_name"),
            },
        })
        .collect()
    }

    pub async fn categories(&self) -> Vec<Category> {
        sqlx::query("SELECT id, name FROM categories ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| Category {
                id: row.get("id"),
                name: row.get("name"),
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let roles = std::mem::take(&mut *self.roles.lock().unwrap_or_else(|e| e.into_inner()));
        // Drop runs inside the test's runtime: the clean-up gets a runtime
        // of its own on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut admin)
                .await?;
                for role in roles {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP ROLE IF EXISTS \"{role}\""
                    )))
                    .execute(&mut admin)
                    .await?;
                }
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}", self.schema);
        }
    }
}

/// A cache on a private redis-server.
pub async fn redis_cache(server: &RedisServer) -> Cache {
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_secs(5))
        .build()
        .expect("valid test config");
    Cache::connect(config).await.expect("cache connects")
}

/// Caches `models`, 64 at a time.
pub async fn cache_all<M: larder::model::CachedModel + Sync>(cache: &Cache, models: &[M]) {
    use futures::StreamExt;
    futures::stream::iter(models)
        .map(|model| cache.cache_model(model))
        .buffer_unordered(64)
        .for_each(|result| async { result.expect("cache_model") })
        .await;
}

/// [`ChangeFeed::caught_up`], failing the test instead of hanging it when
/// the feed never catches up.
pub async fn caught_up_within(
    feed: &larder_sqlx::change_feed::ChangeFeed,
) -> larder_sqlx::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), feed.caught_up())
        .await
        .expect("the change feed did not catch up within 60 s")
}
