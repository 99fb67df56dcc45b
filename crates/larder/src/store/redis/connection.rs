//! One multiplexed connection to Redis, made and remade in the background.
//!
//! redis-rs drives a connection with a task on the runtime that made it. A
//! [`Home::Caller`] connection is made on the caller's runtime — the fast
//! path: request and driver share worker threads — and is remade on the
//! next caller's runtime if that one shuts down (a global cache used by
//! several `#[tokio::test]`s). A [`Home::Io`] connection lives on Larder's
//! I/O thread, for blocking callers, who may be blocking the very runtime a
//! caller-homed connection is driven by.
//!
//! Calls take the current connection without waiting for a lock; while there
//! is none they wait for the connection attempt under way (bounded by the
//! caller's deadline) or start one. A failed attempt is retried no sooner
//! than after a backoff, so a dead Redis sees few connection attempts however
//! many callers there are.
//!
//! The first failed attempt after a working connection (or at start-up) is
//! logged at WARN with its cause; later failures only at debug level, until
//! a connection is made again. Calls made while no connection can be made
//! fail with the last attempt's error as their source.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;

use super::cause::classify;
use crate::config::RedisUrl;
use crate::error::Cause;
use crate::runtime;
use crate::{Error, ErrorKind, Result};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where a connection's driver task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Home {
    /// The runtime of the caller that triggered the connection attempt (the
    /// I/O runtime if there is none).
    Caller,
    /// Larder's I/O runtime.
    Io,
}

pub(super) struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    home: Home,
    url: RedisUrl,
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// The connection and its generation.
    current: ArcSwapOption<(u64, MultiplexedConnection)>,
    generation: AtomicU64,
    connecting: AtomicBool,
    failures: AtomicU32,
    /// Why the last attempt failed; `None` once one succeeds.
    last_failure: ArcSwapOption<redis::RedisError>,
    /// Bumped after every connection attempt, so waiters wake.
    attempts: watch::Sender<u64>,
}

impl Connection {
    pub(super) fn new(
        home: Home,
        url: RedisUrl,
        client: redis::Client,
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(response_timeout);
        let shared = Arc::new(Shared {
            home,
            url,
            client,
            config,
            connect_timeout,
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            connecting: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            last_failure: ArcSwapOption::empty(),
            attempts: watch::Sender::new(0),
        });
        Shared::connect_in_background(&shared, Duration::ZERO);
        Self { shared }
    }

    /// The current connection and its generation. Without one: right after
    /// a healthy period, waits for the connection attempt (the caller bounds
    /// the wait with its deadline); while Redis keeps failing, fails at once
    /// and leaves one attempt scheduled after a backoff.
    pub(super) async fn get(&self) -> Result<(u64, MultiplexedConnection)> {
        let mut attempts = self.shared.attempts.subscribe();
        loop {
            if let Some(current) = self.shared.current.load().as_deref() {
                return Ok((current.0, current.1.clone()));
            }
            let failing = self.shared.failures.load(Ordering::Acquire) > 0;
            Shared::connect_in_background(&self.shared, self.shared.backoff());
            if failing {
                return Err(self.shared.not_connected());
            }
            if attempts.changed().await.is_err() {
                return Err(Error::new(ErrorKind::Store, "connection state lost"));
            }
        }
    }

    /// Drops connection `generation` if a command on it failed in a way that
    /// means the connection is gone, and says so; the next call reconnects.
    pub(super) fn on_error(&self, generation: u64, err: &redis::RedisError) -> bool {
        let gone = !err.is_timeout()
            && (err.is_unrecoverable_error() || err.is_io_error() || err.is_connection_dropped());
        if gone {
            self.forget(Some(generation));
        }
        gone
    }

    /// Drops the current connection (e.g. when the circuit breaker opens on
    /// a Redis that stopped answering); the next call reconnects.
    pub(super) fn reset(&self) {
        self.forget(None);
    }

