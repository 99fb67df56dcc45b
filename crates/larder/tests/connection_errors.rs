//! What a newcomer sees when Redis cannot be reached: one WARN line that
//! names the cause, and in fail-closed mode an error whose `is_*` helper
//! names it and whose source is the underlying Redis error.
//!
//! Every case runs against processes and ports the test sets up itself
//! (private redis-servers, a port nobody listens on), never the shared Redis
//! on 6379. The runtime is current-thread, so Larder's connection tasks log
//! on the thread whose tracing output is captured.

use std::error::Error as _;
use std::io::{self, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use larder::store::Store;
use larder::{Cache, Config, Error, FailMode};
use larder_test_support::RedisServer;
use tracing::subscriber::DefaultGuard;

const PASSWORD: &str = "right-horse-battery";
const WRONG_PASSWORD: &str = "wrong-staple";
/// Long enough for a DNS answer on a busy machine; the causes under test
/// (other than the frozen server) all fail well before it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for something Redis gives no signal for.
const PATIENCE: Duration = Duration::from_secs(15);

/// An `is_*` helper of [`Error`].
type Helper = fn(&Error) -> bool;

/// Every `is_*` helper for a connection cause.
const HELPERS: [(&str, Helper); 6] = [
    ("is_auth_failure", Error::is_auth_failure),
    ("is_unknown_database", Error::is_unknown_database),
    ("is_unknown_host", Error::is_unknown_host),
    ("is_connection_refused", Error::is_connection_refused),
    ("is_tls_failure", Error::is_tls_failure),
    ("is_timeout", Error::is_timeout),
];

/// The tracing output of this thread, at every level, as plain text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Captures this thread's tracing output until the guard is dropped.
    fn capture() -> (Log, DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        let buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// The lines containing `needle`.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// How many failed connection attempts were logged, at any level.
    fn failed_attempts(&self) -> usize {
        self.lines_with("cannot connect to Redis").len()
    }

    /// The WARN lines saying that Larder cannot connect.
    fn connect_warnings(&self) -> Vec<String> {
        self.lines_with("cannot connect to Redis")
            .into_iter()
            .filter(|line| line.contains(" WARN "))
            .collect()
    }
}

fn config(url: &str, mode: FailMode, connect_timeout: Duration) -> Config {
    Config::builder()
        .redis_url(url)
        .fail_mode(mode)
        .connect_timeout(connect_timeout)
        .build()
        .expect("a valid test config")
}

/// What connecting to one unreachable URL produced.
struct Diagnosis {
    /// Everything logged while a fail-open cache started and served calls.
    log: String,
    /// Its WARN lines about connecting.
    warnings: Vec<String>,
    /// What a fail-closed `Cache::connect` returned.
    error: Error,
}

/// Starts a fail-open cache on `url` (it must start, and its calls fail),
/// then a fail-closed one (it must refuse).
async fn diagnose(url: &str, connect_timeout: Duration) -> Diagnosis {
    let (log, guard) = Log::capture();
    let cache = Cache::connect(config(url, FailMode::Open, connect_timeout))
        .await
        .expect("a fail-open cache starts whatever Redis does");
    // The start-up attempt and two reconnections fail; only the first
    // may warn.
    fail_calls_until(&log, cache.store(), 3).await;
    drop(guard);
    let error = Cache::connect(config(url, FailMode::Closed, connect_timeout))
        .await
        .expect_err("a fail-closed cache refuses to start");
    Diagnosis {
        log: log.text(),
        warnings: log.connect_warnings(),
        error,
    }
}

/// Makes calls on `store`, each failing at once, until `attempts` failed
/// connection attempts have been logged in all: a call while Redis is
/// unreachable schedules the next attempt after a backoff, and Redis gives
/// no signal, so the log is polled.
async fn fail_calls_until(log: &Log, store: &Arc<dyn Store>, attempts: usize) {
    let started = Instant::now();
    let mut failed_calls = 0;
    while log.failed_attempts() < attempts {
        assert!(
            started.elapsed() < PATIENCE,
            "fewer than {attempts} connection attempts: {}",
            log.text()
        );
        let call = store.get("product:1").await;
        assert!(call.is_err(), "a call succeeded: {}", log.text());
        failed_calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failed_calls > 1, "only {failed_calls} calls were made");
}

/// One warning naming `cause` (in the `cause=` field and in `words`), and a
/// fail-closed error for which `helper`, and only it, is true, that says
/// `words` and whose source is the Redis error.
fn assert_diagnosed(diagnosis: &Diagnosis, cause: &str, words: &str, helper: &str) {
    let Diagnosis {
        warnings, error, ..
    } = diagnosis;
    assert_eq!(
        warnings.len(),
        1,
        "one warning per failure to connect, not one per call: {warnings:#?}"
    );
    let line = &warnings[0];
    assert!(line.contains(&format!("cause={cause}")), "{line}");
    assert!(line.contains(words), "{line}");
    assert!(
        line.contains("error="),
        "the underlying error is logged: {line}"
    );

    assert!(error.is_store_failure(), "{error:?}");
    assert!(error.to_string().contains(words), "{error}");
    let true_helpers: Vec<&str> = HELPERS
        .iter()
        .filter(|(_, is)| is(error))
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(true_helpers, [helper], "{error:?}");
    let source = error.source().expect("the error carries its source");
    assert!(
        source.downcast_ref::<redis::RedisError>().is_some(),
        "the source is the Redis error: {source:?}"
    );
}

fn redis_source(error: &Error) -> &redis::RedisError {
    error
        .source()
        .and_then(|source| source.downcast_ref())
        .expect("a Redis error as the source")
}

/// A loopback port that nothing listens on: the OS picks a free one for a
/// listener, which is closed at once.
fn port_nobody_listens_on() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("the listener's address")
        .port()
}

