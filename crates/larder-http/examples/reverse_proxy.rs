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

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};

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
        .build()
        .expect("an HTTP client");
    let upstream = args.upstream.clone();
    let forward = tower::service_fn(move |request: Request<Body>| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move { Ok::<_, std::convert::Infallible>(forward(&client, &upstream, request).await) }
    });
    let app = Router::new().fallback_service(forward).layer(
        ResponseCacheLayer::new(cache)
            .mode(CacheMode::Shared)
            .namespace("proxy"),
    );
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

/// Sends `request` to the upstream and relays its answer; a 502 when the
/// upstream cannot be reached.
async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request<Body>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return failure(StatusCode::BAD_REQUEST, &format!("request body: {err}")),
    };
    let mut headers = end_to_end(&parts.headers);
    // The upstream's own authority goes out in `Host`.
    headers.remove(header::HOST);
    let sent = client
        .request(parts.method, format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(err) => return failure(StatusCode::BAD_GATEWAY, &format!("upstream: {err}")),
    };
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(err) => return failure(StatusCode::BAD_GATEWAY, &format!("upstream body: {err}")),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
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
