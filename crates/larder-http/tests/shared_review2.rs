//! A second hostile review of shared-cache mode (`CacheMode::Shared`),
//! with variants the first one (`shared_review.rs`) did not try.
//!
//! Tests under "DEFECT" fail on the code as reviewed: each shows one
//! defect (see the comment above it). Tests named `holds_*` are positive
//! checks of attacks that did not work; they pass and are kept as
//! regressions.
#![allow(missing_docs, missing_debug_implementations)]

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::clock::Clock;
use common::hooked::Hooked;
use common::origin::{Canned, Origin, answer, app_with, gate, setup, shared};
use common::{Client, Transport, eventually, serve};
use http_body_util::BodyExt;
use larder::Cache;
use larder_http::ResponseCacheLayer;
use tower::{Layer, ServiceExt};

/// A response of `status` with `headers` and `body`.
fn plain(status: u16, headers: &[(&str, &str)], body: impl Into<String>) -> Response {
    let mut response = body.into().into_response();
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// A reply from a service called directly (not through a `Router`, whose
/// error type is `Infallible`).
#[derive(Debug)]
struct Direct {
    status: StatusCode,
    x_cache: String,
    body: String,
}

async fn call<S, B>(service: &S, method: &str, uri: &str) -> Result<Direct, S::Error>
where
    S: tower::Service<Request<axum::body::Body>, Response = Response<B>> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = service.clone().oneshot(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Ok(Direct {
        status: parts.status,
        x_cache: parts
            .headers
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The inner service could not give an answer (an upstream timeout, a
/// connection reset after the request went out).
#[derive(Debug, Clone)]
struct Unreachable(&'static str);

// ===========================================================================
// DEFECTS
// ===========================================================================

// ---------------------------------------------------------------------------
// E1. A write whose caller stops waiting before the origin answers (an outer
//     timeout, a client that hangs up, a load balancer's idle timeout) is
//     never invalidated: the invalidation runs only after the inner
//     future yields its response, and that future is dropped with the
//     caller. The origin has the request and commits the write anyway (a
//     remote origin does; here it commits in a task of its own), so the
//     page from before the write stays a HIT for its whole lifetime. Same
//     in application mode with `invalidate_on_write`. (The first reviews
//     covered a caller that goes away *during* the invalidation only.)

#[derive(Clone)]
struct Item(Arc<AtomicUsize>);

impl Item {
    fn new() -> Item {
        Item(Arc::new(AtomicUsize::new(1)))
    }

    fn version(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// GET: the item's version, fresh for ten minutes. Any other method is a
/// write that commits 200 ms after the request arrived, whether anyone
/// still waits for the answer or not.
async fn slow_writes(State(item): State<Item>, method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        let body = format!("v{}", item.version());
        return plain(200, &[("cache-control", "max-age=600")], body);
    }
    let commit = tokio::spawn({
        let item = item.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            item.0.fetch_add(1, Ordering::SeqCst);
        }
    });
    let _ = commit.await;
    StatusCode::NO_CONTENT.into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_before_the_answer_still_invalidates() {
    let mut stale = Vec::new();
    let layers = [
        ("shared", shared(Cache::in_memory())),
        (
            "application",
            ResponseCacheLayer::new(Cache::in_memory()).invalidate_on_write(true),
        ),
    ];
    for (mode, layer) in layers {
        let item = Item::new();
        let app = Router::new()
            .fallback(slow_writes)
            .layer(layer)
            .with_state(item.clone());
        let client = Client::new(app, Transport::Oneshot).await;
        assert_eq!(client.get("/item").await.body, "v1");
        assert_eq!(client.get("/item").await.x_cache, "HIT");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), client.send("PUT", "/item", &[])).await;
        assert!(gave_up.is_err(), "{mode}: the caller stopped waiting");
        eventually("the write committed", Duration::from_secs(5), async || {
            item.version() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = client.get("/item").await;
        if after.body != "v2" {
            stale.push(format!("{mode}: {} ({})", after.body, after.x_cache));
        }
    }
    assert!(
        stale.is_empty(),
        "the page from before a committed write is served after it: {stale:?}"
    );
}

// ---------------------------------------------------------------------------
// E2. Shared mode: an unsafe request whose answer is lost (the inner
//     service fails: an upstream timeout, a connection reset after the
//     request went out) invalidates nothing, though whether the origin
//     applied it is unknown. A cache that fails closed treats an unknown
//     outcome as a write; the reverse-proxy example maps every upstream
//     timeout (30 s) to exactly this error.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_request_whose_answer_was_lost_still_invalidates() {
    let item = Item::new();
    let origin = tower::service_fn({
        let item = item.clone();
        move |request: Request<axum::body::Body>| {
            let item = item.clone();
            async move {
                if request.method() == Method::GET {
                    let body = format!("v{}", item.version());
                    return Ok(plain(200, &[("cache-control", "max-age=600")], body));
                }
                // The upstream applies the write; its answer never arrives.
                item.0.fetch_add(1, Ordering::SeqCst);
                Err(Unreachable("upstream: operation timed out"))
            }
        }
    });
    let cached = shared(Cache::in_memory()).layer(origin);
    let first = call(&cached, "GET", "/item").await.unwrap();
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "v1"));
    assert_eq!(call(&cached, "GET", "/item").await.unwrap().x_cache, "HIT");
    let lost = call(&cached, "POST", "/item").await.unwrap_err();
    assert!(lost.0.contains("timed out"));
    assert_eq!(item.version(), 2, "the write was applied");
    let after = call(&cached, "GET", "/item").await.unwrap();
    assert_eq!(
        after.body, "v2",
        "an unsafe request with an unknown outcome left the old page ({})",
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// E3. A GET (or HEAD) carrying `X-HTTP-Method-Override` bypasses the cache
//     because "middleware lets a GET run another method" (policy docs),
//     but it is not treated as that method: the DELETE it tunnels
//     invalidates nothing, and the deleted item stays a HIT.

/// An origin whose middleware honours `X-HTTP-Method-Override`.
async fn overridable(State(item): State<Item>, method: Method, headers: HeaderMap) -> Response {
    let method = headers
        .get("x-http-method-override")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        .unwrap_or(method);
    if method == Method::DELETE {
        item.0.store(0, Ordering::SeqCst);
        return StatusCode::NO_CONTENT.into_response();
    }
    match item.version() {
        0 => plain(404, &[], "gone"),
        v => plain(200, &[("cache-control", "max-age=600")], format!("v{v}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_tunnelling_a_delete_invalidates_like_one() {
    let item = Item::new();
    let app = Router::new()
        .fallback(overridable)
        .layer(shared(Cache::in_memory()))
        .with_state(item.clone());
    let client = Client::new(app, Transport::Oneshot).await;
    assert_eq!(client.get("/item").await.body, "v1");
    assert_eq!(client.get("/item").await.x_cache, "HIT");
    let deleted = client
        .send("GET", "/item", &[("x-http-method-override", "DELETE")])
        .await;
    assert_eq!(
        (deleted.status, deleted.x_cache.as_str()),
        (StatusCode::NO_CONTENT, "BYPASS")
    );
    let after = client.get("/item").await;
    assert_eq!(
        (after.status, after.body.as_str()),
        (StatusCode::NOT_FOUND, "gone"),
        "the deleted item is still served ({})",
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// E4. Background revalidations have no bound but "one per key": every
//     stale-while-revalidate hit on another key spawns a task that holds an
//     origin request open (and its own copy of the stored response, up to
//     `max_body_bytes`) until the origin answers. One client sending
//     requests one after the other — each answered at once, STALE — keeps
//     as many origin requests open as it names keys (`?page=N` is a key of
//     its own in shared mode): an amplifier against a slow origin and
//     unbounded memory in the proxy.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_revalidations_are_bounded() {
    const KEYS: usize = 300;
    let (origin, clock, client) = setup().await;
    let swr = [
        ("cache-control", "max-age=1, stale-while-revalidate=600"),
        ("etag", "\"k\""),
    ];
    for _ in 0..KEYS {
        origin.then(answer(200, &swr, "page"));
    }
    for i in 0..KEYS {
        assert_eq!(client.get(&format!("/list?page={i}")).await.x_cache, "MISS");
    }
    clock.advance_secs(5);
    // The origin is slow now: nothing it is asked comes back until the end.
    let (open, closed) = gate();
    for _ in 0..KEYS {
        origin.then(answer(304, &swr, "").held(closed.clone()));
    }
    let started = Instant::now();
    for i in 0..KEYS {
        let reply = client.get(&format!("/list?page={i}")).await;
        assert_eq!(reply.x_cache, "STALE");
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_requests = origin.calls() - KEYS;
    open.send(true).unwrap();
    assert!(
        open_requests <= 64,
        "one client, {KEYS} sequential requests answered in {took:?}: {open_requests} \
         background origin requests held open at once"
    );
}

// ---------------------------------------------------------------------------
// E5. The first review's D5 (a failed revalidation repeated by every
//     waiting request) is back whenever the stored response allows
//     `stale-if-error`: the leader turns the 5xx into a plain pass (so the
//     stale copy can answer it) before the failure is buffered for
//     sharing, and every request that waited on the revalidation calls the
//     failing origin itself — exactly the origin `stale-if-error` is meant
//     to shield.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revalidation_answered_stale_if_error_is_not_repeated_by_every_waiter() {
    const WAITERS: usize = 20;
    let (origin, clock, client) = setup().await;
    let client = Arc::new(client);
    let (open, closed) = gate();
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=1, stale-if-error=600"),
                ("etag", "\"s\""),
            ],
            "kept",
        ))
        .then(answer(503, &[], "overloaded").held(closed));
    for _ in 0..WAITERS {
        origin.then(answer(503, &[], "overloaded"));
    }
    client.get("/hot").await;
    clock.advance_secs(5);
    let requests: Vec<_> = (0..WAITERS)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.get("/hot").await })
        })
        .collect();
    origin.wait_for_calls(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // every request has joined
    assert_eq!(origin.calls(), 2, "one revalidation under way");
    open.send(true).unwrap();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "kept")
        );
    }
    assert!(
        origin.calls() <= 3,
        "one failed revalidation became {} calls of the failing origin",
        origin.calls() - 1
    );
}

// ---------------------------------------------------------------------------
// E6. Same with an origin that cannot be reached (the inner service
//     fails): the requests waiting on the revalidation are released with
//     nothing and each tries the unreachable origin again, one connection
//     attempt (or, behind the example proxy, one 30 s timeout) each, before
//     answering with the stale copy it could have answered at once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_origin_is_not_retried_by_every_waiting_request() {
    const WAITERS: usize = 20;
    let calls = Arc::new(AtomicUsize::new(0));
    let (open, closed) = gate();
    let origin = tower::service_fn({
        let calls = Arc::clone(&calls);
        move |_request: Request<axum::body::Body>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut closed = closed.clone();
            async move {
                if n == 1 {
                    return Ok(plain(
                        200,
                        &[("cache-control", "max-age=1"), ("etag", "\"s\"")],
                        "kept",
                    ));
                }
                let _ = closed.wait_for(|open| *open).await;
                Err(Unreachable("upstream: connection timed out"))
            }
        }
    });
    let (clock, read) = Clock::new();
    let cached = shared(Cache::in_memory()).clock(read).layer(origin);
    assert_eq!(call(&cached, "GET", "/hot").await.unwrap().body, "kept");
    clock.advance_secs(5);
    let requests: Vec<_> = (0..WAITERS)
        .map(|_| {
            let cached = cached.clone();
            tokio::spawn(async move { call(&cached, "GET", "/hot").await })
        })
        .collect();
    eventually(
        "the revalidation reached the origin",
        Duration::from_secs(5),
        async || calls.load(Ordering::SeqCst) >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one revalidation under way"
    );
    open.send(true).unwrap();
    for request in requests {
        let reply = request.await.unwrap().unwrap();
        assert_eq!(
            (reply.x_cache.as_str(), reply.body.as_str()),
            ("STALE", "kept")
        );
    }
    assert!(
        calls.load(Ordering::SeqCst) <= 3,
        "one unreachable origin was tried {} times by one burst",
        calls.load(Ordering::SeqCst) - 1
    );
}

