//! A third hostile review of shared-cache mode (`CacheMode::Shared`),
//! with variants the first two (`shared_review.rs`, `shared_review2.rs`)
//! did not try.
//!
//! The tests under "DEFECTS" failed on the code as reviewed, each showing
//! one defect (F1–F8: see the comment above it, which says what was wrong
//! and what holds now); they pass since the fixes and are kept as
//! regressions. Tests named `holds_*` are positive checks of attacks that
//! did not work.
#![allow(missing_docs, missing_debug_implementations)]

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use common::clock::Clock;
use common::hooked::{Hooked, Hooks};
use common::origin::{Origin, answer, app_with, gate, setup, shared};
use common::{Client, Transport, eventually};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;

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

// ===========================================================================
// DEFECTS
// ===========================================================================

/// A layer on the hooked store (reads counted) with a test clock.
async fn hooked_app(origin: &Origin) -> (Client, Clock, Arc<Hooks>) {
    let (cache, hooks) = Hooked::cache();
    let (clock, read) = Clock::new();
    let app = app_with(origin, shared(cache).clock(read));
    let client = Client::new(app, Transport::Oneshot).await;
    (client, clock, hooks)
}

/// Waits until `n` store reads have completed their first lookup.
async fn wait_for_reads(hooks: &Hooks, n: usize) {
    eventually(
        "every request made its first lookup",
        Duration::from_secs(10),
        async || hooks.reads.load(Ordering::SeqCst) >= n,
    )
    .await;
}

// ---------------------------------------------------------------------------
// F1. A miss goes to the origin with the client's `If-Match`,
//     `If-Unmodified-Since`, `Range` and `If-Range` as they are, and what
//     the origin answers *that* request is stored for everyone: one client
//     sending `If-Match: "nope"` (or `Range: bytes=999-`) makes the origin
//     answer 412 (416), and an origin that labels every answer cacheable
//     (nginx `add_header Cache-Control ... always`, a CDN-style blanket
//     policy) has that 412 / 416 served as a HIT to every later visitor
//     for its lifetime — a cache-poisoned denial of service from one
//     request. The key holds none of these headers; now the answer to a
//     request carrying one goes to that client as the origin gave it and
//     is not stored (the requests that waited on it ask for themselves);
//     a stored response still answers such a request, ignoring them as
//     RFC 9110 lets a cache. Application mode had the same hole (for a
//     route caching 412 or 416) and the same fix.

