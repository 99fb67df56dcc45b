//! Shared-cache mode (`CacheMode::Shared`): freshness from the origin's
//! headers, revalidation and 304 merging, `Vary` by stored request values,
//! request directives, stale directives, `CDN-Cache-Control` and
//! invalidation by unsafe methods — each through `oneshot` and over a real
//! socket, against a scripted origin that records what it was asked.

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{HeaderValue, StatusCode};
use common::Transport;
use common::clock::Clock;
use common::origin::{answer, setup, setup_over};
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};

both_transports!(
    only_responses_with_freshness_or_a_validator_are_stored,
    a_stale_response_is_revalidated_and_a_304_refreshes_it,
    vary_is_matched_on_the_values_stored_beside_the_response,
    request_directives_are_honoured,
    unsafe_methods_invalidate_the_target_and_its_locations,
    stale_if_error_answers_a_failed_revalidation,
    stale_while_revalidate_serves_at_once_and_revalidates_behind,
    cdn_cache_control_replaces_cache_control,
    the_fail_closed_rules_still_hold,
);

async fn only_responses_with_freshness_or_a_validator_are_stored(transport: Transport) {
    let (origin, _clock, client) = setup_over(transport).await;
    origin
        .then(answer(200, &[], "bare"))
        .then(answer(200, &[], "bare"));
    let labels = [
        client.get("/bare").await.x_cache,
        client.get("/bare").await.x_cache,
    ];
    assert_eq!(
        labels,
        ["MISS", "MISS"],
        "no freshness, no validator: not stored"
    );
    origin.then(answer(200, &[("cache-control", "max-age=60")], "fresh"));
    assert_eq!(client.get("/fresh").await.x_cache, "MISS");
    let hit = client.get("/fresh").await;
    assert_eq!((hit.x_cache.as_str(), hit.body.as_str()), ("HIT", "fresh"));
    // A status other than 200 with explicit freshness is stored too; one
    // without is not, even with `Last-Modified` (not heuristically
    // cacheable).
    origin
        .then(answer(201, &[("cache-control", "max-age=60")], "created"))
        .then(answer(
            302,
            &[("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            "moved",
        ))
        .then(answer(
            302,
            &[("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            "moved",
        ));
    client.get("/created").await;
    assert_eq!(client.get("/created").await.x_cache, "HIT");
    client.get("/moved").await;
    assert_eq!(client.get("/moved").await.x_cache, "MISS");
    assert_eq!(origin.calls(), 6);
}

async fn a_stale_response_is_revalidated_and_a_304_refreshes_it(transport: Transport) {
    let (origin, clock, client) = setup_over(transport).await;
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("etag", "\"v1\""),
                ("x-version", "1"),
            ],
            "one",
        ))
        .then(answer(
            304,
            &[
                ("cache-control", "max-age=10"),
                ("etag", "\"v1\""),
                ("x-version", "2"),
            ],
            "",
        ));
    assert_eq!(client.get("/doc").await.x_cache, "MISS");
    clock.advance_secs(11);
    let revalidated = client.get("/doc").await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(
        origin.request(2)["if-none-match"],
        "\"v1\"",
        "a conditional request"
    );
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.body, "one", "the stored body, kept");
    assert_eq!(
        revalidated.headers["x-version"], "2",
        "the 304's headers merged"
    );
    let hit = client.get("/doc").await;
    assert_eq!(
        (
            hit.x_cache.as_str(),
            hit.body.as_str(),
            hit.headers["x-version"].to_str().unwrap()
        ),
        ("HIT", "one", "2"),
        "fresh again for the 304's max-age"
    );
    assert_eq!(origin.calls(), 2);
    // A full answer to the revalidation replaces the stored one.
    clock.advance_secs(11);
    origin.then(answer(
        200,
        &[("cache-control", "max-age=10"), ("etag", "\"v2\"")],
        "two",
    ));
    assert_eq!(client.get("/doc").await.body, "two");
    assert_eq!(client.get("/doc").await.x_cache, "HIT");
}

