//! Model caching (`larder::model`), run against both stores: a private
//! redis-server and the in-process `MemoryStore`. Round trips are counted
//! on the private server with `INFO commandstats`. Related models are in
//! `models_related.rs`, the Django original's examples in `models_django.rs`.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::models::*;
use common::{Fixture, on_both_stores};
use larder::model::model_key;
use larder::{Codec, Compression};

on_both_stores!(
    a_model_round_trips_under_the_django_key,
    excluded_fields_never_reach_the_store,
    get_cached_models_keeps_order_and_misses,
    a_version_bump_is_a_miss_that_keeps_the_old_entry,
    a_schema_change_is_a_miss_that_keeps_the_old_entry,
    plain_reads_and_model_reads_never_take_each_others_entries,
    invalidation_by_instance_and_by_id,
    a_disabled_model_passes_through,
    corrupt_bytes_under_a_model_key_are_a_miss,
    a_bad_prefix_is_a_config_error,
    caching_a_model_voids_a_computation_in_flight,
);

async fn a_model_round_trips_under_the_django_key(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.prefix("shop").version("7")).await;
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    cache.cache_model(&product(1, 3)).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
    assert_eq!(model_key::<Product>(&1).unwrap(), "product:1");
    assert_eq!(cache.physical_key("product:1"), "shop:7:product:1");
    assert!(raw_bytes(&cache, "product:1").await.is_some());
    if let Some(server) = fixture.server() {
        let mut conn = common::raw(server).await;
        assert!(common::exists(&mut conn, "shop:7:product:1").await);
        let ttl: i64 = ::redis::cmd("TTL")
            .arg("shop:7:product:1")
            .query_async(&mut conn)
            .await
            .unwrap();
        // One day, ± the 10% jitter.
        assert!((77_760..=95_040).contains(&ttl), "{ttl}");
    }
}

async fn excluded_fields_never_reach_the_store(fixture: Fixture) {
    let cache = fixture
        .cache_with(|b| b.codec(Codec::Json).compression(Compression::None))
        .await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    let bytes = raw_bytes(&cache, "product:1").await.unwrap();
    assert!(
        !bytes.windows(NOTES.len()).any(|w| w == NOTES.as_bytes()),
        "the excluded field reached the store"
    );
    let stored: serde_json::Value = serde_json::from_slice(payload(&bytes)).unwrap();
    let mut fields: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["category", "id", "name", "price_cents"]);
    let back = cache.get_cached_model::<Product>(1).await.unwrap().unwrap();
    assert_eq!(back.internal_notes, String::default());
    assert_eq!(back, cached(1, 3));
}

