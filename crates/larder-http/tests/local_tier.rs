//! `ResponseCacheLayer::local`: two instances of one service on a private
//! redis-server, each with the local tier on. A hit is answered from
//! memory (the Redis copy can be gone behind Larder's back and the hit
//! still comes); an invalidation by the other instance reaches it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn instance(url: &str, calls: &Arc<AtomicUsize>) -> (Cache, ResponseCacheLayer, String) {
    let config = Config::builder()
        .redis_url(url)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap();
    let layer = ResponseCacheLayer::new(cache.clone())
        .namespace("products")
        .ttl(Duration::from_secs(600))
        .local(Duration::from_secs(60));
    let app = Router::new()
        .route(
            "/products",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                format!("products, version {n}")
            }),
        )
        .layer(layer.clone())
        .with_state(Arc::clone(calls));
    (cache, layer, serve(app).await)
}

async fn fetch(http: &reqwest::Client, url: &str) -> (String, String) {
    let response = http.get(format!("{url}/products")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    (x_cache, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_answered_from_memory_and_dropped_on_another_instances_invalidation() {
    let server = RedisServer::spawn();
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, _, a_url) = instance(&server.url(), &calls).await;
    let (_, b_layer, _) = instance(&server.url(), &calls).await;
    let http = reqwest::Client::new();

    let (first, body) = fetch(&http, &a_url).await;
    assert_eq!(
        (first.as_str(), body.as_str()),
        ("MISS", "products, version 1")
    );
    assert!(a.local_tier_usage().0 > 0, "the stored response is kept");

    // Gone from Redis behind Larder's back (unannounced): A still answers
    // from its memory.
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    let (second, again) = fetch(&http, &a_url).await;
    assert_eq!(
        (second.as_str(), again.as_str()),
        ("HIT", "products, version 1")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // B drops the path: A's copy goes too (A hears B's tag invalidation).
    let mut events = a.local_tier_events();
    let before = *events.borrow_and_update();
    b_layer.invalidate_path("/products").await.unwrap();
    while *events.borrow_and_update() == before {
        tokio::time::timeout(Duration::from_secs(30), events.changed())
            .await
            .expect("A hears B's invalidation")
            .unwrap();
    }
    let (after, fresh) = fetch(&http, &a_url).await;
    assert_eq!(
        (after.as_str(), fresh.as_str()),
        ("MISS", "products, version 2")
    );
    assert_eq!(fetch(&http, &a_url).await.0, "HIT");
}
