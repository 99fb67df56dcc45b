//! A hostile review of larder-sqlx (issue 11): writes that bypass the
//! repository and must still reach the cache through the change feed.
//! Tests marked `R<n>` FAIL on the reviewed commit (confirmed defects);
//! those marked "holds" pass. R7, R8 and R9 are fixed since (on
//! `sqlx-r79`) and pass. The change-feed tests need `DATABASE_URL`
//! (PostgreSQL); each test works in a schema of its own, dropped
//! afterwards.

#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::Fixture;
use common::db::database_url;
use common::feed::{cache_all, caught_up_within};
use common::models::{Category, Product};
use larder_sqlx::change_feed::{ChangeFeed, install_notify_trigger};
use sqlx::{Connection, PgConnection, Postgres};

common::on_both_databases!(
    a_save_cancelled_after_its_commit_still_invalidates,
    a_commit_cancelled_after_it_landed_still_invalidates,
);

common::on_postgres!(
    a_write_to_a_partition_of_a_watched_table_invalidates,
    a_write_in_a_replication_role_session_invalidates,
    forged_payloads_never_hide_a_change,
    text_ids_with_syntax_in_them_invalidate_exactly,
);

/// A feed on the test's channel watching products and categories, with
/// every product cached.
async fn watched(fx: &Fixture<Postgres>, cache: &larder::Cache) -> (ChangeFeed, Vec<Product>) {
    let feed = fx.shop_feed(cache).start().await.unwrap();
    let products = fx.all_products().await;
    cache_all(cache, &products).await;
    for product in &products {
        assert!(
            cache
                .get_cached_model::<Product>(product.id)
                .await
                .unwrap()
                .is_some()
        );
    }
    (feed, products)
}

// R7. A partitioned table: `install_notify_trigger(pool, "products", …)`
// creates statement-level triggers on the partitioned parent. PostgreSQL
// fires a parent's statement-level triggers only for statements that name
// the parent; statement-level triggers are not cloned to partitions (only
// row-level ones are). So a write addressed to a partition directly — a
// bulk job or another service that knows the partition, `UPDATE
// products_2024 …`, the usual way to maintain partitions — sends no
// notification, and the cached product stays stale until its timeout.
// The issue promises that writes bypassing the repository (bulk UPDATE,
// raw SQL, another service) invalidate. Fix: install the triggers on every
// partition too (and on partitions attached later — or refuse a
// partitioned table with a Config error saying so). Found by asking
// which statements a statement-level trigger does not see.
async fn a_write_to_a_partition_of_a_watched_table_invalidates(fx: Fixture<Postgres>) {
    // The fixture's own tables make way for a partitioned `products`.
    fx.execute("DROP TABLE products").await;
    fx.execute("DROP TABLE categories").await;
    sqlx::raw_sql(
        "CREATE TABLE categories (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE products (
             id bigint NOT NULL,
             name text NOT NULL,
             price_cents bigint NOT NULL,
             category_id bigint NOT NULL,
             internal_notes text NOT NULL DEFAULT ''
         ) PARTITION BY RANGE (id);
         CREATE TABLE products_low PARTITION OF products FOR VALUES FROM (0) TO (100);
         CREATE TABLE products_high PARTITION OF products FOR VALUES FROM (100) TO (1000);
         INSERT INTO categories VALUES (1, 'Category 1');
         INSERT INTO products VALUES (2, 'Product 2', 1002, 1), (200, 'Product 200', 1200, 1);",
    )
    .execute(&fx.pool)
    .await
    .unwrap();
    for table in ["categories", "products"] {
        install_notify_trigger(&fx.pool, table, "id", fx.channel())
            .await
            .expect("a partitioned table takes the trigger");
    }
    let cache = fx.feed_cache().await;
    let (feed, _) = watched(&fx, &cache).await;

    // Through the parent: notified (holds).
    fx.execute("UPDATE products SET price_cents = 1 WHERE id = 200")
        .await;
    // Straight to the partition: not notified.
    fx.execute("UPDATE products_low SET price_cents = 5 WHERE id = 2")
        .await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(200).await.unwrap(),
        None,
        "a write through the parent invalidates"
    );
    let cached = cache.get_cached_model::<Product>(2).await.unwrap();
    assert_eq!(
        cached.map(|p| p.price_cents),
        None,
        "a write to the partition left the old product cached"
    );
    feed.shutdown().await;
}

