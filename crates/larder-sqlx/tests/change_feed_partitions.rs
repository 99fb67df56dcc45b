//! `install_notify_trigger` on a partitioned table: writes through the
//! parent, an intermediate partition or a leaf each announce their ids
//! once, under the parent's name; a partition attached later needs the
//! install again. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod common;

use common::Fixture;
use larder_sqlx::change_feed::install_notify_trigger;
use serde_json::{Value, json};
use sqlx::Postgres;
use sqlx::postgres::PgListener;

common::on_postgres!(
    every_partition_announces_each_write_once,
    a_partition_attached_later_announces_once_installed_again,
);

/// `products`, range-partitioned by id into `products_low` (0–99, a leaf)
/// and `products_high` (100–999, itself partitioned by list of category
/// into `products_high_a` and `products_high_b`), with rows 2, 150 and
/// 250, and the triggers installed on `products`.
async fn partitioned(fx: &Fixture<Postgres>) {
    // The fixture's own `products` makes way.
    fx.execute("DROP TABLE products").await;
    sqlx::raw_sql(
        "CREATE TABLE products (
             id bigint NOT NULL,
             name text NOT NULL,
             price_cents bigint NOT NULL,
             category_id bigint NOT NULL,
             internal_notes text NOT NULL DEFAULT ''
         ) PARTITION BY RANGE (id);
         CREATE TABLE products_low PARTITION OF products FOR VALUES FROM (0) TO (100);
         CREATE TABLE products_high PARTITION OF products FOR VALUES FROM (100) TO (1000)
             PARTITION BY LIST (category_id);
         CREATE TABLE products_high_a PARTITION OF products_high FOR VALUES IN (1);
         CREATE TABLE products_high_b PARTITION OF products_high FOR VALUES IN (2);
         INSERT INTO products VALUES (2, 'Product 2', 1002, 1), (150, 'Product 150', 1150, 1),
             (250, 'Product 250', 1250, 2);",
    )
    .execute(&fx.pool)
    .await
    .unwrap();
    install_notify_trigger(&fx.pool, "products", "id", fx.channel())
        .await
        .expect("a partitioned table takes the triggers");
}

/// A listener on the test's channel.
async fn listener(fx: &Fixture<Postgres>) -> PgListener {
    let mut listener = PgListener::connect_with(&fx.pool).await.unwrap();
    listener.listen(fx.channel()).await.unwrap();
    listener
}

/// The payloads `sql` sends, in order: everything heard before an end
/// marker sent after it (notifications arrive in commit order).
async fn announced(
    fx: &Fixture<Postgres>,
    listener: &mut PgListener,
    sql: &'static str,
) -> Vec<Value> {
    fx.execute(sql).await;
    sqlx::query("SELECT pg_notify($1, 'end')")
        .bind(fx.channel())
        .execute(&fx.pool)
        .await
        .unwrap();
    let mut payloads = Vec::new();
    loop {
        let notification = listener.recv().await.unwrap();
        if notification.payload() == "end" {
            return payloads;
        }
        payloads.push(serde_json::from_str(notification.payload()).unwrap());
    }
}

fn ids(ids: &[&str]) -> Vec<Value> {
    vec![json!({ "table": "products", "ids": ids })]
}

async fn every_partition_announces_each_write_once(fx: Fixture<Postgres>) {
    partitioned(&fx).await;
    let mut listener = listener(&fx).await;
    for _ in 0..2 {
        // Through the parent, an intermediate partition and leaves:
        // once each, under the parent's name.
        let cases = [
            (
                "UPDATE products SET price_cents = 1 WHERE id = 2",
                ids(&["2"]),
            ),
            (
                "UPDATE products_low SET price_cents = 2 WHERE id = 2",
                ids(&["2"]),
            ),
            (
                "UPDATE products_high SET price_cents = 3",
                ids(&["150", "250"]),
            ),
            (
                "UPDATE products_high_b SET price_cents = 4 WHERE id = 250",
                ids(&["250"]),
            ),
            (
                "INSERT INTO products_high_a VALUES (160, 'Product 160', 1160, 1)",
                ids(&["160"]),
            ),
            ("DELETE FROM products_high_a WHERE id = 160", ids(&["160"])),
            // A row moved to another partition by an update of a partition
            // above both.
            (
                "UPDATE products_high SET category_id = 2 WHERE id = 150",
                ids(&["150"]),
            ),
        ];
        for (sql, expected) in cases {
            let mut got = announced(&fx, &mut listener, sql).await;
            for payload in &mut got {
                if let Some(Value::Array(ids)) = payload.get_mut("ids") {
                    ids.sort_by_key(ToString::to_string);
                }
            }
            assert_eq!(got, expected, "{sql}");
        }
        let everything = vec![json!({ "table": "products", "all": true })];
        assert_eq!(
            announced(&fx, &mut listener, "TRUNCATE products_high_b").await,
            everything
        );
        // Installing again replaces the triggers: nothing doubles.
        install_notify_trigger(&fx.pool, "products", "id", fx.channel())
            .await
            .unwrap();
        // The rows as they were: the truncate took 150 (moved) and 250.
        fx.execute(
            "INSERT INTO products VALUES (150, 'Product 150', 1150, 1), \
             (250, 'Product 250', 1250, 2)",
        )
        .await;
        let _ = announced(&fx, &mut listener, "SELECT 1").await;
    }

    // A truncate of the parent fires every partition's truncate trigger
    // too; PostgreSQL folds identical notifications of one transaction.
    assert_eq!(
        announced(&fx, &mut listener, "TRUNCATE products").await,
        vec![json!({ "table": "products", "all": true })]
    );

    // Every table of the tree has its four, enabled always (they fire in
    // `session_replication_role = replica` sessions too).
    let triggers: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT c.relname::text, count(*),
                count(*) FILTER (WHERE t.tgenabled = 'A')
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE t.tgname LIKE 'larder_notify_%'
         GROUP BY c.relname ORDER BY c.relname",
    )
    .fetch_all(&fx.pool)
    .await
    .unwrap();
    let tables = [
        "categories",
        "products",
        "products_high",
        "products_high_a",
        "products_high_b",
        "products_low",
    ];
    let installed: Vec<&str> = triggers.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(installed, tables[1..], "only the tree of `products`");
    for (table, count, always) in triggers {
        assert_eq!((count, always), (4, 4), "{table}");
    }
}

async fn a_partition_attached_later_announces_once_installed_again(fx: Fixture<Postgres>) {
    partitioned(&fx).await;
    sqlx::raw_sql(
        "CREATE TABLE products_huge (LIKE products);
         ALTER TABLE products ATTACH PARTITION products_huge FOR VALUES FROM (1000) TO (2000);
         INSERT INTO products VALUES (1500, 'Product 1500', 2500, 1);",
    )
    .execute(&fx.pool)
    .await
    .unwrap();
    let mut listener = listener(&fx).await;
    let sql = "UPDATE products_huge SET price_cents = 1 WHERE id = 1500";
    assert_eq!(
        announced(&fx, &mut listener, sql).await,
        Vec::<Value>::new(),
        "as documented: no triggers until the install runs again"
    );
    install_notify_trigger(&fx.pool, "products", "id", fx.channel())
        .await
        .unwrap();
    assert_eq!(announced(&fx, &mut listener, sql).await, ids(&["1500"]));
}