// ---------------------------------------------------------------------------
// E7. `keep_stale(Duration::MAX)` ("keep stale copies as long as the store
//     will") makes the retry of a failed write invalidation panic: its
//     give-up time is `(MAX_TTL + keep_stale) × (1 + jitter)`, and
//     `Duration::mul_f64` overflows. The panic is inside the spawned
//     invalidation task, so the write still answers 204 — but nothing is
//     owed, the path is not bypassed, nothing retries, and the page from
//     before the write is served again as soon as the store is back. (The
//     second hardening review fixed the same overflow for
//     `ttl(Duration::MAX)` in application mode.)

async fn versioned(State(item): State<Item>, method: Method) -> Response {
    if method == Method::GET {
        plain(
            200,
            &[("cache-control", "max-age=600")],
            format!("v{}", item.version()),
        )
    } else {
        item.0.fetch_add(1, Ordering::SeqCst);
        StatusCode::NO_CONTENT.into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_stale_forever_does_not_lose_a_failed_write_invalidation() {
    let (cache, hooks) = Hooked::cache();
    let item = Item::new();
    let app = Router::new()
        .fallback(versioned)
        .layer(shared(cache).keep_stale(Duration::MAX))
        .with_state(item.clone());
    let client = Client::new(app, Transport::Oneshot).await;
    assert_eq!(client.get("/item").await.x_cache, "MISS");
    assert_eq!(client.get("/item").await.x_cache, "HIT");
    hooks.down.store(true, Ordering::SeqCst);
    assert_eq!(
        client.send("PUT", "/item", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let during = client.get("/item").await;
    hooks.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await; // a retry would have landed
    let after = client.get("/item").await;
    assert_eq!(
        (during.x_cache.as_str(), after.body.as_str()),
        ("BYPASS", "v2"),
        "the failed invalidation was not owed (X-Cache while down: {}); after the outage: \
         {} ({})",
        during.x_cache,
        after.body,
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// E8. A stored response validated by `Last-Modified` alone (no `ETag`)
//     whose origin now answers the `If-Modified-Since` with a 304 that
//     carries an `ETag` (a deploy that turned ETags on; one backend of
//     several already upgraded) is answered with a 502 Bad Gateway — to
//     every request, for as long as the stale copy is kept (an hour by
//     default), while the origin is perfectly healthy. RFC 9111 §4.3.4
//     forbids updating the stored response with that 304, not answering:
//     the cache can ask again without a condition.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_naming_an_etag_the_stored_response_lacks_is_not_a_502() {
    let (origin, clock, client) = setup().await;
    let modified = ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT");
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1"), modified],
            "doc",
        ))
        .then(answer(
            304,
            &[
                ("cache-control", "max-age=600"),
                modified,
                ("etag", "\"e1\""),
            ],
            "",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=600"),
                modified,
                ("etag", "\"e1\""),
            ],
            "doc",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=600"),
                modified,
                ("etag", "\"e1\""),
            ],
            "doc",
        ));
    client.get("/doc").await;
    clock.advance_secs(5);
    let reply = client.get("/doc").await;
    assert!(origin.request(2).contains_key("if-modified-since"));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "doc"),
        "a healthy origin's 304 became a {} ({})",
        reply.status,
        reply.x_cache
    );
}

