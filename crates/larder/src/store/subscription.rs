use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Pings the server over a subscription's own connection.
type Pinger = Box<dyn Fn() -> BoxFuture<'static, crate::Result<()>> + Send + Sync>;

/// Messages published on one channel, as a [`Stream`] of payloads.
pub struct Subscription {
    channel: String,
    messages: BoxStream<'static, Bytes>,
    pinger: Option<Pinger>,
}

impl Subscription {
    pub(crate) fn new(channel: &str, messages: BoxStream<'static, Bytes>) -> Self {
        Self {
            channel: channel.to_owned(),
            messages,
            pinger: None,
        }
    }

    /// A subscription whose connection can be pinged with `pinger`.
    pub(crate) fn with_pinger(mut self, pinger: Pinger) -> Self {
        self.pinger = Some(pinger);
        self
    }

    /// Pings the server over the subscription's own connection: a
    /// subscription that stopped answering may be losing messages. Always
    /// answers at once for a subscription without a connection of its own
    /// (the in-process store's).
    pub fn ping(&self) -> BoxFuture<'static, crate::Result<()>> {
        match &self.pinger {
            Some(pinger) => pinger(),
            None => Box::pin(async { Ok(()) }),
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.messages.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}