// R8. `session_replication_role = replica`: ordinary (ENABLE) triggers do
// not fire. That is how pg_restore --disable-triggers, pgloader and most
// logical-replication/ETL tools (pglogical, Bucardo, Debezium sinks…)
// write — "another service" in the issue's words — and how a DBA runs a
// bulk fix-up to skip audit triggers. Such writes send no notification and
// the cache keeps the old rows until their timeout, silently. Fix: create
// the triggers and then `ALTER TABLE … ENABLE ALWAYS TRIGGER
// larder_notify_*` (they only notify; firing them on a replica session is
// what a cache wants), or document loudly that such writers must bump the
// generations. Found by listing the ways PostgreSQL skips triggers.
async fn a_write_in_a_replication_role_session_invalidates(fx: Fixture<Postgres>) {
    fx.shop(1, 5).await;
    let cache = fx.feed_cache().await;
    let (feed, _) = watched(&fx, &cache).await;

    // Another service's session (the test's role is a superuser; a
    // replication tool's is too, or has the role granted).
    let url = database_url().expect("the PostgreSQL fixture comes from DATABASE_URL");
    let mut other = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path = \"{}\";
         SET session_replication_role = replica;
         UPDATE products SET price_cents = 5 WHERE id = 2;",
        fx.channel()
    )))
    .execute(&mut other)
    .await
    .unwrap();
    other.close().await.ok();
    caught_up_within(&feed).await.unwrap();
    let cached = cache.get_cached_model::<Product>(2).await.unwrap();
    assert_eq!(
        cached.map(|p| p.price_cents),
        None,
        "a write in a replica-role session left the old product cached"
    );
    feed.shutdown().await;
}

// Holds: a payload forged on the channel by another client (any role can
// NOTIFY any channel) cannot make the feed skip a change: ids it names are
// only invalidated, an unreadable one bumps every watched generation, and
// a forged marker with an absurd sequence number does not let
// `caught_up()` return before a change sent earlier was applied (the
// listener handles notifications in order). Note: the unreadable-payload
// rule means any role with CONNECT can empty the cache at will (a cheap
// DoS by design: fail closed).
async fn forged_payloads_never_hide_a_change(fx: Fixture<Postgres>) {
    fx.shop(1, 5).await;
    let cache = fx.feed_cache().await;
    let (feed, _) = watched(&fx, &cache).await;
    let feed_id = format!("{feed:?}");
    let feed_id = feed_id
        .split("feed_id: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the feed's Debug shows its id")
        .to_owned();
    for payload in [
        format!(r#"{{"larder_marker":"{feed_id}","seq":18446744073709551615}}"#),
        r#"{"table":"products","ids":[]}"#.to_owned(),
        r#"{"table":"products","ids":["1\u0000"]}"#.to_owned(),
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(fx.channel())
            .bind(&payload)
            .execute(&fx.pool)
            .await
            .unwrap();
    }
    fx.execute("UPDATE products SET price_cents = 5 WHERE id = 2")
        .await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(2).await.unwrap(), None);
    feed.shutdown().await;
}

/// Product 1 (category 3) seeded and cached; Redis then refuses writes
/// (`CLIENT PAUSE … WRITE`) for 1.5 s, as a Redis in a long fork/AOF
/// rewrite, a failover or a network stall does.
async fn cached_then_stalled<DB: common::TestDb>(fx: &Fixture<DB>) {
    use common::models::{category, product};
    fx.seed(&[category(3)], &[product(1, 3)]).await;
    assert!(fx.products.get(1).await.unwrap().is_some());
    assert!(
        fx.cache
            .get_cached_model::<Product>(1)
            .await
            .unwrap()
            .is_some()
    );
    let mut raw = fx.raw_redis().await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
}

/// Once Redis answers again: the committed category name is in the
/// database, and the product that embeds it is not served with the old one.
async fn after_the_stall<DB: common::TestDb>(fx: &Fixture<DB>) {
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let row = fx.categories.load(3).await.unwrap().unwrap();
    assert_eq!(row.name, "Cookware", "the write committed");
    let cached = fx.cache.get_cached_model::<Product>(1).await.unwrap();
    assert_eq!(
        cached.map(|p| p.category.name),
        None,
        "the committed write's invalidation was dropped with the cancelled future: \
         the product is served with the old category, and nothing reported it"
    );
}

fn renamed() -> Category {
    Category {
        id: 3,
        name: "Cookware".into(),
    }
}