// ---------------------------------------------------------------------------
// E9. A revalidation that learns the stored response is superseded — the
//     origin now answers 404 (the post was deleted elsewhere), or a full
//     200 / a 304 that says `private` or `no-store` (the profile was made
//     private) — does not store the new answer, but leaves the old one
//     in place for the rest of `keep_stale` (an hour). Any client can
//     still get it by asking for it stale (`Cache-Control: max-stale`,
//     the client's choice), and everyone gets it while the origin cannot
//     be reached: content the origin has withdrawn keeps being served.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidation_that_finds_the_content_withdrawn_drops_the_stored_copy() {
    let mut served = Vec::new();
    let withdrawn: [(&str, Canned); 3] = [
        ("deleted (404)", answer(404, &[], "gone")),
        (
            "made private (200)",
            answer(200, &[("cache-control", "private, max-age=60")], "private"),
        ),
        (
            "made private (304)",
            answer(
                304,
                &[("cache-control", "private, max-age=60"), ("etag", "\"v1\"")],
                "",
            ),
        ),
    ];
    for (what, withdrawal) in withdrawn {
        let (origin, clock, client) = setup().await;
        origin
            .then(answer(
                200,
                &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                "alice's post",
            ))
            .then(withdrawal)
            .then(answer(404, &[], "gone"));
        client.get("/posts/1").await;
        clock.advance_secs(61);
        // The revalidating request gets the new answer (for a 304, the
        // stored body under the new headers, for it alone).
        client.get("/posts/1").await;
        assert_eq!(origin.calls(), 2, "{what}: revalidated");
        let asked_stale = client
            .send("GET", "/posts/1", &[("cache-control", "max-stale=3600")])
            .await;
        if asked_stale.body == "alice's post" {
            served.push(format!("{what}: {}", asked_stale.x_cache));
        }
    }
    assert!(
        served.is_empty(),
        "withdrawn content still served on request: {served:?}"
    );
}

