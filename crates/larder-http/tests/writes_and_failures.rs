//! Regressions from the third review on a private redis-server, each
//! through `oneshot` and over a real socket: a write invalidates its path
//! at a cost in proportion to that path's variants, not to the keyspace
//! (it used to `SCAN` everything); concurrent requests on a failing
//! handler are released at once, not served one after another; writes on
//! one route do not stop another route's hot responses from being stored.

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Calls, Client, Transport};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;
use tokio::sync::Barrier;

async fn redis_cache(server: &RedisServer) -> Cache {
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    Cache::connect(config).await.unwrap()
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn calls_of(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
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

async fn product(Path(id): Path<u32>, State(calls): State<Calls>) -> String {
    format!("product {id}, version {}", calls.bump())
}

async fn update(State(calls): State<Calls>) -> StatusCode {
    calls.bump();
    StatusCode::NO_CONTENT
}

/// Point 16: `invalidate_on_write` drops the written path's variants
/// without scanning the keyspace: 20,000 unrelated keys cost no `SCAN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_invalidates_its_path_without_scanning() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let mut conn = raw(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg(format!("larder:1:other:{i}"))
            .arg("x")
            .ignore();
    }
    pipe.exec_async(&mut conn).await.unwrap();
    for transport in [Transport::Oneshot, Transport::Socket] {
        let calls = Calls::default();
        let layer = ResponseCacheLayer::new(cache.clone())
            .namespace(format!("products-{transport:?}"))
            .vary_on_query(["v"])
            .invalidate_on_write(true);
        let app = Router::new()
            .route("/products/{id}", get(product).post(update))
            .layer(layer)
            .with_state(calls.clone());
        let client = Client::new(app, transport).await;
        let variants = ["/products/1", "/products/1?v=a", "/products/1?v=b"];
        for uri in variants.iter().chain(&["/products/2"]) {
            assert_eq!(client.get(uri).await.x_cache, "MISS", "{uri}");
            assert_eq!(client.get(uri).await.x_cache, "HIT", "{uri}");
        }
        let scans = calls_of(&mut conn, "scan").await;
        let written = client.send("POST", "/products/1", &[]).await;
        assert_eq!(written.status, StatusCode::NO_CONTENT);
        assert_eq!(
            calls_of(&mut conn, "scan").await - scans,
            0,
            "the write scanned the keyspace"
        );
        for uri in variants {
            assert_eq!(
                client.get(uri).await.x_cache,
                "MISS",
                "{uri} survived the write"
            );
        }
        assert_eq!(client.get("/products/2").await.x_cache, "HIT");
        // `invalidate_path` by hand takes the same index, any spelling.
        let layer = ResponseCacheLayer::new(cache.clone())
            .namespace(format!("products-{transport:?}"))
            .vary_on_query(["v"]);
        let scans = calls_of(&mut conn, "scan").await;
        assert_eq!(layer.invalidate_path("/products/%32").await.unwrap(), 1);
        assert_eq!(calls_of(&mut conn, "scan").await - scans, 0);
        assert_eq!(client.get("/products/2").await.x_cache, "MISS");
    }
}

/// Point 7: 30 concurrent requests on a handler answering 503 after 50 ms
/// are released together with the handler's answer: it runs once per
/// burst, nobody queues behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_on_a_failing_handler_are_released_at_once() {
    async fn failing(State(calls): State<Calls>) -> impl IntoResponse {
        calls.bump();
        tokio::time::sleep(Duration::from_millis(50)).await; // the handler's work
        (StatusCode::SERVICE_UNAVAILABLE, "try again")
    }
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    for transport in [Transport::Oneshot, Transport::Socket] {
        let calls = Calls::default();
        let layer =
            ResponseCacheLayer::new(cache.clone()).namespace(format!("failing-{transport:?}"));
        let app = Router::new()
            .route("/report", get(failing))
            .layer(layer)
            .with_state(calls.clone());
        let client = Arc::new(Client::new(app, transport).await);
        let barrier = Arc::new(Barrier::new(30));
        let started = std::time::Instant::now();
        let requests: Vec<_> = (0..30)
            .map(|_| {
                let (client, barrier) = (client.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let reply = client.get("/report").await;
                    (reply, started.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for request in requests {
            let (reply, elapsed) = request.await.unwrap();
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(reply.body, "try again");
            slowest = slowest.max(elapsed);
        }
        eprintln!(
            "{transport:?}: 30 requests on a failing 50 ms handler: slowest after {slowest:?}, {} handler calls",
            calls.get()
        );
        assert!(
            calls.get() <= 3,
            "the failing handler ran {} times",
            calls.get()
        );
    }
}

/// Point 7: writes that invalidate one route keep coming while 30 readers
/// hit another route's hot, slow path: its response is stored all the
/// same, and its handler runs a handful of times at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_one_route_do_not_stop_another_from_being_stored() {
    async fn slow(State(calls): State<Calls>) -> String {
        calls.bump();
        tokio::time::sleep(Duration::from_millis(30)).await; // the handler's work
        "catalogue".to_string()
    }
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/catalogue",
            get(slow).layer(ResponseCacheLayer::new(cache.clone()).namespace("catalogue")),
        )
        .route(
            "/orders/{id}",
            get(product).post(update).layer(
                ResponseCacheLayer::new(cache.clone())
                    .namespace("orders")
                    .invalidate_on_write(true),
            ),
        )
        .with_state(calls.clone());
    for transport in [Transport::Oneshot, Transport::Socket] {
        cache.invalidate_cache_pattern("*").await.unwrap();
        let client = Arc::new(Client::new(app.clone(), transport).await);
        let writer = tokio::spawn({
            let client = client.clone();
            async move {
                for i in 0..30 {
                    client.send("POST", &format!("/orders/{i}"), &[]).await;
                    tokio::time::sleep(Duration::from_millis(10)).await; // the writes' pace
                }
            }
        });
        let before = calls.get();
        let readers: Vec<_> = (0..30)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.get("/catalogue").await.body })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), "catalogue");
        }
        writer.await.unwrap();
        assert_eq!(
            client.get("/catalogue").await.x_cache,
            "HIT",
            "{transport:?}"
        );
        // The writes themselves count as calls too: 30 of them.
        let handler_calls = calls.get() - before - 30;
        assert!(
            handler_calls <= 3,
            "{transport:?}: the hot handler ran {handler_calls} times"
        );
    }
}
