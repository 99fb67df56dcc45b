//! `install_notify_trigger`: idempotent, and safe with names that hold SQL;
//! payloads the feed cannot read fail closed. Needs `DATABASE_URL`
//! (PostgreSQL).

#![cfg(feature = "postgres")]

mod common;

use common::Fixture;
use common::feed::{cache_all, caught_up_within};
use common::models::{Category, Product, cached};
use larder_sqlx::ErrorKind;
use larder_sqlx::change_feed::install_notify_trigger;
use sqlx::Postgres;

common::on_postgres!(
    a_trigger_installed_twice_notifies_once,
    hostile_names_are_quoted_or_refused,
    a_writers_search_path_cannot_hijack_the_trigger,
    payloads_the_feed_cannot_read_fail_closed,
);

async fn a_trigger_installed_twice_notifies_once(fx: Fixture<Postgres>) {
    fx.shop(1, 5).await; // installs the triggers once
    install_notify_trigger(&fx.pool, "products", "id", fx.channel())
        .await
        .expect("installing again works");
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal",
    )
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!(
        triggers, 4,
        "one trigger per event: insert, update, delete, truncate"
    );

    let cache = fx.feed_cache().await;
    let feed = fx.products_feed(&cache).start().await.unwrap();
    let products = fx.all_products().await;
    cache_all(&cache, &products).await;
    let before = feed.stats();
    fx.execute("UPDATE products SET price_cents = 5 WHERE id = 2")
        .await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(
        feed.stats().invalidations - before.invalidations,
        1,
        "one notification of one id"
    );
    assert_eq!(cache.get_cached_model::<Product>(2).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(3).await.unwrap(),
        Some(cached(&products[2]))
    );
    feed.shutdown().await;
}

async fn hostile_names_are_quoted_or_refused(fx: Fixture<Postgres>) {
    let hostile = r#"x"; DROP TABLE victims; --"#;
    sqlx::raw_sql(
        r#"CREATE TABLE victims (id bigint);
           CREATE TABLE "x""; DROP TABLE victims; --" ("i""d" bigint PRIMARY KEY, v text);
           INSERT INTO "x""; DROP TABLE victims; --" VALUES (1, 'a');"#,
    )
    .execute(&fx.pool)
    .await
    .unwrap();
    let victims_remain = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT to_regclass('victims')::text")
            .fetch_one(&fx.pool)
            .await
            .unwrap()
            .is_some()
    };

    // A name that is no table: an error from PostgreSQL, nothing executed.
    let missing = install_notify_trigger(&fx.pool, "products\"; DROP TABLE victims; --", "id", "c")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Database, "{missing}");
    assert!(victims_remain().await);

    // A table, an id column and a channel whose names hold SQL: quoted, so
    // they work as names.
    let channel = r#"ch'an"nel\"#;
    install_notify_trigger(&fx.pool, hostile, r#"i"d"#, channel)
        .await
        .expect("quoted names work");
    assert!(victims_remain().await);
    let mut listener = sqlx::postgres::PgListener::connect_with(&fx.pool)
        .await
        .unwrap();
    listener.listen(channel).await.unwrap();
    sqlx::raw_sql(r#"UPDATE "x""; DROP TABLE victims; --" SET v = 'b'"#)
        .execute(&fx.pool)
        .await
        .unwrap();
    let notification = listener.recv().await.unwrap();
    assert_eq!(notification.channel(), channel);
    let payload: serde_json::Value = serde_json::from_str(notification.payload()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({ "table": hostile, "ids": ["1"] })
    );
    assert!(victims_remain().await);

    // Names PostgreSQL would truncate or cut at a NUL: refused up front.
    for (table, column, channel) in [
        ("x".repeat(64), "id".to_owned(), "c".to_owned()),
        ("products".to_owned(), "i\0d".to_owned(), "c".to_owned()),
        ("products".to_owned(), "id".to_owned(), String::new()),
    ] {
        let refused = install_notify_trigger(&fx.pool, &table, &column, &channel)
            .await
            .unwrap_err();
        assert!(refused.is_config(), "{refused}");
    }
}

async fn a_writers_search_path_cannot_hijack_the_trigger(fx: Fixture<Postgres>) {
    fx.shop(1, 5).await;
    // A `to_json(text)` in the writers' schema: an exact match, it would
    // beat `pg_catalog.to_json(anyelement)` for a text argument wherever
    // it sat in the `search_path`, and name a table nobody watches.
    sqlx::raw_sql(
        "CREATE FUNCTION to_json(text) RETURNS json LANGUAGE sql
         AS $$ SELECT '\"hijacked\"'::json $$",
    )
    .execute(&fx.pool)
    .await
    .unwrap();
    let cache = fx.feed_cache().await;
    let feed = fx.products_feed(&cache).start().await.unwrap();
    let products = fx.all_products().await;
    cache_all(&cache, &products).await;
    fx.execute("UPDATE products SET price_cents = 5 WHERE id = 2")
        .await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(2).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(3).await.unwrap(),
        Some(cached(&products[2]))
    );
    feed.shutdown().await;
}

async fn payloads_the_feed_cannot_read_fail_closed(fx: Fixture<Postgres>) {
    fx.shop(2, 4).await;
    let cache = fx.feed_cache().await;
    let feed = fx
        .shop_feed(&cache)
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    let products = fx.all_products().await;
    let categories = fx.all_categories().await;
    let refill = || async {
        cache_all(&cache, &products).await;
        cache_all(&cache, &categories).await;
    };
    let notify = |payload: &'static str| {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(fx.channel())
            .bind(payload)
            .execute(&fx.pool)
    };

    // An id that is not a product id: every product goes, categories stay.
    refill().await;
    notify(r#"{"table":"products","ids":["not a number"]}"#)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache
            .get_cached_model::<Category>(1)
            .await
            .unwrap()
            .as_ref(),
        Some(&categories[0])
    );
    assert_eq!(feed.stats().unreadable_payloads, 1);

    // Not a payload of ours at all: every watched model goes.
    refill().await;
    notify("garbage").await.unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Category>(1).await.unwrap(), None);
    assert_eq!(feed.stats().unreadable_payloads, 2);

    // A table nobody watches: nothing goes.
    refill().await;
    notify(r#"{"table":"orders","ids":["1"]}"#).await.unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(&products[0]))
    );
    feed.shutdown().await;
}
