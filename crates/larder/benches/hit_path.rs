//! Hit-path benchmarks: Larder beside its anchors, in one run.
//!
//! Every variant reads the same ~100-byte `Product`:
//!
//! - `redis_1task_latency`: `Cache::get` vs a raw redis-rs `GET` of the very
//!   same physical key on a `ConnectionManager` (one caller, one at a time).
//! - `redis_64task_throughput`: the same two, 64 concurrent tokio tasks on a
//!   2-worker runtime sharing one `Cache` / one `ConnectionManager`.
//! - `memory_hit_latency`: `Cache::in_memory()` get vs a raw typed
//!   `moka::sync::Cache<String, Product>` get (value clone) and vs a raw
//!   `moka::sync::Cache<String, Bytes>` get plus `rmp_serde::from_slice` of
//!   named MessagePack (what any bytes-level cache must do).
//!
//! The interleaved ratios compare Larder (`TCP_NODELAY` on, its default)
//! with raw `GET` on two connections — redis-rs 1.x's default (nodelay
//! off) and nodelay on — and Larder with the setting off against on.
//!
//! Criterion does not compare benchmarks, so each variant records its own
//! mean time per operation over the measured samples and `main` prints the
//! ratios after criterion's summary.
//!
//! Redis is a private `redis-server` spawned by `larder-test-support` (never
//! the shared one on port 6379); it is killed when the benchmark ends.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use larder_test_support::RedisServer;
use redis::aio::ConnectionManager;
use support::{Product, Recorder, interleaved, print_interleaved, product, quick_run, runtime};

/// The logical key every variant reads.
const KEY: &str = "product:1";
/// TTL of the stored product (long enough never to expire mid-run).
const TTL: Duration = Duration::from_secs(3600);
/// Concurrent tasks in the throughput variants.
const TASKS: u64 = 64;
/// Samples per benchmark; the recorder keeps the last this many calls (the
/// measured ones; the warm-up calls come first).
const SAMPLE_SIZE: usize = 25;

const REDIS_LATENCY: &str = "redis_1task_latency";
const REDIS_THROUGHPUT: &str = "redis_64task_throughput";
const MEMORY_LATENCY: &str = "memory_hit_latency";
const LARDER: &str = "larder_get_hit";
const RAW_REDIS: &str = "raw_redis_get";
const MOKA_TYPED: &str = "moka_typed_get_clone";
const MOKA_BYTES: &str = "moka_bytes_get_decode";

/// Every timed call of every variant.
static CALLS: Recorder = Recorder::new(SAMPLE_SIZE);

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args()
}

