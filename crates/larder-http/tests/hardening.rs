//! Regressions from a security review of the layer, each once a failing
//! test: a nested router's prefix left out of the key; stripped parameters
//! still reaching the handler; forwarded-host poisoning; method overrides;
//! unbounded buffering of a body longer than it declared; unstorable
//! responses serialising concurrent requests; percent-encoded spellings
//! escaping invalidation; 304 for a stored 404; `Expires` and the origin's
//! `Age` ignored; `invalidate_route` reaching a longer namespace. Then, from
//! a second review: escaped and raw spellings of one path stored apart;
//! `Forwarded` elements merged in the key; HTTP/1 and HTTP/2 hosts keyed
//! apart; a huge `Age` read as 0; an old `Date` not counted as age; a body
//! shorter than its `Content-Length` stored as complete. Most run through
//! `oneshot` and again over a real socket.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use common::{Calls, Client, Transport};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use larder::Cache;
use larder_http::ResponseCacheLayer;
use tower::ServiceExt;

both_transports!(
    a_nested_routers_prefix_is_part_of_the_key,
    stripped_params_never_reach_a_cached_body,
    forwarded_host_cannot_poison_what_others_get,
    method_overrides_bypass,
    a_body_longer_than_declared_is_not_buffered_whole,
    unstorable_responses_do_not_serialise_requests,
    every_spelling_of_a_path_is_invalidated,
    if_none_match_never_turns_a_stored_404_into_304,
    stale_on_arrival_is_not_stored,
    the_origins_age_counts,
    invalidate_route_stays_in_its_namespace,
    escaped_and_raw_sub_delims_are_one_path,
    forwarded_element_boundaries_are_keyed,
    a_body_shorter_than_declared_is_not_stored,
    if_none_match_compares_weakly,
);

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): a stored
/// `W/"v1"` matches `"v1"` and `W/"v1"`.
async fn if_none_match_compares_weakly(transport: Transport) {
    let app = Router::new()
        .route(
            "/w",
            get(|| async { ([(header::ETAG, "W/\"v1\"")], "body") }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()));
    let client = Client::new(app, transport).await;
    client.get("/w").await;
    for tag in ["\"v1\"", "W/\"v1\"", "\"v0\", W/\"v1\""] {
        let reply = client.send("GET", "/w", &[("if-none-match", tag)]).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
    }
    let other = client
        .send("GET", "/w", &[("if-none-match", "\"v2\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
}

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

/// `/users/{id}` answering `{id} v{version}`, behind a layer that
/// invalidates on writes; the version and the layer are the test's.
fn versioned_users() -> (Router, ResponseCacheLayer, Arc<AtomicUsize>) {
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
    (app, layer, version)
}

async fn every_spelling_of_a_path_is_invalidated(transport: Transport) {
    let (app, layer, version) = versioned_users();
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
    version.store(4, Ordering::SeqCst);
    let mut request = Request::get("/users/%61%62c");
    if let Some(host) = client.base.strip_prefix("http://") {
        request = request.header(header::HOST, host);
    }
    let request = request.body(()).unwrap();
    assert!(layer.invalidate_request(&request).await.unwrap());
    assert_eq!(client.get("/users/abc").await.body, "abc v4");
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

/// An app whose `/r` answers `from upstream` with `headers`.
fn replying_with(headers: &'static [(&'static str, &'static str)]) -> Router {
    let handler = move || async move {
        let mut response = "from upstream".into_response();
        for (name, value) in headers {
            response
                .headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        response
    };
    Router::new()
        .route("/r", get(handler))
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
}

/// Stale on arrival, so never stored: an `Expires` in the past or
/// unreadable; an `Age` at its lifetime, or too large to parse (RFC 9111
/// §1.2.2: that is 2^31, not 0); a lifetime (`Expires` − `Date`) spent long
/// ago, since now − `Date` is age too.
async fn stale_on_arrival_is_not_stored(transport: Transport) {
    let cases: [&'static [(&'static str, &'static str)]; 5] = [
        &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
        &[("expires", "0")],
        &[("age", "60"), ("cache-control", "max-age=60")],
        &[
            ("age", "99999999999999999999"),
            ("cache-control", "max-age=60"),
        ],
        &[
            ("date", "Sat, 01 Jan 2000 00:00:00 GMT"),
            ("expires", "Sat, 01 Jan 2000 01:00:00 GMT"),
        ],
    ];
    for headers in cases {
        let client = Client::new(replying_with(headers), transport).await;
        client.get("/r").await;
        assert_eq!(client.get("/r").await.x_cache, "MISS", "{headers:?}");
    }
}

/// The `Age` a response arrived with counts in the `Age` it is served with.
async fn the_origins_age_counts(transport: Transport) {
    let headers = &[("age", "50"), ("cache-control", "max-age=60")];
    let client = Client::new(replying_with(headers), transport).await;
    client.get("/r").await;
    let hit = client.get("/r").await;
    let age: u64 = hit.headers[header::AGE].to_str().unwrap().parse().unwrap();
    assert_eq!(hit.x_cache, "HIT");
    assert!((50..60).contains(&age), "Age {age}");
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

/// `/users/a:b` and `/users/a%3Ab` reach the handler with the same `id`:
/// both were canonical and stored apart, and a write to one left the other
/// stale. Now only `/users/a:b` is stored.
async fn escaped_and_raw_sub_delims_are_one_path(transport: Transport) {
    let (app, _layer, version) = versioned_users();
    let client = Client::new(app, transport).await;
    let escaped = client.get("/users/a%3Ab").await;
    assert_eq!(
        (escaped.x_cache.as_str(), escaped.body.as_str()),
        ("BYPASS", "a:b v1")
    );
    assert_eq!(client.get("/users/a:b").await.x_cache, "MISS");
    assert_eq!(client.get("/users/a:b").await.x_cache, "HIT");
    version.store(2, Ordering::SeqCst);
    assert_eq!(client.send("PUT", "/users/a%3Ab", &[]).await.status, 200);
    let after = client.get("/users/a:b").await;
    assert_eq!(
        (after.x_cache.as_str(), after.body.as_str()),
        ("MISS", "a:b v2"),
        "a write to any spelling reaches the stored one"
    );
}

/// What axum-extra's `Host` extractor does: the first element of the first
/// `Forwarded`, then `X-Forwarded-Host`, then `Host`, then the authority.
fn host_like_axum_extra(headers: &HeaderMap, uri: &Uri) -> String {
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| {
            first.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("host")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
        });
    forwarded
        .or_else(|| {
            headers
                .get("x-forwarded-host")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .or_else(|| headers.get(header::HOST)?.to_str().ok().map(str::to_owned))
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "internal".to_owned())
}

/// Behind a proxy that appends its `Forwarded` element (RFC 7239 §4), a
/// client that sends `Forwarded: for=x` moves the proxy's `host=` out of the
/// first element: the app no longer sees it, but the key (host/proto
/// parameters flattened across elements) is the victim's.
async fn forwarded_element_boundaries_are_keyed(transport: Transport) {
    let app = Router::new()
        .route(
            "/page",
            get(|headers: HeaderMap, uri: Uri| async move {
                format!(
                    "<a href=\"//{}/next\">",
                    host_like_axum_extra(&headers, &uri)
                )
            }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()));
    let client = Client::new(app, transport).await;
    let proxy_element = "for=203.0.113.9;host=shop.example;proto=https";
    let attacker = format!("for=198.51.100.66, {proxy_element}");
    let poisoned = client
        .send("GET", "/page", &[("forwarded", &attacker)])
        .await;
    assert!(!poisoned.body.contains("shop.example"), "{}", poisoned.body);
    let victim = client
        .send("GET", "/page", &[("forwarded", proxy_element)])
        .await;
    assert_eq!(
        victim.body, "<a href=\"//shop.example/next\">",
        "victim got the attacker's body ({})",
        victim.x_cache
    );
}

/// A body that ends before its Content-Length is a broken response (hyper
/// aborts it); stored, it becomes a complete-looking truncated 200 for all.
async fn a_body_shorter_than_declared_is_not_stored(transport: Transport) {
    let app = Router::new()
        .route(
            "/short",
            get(|| async {
                Response::builder()
                    .header(header::CONTENT_LENGTH, "10")
                    .body(Body::from("hello"))
                    .unwrap()
            }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()));
    let client = Client::new(app, transport).await;
    for _ in 0..2 {
        let reply = client.get("/short").await;
        assert_eq!(
            (reply.status, reply.x_cache.as_str()),
            (StatusCode::BAD_GATEWAY, "MISS"),
            "a truncated body is neither stored nor passed on as complete"
        );
    }
}

async fn oneshot(app: &Router, request: Request<Body>) -> (String, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (x_cache, String::from_utf8_lossy(&body).into_owned())
}

/// hyper accepts a raw UTF-8 request target (httparse allows 0x80..=0xFF,
/// http 1.x valid UTF-8): `/users/café` and `/users/caf%C3%A9` reach the
/// handler with the same id. Both were stored apart, and `invalidate_path`
/// reached one. Now only the escaped spelling is stored.
#[tokio::test]
async fn raw_utf8_and_its_escape_are_one_path() {
    use std::io::{Read, Write};
    let layer = ResponseCacheLayer::new(Cache::in_memory()).namespace("users");
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move { id }),
        )
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, app).into_future());
    for path in ["/users/caf%C3%A9", "/users/café"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = tokio::task::spawn_blocking(move || {
            let mut socket = std::net::TcpStream::connect(addr).unwrap();
            socket.write_all(request.as_bytes()).unwrap();
            let mut reply = String::new();
            socket.read_to_string(&mut reply).unwrap();
            reply
        })
        .await
        .unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with("café"),
            "{reply}"
        );
        let label = if path.is_ascii() { "MISS" } else { "BYPASS" };
        assert!(reply.contains(&format!("x-cache: {label}")), "{reply}");
    }
    assert_eq!(layer.invalidate_path("/users/café").await.unwrap(), 1);
}

/// HTTP/2 (hyper) carries the host only in the URI's authority, HTTP/1 in
/// `Host`: the same URL got two keys, and `invalidate_request` with the
/// HTTP/1 form missed the copy stored for HTTP/2 clients.
#[tokio::test]
async fn authority_and_host_are_one_host() {
    let layer = ResponseCacheLayer::new(Cache::in_memory());
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/page",
            get(|State(c): State<Arc<AtomicUsize>>| async move {
                format!("v{}", c.fetch_add(1, Ordering::SeqCst) + 1)
            }),
        )
        .layer(layer.clone())
        .with_state(calls);
    let h2 = || {
        Request::get("https://shop.example/page")
            .body(Body::empty())
            .unwrap()
    };
    let h1 = || {
        Request::get("/page")
            .header(header::HOST, "shop.example")
            .body(Body::empty())
            .unwrap()
    };
    oneshot(&app, h2()).await;
    assert!(
        layer.invalidate_request(&h1()).await.unwrap(),
        "h2 copy missed"
    );
}

/// Control: without the layer, the same handler's response is an error
/// for the client (hyper aborts a body shorter than its Content-Length).
#[tokio::test]
async fn control_short_body_without_the_layer_fails() {
    let app = Router::new().route(
        "/short",
        get(|| async {
            Response::builder()
                .header(header::CONTENT_LENGTH, "10")
                .body(Body::from("hello"))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, app).into_future());
    let failed = match reqwest::get(format!("http://{addr}/short")).await {
        Err(_) => true,
        Ok(reply) => reply.text().await.is_err(),
    };
    assert!(failed, "hyper aborts it");
}