// ---------------------------------------------------------------------------
// E10. The reverse-proxy example buffers every body whole, both ways: the
//      request body (`body.collect()`, no limit at all) before the upstream
//      is asked, and the upstream's answer (`answer.bytes()`, no limit)
//      before the client gets a byte — whatever the cache layer's
//      `max_body_bytes` (1 MiB) says, and for answers the cache never
//      stores. One upload or download of a few GB holds a few GB in the
//      proxy (unbounded memory), and a streamed answer (server-sent events,
//      a long poll, a large download) reaches the client only when it ends,
//      if ever. The tests run the example's own code (`proxy.rs`).

/// The example's own proxy (`examples/reverse_proxy/proxy.rs`), not a copy.
#[path = "../examples/reverse_proxy/proxy.rs"]
mod reverse_proxy;

/// The example proxy in front of `upstream`, caching in the process.
async fn example_proxy(upstream: &str) -> Router {
    reverse_proxy::proxy(upstream, None)
        .await
        .expect("the proxy is set up")
}

/// The example proxy in front of `upstream`, caching in Redis at `redis`.
async fn example_proxy_on(upstream: &str, redis: &str) -> Router {
    reverse_proxy::proxy(upstream, Some(redis))
        .await
        .expect("the proxy is set up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_proxy_streams_an_answer_instead_of_buffering_it() {
    let (open, closed) = gate();
    // An event stream: the first event at once, the next when the gate opens.
    let upstream = Router::new().fallback(move || {
        let mut closed = closed.clone();
        async move {
            let first = futures::stream::once(async {
                Ok::<_, Infallible>(Bytes::from_static(b"data: first\n\n"))
            });
            let rest = futures::stream::once(async move {
                let _ = closed.wait_for(|open| *open).await;
                Ok::<_, Infallible>(Bytes::from_static(b"data: second\n\n"))
            });
            let body = axum::body::Body::from_stream(futures::StreamExt::chain(first, rest));
            (
                [
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                ],
                body,
            )
        }
    });
    let upstream = serve(upstream).await;
    let proxy = serve(example_proxy(&upstream).await).await;
    let first = tokio::time::timeout(Duration::from_secs(3), async {
        let mut response = reqwest::get(format!("{proxy}/events")).await.unwrap();
        response.chunk().await.unwrap()
    })
    .await;
    open.send(true).unwrap();
    assert!(
        matches!(&first, Ok(Some(chunk)) if chunk.starts_with(b"data: first")),
        "the first event did not reach the client in 3 s (the proxy waits for the whole \
         answer): {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_proxy_streams_a_request_body_instead_of_buffering_it() {
    // Set once the upstream has the request (a signal, not a poll).
    let (arrived, mut arrival) = tokio::sync::watch::channel(false);
    let arrived = Arc::new(arrived);
    let upstream = Router::new().fallback({
        move |body: axum::body::Body| {
            let arrived = Arc::clone(&arrived);
            async move {
                arrived.send_replace(true);
                let _ = body.collect().await;
                StatusCode::NO_CONTENT
            }
        }
    });
    let upstream = serve(upstream).await;
    let proxy = serve(example_proxy(&upstream).await).await;
    let (open, closed) = gate();
    // An upload whose first part goes out at once and whose rest follows
    // later (a large file on a slow link).
    let first = futures::stream::once(async {
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"part one")))
    });
    let rest = futures::stream::once(async move {
        let mut closed = closed;
        let _ = closed.wait_for(|open| *open).await;
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"part two")))
    });
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::StreamExt::chain(
        first, rest,
    )));
    let upload = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{proxy}/upload"))
            .header("transfer-encoding", "chunked")
            .body(body)
            .send(),
    );
    let reached = tokio::time::timeout(Duration::from_secs(3), arrival.wait_for(|a| *a))
        .await
        .is_ok_and(|arrived| arrived.is_ok());
    open.send(true).unwrap();
    let _ = upload.await;
    assert!(
        reached,
        "the upstream saw nothing of an upload under way for 3 s: the proxy holds the \
         whole request body first, however large"
    );
}

