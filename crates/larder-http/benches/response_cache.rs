//! Response-cache benchmarks: requests per second over loopback, with and
//! without `ResponseCacheLayer`, in one run.
//!
//! One axum server on `127.0.0.1:0` and one shared `reqwest::Client`, both on
//! a 2-worker tokio runtime; every batch keeps 64 requests in flight. Five
//! routes answer the same ~200-byte JSON body:
//!
//! - `trivial_handler/uncached`: the handler serialises the body and returns.
//! - `trivial_handler/cached_hit`: the same handler behind the layer; after
//!   the warm-up every request is a hit, so this measures what a hit costs.
//! - `handler_2ms/uncached`: the handler first does ~2 ms of "work" (a
//!   `tokio::time::sleep`).
//! - `handler_2ms/cached_hit`: the same behind the layer (hits): the win.
//! - `trivial_handler/cached_hit_local_tier`: the trivial handler behind a
//!   layer with the local tier on (`.local(…)`): hits answered from memory.
//!
//! Criterion does not compare benchmarks, so each variant records its own
//! requests per second over the measured samples, and `main` prints them and
//! the interleaved (drift-cancelling) ratios after criterion's summary.
//!
//! Redis is a private `redis-server` spawned by `larder-test-support` (never
//! the shared one on port 6379); it is killed when the benchmark ends.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use criterion::{Criterion, Throughput};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Requests in flight in every batch.
const IN_FLIGHT: u64 = 64;
/// Samples per benchmark; the recorder keeps the last this many calls (the
/// measured ones; the warm-up calls come first).
const SAMPLE_SIZE: usize = 15;
/// TTL of the stored responses (long enough never to expire mid-run).
const TTL: Duration = Duration::from_secs(3600);
/// The slow handler's "work".
const WORK: Duration = Duration::from_millis(2);
/// Sequential requests per in-flight slot in one interleaved batch.
const INTERLEAVED_PER_TASK: u64 = 20;
/// Rounds of the interleaved comparison.
const ROUNDS: usize = 15;

const TRIVIAL: &str = "trivial_handler";
const SLOW: &str = "handler_2ms";
const UNCACHED: &str = "uncached";
const CACHED_HIT: &str = "cached_hit";
const LOCAL_HIT: &str = "cached_hit_local_tier";

/// Handler calls per route, in the order of `ROUTES`.
static HANDLER_CALLS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// `(path, group, variant)` of the five routes.
const ROUTES: [(&str, &str, &str); 5] = [
    ("/trivial", TRIVIAL, UNCACHED),
    ("/trivial/cached", TRIVIAL, CACHED_HIT),
    ("/slow", SLOW, UNCACHED),
    ("/slow/cached", SLOW, CACHED_HIT),
    ("/trivial/local", TRIVIAL, LOCAL_HIT),
];

/// Every timed call of every variant.
static CALLS: Recorder = Recorder::new(SAMPLE_SIZE);
/// The result lines of `interleaved`, in the order they were measured.
static INTERLEAVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The response body: ~200 bytes of JSON once serialised.
fn payload() -> Value {
    json!({
        "id": 1,
        "name": "Cast-iron teapot, 1.2 litre, matte black",
        "price_cents": 4999,
        "currency": "EUR",
        "in_stock": true,
        "tags": ["kitchen", "tea", "cast-iron", "gift"],
        "rating": {"average": 4.7, "count": 1289},
    })
}

/// A GET route counting its calls in `HANDLER_CALLS[route]`, doing `work`
/// first when it is non-zero.
fn handler(route: usize, work: Duration) -> MethodRouter {
    get(move || async move {
        HANDLER_CALLS[route].fetch_add(1, Ordering::Relaxed);
        if !work.is_zero() {
            tokio::time::sleep(work).await;
        }
        Json(payload())
    })
}

