//! A shared cache fails closed: every input a handler can read is in the
//! key or the request bypasses, and what cannot be parsed is not stored.
//! Regressions from the third review, each a failing test first: a `Host`
//! that disagrees with the request target (absolute-form, HTTP/2
//! `:authority`), several `Host`s, the target's scheme; `Cache-Control`
//! read kindly (`private; max-age=60` stored), `Pragma`, `Age`, `Expires`;
//! a GET's body; dot segments and empty segments; credential headers other
//! than `Authorization` and `Cookie`; unkeyed forwarding headers; a
//! request's `Cache-Control: no-store`. Each runs through `oneshot` and
//! again over a real socket (HTTP/2 ones over HTTP/2).

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Body, Calls, Client, Transport};
use larder::{Cache, Config};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;

both_transports!(
    a_host_the_key_does_not_see_cannot_poison,
    forwarding_headers_are_keyed,
    forwarding_headers_added_on_the_layer_are_keyed,
    unparseable_or_private_cache_headers_are_not_stored,
    well_formed_cache_headers_are_stored,
    a_get_with_a_body_bypasses,
    dot_and_empty_segments_bypass_and_are_invalidated,
    credential_headers_bypass,
    credential_headers_are_configurable,
    credential_headers_bypass_an_identity_route_without_identity,
    a_request_saying_no_store_stores_nothing,
);

/// Everything a handler may build links from: the target (scheme and
/// authority included), every `Host`, and `headers`' values.
fn links(uri: &Uri, headers: &HeaderMap, names: &[&str]) -> String {
    let hosts: Vec<_> = headers.get_all("host").iter().collect();
    let mut body = format!("uri={uri} host={hosts:?}");
    for name in names {
        for value in headers.get_all(*name) {
            body.push_str(&format!(" {name}={value:?}"));
        }
    }
    body
}

/// `/page` answering [`links`] over `names`, behind `layer`.
fn links_app(calls: &Calls, layer: ResponseCacheLayer, names: &'static [&'static str]) -> Router {
    Router::new()
        .route(
            "/page",
            get(
                move |State(calls): State<Calls>, uri: Uri, headers: HeaderMap| async move {
                    calls.bump();
                    links(&uri, &headers, names)
                },
            ),
        )
        .layer(layer)
        .with_state(calls.clone())
}

/// An attacker's request first, then an ordinary visitor's: the visitor
/// must get the body built for it, not the attacker's.
async fn attack_then_visit(
    transport: Transport,
    layer: ResponseCacheLayer,
    names: &'static [&'static str],
    attack: (&str, &[(&str, &str)]),
    visit: (&str, &[(&str, &str)]),
) {
    let calls = Calls::default();
    let client = Client::new(links_app(&calls, layer, names), transport).await;
    let attacker = client.send("GET", attack.0, attack.1).await;
    let visitor = client.send("GET", visit.0, visit.1).await;
    assert_eq!(visitor.x_cache, "MISS", "{attack:?} poisoned {visit:?}");
    assert_ne!(visitor.body, attacker.body, "{attack:?}");
    assert_eq!(calls.get(), 2, "{attack:?}");
    let again = client.send("GET", visit.0, visit.1).await;
    assert_eq!(
        (again.x_cache.as_str(), again.body),
        ("HIT", visitor.body),
        "the visitor's page is still cached"
    );
}

/// An absolute-form target is keyed on its authority while a handler (as
/// axum-extra's `Host` does) reads the `Host` header; and the target's
/// scheme and a second `Host` were not keyed at all.
async fn a_host_the_key_does_not_see_cannot_poison(transport: Transport) {
    let visit: (&str, &[(&str, &str)]) = ("/page", &[("host", "shop.example")]);
    let absolute = "http://shop.example/page";
    for attack in [
        (absolute, &[("host", "evil.example")][..]),
        (absolute, &[("host", "shop.example:8080")]),
        (absolute, &[("host", "shop.example.")]),
        (absolute, &[("host", "SHOP.example")]),
        (absolute, &[("host", "shop.example")]), // the scheme
        (
            "/page",
            &[("host", "shop.example"), ("host", "evil.example")],
        ),
    ] {
        let layer = ResponseCacheLayer::new(Cache::in_memory());
        attack_then_visit(transport, layer, &[], attack, visit).await;
    }
}

/// HTTP/2: `:authority` and a `host` header that says something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_and_a_disagreeing_host_cannot_poison() {
    let layer = ResponseCacheLayer::new(Cache::in_memory());
    let page = "http://shop.example/page";
    attack_then_visit(
        Transport::Http2,
        layer,
        &[],
        (page, &[("host", "evil.example")]),
        (page, &[]),
    )
    .await;
}

