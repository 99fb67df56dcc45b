//! `#[larder::cached]` under concurrency, on private redis-servers: one body
//! run for many concurrent cold calls, async and sync.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use larder::Cache;
use larder_test_support::RedisServer;

/// A repository whose methods are cached in its own cache.
struct Reports {
    cache: Cache,
    runs: AtomicUsize,
}

impl Reports {
    #[larder::cached(namespace = "expensive_report", ttl = 3600, cache = self.cache, receiver = "skip")]
    async fn generate(&self, report_id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        format!("report {report_id}")
    }

    #[larder::cached(namespace = "job_stats", ttl = 3600, cache = self.cache, receiver = "skip")]
    fn statistics(&self, job_type: String) -> usize {
        self.runs.fetch_add(1, Ordering::SeqCst);
        job_type.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_cold_calls_run_the_body_once() {
    let server = RedisServer::spawn();
    let reports = Arc::new(Reports {
        cache: common::redis_cache(&server, |b| b).await,
        runs: AtomicUsize::new(0),
    });
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let reports = Arc::clone(&reports);
            tokio::spawn(async move { reports.generate(7).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "report 7");
    }
    assert_eq!(reports.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        reports.generate_peek(7).await.unwrap().as_deref(),
        Some("report 7")
    );
}

#[test]
fn eight_threads_calling_a_sync_function_at_once_run_the_body_once() {
    let server = RedisServer::spawn();
    let config = larder::Config::builder()
        .redis_url(server.url())
        .build()
        .unwrap();
    let reports = Arc::new(Reports {
        cache: larder::block_on(Cache::connect(config)).unwrap(),
        runs: AtomicUsize::new(0),
    });
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (reports, start) = (Arc::clone(&reports), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                reports.statistics("plumbing".into())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 8);
    }
    assert_eq!(reports.runs.load(Ordering::SeqCst), 1);
}
