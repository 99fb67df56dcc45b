//! Model hits beside a plain `Cache::get` of the same bytes, in one run.
//!
//! - `model_hit/plain_get`: `Cache::get::<Widget>` of a value stored with
//!   `Cache::set` — the anchor.
//! - `model_hit/get_cached_model`: the same struct cached as a model
//!   without related models (one `GET`, plus the schema compare).
//! - `model_hit/get_or_load_model`: the read-through on a hit.
//! - `model_related_hit/plain_get`: a `Product` embedding its `Category`,
//!   stored with `Cache::set`.
//! - `model_related_hit/get_cached_model`: the same as a model with
//!   `related(category)`: one script that reads the entry and its stamps.
//!
//! The ratios (model / plain, time per read; >1 means the model read is
//! slower) are printed after criterion's summary, from interleaved rounds
//! so that the drift of a shared 2-core machine cancels out. Redis is a
//! private `redis-server` from `larder-test-support`.

#[allow(dead_code)] // shared with the other benches; this one uses the interleaving only
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use larder::Cache;
use larder::CachedModel;
use larder_test_support::RedisServer;
use serde::{Deserialize, Serialize};
use support::{interleaved, print_interleaved, quick_run, runtime};

const TTL: Duration = Duration::from_secs(3600);
/// Reads per interleaved batch.
const READS: u64 = 2_000;

/// A model without related models (~100 bytes, as `hit_path`'s product).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CachedModel)]
#[larder(prefix = "widget")]
struct Widget {
    id: u64,
    name: String,
    price_cents: u64,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CachedModel)]
#[larder(prefix = "category")]
struct Category {
    id: u64,
    name: String,
}

/// A model embedding its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CachedModel)]
#[larder(prefix = "product", related(category))]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
    category: Category,
}

fn widget() -> Widget {
    Widget {
        id: 1,
        name: "Cast-iron teapot, 1.2 litre, matte black".into(),
        price_cents: 4_999,
        tags: vec!["kitchen".into(), "tea".into(), "cast-iron".into()],
    }
}

fn product() -> Product {
    Product {
        id: 1,
        name: "Cast-iron teapot, 1.2 litre, matte black".into(),
        price_cents: 4_999,
        category: Category {
            id: 3,
            name: "Teapots".into(),
        },
    }
}

/// Times `reads` awaited calls of `read` on the runtime's own thread.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, reads: u64, read: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..reads {
            read().await;
        }
        start.elapsed()
    })
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let server = RedisServer::spawn();
    let rt = runtime();
    let cache = rt.block_on(async {
        let config = larder::Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2))
            .build()
            .expect("config");
        let cache = Cache::connect(config).await.expect("connect");
        cache.set("plain:1", &widget(), TTL).await.expect("set");
        cache
            .set("plainproduct:1", &product(), TTL)
            .await
            .expect("set");
        cache.cache_model(&widget()).await.expect("cache_model");
        cache.cache_model(&product()).await.expect("cache_model");
        cache
    });

    // Every variant hits, and reads what was stored.
    let plain = || async {
        let hit = cache.get::<Widget>("plain:1").await.expect("get");
        black_box(hit.expect("hit"));
    };
    let model = || async {
        let hit = cache.get_cached_model::<Widget>(1).await.expect("get");
        black_box(hit.expect("hit"));
    };
    let loaded = || async {
        let hit = cache
            .get_or_load_model::<Widget, larder::Error, _, _>(1, || async {
                panic!("a hit never loads")
            })
            .await
            .expect("get");
        black_box(hit.expect("hit"));
    };
    let plain_related = || async {
        let hit = cache.get::<Product>("plainproduct:1").await.expect("get");
        black_box(hit.expect("hit"));
    };
    let model_related = || async {
        let hit = cache.get_cached_model::<Product>(1).await.expect("get");
        black_box(hit.expect("hit"));
    };
    rt.block_on(async {
        assert_eq!(
            cache.get::<Widget>("plain:1").await.unwrap(),
            Some(widget())
        );
        assert_eq!(
            cache.get_cached_model::<Widget>(1).await.unwrap(),
            Some(widget())
        );
        assert_eq!(
            cache.get_cached_model::<Product>(1).await.unwrap(),
            Some(product())
        );
    });

    let mut group = c.benchmark_group("model_hit");
    group.bench_function("plain_get", |b| {
        b.iter_custom(|iters| timed(&rt, iters, plain))
    });
    group.bench_function("get_cached_model", |b| {
        b.iter_custom(|iters| timed(&rt, iters, model))
    });
    group.bench_function("get_or_load_model", |b| {
        b.iter_custom(|iters| timed(&rt, iters, loaded))
    });
    group.finish();
    let mut group = c.benchmark_group("model_related_hit");
    group.bench_function("plain_get", |b| {
        b.iter_custom(|iters| timed(&rt, iters, plain_related))
    });
    group.bench_function("get_cached_model", |b| {
        b.iter_custom(|iters| timed(&rt, iters, model_related))
    });
    group.finish();

    if !quick_run() {
        interleaved(
            "model_hit get_cached_model/plain_get",
            "time per read; >1 means the model read is slower",
            || timed(&rt, READS, model),
            || timed(&rt, READS, plain),
        );
        interleaved(
            "model_hit get_or_load_model/plain_get",
            "time per read; >1 means the model read is slower",
            || timed(&rt, READS, loaded),
            || timed(&rt, READS, plain),
        );
        interleaved(
            "model_related_hit get_cached_model/plain_get",
            "time per read; one script reading the entry and its stamps against one GET",
            || timed(&rt, READS, model_related),
            || timed(&rt, READS, plain_related),
        );
    }
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_interleaved();
    }
    drop(cache);
    drop(rt);
    drop(server);
}
