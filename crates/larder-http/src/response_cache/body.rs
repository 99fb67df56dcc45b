use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from the cache layer: a stored body, or the
    /// inner service's own (streamed through untouched when not stored).
    #[project = ResponseBodyProj]
    #[derive(Debug)]
    #[allow(missing_docs)] // the fields are described on their variants
    pub enum ResponseBody<B> {
        /// A stored (or just buffered) body: `data` is what is left to send.
        Cached { data: Option<Bytes> },
        /// The inner service's body.
        Inner { #[pin] body: B },
        /// The inner service's body after the layer read some of it ahead
        /// (found too long to store): `data` is that part, if not yet sent.
        Replayed { data: Option<Bytes>, body: Pin<Box<B>> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn cached(data: Bytes) -> Self {
        ResponseBody::Cached {
            data: (!data.is_empty()).then_some(data),
        }
    }

    pub(crate) fn empty() -> Self {
        ResponseBody::Cached { data: None }
    }

    pub(crate) fn inner(body: B) -> Self {
        ResponseBody::Inner { body }
    }

    /// `read` (what was read ahead of `rest`), then `rest`.
    pub(crate) fn replayed(read: Bytes, rest: Pin<Box<B>>) -> Self {
        ResponseBody::Replayed {
            data: (!read.is_empty()).then_some(read),
            body: rest,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ResponseBodyProj::Cached { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
            ResponseBodyProj::Inner { body } => body.poll_frame(cx),
            ResponseBodyProj::Replayed { data, body } => match data.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => body.as_mut().poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Cached { data } => data.is_none(),
            ResponseBody::Inner { body } => body.is_end_stream(),
            ResponseBody::Replayed { data, body } => data.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Cached { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Inner { body } => body.size_hint(),
            ResponseBody::Replayed { data, body } => {
                let read = data.as_ref().map_or(0, |d| d.len() as u64);
                let rest = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}