async fn get_cached_models_keeps_order_and_misses(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in [1, 3] {
        cache.cache_model(&product(id, 3)).await.unwrap();
        cache.cache_model(&Widget::new(id)).await.unwrap();
    }
    let products = cache
        .get_cached_models::<Product>(&[3, 2, 1, 3])
        .await
        .unwrap();
    assert_eq!(
        products,
        [
            Some(cached(3, 3)),
            None,
            Some(cached(1, 3)),
            Some(cached(3, 3))
        ]
    );
    let widgets = cache.get_cached_models::<Widget>(&[2, 1]).await.unwrap();
    assert_eq!(widgets, [None, Some(Widget::new(1))]);
    assert!(
        cache
            .get_cached_models::<Widget>(&[])
            .await
            .unwrap()
            .is_empty()
    );

    let Some(server) = fixture.server() else {
        return;
    };
    // Round trips, counted by the server.
    let mut conn = common::raw(server).await;
    let commands = ["get", "mget", "evalsha", "eval", "set", "unlink", "sscan"];
    let mut before = Vec::new();
    for command in commands {
        before.push(common::command_calls(&mut conn, command).await);
    }
    let mut delta = async |conn: &mut ::redis::aio::MultiplexedConnection| {
        let mut out = HashMap::new();
        for (command, before) in commands.iter().zip(before.iter_mut()) {
            let now = common::command_calls(conn, command).await;
            out.insert(*command, now - *before);
            *before = now;
        }
        out
    };
    let ids: Vec<u64> = (1..=50).collect();
    // No dependencies: one MGET, nothing else.
    let widgets = cache.get_cached_models::<Widget>(&ids).await.unwrap();
    assert_eq!(widgets.iter().flatten().count(), 2);
    let d = delta(&mut conn).await;
    assert_eq!((d["mget"], d["get"], d["evalsha"] + d["eval"]), (1, 0, 0));
    // Dependencies: one MGET for the values, one for all their stamps.
    let products = cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert_eq!(products.iter().flatten().count(), 2);
    let d = delta(&mut conn).await;
    assert_eq!((d["mget"], d["get"], d["evalsha"] + d["eval"]), (2, 0, 0));
    // One model without dependencies: one GET.
    assert!(cache.get_cached_model::<Widget>(1).await.unwrap().is_some());
    let d = delta(&mut conn).await;
    assert_eq!((d["get"], d["mget"]), (1, 0));
    // With related models: one script reads the entry and its stamps (its
    // GETs inside count as GETs: the entry, the category's stamp, the
    // category model's generation). The first call loads the script.
    for _ in 0..2 {
        assert!(
            cache
                .get_cached_model::<Product>(1)
                .await
                .unwrap()
                .is_some()
        );
    }
    delta(&mut conn).await;
    assert!(
        cache
            .get_cached_model::<Product>(1)
            .await
            .unwrap()
            .is_some()
    );
    let d = delta(&mut conn).await;
    assert_eq!((d["get"], d["mget"], d["evalsha"], d["eval"]), (3, 0, 1, 0));
    // Writing without dependencies: one pipeline with one SET; with
    // dependencies, the stamps script first.
    cache.cache_model(&Widget::new(9)).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["set"], d["evalsha"] + d["eval"]), (1, 0));
    cache.cache_model(&product(9, 3)).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["set"], d["evalsha"] + d["eval"]), (1, 1));
    // Invalidating an instance: its lease and value (one pipeline), its
    // tag's stamp, one SSCAN of its (here empty) index.
    cache.invalidate_model_cache_id::<Product>(9).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["unlink"], d["sscan"]), (3, 1));
}

async fn a_version_bump_is_a_miss_that_keeps_the_old_entry(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&WidgetV1::new(1)).await.unwrap();
    // The new build misses, without deleting the old build's entry.
    assert_eq!(cache.get_cached_model::<WidgetV2>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<WidgetV2>(&[1]).await.unwrap(),
        [None]
    );
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    // The old build still reads its own.
    assert_eq!(
        cache.get_cached_model::<WidgetV1>(1).await.unwrap(),
        Some(WidgetV1::new(1))
    );
    // The new build's write is its own; the last writer owns the key.
    cache.cache_model(&WidgetV2::new(1)).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<WidgetV2>(1).await.unwrap(),
        Some(WidgetV2::new(1))
    );
    assert_eq!(cache.get_cached_model::<WidgetV1>(1).await.unwrap(), None);
}

async fn a_schema_change_is_a_miss_that_keeps_the_old_entry(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&WidgetS1::new(1)).await.unwrap();
    assert_eq!(cache.get_cached_model::<WidgetS2>(1).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Widget>(1).await.unwrap(), None);
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    assert_eq!(
        cache.get_cached_model::<WidgetS1>(1).await.unwrap(),
        Some(WidgetS1::new(1))
    );
}

async fn plain_reads_and_model_reads_never_take_each_others_entries(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&Widget::new(1)).await.unwrap();
    // Same bytes of payload, but a plain read is not the model's reader.
    assert_eq!(cache.get::<Widget>("widget:1").await.unwrap(), None);
    let plain: Vec<Option<Widget>> = cache.get_many(&["widget:1"]).await.unwrap();
    assert_eq!(plain, [None]);
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    cache
        .set("widget:2", &Widget::new(2), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Widget>(2).await.unwrap(), None);
    assert!(cache.get_cached_model::<Widget>(1).await.unwrap().is_some());
}

