//! [`ChangeFeed`]: the running feed's handle — wait until it has caught up,
//! read its counters, stop it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use larder::Cache;
use sqlx::PgPool;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::builder::ChangeFeedBuilder;
use super::listener::{Progress, Shared};
use super::payload;
use super::stats::ChangeFeedStats;
use crate::error::{Error, ErrorKind, Result};

/// A marker unanswered for this long is sent again: it may have been sent
/// while the listener was between connections and lost.
const MARKER_RESEND: Duration = Duration::from_secs(1);

/// A running change feed: a task that `LISTEN`s on one channel and
/// invalidates the entries of the rows the triggers announce. Dropping the
/// handle (or [`shutdown`](Self::shutdown)) stops the task.
///
/// See [the module docs](super) for what it guarantees and what it costs.
pub struct ChangeFeed {
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    /// Sends the markers of [`caught_up`](Self::caught_up).
    pool: PgPool,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("channel", &self.shared.channel)
            .field("feed_id", &self.shared.feed_id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed that invalidates `cache`'s entries of the models it will
    /// [`watch`](ChangeFeedBuilder::watch). `pool` is the application's
    /// pool: the listener opens a connection of its own with the same
    /// options (plus its `application_name`), and
    /// [`caught_up`](Self::caught_up) sends its markers through `pool`.
    pub fn builder(cache: Cache, pool: PgPool) -> ChangeFeedBuilder {
        ChangeFeedBuilder::new(cache, pool)
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        progress: watch::Receiver<Progress>,
        pool: PgPool,
        stop: oneshot::Sender<()>,
        join: JoinHandle<()>,
    ) -> Self {
        Self {
            shared,
            progress,
            pool,
            stop: Some(stop),
            join: Some(join),
        }
    }

    /// The channel the feed listens on.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    /// The feed's counters so far.
    pub fn stats(&self) -> ChangeFeedStats {
        self.shared.counters.snapshot()
    }

    /// Returns once every change committed before the call has been applied
    /// to the cache: it sends a marker `NOTIFY` on the channel and waits
    /// for the listener to reach it (PostgreSQL delivers notifications in
    /// commit order). If the listener was disconnected meanwhile, it waits
    /// for the reconnection — whose generation bumps cover what was missed
    /// — and sends a new marker. Waits as long as PostgreSQL is away: wrap
    /// it in a timeout where that matters.
    ///
    /// For tests and for applications that must read their own bulk writes
    /// (a migration followed by a warm-up).
    ///
    /// # Errors
    /// [`ErrorKind::Database`] when the marker cannot be sent;
    /// [`ErrorKind::Cache`] when a change before the marker could
    /// not be applied and its model's generation bump is still waiting for
    /// the cache (the feed retries it); [`ErrorKind::Stopped`] when
    /// the feed's task has ended.
    pub async fn caught_up(&self) -> Result<()> {
        let mut progress = self.progress.clone();
        loop {
            let session = progress.borrow_and_update().session;
            let seq = self.shared.next_marker.fetch_add(1, Ordering::Relaxed) + 1;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.shared.channel)
                .bind(payload::marker(&self.shared.feed_id, seq))
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    Error::database(
                        format!("sending a marker on the channel `{}`", self.shared.channel),
                        e,
                    )
                })?;
            let resend = tokio::time::sleep(MARKER_RESEND);
            tokio::pin!(resend);
            loop {
                tokio::select! {
                    changed = progress.changed() => {
                        if changed.is_err() {
                            return Err(Error::new(
                                ErrorKind::Stopped,
                                "the change feed has stopped",
                            ));
                        }
                        let now = *progress.borrow_and_update();
                        if now.marker >= seq {
                            return if now.clean {
                                Ok(())
                            } else {
                                Err(Error::new(
                                    ErrorKind::Cache,
                                    "the change feed could not apply every change to the cache; \
                                     it retries the generation bumps until the cache answers",
                                ))
                            };
                        }
                        if now.session != session {
                            break;
                        }
                    }
                    () = &mut resend => break,
                }
            }
        }
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            join.abort();
        }
    }
}
