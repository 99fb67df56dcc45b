//! The Django original's §2 examples — all products, filtered products, the user
//! dashboard — as axum routes behind `ResponseCacheLayer`, on a private
//! redis-server, plus what Redis failure and a herd of misses do to them.
//!
//! The Django original's dashboard cached on `vary_on_query_params=['user_id']`: the
//! key came from a parameter the caller chooses, so anyone could read anyone's
//! cached dashboard by asking for `?user_id=<victim>`. Here the route keys on
//! the identity the auth middleware established, and a `user_id` parameter
//! changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `get_products_api`: all products.
async fn get_products_api(State(calls): State<Calls>) -> Json<Value> {
    calls.bump();
    Json(
        json!({"products": [{"id": 1, "name": "Teapot", "price": 40}, {"id": 2, "name": "Kettle", "price": 25}]}),
    )
}

#[derive(serde::Deserialize)]
struct Filters {
    category: Option<String>,
    sort: Option<String>,
}

/// `get_filtered_products_api`: category filter and sort order.
async fn get_filtered_products_api(
    State(calls): State<Calls>,
    Query(f): Query<Filters>,
) -> Json<Value> {
    calls.bump();
    let mut products = vec![
        ("Teapot", 40, "kitchen"),
        ("Kettle", 25, "kitchen"),
        ("Rake", 15, "garden"),
    ];
    products.retain(|p| f.category.as_deref().is_none_or(|c| c == p.2));
    match f.sort.as_deref() {
        Some("price_asc") => products.sort_by_key(|p| p.1),
        Some("price_desc") => products.sort_by_key(|p| std::cmp::Reverse(p.1)),
        _ => products.sort_by_key(|p| p.0),
    }
    Json(
        json!({"products": products.iter().map(|p| p.0).collect::<Vec<_>>(), "count": products.len()}),
    )
}

/// The identity the auth middleware established.
#[derive(Clone, Debug)]
struct UserId(String);

/// A tiny auth middleware: bearer token → user.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = match token {
        Some("token-ada") => "1",
        Some("token-bob") => "2",
        _ => return StatusCode::UNAUTHORIZED.into_response(),
    };
    request.extensions_mut().insert(UserId(user.to_owned()));
    next.run(request).await
}

/// `get_user_dashboard_api`, for the authenticated user only.
async fn get_user_dashboard_api(
    State(calls): State<Calls>,
    Extension(user): Extension<UserId>,
) -> Json<Value> {
    calls.bump();
    let name = if user.0 == "1" { "Ada" } else { "Bob" };
    Json(json!({"user": {"id": user.0, "name": name}, "recent_jobs": [], "recent_payments": []}))
}

fn app(cache: &Cache, calls: &Calls) -> Router {
    let fifteen_minutes = Duration::from_secs(900);
    Router::new()
        .route(
            "/api/products",
            get(get_products_api).layer(
                ResponseCacheLayer::new(cache.clone())
                    .namespace("products")
                    .ttl(fifteen_minutes),
            ),
        )
        .route(
            "/api/products/filtered",
            get(get_filtered_products_api).layer(
                ResponseCacheLayer::new(cache.clone())
                    .namespace("filtered_products")
                    .ttl(fifteen_minutes)
                    .vary_on_query(["category", "sort"]),
            ),
        )
        .route(
            "/api/dashboard",
            get(get_user_dashboard_api)
                .layer(
                    ResponseCacheLayer::new(cache.clone())
                        .namespace("dashboard")
                        .ttl(fifteen_minutes)
                        .strip_unlisted_query(true)
                        .vary_on(|parts| {
                            parts
                                .extensions
                                .get::<UserId>()
                                .map(|u| format!("user:{}", u.0))
                        }),
                )
                .layer(middleware::from_fn(authenticate)),
        )
        .with_state(calls.clone())
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn redis_cache(server: &RedisServer) -> Cache {
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_millis(200))
        .breaker_failures(3)
        .breaker_open_for(Duration::from_millis(200))
        .build()
        .unwrap();
    Cache::connect(config).await.unwrap()
}

