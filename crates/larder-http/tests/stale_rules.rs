//! Expired responses inside the cache's stale grace period: `X-Cache:
//! STALE` while one request refreshes, never for `must-revalidate`, and for
//! a failing handler only when the cache is configured `stale_if_error`.
//! Each runs through `oneshot` and again over a real socket.
//!
//! Time has to pass here (a response must expire), so each test sleeps past
//! a short TTL once; everything else is ordered by signals.

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Calls, Client, Transport};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use tokio::sync::Notify;
use tower::{Layer, ServiceExt};

const TTL: Duration = Duration::from_millis(300);

/// What the handler answers, besides its default `v{n}`.
const FAIL: u8 = 1;
const SET_COOKIE: u8 = 2;

/// A handler the test can hold inside a call and switch between answers.
#[derive(Clone, Default)]
struct Handler {
    calls: Calls,
    answer: Arc<AtomicU8>,
    hold_next: Arc<AtomicBool>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    cache_control: Option<&'static str>,
}

async fn report(State(handler): State<Handler>) -> Response {
    let n = handler.calls.bump();
    if handler.hold_next.swap(false, Ordering::SeqCst) {
        handler.entered.notify_one();
        handler.release.notified().await;
    }
    let mut response = match handler.answer.load(Ordering::SeqCst) {
        FAIL => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        SET_COOKIE => ([(header::SET_COOKIE, "session=new")], format!("v{n}")).into_response(),
        _ => format!("v{n}").into_response(),
    };
    if let Some(value) = handler.cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

fn cache(stale_if_error: bool) -> Cache {
    let config = Config::builder()
        .in_memory()
        .ttl_jitter(0.0)
        .xfetch_beta(0.0)
        .stale_grace(Duration::from_secs(60))
        .stale_if_error(stale_if_error)
        .build()
        .unwrap();
    Cache::with_store(config, Arc::new(larder::store::MemoryStore::new(1 << 20)))
}

async fn client(handler: &Handler, cache: Cache, transport: Transport) -> Arc<Client> {
    let app = Router::new()
        .route("/report", get(report))
        .layer(ResponseCacheLayer::new(cache).ttl(TTL))
        .with_state(handler.clone());
    Arc::new(Client::new(app, transport).await)
}

/// Stores `v1`, lets it expire, and starts a request that refreshes it and
/// is held inside the handler; returns that request.
async fn expire_and_hold_a_refresh(
    handler: &Handler,
    client: &Arc<Client>,
) -> tokio::task::JoinHandle<common::Reply> {
    let first = client.get("/report").await;
    assert_eq!(
        (first.x_cache.as_str(), first.body.as_str()),
        ("MISS", "v1")
    );
    tokio::time::sleep(TTL + Duration::from_millis(150)).await; // let it expire
    handler.hold_next.store(true, Ordering::SeqCst);
    let refreshing = tokio::spawn({
        let client = Arc::clone(client);
        async move { client.get("/report").await }
    });
    handler.entered.notified().await;
    refreshing
}

both_transports!(
    expired_responses_are_served_stale_while_one_request_refreshes,
    must_revalidate_responses_are_never_served_stale,
    stale_if_error_answers_a_failing_handler_only_when_configured,
);

async fn expired_responses_are_served_stale_while_one_request_refreshes(transport: Transport) {
    let handler = Handler::default();
    let client = client(&handler, cache(false), transport).await;
    let refreshing = expire_and_hold_a_refresh(&handler, &client).await;

    for _ in 0..3 {
        let stale = client.get("/report").await;
        assert_eq!(
            (stale.status, stale.x_cache.as_str(), stale.body.as_str()),
            (StatusCode::OK, "STALE", "v1")
        );
        assert!(stale.headers.contains_key(header::AGE));
    }
    assert_eq!(
        handler.calls.get(),
        2,
        "only the refresh reached the handler"
    );

    handler.release.notify_one();
    let refreshed = refreshing.await.unwrap();
    assert_eq!(
        (refreshed.x_cache.as_str(), refreshed.body.as_str()),
        ("MISS", "v2")
    );
    let hit = client.get("/report").await;
    assert_eq!((hit.x_cache.as_str(), hit.body.as_str()), ("HIT", "v2"));
    assert_eq!(handler.calls.get(), 2);
}

async fn must_revalidate_responses_are_never_served_stale(transport: Transport) {
    for directive in [
        "Must-Revalidate",
        "proxy-revalidate",
        "max-age=60, s-maxage=60",
    ] {
        let handler = Handler {
            cache_control: Some(directive),
            ..Handler::default()
        };
        let client = client(&handler, cache(true), transport).await;
        let refreshing = expire_and_hold_a_refresh(&handler, &client).await;

        let answered = client.get("/report").await;
        assert_eq!(
            (answered.x_cache.as_str(), answered.body.as_str()),
            ("MISS", "v3"),
            "{directive}: past its TTL only the handler answers"
        );
        handler.release.notify_one();
        assert_eq!(refreshing.await.unwrap().body, "v2", "{directive}");

        // Nor does a failing handler get the expired copy served for it.
        tokio::time::sleep(TTL + Duration::from_millis(150)).await;
        handler.answer.store(FAIL, Ordering::SeqCst);
        let failed = client.get("/report").await;
        assert_eq!(
            (failed.status, failed.x_cache.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "MISS"),
            "{directive}"
        );
        assert_eq!(handler.calls.get(), 4, "{directive}");
    }
}

async fn stale_if_error_answers_a_failing_handler_only_when_configured(transport: Transport) {
    for stale_if_error in [false, true] {
        let handler = Handler::default();
        let client = client(&handler, cache(stale_if_error), transport).await;
        assert_eq!(client.get("/report").await.body, "v1");
        tokio::time::sleep(TTL + Duration::from_millis(150)).await; // let it expire

        handler.answer.store(FAIL, Ordering::SeqCst);
        let failed = client.get("/report").await;
        let expected = if stale_if_error {
            (StatusCode::OK, "STALE", "v1")
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "MISS", "down")
        };
        assert_eq!(
            (failed.status, failed.x_cache.as_str(), failed.body.as_str()),
            expected
        );

        // A response that is merely not storable is the answer, never
        // swapped for the stale copy: its Set-Cookie must arrive.
        handler.answer.store(SET_COOKIE, Ordering::SeqCst);
        let fresh = client.get("/report").await;
        assert_eq!(
            (fresh.status, fresh.x_cache.as_str(), fresh.body.as_str()),
            (StatusCode::OK, "MISS", "v3")
        );
        assert_eq!(fresh.headers[header::SET_COOKIE], "session=new");
        assert_eq!(handler.calls.get(), 3);
    }
}

