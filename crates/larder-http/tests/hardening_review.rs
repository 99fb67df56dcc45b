//! Regressions from a hostile review of the HTTP layer (issue 9): each test
//! reproduced one defect — identity headers of auth proxies not counted as
//! credentials, a write whose invalidation was lost (index evicted, Redis
//! paused, foreign bytes) leaving the old page served, bookkeeping that
//! grew with every distinct path — and now asserts the behaviour that
//! replaced it, on a private redis-server (or the in-process store),
//! through `oneshot`.
#![allow(missing_docs)]

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::{Calls, Client, Transport};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;

async fn redis_cache(server: &RedisServer, deadline: Duration) -> Cache {
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(deadline)
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

async fn product(Path(id): Path<u32>, State(calls): State<Calls>) -> String {
    format!("product {id}, version {}", calls.bump())
}

async fn update(State(calls): State<Calls>) -> StatusCode {
    calls.bump();
    StatusCode::NO_CONTENT
}

fn products_app(layer: ResponseCacheLayer, calls: &Calls) -> Router {
    Router::new()
        .route("/products/{id}", get(product).post(update))
        .layer(layer)
        .with_state(calls.clone())
}

// ---------------------------------------------------------------------------
// 1. Identity headers that authenticating proxies hand the app, missing
//    from the default credential list: a handler that greets the user by
//    them is cached for everyone.

/// Headers documented by the proxies the default list already names
/// some headers of (Cloudflare Access, Google IAP, oauth2-proxy), and by
/// Azure App Service authentication, authentik, Tailscale and Istio/Envoy
/// (mTLS client identity).
const MISSING_IDENTITY_HEADERS: &[&str] = &[
    // Cloudflare Access: "all subsequent requests ... contain a
    // Cf-Access-Authenticated-User-Email header".
    "cf-access-authenticated-user-email",
    // Google IAP sets the id beside the listed email.
    "x-goog-authenticated-user-id",
    // oauth2-proxy (--pass-user-headers / --set-xauthrequest).
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    // Azure App Service authentication ("Easy Auth").
    "x-ms-client-principal",
    "x-ms-client-principal-id",
    "x-ms-client-principal-name",
    "x-ms-token-aad-access-token",
    "x-ms-token-aad-id-token",
    // authentik proxy outpost.
    "x-authentik-username",
    "x-authentik-email",
    "x-authentik-uid",
    // Tailscale serve.
    "tailscale-user-login",
    // Envoy / Istio: the client certificate's identity.
    "x-forwarded-client-cert",
];

/// Alice asks first, then Bob: Bob must never get Alice's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_of_common_auth_proxies_do_not_leak_between_users() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, Duration::from_secs(2)).await;
    let mut leaked = Vec::new();
    for name in MISSING_IDENTITY_HEADERS {
        let layer = ResponseCacheLayer::new(cache.clone()).namespace(format!("profile-{name}"));
        let app = Router::new().route(
            "/me",
            get(move |headers: HeaderMap| async move {
                let user = headers.get(*name).map(|v| v.to_str().unwrap().to_owned());
                format!("account page of {user:?}")
            })
            .layer(layer),
        );
        let client = Client::new(app, Transport::Oneshot).await;
        let alice = client
            .send("GET", "/me", &[(name, "alice@corp.example")])
            .await;
        assert_eq!(alice.body, "account page of Some(\"alice@corp.example\")");
        let bob = client
            .send("GET", "/me", &[(name, "bob@corp.example")])
            .await;
        if bob.body.contains("alice") {
            leaked.push(format!("{name} (X-Cache: {})", bob.x_cache));
        }
    }
    assert!(
        leaked.is_empty(),
        "Bob got Alice's account page behind: {leaked:#?}"
    );
}

// ---------------------------------------------------------------------------
// 2. A write's invalidation depends on the tag index, which Redis may
//    lose (eviction under `allkeys-*`, a failover): the stale page
//    survives the write.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_invalidates_its_path_even_when_the_index_is_lost() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, Duration::from_secs(2)).await;
    let mut conn = raw(&server).await;
    let calls = Calls::default();
    let layer = ResponseCacheLayer::new(cache.clone())
        .namespace("products")
        .invalidate_on_write(true);
    let client = Client::new(products_app(layer, &calls), Transport::Oneshot).await;
    assert_eq!(client.get("/products/1").await.x_cache, "MISS");
    assert_eq!(client.get("/products/1").await.x_cache, "HIT");
    // The index is lost (and only it).
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("larder:1~tag:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let _: () = redis::cmd("DEL")
        .arg(&indexes)
        .query_async(&mut conn)
        .await
        .unwrap();
    let written = client.send("POST", "/products/1", &[]).await;
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    let after = client.get("/products/1").await;
    assert_eq!(
        (after.x_cache.as_str(), after.body.as_str()),
        ("MISS", "product 1, version 3"),
        "the page from before the write survived it"
    );
}

