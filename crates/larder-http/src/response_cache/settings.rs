//! What a layer is configured with, shared by the layer, its service and
//! the helpers below them (imports run layer → service → future; this file
//! points at none of them).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use http::{StatusCode, request};
use larder::Cache;

/// Extracts the authenticated identity a route keys on.
pub type IdentityFn = dyn Fn(&request::Parts) -> Option<String> + Send + Sync;

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) cache: Cache,
    pub(crate) namespace: String,
    pub(crate) ttl: Duration,
    /// How long stored responses may stay in the local (L1) tier.
    pub(crate) local: Option<Duration>,
    pub(crate) query: Vec<String>,
    pub(crate) strip_unlisted_query: bool,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) identity: Option<Arc<IdentityFn>>,
    /// Request headers that carry credentials ([`policy::CREDENTIAL_HEADERS`](super::policy::CREDENTIAL_HEADERS) by default).
    pub(crate) credentials: Vec<HeaderName>,
    /// Request headers keyed besides the built-in host family
    /// ([`key::FORWARDING_HEADERS`](super::key::FORWARDING_HEADERS)).
    pub(crate) forwarding: Vec<HeaderName>,
    pub(crate) max_body_bytes: u64,
    pub(crate) statuses: Vec<StatusCode>,
    pub(crate) honour_request_no_cache: bool,
    pub(crate) invalidate_on_write: bool,
    /// Write invalidations that failed and are being retried.
    pub(crate) pending: super::pending::Pending,
    pub(crate) clock: fn() -> u64,
    pub(crate) mode: super::CacheMode,
    /// Shared-cache mode's rules.
    pub(crate) shared: super::freshness::SharedRules,
    /// Shared-cache mode: keys being revalidated in the background.
    pub(crate) revalidating: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Settings {
    /// The defaults of [`ResponseCacheLayer::new`](super::ResponseCacheLayer::new).
    pub(crate) fn new(cache: Cache) -> Self {
        Self {
            cache,
            namespace: "http".to_owned(),
            ttl: Duration::from_secs(60),
            local: None,
            query: Vec::new(),
            strip_unlisted_query: false,
            vary: Vec::new(),
            identity: None,
            credentials: super::policy::CREDENTIAL_HEADERS.to_vec(),
            forwarding: Vec::new(),
            max_body_bytes: 1024 * 1024,
            statuses: vec![StatusCode::OK],
            honour_request_no_cache: false,
            invalidate_on_write: false,
            pending: super::pending::Pending::default(),
            clock: wall_clock_ms,
            mode: super::CacheMode::Application,
            shared: super::freshness::SharedRules::default(),
            revalidating: Arc::default(),
        }
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