/// A request body that breaks off while it streams to the upstream is the
/// client's failure (400), not the upstream's (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_proxy_answers_a_broken_request_body_with_400() {
    let upstream = Router::new().fallback(|body: axum::body::Body| async move {
        let _ = body.collect().await;
        StatusCode::NO_CONTENT
    });
    let upstream = serve(upstream).await;
    let broken = futures::stream::iter([
        Ok(Bytes::from_static(b"part one")),
        Err(std::io::Error::other("the client went away")),
    ]);
    let request = Request::post("/upload")
        .header("host", "localhost:8080")
        .body(axum::body::Body::from_stream(broken))
        .unwrap();
    let response = example_proxy(&upstream)
        .await
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------
// E11. The reverse-proxy example with `--redis`: every instance keys its
//      responses under the same fixed prefix and namespace
//      (`reverse-proxy`, `proxy`) and nothing in the key names the
//      upstream. Two instances in front of different upstreams that share
//      one Redis — a caching sidecar per service, all reached as
//      `localhost:8080` — answer one service's requests with the other
//      service's stored responses (a wrong key: a data leak across
//      services).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_proxies_for_different_upstreams_sharing_redis_do_not_share_answers() {
    let server = larder_test_support::RedisServer::spawn();
    let service = |name: &'static str| {
        Router::new().fallback(move || async move {
            plain(
                200,
                &[("cache-control", "max-age=600")],
                format!("{name}'s data"),
            )
        })
    };
    let billing = serve(service("billing")).await;
    let search = serve(service("search")).await;
    let billing_proxy = example_proxy_on(&billing, &server.url()).await;
    let search_proxy = example_proxy_on(&search, &server.url()).await;
    let get = |proxy: &Router| {
        let request = Request::get("/api/v1/items")
            .header("host", "localhost:8080")
            .body(axum::body::Body::empty())
            .unwrap();
        let proxy = proxy.clone();
        async move {
            let response = proxy.oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }
    };
    assert_eq!(get(&billing_proxy).await, "billing's data");
    assert_eq!(
        get(&search_proxy).await,
        "search's data",
        "the search sidecar answered with what the billing sidecar stored"
    );
}

// ---------------------------------------------------------------------------
// E12. The reverse-proxy example answers a failed upstream call with a 502
//      whose body is the client library's error text: the upstream's
//      internal address (`error sending request for url
//      (http://10.0.3.7:8000/…)`) and the failure's details go to any
//      client that can make the upstream fail (or time out).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_proxy_does_not_tell_clients_the_upstream_address() {
    // An upstream address nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = serve(example_proxy(&upstream).await).await;
    let reply = reqwest::get(format!("{proxy}/anything")).await.unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_GATEWAY);
    let body = reply.text().await.unwrap();
    let internal = upstream.trim_start_matches("http://");
    assert!(
        !body.contains(internal),
        "the 502 names the internal upstream: {body:?}"
    );
}

/// The tracing output of this thread, as plain text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the 502 leaves out goes to the log, at WARN: the operator still
/// learns which upstream failed, and why. (A current-thread runtime: the
/// proxy's log is this thread's.)
#[tokio::test(flavor = "current_thread")]
async fn the_example_proxy_logs_why_the_upstream_call_failed() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let request = Request::get("/anything")
        .header("host", "localhost:8080")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = example_proxy(&upstream)
        .await
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let internal = upstream.trim_start_matches("http://");
    assert!(
        text.lines()
            .any(|line| line.contains("WARN") && line.contains(internal)),
        "no WARN naming the upstream in the log: {text:?}"
    );
}

// ---------------------------------------------------------------------------
// E13. Application mode: every key changed with this release (the variant
//      digest gained a `raw_query` field, `None` in application mode).
//      Besides a cold cache at deploy time, a rolling deploy mixes the
//      two key formats on one Redis: `invalidate_request` from a process
//      of one build deletes only its own build's key, and processes of
//      the other build keep serving the page from before the write until
//      it expires (write invalidation by path tag is unaffected). Only
//      shared mode needs the field; leaving it out of application-mode
//      keys keeps them as they were.

/// Bytes serialized as bytes (as `key.rs` does).
struct AsBytes<'a>(&'a [u8]);

