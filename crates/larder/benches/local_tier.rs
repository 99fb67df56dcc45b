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

#[allow(dead_code)] // shared with the other benches; this one uses the interleaving only
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use support::{Product, interleaved, print_interleaved, product, quick_run};

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
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_interleaved();
    }
}
