//! Settings of a [`Cache`](crate::Cache): a builder and the environment.
//!
//! Every setting has a sensible default and can be read from the
//! environment with [`Config::from_env`]:
//!
//! | variable | setting | default |
//! |---|---|---|
//! | `REDIS_URL` | Redis to use (`redis://`, `rediss://`, `redis://user:password@host:port/db`); unset = in-process store | unset |
//! | `LARDER_PREFIX` | first segment of every physical key: 1–64 of `A-Z a-z 0-9 . _ -` | `larder` |
//! | `LARDER_VERSION` | global version (the Django original's `CACHE_VERSION`), same characters; changing it makes every older entry unreachable | `1` |
//! | `CACHE_VERSION` | the Django original's name for `LARDER_VERSION`, honoured as such (empty = unset); when both are set they must be equal, or [`Config::from_env`] fails naming both | unset |
//! | `LARDER_DEFAULT_TTL` | TTL in seconds when a call gives none | `300` |
//! | `LARDER_TTL_JITTER` | TTLs are spread by ± this fraction | `0.1` |
//! | `LARDER_DEADLINE_MS` | the most the cache's store calls add to one operation (a read-through miss's read, lease and fill share it) | `250` |
//! | `LARDER_CONNECT_TIMEOUT_MS` | deadline of each connection attempt | `1000` |
//! | `LARDER_TCP_NODELAY` | `on`/`off`: `TCP_NODELAY` on the Redis connections (off lets Nagle's algorithm hold small writes back) | `on` |
//! | `LARDER_MAX_VALUE_BYTES` | values whose encoding (before compression) is larger are neither stored nor decoded | `4194304` |
//! | `LARDER_CODEC` | `msgpack` or `json` | `msgpack` |
//! | `LARDER_COMPRESSION` | `lz4`, `zstd` or `none` | `lz4` |
//! | `LARDER_COMPRESSION_THRESHOLD` | compress payloads of at least this many bytes | `1024` |
//! | `LARDER_FAIL_MODE` | `open` (store failures are misses) or `closed` (they are errors) | `open` |
//! | `LARDER_BREAKER_FAILURES` | consecutive store failures that open the circuit breaker | `5` |
//! | `LARDER_BREAKER_OPEN_MS` | how long the breaker stays open before one probe | `2000` |
//! | `LARDER_MEMORY_CAPACITY_BYTES` | bound of the in-process store | `67108864` |
//! | `LARDER_LEASES` | `on`/`off`: cross-process leases on misses (off: each process computes its own, and nothing stops a computation that began before a key invalidation from storing after it) | `on` |
//! | `LARDER_LEASE_TTL_MS` | how long a lease lasts; also how long others wait for its fill | `3000` |
//! | `LARDER_XFETCH_BETA` | XFetch early-refresh factor (0 = off) | `1.0` |
//! | `LARDER_STALE_GRACE_MS` | serve an expired value this long while one caller refreshes it | `0` |
//! | `LARDER_STALE_IF_ERROR` | `on`/`off`: serve a value in its grace period when the origin fails | `off` |
//!
//! ```
//! use std::time::Duration;
//! use larder::Config;
//!
//! let config = Config::builder()
//!     .prefix("shop")
//!     .version("1.1")
//!     .default_ttl(Duration::from_secs(3600))
//!     .ttl_jitter(0.05)
//!     .build()?;
//! assert_eq!(config.version(), "1.1");
//! assert!(config.redis_url().is_none()); // the in-process store
//! # Ok::<(), larder::Error>(())
//! ```
//!
//! Settings chosen in code can be layered onto the environment's: start
//! from [`Config::builder_from_env`] instead of [`Config::builder`].
//!
//! ```
//! use larder::Config;
//!
//! // REDIS_URL, LARDER_PREFIX, … from the deployment; the version from the
//! // code, so a release whose cached shapes changed starts afresh.
//! let config = Config::builder_from_env()?.version("2").build()?;
//! assert_eq!(config.version(), "2");
//! # Ok::<(), larder::Error>(())
//! ```

mod builder;
mod env;
mod redis_url;

use std::time::Duration;

pub use builder::ConfigBuilder;
pub(crate) use builder::is_key_segment;
pub use redis_url::RedisUrl;

/// How values are serialized inside the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack via `rmp-serde`: compact and fast (the default).
    #[default]
    MessagePack,
    /// JSON via `serde_json`: readable with `redis-cli`.
    Json,
}

/// How large payloads are compressed inside the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Never compress.
    None,
    /// lz4 (feature `lz4`, on by default).
    Lz4,
    /// zstd (feature `zstd`).
    Zstd,
}

impl Default for Compression {
    fn default() -> Self {
        if cfg!(feature = "lz4") {
            Compression::Lz4
        } else {
            Compression::None
        }
    }
}

/// What a store failure (error, timeout, open breaker) means to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Failures behave as misses: the origin answers and fills are skipped.
    #[default]
    Open,
    /// Failures are returned as errors.
    Closed,
}