impl serde::Serialize for AsBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[test]
fn application_mode_keys_are_those_of_the_previous_release() {
    use larder::key::ArgsDigest;
    use larder_http::response_cache::key::{Variant, key, path_prefix};

    let parts = Request::get("/products/1")
        .header("host", "shop.example")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let current = key(
        "products",
        &parts,
        &Variant {
            query: &[],
            vary: &[],
            forwarding: &[],
            identity: None,
            raw_query: None,
        },
    )
    .unwrap();
    // The previous release's digest: the allow-listed query, the declared
    // headers, the host inputs (scheme, host), the identity.
    let mut digest = ArgsDigest::new();
    digest
        .arg(&Vec::<(String, String)>::new())
        .unwrap()
        .arg(&Vec::<()>::new())
        .unwrap()
        .arg(&(
            ("scheme", None::<&str>),
            ("host", Some(AsBytes(b"shop.example"))),
        ))
        .unwrap()
        .arg(&None::<&str>)
        .unwrap();
    let previous = |digest: &ArgsDigest| {
        let mut key = path_prefix("products", "/products/1");
        key.push(':');
        digest.finish_into(&mut key);
        key
    };
    assert_eq!(
        current,
        previous(&digest),
        "an application-mode key changed with this release"
    );
}

// ===========================================================================
// HOLDS (positive checks: these attacks did not work)
// ===========================================================================

/// A background (stale-while-revalidate) revalidation whose origin answer
/// arrives after a write to the path: its lease was voided, the old page
/// is not stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_background_revalidation_racing_a_write_stores_nothing() {
    let (origin, clock, client) = setup().await;
    let (open, closed) = gate();
    let swr = [
        ("cache-control", "max-age=1, stale-while-revalidate=600"),
        ("etag", "\"v1\""),
    ];
    origin
        .then(answer(200, &swr, "old"))
        .then(
            answer(
                304,
                &[("cache-control", "max-age=600"), ("etag", "\"v1\"")],
                "",
            )
            .held(closed),
        )
        .then(answer(204, &[], ""))
        .then(answer(200, &[("cache-control", "max-age=600")], "new"));
    client.get("/p").await;
    clock.advance_secs(5);
    assert_eq!(client.get("/p").await.x_cache, "STALE");
    origin.wait_for_calls(2).await; // the background revalidation is at the origin
    assert_eq!(
        client.send("PUT", "/p", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    open.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = client.get("/p").await;
    assert_eq!(
        (after.body.as_str(), after.x_cache.as_str()),
        ("new", "MISS")
    );
}

/// The same race in the foreground (a revalidation the request waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_foreground_revalidation_racing_a_write_stores_nothing() {
    let (origin, clock, client) = setup().await;
    let client = Arc::new(client);
    let (open, closed) = gate();
    let headers = [("cache-control", "max-age=1"), ("etag", "\"v1\"")];
    origin
        .then(answer(200, &headers, "old"))
        .then(answer(304, &headers, "").held(closed))
        .then(answer(204, &[], ""))
        .then(answer(200, &[("cache-control", "max-age=600")], "new"));
    client.get("/p").await;
    clock.advance_secs(5);
    let revalidating = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.get("/p").await }
    });
    origin.wait_for_calls(2).await;
    assert_eq!(
        client.send("DELETE", "/p", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    open.send(true).unwrap();
    assert_eq!(revalidating.await.unwrap().body, "old");
    let after = client.get("/p").await;
    assert_eq!(
        (after.body.as_str(), after.x_cache.as_str()),
        ("new", "MISS")
    );
}

/// A request saying `no-store` is answered from the cache, but neither the
/// 304 it revalidates with nor the background revalidation it triggers
/// stores anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_request_no_store_stores_nothing_by_304_or_in_the_background() {
    let (origin, clock, client) = setup().await;
    let swr = [
        ("cache-control", "max-age=1, stale-while-revalidate=600"),
        ("etag", "\"a\""),
    ];
    let refreshed = [("cache-control", "max-age=600"), ("etag", "\"a\"")];
    origin
        .then(answer(200, &swr, "v1"))
        .then(answer(304, &refreshed, ""))
        .then(answer(304, &refreshed, ""));
    client.get("/d").await;
    clock.advance_secs(5);
    let stale = client
        .send("GET", "/d", &[("cache-control", "no-store")])
        .await;
    assert_eq!(stale.x_cache, "STALE");
    origin.wait_for_calls(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let validated = client
        .send("GET", "/d", &[("cache-control", "no-store, no-cache")])
        .await;
    assert_eq!(validated.body, "v1");
    assert_eq!(origin.calls(), 3);
    assert_eq!(
        client
            .send("GET", "/d", &[("cache-control", "only-if-cached")])
            .await
            .x_cache,
        "STALE",
        "still the stale copy: nothing the no-store requests got was stored"
    );
}

/// `Location` spellings: default ports, scheme and host case and dot
/// segments name this origin's path; another scheme, port or user-info
/// does not (RFC 9111 §4.4 makes those optional).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_location_spellings_invalidate_only_this_origin() {
    for (host, location, invalidates) in [
        ("[::1]:8080", "http://[::1]:8080/t", true),
        ("[::1]:8080", "http://[::1]/t", false),
        ("[::1]", "//[::1]:80/t", true),
    ]
    .into_iter()
    .chain(
        [
            ("http://shop.example:80/t", true),
            ("HTTP://SHOP.EXAMPLE/t", true),
            ("//shop.example/t?x#y", true),
            ("/a/../t", true),
            ("x/../../t", true),
            ("https://shop.example/t", false),
            ("http://shop.example:8080/t", false),
            ("http://user@shop.example/t", false),
            ("http://shop.example.evil/t", false),
            ("//[::1]/t", false),
            ("mailto:a@shop.example", false),
        ]
        .map(|(location, invalidates)| ("shop.example", location, invalidates)),
    ) {
        let origin = Origin::default();
        let client = Client::new(
            app_with(&origin, shared(Cache::in_memory())),
            Transport::Oneshot,
        )
        .await;
        let host = [("host", host)];
        origin
            .then(answer(200, &[("cache-control", "max-age=600")], "t"))
            .then(answer(201, &[("location", location)], ""))
            .then(answer(200, &[("cache-control", "max-age=600")], "t"));
        client.send("GET", "/t", &host).await;
        client.send("POST", "/w/orders", &host).await;
        let after = client.send("GET", "/t", &host).await;
        assert_eq!(
            after.x_cache,
            if invalidates { "MISS" } else { "HIT" },
            "Host: {} Location: {location}",
            host[0].1
        );
    }
}

