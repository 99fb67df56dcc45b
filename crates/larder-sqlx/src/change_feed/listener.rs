//! The feed's task: one `LISTEN` connection, the notifications it brings,
//! and what happens when it drops.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use larder::Cache;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::payload::{self, Change};
use super::stats::Counters;
use super::watch::Watched;
use crate::error::{Error, Result};

/// How often a failed generation bump is retried while the cache is down.
const RETRY_BUMPS: Duration = Duration::from_secs(1);

/// What [`ChangeFeed::caught_up`](super::ChangeFeed::caught_up) waits on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Connections that have listened and resynchronised so far; moves
    /// only after the generation bumps of a reconnect were attempted.
    pub(crate) session: u64,
    /// The highest marker of this feed the task has processed.
    pub(crate) marker: u64,
    /// Whether every change before that marker reached the cache (no bump
    /// waiting to be retried).
    pub(crate) clean: bool,
}

/// What the handle and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Tells this feed's markers from other feeds' on the same channel.
    pub(crate) feed_id: String,
    pub(crate) channel: String,
    pub(crate) counters: Counters,
    pub(crate) next_marker: AtomicU64,
}

/// Settings the task needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
}

/// The watched models, by the table name the trigger sends.
pub(crate) type Watches = HashMap<String, Vec<Arc<dyn Watched>>>;

pub(crate) struct Task {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cache: Cache,
    /// One connection, with the feed's `application_name`.
    pub(crate) pool: PgPool,
    pub(crate) watches: Watches,
    pub(crate) settings: Settings,
    /// Held by the task alone: when the task ends, however it ends,
    /// `caught_up` waiters learn it.
    pub(crate) progress: watch::Sender<Progress>,
    /// Models whose bump failed, by table and position: retried until it
    /// succeeds.
    pub(crate) pending: BTreeSet<(String, usize)>,
    /// When the pending bumps are tried again: kept across notifications,
    /// so a busy channel does not postpone the retry for ever.
    pub(crate) next_retry: Instant,
}

