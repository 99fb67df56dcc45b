//! Leases across OS processes: the test binary re-runs itself as child
//! processes that share a private redis-server with the parent.
//!
//! - 4 processes × 250 tasks ask for one cold key whose computation takes
//!   200 ms: the computation runs once in all, and every caller gets it.
//! - A process that holds the lease dies mid-computation: waiters are
//!   delayed by at most the lease TTL, then one of them computes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use larder::{Cache, Config};
use larder_test_support::RedisServer;

const CHILD: &str = "LARDER_LEASE_CHILD";
const URL: &str = "LARDER_LEASE_CHILD_URL";
const KEY: &str = "expensive_report:42";

/// Starts this test binary as a child running `test` in `role`.
fn child(test: &str, role: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(URL, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the child's stdout until a line containing `marker`; returns the
/// line from the marker on (libtest may print its own text before it).
fn line_starting(reader: &mut impl BufRead, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child ended before `{marker}`"
        );
        if let Some(at) = line.find(marker) {
            return line[at..].trim().to_owned();
        }
    }
}

fn cache(url: &str, lease_ttl: Duration) -> Cache {
    let config = Config::builder()
        .redis_url(url)
        .lease_ttl(lease_ttl)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    larder::block_on(Cache::connect(config)).unwrap()
}

async fn incr(url: &str, counter: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: u64 = redis::cmd("INCR")
        .arg(counter)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[test]
fn four_processes_of_250_tasks_compute_a_cold_key_once() {
    match std::env::var(CHILD).as_deref() {
        Ok("herd") => return herd_child(true),
        Ok("naive") => return herd_child(false),
        _ => {}
    }
    let (computations, slowest) = herd("herd");
    println!(
        "4 processes x 250 tasks: the computation ran {computations} time(s); the slowest process had every value after {slowest} ms"
    );
    assert_eq!(computations, 1);
    // The yardstick: plain cache-aside (no leases; single-flight per
    // process), which computes once per process and waits for nobody.
    let (naive, naive_slowest) = herd("naive");
    println!("the same without leases: {naive} computation(s), slowest process {naive_slowest} ms");
}

/// Runs 4 child processes of 250 tasks in `role`; the computations and
/// the slowest process's time (ms) from the start signal to its last value.
fn herd(role: &str) -> (u64, u64) {
    let server = RedisServer::spawn();
    let url = server.url();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            child(
                "four_processes_of_250_tasks_compute_a_cold_key_once",
                role,
                &url,
            )
        })
        .collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for reader in &mut readers {
        line_starting(reader, "READY");
    }
    // Start all four at once: each child blocks on BLPOP for its token.
    let mut conn = server.connection();
    let _: () = redis::cmd("RPUSH")
        .arg("go")
        .arg(&[1, 2, 3, 4][..])
        .query(&mut conn)
        .unwrap();
    let mut slowest = 0;
    for reader in &mut readers {
        let got = line_starting(reader, "GOT");
        let (got, ms) = got.split_once(" in ").unwrap();
        assert_eq!(got, "GOT 250 of 250");
        slowest = slowest.max(ms.trim_end_matches(" ms").parse::<u64>().unwrap());
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let computations: u64 = redis::cmd("GET")
        .arg("computations")
        .query(&mut conn)
        .unwrap();
    (computations, slowest)
}

fn herd_child(leases: bool) {
    let url = std::env::var(URL).unwrap();
    let config = Config::builder()
        .redis_url(&url)
        .leases(leases)
        .lease_ttl(Duration::from_secs(3))
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let cache = larder::block_on(Cache::connect(config)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        println!("READY");
        let _: (String, String) = redis::cmd("BLPOP")
            .arg("go")
            .arg(30)
            .query_async(&mut conn)
            .await
            .unwrap();
        let started = Instant::now();
        let tasks: Vec<_> = (0..250)
            .map(|_| {
                let (cache, url) = (cache.clone(), url.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute(KEY, Duration::from_secs(3600), || async move {
                            incr(&url, "computations").await;
                            tokio::time::sleep(Duration::from_millis(200)).await; // the report's work
                            "the report".to_string()
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut got = 0;
        for task in tasks {
            if task.await.unwrap() == "the report" {
                got += 1;
            }
        }
        println!("GOT {got} of 250 in {} ms", started.elapsed().as_millis());
    });
}

#[test]
fn a_lease_holder_that_dies_delays_waiters_by_at_most_the_lease_ttl() {
    const LEASE_TTL: Duration = Duration::from_secs(1);
    if std::env::var(CHILD).as_deref() == Ok("holder") {
        return holder_child();
    }
    let server = RedisServer::spawn();
    let url = server.url();
    let mut holder = child(
        "a_lease_holder_that_dies_delays_waiters_by_at_most_the_lease_ttl",
        "holder",
        &url,
    );
    let mut reader = BufReader::new(holder.stdout.take().unwrap());
    line_starting(&mut reader, "COMPUTING");
    holder.kill().unwrap(); // SIGKILL: no chance to release the lease
    holder.wait().unwrap();

    let cache = cache(&url, LEASE_TTL);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let values = runtime.block_on(async {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, url) = (cache.clone(), url.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute(KEY, Duration::from_secs(3600), || async move {
                            incr(&url, "computations").await;
                            "computed by a waiter".to_string()
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    let waited = started.elapsed();
    println!("waiters blocked {waited:?} by a dead holder (lease TTL {LEASE_TTL:?})");
    assert!(values.iter().all(|v| v == "computed by a waiter"));
    let mut conn = server.connection();
    let computations: u64 = redis::cmd("GET")
        .arg("computations")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        computations, 1,
        "the dead holder's computation never counted; one waiter's did"
    );
    // Bounded by the lease TTL (plus polling backoff and a loaded machine's
    // scheduling); without leases expiring, waiters would wait forever.
    assert!(waited < LEASE_TTL * 3, "waited {waited:?}");
}

fn holder_child() {
    let url = std::env::var(URL).unwrap();
    // The holder's own lease TTL is what the waiters see.
    let cache = cache(&url, Duration::from_secs(1));
    larder::block_on(async {
        let _: String = cache
            .get_or_compute(KEY, Duration::from_secs(3600), || async {
                println!("COMPUTING");
                std::future::pending::<String>().await // killed while here
            })
            .await
            .unwrap();
    });
}
