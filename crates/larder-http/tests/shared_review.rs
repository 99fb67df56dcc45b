//! A hostile review of shared-cache mode (`CacheMode::Shared`).
//!
//! Tests under "DEFECT" fail on the code as reviewed: each shows one
//! defect (see the comment above it). Tests under "HOLDS" are positive
//! checks of attacks that did not work; they pass and are kept as
//! regressions.
#![allow(missing_docs, missing_debug_implementations)]

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::clock::Clock;
use common::hooked::Hooked;
use common::origin::{Origin, answer, app_with, gate, setup, shared};
use common::{Client, Transport, eventually};
use larder::{Cache, Config};
use tower::ServiceExt;

// ===========================================================================
// DEFECTS
// ===========================================================================

// ---------------------------------------------------------------------------
// D1. A 304 that adds `Vary` is merged, but the request values stored
//     beside the response are copied from the old entry (none): the merged
//     response, which now says it varies on Accept-Language, answers every
//     language as a HIT.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_that_adds_vary_does_not_make_the_response_answer_every_variant() {
    let (origin, clock, client) = setup().await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "english",
        ))
        .then(answer(
            304,
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"v1\""),
                ("vary", "Accept-Language"),
            ],
            "",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
            "deutsch",
        ));
    let en = client
        .send("GET", "/greeting", &[("accept-language", "en")])
        .await;
    assert_eq!(en.body, "english");
    clock.advance_secs(5);
    // The origin validates the stored body for a French request.
    let fr = client
        .send("GET", "/greeting", &[("accept-language", "fr")])
        .await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(fr.headers["vary"], "Accept-Language");
    // A German request was never validated against it.
    let de = client
        .send("GET", "/greeting", &[("accept-language", "de")])
        .await;
    assert_eq!(
        (de.body.as_str(), origin.calls()),
        ("deutsch", 3),
        "a response whose Vary names Accept-Language answered `de` from a variant \
         validated for `fr` (X-Cache: {}, Vary: {:?})",
        de.x_cache,
        de.headers.get("vary")
    );
}

// ---------------------------------------------------------------------------
// D2. A 304 whose strong ETag is not the stored one refreshes the stored
//     response anyway (RFC 9111 §4.3.4: only stored responses with that
//     validator are updated). The old body goes out, fresh, labelled with
//     the new ETag: a client that keeps it revalidates "v2" forever and
//     never gets the new body.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_with_another_strong_etag_does_not_refresh_the_stored_body() {
    let (origin, clock, client) = setup().await;
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            "body of v1",
        ))
        // An origin that only checks If-Modified-Since (content changed,
        // mtime preserved by the deploy): 304, with the new ETag.
        .then(answer(
            304,
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"v2\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            "",
        ))
        .then(answer(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"v2\"")],
            "body of v2",
        ));
    client.get("/doc").await;
    clock.advance_secs(5);
    let reply = client.get("/doc").await;
    assert!(
        !(reply.body == "body of v1" && reply.headers["etag"] == "\"v2\""),
        "the v1 body was served as ETag \"v2\" (X-Cache: {})",
        reply.x_cache
    );
    let again = client.get("/doc").await;
    assert_ne!(
        again.body, "body of v1",
        "the v1 body is stored as fresh under ETag \"v2\" (X-Cache: {})",
        again.x_cache
    );
}

