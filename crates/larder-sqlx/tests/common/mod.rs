//! Shared set-up of the integration tests: a scratch database (SQLite
//! always, PostgreSQL when `DATABASE_URL` is set), a private redis-server,
//! a cache on it, and the cached repositories of the test models; for the
//! change feed, the shop's rows, its triggers and a feed on the test's
//! own channel (`feed`).
#![allow(dead_code, unused_imports, unused_macros)]

pub mod db;
#[cfg(feature = "postgres")]
pub mod feed;
pub mod models;
pub mod repos;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use larder::config::ConfigBuilder;
use larder::{Cache, Config};
use larder_sqlx::{CachedRepository, Repository, Transaction};
use larder_test_support::RedisServer;
use sqlx::Pool;

use db::Cleanup;
pub use db::TestDb;
use models::{Category, Product};
use repos::Hooked;

/// One test's world. Fields drop in order: repositories and pool first,
/// the redis-server, then the scratch database.
pub struct Fixture<DB: TestDb> {
    pub products: CachedRepository<DB::Products>,
    pub categories: CachedRepository<DB::Categories>,
    pub cache: Cache,
    pub pool: Pool<DB>,
    /// How a second process finds this database (a SQLite path or a
    /// PostgreSQL schema).
    pub locator: String,
    redis: RedisServer,
    _cleanup: Cleanup,
}

/// A cache on the redis-server at `url`, with settings from `tweak`.
pub async fn cache_on(url: &str, tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Cache {
    let config = tweak(
        Config::builder()
            .redis_url(url)
            .deadline(Duration::from_secs(2)),
    )
    .build()
    .expect("valid test config");
    Cache::connect(config).await.expect("the cache connects")
}

impl<DB: TestDb> Fixture<DB> {
    /// `None` when the backend is not configured.
    pub async fn create() -> Option<Self> {
        let scratch = DB::create().await?;
        let redis = RedisServer::spawn();
        let cache = cache_on(&redis.url(), |config| config).await;
        Some(Self {
            products: CachedRepository::new(
                cache.clone(),
                scratch.pool.clone(),
                Default::default(),
            ),
            categories: CachedRepository::new(
                cache.clone(),
                scratch.pool.clone(),
                Default::default(),
            ),
            cache,
            pool: scratch.pool,
            locator: scratch.locator,
            redis,
            _cleanup: scratch.cleanup,
        })
    }

    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// Another cache on this test's redis-server, with settings from `tweak`.
    pub async fn cache_with(&self, tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Cache {
        cache_on(&self.redis.url(), tweak).await
    }

    /// A product repository on `cache` (hooks of its own).
    pub fn products_on(&self, cache: &Cache) -> CachedRepository<DB::Products> {
        CachedRepository::new(cache.clone(), self.pool.clone(), Default::default())
    }

    /// A category repository on `cache` (hooks of its own).
    pub fn categories_on(&self, cache: &Cache) -> CachedRepository<DB::Categories> {
        CachedRepository::new(cache.clone(), self.pool.clone(), Default::default())
    }

    /// Kills this test's redis-server.
    pub fn kill_redis(&mut self) {
        self.redis.kill();
    }

    /// Starts this test's redis-server again, empty, on the same port.
    pub fn restart_redis(&mut self) {
        self.redis.restart();
    }

    /// A plain connection to this test's redis-server.
    pub async fn raw_redis(&self) -> redis::aio::MultiplexedConnection {
        self.redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("a raw connection to the private redis-server")
    }

    /// Writes `categories` and `products` in one transaction (which
    /// invalidates them after its commit).
    pub async fn seed(&self, categories: &[Category], products: &[Product]) {
        let mut tx = Transaction::begin(&self.pool).await.unwrap();
        for category in categories {
            tx.save(&self.categories, category).await.unwrap();
        }
        for product in products {
            tx.save(&self.products, product).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// The product loads so far, of the fixture's product repository.
    pub fn product_loads(&self) -> usize {
        self.products.repository().hooks().loads()
    }

    /// Every product as the database holds it now, by id.
    pub async fn all_products(&self) -> Vec<Product> {
        self.all_rows(&self.products).await
    }

    /// Every category as the database holds it now, by id.
    pub async fn all_categories(&self) -> Vec<Category> {
        self.all_rows(&self.categories).await
    }

    /// Every row of `repository`'s model, read around the cache (and the
    /// load hooks) with its `stream_all`.
    async fn all_rows<R>(&self, repository: &CachedRepository<R>) -> Vec<R::Model>
    where
        R: Repository<Database = DB>,
    {
        let mut conn = self.pool.acquire().await.unwrap();
        let rows = repository.repository().stream_all(&mut conn);
        rows.try_collect().await.unwrap()
    }
}

/// This test's fixture on `DB`, or `None`, after saying so, when the
/// backend is not configured (PostgreSQL without `DATABASE_URL`).
pub async fn fixture<DB: TestDb>(name: &str) -> Option<Fixture<DB>> {
    let fixture = Fixture::<DB>::create().await;
    if fixture.is_none() {
        println!(
            "DATABASE_URL unset: the {} variant of `{name}` is not run",
            DB::BACKEND
        );
    }
    fixture
}

/// Runs `body` on `DB`, or says why it does not.
pub async fn run<DB, F, Fut>(name: &str, body: F)
where
    DB: TestDb,
    F: FnOnce(Fixture<DB>) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some((role, args)) = child_role() {
        return child_main::<DB>(&role, &args).await;
    }
    if let Some(fixture) = fixture::<DB>(name).await {
        body(fixture).await;
    }
}

/// For each `name`, a module `name` of two tests, `sqlite` and `postgres`,
/// each running `async fn name<DB: TestDb>(fixture: Fixture<DB>)`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            crate::common::test_on!(sqlite, $name, super::$name::<sqlx::Sqlite>);
            crate::common::test_on!(postgres, $name, super::$name::<sqlx::Postgres>);
        }
    )*};
}
pub(crate) use on_both_databases;