async fn fetch(http: &reqwest::Client, url: String, token: Option<&str>) -> (String, String) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    (x_cache, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_api_caching_examples() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let base = serve(app(&cache, &calls)).await;
    let http = reqwest::Client::new();

    // All products: cached for 15 minutes.
    let (first, body) = fetch(&http, format!("{base}/api/products"), None).await;
    let (second, again) = fetch(&http, format!("{base}/api/products"), None).await;
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    assert_eq!(body, again);
    assert_eq!(calls.get(), 1);

    // Filtered: one variant per (category, sort), in any order.
    let url = |q: &str| format!("{base}/api/products/filtered?{q}");
    let (_, kitchen) = fetch(&http, url("category=kitchen&sort=price_asc"), None).await;
    let (hit, same) = fetch(&http, url("sort=price_asc&category=kitchen"), None).await;
    assert_eq!((hit.as_str(), same.as_str()), ("HIT", kitchen.as_str()));
    let (_, garden) = fetch(&http, url("category=garden"), None).await;
    assert!(
        kitchen.contains("Kettle") && !kitchen.contains("Rake"),
        "{kitchen}"
    );
    assert!(
        garden.contains("Rake") && !garden.contains("Teapot"),
        "{garden}"
    );
    assert_eq!(calls.get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_only_ever_see_their_own_dashboard() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let base = serve(app(&cache, &calls)).await;
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..60)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let (token, name) = if i % 2 == 0 {
                    ("token-ada", "Ada")
                } else {
                    ("token-bob", "Bob")
                };
                // The Django original's attack: ask for the other user's id. It must not matter.
                let victim = if i % 2 == 0 { 2 } else { 1 };
                let (_, body) = fetch(
                    &http,
                    format!("{base}/api/dashboard?user_id={victim}"),
                    Some(token),
                )
                .await;
                (name, body)
            })
        })
        .collect();
    for request in requests {
        let (name, body) = request.await.unwrap();
        assert!(body.contains(name), "{name} got {body}");
        let other = if name == "Ada" { "Bob" } else { "Ada" };
        assert!(
            !body.contains(other),
            "{name} got {other}'s dashboard: {body}"
        );
    }
    assert_eq!(calls.get(), 2, "one computation per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_identical_misses_call_the_handler_once() {
    async fn slow(State(calls): State<Calls>) -> String {
        calls.bump();
        tokio::time::sleep(Duration::from_millis(50)).await; // the handler's work
        "report".to_owned()
    }
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let app = Router::new()
        .route("/report", get(slow))
        .layer(ResponseCacheLayer::new(cache))
        .with_state(calls.clone());
    let base = serve(app).await;
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move { fetch(&http, format!("{base}/report"), None).await.1 })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), "report");
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_the_handler_answers_and_caching_resumes() {
    let mut server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let base = serve(app(&cache, &calls)).await;
    let http = reqwest::Client::new();
    fetch(&http, format!("{base}/api/products"), None).await;
    server.kill();
    for i in 0..10 {
        let (_, body) = fetch(&http, format!("{base}/api/products"), None).await;
        assert!(body.contains("Teapot"));
        assert_eq!(calls.get(), 2 + i, "the handler answers every request");
    }
    server.restart();
    // Redis gives no signal that a client reconnected: poll, bounded.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (x_cache, _) = fetch(&http, format!("{base}/api/products"), None).await;
        if x_cache == "HIT" {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "caching did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_by_request_path_route_and_on_write() {
    async fn write(State(calls): State<Calls>) -> StatusCode {
        calls.bump();
        StatusCode::NO_CONTENT
    }
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let calls = Calls::default();
    let layer = ResponseCacheLayer::new(cache)
        .namespace("filtered_products")
        .vary_on_query(["category", "sort"])
        .invalidate_on_write(true);
    let app = Router::new()
        .route(
            "/api/products/filtered",
            get(get_filtered_products_api)
                .post(write)
                .layer(layer.clone()),
        )
        .with_state(calls.clone());
    let base = serve(app).await;
    let http = reqwest::Client::new();
    let url = |q: &str| format!("{base}/api/products/filtered?{q}");
    let x_cache = |q: &'static str| {
        let (http, url) = (http.clone(), url(q));
        async move { fetch(&http, url, None).await.0 }
    };
    x_cache("category=kitchen").await;
    x_cache("category=garden").await;
    assert_eq!(x_cache("category=kitchen").await, "HIT");

    // Route and params: exactly that variant.
    // As a client sends it: responses are stored per host.
    let host = base.trim_start_matches("http://");
    let hostless = axum::http::Request::get("/api/products/filtered?category=kitchen")
        .body(())
        .unwrap();
    assert!(!layer.invalidate_request(&hostless).await.unwrap());
    let request = axum::http::Request::get("/api/products/filtered?category=kitchen")
        .header("host", host)
        .body(())
        .unwrap();
    assert!(layer.invalidate_request(&request).await.unwrap());
    assert_eq!(x_cache("category=kitchen").await, "MISS");
    assert_eq!(x_cache("category=garden").await, "HIT");

    // The path: every variant.
    assert_eq!(
        layer
            .invalidate_path("/api/products/filtered")
            .await
            .unwrap(),
        2
    );
    assert_eq!(x_cache("category=kitchen").await, "MISS");
    assert_eq!(x_cache("category=garden").await, "MISS");

    // A successful write to the path drops its variants.
    let response = http.post(url("")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(x_cache("category=kitchen").await, "MISS");

    // The route (namespace).
    assert!(layer.invalidate_route().await.unwrap() >= 1);
    assert_eq!(x_cache("category=kitchen").await, "MISS");
}