impl Task {
    /// Connects and listens on the channel.
    pub(crate) async fn listen(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| Error::database("connecting the change-feed listener", e))?;
        // A lost connection is ours to re-establish: we bump generations
        // after the new `LISTEN` and before reading on.
        listener.eager_reconnect(false);
        listener.listen(&self.shared.channel).await.map_err(|e| {
            Error::database(
                format!("LISTEN on the channel `{}`", self.shared.channel),
                e,
            )
        })?;
        Ok(listener)
    }

    /// Makes every watched model a miss, then reports a new session. Called
    /// with `LISTEN` in place, so changes after it arrive as notifications.
    pub(crate) async fn resynchronise(&mut self, bump: bool) {
        if bump {
            for (table, index) in self.every_model() {
                self.bump(&table, index).await;
            }
        }
        let clean = self.pending.is_empty();
        self.progress.send_modify(|progress| {
            progress.session += 1;
            progress.clean = clean;
        });
    }

    pub(crate) async fn run(mut self, mut listener: PgListener, mut stop: oneshot::Receiver<()>) {
        let mut backoff = self.settings.backoff_min;
        loop {
            // Receive until the connection goes.
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => self.handle(notification).await,
                        Ok(None) => {
                            tracing::warn!(
                                channel = %self.shared.channel,
                                "change feed: the listener's connection was lost; reconnecting"
                            );
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(
                                channel = %self.shared.channel,
                                %error,
                                "change feed: receiving failed; reconnecting"
                            );
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(self.next_retry), if !self.pending.is_empty() => {
                        self.retry_pending().await;
                    }
                }
            }
            drop(listener);
            Counters::add(&self.shared.counters.reconnects, 1);
            // Listen again, backing off while PostgreSQL is unreachable.
            listener = loop {
                let listened = tokio::select! {
                    _ = &mut stop => return,
                    listened = self.listen() => listened,
                };
                match listened {
                    Ok(listener) => break listener,
                    Err(error) => {
                        Counters::add(&self.shared.counters.connect_failures, 1);
                        tracing::warn!(%error, ?backoff, "change feed: reconnecting failed");
                        tokio::select! {
                            _ = &mut stop => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.settings.backoff_max);
                    }
                }
            };
            backoff = self.settings.backoff_min;
            // Notifications sent while it was away are gone.
            self.resynchronise(true).await;
            tracing::info!(
                channel = %self.shared.channel,
                "change feed: listening again; every watched model's generation was bumped"
            );
        }
    }

    async fn handle(&mut self, notification: PgNotification) {
        let counters = &self.shared.counters;
        Counters::add(&counters.notifications, 1);
        if notification.channel() != self.shared.channel {
            return;
        }
        match payload::parse(notification.payload()) {
            Change::Marker { feed, seq } => {
                if feed == self.shared.feed_id {
                    if !self.pending.is_empty() {
                        self.retry_pending().await;
                    }
                    let clean = self.pending.is_empty();
                    self.progress.send_modify(|progress| {
                        progress.marker = progress.marker.max(seq);
                        progress.clean = clean;
                    });
                }
            }
            Change::Ids { table, ids } => {
                let Some(models) = self.watches.get(&table).cloned() else {
                    return;
                };
                for (index, model) in models.into_iter().enumerate() {
                    let applied = model.invalidate(&self.cache, &ids).await;
                    Counters::add(&self.shared.counters.invalidations, applied.invalidated);
                    if let Some(id) = applied.unparsable {
                        Counters::add(&self.shared.counters.unreadable_payloads, 1);
                        tracing::warn!(
                            table,
                            model = model.prefix(),
                            id,
                            "change feed: an id does not parse as the model's id; \
                             bumping the model's generation"
                        );
                        self.bump(&table, index).await;
                    } else if let Some(error) = applied.failed {
                        Counters::add(&self.shared.counters.cache_failures, 1);
                        tracing::warn!(
                            table,
                            model = model.prefix(),
                            %error,
                            "change feed: invalidating failed; bumping the model's generation"
                        );
                        self.bump(&table, index).await;
                    }
                }
            }
            Change::All { table } => {
                let count = self.watches.get(&table).map_or(0, Vec::len);
                for index in 0..count {
                    self.bump(&table, index).await;
                }
            }
            Change::Unreadable => {
                Counters::add(&self.shared.counters.unreadable_payloads, 1);
                tracing::warn!(
                    channel = %self.shared.channel,
                    payload = notification.payload(),
                    "change feed: a payload that is not the trigger's; \
                     bumping the generation of every watched model"
                );
                for (table, index) in self.every_model() {
                    self.bump(&table, index).await;
                }
            }
        }
    }

    /// Every watched model, by table and position.
    fn every_model(&self) -> Vec<(String, usize)> {
        self.watches
            .iter()
            .flat_map(|(table, models)| (0..models.len()).map(move |i| (table.clone(), i)))
            .collect()
    }

    /// Bumps one model's generation; on failure, keeps it for a retry.
    async fn bump(&mut self, table: &str, index: usize) {
        let model = Arc::clone(&self.watches[table][index]);
        match model.bump(&self.cache).await {
            Ok(()) => {
                Counters::add(&self.shared.counters.generation_bumps, 1);
                self.pending.remove(&(table.to_owned(), index));
            }
            Err(error) => {
                Counters::add(&self.shared.counters.cache_failures, 1);
                tracing::warn!(
                    table,
                    model = model.prefix(),
                    %error,
                    "change feed: bumping the model's generation failed; will retry"
                );
                if self.pending.is_empty() {
                    self.next_retry = Instant::now() + RETRY_BUMPS;
                }
                self.pending.insert((table.to_owned(), index));
            }
        }
    }

    async fn retry_pending(&mut self) {
        self.next_retry = Instant::now() + RETRY_BUMPS;
        let pending: Vec<(String, usize)> = self.pending.iter().cloned().collect();
        for (table, index) in pending {
            self.bump(&table, index).await;
        }
    }
}