    fn forget(&self, generation: Option<u64>) {
        let current = self.shared.current.load();
        // Only the connection that failed: another caller may already have
        // replaced it.
        let matches = current
            .as_deref()
            .is_some_and(|c| generation.is_none_or(|g| g == c.0));
        if matches {
            self.shared.current.compare_and_swap(&*current, None);
        }
    }
}

impl Shared {
    /// The error of a call made while no connection can be made: the last
    /// attempt's cause in words, and its error as the source.
    fn not_connected(&self) -> Error {
        let Some(last) = self.last_failure.load_full() else {
            return Error::new(
                ErrorKind::Store,
                format!(
                    "not connected to {}; reconnecting in the background",
                    self.url
                ),
            );
        };
        let cause = classify(&last);
        let kind = match cause {
            Cause::Timeout => ErrorKind::Timeout,
            _ => ErrorKind::Store,
        };
        Error::new(
            kind,
            format!(
                "cannot connect to Redis at {}: {}; reconnecting in the background",
                self.url,
                cause.describe()
            ),
        )
        .with_cause(cause)
        .with_source(redis::RedisError::clone(&last))
    }

    /// Connects, then checks with `PING` that the connection can be used:
    /// redis-rs authenticates only when the URL has a password, so a server
    /// that requires one says `NOAUTH` only to the first command.
    async fn open(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.connect_timeout, ping.exec_async(&mut connection)).await {
            Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut).into()),
            Ok(Err(err)) if classify(&err) == Cause::Auth || err.is_io_error() => Err(err),
            // Refused for another reason (an ACL user without PING): the
            // connection itself works.
            Ok(_) => Ok(connection),
        }
    }

    /// Remembers a failed attempt; the first after a working connection is
    /// logged at WARN with its cause.
    fn on_failure(&self, err: redis::RedisError) {
        let cause = classify(&err);
        let err = Arc::new(err);
        self.last_failure.store(Some(Arc::clone(&err)));
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        // The error texts of redis-rs and the server never hold the
        // password, and the URL's `Display` hides it.
        if failures == 1 {
            tracing::warn!(
                url = %self.url,
                cause = %cause.name(),
                error = %err,
                "larder: cannot connect to Redis: {}",
                cause.describe()
            );
        } else {
            tracing::debug!(
                url = %self.url,
                cause = %cause.name(),
                failures,
                error = %err,
                "larder: still cannot connect to Redis"
            );
        }
    }

    fn backoff(&self) -> Duration {
        match self.failures.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            n => MIN_BACKOFF
                .saturating_mul(1 << n.min(8).saturating_sub(1))
                .min(MAX_BACKOFF),
        }
    }

    /// Starts one connection attempt on the I/O runtime after `delay`,
    /// unless one is under way.
    fn connect_in_background(shared: &Arc<Shared>, delay: Duration) {
        if shared
            .connecting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let shared = Arc::clone(shared);
        let runtime = match (shared.home, tokio::runtime::Handle::try_current()) {
            (Home::Caller, Ok(current)) => current,
            _ => runtime::io().clone(),
        };
        // Ends the attempt however the task ends: done, or dropped with its
        // runtime before or during the attempt (otherwise no attempt would
        // ever start again). Made out here so that a task dropped before its
        // first poll drops it too.
        let attempt = AttemptEnd(Arc::clone(&shared));
        runtime.spawn(async move {
            let _attempt = attempt;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match shared.open().await {
                Ok(connection) => {
                    let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
                    shared
                        .current
                        .store(Some(Arc::new((generation, connection))));
                    shared.last_failure.store(None);
                    if shared.failures.swap(0, Ordering::AcqRel) > 0 {
                        tracing::info!(url = %shared.url, "larder: reconnected to Redis");
                    }
                }
                Err(err) => shared.on_failure(err),
            }
        });
    }
}

/// Marks the end of a connection attempt when dropped.
struct AttemptEnd(Arc<Shared>);

impl Drop for AttemptEnd {
    fn drop(&mut self) {
        self.0.connecting.store(false, Ordering::Release);
        self.0.attempts.send_modify(|n| *n += 1);
    }
}
