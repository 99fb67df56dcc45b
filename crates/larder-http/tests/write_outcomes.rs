//! Which write outcomes invalidate, in both modes: a 2xx or 3xx, and every
//! outcome that leaves unknown whether the write was applied (a gateway's
//! 502 or 504, an inner service that failed); not a 4xx, nor a 500, 501 or
//! 503 the origin gave itself. A `GET` tunnelling a write through a
//! method-override header is a write; one tunnelling a `GET` is not.

#[macro_use]
#[allow(unused_macros)]
mod common;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Calls, Client, Transport};
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};

/// GET: the number of reads so far, fresh for ten minutes. A write (or a
/// GET whose `x-status` asks) answers the status `x-status` names.
async fn origin(State(reads): State<Calls>, method: Method, headers: HeaderMap) -> Response {
    let status = headers
        .get("x-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|v| StatusCode::from_u16(v).ok());
    if let Some(status) = status {
        return status.into_response();
    }
    if method == Method::GET {
        let mut response = format!("read {}", reads.bump()).into_response();
        response.headers_mut().insert(
            "cache-control",
            axum::http::HeaderValue::from_static("max-age=600"),
        );
        return response;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn layers() -> [(&'static str, ResponseCacheLayer); 2] {
    [
        (
            "application",
            ResponseCacheLayer::new(Cache::in_memory()).invalidate_on_write(true),
        ),
        (
            "shared",
            ResponseCacheLayer::new(Cache::in_memory()).mode(CacheMode::Shared),
        ),
    ]
}

/// Whether `method` with `headers` on `/item` drops the stored `/item`.
async fn drops(
    layer: ResponseCacheLayer,
    method: &str,
    headers: &[(&str, &str)],
) -> (bool, StatusCode) {
    let app = Router::new()
        .fallback(origin)
        .layer(layer)
        .with_state(Calls::default());
    let client = Client::new(app, Transport::Oneshot).await;
    let first = client.get("/item").await.body;
    assert_eq!(client.get("/item").await.x_cache, "HIT");
    let write = client.send(method, "/item", headers).await;
    assert_eq!(write.x_cache, "BYPASS", "{method} {headers:?}");
    let after = client.get("/item").await.body;
    (after != first, write.status)
}

#[tokio::test]
async fn outcomes_that_may_have_applied_the_write_invalidate() {
    for (mode, layer) in layers() {
        let (dropped, status) = drops(layer, "PUT", &[]).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(dropped, "{mode}: a 204");
    }
    for code in ["502", "504", "303"] {
        for (mode, layer) in layers() {
            let (dropped, status) = drops(layer, "PUT", &[("x-status", code)]).await;
            assert_eq!(status.as_str(), code);
            assert!(
                dropped,
                "{mode}: a {code} leaves the outcome unknown or applied"
            );
        }
    }
}

#[tokio::test]
async fn refused_writes_invalidate_nothing() {
    for code in ["400", "403", "409", "500", "501", "503"] {
        for (mode, layer) in layers() {
            let (dropped, status) = drops(layer, "DELETE", &[("x-status", code)]).await;
            assert_eq!(status.as_str(), code);
            assert!(!dropped, "{mode}: the origin refused the write with {code}");
        }
    }
}

#[tokio::test]
async fn a_get_tunnelling_a_write_is_a_write() {
    for header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        for method in ["DELETE", "post", "PURGE", " PATCH ", "?"] {
            for (mode, layer) in layers() {
                let tunnelled = [(header, method)];
                let (dropped, _) = drops(layer, "GET", &tunnelled).await;
                assert!(dropped, "{mode}: GET with {header}: {method:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_get_tunnelling_a_read_is_not_a_write() {
    for method in ["GET", "head", "OPTIONS"] {
        for (mode, layer) in layers() {
            let app = Router::new()
                .fallback(origin)
                .layer(layer)
                .with_state(Calls::default());
            let client = Client::new(app, Transport::Oneshot).await;
            let first = client.get("/item").await.body;
            let tunnelled = client
                .send("GET", "/item", &[("x-http-method-override", method)])
                .await;
            assert_eq!(tunnelled.x_cache, "BYPASS", "{mode}: never cached");
            let after = client.get("/item").await;
            assert_eq!(
                (after.body, after.x_cache.as_str()),
                (first, "HIT"),
                "{mode}: GET tunnelling {method} dropped nothing"
            );
        }
    }
}