// ---------------------------------------------------------------------------
// 3. A write whose invalidation fails (Redis slow for a moment) answers
//    2xx, and the stale page is served once Redis is back: the failure is
//    only logged.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_invalidation_does_not_leave_the_stale_page_behind() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, Duration::from_millis(200)).await;
    let mut admin = raw(&server).await;
    let calls = Calls::default();
    let layer = ResponseCacheLayer::new(cache.clone())
        .namespace("products")
        .invalidate_on_write(true);
    let client = Client::new(products_app(layer, &calls), Transport::Oneshot).await;
    assert_eq!(client.get("/products/1").await.x_cache, "MISS");
    assert_eq!(client.get("/products/1").await.x_cache, "HIT");
    // Redis stops answering for a moment (a failover's CLIENT PAUSE, a
    // slow fork, a network blip).
    let mut probe = server
        .client()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    // The probe's PING returns when the pause ends: the write must answer
    // before it does (ordered by signals, not timed).
    let mut paused = std::pin::pin!(async move {
        redis::cmd("PING")
            .query_async::<String>(&mut probe)
            .await
            .unwrap()
    });
    let written = tokio::select! {
        biased;
        written = client.send("POST", "/products/1", &[]) => written,
        _ = &mut paused => panic!("the write waited out the pause"),
    };
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    // Redis is back.
    paused.await;
    let after = client.get("/products/1").await;
    assert_ne!(
        after.body, "product 1, version 1",
        "the page from before the write is served after it (X-Cache: {}); the write answered {}",
        after.x_cache, written.status
    );
}

// ---------------------------------------------------------------------------
// 4. Foreign bytes in a tag index: an outage of invalidation, not a repair.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_tag_index_does_not_stop_invalidate_path() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, Duration::from_secs(2)).await;
    let mut conn = raw(&server).await;
    let calls = Calls::default();
    let layer = ResponseCacheLayer::new(cache.clone()).namespace("products");
    let client = Client::new(products_app(layer.clone(), &calls), Transport::Oneshot).await;
    assert_eq!(client.get("/products/1").await.x_cache, "MISS");
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("larder:1~tag:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&indexes)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&indexes[0])
        .arg("\u{1F4A5} not ours")
        .query_async(&mut conn)
        .await
        .unwrap();
    let outcome = layer.invalidate_path("/products/1").await;
    assert!(outcome.is_ok(), "invalidate_path: {outcome:?}");
}

// ---------------------------------------------------------------------------
// 5. The embedded default store: every distinct path a client asks for (a scanner, a crawler)
//    leaves a tag stamp (and, if stored, a tag index) in the in-process
//    store's bookkeeping forever, whatever `memory_capacity_bytes` says.

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn random_paths_do_not_grow_the_in_process_store_without_bound() {
    let config = Config::builder()
        .memory_capacity_bytes(256 << 10)
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap(); // no REDIS_URL: in-process
    let layer = ResponseCacheLayer::new(cache)
        .namespace("products")
        .vary_on_query(["v"])
        .ttl(Duration::from_millis(20));
    let calls = Calls::default();
    let client = Client::new(products_app(layer, &calls), Transport::Oneshot).await;
    for i in 0..5_000_u32 {
        client.get(&format!("/products/{i}")).await;
    }
    // Control: 100k distinct keys on one path stay within bounds.
    let before = rss_bytes();
    for i in 0..40_000_u32 {
        client.get(&format!("/products/0?v={i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let control = rss_bytes().saturating_sub(before);
    eprintln!("control: one path, 40k keys: +{} KiB", control >> 10);
    assert!(control < 4 << 20, "control grew by {} MiB", control >> 20);
    let before = rss_bytes();
    for i in 5_000..45_000_u32 {
        client.get(&format!("/products/{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // every page expired
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "40k expired pages on a 256 KiB in-process store grew the process by {} MiB",
        grown >> 20
    );
}