// ---------------------------------------------------------------------------
// D3. One failed store read (a Redis timeout) on the first lookup, and the
//     fetch's read path finds the entry and hands it back unchecked: a
//     `no-cache` response (to be revalidated on every use) is served as a
//     HIT without asking the origin. Same with an hour-stale
//     `must-revalidate` one. The fetch trusts whatever Larder's read path
//     returns without the freshness / request-directive checks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_hiccup_on_the_first_read_serves_a_no_cache_response_unvalidated() {
    let (cache, hooks) = Hooked::cache();
    let origin = Origin::default();
    let (_clock, read) = Clock::new();
    let client = Client::new(
        app_with(&origin, shared(cache).clock(read)),
        Transport::Oneshot,
    )
    .await;
    origin
        .then(answer(
            200,
            &[("cache-control", "no-cache"), ("etag", "\"v1\"")],
            "balance: 100",
        ))
        .then(answer(
            200,
            &[("cache-control", "no-cache"), ("etag", "\"v2\"")],
            "balance: 0",
        ));
    assert_eq!(client.get("/account").await.x_cache, "MISS");
    hooks.fail_mgets.store(1, Ordering::SeqCst);
    let reply = client.get("/account").await;
    assert_eq!(
        (reply.body.as_str(), origin.calls()),
        ("balance: 0", 2),
        "a `no-cache` response was reused without revalidation after one failed read \
         (X-Cache: {})",
        reply.x_cache
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_hiccup_on_the_first_read_serves_an_hour_stale_must_revalidate_response() {
    let (cache, hooks) = Hooked::cache();
    let origin = Origin::default();
    let (clock, read) = Clock::new();
    let client = Client::new(
        app_with(&origin, shared(cache).clock(read)),
        Transport::Oneshot,
    )
    .await;
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=60, must-revalidate"),
                ("etag", "\"v1\""),
            ],
            "old",
        ))
        .then(answer(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
            "new",
        ));
    client.get("/page").await;
    clock.advance_secs(3000); // 49 minutes past its freshness
    hooks.fail_mgets.store(1, Ordering::SeqCst);
    let reply = client.get("/page").await;
    assert_eq!(
        reply.body, "new",
        "must-revalidate, stale for 49 minutes, served as {} after one failed read",
        reply.x_cache
    );
}

// ---------------------------------------------------------------------------
// D4. Same root cause, no failure needed: a cache configured with a stale
//     grace (a Larder setting application-mode routes use) makes the read
//     path return an entry past its retention to everyone while one caller
//     holds the lease; shared mode labels it HIT, must-revalidate or not.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_stale_grace_a_must_revalidate_response_is_served_stale_as_a_hit() {
    let config = Config::builder()
        .in_memory()
        .stale_grace(Duration::from_secs(60))
        .ttl_jitter(0.0)
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap();
    let origin = Origin::default();
    let client = Arc::new(Client::new(app_with(&origin, shared(cache)), Transport::Oneshot).await);
    let (open, closed) = gate();
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1, must-revalidate")],
            "old",
        ))
        .then(answer(200, &[("cache-control", "max-age=60")], "new").held(closed));
    assert_eq!(client.get("/p").await.x_cache, "MISS");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // One request refetches (the origin is slow)...
    let first = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.get("/p").await }
    });
    origin.wait_for_calls(2).await;
    // ...and another arrives meanwhile.
    let second = client.get("/p").await;
    open.send(true).unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.body, "new");
    assert_ne!(
        second.body,
        "old",
        "a must-revalidate response {} ms past its max-age=1 was served as {} (Age: {:?})",
        1500,
        second.x_cache,
        second.headers.get("age")
    );
}

// ---------------------------------------------------------------------------
// D5. A revalidation that fails is repeated by every request that waited
//     on it: the docs say concurrent revalidations "call the inner service
//     once", but waiters are released with nothing shared (share is
//     always None in shared mode) and each calls the origin itself. With
//     stale-while-revalidate every stale request spawns a background task
//     that joins the flight, so the herd is as large as the traffic during
//     one slow revalidation — hitting the origin exactly when it fails.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revalidation_is_not_repeated_by_every_waiting_request() {
    let (origin, clock, client) = setup().await;
    let (open, closed) = gate();
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=1, stale-while-revalidate=600"),
                ("etag", "\"s\""),
            ],
            "swr",
        ))
        .then(answer(503, &[], "overloaded").held(closed));
    client.get("/hot").await;
    clock.advance_secs(5);
    for _ in 0..20 {
        let stale = client.get("/hot").await;
        assert_eq!(stale.x_cache, "STALE");
    }
    origin.wait_for_calls(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // every task has joined
    assert_eq!(origin.calls(), 2, "one revalidation under way");
    open.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        origin.calls() <= 3,
        "one failed background revalidation became {} origin calls",
        origin.calls() - 1
    );
}