/// A file server's semantics (RFC 9110 §13, §14): the representation
/// "0123456789" with ETag "v1"; `If-Match` → 412, an unsatisfiable
/// `Range` → 416, a satisfiable one → 206; every answer says
/// `Cache-Control: public, max-age=300` (a blanket policy).
async fn file_server(State(calls): State<Arc<AtomicUsize>>, headers: HeaderMap) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    const BODY: &str = "0123456789";
    let blanket = [
        ("cache-control", "public, max-age=300"),
        ("etag", "\"v1\""),
        ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ];
    if let Some(wanted) = headers.get("if-match") {
        let wanted = wanted.to_str().unwrap_or_default();
        if wanted != "*" && !wanted.split(',').any(|t| t.trim() == "\"v1\"") {
            return plain(412, &blanket, "precondition failed");
        }
    }
    if let Some(since) = headers.get("if-unmodified-since") {
        let since = httpdate::parse_http_date(since.to_str().unwrap_or_default());
        let modified = httpdate::parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT").unwrap();
        if since.is_ok_and(|since| modified > since) {
            return plain(412, &blanket, "precondition failed");
        }
    }
    if let Some(range) = headers.get("range").and_then(|r| r.to_str().ok()) {
        let start: usize = range
            .trim_start_matches("bytes=")
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if start >= BODY.len() {
            let mut headers = blanket.to_vec();
            headers.push(("content-range", "bytes */10"));
            return plain(416, &headers, "range not satisfiable");
        }
        let mut headers = blanket.to_vec();
        let content_range = format!("bytes {start}-9/10");
        headers.push(("content-range", &content_range));
        return plain(206, &headers, &BODY[start..]);
    }
    plain(200, &blanket, BODY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_shaped_by_a_clients_precondition_or_range_is_not_stored() {
    let mut poisoned = Vec::new();
    for (what, header) in [
        ("If-Match", ("if-match", "\"nope\"")),
        (
            "If-Unmodified-Since",
            ("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ),
        ("Range", ("range", "bytes=999-")),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .fallback(file_server)
            .layer(shared(Cache::in_memory()))
            .with_state(Arc::clone(&calls));
        let client = Client::new(app, Transport::Oneshot).await;
        // The attacker's own request: its answer is its own business.
        let attack = client.send("GET", "/files/report", &[header]).await;
        assert!(attack.status.is_client_error(), "{what}: {}", attack.status);
        // Every visitor after it.
        let visitor = client.get("/files/report").await;
        if visitor.status != StatusCode::OK {
            poisoned.push(format!(
                "{what}: a visitor got {} ({}, body {:?})",
                visitor.status, visitor.x_cache, visitor.body
            ));
        }
    }
    assert!(poisoned.is_empty(), "{poisoned:#?}");
}

/// F1 in application mode: the route's handler answers the same request
/// headers, and a route caching 412 and 416 (`cache_statuses`) stored
/// that answer for everyone too; now it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_application_mode_an_answer_shaped_by_a_clients_precondition_or_range_is_not_stored() {
    let mut poisoned = Vec::new();
    for (what, header) in [
        ("If-Match", ("if-match", "\"nope\"")),
        (
            "If-Unmodified-Since",
            ("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ),
        ("Range", ("range", "bytes=999-")),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = ResponseCacheLayer::new(Cache::in_memory())
            .ttl(Duration::from_secs(60))
            .cache_statuses([
                StatusCode::OK,
                StatusCode::PRECONDITION_FAILED,
                StatusCode::RANGE_NOT_SATISFIABLE,
            ]);
        let app = Router::new()
            .fallback(file_server)
            .layer(layer)
            .with_state(Arc::clone(&calls));
        let client = Client::new(app, Transport::Oneshot).await;
        let attack = client.send("GET", "/files/report", &[header]).await;
        assert!(attack.status.is_client_error(), "{what}: {}", attack.status);
        let visitor = client.get("/files/report").await;
        if visitor.status != StatusCode::OK {
            poisoned.push(format!(
                "{what}: a visitor got {} ({}, body {:?})",
                visitor.status, visitor.x_cache, visitor.body
            ));
        }
    }
    assert!(poisoned.is_empty(), "{poisoned:#?}");
}

// ---------------------------------------------------------------------------
// F2. `CDN-Cache-Control: private="X-User-Token", max-age=60` — the
//     qualified `private` (RFC 9111 §5.2.2.7: the named field is for one
//     user; a shared cache must not store it) — is read as a dictionary
//     member whose value is not `true` and dropped as "the wrong type":
//     the response is stored *with* the field and the first visitor's
//     token goes to everyone. The same qualified form in `Cache-Control`
//     counts as `private` (nothing stored), and the CDN-Cache-Control
//     reader already refuses what it cannot read (D9): a `private` or
//     `no-cache` it *can* read but does not take at face value must not
//     weigh less than the unreadable one. Now a restricting directive in
//     `CDN-Cache-Control` counts whatever its value (and, as in
//     `Cache-Control`, written as a token anywhere): the qualified
//     `private` is not stored, the qualified `no-cache` is not reused
//     without revalidation (here, with no validator, not stored).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qualified_private_or_no_cache_in_cdn_cache_control_is_not_shared() {
    let mut leaked = Vec::new();
    for directive in [
        "private=\"x-user-token\", max-age=60",
        "no-cache=\"x-user-token\", max-age=60",
    ] {
        let (origin, _clock, client) = setup().await;
        origin
            .then(answer(
                200,
                &[
                    ("cdn-cache-control", directive),
                    ("x-user-token", "alice-secret"),
                ],
                "page",
            ))
            .then(answer(
                200,
                &[
                    ("cdn-cache-control", directive),
                    ("x-user-token", "bob-secret"),
                ],
                "page",
            ));
        client.get("/account/banner").await;
        let bob = client.get("/account/banner").await;
        if bob
            .headers
            .get("x-user-token")
            .is_some_and(|t| t == "alice-secret")
        {
            leaked.push(format!(
                "{directive}: Bob got Alice's token ({})",
                bob.x_cache
            ));
        }
    }
    assert!(leaked.is_empty(), "{leaked:#?}");
}

// ---------------------------------------------------------------------------
// F3. The fix for E9 ("a revalidation finding the content withdrawn drops
//     the stored copy") takes *any* non-5xx answer the revalidation cannot
//     store as a withdrawal — including a 4xx the revalidating request
//     provoked itself. The revalidation is made from the client's own
//     request (only its preconditions and Range are replaced), and
//     `Cache-Control: no-cache` makes any client's request a revalidation.
//     So one request with `no-cache` and a header the origin rejects (an
//     oversized header → 400/431, an `Accept` it cannot meet → 406: the
//     CPDoS family) evicts a *fresh* stored response: every visitor after
//     it is a full miss, and the copy `stale-if-error` would answer an
//     outage with is gone. A 4xx answering the request's own faults says
//     nothing about the stored response. Now only an answer saying the
//     resource is gone (404, 410) or kept from shared caches (a `private`
//     or `no-store` 2xx or 304) drops the stored copy; any other answer
//     the revalidation cannot store goes to its client and leaves the
//     stored copy alone.

/// The representation "page" (ETag "v1", fresh 10 minutes), 304 for its
/// tag; a request carrying `x-oversized` is rejected with a 400 (a
/// header too large for the origin's limits).
async fn strict_origin(State(calls): State<Arc<AtomicUsize>>, headers: HeaderMap) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    if headers.contains_key("x-oversized") {
        return plain(400, &[], "bad request");
    }
    let fields = [
        ("cache-control", "max-age=600, stale-if-error=86400"),
        ("etag", "\"v1\""),
    ];
    if headers
        .get("if-none-match")
        .is_some_and(|tag| tag == "\"v1\"")
    {
        return plain(304, &fields, "");
    }
    plain(200, &fields, "page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_origin_rejects_does_not_evict_the_stored_response() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .fallback(strict_origin)
        .layer(shared(Cache::in_memory()))
        .with_state(Arc::clone(&calls));
    let client = Client::new(app, Transport::Oneshot).await;
    assert_eq!(client.get("/hot").await.x_cache, "MISS");
    assert_eq!(client.get("/hot").await.x_cache, "HIT");
    let attack = client
        .send(
            "GET",
            "/hot",
            &[("cache-control", "no-cache"), ("x-oversized", "aaaa")],
        )
        .await;
    assert_eq!(attack.status, StatusCode::BAD_REQUEST, "its own answer");
    let before = calls.load(Ordering::SeqCst);
    let visitor = client.get("/hot").await;
    assert_eq!(
        (
            visitor.x_cache.as_str(),
            calls.load(Ordering::SeqCst) - before
        ),
        ("HIT", 0),
        "one rejected request evicted a fresh response: the next visitor was a {} \
         ({} origin calls)",
        visitor.x_cache,
        calls.load(Ordering::SeqCst) - before
    );
}

// ---------------------------------------------------------------------------
// F4. E5's fix (a failed revalidation answered by `stale-if-error` is not
//     repeated by every waiting request) holds only when the 5xx itself
//     could be shared: at most 64 KiB, a declared length, and headers
//     that would let it be stored but for its status. Symfony and Laravel
//     send `Cache-Control: no-cache, private` on *every* response, errors
//     included; nginx's `gzip_vary` and most frameworks put `Vary` on
//     them. With such a 5xx every waiter is released with nothing and
//     calls the failing origin itself — though it needs no part of the
//     5xx: it answers with its own stale copy. The herd `stale-if-error`
//     is meant to shield the origin from is back for the most common
//     error pages. Now a 5xx that may not be shared still reaches the
//     waiters as the fact that the origin failed: each answers with its
//     stale copy if `stale-if-error` lets it (or asks the origin itself if
//     not), and the origin is called once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revalidation_with_an_unshareable_5xx_is_not_repeated_by_every_waiter() {
    const WAITERS: usize = 20;
    let mut herds = Vec::new();
    for (what, error_fields) in [
        (
            "Cache-Control: no-cache, private",
            &[("cache-control", "no-cache, private")][..],
        ),
        ("Vary: Accept-Encoding", &[("vary", "Accept-Encoding")][..]),
    ] {
        let origin = Origin::default();
        let (client, clock, hooks) = hooked_app(&origin).await;
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
            .then(answer(500, error_fields, "internal error").held(closed));
        for _ in 0..WAITERS {
            origin.then(answer(500, error_fields, "internal error"));
        }
        client.get("/hot").await;
        clock.advance_secs(5);
        let reads = hooks.reads.load(Ordering::SeqCst);
        let requests: Vec<_> = (0..WAITERS)
            .map(|_| {
                let client = Arc::clone(&client);
                tokio::spawn(async move { client.get("/hot").await })
            })
            .collect();
        origin.wait_for_calls(2).await;
        wait_for_reads(&hooks, reads + WAITERS).await;
        assert_eq!(origin.calls(), 2, "{what}: one revalidation under way");
        open.send(true).unwrap();
        for request in requests {
            let reply = request.await.unwrap();
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (StatusCode::OK, "kept"),
                "{what}"
            );
        }
        if origin.calls() > 3 {
            herds.push(format!(
                "{what}: one failed revalidation became {} calls of the failing origin",
                origin.calls() - 1
            ));
        }
    }
    assert!(herds.is_empty(), "{herds:#?}");
}

// ---------------------------------------------------------------------------
// F5. A 304 whose entity tag differs from the stored one is answered with
//     a 502 Bad Gateway, though the origin is healthy (the conflict
//     branch of the fix for D2; E8's fix covered only a 304 bringing a tag
//     to an untagged response). Apache's mod_deflate is the everyday
//     case: the 200 goes out as ETag "abc-gzip" and the 304 answering
//     `If-None-Match: "abc-gzip"` names "abc". Every such revalidation is
//     a 502 for the request that made it — and, since the 502 is not
//     shared, for every request that waited on it (each repeats the
//     conditional request and gets its own conflict). RFC 9111 §4.3.4
//     forbids *updating* the stored response with that 304; the cache can
//     still ask again without a condition (as E8 put it). Now it does,
//     once: the answer to the unconditional request is stored and answers
//     the request (and those that waited on it) as a miss's would.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_naming_another_etag_is_followed_by_an_unconditional_request() {
    let (origin, clock, client) = setup().await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"abc-gzip\"")],
            "doc",
        ))
        .then(answer(
            304,
            &[("cache-control", "max-age=600"), ("etag", "\"abc\"")],
            "",
        ))
        .then(answer(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"abc-gzip\"")],
            "doc",
        ));
    client.get("/doc").await;
    clock.advance_secs(5);
    let reply = client.get("/doc").await;
    assert_eq!(
        origin.request(2)["if-none-match"],
        "\"abc-gzip\"",
        "revalidated"
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "doc"),
        "a healthy origin's 304 became a {} ({})",
        reply.status,
        reply.x_cache
    );
}