/// The settings of one [`Cache`](crate::Cache). Build with
/// [`Config::builder`] or [`Config::from_env`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) redis_url: Option<RedisUrl>,
    pub(crate) prefix: String,
    pub(crate) version: String,
    pub(crate) default_ttl: Duration,
    pub(crate) ttl_jitter: f64,
    pub(crate) deadline: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tcp_nodelay: bool,
    pub(crate) max_value_bytes: usize,
    pub(crate) codec: Codec,
    pub(crate) compression: Compression,
    pub(crate) compression_threshold: usize,
    pub(crate) fail_mode: FailMode,
    pub(crate) breaker_failures: u32,
    pub(crate) breaker_open_for: Duration,
    pub(crate) memory_capacity_bytes: u64,
    pub(crate) scan_batch: usize,
    pub(crate) leases: bool,
    pub(crate) lease_ttl: Duration,
    pub(crate) xfetch_beta: f64,
    pub(crate) xfetch_beta_by_namespace: std::collections::BTreeMap<String, f64>,
    pub(crate) stale_grace: Duration,
    pub(crate) stale_if_error: bool,
    pub(crate) local_ttl_by_namespace: std::collections::BTreeMap<String, Duration>,
    pub(crate) local_capacity_bytes: u64,
    pub(crate) local_max_entries: u64,
    pub(crate) local_ping_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: None,
            prefix: "larder".to_owned(),
            version: "1".to_owned(),
            default_ttl: Duration::from_secs(300),
            ttl_jitter: 0.1,
            deadline: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(1000),
            tcp_nodelay: true,
            max_value_bytes: 4 * 1024 * 1024,
            codec: Codec::default(),
            compression: Compression::default(),
            compression_threshold: 1024,
            fail_mode: FailMode::default(),
            breaker_failures: 5,
            breaker_open_for: Duration::from_millis(2000),
            memory_capacity_bytes: 64 * 1024 * 1024,
            scan_batch: 1000,
            leases: true,
            lease_ttl: Duration::from_secs(3),
            xfetch_beta: 1.0,
            xfetch_beta_by_namespace: std::collections::BTreeMap::new(),
            stale_grace: Duration::ZERO,
            stale_if_error: false,
            local_ttl_by_namespace: std::collections::BTreeMap::new(),
            local_capacity_bytes: 32 * 1024 * 1024,
            local_max_entries: 100_000,
            local_ping_interval: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }

    /// A builder starting from the environment ([`ConfigBuilder::from_env`]):
    /// settings chosen in code override the variables' (see the [module
    /// docs](crate::config) for an example).
    ///
    /// # Errors
    /// As [`ConfigBuilder::from_env`].
    pub fn builder_from_env() -> crate::Result<ConfigBuilder> {
        ConfigBuilder::from_env()
    }

    /// Reads every setting from the environment (see the module docs for the
    /// table); unset variables keep their defaults. `CACHE_VERSION`, the
    /// Django original's setting, is read as `LARDER_VERSION`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the variable and
    /// the accepted values when one is malformed, or naming both when
    /// `LARDER_VERSION` and `CACHE_VERSION` are set to different values.
    pub fn from_env() -> crate::Result<Config> {
        ConfigBuilder::from_env()?.build()
    }

    /// The Redis to use; `None` means the in-process store.
    pub fn redis_url(&self) -> Option<&RedisUrl> {
        self.redis_url.as_ref()
    }
    /// The first segment of every physical key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The global version (the Django original's `CACHE_VERSION`).
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The TTL used when a call gives none.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }
    /// The ± fraction by which TTLs are spread.
    pub fn ttl_jitter(&self) -> f64 {
        self.ttl_jitter
    }
    /// The most the store calls of one operation may take together.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// The largest value (encoded, before compression) that is stored or
    /// decoded.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }
    /// The payload codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// The compression of payloads at or above the threshold.
    pub fn compression(&self) -> Compression {
        self.compression
    }
    /// What store failures mean to callers.
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }
    /// Whether the Redis connections set `TCP_NODELAY`.
    pub fn tcp_nodelay(&self) -> bool {
        self.tcp_nodelay
    }
    /// Whether misses take cross-process leases.
    pub fn leases(&self) -> bool {
        self.leases
    }
    /// How long a lease lasts.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }
    /// How long keys of `namespace` stay in the in-process (L1) tier, if
    /// they use it (see [`ConfigBuilder::local`]).
    pub fn local_ttl(&self, namespace: &str) -> Option<Duration> {
        self.local_ttl_by_namespace.get(namespace).copied()
    }

    /// The XFetch factor for keys of `namespace`.
    pub fn xfetch_beta(&self, namespace: &str) -> f64 {
        self.xfetch_beta_by_namespace
            .get(namespace)
            .copied()
            .unwrap_or(self.xfetch_beta)
    }
    /// How long an expired value may still be served while it is refreshed.
    pub fn stale_grace(&self) -> Duration {
        self.stale_grace
    }
    /// Whether a value in its grace period answers when the origin fails.
    pub fn stale_if_error(&self) -> bool {
        self.stale_if_error
    }
}