/// Host poisoning, a credential and dot segments again, with a private
/// redis-server behind the layer: invalidation goes through `SCAN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_redis() {
    let server = RedisServer::spawn();
    let config = Config::builder().redis_url(server.url()).build().unwrap();
    let cache = Cache::connect(config).await.unwrap();
    for transport in [Transport::Oneshot, Transport::Socket] {
        let layer = ResponseCacheLayer::new(cache.clone()).namespace(format!("host-{transport:?}"));
        attack_then_visit(
            transport,
            layer,
            &[],
            ("http://shop.example/page", &[("host", "evil.example")]),
            ("/page", &[("host", "shop.example")]),
        )
        .await;
        let layer = ResponseCacheLayer::new(cache.clone()).namespace(format!("key-{transport:?}"));
        alice_then_bob(transport, layer, "x-api-key").await;
        let files = format!("files-{transport:?}");
        dot_and_empty_segments_in(cache.clone(), &files, transport).await;
    }
}

/// Request headers with which a proxy tells the app the host, scheme,
/// port or path the client asked for.
const FORWARDING: &[&str] = &[
    "x-forwarded-host",
    "x-forwarded-server",
    "x-host",
    "x-http-host-override",
    "x-original-host",
    "x-forwarded-proto",
    "x-forwarded-protocol",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-envoy-original-path",
    "forwarded",
    "via",
];

async fn forwarding_headers_are_keyed(transport: Transport) {
    for name in FORWARDING {
        let layer = ResponseCacheLayer::new(Cache::in_memory());
        let attack: &[(&str, &str)] = &[(name, "evil.example")];
        attack_then_visit(
            transport,
            layer,
            FORWARDING,
            ("/page", attack),
            ("/page", &[]),
        )
        .await;
    }
}

async fn forwarding_headers_added_on_the_layer_are_keyed(transport: Transport) {
    let layer = ResponseCacheLayer::new(Cache::in_memory())
        .add_forwarding_headers([HeaderName::from_static("x-my-proxy-host")]);
    let attack: &[(&str, &str)] = &[("x-my-proxy-host", "evil.example")];
    let names = &["x-my-proxy-host"];
    attack_then_visit(transport, layer, names, ("/page", attack), ("/page", &[])).await;
}