// ---------------------------------------------------------------------------
// D6. A write whose invalidation fails (store down) is retried only for the
//     application-mode lifetime (the route's `ttl`, unused in shared mode,
//     × jitter + grace + 5 s). Shared-mode entries live for their max-age
//     plus `keep_stale` (an hour): after the retry gives up, the page from
//     before the write is served again as a HIT once the store is back.
//     (ttl(1 s) keeps the test short; with the default 60 s the window
//     opens after ~71 s; the entry below lives 600 s + the hour of keep_stale.)

#[derive(Clone, Default)]
struct Versioned(Arc<AtomicUsize>);

async fn versioned(State(v): State<Versioned>, method: Method) -> Response {
    if method == Method::GET {
        let body = format!("v{}", v.0.load(Ordering::SeqCst));
        ([("cache-control", "max-age=600")], body).into_response()
    } else {
        v.0.fetch_add(1, Ordering::SeqCst);
        StatusCode::NO_CONTENT.into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_invalidation_is_not_given_up_while_shared_entries_live() {
    let (cache, hooks) = Hooked::cache();
    let version = Versioned(Arc::new(AtomicUsize::new(1)));
    let app = Router::new()
        .fallback(versioned)
        .layer(shared(cache).ttl(Duration::from_secs(1)))
        .with_state(version.clone());
    let client = Client::new(app, Transport::Oneshot).await;
    assert_eq!(client.get("/item").await.x_cache, "MISS");
    assert_eq!(client.get("/item").await.x_cache, "HIT");
    hooks.down.store(true, Ordering::SeqCst);
    let written = client.send("PUT", "/item", &[]).await;
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/item").await.x_cache, "BYPASS");
    // Past the application-mode lifetime (1 s × jitter + grace + 5 s) the
    // path is still bypassed: the entry it owes an invalidation lives on.
    // Time has to pass here; there is no event to wait for.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(8) {
        assert_eq!(
            client.get("/item").await.x_cache,
            "BYPASS",
            "gave up the owed invalidation after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    hooks.down.store(false, Ordering::SeqCst);
    eventually(
        "the owed invalidation went through once the store was back",
        Duration::from_secs(20),
        async || client.get("/item").await.x_cache != "BYPASS",
    )
    .await;
    let after = client.get("/item").await;
    assert_eq!(
        after.body, "v2",
        "the page from before the write ({})",
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// D7. The request side of a conditional revalidation: the layer removes the
//     client's If-Range but keeps its Range, so a resumed download gets a
//     206 of the *new* representation where the origin would have sent the
//     whole new body (If-Range names the old ETag): the client splices two
//     versions of the file.

#[derive(Clone, Default)]
struct RangeOrigin(Arc<AtomicUsize>);

/// An origin that evaluates If-None-Match, Range and If-Range as RFC 9110
/// says; the representation is "0123456789" (ETag "v1") on the first call
/// and "ABCDEFGHIJ" (ETag "v2") after.
async fn range_origin(State(o): State<RangeOrigin>, headers: HeaderMap) -> Response {
    let n = o.0.fetch_add(1, Ordering::SeqCst);
    let (body, etag) = if n == 0 {
        ("0123456789", "\"v1\"")
    } else {
        ("ABCDEFGHIJ", "\"v2\"")
    };
    let cc = ("cache-control", "max-age=1");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [cc, ("etag", etag)]).into_response();
    }
    let if_range_holds = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok())
        && if_range_holds
        && let Some(from) = range
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok())
    {
        return (
            StatusCode::PARTIAL_CONTENT,
            [
                cc,
                ("etag", etag),
                ("content-range", &format!("bytes {from}-9/10")),
            ],
            body[from..].to_owned(),
        )
            .into_response();
    }
    ([cc, ("etag", etag)], body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_download_is_not_given_a_range_of_another_version() {
    let (clock, read) = Clock::new();
    let app = Router::new()
        .fallback(range_origin)
        .layer(shared(Cache::in_memory()).clock(read))
        .with_state(RangeOrigin::default());
    let client = Client::new(app, Transport::Oneshot).await;
    let full = client.get("/file").await;
    assert_eq!(full.body, "0123456789");
    clock.advance_secs(5);
    // The client got bytes 0-4 of "v1" and resumes, if it is still "v1".
    let resumed = client
        .send(
            "GET",
            "/file",
            &[("range", "bytes=5-"), ("if-range", "\"v1\"")],
        )
        .await;
    assert!(
        !(resumed.status == StatusCode::PARTIAL_CONTENT && resumed.body == "FGHIJ"),
        "If-Range \"v1\" was dropped: the client splices \"01234\" with \"FGHIJ\" of \"v2\""
    );
}

// ---------------------------------------------------------------------------
// D8. The reverse-proxy example (mirrored below, as `forward` and
//     `end_to_end` do it) drops the headers a request's `Connection` names
//     *after* the cache layer has recorded their values for `Vary`. An
//     attacker's `Accept-Language: fr` + `Connection: Accept-Language`
//     stores the origin's default-language page as the `fr` variant:
//     every French visitor gets it (cache-poisoning DoS; with `Accept`,
//     JSON clients get HTML).

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The example's `end_to_end`.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && !listed.iter().any(|l| l == name.as_str()) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The upstream: the page in the language asked for, English by default.
async fn localized(headers: HeaderMap) -> Response {
    let lang = headers
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("en")
        .to_owned();
    (
        [
            ("cache-control", "max-age=600"),
            ("vary", "Accept-Language"),
        ],
        format!("page in {lang}"),
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_the_proxy_drops_as_hop_by_hop_is_not_recorded_as_the_variant() {
    let upstream = Router::new().fallback(localized);
    // The example's `forward`, with the upstream in process.
    let forward = tower::service_fn(move |request: Request<axum::body::Body>| {
        let upstream = upstream.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            parts.headers = end_to_end(&parts.headers);
            upstream.oneshot(Request::from_parts(parts, body)).await
        }
    });
    let proxy = Router::new()
        .fallback_service(forward)
        .layer(shared(Cache::in_memory()));
    let client = Client::new(proxy, Transport::Oneshot).await;
    let attack = client
        .send(
            "GET",
            "/home",
            &[
                ("accept-language", "fr"),
                ("connection", "keep-alive, Accept-Language"),
            ],
        )
        .await;
    assert_eq!(attack.body, "page in en");
    let victim = client
        .send("GET", "/home", &[("accept-language", "fr")])
        .await;
    assert_eq!(
        victim.body, "page in fr",
        "a French visitor got the poisoned variant ({})",
        victim.x_cache
    );
}

// ---------------------------------------------------------------------------
// D9. A `CDN-Cache-Control` this cache cannot read is ignored and the
//     response is stored by its `Cache-Control`, even when the unreadable
//     line says `no-store` or `private` (a capitalised directive, a
//     trailing comma). Cache-Control's reader counts such a mention
//     wherever it is ("another cache may read the line less strictly");
//     the project rule is "what it cannot parse, it does not store". The
//     suite's two invalid-CDN-Cache-Control tests expect "not cached" too.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_cdn_cache_control_saying_no_store_is_not_ignored() {
    let mut stored = Vec::new();
    for cdn in [
        "No-Store",
        "no-store, max-age=0,",
        "private, max-age=0, x=[1]",
    ] {
        let (origin, _clock, client) = setup().await;
        for _ in 0..2 {
            origin.then(answer(
                200,
                &[
                    ("cache-control", "public, max-age=600"),
                    ("cdn-cache-control", cdn),
                ],
                "page",
            ));
        }
        client.get("/p").await;
        if client.get("/p").await.x_cache != "MISS" {
            stored.push(cdn);
        }
    }
    assert!(
        stored.is_empty(),
        "stored and reused despite CDN-Cache-Control: {stored:?}"
    );
}

// ---------------------------------------------------------------------------
// D10. `Location: //evil.example/x` (a network-path reference: another
//      host) is taken as a same-host path and invalidates the local
//      `/evil.example/x` (RFC 9111 §4.4: never another origin's URIs; here
//      an unrelated local one).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_path_location_does_not_invalidate_a_local_path() {
    let (origin, _clock, client) = setup().await;
    origin
        .then(answer(200, &[("cache-control", "max-age=600")], "local"))
        .then(answer(201, &[("location", "//evil.example/x")], ""));
    let local = [("host", "shop.example")];
    client.send("GET", "/evil.example/x", &local).await;
    assert_eq!(
        client.send("GET", "/evil.example/x", &local).await.x_cache,
        "HIT"
    );
    client.send("POST", "/orders", &local).await;
    let after = client.send("GET", "/evil.example/x", &local).await;
    assert_eq!(
        after.x_cache, "HIT",
        "a Location on another host dropped the local /evil.example/x"
    );
}

// ---------------------------------------------------------------------------
// D11. stale-if-error is skipped when the error page itself carries
//      freshness: a 500 with `Cache-Control: max-age=60` is stored over the
//      good stale copy (RFC 5861 §4: a 500/502/503/504 is the error the
//      stale copy answers), and then served to everyone as a HIT.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheable_500_does_not_replace_a_copy_allowed_to_answer_errors() {
    let (origin, clock, client) = setup().await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1, stale-if-error=600")],
            "good",
        ))
        .then(answer(500, &[("cache-control", "max-age=60")], "boom"));
    client.get("/sie").await;
    clock.advance_secs(5);
    let during = client.get("/sie").await;
    let after = client.get("/sie").await;
    assert_eq!(
        (during.status, during.body.as_str()),
        (StatusCode::OK, "good"),
        "stale-if-error=600 and the origin failed: the stale copy should answer ({})",
        during.x_cache
    );
    assert_eq!(
        after.body, "good",
        "the 500 replaced the stored copy ({})",
        after.x_cache
    );
}

