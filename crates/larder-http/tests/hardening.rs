//! Regressions from a security review of the layer, each once a failing
//! test: a nested router's prefix left out of the key; stripped parameters
//! still reaching the handler; forwarded-host poisoning; method overrides;
//! unbounded buffering of a body longer than it declared; unstorable
//! responses serialising concurrent requests; percent-encoded spellings
//! escaping invalidation; 304 for a stored 404; `Expires` and the origin's
//! `Age` ignored; `invalidate_route` reaching a longer namespace. Each runs
//! through `oneshot` and again over a real socket.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use common::{Calls, Client, Transport};
use http_body::{Frame, SizeHint};
use larder::Cache;
use larder_http::ResponseCacheLayer;

both_transports!(
    a_nested_routers_prefix_is_part_of_the_key,
    stripped_params_never_reach_a_cached_body,
    forwarded_host_cannot_poison_what_others_get,
    method_overrides_bypass,
    a_body_longer_than_declared_is_not_buffered_whole,
    unstorable_responses_do_not_serialise_requests,
    every_spelling_of_a_path_is_invalidated,
    if_none_match_never_turns_a_stored_404_into_304,
    expires_in_the_past_is_not_stored,
    the_origins_age_counts,
    invalidate_route_stays_in_its_namespace,
);

async fn a_nested_routers_prefix_is_part_of_the_key(transport: Transport) {
    async fn orders(Path(tenant): Path<String>) -> String {
        format!("orders of {tenant}")
    }
    let layer = ResponseCacheLayer::new(Cache::in_memory()).namespace("orders");
    let tenant_routes = Router::new().route("/orders", get(orders).layer(layer.clone()));
    let app = Router::new().nest("/tenants/{tenant}", tenant_routes);
    let client = Client::new(app, transport).await;
    assert_eq!(
        client.get("/tenants/acme/orders").await.body,
        "orders of acme"
    );
    let globex = client.get("/tenants/globex/orders").await;
    assert_eq!(
        (globex.x_cache.as_str(), globex.body.as_str()),
        ("MISS", "orders of globex")
    );
    assert_eq!(client.get("/tenants/acme/orders").await.x_cache, "HIT");
    assert_eq!(
        layer.invalidate_path("/tenants/acme/orders").await.unwrap(),
        1,
        "the whole path is the key"
    );
}

async fn stripped_params_never_reach_a_cached_body(transport: Transport) {
    async fn products(Query(q): Query<HashMap<String, String>>) -> String {
        format!(
            "category={:?} debug={:?}",
            q.get("category"),
            q.get("debug")
        )
    }
    let app = Router::new().route("/p", get(products)).layer(
        ResponseCacheLayer::new(Cache::in_memory())
            .vary_on_query(["category"])
            .strip_unlisted_query(true),
    );
    let client = Client::new(app, transport).await;
    let attacker = client.get("/p?category=a&debug=%3Cscript%3E").await;
    assert_eq!(attacker.body, "category=Some(\"a\") debug=None");
    let victim = client.get("/p?category=a").await;
    assert_eq!(
        (victim.x_cache.as_str(), victim.body.as_str()),
        ("HIT", "category=Some(\"a\") debug=None")
    );
}