// ---------------------------------------------------------------------------
// F6. The withdrawal E9 fixed is attempted once: when the store cannot
//     take the delete (one timeout, a failover), the copy the origin has
//     withdrawn (deleted: 404; made private) stays for the rest of
//     `keep_stale`, and any client asking `max-stale` gets it — as the E9
//     test shows, with one store hiccup added. A write's failed
//     invalidation is owed and retried, and the path bypassed meanwhile
//     (`pending.rs`); a withdrawal learnt by revalidation was not. Now it
//     is: a delete the store cannot take owes the path's invalidation,
//     retried in the background, and the path bypasses the cache until it
//     lands.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_the_store_could_not_take_is_owed_and_retried() {
    let origin = Origin::default();
    let (client, clock, hooks) = hooked_app(&origin).await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            "alice's post",
        ))
        .then(answer(404, &[], "gone"))
        .then(answer(404, &[], "gone"))
        .then(answer(404, &[], "gone"));
    client.get("/posts/1").await;
    clock.advance_secs(61);
    hooks.fail_unlinks.store(1000, Ordering::SeqCst);
    let revalidated = client.get("/posts/1").await;
    assert_eq!(revalidated.status, StatusCode::NOT_FOUND, "withdrawn");
    // The store is back.
    hooks.fail_unlinks.store(0, Ordering::SeqCst);
    let asked_stale = client
        .send("GET", "/posts/1", &[("cache-control", "max-stale=3600")])
        .await;
    assert_ne!(
        asked_stale.body, "alice's post",
        "withdrawn content served after one failed delete ({})",
        asked_stale.x_cache
    );
}

