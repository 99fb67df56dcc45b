//! One opaque [`Error`] with a [`#[non_exhaustive] ErrorKind`](ErrorKind),
//! as in `larder` itself: the repositories, transactions and the change
//! feed all fail with it, so an application handles one error type from
//! this crate.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, broadly. New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database failed: a query of the [`Repository`](crate::Repository),
    /// `BEGIN`, `COMMIT` or `ROLLBACK`, or acquiring a pool connection. A
    /// failed write invalidated nothing. If `COMMIT` itself failed, whether
    /// the write landed is unknown (as with any database client): read the
    /// row again, or invalidate it by hand.
    ///
    /// In the change feed: PostgreSQL refused or could not be reached when
    /// installing the trigger, starting the feed, or sending a
    /// `caught_up` marker.
    Database,
    /// The cache failed: an invalid model prefix, or a store failure that
    /// the cache's fail mode does not absorb (fail-closed).
    ///
    /// In the change feed's `caught_up`: a change could not be applied to
    /// the cache yet; the feed keeps retrying its generation bump.
    Cache,
    /// The write **committed**, but invalidating its cache entries failed:
    /// the keys in [`Error::stale_keys`] may serve the old row until they
    /// expire. Retry the invalidation
    /// ([`CachedRepository::invalidate`](crate::CachedRepository::invalidate),
    /// `delete_cached_data`), do not retry the write.
    StaleAfterCommit,
    /// A name or setting that cannot be used: an identifier PostgreSQL
    /// would truncate (over 63 bytes), an empty one or one holding a NUL,
    /// or a table a change feed watches twice for one model. Fix the call.
    Config,
    /// The change feed's task has stopped (shut down, or its runtime is
    /// gone): start a new feed.
    Stopped,
}

/// The error of every fallible operation of this crate: the
/// repositories', the transactions' and the change feed's. Its
/// [`kind`](Self::kind) (or an `is_*` helper) says what to do; its
/// `Display` says what failed, with which input.
///
/// ```
/// use larder_sqlx::{Error, ErrorKind};
///
/// fn what_to_do(error: &Error) -> String {
///     match error.kind() {
///         // Committed: the write must not be retried, the invalidation may.
///         ErrorKind::StaleAfterCommit => format!("invalidate {:?} again", error.stale_keys()),
///         ErrorKind::Config => "fix the call".to_owned(),
///         _ => format!("retry later: {error}"),
///     }
/// }
///
/// let refused = Error::new(ErrorKind::Config, "the channel name \"\" cannot be used");
/// assert!(refused.is_config());
/// assert_eq!(what_to_do(&refused), "fix the call");
///
/// let failed = Error::from(sqlx::Error::PoolTimedOut);
/// assert!(failed.is_database());
/// assert!(matches!(failed.as_sqlx(), Some(sqlx::Error::PoolTimedOut)));
/// assert!(failed.stale_keys().is_empty());
/// ```
pub struct Error {
    kind: ErrorKind,
    detail: Cow<'static, str>,
    stale_keys: Vec<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result<T, larder_sqlx::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying what failed, with which input, and what
    /// to do.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            stale_keys: Vec::new(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A database failure while doing `what` (`"loading `product:1`"`).
    pub(crate) fn database(what: impl fmt::Display, source: sqlx::Error) -> Self {
        Self::new(ErrorKind::Database, format!("{what} failed: {source}")).with_source(source)
    }

    /// The write committed; invalidating `stale_keys` failed with `failures`.
    pub(crate) fn stale_after_commit(
        stale_keys: Vec<String>,
        failures: Vec<larder::Error>,
    ) -> Self {
        let detail = format!(
            "the write committed, but invalidating its cache entries failed, so {} may serve \
             the old row until it expires: {}; retry the invalidation (not the write)",
            stale_keys
                .iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", "),
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        let mut error = Self::new(ErrorKind::StaleAfterCommit, detail);
        error.stale_keys = stale_keys;
        if let Some(first) = failures.into_iter().next() {
            error.source = Some(Box::new(first));
        }
        error
    }

