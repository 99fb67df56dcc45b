//! A caching reverse proxy built on [`ResponseCacheLayer`] in shared-cache
//! mode: every request goes to one upstream origin (method, path, query,
//! end-to-end headers and body forwarded as they came), and what the
//! origin's headers allow is cached by RFC 9111's rules.
//!
//! ```text
//! cargo run -p larder-http --example reverse_proxy -- \
//!     --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8000 [--redis redis://127.0.0.1:6379]
//! ```
//!
//! Without `--redis` the cache lives in the process (`Cache::in_memory`).
//! This is the proxy `scripts/cache-tests.sh` runs the HTTP caching
//! conformance suite (http-tests/cache-tests) against. Interim (1xx)
//! responses are not relayed: hyper's server does not send them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};
use tower::{Layer, ServiceExt};

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded either way.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The longest an upstream answer may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    listen: SocketAddr,
    upstream: String,
    redis: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?);
            }
            "--upstream" => upstream = Some(value()?.trim_end_matches('/').to_owned()),
            "--redis" => redis = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        upstream: upstream.ok_or("--upstream URL is required")?,
        redis,
    })
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("reverse_proxy: {err}");
            eprintln!("usage: reverse_proxy --upstream URL [--listen ADDR] [--redis URL]");
            std::process::exit(2);
        }
    };
    // A lease must outlive the slowest upstream answer it waits for, or
    // the answer is not stored (another request may have taken over).
    let builder = larder::Config::builder()
        .prefix("reverse-proxy")
        .lease_ttl(UPSTREAM_TIMEOUT);
    let builder = match &args.redis {
        Some(url) => builder.redis_url(url),
        None => builder.in_memory(),
    };
    let config = builder
        .build()
        .unwrap_or_else(|err| panic!("cache settings: {err}"));
    let cache = Cache::connect(config)
        .await
        .unwrap_or_else(|err| panic!("cache: {err}"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(UPSTREAM_TIMEOUT)
        // Idle connections are dropped well before a typical upstream's
        // keep-alive timeout (Node's is 5 s), so that a request is never
        // sent on a connection the upstream is closing at that moment.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let upstream = args.upstream.clone();
    let forward = tower::service_fn(move |request: Request<Body>| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move { forward(&client, &upstream, request).await }
    });
    // The cache sits right around the upstream call, so that an upstream
    // it cannot reach is an error, not a response: it may then answer with
    // a stale copy (RFC 9111 §4.2.4). Outside it, the error becomes a 502.
    let cached = ResponseCacheLayer::new(cache)
        .mode(CacheMode::Shared)
        .namespace("proxy")
        .layer(forward);
    let app = Router::new().fallback_service(tower::service_fn(move |request: Request<Body>| {
        let cached = cached.clone();
        async move {
            Ok::<_, Infallible>(match cached.oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(Unreachable(reason)) => failure(StatusCode::BAD_GATEWAY, &reason),
            })
        }
    }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .unwrap_or_else(|err| panic!("cannot listen on {}: {err}", args.listen));
    println!(
        "listening on http://{} (upstream {})",
        listener.local_addr().expect("bound"),
        args.upstream
    );
    axum::serve(listener, app).await.expect("the server runs");
}

/// The upstream could not be reached, or broke off its answer.
#[derive(Debug)]
struct Unreachable(String);

/// Sends `request` to the upstream and relays its answer.
async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request<Body>,
) -> Result<Response<Body>, Unreachable> {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => {
            return Ok(failure(
                StatusCode::BAD_REQUEST,
                &format!("request body: {err}"),
            ));
        }
    };
    let mut headers = end_to_end(&parts.headers);
    // The upstream's own authority goes out in `Host`.
    headers.remove(header::HOST);
    let answer = client
        .request(parts.method, format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|err| Unreachable(format!("upstream: {err}")))?;
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let body = answer
        .bytes()
        .await
        .map_err(|err| Unreachable(format!("upstream body: {err}")))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// `headers` without the hop-by-hop ones, nor those `Connection` names.
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
        if !HOP_BY_HOP.contains(name) && !listed.iter().any(|l| l == name.as_str()) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn failure(status: StatusCode, reason: &str) -> Response<Body> {
    eprintln!("reverse_proxy: {reason}");
    let mut response = Response::new(Body::from(reason.to_owned()));
    *response.status_mut() = status;
    response
}