fn app(cache: &Cache) -> Router {
    let layer = |namespace: &str| {
        ResponseCacheLayer::new(cache.clone())
            .namespace(namespace)
            .ttl(TTL)
    };
    Router::new()
        .route(ROUTES[0].0, handler(0, Duration::ZERO))
        .route(
            ROUTES[1].0,
            handler(1, Duration::ZERO).layer(layer("bench_trivial")),
        )
        .route(ROUTES[2].0, handler(2, WORK))
        .route(ROUTES[3].0, handler(3, WORK).layer(layer("bench_slow")))
        .route(
            ROUTES[4].0,
            handler(4, Duration::ZERO).layer(layer("bench_local").local(TTL)),
        )
}

/// The benchmark runtime: multi-threaded, 2 workers, all drivers enabled.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args()
}

/// `--test` (`cargo test --benches`) and `--list` time one call each.
fn quick_run() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list")
}

/// One GET of `url`; returns the `x-cache` header and the body length.
async fn fetch(http: &reqwest::Client, url: &str) -> (Option<String>, usize) {
    let response = http.get(url).send().await.expect("send");
    assert_eq!(response.status(), 200, "{url}");
    let x_cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().expect("x-cache").to_owned());
    (x_cache, response.bytes().await.expect("body").len())
}

/// `IN_FLIGHT` tasks each sending `per_task` GETs of `url` back to back;
/// returns the wall time of the whole batch.
fn batch(rt: &Runtime, http: &reqwest::Client, url: &str, per_task: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let http = http.clone();
                let url = url.to_owned();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let response = http.get(&url).send().await.expect("send");
                        assert!(response.status().is_success());
                        black_box(response.bytes().await.expect("body"));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        start.elapsed()
    })
}

fn benches(c: &mut Criterion) {
    let server = RedisServer::spawn();
    let rt = runtime();
    let (cache, base) = rt.block_on(async {
        let config = Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2))
            .build()
            .expect("config");
        let cache = Cache::connect(config).await.expect("connect");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = app(&cache);
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (cache, format!("http://{addr}"))
    });
    let http = reqwest::Client::new();
    let urls: Vec<String> = ROUTES
        .iter()
        .map(|(path, _, _)| format!("{base}{path}"))
        .collect();

    // Warm the cached routes, and check before timing anything that they
    // hit and that every route answers the same body.
    rt.block_on(async {
        let mut lengths = Vec::new();
        for ((_, _, variant), url) in ROUTES.iter().zip(&urls) {
            let (first, len) = fetch(&http, url).await;
            let (second, _) = fetch(&http, url).await;
            if *variant != UNCACHED {
                assert_eq!(first.as_deref(), Some("MISS"), "{url}");
                assert_eq!(second.as_deref(), Some("HIT"), "{url}");
            }
            lengths.push(len);
        }
        assert!(lengths.windows(2).all(|w| w[0] == w[1]), "{lengths:?}");
        println!("response body: {} bytes of JSON", lengths[0]);
    });

    for group_name in [TRIVIAL, SLOW] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for ((_, group_of, variant), url) in ROUTES.iter().zip(&urls) {
            if *group_of != group_name {
                continue;
            }
            group.bench_function(*variant, |b| {
                b.iter_custom(|iters| {
                    let per_task = iters.div_ceil(IN_FLIGHT).max(1);
                    let ops = per_task * IN_FLIGHT;
                    let elapsed = batch(&rt, &http, url, per_task);
                    CALLS.record(group_name, variant, ops, elapsed);
                    elapsed.mul_f64(iters as f64 / ops as f64)
                });
            });
        }
        group.finish();
    }

    // Criterion runs one variant after the other, so a drift of this shared
    // 2-core machine lands on one side. Interleaving short batches of both,
    // alternating which goes first, gives ratios that drift cancels out of.
    if !quick_run() {
        let ops = IN_FLIGHT * INTERLEAVED_PER_TASK;
        let run = |url: &str| batch(&rt, &http, url, INTERLEAVED_PER_TASK);
        interleaved(
            "cached_hit/uncached_trivial (req/s)",
            ops,
            || run(&urls[0]),
            || run(&urls[1]),
        );
        interleaved(
            "cached_hit/uncached_2ms (req/s)",
            ops,
            || run(&urls[2]),
            || run(&urls[3]),
        );
        interleaved(
            "cached_hit_local_tier/uncached_trivial (req/s)",
            ops,
            || run(&urls[0]),
            || run(&urls[4]),
        );
    }

    // Every request to a cached route after the first was a hit.
    for (route, (path, _, variant)) in ROUTES.iter().enumerate() {
        if *variant != UNCACHED {
            let calls = HANDLER_CALLS[route].load(Ordering::Relaxed);
            assert_eq!(calls, 1, "{path}: the handler ran {calls} times");
        }
    }

    // Close the connections before the server goes away.
    drop((http, cache));
    drop(rt);
    drop(server);
}