async fn vary_is_matched_on_the_values_stored_beside_the_response(transport: Transport) {
    let (origin, _clock, client) = setup_over(transport).await;
    let vary = [("cache-control", "max-age=60"), ("vary", "Accept-Language")];
    origin
        .then(answer(200, &vary, "english"))
        .then(answer(200, &vary, "french"));
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(client.send("GET", "/greeting", &en).await.body, "english");
    let hit = client.send("GET", "/greeting", &en).await;
    assert_eq!(
        (hit.x_cache.as_str(), hit.body.as_str()),
        ("HIT", "english")
    );
    let french = client.send("GET", "/greeting", &fr).await;
    assert_eq!(
        french.body, "french",
        "another value is a miss, never the stored variant"
    );
    assert_eq!(origin.calls(), 2);
    let replaced = client.send("GET", "/greeting", &fr).await;
    assert_eq!(
        (replaced.x_cache.as_str(), replaced.body.as_str()),
        ("HIT", "french"),
        "the new variant replaced the old one"
    );
    origin.then(answer(200, &vary, "none"));
    assert_eq!(
        client.get("/greeting").await.body,
        "none",
        "absent is a value of its own"
    );
}

async fn request_directives_are_honoured(transport: Transport) {
    let (origin, clock, client) = setup_over(transport).await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"a\"")],
            "a",
        ))
        .then(answer(304, &[("cache-control", "max-age=60")], ""));
    client.get("/r").await;
    clock.advance_secs(5);
    let revalidated = client
        .send("GET", "/r", &[("cache-control", "max-age=2")])
        .await;
    assert_eq!(
        origin.calls(),
        2,
        "older than the request's max-age: revalidated"
    );
    assert_eq!(revalidated.body, "a");
    assert_eq!(origin.request(2)["if-none-match"], "\"a\"");
    let only = client
        .send("GET", "/absent", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(only.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.calls(), 2, "only-if-cached never reaches the origin");
    clock.advance_secs(70);
    let stale = client
        .send("GET", "/r", &[("cache-control", "max-stale=30")])
        .await;
    assert_eq!(
        (stale.x_cache.as_str(), stale.body.as_str()),
        ("STALE", "a")
    );
    let fresh_enough = client
        .send("GET", "/r", &[("cache-control", "min-fresh=5")])
        .await;
    assert_eq!(origin.calls(), 3, "not fresh for another 5 s: revalidated");
    assert_eq!(fresh_enough.status, StatusCode::from_u16(599).unwrap());
}

async fn unsafe_methods_invalidate_the_target_and_its_locations(transport: Transport) {
    let (origin, _clock, client) = setup_over(transport).await;
    let fresh = [("cache-control", "max-age=600")];
    for body in ["a", "b", "c"] {
        origin.then(answer(200, &fresh, body));
    }
    for path in ["/a", "/b", "/c"] {
        client.get(path).await;
        assert_eq!(client.get(path).await.x_cache, "HIT");
    }
    origin.then(answer(
        201,
        &[
            ("location", "/b"),
            ("content-location", "http://elsewhere.example/c"),
        ],
        "",
    ));
    assert_eq!(client.send("POST", "/a", &[]).await.x_cache, "BYPASS");
    for body in ["a2", "b2"] {
        origin.then(answer(200, &fresh, body));
    }
    assert_eq!(client.get("/a").await.body, "a2", "the target");
    assert_eq!(client.get("/b").await.body, "b2", "its Location");
    assert_eq!(
        client.get("/c").await.x_cache,
        "HIT",
        "a location on another host is not this cache's to drop"
    );
    // Unknown methods are unsafe too; a failed write invalidates nothing.
    origin.then(answer(500, &[], "")).then(answer(204, &[], ""));
    client.send("PURGE", "/a", &[]).await;
    assert_eq!(
        client.get("/a").await.x_cache,
        "HIT",
        "a 500 changed nothing"
    );
    client.send("PURGE", "/a", &[]).await;
    origin.then(answer(200, &fresh, "a3"));
    assert_eq!(client.get("/a").await.body, "a3");
}