/// An inner service's own error (not a response) is answered from the
/// stale copy too; without a stale copy it reaches the caller as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_answers_an_inner_service_error() {
    #[derive(Debug, PartialEq)]
    struct Down;
    let failing = Arc::new(AtomicBool::new(false));
    let service = {
        let failing = Arc::clone(&failing);
        tower::service_fn(move |_request: Request<axum::body::Body>| {
            let failing = failing.load(Ordering::SeqCst);
            async move {
                if failing {
                    Err(Down)
                } else {
                    Ok::<_, Down>(Response::new(axum::body::Body::from("v1")))
                }
            }
        })
    };
    let cached = ResponseCacheLayer::new(cache(true)).ttl(TTL).layer(service);
    // The layer reads the request body's size hint: a body, not `()`.
    let get = |path: &str| Request::get(path).body(axum::body::Body::empty()).unwrap();

    let first = cached.clone().oneshot(get("/a")).await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    tokio::time::sleep(TTL + Duration::from_millis(150)).await; // let it expire
    failing.store(true, Ordering::SeqCst);

    let stale = cached.clone().oneshot(get("/a")).await.unwrap();
    assert_eq!(stale.headers()["x-cache"], "STALE");
    let body = http_body_util::BodyExt::collect(stale.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "v1");
    assert_eq!(
        cached.clone().oneshot(get("/never-stored")).await.err(),
        Some(Down)
    );
}
