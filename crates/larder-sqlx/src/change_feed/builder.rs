//! [`ChangeFeedBuilder`]: which models a feed watches, on which channel,
//! and how it connects.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use larder::Cache;
use larder::model::CachedModel;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{oneshot, watch};

use crate::error::{Error, ErrorKind, Result};

use super::feed::ChangeFeed;
use super::listener::{Progress, Settings, Shared, Task, Watches};
use super::stats::Counters;
use super::trigger::quote_identifier;
use super::watch::{Model, Watched};

/// The channel [`install_notify_trigger`](super::install_notify_trigger)
/// and the feed use unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "larder_changes";

/// The `application_name` of the listener's connection unless told
/// otherwise: find it in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "larder-change-feed";

/// Builds a [`ChangeFeed`]; from [`ChangeFeed::builder`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct ChangeFeedBuilder {
    cache: Cache,
    pool: PgPool,
    channel: String,
    application_name: String,
    watches: Vec<(String, &'static str, Arc<dyn Watched>)>,
    resync_on_start: bool,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl fmt::Debug for ChangeFeedBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeedBuilder")
            .field("channel", &self.channel)
            .field("application_name", &self.application_name)
            .field(
                "watches",
                &self
                    .watches
                    .iter()
                    .map(|(table, prefix, _)| (table, prefix))
                    .collect::<Vec<_>>(),
            )
            .field("resync_on_start", &self.resync_on_start)
            .field("backoff", &(self.backoff_min..self.backoff_max))
            .finish_non_exhaustive()
    }
}

impl ChangeFeedBuilder {
    pub(crate) fn new(cache: Cache, pool: PgPool) -> Self {
        Self {
            cache,
            pool,
            channel: DEFAULT_CHANNEL.to_owned(),
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            watches: Vec::new(),
            resync_on_start: true,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// The channel to `LISTEN` on: the one the triggers were installed
    /// with. Default [`DEFAULT_CHANNEL`].
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Invalidates `M`'s entries when rows of `table` change: `table` is
    /// the name given to [`install_notify_trigger`](super::install_notify_trigger),
    /// and each id it sends is parsed with `M::Id::from_str`. Several
    /// models may watch one table (two cached views of the same rows).
    pub fn watch<M>(mut self, table: impl Into<String>) -> Self
    where
        M: CachedModel + Send + Sync + 'static,
        M::Id: FromStr + Send + Sync + 'static,
    {
        self.watches
            .push((table.into(), M::OPTIONS.prefix, Arc::new(Model::<M>::new())));
        self
    }

    /// The listener connection's `application_name`, as
    /// `pg_stat_activity` shows it. Default [`DEFAULT_APPLICATION_NAME`].
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Whether [`start`](Self::start) bumps the generation of every watched
    /// model once it listens (default `true`): changes made while no feed
    /// listened are unknown, so entries cached before could be stale. Turn
    /// it off where other feeds on the same channel were listening all
    /// along (several instances of one service), to keep a restart from
    /// emptying the models' caches.
    pub fn resync_on_start(mut self, resync: bool) -> Self {
        self.resync_on_start = resync;
        self
    }

    /// The wait between attempts to reconnect, doubling from `min` up to
    /// `max`. Default 100 ms to 5 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Connects the listener, `LISTEN`s on the channel, bumps the watched
    /// models' generations (see [`resync_on_start`](Self::resync_on_start)),
    /// and spawns the task that applies the notifications on the current
    /// tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a channel name PostgreSQL would
    /// truncate or one model watching a table twice;
    /// [`ErrorKind::Database`] when the first connection or
    /// `LISTEN` fails (later losses are retried, not reported).
    pub async fn start(self) -> Result<ChangeFeed> {
        quote_identifier("channel", &self.channel)?;
        let mut watches: Watches = HashMap::new();
        let mut seen = BTreeSet::new();
        for (table, prefix, model) in self.watches {
            if !seen.insert((table.clone(), prefix)) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("the model `{prefix}` watches the table `{table}` twice"),
                ));
            }
            watches.entry(table).or_default().push(model);
        }
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(&self.application_name);
        // One connection, kept for as long as it lives: it only listens.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let (progress, progress_rx) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            feed_id: feed_id(),
            channel: self.channel,
            counters: Counters::default(),
            next_marker: AtomicU64::new(0),
        });
        let mut task = Task {
            shared: Arc::clone(&shared),
            cache: self.cache,
            pool: listener_pool,
            watches,
            settings: Settings {
                backoff_min: self.backoff_min,
                backoff_max: self.backoff_max,
            },
            pending: BTreeSet::new(),
            next_retry: tokio::time::Instant::now(),
            progress,
        };
        let listener = task.listen().await?;
        task.resynchronise(self.resync_on_start).await;
        let (stop, stopped) = oneshot::channel();
        let join = tokio::spawn(task.run(listener, stopped));
        Ok(ChangeFeed::new(shared, progress_rx, self.pool, stop, join))
    }
}

/// Unique enough to tell this feed's markers from those of other feeds on
/// the channel: process, time and a counter.
fn feed_id() -> String {
    static FEEDS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let n = FEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}
