use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::Cache;
use super::budget::Budget;
use super::local::message::Invalidation;
use super::single_flight::flight_of;
use crate::envelope::{self, Header, NO_SCHEMA, Stamp, now_ms};
use crate::store::StoreEntry;
use crate::{Error, ErrorKind, Result};

impl Cache {
    /// Stores `value` under the logical `key` for `ttl`, spread by the
    /// configured jitter.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] if `value` cannot be serialized;
    /// [`ErrorKind::TooLarge`] if its envelope exceeds `max_value_bytes`
    /// (nothing is written); in fail-closed mode, the store failure. In
    /// fail-open mode a store failure is logged and counted, not returned.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let encoded = self.envelope_for(value, ttl, 0, Vec::new(), NO_SCHEMA)?;
        self.check_size(key, &encoded)?;
        let entry = [self.entry(key, encoded)];
        let budget = Budget::new(self.inner.config.deadline);
        let stored = self.write_announced("SET", &entry, &budget).await;
        self.absorb(stored).map(drop)
    }

    /// Stores every `(key, value)` pair for `ttl` (each jittered on its own):
    /// one round trip per 1,000 entries (or 4 MiB of values),
    /// each round trip bounded by the deadline. Every command is a plain
    /// `SET` (and the `DEL` of the key's lease before it), so no batch size
    /// can block Redis. Each entry is written with its lease voided; the
    /// entries are not atomic as a group.
    ///
    /// # Errors
    /// As [`Cache::set`]; if any value is too large or unserializable,
    /// nothing is written. A store failure may leave the batches before it
    /// written.
    pub async fn set_many<T: Serialize, K: AsRef<str>>(
        &self,
        entries: &[(K, T)],
        ttl: Duration,
    ) -> Result<()> {
        let mut batch = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key = key.as_ref();
            let encoded = self.envelope_for(value, ttl, 0, Vec::new(), NO_SCHEMA)?;
            self.check_size(key, &encoded)?;
            batch.push(self.entry(key, encoded));
        }
        let mut outcome = Ok(());
        for chunk in batches(&batch) {
            let budget = Budget::new(self.inner.config.deadline);
            let stored = self.write_announced("SET_MANY", chunk, &budget).await;
            if stored.is_err() {
                outcome = stored;
                break;
            }
        }
        self.detach_write(&batch);
        self.absorb(outcome).map(drop)
    }

    /// Writes `entries` and announces them to every instance's local tier
    /// (in the same round trip on Redis); drops them from this one's. The
    /// in-process flights of the keys are detached.
    pub(super) async fn write_announced(
        &self,
        op: &'static str,
        entries: &[StoreEntry],
        budget: &Budget,
    ) -> Result<()> {
        let invalidation = Invalidation::Keys(entries.iter().map(|e| e.key.clone()).collect());
        let message = Bytes::from(invalidation.encode());
        let channel = self.inner.keys.channel();
        let stored = self
            .call_in(
                op,
                budget,
                self.inner.store.mset_and_publish(entries, channel, message),
            )
            .await;
        self.detach_write(entries);
        // Whatever the outcome: a failed write may have been applied.
        self.inner.local.apply(&invalidation);
        stored
    }

    /// A write of `key`: it voids the key's lease (with leases on), so a
    /// computation that began before the write cannot fill over it.
    pub(super) fn entry(&self, key: &str, encoded: Encoded) -> StoreEntry {
        let keys = &self.inner.keys;
        StoreEntry {
            key: keys.physical(key),
            value: encoded.bytes,
            ttl: encoded.ttl,
            void_lease: self.inner.config.leases.then(|| keys.lease(key)),
            indexes: Vec::new(),
        }
    }

    /// Callers arriving after a write start afresh rather than join a
    /// computation that began before it.
    pub(super) fn detach_write(&self, entries: &[StoreEntry]) {
        self.inner
            .flights
            .detach(|flight| entries.iter().any(|e| flight_of(flight) == e.key));
    }

    /// Encodes `value` into an envelope that expires after the jittered
    /// `ttl`, with the TTL to store it for (the jittered TTL plus the stale
    /// grace period). `schema` is what readers must expect (see
    /// [`Cache::decode_entry`]); `stamps` are the dependency stamps the
    /// value was built under.
    pub(super) fn envelope_for<T: Serialize + ?Sized>(
        &self,
        value: &T,
        ttl: Duration,
        compute_ms: u32,
        stamps: Vec<Stamp>,
        schema: u64,
    ) -> Result<Encoded> {
        let ttl = self.jittered(ttl);
        let created_at_ms = now_ms();
        let header = Header {
            created_at_ms,
            expires_at_ms: created_at_ms
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            compute_ms,
            schema,
            stamps,
            ..Header::default()
        };
        let encoded = envelope::encode(value, header, &self.inner.envelope)?;
        Ok(Encoded {
            bytes: Bytes::from(encoded.bytes),
            payload_len: encoded.payload_len,
            // The store keeps the value through its stale grace period; the
            // envelope's logical expiry says when it stops being fresh.
            ttl: ttl.saturating_add(self.inner.config.stale_grace),
        })
    }

    /// The longest a value written for `ttl` is kept: jittered up, plus the
    /// stale grace period. The stamps a value records are kept at least
    /// this long, so that none expires under it.
    pub(super) fn longest_kept(&self, ttl: Duration) -> Duration {
        let stretch = 1.0 + self.inner.config.ttl_jitter;
        Duration::try_from_secs_f64(ttl.as_secs_f64() * stretch)
            .unwrap_or(Duration::MAX)
            .saturating_add(Duration::from_secs(1))
            .saturating_add(self.inner.config.stale_grace)
    }

    /// `max_value_bytes` bounds the value's encoded size **before**
    /// compression — the same rule a read applies, so that whatever is
    /// stored can be read back.
    pub(super) fn check_size(&self, key: &str, encoded: &Encoded) -> Result<()> {
        let max = self.inner.envelope.max_value_bytes;
        if encoded.payload_len <= max {
            return Ok(());
        }
        self.inner.metrics.with(key, |m| m.oversize.increment(1));
        Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the value for `{key}` encodes to {} bytes (before compression), over \
                 max_value_bytes = {max}; raise the limit or cache a smaller value",
                encoded.payload_len
            ),
        ))
    }
}