/// Request directives in combination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_request_directive_combinations() {
    let (origin, clock, client) = setup().await;
    origin.then(answer(
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"a\"")],
        "a",
    ));
    client.get("/r").await;
    clock.advance_secs(10);
    let send = |cc: &'static [(&'static str, &'static str)]| client.send("GET", "/r", cc);
    assert_eq!(
        send(&[("cache-control", "no-cache, only-if-cached")])
            .await
            .status,
        StatusCode::GATEWAY_TIMEOUT,
        "must validate, may not ask: 504"
    );
    assert_eq!(
        send(&[("cache-control", "max-age=5, max-stale, only-if-cached")])
            .await
            .status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        send(&[(
            "cache-control",
            "min-fresh=99999999999999999999, only-if-cached"
        )])
        .await
        .status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        send(&[("pragma", "no-cache"), ("cache-control", "max-stale")])
            .await
            .x_cache,
        "HIT",
        "Cache-Control present: Pragma ignored"
    );
    assert_eq!(
        send(&[("pragma", "no-cache"), ("cache-control", "only-if-cached")])
            .await
            .x_cache,
        "HIT"
    );
    assert_eq!(
        send(&[("pragma", "no-cache, only-if-cached")])
            .await
            .x_cache,
        "MISS",
        "Pragma alone: no-cache (and the unknown token is ignored)"
    );
    assert_eq!(origin.calls(), 2);
}

/// `Vary` naming one header twice, in any case, on several lines: one
/// header, matched on its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_vary_naming_a_header_twice_matches_it_once() {
    let (origin, _clock, client) = setup().await;
    let vary = [
        ("cache-control", "max-age=600"),
        ("vary", "Accept-Language, accept-language"),
        ("vary", "ACCEPT-LANGUAGE"),
    ];
    origin
        .then(answer(200, &vary, "english"))
        .then(answer(200, &vary, "french"))
        .then(answer(200, &vary, "english"));
    let en = [("accept-language", "en")];
    client.send("GET", "/g", &en).await;
    assert_eq!(client.send("GET", "/g", &en).await.x_cache, "HIT");
    let fr = client.send("GET", "/g", &[("accept-language", "fr")]).await;
    assert_eq!((fr.body.as_str(), fr.x_cache.as_str()), ("french", "MISS"));
    let head = client
        .send("HEAD", "/g", &[("accept-language", "fr")])
        .await;
    assert_eq!(head.x_cache, "HIT", "HEAD answered from the stored variant");
    assert_eq!(
        client
            .send("GET", "/g", &[("accept-language", "EN")])
            .await
            .x_cache,
        "MISS",
        "values compare exactly"
    );
}

/// The same path under two hosts, over HTTP/2 (`:authority`) and HTTP/1.1
/// (`Host`): never one host's answer for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_hosts_are_kept_apart_over_http2_and_http1() {
    let origin = Origin::default();
    let app = app_with(&origin, shared(Cache::in_memory()));
    let h2 = Client::new(app.clone(), Transport::Http2).await;
    let fresh = [("cache-control", "max-age=600")];
    origin
        .then(answer(200, &fresh, "a"))
        .then(answer(200, &fresh, "b"));
    assert_eq!(h2.get("http://a.example/p").await.body, "a");
    assert_eq!(h2.get("http://b.example/p").await.body, "b");
    assert_eq!(h2.get("http://a.example/p").await.body, "a");
    assert_eq!(h2.get("http://b.example/p").await.x_cache, "HIT");
}

