//! The in-process (L1) tier: decoded values in front of the store.
//!
//! An entry is an `Arc` of the decoded value, so a hit costs a hash lookup
//! and a clone, no round trip and no decode. The backend is `quick_cache`
//! (chosen by `benches/local_tier.rs`: typed `Arc` reads took 0.17–0.19× of
//! moka's, one and two threads), bounded by a byte weight; every entry
//! weighs at least `capacity / max_entries`, which bounds the count too.
//! `quick_cache` has no TTL: each entry keeps its own deadline — the
//! shorter of its L1 TTL and the time its store copy has left — and is
//! checked on read.
//!
//! # Coherence
//!
//! Every invalidation bumps a sequence number. Keys and tags hash into
//! 4,096 buckets each, and a bucket remembers the sequence number of the
//! last invalidation that hit it (false sharing only costs a miss). A read
//! that may fill the tier takes a [`Ticket`] — the sequence number —
//! **before** it asks the store, and the entry it inserts carries it: the
//! entry is served only while its key's bucket, its tags' buckets and the
//! last flush are all no newer than the ticket. So an invalidation that
//! lands while the store read is in flight voids the entry, whether it
//! lands before or after the insert. Patterns cannot be bucketed: a pattern
//! invalidation is logged and then removes the matching entries; an insert
//! checks the log after inserting (and removes its entry if a pattern since
//! its ticket matches), so one of the two sees the other.
//!
//! The tier serves only while it *hears* the channel invalidations come on
//! (see `signals.rs`): the subscription is up and answers pings. Losing it
//! empties the tier and stops inserts until it is back.

pub(crate) mod message;

use std::any::Any;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use self::message::Invalidation;
use crate::key::glob_match;

/// Hash buckets for keys, and for tags.
const BUCKETS: usize = 4096;
/// Pattern invalidations remembered for inserts in flight; an insert whose
/// ticket is older than the oldest one remembered is refused.
const PATTERN_LOG: usize = 256;
/// What an entry costs beyond its key and value: the slot, the `Arc`s and
/// the table's share.
const ENTRY_OVERHEAD: u64 = 96;

/// The L1's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
}

/// A value as the tier holds it: shared, typed at run time.
pub(crate) type LocalValue = Arc<dyn Any + Send + Sync>;

/// The sequence number a store read took before it began: the entry it
/// inserts is void if an invalidation came after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct LocalTier {
    bounds: Bounds,
    entries: OnceLock<Entries>,
    hasher: std::hash::RandomState,
    seq: AtomicU64,
    keys: Box<[AtomicU64]>,
    tags: Box<[AtomicU64]>,
    flushed: AtomicU64,
    patterns: Mutex<PatternLog>,
    hearing: AtomicBool,
    /// When the tier was made: `heard_until` counts from it.
    epoch: Instant,
    /// How long an answered ping vouches for the subscription.
    ping_interval: Duration,
    /// Nanoseconds since `epoch` until which the last answered ping
    /// vouches: a subscriber that stops running (a panic, a frozen task)
    /// stops the tier within a ping interval, whatever else happens.
    heard_until: AtomicU64,
    /// Off only in tests that show what the guard prevents.
    guard: AtomicBool,
    /// Counts applied invalidations, flushes and returns to hearing: tests
    /// and the propagation measurement wait on it instead of sleeping.
    applied: watch::Sender<u64>,
}

type Entries = quick_cache::sync::Cache<String, Slot, Weight>;

#[derive(Clone)]
struct Slot(Arc<SlotData>);

struct SlotData {
    value: LocalValue,
    expires: Instant,
    ticket: u64,
    key_bucket: u16,
    tag_buckets: Box<[u16]>,
    size: u64,
}

#[derive(Clone)]
struct Weight {
    floor: u64,
}

impl quick_cache::Weighter<String, Slot> for Weight {
    fn weight(&self, key: &String, slot: &Slot) -> u64 {
        (key.len() as u64 + slot.0.size + ENTRY_OVERHEAD).max(self.floor)
    }
}

#[derive(Default)]
struct PatternLog {
    recent: VecDeque<(u64, String)>,
    /// Tickets at or below this may have missed a forgotten pattern.
    floor: u64,
}

impl std::fmt::Debug for LocalTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTier")
            .field("bounds", &self.bounds)
            .field("entries", &self.len())
            .field("hearing", &self.hearing())
            .finish_non_exhaustive()
    }
}