async fn stale_if_error_answers_a_failed_revalidation(transport: Transport) {
    let (origin, clock, client) = setup_over(transport).await;
    origin
        .then(answer(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "kept",
        ))
        .then(answer(503, &[], "down"))
        .then(answer(200, &[("cache-control", "max-age=1")], "plain"))
        .then(answer(503, &[], "down"));
    client.get("/sie").await;
    clock.advance_secs(5);
    let served = client.get("/sie").await;
    assert_eq!(
        (served.status, served.x_cache.as_str(), served.body.as_str()),
        (StatusCode::OK, "STALE", "kept")
    );
    client.get("/plain").await;
    clock.advance_secs(5);
    let failed = client.get("/plain").await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no stale-if-error: the failure"
    );
    assert_eq!(origin.calls(), 4);
}

async fn stale_while_revalidate_serves_at_once_and_revalidates_behind(transport: Transport) {
    let (origin, clock, client) = setup_over(transport).await;
    let headers = [
        ("cache-control", "max-age=1, stale-while-revalidate=60"),
        ("etag", "\"s\""),
    ];
    // Enough 304s for a second background revalidation: a request that
    // read the stale copy just before the first one stored its refresh,
    // and asks just after it finished, starts another (harmless, and not
    // something a test can order from outside).
    origin.then(answer(200, &headers, "swr"));
    for _ in 0..4 {
        origin.then(answer(304, &headers, ""));
    }
    client.get("/swr").await;
    clock.advance_secs(5);
    let stale = client.get("/swr").await;
    assert_eq!(
        (stale.x_cache.as_str(), stale.body.as_str()),
        ("STALE", "swr")
    );
    origin.wait_for_calls(2).await;
    assert_eq!(
        origin.request(2)["if-none-match"],
        "\"s\"",
        "revalidated behind"
    );
    // The refreshed entry is stored right after the origin answers; until
    // then the stale copy answers.
    let mut hit = client.get("/swr").await;
    for _ in 0..10_000 {
        if hit.x_cache != "STALE" {
            break;
        }
        tokio::task::yield_now().await;
        hit = client.get("/swr").await;
    }
    assert_eq!((hit.x_cache.as_str(), hit.body.as_str()), ("HIT", "swr"));
    let calls = origin.calls();
    assert!(
        (2..=3).contains(&calls),
        "one background revalidation (two at most, by the race above), not one per stale request: {calls}"
    );
    for n in 2..=calls {
        assert_eq!(
            origin.request(n)["if-none-match"],
            "\"s\"",
            "call {n} revalidates"
        );
    }
}

async fn cdn_cache_control_replaces_cache_control(transport: Transport) {
    let (origin, _clock, client) = setup_over(transport).await;
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
            "cdn",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60, &&&"),
            ],
            "invalid",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60, &&&"),
            ],
            "invalid",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "private"),
            ],
            "private",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "private"),
            ],
            "private",
        ));
    client.get("/cdn").await;
    assert_eq!(
        client.get("/cdn").await.x_cache,
        "HIT",
        "CDN-Cache-Control governs"
    );
    client.get("/invalid").await;
    assert_eq!(
        client.get("/invalid").await.x_cache,
        "MISS",
        "an invalid one is ignored"
    );
    client.get("/private").await;
    assert_eq!(client.get("/private").await.x_cache, "MISS");
    origin
        .then(answer(
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60"),
            ],
            "mine",
        ))
        .then(answer(
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60"),
            ],
            "mine",
        ));
    client.get("/mine").await;
    assert_eq!(
        client.get("/mine").await.x_cache,
        "MISS",
        "`private` in Cache-Control still means one user's"
    );
    assert_eq!(origin.calls(), 7);
}