// ---------------------------------------------------------------------------
// F7. A 304 without `Date` (RFC 9110 §6.6.1: a recipient with a clock adds
//     one to a response it caches) is merged into the stored response,
//     which keeps the *old* `Date`: the refreshed response's age is
//     counted from the first fetch, so a response revalidated past its
//     lifetime is stale again the moment it is refreshed. Every request
//     after it revalidates with the origin (and is told `Age: 120` with
//     `max-age=60`): the cache stops caching that page. Now a 304
//     without `Date` gives the refreshed response a `Date` of its arrival
//     (and, found on the way, a 304's `Age` now counts in the refreshed
//     response's age, as a 200's does: test below).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_without_date_refreshes_the_stored_response() {
    let (origin, clock, client) = setup().await;
    // The test clocks start at 1_000_000 s after the epoch.
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000));
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("date", &date),
            ],
            "doc",
        ))
        .then(answer(
            304,
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            "",
        ))
        .then(answer(
            304,
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            "",
        ));
    assert_eq!(client.get("/doc").await.x_cache, "MISS");
    clock.advance_secs(120);
    let revalidated = client.get("/doc").await;
    assert_eq!(
        (revalidated.status, revalidated.body.as_str()),
        (StatusCode::OK, "doc")
    );
    assert_eq!(origin.calls(), 2, "revalidated");
    let next = client.get("/doc").await;
    assert_eq!(
        (next.x_cache.as_str(), origin.calls()),
        ("HIT", 2),
        "a response refreshed by a 304 a moment ago is stale (Age: {:?})",
        next.headers.get("age")
    );
}