fn redis_benches(c: &mut Criterion) {
    let server = RedisServer::spawn();
    let rt = runtime();
    let value = product(1);
    let (cache, cache_no_nodelay, conn, conn_nodelay, physical) = rt.block_on(async {
        let config = |nodelay: bool| {
            larder::Config::builder()
                .redis_url(server.url())
                .deadline(Duration::from_secs(2))
                .tcp_nodelay(nodelay)
                .build()
                .expect("config")
        };
        let cache = larder::Cache::connect(config(true)).await.expect("connect");
        let cache_no_nodelay = larder::Cache::connect(config(false))
            .await
            .expect("connect");
        cache.set(KEY, &value, TTL).await.expect("set");
        // redis-rs 1.x's default: TCP_NODELAY off.
        let conn = ConnectionManager::new(server.client())
            .await
            .expect("ConnectionManager");
        let info = redis::IntoConnectionInfo::into_connection_info(server.url()).expect("url");
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let client = redis::Client::open(info.set_tcp_settings(tcp)).expect("client");
        let conn_nodelay = ConnectionManager::new(client)
            .await
            .expect("ConnectionManager");
        let physical = cache.physical_key(KEY);
        (cache, cache_no_nodelay, conn, conn_nodelay, physical)
    });

    // Both sides move the same bytes; check it before timing anything.
    let stored: Vec<u8> = rt.block_on(async {
        let mut conn = conn.clone();
        redis::cmd("GET")
            .arg(&physical)
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .expect("raw GET")
            .expect("the product is stored")
    });
    let hit: Option<Product> = rt.block_on(cache.get(KEY)).expect("larder get");
    assert_eq!(hit.as_ref(), Some(&value));
    println!(
        "value: {} bytes of named MessagePack; stored envelope under `{physical}`: {} bytes",
        rmp_serde::to_vec_named(&value).expect("encode").len(),
        stored.len()
    );

    let mut group = c.benchmark_group(REDIS_LATENCY);
    group.bench_function(LARDER, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let cache = cache.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let hit = cache.get::<Product>(KEY).await.expect("get");
                    black_box(hit.expect("hit"));
                }
                let elapsed = start.elapsed();
                CALLS.record(REDIS_LATENCY, LARDER, iters, elapsed);
                elapsed
            }
        });
    });
    group.bench_function(RAW_REDIS, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut conn = conn.clone();
            let physical = physical.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let bytes = redis::cmd("GET")
                        .arg(&physical)
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                        .expect("GET");
                    black_box(bytes.expect("hit"));
                }
                let elapsed = start.elapsed();
                CALLS.record(REDIS_LATENCY, RAW_REDIS, iters, elapsed);
                elapsed
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group(REDIS_THROUGHPUT);
    group.throughput(Throughput::Elements(1));
    group.bench_function(LARDER, |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS).max(1);
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let cache = cache.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let hit = cache.get::<Product>(KEY).await.expect("get");
                                black_box(hit.expect("hit"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                start.elapsed()
            });
            scaled(REDIS_THROUGHPUT, LARDER, iters, per_task * TASKS, elapsed)
        });
    });
    group.bench_function(RAW_REDIS, |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS).max(1);
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let mut conn = conn.clone();
                        let physical = physical.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let bytes = redis::cmd("GET")
                                    .arg(&physical)
                                    .query_async::<Option<Vec<u8>>>(&mut conn)
                                    .await
                                    .expect("GET");
                                black_box(bytes.expect("hit"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                start.elapsed()
            });
            scaled(
                REDIS_THROUGHPUT,
                RAW_REDIS,
                iters,
                per_task * TASKS,
                elapsed,
            )
        });
    });
    group.finish();

    // Criterion runs one variant after the other, so a drift of this shared
    // 2-core machine lands on one side. Interleaving short batches of both,
    // alternating which goes first, gives ratios that drift cancels out of.
    let larder_batch = |cache: &larder::Cache, tasks: u64, per_task: u64| {
        rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            black_box(cache.get::<Product>(KEY).await.expect("get").expect("hit"));
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("task");
            }
            start.elapsed()
        })
    };
    // The same raw GET plus the decode into `Product` that any typed cache
    // must do: what a hand-rolled cache would cost.
    let raw_decode_batch = |tasks: u64, per_task: u64| {
        rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let mut conn = conn.clone();
                    let physical = physical.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let bytes = redis::cmd("GET")
                                .arg(&physical)
                                .query_async::<Option<Vec<u8>>>(&mut conn)
                                .await
                                .expect("GET")
                                .expect("hit");
                            // The envelope header is 34 bytes; the rest is the
                            // named MessagePack payload.
                            let value: Product =
                                rmp_serde::from_slice(&bytes[38..]).expect("decode");
                            black_box(value);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("task");
            }
            start.elapsed()
        })
    };
    let raw_batch = |conn: &ConnectionManager, tasks: u64, per_task: u64| {
        rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let mut conn = conn.clone();
                    let physical = physical.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let bytes = redis::cmd("GET")
                                .arg(&physical)
                                .query_async::<Option<Vec<u8>>>(&mut conn)
                                .await
                                .expect("GET");
                            black_box(bytes.expect("hit"));
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("task");
            }
            start.elapsed()
        })
    };
    // One caller runs on the `block_on` thread itself: a spawned single task
    // lands on either worker, and the two placements run at two different
    // speeds (~30 vs ~70 µs per GET here), which made the ratio bimodal.
    let larder_inline = |cache: &larder::Cache, gets: u64| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..gets {
                black_box(cache.get::<Product>(KEY).await.expect("get").expect("hit"));
            }
            start.elapsed()
        })
    };
    let raw_inline = |conn: &ConnectionManager, gets: u64| {
        rt.block_on(async {
            let mut conn = conn.clone();
            let start = Instant::now();
            for _ in 0..gets {
                let bytes = redis::cmd("GET")
                    .arg(&physical)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .expect("GET");
                black_box(bytes.expect("hit"));
            }
            start.elapsed()
        })
    };
    if !quick_run() {
        // redis-rs 1.x leaves TCP_NODELAY off; Larder turns it on (by
        // default). The anchors: raw GET with and without it.
        let nodelay = &conn_nodelay;
        let slow = &cache_no_nodelay;
        interleaved(
            "redis_1task_latency larder/raw(nodelay)",
            "time per get; >1 means larder is slower",
            || larder_inline(&cache, 2_000),
            || raw_inline(nodelay, 2_000),
        );
        interleaved(
            "redis_1task_latency larder/raw(no nodelay)",
            "time per get; >1 means larder is slower",
            || larder_inline(&cache, 2_000),
            || raw_inline(&conn, 2_000),
        );
        interleaved(
            "redis_64task_throughput larder/raw(nodelay)",
            "ops/s = raw time / larder time; <1 means larder has less throughput",
            || raw_batch(nodelay, TASKS, 300),
            || larder_batch(&cache, TASKS, 300),
        );
        interleaved(
            "redis_64task_throughput larder/raw(no nodelay)",
            "ops/s = raw time / larder time; <1 means larder has less throughput",
            || raw_batch(&conn, TASKS, 300),
            || larder_batch(&cache, TASKS, 300),
        );
        interleaved(
            "redis_64task_throughput larder(nodelay)/larder(no nodelay)",
            "ops/s of the setting's two values; >1 means nodelay has more throughput",
            || larder_batch(slow, TASKS, 300),
            || larder_batch(&cache, TASKS, 300),
        );
        interleaved(
            "redis_64task_throughput larder/(raw GET + decode)",
            "ops/s against a hand-rolled typed cache; <1 means larder has less throughput",
            || raw_decode_batch(TASKS, 300),
            || larder_batch(&cache, TASKS, 300),
        );
    }

    // Close the connections before the server goes away.
    drop((cache, conn, cache_no_nodelay, conn_nodelay));
    drop(rt);
    drop(server);
}

