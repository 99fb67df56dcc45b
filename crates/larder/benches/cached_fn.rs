//! `#[larder::cached]` hit-path benchmarks: the attribute beside its anchors,
//! in one run.
//!
//! Every variant is a cache hit on the same ~100-byte `Product` in the same
//! private Redis:
//!
//! - `larder_macro_hit`: `Repo::get_product(1)`, a method under
//!   `#[larder::cached(namespace = "product", ttl = 3600, cache = self.cache, receiver = "skip")]`.
//! - `larder_direct_get`: `Cache::get::<Product>` of the very same logical key
//!   (from the generated `Repo::get_product_key(1)`) on the very same `Cache`.
//! - `cached_crate_hit`: the `cached` crate's
//!   `#[concurrent_cached]` async function on an `AsyncRedisCache<u64, Product>`
//!   (built in a `create` block: its `redis = true` form reads the connection
//!   string from an environment variable, and setting one is `unsafe` in
//!   edition 2024, which the workspace forbids).
//!
//! Each is measured with 1 task (latency: one call at a time) and with 64
//! concurrent tokio tasks on a 2-worker runtime (throughput). Criterion does
//! not compare benchmarks, so each variant records its mean time per
//! operation and `main` prints the ratios after criterion's summary, followed
//! by interleaved (drift-cancelling) medians.
//!
//! Redis is a private `redis-server` spawned by `larder-test-support` (never
//! the shared one on port 6379); it is killed when the benchmark ends.

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cached::macros::concurrent_cached;
use criterion::{Criterion, Throughput};
use larder_test_support::RedisServer;
use support::{Product, Recorder, interleaved, print_interleaved, product, quick_run, runtime};
use tokio::runtime::Runtime;

/// Concurrent tasks in the throughput variants.
const TASKS: u64 = 64;
/// Samples per benchmark; the recorder keeps the last this many calls (the
/// measured ones; the warm-up calls come first).
const SAMPLE_SIZE: usize = 20;

const LATENCY: &str = "cached_fn_1task_latency";
const THROUGHPUT: &str = "cached_fn_64task_throughput";
const MACRO: &str = "larder_macro_hit";
const DIRECT: &str = "larder_direct_get";
const CACHED_CRATE: &str = "cached_crate_hit";

/// Body runs of each cached function: after the first (filling) call, every
/// call must be a hit.
static LARDER_COMPUTES: AtomicU64 = AtomicU64::new(0);
static CACHED_CRATE_COMPUTES: AtomicU64 = AtomicU64::new(0);

/// The product repository: `#[larder::cached]` on a method, the cache a
/// field.
#[derive(Clone)]
struct Repo {
    cache: larder::Cache,
}

impl Repo {
    #[larder::cached(namespace = "product", ttl = 3600, cache = self.cache, receiver = "skip")]
    async fn get_product(&self, id: u64) -> Product {
        LARDER_COMPUTES.fetch_add(1, Ordering::Relaxed);
        product(id)
    }
}

/// The private server's URL, for the `cached` crate's `create` block.
static REDIS_URL: OnceLock<String> = OnceLock::new();

/// The `cached` crate's store error, as the function sees it.
#[derive(Debug)]
struct StoreError(#[allow(dead_code)] String);

#[concurrent_cached(
    map_error = |e| StoreError(format!("{e:?}")),
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = {
        cached::AsyncRedisCache::builder("bench_cached")
            .ttl_secs(3600)
            .connection_string(REDIS_URL.get().expect("REDIS_URL is set"))
            .build()
            .await
            .expect("AsyncRedisCache")
    }
)]
async fn cached_crate_product(id: u64) -> Result<Product, StoreError> {
    CACHED_CRATE_COMPUTES.fetch_add(1, Ordering::Relaxed);
    Ok(product(id))
}

/// What one benchmarked call does.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Macro,
    Direct,
    CachedCrate,
}

/// Everything a task needs; cloned into each task.
#[derive(Clone)]
struct Target {
    repo: Repo,
    key: String,
}

impl Target {
    async fn hit(&self, variant: Variant) -> Product {
        match variant {
            Variant::Macro => self.repo.get_product(black_box(1)).await,
            Variant::Direct => self
                .repo
                .cache
                .get::<Product>(&self.key)
                .await
                .expect("get")
                .expect("hit"),
            Variant::CachedCrate => cached_crate_product(black_box(1))
                .await
                .expect("cached crate hit"),
        }
    }
}

/// `tasks` concurrent tasks, `per_task` sequential hits each; the wall time.
/// One task runs on the `block_on` thread itself: a spawned one lands on
/// either worker, beside or away from the connection's driver task, which
/// made single-caller batches bimodal (~30 vs ~70 µs per call).
fn run(rt: &Runtime, target: &Target, variant: Variant, tasks: u64, per_task: u64) -> Duration {
    if tasks == 1 {
        return rt.block_on(async {
            let start = Instant::now();
            for _ in 0..per_task {
                black_box(target.hit(variant).await);
            }
            start.elapsed()
        });
    }
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let target = target.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        black_box(target.hit(variant).await);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        start.elapsed()
    })
}

/// Every timed call of every variant.
static CALLS: Recorder = Recorder::new(SAMPLE_SIZE);

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args()
}