    /// The write committed; the task running the invalidation of
    /// `stale_keys` ended without finishing (it panicked, or its runtime
    /// shut down), so any of them may be stale.
    pub(crate) fn stale_after_aborted_invalidation(
        stale_keys: Vec<String>,
        aborted: tokio::task::JoinError,
    ) -> Self {
        let detail = format!(
            "the write committed, but the task invalidating its cache entries ended early              ({aborted}), so {} may serve the old row until it expires; retry the \
             invalidation (not the write)",
            stale_keys
                .iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let mut error = Self::new(ErrorKind::StaleAfterCommit, detail).with_source(aborted);
        error.stale_keys = stale_keys;
        error
    }

    /// The broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The database failed ([`ErrorKind::Database`]).
    pub fn is_database(&self) -> bool {
        self.kind == ErrorKind::Database
    }

    /// The cache failed ([`ErrorKind::Cache`]).
    pub fn is_cache(&self) -> bool {
        self.kind == ErrorKind::Cache
    }

    /// A name or setting was refused ([`ErrorKind::Config`]).
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// The change feed had stopped ([`ErrorKind::Stopped`]).
    pub fn is_stopped(&self) -> bool {
        self.kind == ErrorKind::Stopped
    }

    /// The write committed but its invalidation failed
    /// ([`ErrorKind::StaleAfterCommit`]); see [`Error::stale_keys`].
    pub fn is_stale_after_commit(&self) -> bool {
        self.kind == ErrorKind::StaleAfterCommit
    }

    /// The logical keys (`product:1`) that may still hold the old row, for
    /// [`ErrorKind::StaleAfterCommit`]; empty otherwise.
    pub fn stale_keys(&self) -> &[String] {
        &self.stale_keys
    }

    /// The underlying `sqlx` error, for [`ErrorKind::Database`].
    pub fn as_sqlx(&self) -> Option<&sqlx::Error> {
        self.source.as_deref()?.downcast_ref()
    }

    /// The underlying Larder error, for [`ErrorKind::Cache`] and
    /// [`ErrorKind::StaleAfterCommit`] (the first failure); `None` for the
    /// change feed's `caught_up`, whose failures were logged as they
    /// happened.
    pub fn as_larder(&self) -> Option<&larder::Error> {
        self.source.as_deref()?.downcast_ref()
    }
}

impl From<larder::Error> for Error {
    fn from(error: larder::Error) -> Self {
        Self::new(ErrorKind::Cache, format!("the cache failed: {error}")).with_source(error)
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::database("a database call", error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("stale_keys", &self.stale_keys)
            .finish_non_exhaustive()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_invalidation_after_commit_names_the_stale_keys() {
        let failure = larder::Error::new(larder::ErrorKind::Store, "connection refused");
        let error = Error::stale_after_commit(vec!["product:1".into()], vec![failure]);
        assert!(error.is_stale_after_commit());
        assert_eq!(error.stale_keys(), ["product:1"]);
        let text = error.to_string();
        assert!(text.contains("the write committed"), "{text}");
        assert!(text.contains("`product:1`"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(error.as_larder().is_some());
    }

    #[test]
    fn kinds_come_from_the_source() {
        assert!(Error::from(sqlx::Error::RowNotFound).is_database());
        assert!(Error::from(sqlx::Error::RowNotFound).as_sqlx().is_some());
        let cache = Error::from(larder::Error::new(larder::ErrorKind::Config, "bad prefix"));
        assert!(cache.is_cache());
        assert!(cache.stale_keys().is_empty());
    }

    #[test]
    fn each_kind_has_its_helper() {
        let error = |kind| Error::new(kind, "detail");
        assert!(error(ErrorKind::Config).is_config());
        assert!(error(ErrorKind::Stopped).is_stopped());
        assert!(!error(ErrorKind::Stopped).is_config());
        assert!(error(ErrorKind::Cache).as_larder().is_none());
        assert_eq!(error(ErrorKind::Config).to_string(), "detail");
    }
}
