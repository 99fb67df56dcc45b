//! Shared set-up of the integration tests: caches on private redis-servers
//! and on the in-process store.
#![allow(dead_code, missing_docs, unused_imports, unused_macros)]

pub mod catalog;
mod fixture;
pub mod models;

pub use fixture::Fixture;
pub(crate) use fixture::on_both_stores;

use std::time::Duration;

use larder::{Cache, Config, config::ConfigBuilder};
use larder_test_support::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Django original's product, as a service would cache it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price_cents: u64,
    pub category: Option<String>,
    pub tags: Vec<String>,
}

pub fn product(id: u64) -> Product {
    Product {
        id,
        name: format!("Product {id}"),
        price_cents: 999 + id,
        category: Some("kitchen".into()),
        tags: vec!["new".into(), "sale".into()],
    }
}

pub const HOUR: Duration = Duration::from_secs(3600);

/// A cache on a private redis-server, with settings from `tweak`.
pub async fn redis_cache(
    server: &RedisServer,
    tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Cache {
    let config = tweak(
        Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2)),
    )
    .build()
    .expect("valid test config");
    Cache::connect(config).await.expect("cache connects")
}

/// An async connection to a private server, for checking what the cache did.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection to the private redis-server")
}

/// How often the server has run `command` (from `INFO commandstats`).
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

pub async fn exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u64>(conn)
        .await
        .unwrap()
        == 1
}

/// A `RedisStore` of its own on a private server (to wrap in a test store).
pub fn redis_store(server: &RedisServer) -> larder::store::RedisStore {
    let url = larder::config::RedisUrl::parse(&server.url()).unwrap();
    larder::store::RedisStore::new(&url, Duration::from_secs(1), None).unwrap()
}

/// `holder` misses on `key` and computes `"report"` until the returned
/// sender fires; returns once the computation runs (holding the lease).
pub async fn hold_a_computation(
    holder: Cache,
    key: &str,
) -> (JoinHandle<String>, oneshot::Sender<()>) {
    let (computing_tx, computing_rx) = oneshot::channel();
    let (fill_tx, fill_rx) = oneshot::channel::<()>();
    let key = key.to_owned();
    let holding = tokio::spawn(async move {
        holder
            .get_or_compute(&key, HOUR, || async move {
                computing_tx.send(()).unwrap();
                fill_rx.await.unwrap();
                "report".to_string()
            })
            .await
            .unwrap()
    });
    computing_rx.await.unwrap();
    (holding, fill_tx)
}

/// `waiter` asks for `key` while another holds its computation; it gets
/// `"computed twice"` only if it computes itself.
pub fn wait_for(waiter: &Cache, key: &str) -> JoinHandle<String> {
    let (waiter, key) = (waiter.clone(), key.to_owned());
    tokio::spawn(async move {
        waiter
            .get_or_compute(&key, HOUR, || async { "computed twice".to_string() })
            .await
            .unwrap()
    })
}