// ===========================================================================
// HOLDS (positive checks: these attacks did not work)
// ===========================================================================

/// Concurrent misses with different Vary values: the one that joins the
/// other's fetch does not get its variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_waiter_with_other_vary_values_gets_its_own_answer() {
    let (origin, _clock, client) = setup().await;
    let client = Arc::new(client);
    let (open, closed) = gate();
    let vary = [
        ("cache-control", "max-age=600"),
        ("vary", "Accept-Language"),
    ];
    origin
        .then(answer(200, &vary, "english").held(closed))
        .then(answer(200, &vary, "french"));
    let en = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.send("GET", "/g", &[("accept-language", "en")]).await }
    });
    origin.wait_for_calls(1).await;
    let fr = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.send("GET", "/g", &[("accept-language", "fr")]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    open.send(true).unwrap();
    assert_eq!(en.await.unwrap().body, "english");
    assert_eq!(fr.await.unwrap().body, "french");
}

/// Revalidation of a stale variant while another variant's request
/// replaces it: each gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_refresh_flight_shared_by_two_variants_answers_each_its_own() {
    let (origin, clock, client) = setup().await;
    let client = Arc::new(client);
    let vary = [
        ("cache-control", "max-age=1"),
        ("vary", "Accept-Language"),
        ("etag", "\"en\""),
    ];
    let (open, closed) = gate();
    origin
        .then(answer(200, &vary, "english"))
        .then(answer(304, &vary, "").held(closed))
        .then(answer(200, &vary, "french"));
    client.send("GET", "/g", &[("accept-language", "en")]).await;
    clock.advance_secs(5);
    let en = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.send("GET", "/g", &[("accept-language", "en")]).await }
    });
    origin.wait_for_calls(2).await;
    let fr = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.send("GET", "/g", &[("accept-language", "fr")]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    open.send(true).unwrap();
    assert_eq!(en.await.unwrap().body, "english");
    assert_eq!(fr.await.unwrap().body, "french");
}