/// The store down while a write invalidates: the path bypasses, and the
/// owed invalidation lands once the store is back (shared mode, default
/// settings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_write_while_the_store_is_down_is_owed_and_retried() {
    let (cache, hooks) = Hooked::cache();
    let item = Item::new();
    let app = Router::new()
        .fallback(versioned)
        .layer(shared(cache))
        .with_state(item.clone());
    let client = Client::new(app, Transport::Oneshot).await;
    client.get("/item").await;
    assert_eq!(client.get("/item").await.x_cache, "HIT");
    hooks.down.store(true, Ordering::SeqCst);
    client.send("PUT", "/item", &[]).await;
    assert_eq!(client.get("/item").await.x_cache, "BYPASS");
    hooks.down.store(false, Ordering::SeqCst);
    eventually(
        "the owed invalidation landed",
        Duration::from_secs(10),
        async || client.get("/item").await.x_cache != "BYPASS",
    )
    .await;
    assert_eq!(client.get("/item").await.body, "v2");
}

/// A burst of concurrent requests on one path mixing languages (`Vary`),
/// GET and HEAD, request directives and conditionals, while the clock
/// moves the stored response through fresh, stale-while-revalidate and
/// stale: every answer is its own language's, never another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_burst_mixing_variants_directives_and_states_never_crosses_variants() {
    async fn localized(headers: HeaderMap) -> Response {
        let lang = headers
            .get("accept-language")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        let etag = format!("\"{lang}\"");
        let fields = [
            ("cache-control", "max-age=1, stale-while-revalidate=2"),
            ("vary", "Accept-Language"),
            ("etag", etag.as_str()),
        ];
        if headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            return plain(304, &fields, "");
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        plain(200, &fields, format!("page in {lang}"))
    }
    let (clock, read) = Clock::new();
    let app = Router::new()
        .fallback(localized)
        .layer(shared(Cache::in_memory()).clock(read));
    let client = Arc::new(Client::new(app, Transport::Oneshot).await);
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = tokio::spawn({
        let ticking = Arc::clone(&ticking);
        async move {
            while ticking.load(Ordering::SeqCst) {
                clock.advance_secs(1);
                tokio::time::sleep(Duration::from_millis(7)).await;
            }
        }
    });
    let langs = [Some("en"), Some("fr"), Some("de"), None];
    let directives = [
        None,
        Some("max-age=0"),
        Some("no-cache"),
        Some("only-if-cached"),
        Some("max-stale"),
        Some("max-stale=1, only-if-cached"),
        Some("min-fresh=1"),
        Some("no-store"),
    ];
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                let mut seed = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move |n: usize| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    usize::try_from(seed % n as u64).unwrap()
                };
                for _ in 0..60 {
                    let lang = langs[next(langs.len())];
                    let method = if next(4) == 0 { "HEAD" } else { "GET" };
                    let mut headers: Vec<(&str, &str)> = Vec::new();
                    if let Some(lang) = lang {
                        headers.push(("accept-language", lang));
                    }
                    if let Some(cc) = directives[next(directives.len())] {
                        headers.push(("cache-control", cc));
                    }
                    let other = ["\"en\"", "\"fr\"", "\"de\"", "\"none\""][next(4)];
                    if next(3) == 0 {
                        headers.push(("if-none-match", other));
                    }
                    let reply = client.send(method, "/home", &headers).await;
                    let lang = lang.unwrap_or("none");
                    match reply.status {
                        StatusCode::OK if method == "GET" => {
                            assert_eq!(reply.body, format!("page in {lang}"), "{headers:?}");
                        }
                        StatusCode::OK | StatusCode::GATEWAY_TIMEOUT => {}
                        StatusCode::NOT_MODIFIED => assert_eq!(
                            other,
                            format!("\"{lang}\""),
                            "a 304 for another language's tag ({headers:?}, {})",
                            reply.x_cache
                        ),
                        status => panic!("{status} ({headers:?}, {})", reply.x_cache),
                    }
                    if let Some(etag) = reply.headers.get("etag") {
                        assert_eq!(etag, &format!("\"{lang}\""), "{headers:?}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    ticking.store(false, Ordering::SeqCst);
    ticker.await.unwrap();
}

/// The example proxy on Redis (`--redis`): cached while Redis is up,
/// answered by the upstream (without long stalls) while it is down, and
/// writes still invalidate once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_the_example_proxy_on_redis_answers_while_redis_is_down() {
    let mut server = larder_test_support::RedisServer::spawn();
    let item = Item::new();
    let upstream = serve(Router::new().fallback(versioned).with_state(item.clone())).await;
    let proxy = example_proxy_on(&upstream, &server.url()).await;
    let send = |method: &'static str| {
        let proxy = proxy.clone();
        async move {
            let request = Request::builder()
                .method(method)
                .uri("/item")
                .header("host", "shop.example")
                .body(axum::body::Body::empty())
                .unwrap();
            let response = proxy.oneshot(request).await.unwrap();
            let x_cache = response.headers().get("x-cache").cloned();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                x_cache
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    assert_eq!(send("GET").await, ("MISS".to_owned(), "v1".to_owned()));
    assert_eq!(send("GET").await, ("HIT".to_owned(), "v1".to_owned()));
    server.kill();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(send("GET").await.1, "v1");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} for five requests with Redis down",
        started.elapsed()
    );
    server.restart();
    eventually("Redis is back", Duration::from_secs(10), async || {
        send("GET").await.0 == "HIT"
    })
    .await;
    send("PUT").await;
    assert_eq!(send("GET").await.1, "v2");
}
