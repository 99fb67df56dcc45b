//! `larder_coalesced_total` counts each waiting call once, however often it
//! has to wait (a failing origin makes waiters retry).

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_counts_each_waiting_call_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let cache = larder::Cache::in_memory();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            let mut go = go_rx.clone();
            tokio::spawn(async move {
                cache
                    .try_get_or_compute("report:1", Duration::from_secs(60), || async move {
                        let _ = go.wait_for(|go| *go).await;
                        Err::<u32, larder::Error>(larder::Error::new(
                            larder::ErrorKind::Store,
                            "db down",
                        ))
                    })
                    .await
            })
        })
        .collect();
    // Let the four calls meet in the flight; then the origin fails for each.
    tokio::time::sleep(Duration::from_millis(100)).await;
    go_tx.send(true).unwrap();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    let coalesced: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "larder_coalesced_total")
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert!(
        coalesced <= 3,
        "4 misses, at most 3 waited, but coalesced = {coalesced}"
    );
    assert!(coalesced >= 1, "the calls did meet in one flight");
}
