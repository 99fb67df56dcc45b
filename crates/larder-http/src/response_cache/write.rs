//! A write and the invalidation it owes.
//!
//! A request that may change what a path answers — a write in application
//! mode (with [`invalidate_on_write`](super::ResponseCacheLayer::invalidate_on_write)),
//! any unsafe method in shared-cache mode, and a `GET` that tunnels one
//! through `X-HTTP-Method-Override` and kin — goes to the inner service
//! and then drops the stored responses of its path (in shared-cache mode,
//! of `Location` and `Content-Location` too).
//!
//! Both run in one task of their own: the origin may apply a write whose
//! caller has gone away (a client disconnect, an outer timeout), so the
//! invalidation must not go with the caller. The response reaches the
//! caller after the invalidation, so a client that reads after its write
//! reads what the write left.
//!
//! A write invalidates after a 2xx or 3xx (RFC 9111 §4.4) and — failing
//! closed — whenever its outcome is unknown: an error of the inner service
//! (no answer at all: a reset, a timeout after the request went out) and a
//! gateway's 502 or 504 (the upstream behind it may have applied it). A
//! 4xx, and a 500, 501 or 503 the origin gave itself, changed nothing.

use std::sync::Arc;

use http::{Method, Request, Response};
use tower_service::Service;

use super::CacheMode;
use super::body::ResponseBody;
use super::future::x_cache;
use super::key;
use super::service::invalidate_path;
use super::settings::Settings;

/// Whether `request` is a write this layer must follow with invalidation.
pub(crate) fn invalidates<B>(settings: &Settings, request: &Request<B>) -> bool {
    let method = request.method();
    match settings.mode {
        CacheMode::Shared => is_unsafe(method) || tunnels_unsafe_method(request.headers()),
        _ => {
            settings.invalidate_on_write
                && (is_write(method) || tunnels_unsafe_method(request.headers()))
        }
    }
}

/// Sends `request` to `inner` and invalidates what it may have changed,
/// in a task that outlives the caller.
pub(crate) fn write<S, ReqBody, ResBody>(
    settings: &Arc<Settings>,
    inner: &mut S,
    request: Request<ReqBody>,
) -> impl Future<Output = Result<Response<ResponseBody<ResBody>>, S::Error>> + Send + 'static
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    let (parts, body) = request.into_parts();
    let future = inner.call(Request::from_parts(parts.clone(), body));
    let settings = Arc::clone(settings);
    let task = tokio::spawn(async move {
        let outcome = future.await;
        let changed = match &outcome {
            Ok(response) => {
                let status = response.status();
                status.is_success()
                    || status.is_redirection()
                    || matches!(status.as_u16(), 502 | 504)
            }
            Err(_) => true,
        };
        if changed {
            let paths = match (&outcome, settings.mode) {
                (Ok(response), CacheMode::Shared) => {
                    super::shared::invalidated_paths(&parts, response.headers())
                }
                _ => vec![key::canonical_path(key::request_path(&parts))],
            };
            for path in paths {
                invalidate_path(&settings, &path).await;
            }
        }
        outcome
    });
    async move {
        match task.await {
            Ok(outcome) => {
                outcome.map(|response| x_cache(response.map(ResponseBody::inner), "BYPASS"))
            }
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutting down cancels a spawned task.
            Err(err) => panic!("larder-http: a write's task was cancelled: {err}"),
        }
    }
}

/// Shared-cache mode: every method but the safe ones invalidates (RFC
/// 9111 §4.4), unknown ones included.
fn is_unsafe(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// Application mode: the methods that write.
fn is_write(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// Whether a method-override header (which middleware lets a `GET` run
/// another method with) names anything but a safe method — or cannot be
/// read: what it does is unknown, so it counts as a write.
fn tunnels_unsafe_method(headers: &http::HeaderMap) -> bool {
    super::policy::METHOD_OVERRIDES.iter().any(|name| {
        headers.get_all(*name).iter().any(|value| {
            let method = value
                .to_str()
                .unwrap_or_default()
                .trim()
                .to_ascii_uppercase();
            !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE")
        })
    })
}