// R9. Cancellation after the commit. `CachedRepository::save`/`delete` and
// `Transaction::commit` await the database commit and then, in the same
// future, the invalidations (`Pending::run`). A future dropped between the
// two — a request timeout (`tower::timeout`, axum's `TimeoutLayer`), a
// client disconnect, `tokio::select!` — loses the invalidation after the
// write has committed: nothing is returned, nothing is logged, and the old
// row is served until its timeout (a day by default). Here: Category 3 is
// renamed; the first round trip (its entry, lease and fill guard) was
// already written to the socket and runs when Redis resumes, but the
// second — the UNLINK of the `model:category:3` stamp that the Products
// embedding it are checked against — is never sent, so Product 1 keeps
// the old category name. Cancellation is
// ordinary in async Rust, and a slow Redis (fork, failover, a stall — here
// `CLIENT PAUSE … WRITE`) makes the window as long as a request's timeout.
// The lease code already guards its own cleanup against drops
// (`HeldLease::drop` spawns the release); the after-commit invalidations
// need the same (spawn `Pending::run` and await its handle, or a drop
// guard that hands what is left to the I/O runtime). Found by asking what
// a request timeout does to `save`.
async fn a_save_cancelled_after_its_commit_still_invalidates<DB: common::TestDb>(fx: Fixture<DB>) {
    cached_then_stalled(&fx).await;
    let saved =
        tokio::time::timeout(Duration::from_millis(400), fx.categories.save(&renamed())).await;
    assert!(saved.is_err(), "the request timed out while invalidating");
    after_the_stall(&fx).await;
}

// R9, the same through a `Transaction`.
async fn a_commit_cancelled_after_it_landed_still_invalidates<DB: common::TestDb>(fx: Fixture<DB>) {
    cached_then_stalled(&fx).await;
    let mut tx = fx.categories.begin().await.unwrap();
    tx.save(&fx.categories, &renamed()).await.unwrap();
    let committed = tokio::time::timeout(Duration::from_millis(400), tx.commit()).await;
    assert!(
        committed.is_err(),
        "the request timed out while invalidating"
    );
    after_the_stall(&fx).await;
}

/// A label keyed by free text.
#[derive(Debug, Clone, PartialEq, larder::CachedModel)]
#[larder(prefix = "review-label")]
struct Label {
    id: String,
    name: String,
}

// Holds (regression test): text ids with JSON, key and glob syntax in them
// (commas, quotes, backslashes, `:`, `%`, `*`, `?`, `[`, non-ASCII) travel
// through the trigger's payload and the listener exactly: a raw UPDATE of
// one invalidates that one only, never a neighbour a glob would match.
async fn text_ids_with_syntax_in_them_invalidate_exactly(fx: Fixture<Postgres>) {
    // A table of its own beside the fixture's (`labels` is none of them).
    sqlx::raw_sql("CREATE TABLE labels (id text PRIMARY KEY, name text NOT NULL)")
        .execute(&fx.pool)
        .await
        .unwrap();
    let ids = [
        "a,b",
        "\"q\"",
        "back\\slash",
        "x:y",
        "50%",
        "*",
        "a?",
        "[ab]",
        "café ☕",
        "a",
        "b",
        "x%3Ay",
    ];
    for id in ids {
        sqlx::query("INSERT INTO labels VALUES ($1, 'old')")
            .bind(id)
            .execute(&fx.pool)
            .await
            .unwrap();
    }
    install_notify_trigger(&fx.pool, "labels", "id", fx.channel())
        .await
        .unwrap();
    let cache = fx.feed_cache().await;
    let feed = ChangeFeed::builder(cache.clone(), fx.pool.clone())
        .channel(fx.channel())
        .watch::<Label>("labels")
        .start()
        .await
        .unwrap();
    for id in ids {
        cache
            .cache_model(&Label {
                id: id.into(),
                name: "old".into(),
            })
            .await
            .unwrap();
    }
    for changed in ["*", "x:y", "\"q\"", "a,b", "[ab]"] {
        sqlx::query("UPDATE labels SET name = 'new' WHERE id = $1")
            .bind(changed)
            .execute(&fx.pool)
            .await
            .unwrap();
    }
    caught_up_within(&feed).await.unwrap();
    for id in ids {
        let cached = cache.get_cached_model::<Label>(id.into()).await.unwrap();
        let changed = ["*", "x:y", "\"q\"", "a,b", "[ab]"].contains(&id);
        assert_eq!(cached.is_none(), changed, "{id:?}");
    }
    feed.shutdown().await;
}
