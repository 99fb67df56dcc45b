use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{Cache, absorb};
use crate::envelope::{self, now_ms};
use crate::{Error, Result};

impl Cache {
    /// The value under the logical `key`, or `None` on a miss.
    ///
    /// Absent, expired and undecodable entries are misses; an undecodable one
    /// is also removed and counted. In fail-open mode (the default) a store
    /// failure is a miss too.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let physical = self.inner.keys.physical(key);
        let value = self.fetch(key, &physical, self.fail_open()).await?;
        self.count_read(key, value.is_some());
        Ok(value)
    }

    /// [`Cache::get`] of an already built physical key, without counting the
    /// hit or miss.
    pub(super) async fn fetch<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        fail_open: bool,
    ) -> Result<Option<T>> {
        let fetched = self.call("GET", self.inner.store.get(physical)).await;
        if let Err(err) = &fetched
            && err.kind() == crate::ErrorKind::Rejected
        {
            // Something that is not a string sits under our key (WRONGTYPE):
            // like undecodable bytes, it is removed.
            self.note_corrupt(key, physical, err);
            let keys = [physical.to_owned()];
            let _ = self.call("UNLINK", self.inner.store.unlink(&keys)).await;
        }
        match absorb(fetched, fail_open)? {
            Some(Some(bytes)) => Ok(self.decode_or_discard(key, physical, &bytes).await),
            _ => Ok(None),
        }
    }

    pub(super) fn count_read(&self, key: &str, hit: bool) {
        self.inner.metrics.with(key, |m| {
            if hit {
                m.hits.increment(1);
            } else {
                m.misses.increment(1);
            }
        });
    }

    /// The values under `keys`, in order, fetched in one round trip.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<T>>> {
        let physical: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.physical(k.as_ref()))
            .collect();
        let fetched = self.call("MGET", self.inner.store.mget(&physical)).await;
        let Some(found) = self.absorb(fetched)? else {
            for key in keys {
                self.count_read(key.as_ref(), false);
            }
            return Ok(keys.iter().map(|_| None).collect());
        };
        let mut values = Vec::with_capacity(keys.len());
        let mut corrupt = Vec::new();
        for ((key, physical), bytes) in keys.iter().zip(physical).zip(found) {
            let key = key.as_ref();
            let value = match bytes {
                None => None,
                Some(bytes) => match self.decode::<T>(&bytes) {
                    Ok(value) => value,
                    Err(err) => {
                        self.note_corrupt(key, &physical, &err);
                        corrupt.push(physical);
                        None
                    }
                },
            };
            self.count_read(key, value.is_some());
            values.push(value);
        }
        if !corrupt.is_empty() {
            // Best effort: a failure here only means another miss later.
            let _ = self.call("UNLINK", self.inner.store.unlink(&corrupt)).await;
        }
        Ok(values)
    }

    /// Decodes a fetched envelope; on failure removes the key.
    async fn decode_or_discard<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        bytes: &Bytes,
    ) -> Option<T> {
        match self.decode(bytes) {
            Ok(value) => value,
            Err(err) => {
                self.note_corrupt(key, physical, &err);
                let keys = [physical.to_owned()];
                // Best effort: a failure here only means another miss later.
                let _ = self.call("UNLINK", self.inner.store.unlink(&keys)).await;
                None
            }
        }
    }

    fn note_corrupt(&self, key: &str, physical: &str, err: &Error) {
        self.inner
            .metrics
            .with(key, |m| m.decode_failures.increment(1));
        tracing::warn!(key = physical, error = %err, "larder: undecodable cache entry removed");
    }

    /// `Ok(None)` for a logically expired entry; `Err` for bytes that are not
    /// a valid envelope of `T`.
    pub(super) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<Option<T>> {
        if bytes.len() > self.inner.envelope.max_value_bytes {
            return Err(Error::decode(format!(
                "stored value is {} bytes, over max_value_bytes = {}",
                bytes.len(),
                self.inner.envelope.max_value_bytes
            )));
        }
        let (header, payload) = envelope::parse(bytes)?;
        if header.expires_at_ms <= now_ms() {
            return Ok(None);
        }
        envelope::decode_payload(&header, payload, &self.inner.envelope).map(Some)
    }
}