/// Times `uncached` and `cached` batches of `ops` requests alternately
/// (`ROUNDS` times each, flipping which goes first) and records the median
/// of the per-round ratios `uncached time / cached time` — cached req/s over
/// uncached req/s — and the median req/s of each side.
fn interleaved(
    label: &str,
    ops: u64,
    mut uncached: impl FnMut() -> Duration,
    mut cached: impl FnMut() -> Duration,
) {
    let mut rounds: Vec<(Duration, Duration)> = (0..ROUNDS)
        .map(|round| {
            if round % 2 == 0 {
                let u = uncached();
                (u, cached())
            } else {
                let c = cached();
                (uncached(), c)
            }
        })
        .collect();
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|(u, c)| u.as_secs_f64() / c.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let rate = |d: Duration| ops as f64 / d.as_secs_f64();
    rounds.sort_by_key(|(u, _)| *u);
    let uncached_rate = rate(rounds[ROUNDS / 2].0);
    rounds.sort_by_key(|(_, c)| *c);
    let cached_rate = rate(rounds[ROUNDS / 2].1);
    INTERLEAVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!(
            "ratio {label} = {:.2}   (median of {ROUNDS} interleaved rounds, range {:.2}..{:.2}; \
         median cached {cached_rate:.0} req/s, uncached {uncached_rate:.0} req/s)",
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1],
        ));
}

/// Every timed call of every variant: `(requests, elapsed)`, keyed by
/// `group/variant`.
#[derive(Debug)]
struct Recorder {
    /// How many trailing calls per variant are the measured ones.
    sample_size: usize,
    /// The calls, keyed by `group/variant`.
    calls: Mutex<BTreeMap<String, Vec<(u64, Duration)>>>,
}

impl Recorder {
    const fn new(sample_size: usize) -> Self {
        Self {
            sample_size,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    fn record(&self, group: &str, variant: &str, ops: u64, elapsed: Duration) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{group}/{variant}"))
            .or_default()
            .push((ops, elapsed));
    }

    /// Requests per second over the last `sample_size` calls.
    fn rate(&self, group: &str, variant: &str) -> Option<f64> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let calls = calls.get(&format!("{group}/{variant}"))?;
        let measured = &calls[calls.len().saturating_sub(self.sample_size)..];
        let ops: u64 = measured.iter().map(|(ops, _)| ops).sum();
        let time: Duration = measured.iter().map(|(_, elapsed)| *elapsed).sum();
        (ops > 0).then(|| ops as f64 / time.as_secs_f64())
    }
}

fn print_results() {
    println!();
    println!("requests per second over the measured samples ({IN_FLIGHT} in flight):");
    for (_, group, variant) in ROUTES {
        if let Some(rate) = CALLS.rate(group, variant) {
            println!("  {:<28} {rate:>10.0} req/s", format!("{group}/{variant}"));
        }
    }
    println!();
    println!("interleaved (same-run, drift-cancelling) ratios:");
    for line in INTERLEAVED.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{line}");
    }
}

fn main() {
    let mut c = criterion();
    benches(&mut c);
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_results();
    }
}