impl LocalTier {
    pub(crate) fn new(bounds: Bounds, ping_interval: Duration) -> Self {
        let buckets = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds,
            entries: OnceLock::new(),
            hasher: std::hash::RandomState::new(),
            seq: AtomicU64::new(0),
            keys: buckets(),
            tags: buckets(),
            flushed: AtomicU64::new(0),
            patterns: Mutex::new(PatternLog::default()),
            hearing: AtomicBool::new(false),
            epoch: Instant::now(),
            ping_interval,
            heard_until: AtomicU64::new(0),
            guard: AtomicBool::new(true),
            applied: watch::channel(0).0,
        }
    }

    /// The table, made on first insert: caches that never use the tier
    /// allocate nothing.
    fn entries(&self) -> &Entries {
        self.entries.get_or_init(|| {
            let bytes = self.bounds.bytes.max(1);
            let entries = self.bounds.entries.max(1);
            let floor = (bytes / entries).max(1);
            let estimated = usize::try_from(entries.min(bytes / 256).max(16)).unwrap_or(16);
            quick_cache::sync::Cache::with_weighter(estimated, bytes, Weight { floor })
        })
    }

    fn bucket(&self, text: &str) -> u16 {
        let mut hasher = self.hasher.build_hasher();
        text.hash(&mut hasher);
        (std::hash::Hasher::finish(&hasher) % BUCKETS as u64) as u16
    }

    /// Whether the tier hears invalidations now.
    pub(crate) fn hearing(&self) -> bool {
        self.hearing.load(Ordering::Acquire)
    }

    /// The subscription is up: the tier may fill again.
    pub(crate) fn hear(&self) {
        self.pong();
        self.hearing.store(true, Ordering::Release);
        self.applied.send_modify(|count| *count += 1);
    }

    /// A ping on the subscription was answered: it vouches for another
    /// ping interval.
    pub(crate) fn pong(&self) {
        let until = self
            .nanos(Instant::now())
            .saturating_add(nanos(self.ping_interval));
        self.heard_until.fetch_max(until, Ordering::AcqRel);
    }

    fn nanos(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.epoch))
    }

    /// The subscription is lost (or stopped answering): empty the tier and
    /// stop filling it.
    pub(crate) fn deafen(&self) {
        self.stop();
        self.apply(&Invalidation::Flush);
    }

    /// Stops serving and filling at once, without touching the entries
    /// (whose drops run user code): what a failing subscriber task does
    /// on its way out. Every entry is void from here on.
    pub(crate) fn stop(&self) {
        self.hearing.store(false, Ordering::Release);
        self.heard_until.store(0, Ordering::Release);
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.flushed.fetch_max(seq, Ordering::SeqCst);
        self.applied.send_modify(|count| *count += 1);
    }

    /// A ticket for a store read that may fill the tier; `None` while the
    /// tier cannot hear invalidations.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        if !self.hearing() {
            return None;
        }
        Some(Ticket(self.seq.load(Ordering::SeqCst)))
    }

    /// The value under `physical`, if the tier holds a servable one of type
    /// `T`.
    #[cfg(test)]
    pub(crate) fn get<T: Clone + 'static>(&self, physical: &str) -> Option<T> {
        self.get_any(physical)?.downcast_ref::<T>().cloned()
    }

    /// The value under `physical`, if the tier holds a servable one.
    pub(crate) fn get_any(&self, physical: &str) -> Option<LocalValue> {
        let entries = self.entries.get()?;
        if !self.hearing() {
            return None;
        }
        let slot = entries.get(physical)?;
        if !self.servable(&slot.0, Instant::now()) {
            entries.remove_if(physical, |held| Arc::ptr_eq(&held.0, &slot.0));
            return None;
        }
        Some(Arc::clone(&slot.0.value))
    }

    fn servable(&self, slot: &SlotData, now: Instant) -> bool {
        now < slot.expires
            && self.nanos(now) < self.heard_until.load(Ordering::Acquire)
            && self.flushed.load(Ordering::SeqCst) <= slot.ticket
            && self.keys[usize::from(slot.key_bucket)].load(Ordering::SeqCst) <= slot.ticket
            && slot
                .tag_buckets
                .iter()
                .all(|&b| self.tags[usize::from(b)].load(Ordering::SeqCst) <= slot.ticket)
    }

    /// Holds `value` under `physical` for at most `ttl`, if no invalidation
    /// of it (its key, one of `tags`, a matching pattern, a flush) came
    /// after `ticket`. `size` is the value's encoded size: its weight.
    #[cfg(test)]
    pub(crate) fn insert<T: Send + Sync + 'static>(
        &self,
        physical: &str,
        value: T,
        size: usize,
        ttl: Duration,
        tags: &[&str],
        ticket: Ticket,
    ) {
        self.insert_any(physical, Arc::new(value), size, ttl, tags, ticket);
    }

    /// [`LocalTier::insert`] of a value already shared.
    pub(crate) fn insert_any(
        &self,
        physical: &str,
        value: LocalValue,
        size: usize,
        ttl: Duration,
        tags: &[&str],
        ticket: Ticket,
    ) {
        if ttl.is_zero() || !self.hearing() {
            return;
        }
        let ticket = if self.guard.load(Ordering::Relaxed) {
            ticket.0
        } else {
            // Without the guard: as if the ticket were taken now.
            self.seq.load(Ordering::SeqCst)
        };
        let slot = SlotData {
            value,
            expires: Instant::now() + ttl,
            ticket,
            key_bucket: self.bucket(physical),
            tag_buckets: tags.iter().map(|tag| self.bucket(tag)).collect(),
            size: size as u64,
        };
        if !self.servable(&slot, Instant::now()) || self.pattern_since(physical, ticket) {
            return;
        }
        let slot = Arc::new(slot);
        let entries = self.entries();
        entries.insert(physical.to_owned(), Slot(Arc::clone(&slot)));
        // A pattern invalidation that logged itself after the check above
        // may have swept before the insert: look again.
        if self.pattern_since(physical, ticket) {
            entries.remove_if(physical, |held| Arc::ptr_eq(&held.0, &slot));
        }
    }

    /// Whether a pattern invalidation after `ticket` matches `physical`, or
    /// one may have (the log forgot it).
    fn pattern_since(&self, physical: &str, ticket: u64) -> bool {
        let log = lock(&self.patterns);
        if log.floor > ticket {
            return true;
        }
        log.recent
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > ticket)
            .any(|(_, pattern)| glob_match(pattern.as_bytes(), physical.as_bytes()))
    }

    /// Applies an invalidation (this instance's own, or one heard).
    pub(crate) fn apply(&self, invalidation: &Invalidation) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        match invalidation {
            Invalidation::Keys(keys) => {
                for key in keys {
                    let bucket = usize::from(self.bucket(key));
                    self.keys[bucket].fetch_max(seq, Ordering::SeqCst);
                    if let Some(entries) = self.entries.get() {
                        entries.remove(key.as_str());
                    }
                }
            }
            Invalidation::Tags(tags) => {
                // Entries under these tags are void from now on; they go
                // when read, or evicted.
                for tag in tags {
                    let bucket = usize::from(self.bucket(tag));
                    self.tags[bucket].fetch_max(seq, Ordering::SeqCst);
                }
            }
            Invalidation::Pattern(pattern) => {
                {
                    let mut log = lock(&self.patterns);
                    if log.recent.len() == PATTERN_LOG
                        && let Some((forgotten, _)) = log.recent.pop_front()
                    {
                        log.floor = forgotten;
                    }
                    log.recent.push_back((seq, pattern.clone()));
                }
                if let Some(entries) = self.entries.get() {
                    entries.retain(|key, _| !glob_match(pattern.as_bytes(), key.as_bytes()));
                }
            }
            Invalidation::Flush => {
                self.flushed.fetch_max(seq, Ordering::SeqCst);
                if let Some(entries) = self.entries.get() {
                    entries.clear();
                }
            }
        }
        self.applied.send_modify(|count| *count += 1);
    }

    /// Applies a message heard on the channel; one that does not parse
    /// empties the tier (fail closed).
    pub(crate) fn apply_message(&self, bytes: &[u8]) {
        match Invalidation::decode(bytes) {
            Some(invalidation) => self.apply(&invalidation),
            None => {
                tracing::warn!(
                    len = bytes.len(),
                    "larder: an invalidation message did not parse; emptying the local tier"
                );
                self.apply(&Invalidation::Flush);
            }
        }
    }

    /// Entries held now (servable or not).
    pub(crate) fn len(&self) -> usize {
        self.entries.get().map_or(0, |entries| entries.len())
    }

    /// The weight held now, in bytes.
    pub(crate) fn weight(&self) -> u64 {
        self.entries.get().map_or(0, |entries| entries.weight())
    }

    /// Whether `physical` has a servable entry.
    pub(crate) fn serves(&self, physical: &str) -> bool {
        let Some(slot) = self
            .entries
            .get()
            .and_then(|entries| entries.peek(physical))
        else {
            return false;
        };
        self.hearing() && self.servable(&slot.0, Instant::now())
    }

    /// A receiver that changes with every invalidation applied.
    pub(crate) fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    pub(crate) fn set_guard(&self, on: bool) {
        self.guard.store(on, Ordering::Relaxed);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn tier() -> LocalTier {
        let tier = LocalTier::new(
            Bounds {
                bytes: 1 << 20,
                entries: 1000,
            },
            HOUR,
        );
        tier.hear();
        tier
    }

    #[test]
    fn a_value_inserted_is_served_as_its_own_type_only() {
        let tier = tier();
        let ticket = tier.ticket().unwrap();
        tier.insert("k", String::from("v"), 1, TTL, &[], ticket);
        assert_eq!(tier.get::<String>("k").as_deref(), Some("v"));
        assert_eq!(tier.get::<u32>("k"), None);
    }

    #[test]
    fn an_invalidation_after_the_ticket_voids_the_insert() {
        let tier = tier();
        let ticket = tier.ticket().unwrap();
        tier.apply(&Invalidation::Keys(vec!["k".into()]));
        tier.insert("k", 1_u32, 1, TTL, &[], ticket);
        assert_eq!(tier.get::<u32>("k"), None);
        // … and one after the insert voids it too.
        let ticket = tier.ticket().unwrap();
        tier.insert("k", 2_u32, 1, TTL, &["tag"], ticket);
        assert_eq!(tier.get::<u32>("k"), Some(2));
        tier.apply(&Invalidation::Tags(vec!["tag".into()]));
        assert_eq!(tier.get::<u32>("k"), None);
    }

    #[test]
    fn patterns_void_matching_entries_in_place_and_in_flight() {
        let tier = tier();
        let ticket = tier.ticket().unwrap();
        tier.insert("a:user:1", 1_u32, 1, TTL, &[], ticket);
        tier.insert("a:item:1", 1_u32, 1, TTL, &[], ticket);
        let in_flight = tier.ticket().unwrap();
        tier.apply(&Invalidation::Pattern("a:user:*".into()));
        assert_eq!(tier.get::<u32>("a:user:1"), None);
        assert_eq!(tier.get::<u32>("a:item:1"), Some(1));
        tier.insert("a:user:2", 2_u32, 1, TTL, &[], in_flight);
        assert_eq!(tier.get::<u32>("a:user:2"), None);
    }

    #[test]
    fn a_deaf_tier_serves_and_keeps_nothing() {
        let tier = tier();
        let ticket = tier.ticket().unwrap();
        tier.insert("k", 1_u32, 1, TTL, &[], ticket);
        tier.deafen();
        assert_eq!(tier.ticket().map(|t| t.0), None);
        assert_eq!(tier.len(), 0);
        tier.insert("k", 1_u32, 1, TTL, &[], ticket);
        tier.hear();
        assert_eq!(tier.get::<u32>("k"), None);
    }

    #[test]
    fn a_malformed_message_flushes() {
        let tier = tier();
        let ticket = tier.ticket().unwrap();
        tier.insert("k", 1_u32, 1, TTL, &[], ticket);
        tier.apply_message(b"\0k\0\0\0\x09short");
        assert_eq!(tier.get::<u32>("k"), None);
    }

    #[test]
    fn a_million_distinct_keys_stay_within_the_byte_bound() {
        let bound = 4 << 20;
        let tier = LocalTier::new(
            Bounds {
                bytes: bound,
                entries: 1_000_000,
            },
            HOUR,
        );
        tier.hear();
        let mut held_max = 0;
        for i in 0..1_000_000_u64 {
            let ticket = tier.ticket().unwrap();
            // Values of 1 B to 2 KiB, weighed by their encoded size.
            let size = usize::try_from(i % 2048).unwrap() + 1;
            tier.insert(&format!("larder:1:user:{i}"), i, size, TTL, &[], ticket);
            if i % 10_000 == 0 {
                assert!(
                    tier.weight() <= bound,
                    "{} > {bound} after {i}",
                    tier.weight()
                );
                held_max = held_max.max(tier.len());
            }
        }
        assert!(tier.weight() <= bound);
        // Average entry ≈ 1 KiB + key + overhead: a few thousand fit.
        assert!(
            (2_000..5_000).contains(&held_max),
            "{held_max} entries held at most"
        );
    }

    #[test]
    fn the_entry_bound_holds_with_tiny_values() {
        let tier = LocalTier::new(
            Bounds {
                bytes: 1 << 20,
                entries: 100,
            },
            HOUR,
        );
        tier.hear();
        for i in 0..10_000 {
            let ticket = tier.ticket().unwrap();
            tier.insert(&format!("k{i}"), i, 1, TTL, &[], ticket);
        }
        assert!(tier.len() <= 100, "{} entries", tier.len());
        assert!(tier.weight() <= 1 << 20);
    }
}
