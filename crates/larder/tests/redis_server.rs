//! What only a real Redis can show: TTLs as the server sees them, round trips
//! counted by the server, `SLOWLOG` during a large invalidation, ACL users
//! and pub/sub.

mod common;

use std::time::Duration;

use common::{HOUR, Product, command_calls, exists, product, raw, redis_cache};
use futures::StreamExt;
use larder::{Cache, Config, FailMode};
use larder_test_support::RedisServer;

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn ttls_are_spread_within_the_jitter_bounds() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b.ttl_jitter(0.1)).await;
    let mut conn = raw(&server).await;
    let mut seen = Vec::new();
    for i in 0..200 {
        let key = format!("product:{i}");
        cache.set(&key, &i, Duration::from_secs(100)).await.unwrap();
        seen.push(pttl(&mut conn, &cache.physical_key(&key)).await);
    }
    let (min, max) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
    assert!(
        min >= 89_000 && max <= 110_000,
        "PTTL outside ±10%: {min}..{max}"
    );
    assert!(max - min > 5_000, "TTLs are not spread: {min}..{max}");

    let exact = redis_cache(&server, |b| b.ttl_jitter(0.0).prefix("exact")).await;
    exact.set("product:1", &1, HOUR).await.unwrap();
    let ttl = pttl(&mut conn, &exact.physical_key("product:1")).await;
    assert!((3_599_000..=3_600_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn get_many_is_one_command_and_set_many_plain_sets() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b).await;
    let mut conn = raw(&server).await;
    let entries: Vec<(String, Product)> = (0..50)
        .map(|i| (format!("product:{i}"), product(i)))
        .collect();
    // One pipeline of O(1) commands (a value and its lease each), never a
    // script that would hold Redis for the whole batch.
    let set = command_calls(&mut conn, "set").await;
    cache.set_many(&entries, HOUR).await.unwrap();
    assert_eq!(command_calls(&mut conn, "set").await - set, 50);
    assert_eq!(command_calls(&mut conn, "evalsha").await, 0);
    assert_eq!(command_calls(&mut conn, "eval").await, 0);

    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let (mget, get) = (
        command_calls(&mut conn, "mget").await,
        command_calls(&mut conn, "get").await,
    );
    let got: Vec<Option<Product>> = cache.get_many(&keys).await.unwrap();
    assert_eq!(command_calls(&mut conn, "mget").await - mget, 1);
    assert_eq!(command_calls(&mut conn, "get").await - get, 0);
    assert_eq!(got, (0..50).map(|i| Some(product(i))).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_version_change_needs_no_scan() {
    let server = RedisServer::spawn();
    let mut conn = raw(&server).await;
    let v1 = redis_cache(&server, |b| b.version("1.0")).await;
    for i in 0..100 {
        v1.set(&format!("product:{i}"), &i, HOUR).await.unwrap();
    }
    let v2 = redis_cache(&server, |b| b.version("1.1")).await;
    for i in 0..100 {
        assert_eq!(v2.get::<u64>(&format!("product:{i}")).await.unwrap(), None);
    }
    assert_eq!(command_calls(&mut conn, "scan").await, 0);
    assert_eq!(command_calls(&mut conn, "keys").await, 0);
    // Old entries are left to their TTL, untouched.
    assert!(exists(&mut conn, &v1.physical_key("product:0")).await);
}

#[tokio::test]
async fn corrupt_bytes_written_by_anyone_are_a_miss_and_removed() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b).await;
    let mut conn = raw(&server).await;
    let physical = cache.physical_key("product:1");
    let _: () = redis::cmd("SET")
        .arg(&physical)
        .arg(b"\x00\xffgarbage".as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cache.get::<Product>("product:1").await.unwrap(), None);
    assert!(!exists(&mut conn, &physical).await);
}

/// The commands in the slow log, oldest first, each as its arguments.
async fn logged_commands(conn: &mut redis::aio::MultiplexedConnection) -> Vec<Vec<String>> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    let mut commands: Vec<Vec<String>> = entries
        .into_iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else {
                panic!("slow log entry {entry:?}")
            };
            redis::from_redis_value(fields.into_iter().nth(3).unwrap()).unwrap()
        })
        .collect();
    commands.reverse();
    commands
}

