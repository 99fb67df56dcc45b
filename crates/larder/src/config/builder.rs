use std::time::Duration;

use super::{Codec, Compression, Config, FailMode, RedisUrl};
use crate::{Error, Result};

/// Builds a [`Config`]; every setter takes and returns the builder by value.
///
/// Invalid values are reported by [`ConfigBuilder::build`], all at once is
/// not attempted: the first problem found is named with the accepted range.
/// Its `Debug` shows the Redis URL without its password.
#[derive(Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
    redis_url: Option<String>,
}

impl std::fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("config", &self.config)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(super::redis_url::redact),
            )
            .finish()
    }
}

/// The longest a lease may last: a computation longer than a day is a
/// batch job, not a cache fill.
const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest deadline and connect timeout: longer ones stop bounding
/// anything a request would wait for.
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// The most keys per `SCAN`/`UNLINK` round trip: more would hold Redis for
/// long on each one (and Redis refuses counts beyond `i64`).
const MAX_SCAN_BATCH: usize = 100_000;
/// The longest an open circuit breaker may wait before probing.
const MAX_BREAKER_OPEN: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `segment` is usable as a key prefix or version: ASCII letters,
/// digits, `.`, `_` and `-`. Anything else could alias another cache's keys
/// (`:` and `~` separate Larder's key segments), widen a pattern (glob
/// characters) or pin keys to one cluster slot (`{`).
pub(crate) fn is_key_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    /// A builder starting from the defaults (in-process store).
    pub fn new() -> Self {
        Self {
            config: Config::default(),
            redis_url: None,
        }
    }

    /// A builder starting from the environment (see the table in the
    /// [module docs](crate::config)): every set variable applied to the
    /// defaults, so settings chosen in code can be layered on top.
    ///
    /// ```
    /// use larder::config::ConfigBuilder;
    ///
    /// // `LARDER_PREFIX`, `REDIS_URL`, … from the deployment; the version
    /// // from the code, so each release invalidates its own entries.
    /// let config = ConfigBuilder::from_env()?.version("2").build()?;
    /// assert_eq!(config.version(), "2");
    /// # Ok::<(), larder::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the variable
    /// and the accepted values when one is malformed; values set in code
    /// are checked by [`ConfigBuilder::build`].
    pub fn from_env() -> Result<Self> {
        super::env::builder_from(|name| std::env::var(name).ok())
    }

    /// Use Redis at `url` instead of the in-process store.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Use the in-process store even if a URL was set before.
    pub fn in_memory(mut self) -> Self {
        self.redis_url = None;
        self
    }

    /// First segment of every physical key (default `larder`); lets several
    /// services share one Redis. 1 to 64 ASCII letters, digits, `.`, `_`
    /// or `-`: other characters could let two caches share keys.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Global version (the Django original's `CACHE_VERSION`): changing it
    /// makes every entry written under another version unreachable, with
    /// no scan. Same characters as the prefix. On a builder from
    /// [`ConfigBuilder::from_env`] it replaces `LARDER_VERSION` (or
    /// `CACHE_VERSION`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.config.version = version.into();
        self
    }

    /// TTL used when a call gives none (default 300 s).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = ttl;
        self
    }

    /// Spread every TTL uniformly by ± this fraction (default 0.1, range
    /// `0.0..1.0`) so entries written together do not expire together.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.config.ttl_jitter = fraction;
        self
    }

    /// The most the cache's store calls may add to one operation (default
    /// 250 ms, at most 10 minutes). The store calls of one operation share
    /// it — a read-through miss's read, lease and fill together — so
    /// against a Redis that accepts and then hangs, a call waits this long
    /// once, then carries on without the cache. A call cut short counts as
    /// a store failure.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = deadline;
        self
    }

    /// Deadline of each connection attempt to Redis (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// `TCP_NODELAY` on the Redis connections (default on). redis-rs 1.x
    /// leaves it off, so Nagle's algorithm may hold a small command back
    /// until the previous one is acknowledged; on a multiplexed connection
    /// that costs throughput (redis-rs measured +39–68 % with it on, and
    /// turns it on by default from 2.0).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.config.tcp_nodelay = on;
        self
    }

    /// Largest value that is stored or decoded (default 4 MiB), measured
    /// encoded and **before** compression, on writes and reads alike:
    /// whatever is stored can be read back, and no stored value can
    /// decompress past it. Larger values are returned to the caller but
    /// not cached ([`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) from
    /// [`Cache::set`](crate::Cache::set)).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.config.max_value_bytes = bytes;
        self
    }

    /// Payload codec (default MessagePack).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Compression of payloads at or above the threshold (default lz4).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Payloads of at least this many bytes are compressed (default 1024).
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.config.compression_threshold = bytes;
        self
    }

    /// What store failures mean to callers (default [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.config.fail_mode = mode;
        self
    }

    /// Consecutive store failures that open the circuit breaker (default 5).
    pub fn breaker_failures(mut self, failures: u32) -> Self {
        self.config.breaker_failures = failures;
        self
    }

    /// How long an open breaker rejects calls before letting one probe
    /// through (default 2 s).
    pub fn breaker_open_for(mut self, duration: Duration) -> Self {
        self.config.breaker_open_for = duration;
        self
    }

    /// Bound of the in-process store, in bytes of keys and values (default
    /// 64 MiB).
    pub fn memory_capacity_bytes(mut self, bytes: u64) -> Self {
        self.config.memory_capacity_bytes = bytes;
        self
    }

    /// Keys per `SCAN`/`UNLINK` batch of a pattern invalidation (default 1000).
    pub fn scan_batch(mut self, keys: usize) -> Self {
        self.config.scan_batch = keys;
        self
    }

    /// Cross-process leases on misses (default on): one caller per key across
    /// all processes computes; the others wait for its fill (up to the lease
    /// TTL), and an invalidation voids the lease so a computation that began
    /// before a write never stores its stale result.
    pub fn leases(mut self, on: bool) -> Self {
        self.config.leases = on;
        self
    }

    /// How long a lease lasts (default 3 s): the longest that other callers
    /// wait for a holder that died, and a bound on how long a computation may
    /// take and still fill — a computation that outlasts its lease returns its
    /// value but does not store it, so set this above your slowest origin.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl;
        self
    }

    /// XFetch's β (default 1.0): larger refreshes expensive values earlier
    /// before they expire; 0 turns early refresh off.
    pub fn xfetch_beta(mut self, beta: f64) -> Self {
        self.config.xfetch_beta = beta;
        self
    }

    /// XFetch's β for keys of one namespace (`"expensive_report"`).
    pub fn xfetch_beta_for(mut self, namespace: impl Into<String>, beta: f64) -> Self {
        self.config
            .xfetch_beta_by_namespace
            .insert(namespace.into(), beta);
        self
    }

    /// Keeps the decoded values of `namespace`'s keys in this process for
    /// at most `ttl` (the in-process, or L1, tier; off by default): a hit
    /// there costs no round trip and no decode. An entry never outlives its
    /// Redis copy, and every invalidation — of its key, a pattern, a model,
    /// a related model, a `set` — reaches every instance's tier over Redis
    /// pub/sub; an instance that loses that channel (or whose pings go
    /// unanswered for [`local_ping_interval`](Self::local_ping_interval))
    /// empties its tier until the channel is back. Reads through
    /// [`Cache::get_or_compute`](crate::Cache::get_or_compute) and its kin
    /// and [`Cache::fetch_or_compute`](crate::Cache::fetch_or_compute) use
    /// the tier; [`Cache::get`](crate::Cache::get) always asks the store.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = larder::Config::builder()
    ///     .local("user", Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(config.local_ttl("user"), Some(Duration::from_secs(60)));
    /// assert_eq!(config.local_ttl("product"), None);
    /// # Ok::<(), larder::Error>(())
    /// ```
    pub fn local(mut self, namespace: impl Into<String>, ttl: Duration) -> Self {
        self.config
            .local_ttl_by_namespace
            .insert(namespace.into(), ttl);
        self
    }

    /// The L1 tier's byte bound (default 32 MiB): each entry weighs its key,
    /// its encoded value and a fixed overhead.
    pub fn local_capacity_bytes(mut self, bytes: u64) -> Self {
        self.config.local_capacity_bytes = bytes;
        self
    }

    /// The L1 tier's entry bound (default 100,000).
    pub fn local_max_entries(mut self, entries: u64) -> Self {
        self.config.local_max_entries = entries;
        self
    }

    /// How soon a silent invalidation channel is noticed (default 1 s): the
    /// subscriber pings twice per interval, and a ping unanswered for half
    /// an interval empties the L1 tier until the channel is back.
    pub fn local_ping_interval(mut self, interval: Duration) -> Self {
        self.config.local_ping_interval = interval;
        self
    }

    /// Stale-while-revalidate (default 0 = off): for this long after expiry
    /// a value is still served at once while one caller refreshes it.
    pub fn stale_grace(mut self, grace: Duration) -> Self {
        self.config.stale_grace = grace;
        self
    }

    /// Stale-on-error (default off): when the origin fails, a value still in
    /// its grace period answers instead of the error.
    pub fn stale_if_error(mut self, on: bool) -> Self {
        self.config.stale_if_error = on;
        self
    }

    /// Checks every setting and returns the [`Config`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting,
    /// the value and the accepted range.
    pub fn build(self) -> Result<Config> {
        let mut config = self.config;
        if let Some(url) = self.redis_url {
            config.redis_url = Some(RedisUrl::parse(&url)?);
        }
        for (name, value) in [("prefix", &config.prefix), ("version", &config.version)] {
            check(
                is_key_segment(value),
                format!(
                    "{name} {value:?} must be 1 to 64 ASCII letters, digits, `.`, `_` or `-` \
                     (other characters could share or widen another cache's keys)"
                ),
            )?;
        }
        check(
            (0.0..1.0).contains(&config.ttl_jitter),
            format!(
                "ttl_jitter {} is outside 0.0..1.0 (0.1 spreads TTLs by ±10%)",
                config.ttl_jitter
            ),
        )?;
        let max_ttl = crate::MAX_TTL;
        let ms = Duration::from_millis;
        // The floors: below them nothing would ever be stored (a lease
        // that expires before any fill, a deadline no round trip meets).
        for (name, value, min, max) in [
            ("default_ttl", config.default_ttl, ms(1), max_ttl),
            ("deadline", config.deadline, ms(1), MAX_WAIT),
            ("connect_timeout", config.connect_timeout, ms(10), MAX_WAIT),
            ("lease_ttl", config.lease_ttl, ms(100), MAX_LEASE_TTL),
            (
                "local_ping_interval",
                config.local_ping_interval,
                ms(10),
                MAX_WAIT,
            ),
            (
                "breaker_open_for",
                config.breaker_open_for,
                ms(1),
                MAX_BREAKER_OPEN,
            ),
        ] {
            check(
                (min..=max).contains(&value),
                format!("{name} {value:?} must be at least {min:?} and at most {max:?}"),
            )?;
        }
        check(
            config.stale_grace <= max_ttl,
            format!(
                "stale_grace {:?} must be at most {max_ttl:?} (larder::MAX_TTL)",
                config.stale_grace
            ),
        )?;
        check(
            config.max_value_bytes > 0,
            "max_value_bytes must be at least 1".into(),
        )?;
        check(
            config.breaker_failures > 0,
            "breaker_failures must be at least 1".into(),
        )?;
        check(
            (1..=MAX_SCAN_BATCH).contains(&config.scan_batch),
            format!(
                "scan_batch {} must be 1 to {MAX_SCAN_BATCH} keys per round trip",
                config.scan_batch
            ),
        )?;
        for (namespace, beta) in std::iter::once(("(default)", &config.xfetch_beta)).chain(
            config
                .xfetch_beta_by_namespace
                .iter()
                .map(|(n, b)| (n.as_str(), b)),
        ) {
            check(
                beta.is_finite() && *beta >= 0.0,
                format!(
                    "xfetch_beta {beta} for {namespace} must be a finite number >= 0 (1.0 is the usual choice)"
                ),
            )?;
        }
        for (namespace, ttl) in &config.local_ttl_by_namespace {
            check(
                !ttl.is_zero() && *ttl <= max_ttl,
                format!(
                    "local TTL {ttl:?} for {namespace} must be more than 0 and at most {max_ttl:?}"
                ),
            )?;
        }
        check(
            config.local_capacity_bytes > 0 && config.local_max_entries > 0,
            "local_capacity_bytes and local_max_entries must be more than 0".into(),
        )?;
        check(
            config.compression != Compression::Lz4 || cfg!(feature = "lz4"),
            "lz4 compression needs larder's `lz4` feature".into(),
        )?;
        check(
            config.compression != Compression::Zstd || cfg!(feature = "zstd"),
            "zstd compression needs larder's `zstd` feature".into(),
        )?;
        Ok(config)
    }
}

fn check(ok: bool, problem: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        let config = ConfigBuilder::new().build().unwrap();
        assert_eq!(config.prefix(), "larder");
        assert_eq!(config.ttl_jitter(), 0.1);
        assert_eq!(config.fail_mode(), FailMode::Open);
    }

    #[test]
    fn out_of_range_values_are_named() {
        let err = ConfigBuilder::new().ttl_jitter(1.5).build().unwrap_err();
        assert!(err.to_string().contains("ttl_jitter 1.5"), "{err}");
        let err = ConfigBuilder::new()
            .deadline(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
        assert!(ConfigBuilder::new().prefix("").build().is_err());
    }
}