async fn forwarded_host_cannot_poison_what_others_get(transport: Transport) {
    async fn links(State(calls): State<Calls>, headers: HeaderMap) -> String {
        calls.bump();
        let host = headers
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                let forwarded = headers.get(header::FORWARDED)?.to_str().ok()?;
                forwarded.split(';').find_map(|p| p.strip_prefix("host="))
            })
            .unwrap_or("shop.example");
        format!("<a href=\"https://{host}/next\">")
    }
    let calls = Calls::default();
    let app = Router::new()
        .route("/page", get(links))
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    for poison in [
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=10.0.0.1;host=evil.example"),
    ] {
        let attacker = client.send("GET", "/page", &[poison]).await;
        assert!(attacker.body.contains("evil.example"));
        let victim = client.get("/page").await;
        assert_eq!(victim.body, "<a href=\"https://shop.example/next\">");
    }
    let again = client.get("/page").await;
    assert_eq!(again.x_cache, "HIT");
    // A proxy's `for=` differs per client: it does not split the cache.
    let proxied = [("forwarded", "for=10.0.0.1;host=evil.example")];
    let other_client = [("forwarded", "for=10.0.0.2;host=evil.example")];
    client.send("GET", "/page", &proxied).await;
    assert_eq!(
        client.send("GET", "/page", &other_client).await.x_cache,
        "HIT"
    );
    assert_eq!(calls.get(), 3);
}

async fn method_overrides_bypass(transport: Transport) {
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/item",
            get(|State(calls): State<Calls>| async move { format!("v{}", calls.bump()) }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    let overridden = client
        .send("GET", "/item", &[("x-http-method-override", "DELETE")])
        .await;
    assert_eq!(overridden.x_cache, "BYPASS");
    assert_eq!(
        client.get("/item").await.x_cache,
        "MISS",
        "nothing was stored"
    );
    assert_eq!(calls.get(), 2);
}

/// A body that says it is 5 bytes long and streams 16 MiB.
struct Lying {
    chunks_left: usize,
    pulled: Arc<AtomicUsize>,
}

impl http_body::Body for Lying {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.chunks_left == 0 {
            return Poll::Ready(None);
        }
        self.chunks_left -= 1;
        self.pulled.fetch_add(64 * 1024, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 64 * 1024])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(5)
    }
}

async fn a_body_longer_than_declared_is_not_buffered_whole(transport: Transport) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let handler_pulled = Arc::clone(&pulled);
    let app = Router::new()
        .route(
            "/big",
            get(move || {
                let pulled = Arc::clone(&handler_pulled);
                async move {
                    Body::new(Lying {
                        chunks_left: 256,
                        pulled,
                    })
                }
            }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()).max_body_bytes(1024));
    let client = Client::new(app, transport).await;
    let reply = client.get("/big").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= 64 * 1024,
        "buffered {pulled} bytes past a 1 KiB cap"
    );
}

async fn unstorable_responses_do_not_serialise_requests(transport: Transport) {
    #[derive(Clone, Default)]
    struct Inside {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }
    async fn login_page(State(inside): State<Inside>) -> Response {
        let now = inside.now.fetch_add(1, Ordering::SeqCst) + 1;
        inside.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await; // the page's work
        inside.now.fetch_sub(1, Ordering::SeqCst);
        ([(header::SET_COOKIE, "session=fresh")], "welcome").into_response()
    }
    let inside = Inside::default();
    let app = Router::new()
        .route("/", get(login_page))
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
        .with_state(inside.clone());
    let client = Arc::new(Client::new(app, transport).await);
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.get("/").await })
        })
        .collect();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.headers[header::SET_COOKIE], "session=fresh");
    }
    assert!(
        inside.most.load(Ordering::SeqCst) > 1,
        "concurrent requests for an unstorable page ran one at a time"
    );
}

async fn every_spelling_of_a_path_is_invalidated(transport: Transport) {
    let version = Arc::new(AtomicUsize::new(1));
    let layer = ResponseCacheLayer::new(Cache::in_memory())
        .namespace("users")
        .invalidate_on_write(true);
    let app = Router::new()
        .route(
            "/users/{id}",
            get(
                |State(version): State<Arc<AtomicUsize>>, Path(id): Path<String>| async move {
                    format!("{id} v{}", version.load(Ordering::SeqCst))
                },
            )
            .put(|| async { "ok" }),
        )
        .layer(layer.clone())
        .with_state(version.clone());
    let client = Client::new(app, transport).await;
    let other = client.get("/users/a%62c").await;
    assert_eq!(
        (other.x_cache.as_str(), other.body.as_str()),
        ("BYPASS", "abc v1"),
        "only the canonical spelling is stored"
    );
    client.get("/users/abc").await;
    assert_eq!(client.get("/users/abc").await.x_cache, "HIT");
    version.store(2, Ordering::SeqCst);
    assert_eq!(client.send("PUT", "/users/a%62c", &[]).await.status, 200);
    assert_eq!(client.get("/users/abc").await.body, "abc v2");
    version.store(3, Ordering::SeqCst);
    assert_eq!(layer.invalidate_path("/users/%61bc").await.unwrap(), 1);
    assert_eq!(client.get("/users/abc").await.body, "abc v3");
}

