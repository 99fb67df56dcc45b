//! `install_notify_trigger`: idempotent, and safe with names that hold SQL;
//! payloads the feed cannot read fail closed. Needs `DATABASE_URL`
//! (PostgreSQL).

#![cfg(feature = "postgres")]

mod change_feed_support;

use change_feed_support::*;
use larder_sqlx::ErrorKind;
use larder_sqlx::change_feed::{ChangeFeed, install_notify_trigger};
use larder_test_support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_installed_twice_notifies_once() {
    let Some(url) = database_url("a_trigger_installed_twice_notifies_once") else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(1, 5).await; // installs the triggers once
    install_notify_trigger(&db.pool, "products", "id", db.channel())
        .await
        .expect("installing again works");
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        triggers, 4,
        "one trigger per event: insert, update, delete, truncate"
    );

    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .start()
        .await
        .unwrap();
    let products = db.products().await;
    cache_all(&cache, &products).await;
    let before = feed.stats();
    sqlx::query("UPDATE products SET price_cents = 5 WHERE id = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(
        feed.stats().invalidations - before.invalidations,
        1,
        "one notification of one id"
    );
    assert_eq!(cache.get_cached_model::<Product>(2).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(3).await.unwrap().as_ref(),
        Some(&products[2])
    );
    feed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_quoted_or_refused() {
    let Some(url) = database_url("hostile_names_are_quoted_or_refused") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let hostile = r#"x"; DROP TABLE victims; --"#;
    sqlx::raw_sql(
        r#"CREATE TABLE victims (id bigint);
           CREATE TABLE "x""; DROP TABLE victims; --" ("i""d" bigint PRIMARY KEY, v text);
           INSERT INTO "x""; DROP TABLE victims; --" VALUES (1, 'a');"#,
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let victims_remain = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT to_regclass('victims')::text")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .is_some()
    };

    // A name that is no table: an error from PostgreSQL, nothing executed.
    let missing = install_notify_trigger(&db.pool, "products\"; DROP TABLE victims; --", "id", "c")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Database, "{missing}");
    assert!(victims_remain().await);

    // A table, an id column and a channel whose names hold SQL: quoted, so
    // they work as names.
    let channel = r#"ch'an"nel\"#;
    install_notify_trigger(&db.pool, hostile, r#"i"d"#, channel)
        .await
        .expect("quoted names work");
    assert!(victims_remain().await);
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    listener.listen(channel).await.unwrap();
    sqlx::raw_sql(r#"UPDATE "x""; DROP TABLE victims; --" SET v = 'b'"#)
        .execute(&db.pool)
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
        let refused = install_notify_trigger(&db.pool, &table, &column, &channel)
            .await
            .unwrap_err();
        assert!(refused.is_config(), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_the_feed_cannot_read_fail_closed() {
    let Some(url) = database_url("payloads_the_feed_cannot_read_fail_closed") else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(2, 4).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .watch::<Category>("categories")
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    let products = db.products().await;
    let categories = db.categories().await;
    let refill = || async {
        cache_all(&cache, &products).await;
        cache_all(&cache, &categories).await;
    };
    let notify = |payload: &'static str| {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(db.channel())
            .bind(payload)
            .execute(&db.pool)
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
        cache.get_cached_model::<Product>(1).await.unwrap().as_ref(),
        Some(&products[0])
    );
    feed.shutdown().await;
}