#[tokio::test]
async fn wrong_password_is_an_auth_failure() {
    let server = RedisServer::builder()
        .args(["--requirepass", PASSWORD])
        .spawn();
    let url = format!("redis://:{WRONG_PASSWORD}@{}/", server.addr());
    let diagnosis = diagnose(&url, CONNECT_TIMEOUT).await;
    assert_diagnosed(
        &diagnosis,
        "auth",
        "Redis refused the credentials",
        "is_auth_failure",
    );
    assert_eq!(
        redis_source(&diagnosis.error).kind(),
        redis::ErrorKind::AuthenticationFailed
    );
    let error = &diagnosis.error;
    let printed = format!("{} {error} {error:?}", diagnosis.log);
    assert!(!printed.contains(WRONG_PASSWORD), "{printed}");
    assert!(!printed.contains(PASSWORD), "{printed}");

    let right = format!("redis://:{PASSWORD}@{}/", server.addr());
    Cache::connect(config(&right, FailMode::Closed, CONNECT_TIMEOUT))
        .await
        .expect("the right password connects");
}

#[tokio::test]
async fn missing_password_is_an_auth_failure() {
    let server = RedisServer::builder()
        .args(["--requirepass", PASSWORD])
        .spawn();
    let diagnosis = diagnose(&server.url(), CONNECT_TIMEOUT).await;
    assert_diagnosed(
        &diagnosis,
        "auth",
        "Redis refused the credentials",
        "is_auth_failure",
    );
    assert_eq!(redis_source(&diagnosis.error).code(), Some("NOAUTH"));
}

#[tokio::test]
async fn bad_database_index_is_an_unknown_database() {
    let server = RedisServer::spawn();
    let diagnosis = diagnose(&format!("{}99", server.url()), CONNECT_TIMEOUT).await;
    assert_diagnosed(
        &diagnosis,
        "unknown_database",
        "refused to switch to the database index",
        "is_unknown_database",
    );
    assert!(
        diagnosis.warnings[0].contains("DB index is out of range"),
        "{:?}",
        diagnosis.warnings
    );

    Cache::connect(config(
        &format!("{}15", server.url()),
        FailMode::Closed,
        CONNECT_TIMEOUT,
    ))
    .await
    .expect("database 15 of 16 exists");
}

