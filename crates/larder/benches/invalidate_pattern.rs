//! Pattern invalidation: `Cache::invalidate_cache_pattern("product:*")` on a
//! private `redis-server` full of keys.
//!
//! Two parts, in one run:
//!
//! - a criterion benchmark: 100k matching keys (refilled, untimed, before
//!   every iteration) beside 10k non-matching ones, one timed call each;
//! - a plain single run over 1,000,000 matching keys that prints the
//!   throughput, the slow log (threshold 10 ms: the goal is no entry at all)
//!   and the server's latency percentiles for `SCAN` and `UNLINK`, and checks
//!   that exactly the 10,000 non-matching keys remain.
//!
//! Keys are filled with raw pipelines of 10k `SET`s; the values are small raw
//! bytes (invalidation never decodes them). Redis is spawned by
//! `larder-test-support` (never the shared one on port 6379) and killed when
//! the benchmark ends.

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use larder_test_support::RedisServer;
use tokio::runtime::Runtime;

/// The pattern under test (logical; Larder adds prefix and version).
const PATTERN: &str = "product:*";
/// Matching keys per criterion iteration.
const BENCH_KEYS: u64 = 100_000;
/// Matching keys in the single large run.
const LARGE_KEYS: u64 = 1_000_000;
/// Non-matching keys (`products:{i}` and `productx{i}`, half each).
const OTHER_KEYS: u64 = 10_000;
/// `SET`s per fill pipeline.
const PIPELINE: u64 = 10_000;
/// The value of every filled key.
const VALUE: &[u8] = b"0123456789abcdef";
/// Slow-log threshold in microseconds for the large run.
const SLOWLOG_US: u64 = 10_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Writes `keys` (physical) with pipelines of `PIPELINE` `SET`s.
fn fill(con: &mut redis::Connection, keys: impl Iterator<Item = String>) {
    let mut pipe = redis::pipe();
    let mut queued = 0;
    for key in keys {
        pipe.cmd("SET").arg(key).arg(VALUE).ignore();
        queued += 1;
        if queued == PIPELINE {
            pipe.exec(con).expect("fill pipeline");
            pipe.clear();
            queued = 0;
        }
    }
    if queued > 0 {
        pipe.exec(con).expect("fill pipeline");
    }
}

fn fill_matching(con: &mut redis::Connection, cache: &larder::Cache, count: u64) {
    fill(
        con,
        (0..count).map(|i| cache.physical_key(&format!("product:{i}"))),
    );
}

fn dbsize(con: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

fn config_set(con: &mut redis::Connection, name: &str, value: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .exec(con)
        .expect("CONFIG SET");
}

fn criterion_bench(
    c: &mut Criterion,
    rt: &Runtime,
    cache: &larder::Cache,
    con: &mut redis::Connection,
) {
    let mut group = c.benchmark_group("invalidate_cache_pattern");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BENCH_KEYS));
    group.bench_function("100k_matching_10k_other", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                fill_matching(con, cache, BENCH_KEYS);
                let start = Instant::now();
                let removed = rt
                    .block_on(cache.invalidate_cache_pattern(PATTERN))
                    .expect("invalidate_cache_pattern");
                timed += start.elapsed();
                assert_eq!(removed, BENCH_KEYS);
            }
            assert_eq!(dbsize(con), OTHER_KEYS);
            timed
        });
    });
    group.finish();
}

/// One timed call over `count` matching keys, with the slow log watching.
fn large_run(rt: &Runtime, cache: &larder::Cache, con: &mut redis::Connection, count: u64) {
    let start = Instant::now();
    fill_matching(con, cache, count);
    println!(
        "filled {count} matching keys in {:.2} s (DBSIZE {})",
        start.elapsed().as_secs_f64(),
        dbsize(con)
    );

    config_set(con, "slowlog-log-slower-than", &SLOWLOG_US.to_string());
    config_set(con, "slowlog-max-len", "1024");
    config_set(con, "latency-tracking-info-percentiles", "50 99 99.9 100");
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec(con)
        .expect("CONFIG RESETSTAT");
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .exec(con)
        .expect("SLOWLOG RESET");

    let start = Instant::now();
    let removed = rt
        .block_on(cache.invalidate_cache_pattern(PATTERN))
        .expect("invalidate_cache_pattern");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "invalidate_cache_pattern: removed {removed} keys in {secs:.3} s = {:.0} keys/s",
        removed as f64 / secs
    );

    let slow: u64 = redis::cmd("SLOWLOG")
        .arg("LEN")
        .query(con)
        .expect("SLOWLOG LEN");
    // SLOWLOG GET 1 is the newest entry; read them all to find the slowest.
    let entries: Vec<Vec<redis::Value>> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(con)
        .expect("SLOWLOG GET");
    let slowest = entries
        .iter()
        .filter_map(|entry| match (entry.get(2), entry.get(3)) {
            (Some(redis::Value::Int(us)), Some(args)) => Some((*us, command_name(args))),
            _ => None,
        })
        .max_by_key(|(us, _)| *us);
    match slowest {
        Some((us, name)) => println!(
            "SLOWLOG LEN = {slow} (threshold {SLOWLOG_US} us); slowest entry: {name} {us} us"
        ),
        None => println!("SLOWLOG LEN = {slow} (threshold {SLOWLOG_US} us); no entry"),
    }
    let info: String = redis::cmd("INFO")
        .arg("latencystats")
        .query(con)
        .expect("INFO latencystats");
    for line in info.lines() {
        if line.starts_with("latency_percentiles_usec_scan:")
            || line.starts_with("latency_percentiles_usec_unlink:")
        {
            println!("server-side {line}  (p100 = slowest call)");
        }
    }

    let left = dbsize(con);
    println!("DBSIZE after = {left} (expected {OTHER_KEYS} non-matching keys)");
    assert_eq!(removed, count, "every matching key is removed");
    assert_eq!(left, OTHER_KEYS, "exactly the non-matching keys remain");
}

fn command_name(args: &redis::Value) -> String {
    match args {
        redis::Value::Array(args) => match args.first() {
            Some(redis::Value::BulkString(name)) => String::from_utf8_lossy(name).into_owned(),
            _ => "?".to_owned(),
        },
        _ => "?".to_owned(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listing = args.iter().any(|a| a == "--list");
    // `cargo test --benches` runs benches once in test mode: keep it quick.
    let large = if args.iter().any(|a| a == "--test") {
        OTHER_KEYS
    } else {
        LARGE_KEYS
    };

    let mut c = Criterion::default().configure_from_args();
    let server = RedisServer::spawn();
    let rt = runtime();
    let cache = rt.block_on(async {
        let config = larder::Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2))
            .build()
            .expect("config");
        larder::Cache::connect(config).await.expect("connect")
    });
    let mut con = server.connection();
    let half = OTHER_KEYS / 2;
    fill(
        &mut con,
        (0..half)
            .map(|i| cache.physical_key(&format!("products:{i}")))
            .chain((0..half).map(|i| cache.physical_key(&format!("productx{i}")))),
    );
    assert_eq!(dbsize(&mut con), OTHER_KEYS);

    criterion_bench(&mut c, &rt, &cache, &mut con);
    c.final_summary();
    if !listing {
        large_run(&rt, &cache, &mut con, large);
    }

    // Close the connections before the server goes away.
    drop((cache, con));
    drop(rt);
    drop(server);
}