async fn if_none_match_never_turns_a_stored_404_into_304(transport: Transport) {
    let app = Router::new()
        .route(
            "/gone",
            get(|| async { (StatusCode::NOT_FOUND, "no such product") }),
        )
        .layer(
            ResponseCacheLayer::new(Cache::in_memory())
                .cache_statuses([StatusCode::OK, StatusCode::NOT_FOUND]),
        );
    let client = Client::new(app, transport).await;
    let etag = client.get("/gone").await.headers[header::ETAG].clone();
    for tag in ["*", etag.to_str().unwrap()] {
        let reply = client.send("GET", "/gone", &[("if-none-match", tag)]).await;
        assert_eq!(
            (reply.status, reply.x_cache.as_str()),
            (StatusCode::NOT_FOUND, "HIT"),
            "{tag}"
        );
    }
}

async fn expires_in_the_past_is_not_stored(transport: Transport) {
    let app = Router::new()
        .route(
            "/old",
            get(|| async { ([(header::EXPIRES, "Thu, 01 Jan 1970 00:00:00 GMT")], "now") }),
        )
        .route("/zero", get(|| async { ([(header::EXPIRES, "0")], "now") }))
        .layer(ResponseCacheLayer::new(Cache::in_memory()));
    let client = Client::new(app, transport).await;
    for path in ["/old", "/zero"] {
        client.get(path).await;
        assert_eq!(client.get(path).await.x_cache, "MISS", "{path}");
    }
}

async fn the_origins_age_counts(transport: Transport) {
    let app = Router::new()
        .route(
            "/a",
            get(|| async {
                (
                    [(header::AGE, "50"), (header::CACHE_CONTROL, "max-age=60")],
                    "from upstream",
                )
            }),
        )
        .route(
            "/spent",
            get(|| async {
                (
                    [(header::AGE, "60"), (header::CACHE_CONTROL, "max-age=60")],
                    "from upstream",
                )
            }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()));
    let client = Client::new(app, transport).await;
    client.get("/a").await;
    let hit = client.get("/a").await;
    let age: u64 = hit.headers[header::AGE].to_str().unwrap().parse().unwrap();
    assert_eq!(hit.x_cache, "HIT");
    assert!((50..60).contains(&age), "Age {age}");
    client.get("/spent").await;
    assert_eq!(
        client.get("/spent").await.x_cache,
        "MISS",
        "no lifetime left"
    );
}

async fn invalidate_route_stays_in_its_namespace(transport: Transport) {
    let cache = Cache::in_memory();
    let short = ResponseCacheLayer::new(cache.clone()).namespace("shop");
    let long = ResponseCacheLayer::new(cache).namespace("shop:admin");
    let app = Router::new()
        .route("/a", get(|| async { "a" }).layer(short.clone()))
        .route("/b", get(|| async { "b" }).layer(long.clone()));
    let client = Client::new(app, transport).await;
    client.get("/a").await;
    client.get("/b").await;
    assert_eq!(short.invalidate_route().await.unwrap(), 1);
    assert_eq!(client.get("/b").await.x_cache, "HIT");
    assert_eq!(client.get("/a").await.x_cache, "MISS");
}