async fn invalidation_by_instance_and_by_id(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in 1..=3 {
        cache.cache_model(&product(id, 3)).await.unwrap();
    }
    assert!(cache.invalidate_model_cache(&product(1, 3)).await.unwrap());
    assert!(cache.invalidate_model_cache_id::<Product>(2).await.unwrap());
    assert!(!cache.invalidate_model_cache_id::<Product>(2).await.unwrap());
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 3])
            .await
            .unwrap(),
        [None, None, Some(cached(3, 3))]
    );
    assert!(raw_bytes(&cache, "product:1").await.is_none());
}

async fn a_disabled_model_passes_through(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&Disabled::new(1)).await.unwrap();
    assert!(raw_bytes(&cache, "disabled:1").await.is_none());
    // Even an entry put there by other means is not read.
    cache
        .set("disabled:1", &Disabled::new(1), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Disabled>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<Disabled>(&[1, 2]).await.unwrap(),
        [None, None]
    );
    // An invalidation still removes it: entries written while caching was
    // on must not outlive a write made while it is off.
    assert!(
        cache
            .invalidate_model_cache(&Disabled::new(1))
            .await
            .unwrap()
    );
    assert!(raw_bytes(&cache, "disabled:1").await.is_none());
    assert!(
        !cache
            .invalidate_model_cache_id::<Disabled>(1)
            .await
            .unwrap()
    );
}

async fn corrupt_bytes_under_a_model_key_are_a_miss(fixture: Fixture) {
    let cache = fixture.cache().await;
    for (key, bytes) in [
        ("product:1", &b"not an envelope"[..]),
        ("product:2", &b""[..]),
        ("widget:1", &b"LD\x02\x00garbage"[..]),
    ] {
        cache
            .store()
            .set(
                &cache.physical_key(key),
                Bytes::copy_from_slice(bytes),
                common::HOUR,
            )
            .await
            .unwrap();
    }
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 3])
            .await
            .unwrap(),
        [None, None, None]
    );
    assert_eq!(cache.get_cached_model::<Widget>(1).await.unwrap(), None);
    // Removed, as any corrupt entry.
    for key in ["product:1", "product:2", "widget:1"] {
        assert!(raw_bytes(&cache, key).await.is_none(), "{key}");
    }
    // A flipped bit in a real entry: a miss too.
    cache.cache_model(&product(4, 3)).await.unwrap();
    let mut bytes = raw_bytes(&cache, "product:4").await.unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    cache
        .store()
        .set(&cache.physical_key("product:4"), bytes.into(), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Product>(4).await.unwrap(), None);

    // Envelope heads that lie about their stamps (the stamped read walks
    // them on the server): a count past the end, a key length past the
    // end, the most stamps a count can claim. Each is a miss, never an
    // error or a panic, and never a hit.
    let mut head = b"LD\x02\x00".to_vec();
    head.resize(32, 0);
    let lies: [Vec<u8>; 3] = [
        [&head[..], &[5, 0]].concat(),
        [&head[..], &[1, 0, 0xff, 0xff, b'x']].concat(),
        [&head[..], &[0xff, 0xff], &[0; 64]].concat(),
    ];
    for lie in lies {
        cache
            .store()
            .set(&cache.physical_key("product:5"), lie.into(), common::HOUR)
            .await
            .unwrap();
        assert_eq!(cache.get_cached_model::<Product>(5).await.unwrap(), None);
    }
    // A real entry whose stamp tag was rewritten to another tag of the
    // same length: the walk reads that tag's stamp, the values differ.
    cache.cache_model(&product(6, 3)).await.unwrap();
    let bytes = raw_bytes(&cache, "product:6").await.unwrap().to_vec();
    let at = bytes
        .windows(16)
        .position(|w| w == b"model:category:3")
        .unwrap();
    let mut forged = bytes.clone();
    forged[at + 15] = b'4';
    cache.cache_model(&product(7, 4)).await.unwrap();
    cache
        .store()
        .set(
            &cache.physical_key("product:6"),
            forged.into(),
            common::HOUR,
        )
        .await
        .unwrap();
    // The checksum catches the forgery before any stamp matters.
    assert_eq!(cache.get_cached_model::<Product>(6).await.unwrap(), None);
}