/// A 304 that adds Set-Cookie or private: the merged response answers its
/// own request only, and the cookie never reaches anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_304_adding_set_cookie_or_private_is_not_shared() {
    for added in [
        ("set-cookie", "session=alice"),
        ("cache-control", "private"),
    ] {
        let (origin, clock, client) = setup().await;
        origin
            .then(answer(
                200,
                &[("cache-control", "max-age=1"), ("etag", "\"a\"")],
                "doc",
            ))
            .then(answer(
                304,
                &[("cache-control", "max-age=600"), ("etag", "\"a\""), added],
                "",
            ))
            .then(answer(200, &[("cache-control", "max-age=1")], "next"));
        client.get("/d").await;
        clock.advance_secs(5);
        client.get("/d").await;
        let other = client.get("/d").await;
        assert_eq!(origin.calls(), 3, "{added:?}");
        assert!(other.headers.get("set-cookie").is_none(), "{added:?}");
    }
}

/// HEAD is answered from a stored GET only when the Vary values match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_head_respects_vary() {
    let (origin, _clock, client) = setup().await;
    let vary = [
        ("cache-control", "max-age=600"),
        ("vary", "Accept-Language"),
    ];
    origin
        .then(answer(200, &vary, "english"))
        .then(answer(200, &vary, ""));
    client.send("GET", "/h", &[("accept-language", "en")]).await;
    let head = client
        .send("HEAD", "/h", &[("accept-language", "fr")])
        .await;
    assert_eq!(head.x_cache, "MISS");
    let head = client
        .send("HEAD", "/h", &[("accept-language", "en")])
        .await;
    assert_eq!(head.x_cache, "HIT");
}

