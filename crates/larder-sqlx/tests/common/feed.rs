//! The change feed's set-up, on the PostgreSQL fixture: the shop's rows
//! and their triggers, a feed on the test's own channel, a login role a
//! test can lock out, and a bounded wait for a feed to catch up.

use std::time::Duration;

use futures::StreamExt;
use larder::Cache;
use larder::model::CachedModel;
use larder_sqlx::change_feed::{ChangeFeed, ChangeFeedBuilder, install_notify_trigger};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Postgres};

use super::Fixture;
use super::db::{database_url, pg_options, random_suffix};
use super::models::{Category, NOTES, Product};

/// The cache deadline of the feed's cache: one notification's
/// invalidation covers up to a thousand ids.
const FEED_DEADLINE: Duration = Duration::from_secs(5);

/// How long [`caught_up_within`] waits before failing the test.
const CATCH_UP: Duration = Duration::from_secs(60);

impl Fixture<Postgres> {
    /// The test's `NOTIFY` channel: its schema's name, so that tests
    /// running at once never hear each other.
    pub fn channel(&self) -> &str {
        &self.locator
    }

    /// `categories` categories and `products` products, the rows
    /// `models::category(id)` and `models::product(id, id % categories + 1)`
    /// make, and the triggers on both tables.
    pub async fn shop(&self, categories: i64, products: i64) {
        sqlx::query(
            "INSERT INTO categories SELECT g, 'Category ' || g FROM generate_series(1, $1) g",
        )
        .bind(categories)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO products SELECT g, 'Product ' || g, 1000 + g, g % $2 + 1, $3
             FROM generate_series(1, $1) g",
        )
        .bind(products)
        .bind(categories)
        .bind(NOTES)
        .execute(&self.pool)
        .await
        .unwrap();
        for table in ["categories", "products"] {
            install_notify_trigger(&self.pool, table, "id", self.channel())
                .await
                .expect("install the trigger");
        }
    }

    /// A cache on this test's redis-server, for a feed to invalidate.
    pub async fn feed_cache(&self) -> Cache {
        self.cache_with(|config| config.deadline(FEED_DEADLINE))
            .await
    }

    /// A feed on this test's channel and pool that invalidates `cache`'s
    /// products; not started.
    pub fn products_feed(&self, cache: &Cache) -> ChangeFeedBuilder {
        ChangeFeed::builder(cache.clone(), self.pool.clone())
            .channel(self.channel())
            .watch::<Product>("products")
    }

    /// [`products_feed`](Self::products_feed) invalidating the categories
    /// too.
    pub fn shop_feed(&self, cache: &Cache) -> ChangeFeedBuilder {
        self.products_feed(cache).watch::<Category>("categories")
    }

    /// A login role of the test's own (dropped with the schema) and a pool
    /// that connects as it: a test can refuse its logins
    /// ([`set_login`](Self::set_login)) to keep a listener from
    /// reconnecting. Needs a `DATABASE_URL` user with `CREATEROLE`.
    pub async fn login_role(&self) -> (String, PgPool) {
        let role = format!("larder_r_{}", random_suffix());
        let password = random_suffix();
        let create = format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}';
             GRANT USAGE ON SCHEMA \"{}\" TO \"{role}\";",
            self.channel()
        );
        self.administer(
            create,
            "create a login role (the DATABASE_URL user needs CREATEROLE)",
        )
        .await;
        self._cleanup.drop_role_too(&role);
        let url = database_url().expect("the fixture was made from DATABASE_URL");
        let options = pg_options(&url, self.channel())
            .username(&role)
            .password(&password);
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
        self.administer(format!("ALTER ROLE \"{role}\" {login}"), "alter the role")
            .await;
    }

    /// Runs `sql` on the test's pool: a write behind the cache's back, as
    /// `psql` or another service would make it.
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// Runs `sql`, built from names of the test's own, to do `what`.
    async fn administer(&self, sql: String, what: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
    }
}

/// Caches `models`, 64 at a time.
pub async fn cache_all<M: CachedModel + Sync>(cache: &Cache, models: &[M]) {
    futures::stream::iter(models)
        .map(|model| cache.cache_model(model))
        .buffer_unordered(64)
        .for_each(|result| async { result.expect("cache_model") })
        .await;
}

/// [`ChangeFeed::caught_up`], failing the test instead of hanging it when
/// the feed never catches up.
pub async fn caught_up_within(feed: &ChangeFeed) -> larder_sqlx::Result<()> {
    tokio::time::timeout(CATCH_UP, feed.caught_up())
        .await
        .expect("the change feed did not catch up within 60 s")
}