/// Entries per round trip of [`Cache::set_many`].
const SET_MANY_BATCH: usize = 1000;
/// Value bytes per round trip of [`Cache::set_many`].
const SET_MANY_BATCH_BYTES: usize = 4 << 20;

/// `entries` cut into round trips of at most [`SET_MANY_BATCH`] entries and
/// about [`SET_MANY_BATCH_BYTES`] of values (at least one entry each).
fn batches(entries: &[StoreEntry]) -> impl Iterator<Item = &[StoreEntry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let len = rest
            .iter()
            .take(SET_MANY_BATCH)
            .take_while(|entry| {
                bytes += entry.value.len();
                bytes <= SET_MANY_BATCH_BYTES
            })
            .count()
            .max(1);
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        Some(batch)
    })
}

/// A value ready to store.
#[derive(Debug)]
pub(super) struct Encoded {
    /// The envelope.
    pub(super) bytes: Bytes,
    /// Its payload's size before compression.
    pub(super) payload_len: usize,
    /// How long to store it.
    pub(super) ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(len: usize) -> StoreEntry {
        StoreEntry {
            key: "k".into(),
            value: Bytes::from(vec![0; len]),
            ttl: Duration::from_secs(1),
            void_lease: None,
            indexes: Vec::new(),
        }
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes_and_lose_nothing() {
        let small: Vec<_> = (0..2500).map(|_| entry(10)).collect();
        let sizes: Vec<usize> = batches(&small).map(<[_]>::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let large: Vec<_> = (0..5).map(|_| entry(3 << 20)).collect();
        let sizes: Vec<usize> = batches(&large).map(<[_]>::len).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 1]);
        assert_eq!(batches(&[]).count(), 0);
    }
}