const VARIANTS: [(&str, Variant); 3] = [
    (MACRO, Variant::Macro),
    (DIRECT, Variant::Direct),
    (CACHED_CRATE, Variant::CachedCrate),
];

fn benches(c: &mut Criterion) {
    let server = RedisServer::spawn();
    REDIS_URL.set(server.url()).expect("REDIS_URL is set once");
    let rt = runtime();
    let expected = product(1);
    let target = rt.block_on(async {
        let config = larder::Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2))
            .build()
            .expect("config");
        let cache = larder::Cache::connect(config).await.expect("connect");
        let key = Repo::get_product_key(1).expect("key");
        Target {
            repo: Repo { cache },
            key,
        }
    });

    // Fill both caches (one computation each), then check that every variant
    // hits and returns the same value before timing anything.
    rt.block_on(async {
        assert_eq!(target.repo.get_product(1).await, expected);
        assert_eq!(
            cached_crate_product(1).await.expect("cached crate fill"),
            expected
        );
        for (_, variant) in VARIANTS {
            assert_eq!(target.hit(variant).await, expected);
        }
    });
    assert_eq!(LARDER_COMPUTES.load(Ordering::Relaxed), 1);
    assert_eq!(CACHED_CRATE_COMPUTES.load(Ordering::Relaxed), 1);
    let sizes = rt.block_on(async {
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        let mut sizes = Vec::new();
        for key in keys {
            let len: u64 = redis::cmd("STRLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("STRLEN");
            sizes.push(format!("`{key}` {len} bytes"));
        }
        sizes.sort();
        sizes
    });
    println!(
        "value: {} bytes of named MessagePack; logical key `{}`; stored: {}",
        rmp_serde::to_vec_named(&expected).expect("encode").len(),
        target.key,
        sizes.join(", ")
    );

    let mut group = c.benchmark_group(LATENCY);
    for (name, variant) in VARIANTS {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = run(&rt, &target, variant, 1, iters);
                CALLS.record(LATENCY, name, iters, elapsed);
                elapsed
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group(THROUGHPUT);
    group.throughput(Throughput::Elements(1));
    for (name, variant) in VARIANTS {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS).max(1);
                let ops = per_task * TASKS;
                let elapsed = run(&rt, &target, variant, TASKS, per_task);
                CALLS.record(THROUGHPUT, name, ops, elapsed);
                elapsed.mul_f64(iters as f64 / ops as f64)
            });
        });
    }
    group.finish();

    // Criterion runs one variant after the other, so a drift of this shared
    // 2-core machine lands on one side. Interleaving short batches of both,
    // alternating which goes first, gives ratios that drift cancels out of.
    if !quick_run() {
        let latency = |variant| run(&rt, &target, variant, 1, 3_000);
        let throughput = |variant| run(&rt, &target, variant, TASKS, 1_000);
        interleaved(
            "cached_fn_1task_latency macro/direct",
            "time per call; >1 means the macro is slower; target <= 1.05",
            || latency(Variant::Macro),
            || latency(Variant::Direct),
        );
        interleaved(
            "cached_fn_64task_throughput macro/direct",
            "time per call = 1/throughput; >1 means the macro has less throughput; target <= 1.05",
            || throughput(Variant::Macro),
            || throughput(Variant::Direct),
        );
        interleaved(
            "cached_fn_1task_latency larder_macro/cached_crate",
            "time per call; >1 means larder is slower",
            || latency(Variant::Macro),
            || latency(Variant::CachedCrate),
        );
        interleaved(
            "cached_fn_64task_throughput larder_macro/cached_crate",
            "time per call = 1/throughput; >1 means larder has less throughput",
            || throughput(Variant::Macro),
            || throughput(Variant::CachedCrate),
        );
    }

    // The per-call work the macro adds over the direct get is mostly the
    // key: argument digest and formatting.
    if !quick_run() {
        let calls = 200_000;
        let start = Instant::now();
        for _ in 0..calls {
            black_box(Repo::get_product_key(black_box(1)).expect("key"));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(calls);
        INFO.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!(
                "Repo::get_product_key(1): {ns:.0} ns per call (computed by every macro call; the direct get reuses one key)"
            ));
    }

    // Every timed call was a hit.
    assert_eq!(LARDER_COMPUTES.load(Ordering::Relaxed), 1);
    assert_eq!(CACHED_CRATE_COMPUTES.load(Ordering::Relaxed), 1);

    // Close larder's connection before the server goes away; the `cached`
    // crate's lives in its static, its driver task on `rt`.
    drop(target);
    drop(rt);
    drop(server);
}

/// Other measurements, printed with the ratios.
static INFO: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn print_ratios() {
    CALLS.print_means();
    println!();
    println!("criterion means (sequential, subject to drift):");
    for group in [LATENCY, THROUGHPUT] {
        CALLS.print_ratio(
            &format!("{group} macro/direct"),
            group,
            MACRO,
            DIRECT,
            "time per call; >1 means the macro is slower",
            3,
        );
        CALLS.print_ratio(
            &format!("{group} larder_macro/cached_crate"),
            group,
            MACRO,
            CACHED_CRATE,
            "time per call; >1 means larder is slower",
            3,
        );
    }
    println!();
    for line in INFO.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{line}");
    }
    println!();
    print_interleaved();
}

fn main() {
    let mut c = criterion();
    benches(&mut c);
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_ratios();
    }
}
