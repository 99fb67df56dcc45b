use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use http::Response;
use http::header::{HeaderName, HeaderValue};
use pin_project_lite::pin_project;

use super::body::ResponseBody;

pin_project! {
    /// The response future of [`ResponseCache`](super::ResponseCache).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        // The inner service answers alone (a bypassed request, or a write
        // with nothing to invalidate): its own future, no allocation.
        Inner {
            #[pin]
            future: F,
            label: &'static str,
        },
        // Through Larder's read path, or a write followed by invalidation.
        // Those are `async` state machines, whose types have no name: boxed.
        Cache {
            future: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's own future; its response labelled `X-Cache:
    /// {label}`.
    pub(crate) fn inner(future: F, label: &'static str) -> Self {
        Self {
            kind: Kind::Inner { future, label },
        }
    }

    /// A future that goes through the cache.
    pub(crate) fn cache(future: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>>) -> Self {
        Self {
            kind: Kind::Cache { future },
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Cache { .. } => "cache",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, label } => {
                let response = ready!(future.poll(cx))?.map(ResponseBody::inner);
                Poll::Ready(Ok(x_cache(response, label)))
            }
            KindProj::Cache { future } => future.as_mut().poll(cx),
        }
    }
}

/// Labels `response` with what the cache did (`X-Cache`).
pub(crate) fn x_cache<B>(mut response: Response<B>, value: &'static str) -> Response<B> {
    response.headers_mut().insert(
        HeaderName::from_static("x-cache"),
        HeaderValue::from_static(value),
    );
    response
}