#[tokio::test]
async fn unknown_host_is_a_dns_failure() {
    let diagnosis = diagnose("redis://no-such-host.invalid:6379", CONNECT_TIMEOUT).await;
    assert_diagnosed(
        &diagnosis,
        "unknown_host",
        "does not resolve",
        "is_unknown_host",
    );
    assert!(redis_source(&diagnosis.error).is_io_error());
}

#[tokio::test]
async fn closed_port_is_a_refused_connection() {
    let url = format!("redis://127.0.0.1:{}/", port_nobody_listens_on());
    let diagnosis = diagnose(&url, CONNECT_TIMEOUT).await;
    assert_diagnosed(
        &diagnosis,
        "refused",
        "connection was refused",
        "is_connection_refused",
    );
    assert!(redis_source(&diagnosis.error).is_connection_refusal());
}

#[tokio::test]
async fn frozen_server_is_a_timeout() {
    let server = RedisServer::spawn();
    let pid = server.pid().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -STOP {pid}");
    // The port accepts connections (the kernel queues them) but the server
    // never answers: each attempt runs into the connect timeout.
    let diagnosis = diagnose(&server.url(), Duration::from_millis(300)).await;
    assert_diagnosed(
        &diagnosis,
        "timeout",
        "did not answer within the connect timeout",
        "is_timeout",
    );
    assert!(redis_source(&diagnosis.error).is_timeout());
    // Dropping the server kills it with SIGKILL, stopped or not.
}

/// Warns when the store goes from working to failing, once per outage
/// however many calls and reconnection attempts fail during it.
#[tokio::test]
async fn warns_once_per_outage_not_once_per_call() {
    let mut server = RedisServer::spawn();
    let (log, _guard) = Log::capture();
    let cache = Cache::connect(config(&server.url(), FailMode::Open, CONNECT_TIMEOUT))
        .await
        .expect("a fail-open cache starts");
    let store = cache.store();
    store
        .set("product:1", "v".into(), Duration::from_secs(3600))
        .await
        .expect("Redis answers");
    assert!(log.connect_warnings().is_empty(), "{}", log.text());

    for outage in 1..=2 {
        server.kill();
        fail_calls_until(&log, store, 3 * outage).await;
        let warnings = log.connect_warnings();
        assert_eq!(warnings.len(), outage, "{warnings:#?}");
        assert!(
            warnings[outage - 1].contains("cause=refused"),
            "{warnings:#?}"
        );

        server.restart();
        let started = Instant::now();
        while store.get("product:1").await.is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "no reconnection: {}",
                log.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.lines_with("reconnected to Redis").len(), outage);
    }
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    /// A self-signed certificate and its key in a temporary directory,
    /// made with the `openssl` command-line tool; removed on drop.
    struct SelfSigned {
        dir: std::path::PathBuf,
    }

    impl SelfSigned {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("larder-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create a directory for the certificate");
            let output = std::process::Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("cert.pem"))
                .output()
                .unwrap_or_else(|err| {
                    panic!(
                        "cannot run openssl ({err}); install it (Debian/Ubuntu: \
                         `apt-get install -y openssl`)"
                    )
                });
            assert!(
                output.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            Self { dir }
        }
    }

    impl Drop for SelfSigned {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A TLS-only redis-server whose certificate no root vouches for: the
    /// handshake fails on certificate verification.
    #[tokio::test]
    async fn untrusted_certificate_is_a_tls_failure() {
        let certificate = SelfSigned::new();
        let tls_port = port_nobody_listens_on().to_string();
        let server = RedisServer::builder()
            .args([
                "--port",
                "0",
                "--tls-port",
                &tls_port,
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(certificate.dir.join("cert.pem"))
            .arg("--tls-key-file")
            .arg(certificate.dir.join("key.pem"))
            .spawn();
        let url = format!("rediss://localhost:{tls_port}/");
        let diagnosis = diagnose(&url, CONNECT_TIMEOUT).await;
        assert_diagnosed(
            &diagnosis,
            "tls",
            "the TLS handshake failed",
            "is_tls_failure",
        );
        assert!(redis_source(&diagnosis.error).is_io_error());
        drop(server);
    }
}
