//! [`ChangeFeedError`]: what went wrong in the change feed, and what kind
//! of failure it was.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure a [`ChangeFeedError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeFeedErrorKind {
    /// A name or setting that cannot be used (an identifier PostgreSQL
    /// would truncate, a table watched twice for one model…). Fix the call.
    Config,
    /// PostgreSQL refused or could not be reached.
    Database,
    /// The cache failed to invalidate or to bump a generation; the feed
    /// keeps retrying the bump.
    Cache,
    /// The feed's task has stopped (shut down, or the runtime is gone).
    Stopped,
}

/// A change-feed failure: what failed, with what input, and its cause.
///
/// Never prints a connection string: sqlx's errors do not carry one.
pub struct ChangeFeedError {
    kind: ChangeFeedErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl ChangeFeedError {
    pub(crate) fn new(kind: ChangeFeedErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn database(message: impl Into<String>, source: sqlx::Error) -> Self {
        Self {
            kind: ChangeFeedErrorKind::Database,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ChangeFeedErrorKind {
        self.kind
    }

    /// Whether PostgreSQL failed.
    pub fn is_database(&self) -> bool {
        self.kind == ChangeFeedErrorKind::Database
    }

    /// Whether a name or setting was refused.
    pub fn is_config(&self) -> bool {
        self.kind == ChangeFeedErrorKind::Config
    }

    /// Whether the cache failed.
    pub fn is_cache(&self) -> bool {
        self.kind == ChangeFeedErrorKind::Cache
    }

    /// Whether the feed had stopped.
    pub fn is_stopped(&self) -> bool {
        self.kind == ChangeFeedErrorKind::Stopped
    }
}

impl fmt::Display for ChangeFeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChangeFeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeedError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for ChangeFeedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}
