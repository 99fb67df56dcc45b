//! The response cache's rules, each run through `oneshot` and again over a
//! real socket with a real HTTP client, counting handler calls.

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Calls, Client, Transport};
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};

#[derive(serde::Deserialize)]
struct Filters {
    category: Option<String>,
    sort: Option<String>,
}

async fn products(State(calls): State<Calls>, Query(filters): Query<Filters>) -> String {
    let n = calls.0.fetch_add(1, Ordering::SeqCst) + 1;
    format!(
        "products category={:?} sort={:?} call={n}",
        filters.category, filters.sort
    )
}

/// A handler whose response headers the test chooses via `?h=name:value`.
async fn with_headers(State(calls): State<Calls>, headers: HeaderMap) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    let mut response = "body".into_response();
    if let Some(value) = headers.get("x-test-response-header") {
        let (name, value) = value.to_str().unwrap().split_once(':').unwrap();
        response.headers_mut().append(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

static CLOCK: AtomicU64 = AtomicU64::new(1_000_000);

fn clock() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

fn app(calls: &Calls, layer: ResponseCacheLayer) -> Router {
    Router::new()
        .route("/api/products", get(products))
        .route(
            "/echo",
            get(with_headers)
                .post(with_headers)
                .put(with_headers)
                .patch(with_headers)
                .delete(with_headers),
        )
        .layer(layer)
        .with_state(calls.clone())
}

fn layer() -> ResponseCacheLayer {
    ResponseCacheLayer::new(Cache::in_memory())
        .ttl(Duration::from_secs(900))
        .vary_on_query(["category", "sort"])
        .vary_on_headers([HeaderName::from_static("accept-language")])
        .max_body_bytes(64)
        .clock(clock)
}

both_transports!(
    gets_are_cached_and_writes_are_not,
    listed_params_select_variants_and_unlisted_ones_bypass,
    response_rules_refuse_what_must_not_be_shared,
    credentials_bypass_a_route_without_identity,
    head_is_answered_from_get_but_never_stored,
    etag_and_304,
    age_follows_the_clock,
    oversized_bodies_are_not_stored,
    undeclared_request_headers_do_not_change_what_others_get,
    streaming_bodies_are_not_stored,
    streaming_bodies_past_the_limit_are_not_stored,
    streamed_bodies_within_the_limit_are_stored_in_shared_mode,
    an_event_stream_is_relayed_as_it_streams,
    only_configured_statuses_are_stored,
    authorization_with_identity_is_keyed_on_the_identity,
    request_no_cache_is_ignored_unless_honoured,
);

async fn gets_are_cached_and_writes_are_not(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let first = client.get("/api/products").await;
    let second = client.get("/api/products").await;
    assert_eq!(
        (first.x_cache.as_str(), second.x_cache.as_str()),
        ("MISS", "HIT")
    );
    assert_eq!(first.body, second.body);
    assert_eq!(calls.get(), 1);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for _ in 0..2 {
            let reply = client.send(method, "/echo", &[]).await;
            assert_eq!(reply.x_cache, "BYPASS", "{method}");
        }
    }
    assert_eq!(calls.get(), 9, "writes are never cached");
}

async fn request_no_cache_is_ignored_unless_honoured(transport: Transport) {
    let no_cache = [("cache-control", "No-Cache")];
    for (honour, expected) in [(false, "HIT"), (true, "BYPASS")] {
        let calls = Calls::default();
        let client = Client::new(
            app(&calls, layer().honour_request_no_cache(honour)),
            transport,
        )
        .await;
        client.get("/api/products").await;
        let reply = client.send("GET", "/api/products", &no_cache).await;
        assert_eq!(reply.x_cache, expected, "honour = {honour}");
        assert_eq!(calls.get(), if honour { 2 } else { 1 });
    }
}

async fn listed_params_select_variants_and_unlisted_ones_bypass(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let tools = client.get("/api/products?category=tools&sort=price").await;
    let reordered = client.get("/api/products?sort=price&category=tools").await;
    assert_eq!(reordered.x_cache, "HIT");
    assert_eq!(tools.body, reordered.body);
    let garden = client.get("/api/products?category=garden&sort=price").await;
    assert_eq!(garden.x_cache, "MISS");
    assert_ne!(garden.body, tools.body);
    let sneaky = client
        .get("/api/products?category=tools&sort=price&debug=1")
        .await;
    assert_eq!(
        sneaky.x_cache, "BYPASS",
        "an unlisted param never reaches a cached body"
    );
    // Repeated params are keyed in order: two variants (axum's extractor
    // rejects them with 400 before the handler, which is not stored).
    let repeated_a = client.get("/api/products?category=a&category=b").await;
    let repeated_b = client.get("/api/products?category=b&category=a").await;
    assert_eq!(
        (repeated_a.x_cache.as_str(), repeated_b.x_cache.as_str()),
        ("MISS", "MISS")
    );
    assert_eq!(repeated_a.status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.get(), 3);
}

async fn response_rules_refuse_what_must_not_be_shared(transport: Transport) {
    for header in [
        "set-cookie:session=abc",
        "cache-control:PRIVATE",
        "cache-control:Private=\"x-user\"",
        "cache-control:No-Store",
        "cache-control:public, NO-STORE",
        "cache-control:NO-CACHE",
        "cache-control:no-cache=\"set-cookie\"",
        "cache-control:max-age=0",
        "cache-control:public, Max-Age=0",
        "cache-control:max-age=600, S-MAXAGE=0",
        "cache-control:max-age=soon",
        "vary:*",
        "vary:X-Tenant",
    ] {
        let calls = Calls::default();
        let client = Client::new(app(&calls, layer()), transport).await;
        let headers = [("x-test-response-header", header)];
        for _ in 0..2 {
            let reply = client.send("GET", "/echo", &headers).await;
            assert_eq!(reply.x_cache, "MISS", "{header}");
        }
        assert_eq!(calls.get(), 2, "{header} must not be stored");
    }
}

async fn credentials_bypass_a_route_without_identity(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    for header in [("authorization", "Bearer secret"), ("cookie", "session=1")] {
        for _ in 0..2 {
            let reply = client.send("GET", "/api/products", &[header]).await;
            assert_eq!(reply.x_cache, "BYPASS");
        }
    }
    assert_eq!(calls.get(), 4);
}

async fn head_is_answered_from_get_but_never_stored(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let head = client.send("HEAD", "/api/products", &[]).await;
    assert_eq!(head.x_cache, "MISS");
    let get = client.get("/api/products").await;
    assert_eq!(get.x_cache, "MISS", "HEAD did not store anything");
    let head = client.send("HEAD", "/api/products", &[]).await;
    assert_eq!(head.x_cache, "HIT");
    assert!(head.body.is_empty());
    assert_eq!(calls.get(), 2);
}

async fn etag_and_304(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let first = client.get("/api/products").await;
    let etag = first
        .headers
        .get("etag")
        .expect("a strong ETag")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let revalidated = client
        .send("GET", "/api/products", &[("if-none-match", &etag)])
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.headers.get("etag").unwrap(), etag.as_str());
    let other = client
        .send("GET", "/api/products", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(calls.get(), 1);
}

async fn age_follows_the_clock(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let path = format!("/api/products?category=age-{transport:?}");
    client.get(&path).await;
    let fresh = client.get(&path).await;
    let before: u64 = fresh.headers["age"].to_str().unwrap().parse().unwrap();
    CLOCK.fetch_add(42_000, Ordering::SeqCst);
    let later = client.get(&path).await;
    let after: u64 = later.headers["age"].to_str().unwrap().parse().unwrap();
    assert_eq!(later.x_cache, "HIT");
    assert!(after >= before + 42, "Age {before} -> {after}");
    assert_eq!(calls.get(), 1);
}

async fn oversized_bodies_are_not_stored(transport: Transport) {
    async fn big(State(calls): State<Calls>) -> String {
        calls.0.fetch_add(1, Ordering::SeqCst);
        "x".repeat(1000)
    }
    let calls = Calls::default();
    let app = Router::new()
        .route("/big", get(big))
        .layer(layer())
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    for _ in 0..2 {
        let reply = client.get("/big").await;
        assert_eq!(reply.body.len(), 1000, "the body still arrives whole");
        assert_eq!(reply.x_cache, "MISS");
    }
    assert_eq!(calls.get(), 2);
}

async fn undeclared_request_headers_do_not_change_what_others_get(transport: Transport) {
    let calls = Calls::default();
    let client = Client::new(app(&calls, layer()), transport).await;
    let clean = client.get("/api/products").await;
    // A host header is keyed whether declared or not: the forged host gets
    // a variant of its own, never the one others are served.
    let forged = client
        .send(
            "GET",
            "/api/products",
            &[("x-forwarded-host", "evil.example")],
        )
        .await;
    assert_eq!(forged.x_cache, "MISS");
    for header in [("user-agent", "evil"), ("x-request-id", "42")] {
        let other = client.send("GET", "/api/products", &[header]).await;
        assert_eq!(other.x_cache, "HIT", "{header:?}");
        assert_eq!(other.body, clean.body);
    }
    let german = client
        .send("GET", "/api/products", &[("accept-language", "de")])
        .await;
    assert_eq!(
        german.x_cache, "MISS",
        "a declared header selects its own variant"
    );
    assert_eq!(calls.get(), 3);
}

async fn streaming_bodies_are_not_stored(transport: Transport) {
    async fn stream(State(calls): State<Calls>) -> axum::body::Body {
        calls.0.fetch_add(1, Ordering::SeqCst);
        let chunks = futures::stream::iter(["a", "b", "c"].map(Ok::<_, std::io::Error>));
        axum::body::Body::from_stream(chunks)
    }
    let calls = Calls::default();
    let app = Router::new()
        .route("/stream", get(stream))
        .layer(layer())
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    for _ in 0..2 {
        let reply = client.get("/stream").await;
        assert_eq!(reply.body, "abc", "streamed through whole");
        assert_eq!(reply.x_cache, "MISS");
    }
    assert_eq!(calls.get(), 2);
}

/// A response whose body comes in two halves, and a record of whether the
/// second half was asked for before the response's head had left the
/// layer: a layer that reads a body whole before answering does that.
#[derive(Clone, Default)]
struct TwoHalves {
    calls: Calls,
    headers: &'static [(&'static str, &'static str)],
    /// The response's head has left the layer (set by a probe around it).
    head_out: Arc<AtomicBool>,
    /// The second half was read while the head was still in the layer.
    read_whole_first: Arc<AtomicBool>,
}

async fn two_halves(State(halves): State<TwoHalves>) -> Response {
    halves.calls.bump();
    halves.head_out.store(false, Ordering::SeqCst);
    let first = futures::stream::once(async { Ok::<_, std::io::Error>("x".repeat(500)) });
    let second = futures::stream::once({
        let halves = halves.clone();
        async move {
            if !halves.head_out.load(Ordering::SeqCst) {
                halves.read_whole_first.store(true, Ordering::SeqCst);
            }
            Ok("y".repeat(500))
        }
    });
    let mut response =
        axum::body::Body::from_stream(futures::StreamExt::chain(first, second)).into_response();
    for (name, value) in halves.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// Asks `layer` twice for a two-halves response with `headers`: each time
/// it arrives whole, as a miss, its head out of the layer before its
/// second half is read, and the handler answers both (nothing stored).
async fn relayed_as_it_streams(
    transport: Transport,
    layer: ResponseCacheLayer,
    headers: &'static [(&'static str, &'static str)],
) {
    let halves = TwoHalves {
        headers,
        ..TwoHalves::default()
    };
    let head_out = Arc::clone(&halves.head_out);
    let app = Router::new()
        .route("/stream", get(two_halves))
        .layer(layer)
        .layer(tower::util::MapResponseLayer::new(
            move |response: Response| {
                head_out.store(true, Ordering::SeqCst);
                response
            },
        ))
        .with_state(halves.clone());
    let client = Client::new(app, transport).await;
    for _ in 0..2 {
        let reply = client.get("/stream").await;
        assert_eq!(
            reply.body,
            format!("{}{}", "x".repeat(500), "y".repeat(500)),
            "{headers:?}: streamed through whole"
        );
        assert!(
            !halves.read_whole_first.load(Ordering::SeqCst),
            "{headers:?}: the layer read the body whole before answering"
        );
        assert_eq!(reply.x_cache, "MISS", "{headers:?}");
    }
    assert_eq!(halves.calls.get(), 2, "{headers:?}: not stored");
}

fn shared_layer() -> ResponseCacheLayer {
    ResponseCacheLayer::new(Cache::in_memory())
        .mode(CacheMode::Shared)
        .max_body_bytes(64)
        .clock(clock)
}

/// A body longer than `max_body_bytes` is neither stored nor read whole
/// first, though its headers would let it be stored: one that declares
/// its length is not read at all; one of unknown length, in shared mode,
/// only until it has passed the limit.
async fn streaming_bodies_past_the_limit_are_not_stored(transport: Transport) {
    let declared = &[("cache-control", "max-age=600"), ("content-length", "1000")];
    relayed_as_it_streams(transport, layer(), declared).await;
    relayed_as_it_streams(transport, shared_layer(), declared).await;
    let unknown = &[("cache-control", "max-age=600")];
    relayed_as_it_streams(transport, shared_layer(), unknown).await;
}

/// Shared mode: an origin's answer of unknown length (chunked) that ends
/// within `max_body_bytes` is stored like any other (application mode
/// passes it on: `streaming_bodies_are_not_stored`).
async fn streamed_bodies_within_the_limit_are_stored_in_shared_mode(transport: Transport) {
    async fn chunked(State(calls): State<Calls>) -> Response {
        calls.bump();
        let chunks = futures::stream::iter(["a", "b", "c"].map(Ok::<_, std::io::Error>));
        (
            [("cache-control", "max-age=600")],
            axum::body::Body::from_stream(chunks),
        )
            .into_response()
    }
    let calls = Calls::default();
    let app = Router::new()
        .route("/chunked", get(chunked))
        .layer(shared_layer())
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    let first = client.get("/chunked").await;
    let second = client.get("/chunked").await;
    assert_eq!((first.body.as_str(), second.body.as_str()), ("abc", "abc"));
    assert_eq!(
        (first.x_cache.as_str(), second.x_cache.as_str()),
        ("MISS", "HIT")
    );
    assert_eq!(calls.get(), 1);
}

/// Server-sent events (no length, `no-cache`) reach the client as they
/// come, in shared mode as in application mode.
async fn an_event_stream_is_relayed_as_it_streams(transport: Transport) {
    let headers = &[
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
    ];
    relayed_as_it_streams(transport, shared_layer(), headers).await;
    relayed_as_it_streams(transport, layer(), headers).await;
}

async fn only_configured_statuses_are_stored(transport: Transport) {
    async fn status(
        State(calls): State<Calls>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Response {
        calls.0.fetch_add(1, Ordering::SeqCst);
        let code: u16 = q["code"].parse().unwrap();
        (StatusCode::from_u16(code).unwrap(), "body").into_response()
    }
    for (code, layer, stored) in [
        (404, layer().vary_on_query(["code"]), false),
        (
            404,
            layer()
                .vary_on_query(["code"])
                .cache_statuses([StatusCode::OK, StatusCode::NOT_FOUND]),
            true,
        ),
        (
            500,
            layer()
                .vary_on_query(["code"])
                .cache_statuses([StatusCode::INTERNAL_SERVER_ERROR]),
            false,
        ),
        (
            206,
            layer()
                .vary_on_query(["code"])
                .cache_statuses([StatusCode::PARTIAL_CONTENT]),
            false,
        ),
        (201, layer().vary_on_query(["code"]), false),
    ] {
        let calls = Calls::default();
        let app = Router::new()
            .route("/status", get(status))
            .layer(layer)
            .with_state(calls.clone());
        let client = Client::new(app, transport).await;
        client.get(&format!("/status?code={code}")).await;
        let second = client.get(&format!("/status?code={code}")).await;
        assert_eq!(second.status.as_u16(), code);
        assert_eq!(second.x_cache == "HIT", stored, "{code}");
        assert_eq!(calls.get(), if stored { 1 } else { 2 }, "{code}");
    }
}

async fn authorization_with_identity_is_keyed_on_the_identity(transport: Transport) {
    #[derive(Clone)]
    struct User(String);
    async fn auth(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
        let user = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer user-"))
            .map(|u| User(u.to_owned()));
        if let Some(user) = user {
            request.extensions_mut().insert(user);
        }
        next.run(request).await
    }
    async fn me(State(calls): State<Calls>, user: Option<axum::Extension<User>>) -> String {
        calls.0.fetch_add(1, Ordering::SeqCst);
        format!(
            "hello {}",
            user.map_or("anonymous".into(), |u| u.0.0.clone())
        )
    }
    let calls = Calls::default();
    let layer = layer().vary_on(|parts| parts.extensions.get::<User>().map(|u| u.0.clone()));
    let app = Router::new()
        .route("/me", get(me))
        .layer(layer)
        .layer(axum::middleware::from_fn(auth))
        .with_state(calls.clone());
    let client = Client::new(app, transport).await;
    let ada = [("authorization", "Bearer user-ada")];
    let bob = [("authorization", "Bearer user-bob")];
    assert_eq!(client.send("GET", "/me", &ada).await.body, "hello ada");
    assert_eq!(client.send("GET", "/me", &bob).await.body, "hello bob");
    let again = client.send("GET", "/me", &ada).await;
    assert_eq!(
        (again.x_cache.as_str(), again.body.as_str()),
        ("HIT", "hello ada")
    );
    // Credentials the middleware does not accept: no identity, so bypass.
    let forged = client
        .send("GET", "/me", &[("authorization", "Basic eA==")])
        .await;
    assert_eq!(forged.x_cache, "BYPASS");
    assert_eq!(calls.get(), 3);
}