/// With F7: the 304's `Age` (it came through another cache) counts in the
/// refreshed response's age, as a 200's does; it was dropped with the
/// fields a 304 does not replace, so the refreshed response was fresh for
/// longer than its origin said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304s_age_counts_in_the_refreshed_response() {
    let (origin, clock, client) = setup().await;
    // Dated when it arrives: only its `Age` makes it older.
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_000_120));
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            "doc",
        ))
        .then(answer(
            304,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("age", "50"),
                ("date", &date),
            ],
            "",
        ))
        .then(answer(
            304,
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            "",
        ));
    client.get("/doc").await;
    clock.advance_secs(120);
    assert_eq!(client.get("/doc").await.body, "doc");
    assert_eq!(origin.calls(), 2, "revalidated");
    clock.advance_secs(20);
    let next = client.get("/doc").await;
    assert_eq!(
        (next.body.as_str(), origin.calls()),
        ("doc", 3),
        "50 s old when refreshed, 70 s old now: stale at max-age=60 ({}, Age: {:?})",
        next.x_cache,
        next.headers.get("age")
    );
}

// ---------------------------------------------------------------------------
// F8. `..;` is a dot segment to Tomcat, Jetty and Spring (path parameters
//     are cut from each segment before dot segments are resolved): a
//     reverse proxy in front of them serves `/static/..;/admin/report`
//     as `/admin/report`. It is canonical to this cache (`;` is a
//     sub-delimiter), so it is stored under its own path and a write to
//     `/admin/report` never reaches it: the page from before the write is
//     a HIT there for its whole lifetime. Same for `;jsessionid=…` on the
//     last segment. The rule is "a path with dot segments is not stored";
//     a segment that is a dot segment once its parameters go is one. Now
//     no path with a `;` (or `%3B`) is canonical: all of them bypass the
//     cache, and `canonical_path` (what writes and `invalidate_path`
//     resolve) cuts parameters from each segment before dot segments, as
//     a servlet container does.

