//! Choosing the in-process (L1) tier's backend by measurement: a typed hit
//! — an `Arc` of a decoded value, with its own expiry — in `moka` against
//! `quick_cache`, one caller and two threads at once, in one run.
//!
//! - `moka`: `moka::sync::Cache<String, Entry>` with a weigher, the expiry
//!   checked by the caller (what the L1 needs: each entry lives no longer
//!   than its Redis copy, which moka's per-entry `Expiry` can also do).
//! - `quick_cache`: `quick_cache::sync::Cache<String, Entry, Weight>`, no
//!   built-in TTL, the expiry kept in the entry and checked on read.
//!
//! Both hold the same 10,000 entries and are read with the same key
//! sequence (a fixed pseudo-random walk over them). The ratios, printed
//! after criterion's summary, come from interleaved rounds so that the
//! drift of a shared 2-core machine cancels out.
//!
//! Then Larder's own tier, built on the winner: a hit of
//! `Cache::get_or_compute` answered by the local tier (the whole public
//! call: key, namespace lookup, checks, clone, metrics) against
//!
//! - a typed `moka` get of the same value (`moka::sync::Cache<String,
//!   Product>`, which clones the value as the tier does), and
//! - the same call answered by Redis (a private redis-server), one task.

#[allow(dead_code)] // shared with the other benches; this one uses the interleaving only
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::FutureExt as _;
use larder_test_support::RedisServer;
use support::{Product, interleaved, print_interleaved, product, quick_run, runtime};

/// Entries in each cache.
const KEYS: usize = 10_000;
/// Reads per interleaved batch (per thread).
const READS: usize = 200_000;

/// What the L1 holds per key: the decoded value and when it stops being
/// servable.
#[derive(Clone)]
struct Entry {
    value: Arc<Product>,
    expires: Instant,
}

/// `quick_cache`'s weight of an entry: a rough byte size.
#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Entry> for Weight {
    fn weight(&self, key: &String, _: &Entry) -> u64 {
        (key.len() + 160) as u64
    }
}

type Moka = moka::sync::Cache<String, Entry>;
type Quick = quick_cache::sync::Cache<String, Entry, Weight>;

fn caches(keys: &[String]) -> (Moka, Quick) {
    let bytes = (KEYS as u64) * 400;
    let moka = moka::sync::Cache::builder()
        .max_capacity(bytes)
        .weigher(|key: &String, _: &Entry| u32::try_from(key.len() + 160).unwrap_or(u32::MAX))
        .build();
    let quick = quick_cache::sync::Cache::with_weighter(KEYS * 2, bytes, Weight);
    let expires = Instant::now() + Duration::from_secs(3600);
    for (i, key) in keys.iter().enumerate() {
        let entry = Entry {
            value: Arc::new(product(i as u64)),
            expires,
        };
        moka.insert(key.clone(), entry.clone());
        quick.insert(key.clone(), entry);
    }
    (moka, quick)
}

/// A fixed pseudo-random walk over the keys (xorshift), the same for both.
fn walk(len: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % KEYS as u64) as usize
        })
        .collect()
}

fn moka_get(cache: &Moka, key: &str, now: Instant) -> Option<Arc<Product>> {
    cache
        .get(key)
        .filter(|entry| entry.expires > now)
        .map(|entry| entry.value)
}

fn quick_get(cache: &Quick, key: &str, now: Instant) -> Option<Arc<Product>> {
    cache
        .get(key)
        .filter(|entry| entry.expires > now)
        .map(|entry| entry.value)
}