async fn the_fail_closed_rules_still_hold(transport: Transport) {
    let (origin, _clock, client) = setup_over(transport).await;
    let fresh = [("cache-control", "public, max-age=60")];
    for body in ["alice", "bob", "cookie", "cookie", "ab", "ba"] {
        let headers: &[(&str, &str)] = if body == "cookie" {
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")]
        } else {
            &fresh
        };
        origin.then(answer(200, headers, body));
    }
    let alice = client
        .send("GET", "/me", &[("authorization", "Bearer alice")])
        .await;
    let bob = client
        .send("GET", "/me", &[("authorization", "Bearer bob")])
        .await;
    assert_eq!((alice.body.as_str(), bob.body.as_str()), ("alice", "bob"));
    assert_eq!(bob.x_cache, "BYPASS", "credentials bypass, `public` or not");
    client.get("/cookie").await;
    assert_eq!(client.get("/cookie").await.body, "cookie");
    assert_eq!(origin.calls(), 4, "Set-Cookie is never stored");
    assert_eq!(client.get("/q?a=1&b=2").await.body, "ab");
    assert_eq!(
        client.get("/q?b=2&a=1").await.body,
        "ba",
        "the query string as sent is the variant"
    );
    assert_eq!(client.get("/q?a=1&b=2").await.x_cache, "HIT");
}

/// An origin the layer cannot reach is an error of the inner service, not
/// a response: a stale copy answers, unless its headers forbid stale use.
#[tokio::test]
async fn an_unreachable_origin_is_answered_with_a_stale_copy_unless_forbidden() {
    use tower::{Layer, ServiceExt};

    #[derive(Debug)]
    struct Unreachable;

    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (clock, read) = Clock::new();
    let state = Arc::clone(&up);
    let origin = tower::service_fn(move |request: axum::http::Request<axum::body::Body>| {
        let up = state.load(Ordering::SeqCst);
        async move {
            if !up {
                return Err(Unreachable);
            }
            let cache_control = if request.uri().path() == "/strict" {
                "max-age=1, must-revalidate"
            } else {
                "max-age=1"
            };
            let mut response = axum::http::Response::new(axum::body::Body::from("kept"));
            response
                .headers_mut()
                .insert("cache-control", HeaderValue::from_static(cache_control));
            Ok(response)
        }
    });
    let service = ResponseCacheLayer::new(Cache::in_memory())
        .mode(CacheMode::Shared)
        .clock(read)
        .layer(origin);
    let get = |path: &'static str| {
        let service = service.clone();
        async move {
            let request = axum::http::Request::get(path)
                .header("host", "example.com")
                .body(axum::body::Body::empty())
                .unwrap();
            service.oneshot(request).await
        }
    };
    for path in ["/lax", "/strict"] {
        get(path).await.expect("the origin answers");
    }
    clock.advance_secs(5);
    up.store(false, Ordering::SeqCst);
    let stale = get("/lax").await.expect("a stale copy answers");
    assert_eq!(stale.headers()["x-cache"], "STALE");
    assert!(
        get("/strict").await.is_err(),
        "must-revalidate: never stale, the error goes on"
    );
}

/// A status the cache does not know is stored with explicit freshness;
/// `must-understand` keeps it out.
#[tokio::test]
async fn unknown_statuses_are_stored_only_without_must_understand() {
    let (origin, _clock, client) = setup().await;
    origin
        .then(answer(599, &[("cache-control", "max-age=60")], "odd"))
        .then(answer(
            599,
            &[("cache-control", "max-age=60, must-understand")],
            "odd",
        ))
        .then(answer(
            599,
            &[("cache-control", "max-age=60, must-understand")],
            "odd",
        ));
    client.get("/odd").await;
    assert_eq!(client.get("/odd").await.x_cache, "HIT");
    client.get("/strict").await;
    assert_eq!(client.get("/strict").await.x_cache, "MISS");
}
