//! The proxy itself: a [`Router`] that forwards every request to one
//! upstream and caches what the upstream's headers allow
//! ([`ResponseCacheLayer`] in shared-cache mode).
//!
//! ```text
//! let app = proxy::proxy("http://127.0.0.1:8000", Some("redis://127.0.0.1:6379")).await?;
//! axum::serve(listener, app).await?;
//! ```
//!
//! - Bodies stream both ways: a request body goes to the upstream as it
//!   arrives, and an answer reaches the client as the upstream sends it.
//!   Only an answer the cache may store is read first, and never more
//!   than the layer's `max_body_bytes` (1 MiB) of it: an answer declared
//!   longer is not read ahead at all; a chunked one is stored if it ends
//!   within the limit, and streams on from there if it does not.
//! - Each upstream has its own cache namespace, so proxies for different
//!   upstreams can share one Redis without answering with each other's
//!   responses.
//! - A failed upstream call is answered `502 Bad Gateway` with a generic
//!   body; what failed (and the upstream's address) goes to the log only.
//!
//! The tests include this file (`tests/shared_review2.rs`), so that they
//! check the example's own code.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use futures::TryStreamExt;
use http_body::Body as _;
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

/// The longest connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest the upstream may stay silent: from the request until its
/// answer's head, and then between two reads of the answer's body. Not a
/// limit on the whole answer (what a total timeout would be): an event
/// stream or a large download lasts as long as the upstream keeps sending.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request computing an answer holds the key's lease. The
/// head comes within [`READ_TIMEOUT`]; an answer the cache stores is at
/// most `max_body_bytes` (1 MiB), which a live upstream sends well within
/// the rest. An answer slower than that is still relayed, but not stored
/// (another request may have taken the lease over).
const LEASE_TTL: Duration = READ_TIMEOUT.saturating_mul(2);

/// A caching proxy in front of `upstream` (an `http` or `https` URL,
/// optionally with a path prefix), caching in Redis at `redis`, or in the
/// process when it is `None`.
pub async fn proxy(upstream: &str, redis: Option<&str>) -> Result<Router, SetupError> {
    let upstream = Upstream::parse(upstream)?;
    let builder = larder::Config::builder()
        .prefix("reverse-proxy")
        .lease_ttl(LEASE_TTL);
    let builder = match redis {
        Some(url) => builder.redis_url(url),
        None => builder.in_memory(),
    };
    let cache = Cache::connect(builder.build().map_err(SetupError::Cache)?)
        .await
        .map_err(SetupError::Cache)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        // Idle connections are dropped well before a typical upstream's
        // keep-alive timeout (Node's is 5 s), so that a request is never
        // sent on a connection the upstream is closing at that moment.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .map_err(SetupError::Client)?;
    let namespace = upstream.namespace();
    let forward = tower::service_fn(move |request: Request<Body>| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move { forward(&client, &upstream, request).await }
    });
    // The cache sits right around the upstream call, so that an upstream
    // it cannot reach is an error, not a response: it may then answer with
    // a stale copy (RFC 9111 §4.2.4). Outside it, the error becomes a 502.
    let cached = ResponseCacheLayer::new(cache)
        .mode(CacheMode::Shared)
        .namespace(namespace)
        .layer(forward);
    Ok(
        Router::new().fallback_service(tower::service_fn(move |request: Request<Body>| {
            let cached = cached.clone();
            async move {
                Ok::<_, Infallible>(match cached.oneshot(request).await {
                    Ok(response) => response.into_response(),
                    Err(failure) => failure.into_response(),
                })
            }
        })),
    )
}

/// Why the proxy could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// The upstream URL is not one the proxy can forward to.
    Upstream(String),
    /// The cache's settings, or its store, failed.
    Cache(larder::Error),
    /// The HTTP client could not be built.
    Client(reqwest::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Upstream(reason) => write!(f, "--upstream: {reason}"),
            SetupError::Cache(err) => write!(f, "cache: {err}"),
            SetupError::Client(err) => write!(f, "HTTP client: {err}"),
        }
    }
}

impl StdError for SetupError {}

/// The origin every request goes to, normalised: scheme and host in
/// lowercase, no default port, no trailing `/` (`HTTP://Api.Example:80/`
/// is `http://api.example`).
#[derive(Clone, Debug)]
struct Upstream {
    base: String,
}

