//! A `#[cached]` function called before `larder::init` runs uncached, and
//! the first such call in the process is logged at warn level, naming the
//! function and its namespace. One test: the global cache and the tracing
//! subscriber are installed once per process.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use larder_test_support::RedisServer;

static QUERIES: AtomicUsize = AtomicUsize::new(0);

fn queries() -> usize {
    QUERIES.load(Ordering::SeqCst)
}

/// Get user data from the database.
#[larder::cached(namespace = "user_data", ttl = 3600)]
async fn get_user_data(user_id: u64) -> String {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    format!("User {user_id}")
}

/// Count jobs of one type.
#[larder::cached(ttl = 3600)]
fn count_jobs(job_type: String) -> usize {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    job_type.len()
}

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn warnings(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|line| line.contains("WARN") && line.contains("before larder::init"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_before_init_run_uncached_and_warn_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // Before init: every call runs the body.
    assert_eq!(get_user_data(42).await, "User 42");
    assert_eq!(get_user_data(42).await, "User 42");
    let jobs = tokio::task::spawn_blocking(|| count_jobs("plumbing".into()))
        .await
        .unwrap();
    assert_eq!(jobs, 8);
    assert_eq!(queries(), 3);

    let warnings = captured.warnings();
    assert_eq!(warnings.len(), 1, "one warning per process: {warnings:#?}");
    let warning = &warnings[0];
    assert!(
        warning.contains("cached_before_init::get_user_data"),
        "names the function: {warning}"
    );
    assert!(
        warning.contains("namespace=\"user_data\""),
        "names the namespace: {warning}"
    );
    assert!(
        warning.contains("larder::init"),
        "says what to do: {warning}"
    );

    // Companions return an error instead, and warn about nothing.
    let err = get_user_data_peek(42).await.unwrap_err();
    assert_eq!(err.kind(), larder::ErrorKind::NotInitialized);

    // After init: cached, and still that one warning.
    let server = RedisServer::spawn();
    larder::init(common::redis_cache(&server, |b| b).await).unwrap();
    assert_eq!(get_user_data(42).await, "User 42");
    assert_eq!(get_user_data(42).await, "User 42");
    assert_eq!(queries(), 4);
    assert_eq!(
        get_user_data_peek(42).await.unwrap().as_deref(),
        Some("User 42")
    );
    assert_eq!(captured.warnings().len(), 1, "{:#?}", captured.warnings());
}