/// Reads `order` on `threads` threads at once; the time until all are done.
fn reads<F>(threads: usize, order: &[usize], keys: &[String], get: F) -> Duration
where
    F: Fn(&str, Instant) -> Option<Arc<Product>> + Sync,
{
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let get = &get;
            scope.spawn(move || {
                let now = Instant::now();
                for i in order.iter().skip(t) {
                    black_box(get(&keys[*i], now).expect("a hit"));
                }
            });
        }
    });
    start.elapsed()
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user:{i}:profile")).collect();
    let (moka, quick) = caches(&keys);
    let order = walk(READS);
    let now = Instant::now();
    for key in &keys {
        assert!(moka_get(&moka, key, now).is_some() && quick_get(&quick, key, now).is_some());
    }

    let mut group = c.benchmark_group("local_tier_hit");
    group.bench_function("moka", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % order.len();
            black_box(moka_get(&moka, &keys[order[i]], Instant::now()))
        })
    });
    group.bench_function("quick_cache", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % order.len();
            black_box(quick_get(&quick, &keys[order[i]], Instant::now()))
        })
    });
    group.finish();

    if !quick_run() {
        for threads in [1, 2] {
            interleaved(
                &format!("local_tier_hit {threads} thread(s) quick_cache/moka"),
                "time per typed hit; <1 means quick_cache is faster",
                || reads(threads, &order, &keys, |k, now| quick_get(&quick, k, now)),
                || reads(threads, &order, &keys, |k, now| moka_get(&moka, k, now)),
            );
        }
    }
    larder_tier(&mut c, &keys, &order);
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_interleaved();
    }
}

/// Larder's local tier against a typed moka get and against a Redis hit.
fn larder_tier(c: &mut Criterion, keys: &[String], order: &[usize]) {
    const HOUR: Duration = Duration::from_secs(3600);
    let server = RedisServer::spawn();
    let rt = runtime();
    let config = |local: bool| {
        let builder = larder::Config::builder().redis_url(server.url());
        let builder = if local {
            builder.local("user", HOUR)
        } else {
            builder
        };
        builder.build().expect("config")
    };
    let (tiered, redis) = rt.block_on(async {
        let tiered = larder::Cache::connect(config(true)).await.expect("connect");
        let redis = larder::Cache::connect(config(false))
            .await
            .expect("connect");
        (tiered, redis)
    });
    let moka: moka::sync::Cache<String, Product> = moka::sync::Cache::new(KEYS as u64 * 2);
    rt.block_on(async {
        while !tiered.local_tier_hearing() {
            tokio::task::yield_now().await;
        }
        for (i, key) in keys.iter().enumerate() {
            let value = product(i as u64);
            moka.insert(key.clone(), value.clone());
            tiered
                .get_or_compute(key, HOUR, || async { value.clone() })
                .await
                .expect("fill");
        }
    });
    // Every key answers from the tier without awaiting anything.
    let local_hit = |key: &str| -> Product {
        tiered
            .get_or_compute(key, HOUR, || async { unreachable!("a hit") })
            .now_or_never()
            .expect("a local hit completes at once")
            .expect("a hit")
    };
    for key in keys {
        local_hit(key);
    }
    let mut group = c.benchmark_group("larder_local_tier_hit");
    group.bench_function("moka_typed_get", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % order.len();
            black_box(moka.get(&keys[order[i]]).expect("a hit"))
        })
    });
    group.bench_function("larder_local", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % order.len();
            black_box(local_hit(&keys[order[i]]))
        })
    });
    group.bench_function("larder_redis", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % order.len();
            let key = &keys[order[i]];
            black_box(
                rt.block_on(redis.get_or_compute::<Product, _, _>(key, HOUR, || async {
                    unreachable!("a hit")
                })),
            )
        })
    });
    group.finish();
    if quick_run() {
        return;
    }
    let reads = READS / 4;
    interleaved(
        "larder local-tier hit / typed moka get, 1 thread",
        "time per hit; the aim is <= 1.2",
        || {
            let start = Instant::now();
            for i in order.iter().take(reads) {
                black_box(local_hit(&keys[*i]));
            }
            start.elapsed()
        },
        || {
            let start = Instant::now();
            for i in order.iter().take(reads) {
                black_box(moka.get(&keys[*i]).expect("a hit"));
            }
            start.elapsed()
        },
    );
    let redis_reads = 2_000;
    interleaved(
        "larder local-tier hit / larder Redis hit, 1 task",
        "time per hit",
        || {
            let start = Instant::now();
            for i in order.iter().take(redis_reads) {
                black_box(local_hit(&keys[*i]));
            }
            start.elapsed()
        },
        || {
            rt.block_on(async {
                let start = Instant::now();
                for i in order.iter().take(redis_reads) {
                    let hit = redis.get_or_compute::<Product, _, _>(&keys[*i], HOUR, || async {
                        unreachable!("a hit")
                    });
                    black_box(hit.await.expect("a hit"));
                }
                start.elapsed()
            })
        },
    );
}
