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

/// Why a connection to the store failed, when that is known. Recorded where
/// the error is made (`store/redis/cause.rs` classifies a Redis error once);
/// read through the `is_*` helpers of [`Error`] and named in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The credentials were refused (`WRONGPASS`, a failed `AUTH`, `NOAUTH`).
    Auth,
    /// Redis refused to switch to the database index of the URL.
    UnknownDatabase,
    /// The host name did not resolve.
    UnknownHost,
    /// Nothing listens at the address: the connection was refused.
    Refused,
    /// The TLS handshake failed.
    Tls,
    /// Connecting, or the first answer, took longer than the connect timeout.
    Timeout,
    /// Anything else (a reset connection, an unreachable network, …).
    Other,
}

impl Cause {
    /// A short, stable name for log fields (`cause=auth`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cause::Auth => "auth",
            Cause::UnknownDatabase => "unknown_database",
            Cause::UnknownHost => "unknown_host",
            Cause::Refused => "refused",
            Cause::Tls => "tls",
            Cause::Timeout => "timeout",
            Cause::Other => "other",
        }
    }

    /// What happened and what to do, in words.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Cause::Auth => {
                "Redis refused the credentials (wrong password or user, or none where \
                 the server requires one); check the user and password in REDIS_URL"
            }
            Cause::UnknownDatabase => {
                "Redis refused to switch to the database index in REDIS_URL (the `/N` \
                 after the port); it must be below the server's `databases` setting \
                 (16 by default)"
            }
            Cause::UnknownHost => {
                "the host name in REDIS_URL does not resolve (DNS lookup failed); check \
                 its spelling and the resolver"
            }
            Cause::Refused => {
                "the connection was refused: nothing listens at the host and port in \
                 REDIS_URL; check that Redis runs and the port is right"
            }
            Cause::Tls => {
                "the TLS handshake failed; check that the server speaks TLS on that \
                 port and that its certificate is valid and trusted"
            }
            Cause::Timeout => {
                "Redis did not answer within the connect timeout \
                 (LARDER_CONNECT_TIMEOUT_MS); check the host, the port and firewalls"
            }
            Cause::Other => "the connection failed",
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error type of every fallible Larder operation.
pub struct Error {
    kind: ErrorKind,
    detail: Cow<'static, str>,
    cause: Option<Cause>,
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
            cause: None,
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

    /// Records why the store could not be reached.
    #[must_use]
    pub(crate) fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
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

    /// A store call exceeded its deadline, or connecting to the store took
    /// longer than the connect timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout || self.cause == Some(Cause::Timeout)
    }

    /// Redis refused the credentials: a wrong password or user in the URL
    /// (`WRONGPASS`, a failed `AUTH`), or none where the server requires one
    /// (`NOAUTH`).
    pub fn is_auth_failure(&self) -> bool {
        self.cause == Some(Cause::Auth)
    }

    /// Redis refused to switch to the database index in the URL (`/99` on a
    /// server with 16 databases: `ERR DB index is out of range`).
    pub fn is_unknown_database(&self) -> bool {
        self.cause == Some(Cause::UnknownDatabase)
    }

    /// The host name in the URL did not resolve (DNS).
    pub fn is_unknown_host(&self) -> bool {
        self.cause == Some(Cause::UnknownHost)
    }

    /// The connection was refused: nothing listens at the URL's host and
    /// port (or, for a Unix socket, the socket file does not exist).
    pub fn is_connection_refused(&self) -> bool {
        self.cause == Some(Cause::Refused)
    }

    /// The TLS handshake failed (a `rediss://` URL, with the `tls` feature):
    /// an untrusted or invalid certificate, or no TLS on that port.
    pub fn is_tls_failure(&self) -> bool {
        self.cause == Some(Cause::Tls)
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
            .field("cause", &self.cause)
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

    #[test]
    fn each_cause_answers_its_own_helper_only() {
        type Helper = fn(&Error) -> bool;
        let helpers: [(Cause, Helper); 6] = [
            (Cause::Auth, Error::is_auth_failure),
            (Cause::UnknownDatabase, Error::is_unknown_database),
            (Cause::UnknownHost, Error::is_unknown_host),
            (Cause::Refused, Error::is_connection_refused),
            (Cause::Tls, Error::is_tls_failure),
            (Cause::Timeout, Error::is_timeout),
        ];
        for (cause, _) in helpers {
            let err = Error::new(ErrorKind::Store, "x").with_cause(cause);
            for (other, helper) in helpers {
                assert_eq!(helper(&err), other == cause, "{cause:?} vs {other:?}");
            }
        }
        let plain = Error::new(ErrorKind::Store, "x");
        assert!(helpers.iter().all(|(_, helper)| !helper(&plain)));
    }
}
