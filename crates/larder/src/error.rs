//! The one error type of Larder.
//!
//! [`Error`] is opaque: match on [`Error::kind`] or use the `is_*` helpers.
//! Messages say what failed, with which input, and what to do; they never
//! contain cached bytes or connection passwords.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, broadly. New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting is missing or invalid (builder or environment).
    Config,
    /// The store (Redis) answered with an error or the connection failed.
    Store,
    /// A store call did not finish within the configured deadline.
    Timeout,
    /// The store answered but refused the command (Redis `WRONGTYPE`,
    /// `OOM`, `NOPERM`, …): it is up, so this does not trip the breaker.
    Rejected,
    /// The circuit breaker is open: the store failed repeatedly and is not
    /// being called until the next probe.
    CircuitOpen,
    /// A value could not be serialized.
    Encode,
    /// Stored bytes could not be decoded (corrupt, foreign or from another
    /// schema). The read path treats this as a miss.
    Decode,
    /// A value is larger than the configured maximum value size.
    TooLarge,
    /// A free function was called before a global cache was installed.
    NotInitialized,
    /// The global cache was installed twice.
    AlreadyInitialized,
    /// The origin failed for another caller whose computation this call
    /// waited for; its own error went to that caller. Only from
    /// [`Cache::try_get_or_compute`](crate::Cache::try_get_or_compute),
    /// converted into the caller's error type.
    Origin,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Store => "store error",
            ErrorKind::Timeout => "store call timed out",
            ErrorKind::Rejected => "store refused the command",
            ErrorKind::CircuitOpen => "circuit breaker open",
            ErrorKind::Encode => "cannot encode value",
            ErrorKind::Decode => "cannot decode cached value",
            ErrorKind::TooLarge => "value too large",
            ErrorKind::NotInitialized => "global cache not initialised",
            ErrorKind::AlreadyInitialized => "global cache already initialised",
            ErrorKind::Origin => "the origin failed for a concurrent caller",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error type of every fallible Larder operation.
pub struct Error {
    kind: ErrorKind,
    detail: Cow<'static, str>,
    source: Option<BoxError>,
}

/// `Result<T, larder::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a human-readable `detail` (what failed, with
    /// which input, what to do).
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
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

    /// The broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The store failed, timed out, refused the command or is cut off by the
    /// circuit breaker: the errors that fail-open mode turns into misses.
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Store | ErrorKind::Timeout | ErrorKind::Rejected | ErrorKind::CircuitOpen
        )
    }

    /// A store call exceeded its deadline.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Stored bytes could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.kind == ErrorKind::Decode
    }

    /// A setting is invalid.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// A value exceeded the maximum value size.
    pub fn is_too_large(&self) -> bool {
        self.kind == ErrorKind::TooLarge
    }

    /// The origin failed for the concurrent caller this call waited on.
    pub fn is_origin(&self) -> bool {
        self.kind == ErrorKind::Origin
    }

    pub(crate) fn config(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Config, detail)
    }

    pub(crate) fn decode(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Decode, detail)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_detail() {
        let err = Error::config("LARDER_TTL_JITTER=2 is outside 0..1");
        assert_eq!(
            err.to_string(),
            "invalid configuration: LARDER_TTL_JITTER=2 is outside 0..1"
        );
        assert!(err.is_config());
        assert!(!err.is_store_failure());
    }

    #[test]
    fn store_failures_are_grouped() {
        for kind in [
            ErrorKind::Store,
            ErrorKind::Timeout,
            ErrorKind::Rejected,
            ErrorKind::CircuitOpen,
        ] {
            assert!(Error::new(kind, "x").is_store_failure());
        }
        assert!(!Error::new(ErrorKind::Decode, "x").is_store_failure());
    }
}