impl Upstream {
    fn parse(url: &str) -> Result<Self, SetupError> {
        let refuse = |reason: &str| Err(SetupError::Upstream(format!("{url:?} {reason}")));
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(err) => return refuse(&format!("is not a URL ({err})")),
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return refuse("is not an http or https URL");
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // They would be sent as `Authorization` and written to the
            // log; nor does this message repeat them.
            return Err(SetupError::Upstream(
                "the URL carries credentials (user:password@); the upstream URL may not".into(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return refuse("has a query or fragment; the request's own is appended to the URL");
        }
        Ok(Upstream {
            base: parsed.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// Where `target` (a request's path and query) is at the upstream.
    fn url(&self, target: &str) -> String {
        format!("{}{target}", self.base)
    }

    /// The cache namespace of this upstream's responses: `proxy-` and the
    /// BLAKE3 hash of the normalised URL, in hex. One namespace per
    /// upstream, so that proxies in front of different upstreams sharing
    /// a Redis neither read nor invalidate each other's responses (their
    /// keys otherwise agree: same path, same `Host`).
    fn namespace(&self) -> String {
        format!("proxy-{}", blake3::hash(self.base.as_bytes()).to_hex())
    }
}

/// Sends `request` to the upstream and relays its answer, streaming the
/// bodies both ways.
async fn forward(
    client: &reqwest::Client,
    upstream: &Upstream,
    request: Request<Body>,
) -> Result<Response<Body>, Failure> {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut headers = end_to_end(&parts.headers);
    // The upstream's own authority goes out in `Host`.
    headers.remove(header::HOST);
    let mut outgoing = client
        .request(parts.method, upstream.url(target))
        .headers(headers);
    // No body stays no body: a stream, even an empty one, would go out
    // chunked. A forwarded `Content-Length` sets the length of the rest.
    if !body.is_end_stream() {
        let chunks = TryStreamExt::map_err(body.into_data_stream(), RequestBodyBroke);
        outgoing = outgoing.body(reqwest::Body::wrap_stream(chunks));
    }
    let answer = outgoing.send().await.map_err(Failure::of)?;
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let body = BodyExt::map_err(axum::http::Response::from(answer).into_body(), |err| {
        // The client sees its answer cut off; why is logged here.
        tracing::warn!(error = %causes(&err), "reverse_proxy: the upstream broke off its answer");
        err
    });
    let mut response = Response::new(Body::new(body));
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

/// The client's request body failed while it was being forwarded.
#[derive(Debug)]
struct RequestBodyBroke(axum::Error);

impl fmt::Display for RequestBodyBroke {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body broke off: {}", self.0)
    }
}

impl StdError for RequestBodyBroke {}

/// Why a request got no answer from the upstream.
#[derive(Debug)]
enum Failure {
    /// The upstream could not be reached, timed out, or broke off before
    /// its answer's head: 502.
    Upstream(reqwest::Error),
    /// The client's own request body broke off: 400.
    RequestBody(reqwest::Error),
}

impl Failure {
    fn of(err: reqwest::Error) -> Self {
        let mut cause: Option<&(dyn StdError + 'static)> = Some(&err);
        let mut by_request_body = false;
        while let Some(current) = cause {
            by_request_body |= current.is::<RequestBodyBroke>();
            cause = current.source();
        }
        if by_request_body {
            Failure::RequestBody(err)
        } else {
            Failure::Upstream(err)
        }
    }
}

impl IntoResponse for Failure {
    /// A generic answer: the details (the upstream's address among them)
    /// are for the log, not for whoever made the upstream fail.
    fn into_response(self) -> axum::response::Response {
        let (status, text) = match &self {
            Failure::Upstream(err) => {
                tracing::warn!(error = %causes(err), "reverse_proxy: the upstream call failed; answering 502");
                (StatusCode::BAD_GATEWAY, "bad gateway\n")
            }
            Failure::RequestBody(err) => {
                tracing::warn!(error = %causes(err), "reverse_proxy: the request body failed; answering 400");
                (StatusCode::BAD_REQUEST, "bad request\n")
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// `err` and its causes, `: `-separated (reqwest's own text names only
/// the URL; the reason, such as "connection refused", is a cause).
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