/// A servlet container's path handling: `;params` cut from each segment,
/// then dot segments resolved. `/admin/report` answers its version
/// (fresh ten minutes); a POST to it makes a new version.
async fn servlet(
    State(version): State<Arc<AtomicU64>>,
    method: Method,
    uri: axum::http::Uri,
) -> Response {
    let mut segments: Vec<&str> = Vec::new();
    for segment in uri.path().split('/').skip(1) {
        match segment.split(';').next().unwrap_or_default() {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            other => segments.push(other),
        }
    }
    let path = format!("/{}", segments.join("/"));
    if path != "/admin/report" {
        return plain(404, &[], "no such page");
    }
    if method == Method::POST {
        version.fetch_add(1, Ordering::SeqCst);
        return plain(204, &[], "");
    }
    plain(
        200,
        &[("cache-control", "max-age=600")],
        format!("report v{}", version.load(Ordering::SeqCst)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servlet_path_parameter_alias_is_not_stored_out_of_reach_of_writes() {
    let mut stale = Vec::new();
    for alias in ["/static/..;/admin/report", "/admin/report;jsessionid=0A1B"] {
        let version = Arc::new(AtomicU64::new(1));
        let app = Router::new()
            .fallback(servlet)
            .layer(shared(Cache::in_memory()))
            .with_state(Arc::clone(&version));
        let client = Client::new(app, Transport::Oneshot).await;
        assert_eq!(client.get(alias).await.body, "report v1");
        let write = client.send("POST", "/admin/report", &[]).await;
        assert_eq!(write.status, StatusCode::NO_CONTENT);
        assert_eq!(client.get("/admin/report").await.body, "report v2");
        let again = client.get(alias).await;
        if again.body != "report v2" {
            stale.push(format!(
                "{alias}: {} after the write ({})",
                again.body, again.x_cache
            ));
        }
    }
    assert!(stale.is_empty(), "{stale:#?}");
}

// ===========================================================================
// HOLDS (positive checks: these attacks did not work)
// ===========================================================================

async fn redis_cache(server: &larder_test_support::RedisServer) -> Cache {
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_millis(250))
        .build()
        .unwrap();
    Cache::connect(config).await.unwrap()
}

/// Redis killed while a revalidation is at the origin: the request is
/// answered by the origin's answer, later ones by the origin while Redis is
/// down, and caching resumes once it is back (nothing panics, nothing
/// stale is served as a hit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_redis_killed_mid_revalidation() {
    let mut server = larder_test_support::RedisServer::spawn();
    let origin = Origin::default();
    let (clock, read) = Clock::new();
    let cache = redis_cache(&server).await;
    let client = Arc::new(
        Client::new(
            app_with(&origin, shared(cache).clock(read)),
            Transport::Oneshot,
        )
        .await,
    );
    let (open, closed) = gate();
    let fields = [("cache-control", "max-age=1"), ("etag", "\"v1\"")];
    origin
        .then(answer(200, &fields, "v1"))
        .then(
            answer(
                200,
                &[("cache-control", "max-age=600"), ("etag", "\"v2\"")],
                "v2",
            )
            .held(closed),
        )
        .then(answer(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"v3\"")],
            "v3",
        ))
        .then(answer(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"v4\"")],
            "v4",
        ));
    assert_eq!(client.get("/doc").await.x_cache, "MISS");
    clock.advance_secs(5);
    let revalidating = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.get("/doc").await })
    };
    origin.wait_for_calls(2).await;
    server.kill();
    open.send(true).unwrap();
    let reply = revalidating.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "v2"));
    let down = client.get("/doc").await;
    assert_eq!(
        (down.status, down.body.as_str()),
        (StatusCode::OK, "v3"),
        "the origin answers"
    );
    server.restart();
    eventually("caching resumes", Duration::from_secs(20), async || {
        client
            .send("GET", "/doc", &[("cache-control", "only-if-cached")])
            .await
            .status
            == StatusCode::OK
            || {
                if origin.script_is_spent() {
                    origin.then(answer(
                        200,
                        &[("cache-control", "max-age=600"), ("etag", "\"v4\"")],
                        "v4",
                    ));
                }
                client.get("/doc").await;
                false
            }
    })
    .await;
    let hit = client.get("/doc").await;
    assert_eq!((hit.x_cache.as_str(), hit.body.as_str()), ("HIT", "v4"));
}

/// Two processes on one Redis: process B revalidates (the origin answers
/// the old page) while a write through process A lands; B's answer is not
/// stored, and B's next request gets the new page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_write_in_another_process_voids_a_revalidation_in_flight() {
    let server = larder_test_support::RedisServer::spawn();
    let origin = Origin::default();
    let (clock, read) = Clock::new();
    let a = Client::new(
        app_with(&origin, shared(redis_cache(&server).await).clock(read)),
        Transport::Oneshot,
    )
    .await;
    let b = Arc::new(
        Client::new(
            app_with(&origin, shared(redis_cache(&server).await).clock(read)),
            Transport::Oneshot,
        )
        .await,
    );
    let (open, closed) = gate();
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "v1",
        ))
        .then(
            answer(
                200,
                &[("cache-control", "max-age=600"), ("etag", "\"v1\"")],
                "v1",
            )
            .held(closed),
        )
        .then(answer(204, &[], ""))
        .then(answer(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"v2\"")],
            "v2",
        ));
    assert_eq!(b.get("/item").await.body, "v1");
    clock.advance_secs(5);
    let revalidating = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.get("/item").await })
    };
    origin.wait_for_calls(2).await;
    assert_eq!(
        a.send("POST", "/item", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    open.send(true).unwrap();
    assert_eq!(revalidating.await.unwrap().body, "v1", "its own answer");
    let cached = b
        .send("GET", "/item", &[("cache-control", "only-if-cached")])
        .await;
    assert_ne!(
        cached.body, "v1",
        "the old page was stored after the write ({})",
        cached.x_cache
    );
    assert_eq!(b.get("/item").await.body, "v2");
}