/// For each `name`, a module `name` of one test, `postgres`, running
/// `async fn name(fixture: Fixture<Postgres>)`: for what only PostgreSQL
/// has (the change feed).
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            crate::common::test_on!(postgres, $name, super::$name);
        }
    )*};
}
pub(crate) use on_postgres;

/// The test `backend` of `name`, running `body` on the fixture.
macro_rules! test_on {
    ($backend:ident, $name:ident, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $backend() {
            crate::common::run(stringify!($name), $body).await;
        }
    };
}
pub(crate) use test_on;

/// The environment variable that makes a test binary a child process, and
/// the one that carries its arguments.
pub const CHILD: &str = "LARDER_SQLX_CHILD";
pub const CHILD_ARGS: &str = "LARDER_SQLX_CHILD_ARGS";

/// This process's child role and arguments, if it is a child.
pub fn child_role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(CHILD).ok()?;
    let args = std::env::var(CHILD_ARGS).unwrap_or_default();
    Some((role, args.split('\u{1f}').map(str::to_owned).collect()))
}

/// Runs this test binary again as a child running only the test `test`
/// (`module::backend`) in `role` with `args`; returns the child's line
/// that starts with `marker`, from the marker on. Blocks: call it from
/// `spawn_blocking`.
pub fn run_child(test: &str, role: &str, args: &[String], marker: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(CHILD_ARGS, args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary starts again as a child");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut found = None;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if let Some(at) = line.find(marker) {
            found.get_or_insert_with(|| line[at..].trim().to_owned());
        }
        line.clear();
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the child `{test}` ({role}) failed: {status}"
    );
    found.unwrap_or_else(|| panic!("the child `{test}` ({role}) printed no `{marker}` line"))
}

/// What a child process does in `role`.
async fn child_main<DB: TestDb>(role: &str, args: &[String]) {
    match (role, args) {
        ("read-product", [redis_url, locator, id]) => {
            let cache = cache_on(redis_url, |config| config).await;
            let pool = DB::reopen(locator).await;
            let products: CachedRepository<DB::Products> =
                CachedRepository::new(cache, pool, Default::default());
            let found = products.get(id.parse().unwrap()).await.unwrap();
            println!("{}", read_line(found.as_ref()));
        }
        _ => panic!("unknown child role {role:?} with {args:?}"),
    }
}

/// How a reader reports what it read: `READ none`, or the row's fields.
pub fn read_line(found: Option<&Product>) -> String {
    match found {
        None => "READ none".to_owned(),
        Some(p) => format!(
            "READ id={} price={} name={:?} category={:?}",
            p.id, p.price_cents, p.name, p.category.name
        ),
    }
}

impl<DB: TestDb> Fixture<DB> {
    /// Product `id`, read through a cached repository in a second OS
    /// process (this binary again, running only `test`), as `read_line`.
    pub async fn read_in_second_process(&self, test: &str, id: i64) -> String {
        let test = format!("{test}::{}", DB::BACKEND);
        let args = vec![self.redis_url(), self.locator.clone(), id.to_string()];
        tokio::task::spawn_blocking(move || run_child(&test, "read-product", &args, "READ"))
            .await
            .unwrap()
    }
}
