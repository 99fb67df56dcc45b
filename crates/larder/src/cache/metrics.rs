//! Metrics, labelled by namespace: the first `:`-separated segment of the
//! logical key (`product` for `product:1`, `user_data` for a function key).
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `larder_hits_total` | counter | reads answered by the cache (either tier) |
//! | `larder_local_hits_total` | counter | of those, reads answered by the in-process (L1) tier |
//! | `larder_misses_total` | counter | reads not answered (absent, expired, undecodable, store failure) |
//! | `larder_store_errors_total` | counter | store calls that failed or timed out (label `op`) |
//! | `larder_breaker_rejections_total` | counter | store calls skipped because the breaker is open |
//! | `larder_decode_failures_total` | counter | stored values that could not be decoded: corrupt or foreign bytes (removed) |
//! | `larder_shape_mismatches_total` | counter | intact values of another shape of the type, or of another model version or schema, e.g. from another build during a rolling deploy (misses, kept) |
//! | `larder_oversize_total` | counter | values over `max_value_bytes`, not cached |
//! | `larder_coalesced_total` | counter | misses that waited for another caller's computation |
//! | `larder_lease_wins_total` | counter | leases taken (this caller computes) |
//! | `larder_lease_losses_total` | counter | misses that found another process's lease and waited |
//! | `larder_early_refreshes_total` | counter | XFetch refreshes before expiry |
//! | `larder_stale_serves_total` | counter | values served in their grace period (refreshing, or origin failing) |
//! | `larder_fills_rejected_total` | counter | fills refused because an invalidation voided the lease |
//! | `larder_compute_seconds` | histogram | time spent in the origin on a miss |
//! | `larder_fill_seconds` | histogram | time to store a computed value |
//!
//! Handles are registered once per namespace and reused, so the hit path does
//! not build label sets. Tracing: misses run the origin inside a
//! `larder.compute` span (field `key`) and pattern invalidations inside
//! `larder.invalidate_pattern` (`pattern`, `removed`); store failures, breaker
//! changes and undecodable entries are events. Hits create no span: they are
//! the hot path. Namespaces beyond the first 256 share the label
//! `_other`, which bounds the label cardinality whatever the keys look like.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use metrics::{Counter, Histogram, counter, histogram};

const MAX_NAMESPACES: usize = 256;
const OVERFLOW: &str = "_other";

/// The handles of one namespace.
#[derive(Debug)]
pub(crate) struct NamespaceMetrics {
    pub(crate) hits: Counter,
    pub(crate) local_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) decode_failures: Counter,
    pub(crate) shape_mismatches: Counter,
    pub(crate) oversize: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) lease_wins: Counter,
    pub(crate) lease_losses: Counter,
    pub(crate) early_refreshes: Counter,
    pub(crate) stale_serves: Counter,
    pub(crate) fills_rejected: Counter,
    pub(crate) compute: Histogram,
    pub(crate) fill: Histogram,
}

impl NamespaceMetrics {
    fn register(namespace: &str) -> Self {
        let ns = namespace.to_owned();
        Self {
            hits: counter!("larder_hits_total", "namespace" => ns.clone()),
            local_hits: counter!("larder_local_hits_total", "namespace" => ns.clone()),
            misses: counter!("larder_misses_total", "namespace" => ns.clone()),
            decode_failures: counter!("larder_decode_failures_total", "namespace" => ns.clone()),
            shape_mismatches: counter!("larder_shape_mismatches_total", "namespace" => ns.clone()),
            oversize: counter!("larder_oversize_total", "namespace" => ns.clone()),
            coalesced: counter!("larder_coalesced_total", "namespace" => ns.clone()),
            lease_wins: counter!("larder_lease_wins_total", "namespace" => ns.clone()),
            lease_losses: counter!("larder_lease_losses_total", "namespace" => ns.clone()),
            early_refreshes: counter!("larder_early_refreshes_total", "namespace" => ns.clone()),
            stale_serves: counter!("larder_stale_serves_total", "namespace" => ns.clone()),
            fills_rejected: counter!("larder_fills_rejected_total", "namespace" => ns.clone()),
            compute: histogram!("larder_compute_seconds", "namespace" => ns.clone()),
            fill: histogram!("larder_fill_seconds", "namespace" => ns),
        }
    }
}

pub(crate) use crate::key::namespace_of;

/// Per-namespace handles, read without locks: the map is replaced as a
/// whole (copy-on-write) when a namespace is first seen, which is rare, so a
/// hit writes no shared memory beyond the counter itself.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    namespaces: ArcSwap<HashMap<Box<str>, Arc<NamespaceMetrics>>>,
}

impl Metrics {
    /// Runs `f` with the handles for the namespace of `logical`.
    pub(crate) fn with<R>(&self, logical: &str, f: impl FnOnce(&NamespaceMetrics) -> R) -> R {
        let namespace = namespace_of(logical);
        {
            let namespaces = self.namespaces.load();
            if let Some(found) = namespaces.get(namespace) {
                return f(found);
            }
            if namespaces.len() >= MAX_NAMESPACES
                && let Some(overflow) = namespaces.get(OVERFLOW)
            {
                return f(overflow);
            }
        }
        f(&self.register(namespace))
    }

    #[cold]
    fn register(&self, namespace: &str) -> Arc<NamespaceMetrics> {
        let mut registered = None;
        self.namespaces.rcu(|current| {
            let mut next = HashMap::clone(current);
            // One slot stays free for the overflow label.
            let label = if next.len() >= MAX_NAMESPACES - 1 && !next.contains_key(namespace) {
                OVERFLOW
            } else {
                namespace
            };
            let handles = next
                .entry(label.into())
                .or_insert_with(|| Arc::new(NamespaceMetrics::register(label)));
            registered = Some(Arc::clone(handles));
            next
        });
        registered.unwrap_or_else(|| Arc::new(NamespaceMetrics::register(OVERFLOW)))
    }

    pub(crate) fn store_error(store: &'static str, op: &'static str) {
        counter!("larder_store_errors_total", "store" => store, "op" => op).increment(1);
    }

    pub(crate) fn breaker_rejection(store: &'static str) {
        counter!("larder_breaker_rejections_total", "store" => store).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_first_segment() {
        assert_eq!(namespace_of("product:1"), "product");
        assert_eq!(namespace_of("user:123:profile"), "user");
        assert_eq!(namespace_of("plain"), "plain");
    }

    #[test]
    fn label_cardinality_is_bounded() {
        let metrics = Metrics::default();
        for i in 0..(MAX_NAMESPACES + 50) {
            metrics.with(&format!("session-{i}"), |m| m.hits.increment(1));
        }
        assert_eq!(metrics.namespaces.load().len(), MAX_NAMESPACES);
    }
}
