//! Support code shared by the `hit_path` and `cached_fn` benchmarks: the
//! cached `Product`, a recorder of timed calls, the benchmark runtime, the
//! interleaved (drift-cancelling) ratio and the ratio printing.
//!
//! Each bench includes this file with `mod support;`. It lives in a
//! subdirectory of `benches/`, which cargo does not treat as a bench target.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

/// The cached value: ~100 bytes of named MessagePack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// The product id.
    id: u64,
    /// A display name.
    name: String,
    /// The price in cents.
    price_cents: u64,
    /// A few tags.
    tags: Vec<String>,
}

/// The benchmarked product with the given `id`.
pub fn product(id: u64) -> Product {
    Product {
        id,
        name: "Cast-iron teapot, 1.2 litre, matte black".into(),
        price_cents: 4_999,
        tags: vec![
            "kitchen".into(),
            "tea".into(),
            "cast-iron".into(),
            "gift".into(),
        ],
    }
}

/// Every timed call of every variant: `(operations, elapsed)`, keyed by
/// `group/variant`. Each bench keeps one in a `static CALLS`.
#[derive(Debug)]
pub struct Recorder {
    /// How many trailing calls per variant are the measured ones (criterion's
    /// sample size; the warm-up calls come first).
    sample_size: usize,
    /// The calls, keyed by `group/variant`.
    calls: Mutex<BTreeMap<String, Vec<(u64, Duration)>>>,
}

impl Recorder {
    /// An empty recorder that keeps the last `sample_size` calls per variant
    /// as the measured ones.
    pub const fn new(sample_size: usize) -> Self {
        Self {
            sample_size,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one timed call of `group/variant`: `ops` operations in
    /// `elapsed`.
    pub fn record(&self, group: &str, variant: &str, ops: u64, elapsed: Duration) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{group}/{variant}"))
            .or_default()
            .push((ops, elapsed));
    }

    /// Mean nanoseconds per operation over the last `sample_size` calls.
    pub fn mean_ns(&self, group: &str, variant: &str) -> Option<f64> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let calls = calls.get(&format!("{group}/{variant}"))?;
        let measured = &calls[calls.len().saturating_sub(self.sample_size)..];
        let ops: u64 = measured.iter().map(|(ops, _)| ops).sum();
        let time: Duration = measured.iter().map(|(_, elapsed)| *elapsed).sum();
        (ops > 0).then(|| time.as_nanos() as f64 / ops as f64)
    }

    /// Prints the mean time per operation (and operations per second) of
    /// every recorded variant, after a blank line and a heading.
    pub fn print_means(&self) {
        println!();
        println!("mean time per operation over the measured samples:");
        let names: Vec<String> = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in names {
            let (group, variant) = name.split_once('/').unwrap_or((&name, ""));
            if let Some(ns) = self.mean_ns(group, variant) {
                println!("  {name:<46} {ns:>10.1} ns/op  {:>12.0} ops/s", 1e9 / ns);
            }
        }
    }

    /// Prints one ratio line of criterion means, `num / den` with `decimals`
    /// decimals, or says that a side was not measured.
    pub fn print_ratio(
        &self,
        label: &str,
        group: &str,
        num: &str,
        den: &str,
        explain: &str,
        decimals: usize,
    ) {
        match (self.mean_ns(group, num), self.mean_ns(group, den)) {
            (Some(n), Some(d)) => println!("ratio {label} = {:.decimals$}   ({explain})", n / d),
            _ => println!("ratio {label} = n/a   (not measured in this run)"),
        }
    }
}

/// The benchmark runtime: multi-threaded, 2 workers, all drivers enabled.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Rounds of the interleaved comparison.
pub const ROUNDS: usize = 15;

/// The result lines of `interleaved`, in the order they were measured.
static INTERLEAVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Times `num` and `den` alternately (`ROUNDS` times each, flipping which
/// goes first) and records the median of the per-round ratios `num / den`.
pub fn interleaved(
    label: &str,
    explain: &str,
    mut num: impl FnMut() -> Duration,
    mut den: impl FnMut() -> Duration,
) {
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|round| {
            let (n, d) = if round % 2 == 0 {
                let n = num();
                (n, den())
            } else {
                let d = den();
                (num(), d)
            };
            n.as_secs_f64() / d.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    INTERLEAVED.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
        "ratio {label} = {:.3} median of {ROUNDS} interleaved rounds (range {:.3}..{:.3}; {explain})",
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1],
    ));
}

/// Prints a heading and the lines recorded by `interleaved`.
pub fn print_interleaved() {
    println!("interleaved (same-run, drift-cancelling) ratios:");
    for line in INTERLEAVED.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{line}");
    }
}

/// `--test` (`cargo test --benches`) and `--list` time one call each.
pub fn quick_run() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list")
}
