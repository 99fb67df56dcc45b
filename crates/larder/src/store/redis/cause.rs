//! Why a Redis call failed, read once from the error redis-rs returns.
//!
//! redis-rs reports most causes by kind (`AuthenticationFailed`), server
//! code (`WRONGPASS`, `NOAUTH`) or the `io::ErrorKind` inside. Two have no
//! kind of their own and are recognised by fixed texts: a refused `SELECT`
//! at connection set-up (redis-rs's own description), and a failed DNS
//! lookup (std reports every `getaddrinfo` failure as an uncategorised I/O
//! error with the same prefix).

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::error::Cause;

/// The prefix of std's message for every failed host name lookup.
const LOOKUP_FAILED: &str = "failed to lookup address information";
/// redis-rs's description of a refused `SELECT` during connection set-up.
const SELECT_REFUSED: &str = "refused to switch database";

/// The cause of `err`.
pub(super) fn classify(err: &RedisError) -> Cause {
    if err.kind() == ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        return Cause::Auth;
    }
    if err.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && (err.detail().is_some_and(|d| d.contains("DB index"))
            || err.to_string().contains(SELECT_REFUSED))
    {
        return Cause::UnknownDatabase;
    }
    if err.kind() == ErrorKind::InvalidClientConfig
        && err.to_string().contains("No address found for host")
    {
        return Cause::UnknownHost;
    }
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(mut current) = next {
        // redis-rs hands out its wrapped error as the `Arc` that holds it.
        if let Some(inner) = current.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
            current = &**inner;
        }
        if is_tls(current) {
            return Cause::Tls;
        }
        if let Some(cause) = current.downcast_ref::<io::Error>().and_then(io_cause) {
            return cause;
        }
        next = current.source();
    }
    Cause::Other
}

fn io_cause(err: &io::Error) -> Option<Cause> {
    // `io::Error::source` skips the error it wraps: look at it here.
    if err.get_ref().is_some_and(|inner| is_tls(inner)) {
        return Some(Cause::Tls);
    }
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Some(Cause::Refused),
        // A Unix socket whose file is missing: nothing listens there.
        io::ErrorKind::NotFound => Some(Cause::Refused),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some(Cause::Timeout),
        // tokio-rustls: the server closed the connection mid-handshake.
        io::ErrorKind::UnexpectedEof if err.to_string().contains("tls handshake") => {
            Some(Cause::Tls)
        }
        _ if err.to_string().starts_with(LOOKUP_FAILED) => Some(Cause::UnknownHost),
        _ => None,
    }
}

#[cfg(feature = "tls")]
fn is_tls(err: &(dyn StdError + 'static)) -> bool {
    err.is::<rustls::Error>()
}

#[cfg(not(feature = "tls"))]
fn is_tls(_: &(dyn StdError + 'static)) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: io::ErrorKind, message: &str) -> RedisError {
        io::Error::new(kind, message.to_owned()).into()
    }

    #[test]
    fn authentication_failures() {
        let wrong: RedisError = (
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        )
            .into();
        assert_eq!(classify(&wrong), Cause::Auth);
        for code in ["WRONGPASS", "NOAUTH"] {
            let err = redis::make_extension_error(code.to_owned(), Some("x".to_owned()));
            assert_eq!(classify(&err), Cause::Auth, "{code}");
        }
        let noperm = redis::make_extension_error("NOPERM".to_owned(), None);
        assert_eq!(classify(&noperm), Cause::Other);
    }

    #[test]
    fn refused_select() {
        let err: RedisError = (
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "Redis server refused to switch database",
            "DB index is out of range".to_owned(),
        )
            .into();
        assert_eq!(classify(&err), Cause::UnknownDatabase);
        let other: RedisError = (
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "unknown command",
        )
            .into();
        assert_eq!(classify(&other), Cause::Other);
    }

    #[test]
    fn io_failures() {
        let lookup = io(
            io::ErrorKind::Other,
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(classify(&lookup), Cause::UnknownHost);
        let refused = io(io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(classify(&refused), Cause::Refused);
        let timed_out: RedisError = io::Error::from(io::ErrorKind::TimedOut).into();
        assert_eq!(classify(&timed_out), Cause::Timeout);
        let reset = io(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(classify(&reset), Cause::Other);
        let eof = io(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(classify(&eof), Cause::Tls);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rustls_errors_inside_io_errors() {
        let handshake = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, handshake.clone());
        assert_eq!(classify(&RedisError::from(wrapped)), Cause::Tls);
        assert_eq!(classify(&RedisError::from(handshake)), Cause::Tls);
    }
}