/// Records `ops` operations in `elapsed` and returns the time criterion
/// should see for the `iters` it asked for.
fn scaled(group: &str, variant: &str, iters: u64, ops: u64, elapsed: Duration) -> Duration {
    CALLS.record(group, variant, ops, elapsed);
    elapsed.mul_f64(iters as f64 / ops as f64)
}

fn memory_benches(c: &mut Criterion) {
    // Single-threaded: the in-process store answers without awaiting.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let value = product(1);
    let cache = larder::Cache::in_memory();
    rt.block_on(cache.set(KEY, &value, TTL)).expect("set");
    let physical = cache.physical_key(KEY);

    let typed: moka::sync::Cache<String, Product> = moka::sync::Cache::new(10_000);
    typed.insert(physical.clone(), value.clone());
    let encoded = Bytes::from(rmp_serde::to_vec_named(&value).expect("encode"));
    let raw: moka::sync::Cache<String, Bytes> = moka::sync::Cache::new(10_000);
    raw.insert(physical.clone(), encoded);

    let hit: Option<Product> = rt.block_on(cache.get(KEY)).expect("larder get");
    assert_eq!(hit.as_ref(), Some(&value));
    assert_eq!(typed.get(physical.as_str()).as_ref(), Some(&value));
    let decoded: Product =
        rmp_serde::from_slice(&raw.get(physical.as_str()).expect("hit")).expect("decode");
    assert_eq!(decoded, value);

    let mut group = c.benchmark_group(MEMORY_LATENCY);
    group.bench_function(LARDER, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let cache = cache.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let hit = cache.get::<Product>(KEY).await.expect("get");
                    black_box(hit.expect("hit"));
                }
                let elapsed = start.elapsed();
                CALLS.record(MEMORY_LATENCY, LARDER, iters, elapsed);
                elapsed
            }
        });
    });
    group.bench_function(MOKA_TYPED, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(typed.get(black_box(physical.as_str())).expect("hit"));
            }
            let elapsed = start.elapsed();
            CALLS.record(MEMORY_LATENCY, MOKA_TYPED, iters, elapsed);
            elapsed
        });
    });
    group.bench_function(MOKA_BYTES, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let bytes = raw.get(black_box(physical.as_str())).expect("hit");
                let value: Product = rmp_serde::from_slice(&bytes).expect("decode");
                black_box(value);
            }
            let elapsed = start.elapsed();
            CALLS.record(MEMORY_LATENCY, MOKA_BYTES, iters, elapsed);
            elapsed
        });
    });
    group.finish();
}

fn print_ratios() {
    CALLS.print_means();
    println!();
    CALLS.print_ratio(
        "redis_1task_latency larder/raw",
        REDIS_LATENCY,
        LARDER,
        RAW_REDIS,
        "time per get, larder / raw GET; >1 means larder is slower",
        2,
    );
    // Throughput ratio = larder ops/s / raw ops/s = raw time / larder time.
    CALLS.print_ratio(
        "redis_64task_throughput larder/raw",
        REDIS_THROUGHPUT,
        RAW_REDIS,
        LARDER,
        "ops/s, larder / raw GET = raw time / larder time; <1 means larder has less throughput",
        2,
    );
    println!();
    print_interleaved();
    println!();
    CALLS.print_ratio(
        "memory_hit_latency larder/moka_typed",
        MEMORY_LATENCY,
        LARDER,
        MOKA_TYPED,
        "time per get, larder / typed moka get + clone; >1 means larder is slower",
        2,
    );
    CALLS.print_ratio(
        "memory_hit_latency larder/moka_bytes_decode",
        MEMORY_LATENCY,
        LARDER,
        MOKA_BYTES,
        "time per get, larder / bytes moka get + rmp_serde decode; >1 means larder is slower",
        2,
    );
}

fn main() {
    let mut c = criterion();
    redis_benches(&mut c);
    memory_benches(&mut c);
    c.final_summary();
    if quick_run() {
        println!("ratios are printed only in a full benchmark run");
    } else {
        print_ratios();
    }
}