/// How many arguments a logged command had: the slow log keeps 32 and
/// says "... (N more arguments)" for the rest.
fn argument_count(args: &[String]) -> usize {
    let more = args.last().and_then(|last| {
        last.strip_prefix("... (")?
            .strip_suffix(" more arguments)")?
            .parse::<usize>()
            .ok()
    });
    match more {
        Some(more) => args.len() - 1 + more,
        None => args.len(),
    }
}

#[tokio::test]
async fn invalidating_a_million_keys_takes_a_batch_per_command() {
    const N: usize = 1_000_000;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b).await;
    let mut conn = raw(&server).await;
    let base = cache.physical_key("product:");
    for start in (0..N).step_by(20_000) {
        let mut pipe = redis::pipe();
        for i in start..start + 20_000 {
            pipe.cmd("SET").arg(format!("{base}{i}")).arg("v").ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(cache.physical_key("products:1"))
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Every command from here on goes to the slow log, with its arguments.
    for (setting, value) in [("slowlog-log-slower-than", 0), ("slowlog-max-len", 100_000)] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(setting)
            .arg(value)
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .exec_async(&mut conn)
        .await
        .unwrap();

    let removed = cache.invalidate_cache_pattern("product:*").await.unwrap();

    assert_eq!(removed, N as u64);
    // Counted, not timed (on a loaded machine any command can be
    // descheduled past any threshold): no command asked for more than a
    // batch of 1000 keys, none deleted more than a SCAN reply's worth, and
    // a million keys took a thousand of each.
    let (mut scans, mut unlinks) = (0, 0);
    for args in logged_commands(&mut conn).await {
        match args[0].to_ascii_uppercase().as_str() {
            "SCAN" => {
                scans += 1;
                let count = args.iter().position(|a| a.eq_ignore_ascii_case("COUNT"));
                let count: u64 = args[count.expect("SCAN without COUNT") + 1]
                    .parse()
                    .unwrap();
                assert!(count <= 1000, "SCAN COUNT {count}");
            }
            "UNLINK" => {
                unlinks += 1;
                let keys = argument_count(&args) - 1;
                assert!(keys <= 2000, "UNLINK of {keys} keys");
            }
            "KEYS" | "DEL" | "FLUSHDB" | "FLUSHALL" => panic!("{args:?}"),
            _ => {}
        }
    }
    assert!(scans >= N / 2000, "{scans} SCANs for {N} keys");
    assert!(unlinks >= N / 2000, "{unlinks} UNLINKs for {N} keys");
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    // The invalidation deleted the namespace's stamp; it wrote nothing.
    assert_eq!(dbsize, 1, "only products:1 remains");
    assert!(exists(&mut conn, &cache.physical_key("products:1")).await);
    assert_eq!(command_calls(&mut conn, "keys").await, 0);
}

#[tokio::test]
async fn acl_users_authenticate_through_the_url() {
    let server = RedisServer::spawn();
    let mut conn = raw(&server).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = format!("redis://app:s3cret@127.0.0.1:{}/", server.port());
    let cache = Cache::connect(Config::builder().redis_url(&url).build().unwrap())
        .await
        .unwrap();
    cache.set("product:1", &product(1), HOUR).await.unwrap();
    assert_eq!(
        cache.get::<Product>("product:1").await.unwrap(),
        Some(product(1))
    );
    assert!(!format!("{cache:?}").contains("s3cret"));

    let wrong = format!("redis://app:nope@127.0.0.1:{}/", server.port());
    let config = Config::builder()
        .redis_url(&wrong)
        .fail_mode(FailMode::Closed)
        .build()
        .unwrap();
    let err = Cache::connect(config).await.unwrap_err();
    assert!(err.is_store_failure(), "{err}");
    assert!(!err.to_string().contains("nope"), "{err}");
    // Fail-open: a wrong password means misses and origin answers, not errors.
    let open = Cache::connect(Config::builder().redis_url(&wrong).build().unwrap())
        .await
        .unwrap();
    let value = open
        .get_or_compute("product:1", HOUR, || async { product(9) })
        .await
        .unwrap();
    assert_eq!(value, product(9));
}

#[tokio::test]
async fn published_messages_reach_subscribers() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b).await;
    let mut subscription = cache.store().subscribe("larder:invalidate").await.unwrap();
    cache
        .store()
        .publish("larder:invalidate", "product:1".into())
        .await
        .unwrap();
    assert_eq!(
        subscription.next().await.as_deref(),
        Some(&b"product:1"[..])
    );
}