/// The identity a route keys on still separates users in shared mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_identity_separates_users_in_shared_mode() {
    let origin = Origin::default();
    let layer = shared(Cache::in_memory()).vary_on(|parts| {
        parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let client = Client::new(app_with(&origin, layer), Transport::Oneshot).await;
    let public = [("cache-control", "public, max-age=600")];
    origin
        .then(answer(200, &public, "alice"))
        .then(answer(200, &public, "bob"));
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    assert_eq!(client.send("GET", "/me", &alice).await.body, "alice");
    assert_eq!(client.send("GET", "/me", &bob).await.body, "bob");
    assert_eq!(client.send("GET", "/me", &alice).await.body, "alice");
}

/// Odd and hostile header values on responses and requests: nothing
/// panics, and the layer stays consistent (each request is answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_odd_header_values_do_not_panic() {
    let (origin, clock, client) = setup().await;
    let responses: &[&[(&'static str, &str)]] = &[
        &[("cache-control", "max-age=99999999999999999999999999")],
        &[
            ("cache-control", "max-age=2147483648"),
            ("age", "2147483648"),
        ],
        &[("cache-control", "s-maxage=1, max-age=2147483648")],
        &[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")],
        &[
            ("date", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ],
        &[
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ],
        &[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")],
        &[("cache-control", "max-age=60"), ("vary", "\u{0}")],
        &[("cache-control", "max-age=60"), ("etag", "\"\u{ff}\"")],
        &[
            (
                "cache-control",
                "max-age=60, stale-while-revalidate=99999999999",
            ),
            ("etag", "W/\"x\""),
        ],
        &[(
            "cdn-cache-control",
            "max-age=-1, s-maxage=999999999999999, stale-if-error=1.5, x=:AAA=:, y=?1;a=b",
        )],
        &[("cdn-cache-control", "max-age=1, \"")],
        &[("cdn-cache-control", "a=?")],
        &[("cdn-cache-control", "a=\"\\")],
        &[("cache-control", "max-age=60"), ("vary", ",,, ,")],
    ];
    for (i, headers) in responses.iter().enumerate() {
        let headers: Vec<(&'static str, &str)> = headers
            .iter()
            .filter(|(_, v)| HeaderValue::from_str(v).is_ok())
            .copied()
            .collect();
        for _ in 0..3 {
            origin.then(answer(200, &headers, "x"));
        }
        let path = format!("/odd/{i}");
        client.get(&path).await;
        clock.advance_secs(100_000);
        client
            .send(
                "GET",
                &path,
                &[
                    ("cache-control", "max-stale, min-fresh=99999999999999999999"),
                    ("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT"),
                    ("if-none-match", "*, W/\"x\", \"\u{ff}\""),
                ],
            )
            .await;
        client.get(&path).await;
    }
}