/// `/r` answering with the response headers named in the request's
/// `x-reply` headers (`name:value` each).
fn replying_app(calls: &Calls) -> Router {
    async fn reply(State(calls): State<Calls>, headers: HeaderMap) -> Response {
        calls.bump();
        let mut response = "body".into_response();
        for line in headers.get_all("x-reply") {
            let (name, value) = line.to_str().unwrap().split_once(':').unwrap();
            response.headers_mut().append(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        response
    }
    Router::new()
        .route("/r", get(reply))
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
        .with_state(calls.clone())
}

/// Asks `/r` twice for a response with `headers`; whether it was stored.
async fn stored(transport: Transport, headers: &[&str]) -> bool {
    let calls = Calls::default();
    let client = Client::new(replying_app(&calls), transport).await;
    let request: Vec<_> = headers.iter().map(|h| ("x-reply", *h)).collect();
    client.send("GET", "/r", &request).await;
    let second = client.send("GET", "/r", &request).await;
    assert_eq!(calls.get() == 1, second.x_cache == "HIT", "{headers:?}");
    second.x_cache == "HIT"
}

async fn unparseable_or_private_cache_headers_are_not_stored(transport: Transport) {
    for headers in [
        &["cache-control:private; max-age=60"][..],
        &["cache-control:no-store; no-cache"],
        &["cache-control:private max-age=60"],
        &["cache-control:public\tprivate"],
        &["cache-control:public;private"],
        &["cache-control:max-age=60 private"],
        &["cache-control:max-age = 60"],
        &["cache-control:max-age=60, community=\"private\""],
        &["cache-control:max-age=60, x=no-store"],
        &["cache-control:max-age=60, max-age=3600"],
        &["cache-control:max-age"],
        &["cache-control:max-age=-1"],
        &["cache-control:max-age=6e1"],
        &["cache-control:max-age=\"60"],
        &["cache-control:public, max-age=60", "cache-control:private"],
        &["cache-control:max-age=60", "pragma:no-cache"],
        &["cache-control:max-age=60", "pragma:No-Cache, x"],
        &["cache-control:max-age=60", "pragma:x; no-cache"],
        &["cache-control:max-age=60", "age:soon"],
        &["cache-control:max-age=60", "age:-5"],
        &["cache-control:max-age=60", "age:30", "age:3600"],
        &[
            "expires:Wed, 21 Oct 2099 07:28:00 GMT",
            "expires:Thu, 01 Jan 1970 00:00:00 GMT",
        ],
        &["expires:Wed, 21 Oct 2099 07:28:00 GMT", "date:yesterday"],
        &["vary:accept-language;q=1"],
        &["vary:\"host\""],
    ] {
        assert!(!stored(transport, headers).await, "{headers:?} was stored");
    }
}

/// The strict parser still stores what RFC 9110 lists allow.
async fn well_formed_cache_headers_are_stored(transport: Transport) {
    for headers in [
        &["cache-control:max-age=60 , public"][..],
        &["cache-control:Max-Age=\"60\""],
        &["cache-control:public,,\tmax-age=60"],
        &["cache-control:stale-while-revalidate=30, max-age=60, immutable"],
        &["cache-control:x=\"a, b; c\", max-age=60"],
        &["cache-control:max-age=60", "pragma:x-tracing"],
        &["cache-control:max-age=60", "age:30"],
        &["vary:host, x-forwarded-host"],
    ] {
        assert!(
            stored(transport, headers).await,
            "{headers:?} was not stored"
        );
    }
}

/// `/echo` answering the request body it was sent.
fn echo_app(calls: &Calls) -> Router {
    Router::new()
        .route(
            "/echo",
            get(|State(calls): State<Calls>, body: String| async move {
                calls.bump();
                format!("body={body:?}")
            }),
        )
        .layer(ResponseCacheLayer::new(Cache::in_memory()))
        .with_state(calls.clone())
}

async fn a_get_with_a_body_bypasses(transport: Transport) {
    let mut attacks = vec![
        ("GET", Body::Sized("<script>"), &[][..]),
        ("GET", Body::Streamed("<script>"), &[]),
        ("HEAD", Body::Sized("<script>"), &[]),
    ];
    if let Transport::Oneshot = transport {
        // A socket's server reads or refuses these before the layer sees them.
        attacks.extend([
            ("GET", Body::Empty, &[("content-length", "8")][..]),
            ("GET", Body::Empty, &[("content-length", "x")]),
            ("GET", Body::Empty, &[("transfer-encoding", "chunked")]),
        ]);
    }
    for (method, body, headers) in attacks {
        let calls = Calls::default();
        let client = Client::new(echo_app(&calls), transport).await;
        let attacker = client.send_with_body(method, "/echo", headers, body).await;
        assert_eq!(attacker.x_cache, "BYPASS", "{method} {body:?} {headers:?}");
        let visitor = client.get("/echo").await;
        assert_eq!(
            (visitor.x_cache.as_str(), visitor.body.as_str()),
            ("MISS", "body=\"\""),
            "{method} {body:?} {headers:?}"
        );
        assert_eq!(calls.get(), 2);
    }
    // An empty body declared as such is no body.
    let calls = Calls::default();
    let client = Client::new(echo_app(&calls), transport).await;
    client
        .send("GET", "/echo", &[("content-length", "0")])
        .await;
    assert_eq!(client.get("/echo").await.x_cache, "HIT");
}

/// `/files/{*path}` answering `{path} v{version}` with the path resolved
/// as a file server resolves it (`.`, `..` and empty segments), behind a
/// layer that invalidates on writes.
fn files_app(cache: Cache, namespace: &str) -> (Router, ResponseCacheLayer, Arc<AtomicUsize>) {
    fn resolve(path: &str) -> String {
        let mut kept: Vec<&str> = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    kept.pop();
                }
                other => kept.push(other),
            }
        }
        kept.join("/")
    }
    let version = Arc::new(AtomicUsize::new(1));
    let layer = ResponseCacheLayer::new(cache)
        .namespace(namespace)
        .invalidate_on_write(true);
    let app = Router::new()
        .route(
            "/files/{*path}",
            get(
                |State(version): State<Arc<AtomicUsize>>, Path(path): Path<String>| async move {
                    format!("{} v{}", resolve(&path), version.load(Ordering::SeqCst))
                },
            )
            .put(|| async { "ok" }),
        )
        .layer(layer.clone())
        .with_state(version.clone());
    (app, layer, version)
}

const DOT_SPELLINGS: [&str; 11] = [
    "/files/x/../report",
    "/files//report",
    "/files/./report",
    "/files/x/%2e%2e/report",
    "/files/x/%2E%2E/report",
    "/files/x/.%2E/report",
    "/files/%2e/report",
    "/files/report/.",
    "/files/report/x/..",
    "/files/report/x/%2e%2E",
    "/files/report/x/.%2e/",
];

async fn dot_and_empty_segments_bypass_and_are_invalidated(transport: Transport) {
    dot_and_empty_segments_in(Cache::in_memory(), "files", transport).await;
}

