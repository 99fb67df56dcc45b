//! Reading the body of a response that may be stored, never holding more
//! than the layer's `max_body_bytes` of it: a body declared longer is not
//! read at all; one of unknown length is read ahead (in shared-cache mode)
//! until it ends or passes the limit, and then passed on with what was
//! read in front of the rest.

use std::fmt;

use bytes::Bytes;
use http::header;
use http_body::Body;

use super::body::ResponseBody;

/// What became of a storable response's body.
pub(crate) enum Read<B> {
    /// All of it, within the limit: it may be stored.
    Whole(Bytes),
    /// Longer than the limit (declared, or found while reading ahead): it
    /// is passed on as it streams, and not stored.
    TooLong(ResponseBody<B>),
    /// It broke, or was longer or shorter than it declared: not stored.
    Broken(String),
}

/// Reads `body` (of a response with `headers`) if it fits in `limit`
/// bytes. A body of unknown length is read ahead only if `read_ahead`;
/// otherwise it passes on untouched, like one declared too long.
pub(crate) async fn within_limit<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: u64,
    read_ahead: bool,
) -> Read<B>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    match declared_length(headers, &body) {
        Some(declared) if declared <= limit => match buffer(body, declared).await {
            Ok(bytes) => Read::Whole(bytes),
            Err(reason) => Read::Broken(reason),
        },
        None if read_ahead => self::read_ahead(body, limit).await,
        _ => Read::TooLong(ResponseBody::inner(body)),
    }
}

/// A body's length, from `Content-Length` or its size hint.
pub(crate) fn declared_length<B: Body>(headers: &http::HeaderMap, body: &B) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(body.size_hint().exact())
}

/// Reads a body that declared `declared` bytes, never holding more: a body
/// longer or shorter than it declared is broken (its `Content-Length`
/// lies; the server would abort it) and is not stored.
pub(crate) async fn buffer<B>(body: B, declared: u64) -> Result<Bytes, String>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|err| format!("the body failed: {err}"))?;
        // Trailers are not stored.
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if len > declared {
                return Err(format!(
                    "the body is longer than the {declared} bytes it declared"
                ));
            }
            chunks.push(data);
        }
    }
    if len < declared {
        return Err(format!(
            "the body ended after {len} of the {declared} bytes it declared"
        ));
    }
    Ok(concat(chunks))
}

/// Reads a body of unknown length until it ends within `limit` bytes
/// (whole), or until it has passed the limit: then what was read goes in
/// front of the rest, unread. Holds at most `limit` bytes and one frame.
async fn read_ahead<B>(body: B, limit: u64) -> Read<B>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let mut body = Box::pin(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => return Read::Broken(format!("the body failed: {err}")),
        };
        // Trailers are not stored.
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            chunks.push(data);
            if len > limit {
                return Read::TooLong(ResponseBody::replayed(concat(chunks), body));
            }
        }
    }
    Read::Whole(concat(chunks))
}

fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    }
}