async fn a_bad_prefix_is_a_config_error(fixture: Fixture) {
    let cache = fixture.cache().await;
    let errors = [
        cache.cache_model(&BadPrefix::new(1)).await.unwrap_err(),
        cache.get_cached_model::<BadPrefix>(1).await.unwrap_err(),
        cache
            .get_cached_models::<BadPrefix>(&[1])
            .await
            .unwrap_err(),
        cache
            .invalidate_model_cache_id::<BadPrefix>(1)
            .await
            .unwrap_err(),
        model_key::<BadPrefix>(&1).unwrap_err(),
    ];
    for err in errors {
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("\"bad:prefix\""), "{err}");
    }
}

async fn caching_a_model_voids_a_computation_in_flight(fixture: Fixture) {
    let holder = fixture.cache().await;
    let cache = fixture.cache().await;
    // A plain computation of `widget:1` began before the model was cached.
    let (holding, fill) = common::hold_a_computation(holder, "widget:1").await;
    cache.cache_model(&Widget::new(1)).await.unwrap();
    fill.send(()).unwrap();
    assert_eq!(holding.await.unwrap(), "report");
    // Its fill was refused: the model's entry stands.
    assert_eq!(
        cache.get_cached_model::<Widget>(1).await.unwrap(),
        Some(Widget::new(1))
    );
}

/// The free functions on the global cache: the only test of this binary
/// that installs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_functions_use_the_global_cache() {
    let server = larder_test_support::RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    larder::init(cache.clone()).unwrap();

    larder::cache_model(&product(1, 3)).await.unwrap();
    larder::cache_model(&product(2, 4)).await.unwrap();
    assert_eq!(
        larder::get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
    assert_eq!(
        larder::get_cached_models::<Product>(&[2, 3]).await.unwrap(),
        [Some(cached(2, 4)), None]
    );
    assert!(
        larder::invalidate_model_cache(&product(1, 3))
            .await
            .unwrap()
    );
    assert!(
        larder::invalidate_model_cache_id::<Product>(2)
            .await
            .unwrap()
    );
    assert_eq!(
        larder::get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, None]
    );

    larder::cache_model(&product(1, 3)).await.unwrap();
    assert!(larder::delete_cached_data("product:1").await.unwrap());
    larder::cache_model(&product(1, 3)).await.unwrap();
    larder::cache_model(&product(2, 3)).await.unwrap();
    assert_eq!(
        larder::invalidate_cache_pattern("product:*").await.unwrap(),
        2
    );
    // The same entries through the handle that was installed.
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}

/// 10,000 ids: one `MGET` for the values and one for the stamps of all
/// their dependencies, counted by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_models_are_read_in_one_round_trip() {
    let fixture = Fixture::redis();
    let server = fixture.server().unwrap();
    let cache = fixture.cache().await;
    let ids: Vec<u64> = (1..=10_000).collect();
    let writes = ids.iter().map(|&id| {
        let cache = cache.clone();
        async move {
            cache.cache_model(&Widget::new(id)).await.unwrap();
            cache.cache_model(&product(id, id % 50)).await.unwrap();
        }
    });
    // 64 writers at once: 20,000 at once would measure the machine, not
    // the reads this test is about (each write has the deadline to land).
    futures::StreamExt::collect::<Vec<()>>(futures::StreamExt::buffer_unordered(
        futures::stream::iter(writes),
        64,
    ))
    .await;
    let mut conn = common::raw(server).await;
    let mgets = common::command_calls(&mut conn, "mget").await;
    let widgets = cache.get_cached_models::<Widget>(&ids).await.unwrap();
    assert!(widgets.iter().all(Option::is_some));
    assert_eq!(common::command_calls(&mut conn, "mget").await, mgets + 1);
    let products = cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert_eq!(products[41], Some(cached(42, 42)));
    assert!(products.iter().all(Option::is_some));
    // The values, then the stamps of the 50 categories (and their model's
    // generation) once each.
    assert_eq!(common::command_calls(&mut conn, "mget").await, mgets + 3);
}