async fn dot_and_empty_segments_in(cache: Cache, namespace: &str, transport: Transport) {
    let (app, layer, version) = files_app(cache, namespace);
    let client = Client::new(app, transport).await;
    for spelling in DOT_SPELLINGS {
        let reply = client.get(spelling).await;
        assert_eq!(reply.body.split(' ').next(), Some("report"), "{spelling}");
        assert_eq!(reply.x_cache, "BYPASS", "{spelling} was stored");
    }
    client.get("/files/report").await;
    assert_eq!(client.get("/files/report").await.x_cache, "HIT");
    version.store(2, Ordering::SeqCst);
    assert_eq!(
        layer.invalidate_path("/files/x/../report").await.unwrap(),
        1,
        "any spelling names the stored path"
    );
    assert_eq!(client.get("/files/report").await.body, "report v2");
    version.store(3, Ordering::SeqCst);
    let put = client.send("PUT", "/files/x/%2e%2e//report", &[]).await;
    assert_eq!(put.status, 200);
    assert_eq!(client.get("/files/report").await.body, "report v3");
}

/// A handler that answers the profile of whoever a credential header names.
fn profile_app(calls: &Calls, layer: ResponseCacheLayer, name: &'static str) -> Router {
    Router::new()
        .route(
            "/profile",
            get(
                move |State(calls): State<Calls>, headers: HeaderMap| async move {
                    calls.bump();
                    let user = headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                    format!("profile of {user:?}")
                },
            ),
        )
        .layer(layer)
        .with_state(calls.clone())
}

/// The credential headers every layer knows by default.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-session-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-functions-key",
    "private-token",
    "x-vault-token",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-access-token",
    "x-amzn-oidc-data",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    "x-goog-iap-jwt-assertion",
    "x-goog-authenticated-user-email",
    "cf-access-jwt-assertion",
    "remote-user",
    "x-remote-user",
];

/// Alice, then Bob: Bob must get his own profile, never Alice's.
async fn alice_then_bob(transport: Transport, layer: ResponseCacheLayer, name: &'static str) {
    let calls = Calls::default();
    let client = Client::new(profile_app(&calls, layer, name), transport).await;
    let alice = client.send("GET", "/profile", &[(name, "alice")]).await;
    assert_eq!(alice.x_cache, "BYPASS", "{name}");
    let bob = client.send("GET", "/profile", &[(name, "bob")]).await;
    assert_eq!(bob.body, "profile of Some(\"bob\")", "{name}");
    assert_eq!(calls.get(), 2, "{name}");
}

async fn credential_headers_bypass(transport: Transport) {
    for name in CREDENTIALS {
        alice_then_bob(transport, ResponseCacheLayer::new(Cache::in_memory()), name).await;
    }
}

async fn credential_headers_are_configurable(transport: Transport) {
    let added = ResponseCacheLayer::new(Cache::in_memory())
        .add_credential_headers([HeaderName::from_static("x-tenant-secret")]);
    alice_then_bob(transport, added, "x-tenant-secret").await;
    let replaced = ResponseCacheLayer::new(Cache::in_memory())
        .credential_headers([HeaderName::from_static("x-session")]);
    alice_then_bob(transport, replaced.clone(), "x-session").await;
    // Replaced, not added to: `x-api-key` is now an ordinary header.
    let calls = Calls::default();
    let client = Client::new(profile_app(&calls, replaced, "x-api-key"), transport).await;
    let reply = client.send("GET", "/profile", &[("x-api-key", "k")]).await;
    assert_eq!(reply.x_cache, "MISS");
}

/// On a route keyed on the identity, a credential the authentication
/// middleware did not turn into one bypasses.
async fn credential_headers_bypass_an_identity_route_without_identity(transport: Transport) {
    #[derive(Clone)]
    struct User(String);
    for name in CREDENTIALS {
        let layer = ResponseCacheLayer::new(Cache::in_memory())
            .vary_on(|parts| parts.extensions.get::<User>().map(|u| u.0.clone()));
        alice_then_bob(transport, layer, name).await;
    }
}

async fn a_request_saying_no_store_stores_nothing(transport: Transport) {
    for no_store in [
        "no-store",
        "No-Store",
        "max-age=0, no-store",
        "no-store=\"x\"",
        "no-cache; no-store",
    ] {
        let calls = Calls::default();
        let app = links_app(&calls, ResponseCacheLayer::new(Cache::in_memory()), &[]);
        let client = Client::new(app, transport).await;
        let first = client
            .send("GET", "/page", &[("cache-control", no_store)])
            .await;
        assert_eq!(first.x_cache, "MISS", "{no_store}");
        assert_eq!(client.get("/page").await.x_cache, "MISS", "{no_store}");
        // A stored response may still answer it.
        let hit = client
            .send("GET", "/page", &[("cache-control", no_store)])
            .await;
        assert_eq!(hit.x_cache, "HIT", "{no_store}");
        assert_eq!(calls.get(), 2, "{no_store}");
    }
}
