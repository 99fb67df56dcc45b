use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::budget::Budget;
use super::read_through::ReadThrough;
use super::{Cache, absorb};
use crate::envelope::{self, DecodeFailure, NO_SCHEMA, Stamp, now_ms};
use crate::store::decimal;
use crate::{Error, ErrorKind, Result};

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
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let value = self
            .fetch_entry(key, &physical, NO_SCHEMA, self.fail_open(), &budget)
            .await?
            .filter(|entry: &Entry<T>| entry.is_fresh(now))
            .map(|entry| entry.value);
        self.count_read(key, value.is_some());
        Ok(value)
    }

    /// The decoded entry under `physical`, fresh or not; undecodable and
    /// wrong-type entries are removed and are `None`, entries of another
    /// `schema` (see [`Cache::decode_entry`]) are kept and are `None`.
    pub(super) async fn fetch_entry<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        schema: u64,
        fail_open: bool,
        budget: &Budget,
    ) -> Result<Option<Entry<T>>> {
        self.fetch_entry_with(key, physical, schema, fail_open, budget, false)
            .await
    }

    /// [`Cache::fetch_entry`]; with `with_ttl`, the store's TTL of the
    /// entry is read in the same round trip (for the local tier).
    pub(super) async fn fetch_entry_with<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        schema: u64,
        fail_open: bool,
        budget: &Budget,
        with_ttl: bool,
    ) -> Result<Option<Entry<T>>> {
        let fetched = if with_ttl {
            self.call_in("GET", budget, self.inner.store.get_with_ttl(physical))
                .await
        } else {
            self.call_in("GET", budget, self.inner.store.get(physical))
                .await
                .map(|found| found.map(|bytes| (bytes, None)))
        };
        if let Err(err) = &fetched
            && err.kind() == crate::ErrorKind::Rejected
        {
            // Something that is not a string sits under our key (WRONGTYPE):
            // like undecodable bytes, it is removed.
            self.note_corrupt(key, physical, err);
            let keys = [physical.to_owned()];
            let _ = self
                .call_in("UNLINK", budget, self.inner.store.unlink(&keys))
                .await;
        }
        match absorb(fetched, fail_open)? {
            Some(Some((bytes, store_ttl))) => Ok(self
                .decode_or_discard(key, physical, &bytes, schema, budget)
                .await
                .map(|entry| Entry { store_ttl, ..entry })),
            _ => Ok(None),
        }
    }

    /// [`Cache::get`] of an entry filled under `tags` (a miss if one of them
    /// was invalidated since).
    pub(crate) async fn get_tagged<T: DeserializeOwned>(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<Option<T>> {
        let options = ReadThrough {
            tags,
            ..self.options(self.inner.config.default_ttl)
        };
        let physical = self.inner.keys.physical(key);
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let value = self
            .fetch_tagged_entry(key, &physical, options, &budget)
            .await?
            .filter(|entry: &Entry<T>| entry.is_fresh(now))
            .map(|entry| entry.value);
        self.count_read(key, value.is_some());
        Ok(value)
    }

    /// [`Cache::fetch_entry`] of an entry filled under `options.tags`: the
    /// value and the tags' stamps in one round trip (`MGET`); an entry
    /// whose tags' stamps moved (an invalidation deleted one, or Redis
    /// evicted it) is `None`. This is what makes tag invalidation exact
    /// whatever happens to the tag's index. An entry that recorded other
    /// stamps (a model's related instances) has them checked too, in one
    /// more round trip.
    pub(super) async fn fetch_tagged_entry<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        options: ReadThrough<'_>,
        budget: &Budget,
    ) -> Result<Option<Entry<T>>> {
        let (tags, fail_open) = (options.tags, options.fail_open);
        if tags.is_empty() && options.stamped {
            // A model with related models: its stamps in the same trip.
            return self
                .fetch_stamped_entry(key, physical, options.schema, fail_open, budget)
                .await;
        }
        let entry = if tags.is_empty() {
            let with_ttl = options.local;
            self.fetch_entry_with(key, physical, options.schema, fail_open, budget, with_ttl)
                .await?
        } else {
            let Some((bytes, current)) =
                self.fetch_bytes(physical, tags, fail_open, budget).await?
            else {
                return Ok(None);
            };
            self.decode_or_discard::<T>(key, physical, &bytes, options.schema, budget)
                .await
                .filter(|entry| entry.tags_hold(tags, current.as_deref()))
        };
        match entry {
            Some(entry) => self.recorded_stamps_hold(entry, tags, budget).await,
            None => Ok(None),
        }
    }

    /// [`Cache::fetch_entry`] of an entry that may record dependency
    /// stamps (a model with related models), with those stamps read in the
    /// same round trip where the store can (one script on Redis; see
    /// [`Store::get_stamped`](crate::store::Store::get_stamped)), else in
    /// one more: `None` if one of them moved.
    pub(super) async fn fetch_stamped_entry<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        schema: u64,
        fail_open: bool,
        budget: &Budget,
    ) -> Result<Option<Entry<T>>> {
        let prefix = self.inner.keys.tag_stamp("");
        let fetched = self
            .call_in(
                "get_stamped",
                budget,
                self.inner.store.get_stamped(physical, &prefix),
            )
            .await;
        let Some(Some((bytes, current))) = absorb(fetched, fail_open)? else {
            return Ok(None);
        };
        let Some(entry) = self
            .decode_or_discard::<T>(key, physical, &bytes, schema, budget)
            .await
        else {
            return Ok(None);
        };
        match current {
            Some(current) if current.len() == entry.stamps.len() => {
                let holds = entry
                    .stamps
                    .iter()
                    .zip(&current)
                    .all(|(stamp, now)| now.as_deref().and_then(decimal) == Some(stamp.value));
                Ok(holds.then_some(entry))
            }
            _ => self.recorded_stamps_hold(entry, &[], budget).await,
        }
    }

    /// `entry` if every stamp it recorded beyond `checked` (whose stamps
    /// the caller compared already) still holds: none, or one `MGET`.
    pub(super) async fn recorded_stamps_hold<T>(
        &self,
        entry: Entry<T>,
        checked: &[String],
        budget: &Budget,
    ) -> Result<Option<Entry<T>>> {
        if entry
            .stamps
            .iter()
            .all(|stamp| checked.contains(&stamp.key))
        {
            return Ok(Some(entry));
        }
        let mut entries = [Some(entry)];
        self.drop_stale_dependents(&mut entries, budget).await?;
        let [entry] = entries;
        Ok(entry)
    }

    /// The bytes under `physical` and the current stamps of `tags` (`None`
    /// if one is missing), in one round trip.
    pub(super) async fn fetch_bytes(
        &self,
        physical: &str,
        tags: &[String],
        fail_open: bool,
        budget: &Budget,
    ) -> Result<Option<(Bytes, Option<Vec<u64>>)>> {
        let mut keys = Vec::with_capacity(1 + tags.len());
        keys.push(physical.to_owned());
        keys.extend(tags.iter().map(|tag| self.inner.keys.tag_stamp(tag)));
        let fetched = self
            .call_in("MGET", budget, self.inner.store.mget(&keys))
            .await;
        let fetched = fetched.and_then(|found| same_length(found, keys.len()));
        let Some(mut found) = absorb(fetched, fail_open)? else {
            return Ok(None);
        };
        let current: Option<Vec<u64>> = found
            .drain(1..)
            .map(|stamp| decimal(stamp.as_deref()?))
            .collect();
        Ok(found.pop().flatten().map(|bytes| (bytes, current)))
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
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let entries = self.fetch_entries::<T, K>(keys, NO_SCHEMA, &budget).await?;
        Ok(keys
            .iter()
            .zip(entries)
            .map(|(key, entry)| {
                let value = entry.filter(|e| e.is_fresh(now)).map(|e| e.value);
                self.count_read(key.as_ref(), value.is_some());
                value
            })
            .collect())
    }

    /// The decoded entries under the logical `keys`, in order, fresh or
    /// not, fetched in one round trip (`MGET`); entries of another `schema`
    /// are kept and are `None`; corrupt ones are removed (best effort, one
    /// more round trip) and are `None`. A store failure in fail-open mode
    /// is all `None`. Reads are not counted: the caller decides what a hit
    /// is.
    pub(super) async fn fetch_entries<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
        schema: u64,
        budget: &Budget,
    ) -> Result<Vec<Option<Entry<T>>>> {
        let physical: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.physical(k.as_ref()))
            .collect();
        let fetched = self
            .call_in("MGET", budget, self.inner.store.mget(&physical))
            .await
            .and_then(|found| same_length(found, physical.len()));
        let Some(found) = self.absorb(fetched)? else {
            return Ok(keys.iter().map(|_| None).collect());
        };
        let mut entries = Vec::with_capacity(keys.len());
        let mut corrupt = Vec::new();
        for ((key, physical), bytes) in keys.iter().zip(physical).zip(found) {
            let key = key.as_ref();
            let entry = match bytes {
                None => None,
                Some(bytes) => match self.decode_entry::<T>(&bytes, schema) {
                    Ok(entry) => Some(entry),
                    Err(DecodeFailure::Shape(err)) => {
                        self.note_shape_mismatch(key, &physical, &err);
                        None
                    }
                    Err(DecodeFailure::Corrupt(err)) => {
                        self.note_corrupt(key, &physical, &err);
                        corrupt.push(physical);
                        None
                    }
                },
            };
            entries.push(entry);
        }
        if !corrupt.is_empty() {
            // Best effort: a failure here only means another miss later.
            let _ = self
                .call_in("UNLINK", budget, self.inner.store.unlink(&corrupt))
                .await;
        }
        Ok(entries)
    }

    /// Decodes a fetched envelope; corrupt bytes are removed, a value of
    /// another shape or schema (another build's) is left for its reader.
    pub(super) async fn decode_or_discard<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        bytes: &Bytes,
        schema: u64,
        budget: &Budget,
    ) -> Option<Entry<T>> {
        match self.decode_entry(bytes, schema) {
            Ok(entry) => Some(entry),
            Err(DecodeFailure::Shape(err)) => {
                self.note_shape_mismatch(key, physical, &err);
                None
            }
            Err(DecodeFailure::Corrupt(err)) => {
                self.note_corrupt(key, physical, &err);
                let keys = [physical.to_owned()];
                // Best effort: a failure here only means another miss later.
                let _ = self
                    .call_in("UNLINK", budget, self.inner.store.unlink(&keys))
                    .await;
                None
            }
        }
    }

    pub(super) fn note_corrupt(&self, key: &str, physical: &str, err: &Error) {
        self.inner
            .metrics
            .with(key, |m| m.decode_failures.increment(1));
        tracing::warn!(key = physical, error = %err, "larder: undecodable cache entry removed");
    }

    /// A value that another build wrote with another shape of the type, or
    /// another model version or schema: a miss, but not removed — during a
    /// rolling deploy both builds keep reading their own entries instead of
    /// deleting each other's.
    pub(super) fn note_shape_mismatch(&self, key: &str, physical: &str, err: &Error) {
        self.inner
            .metrics
            .with(key, |m| m.shape_mismatches.increment(1));
        tracing::debug!(key = physical, error = %err, "larder: cached value has another shape; a miss");
    }

    /// The entry in `bytes`, fresh or not, if it was written for `schema`:
    /// [`NO_SCHEMA`] for plain values, a model's fingerprint of its version
    /// and stored shape for models. An entry of another schema is
    /// [`DecodeFailure::Shape`]: a miss that is kept, so that two builds of
    /// a rolling deploy (or of a version bump) never read nor delete each
    /// other's entries. The check is one integer compare, before the payload
    /// is touched.
    pub(super) fn decode_entry<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        schema: u64,
    ) -> Result<Entry<T>, DecodeFailure> {
        let (header, payload) = envelope::parse(bytes, self.inner.envelope.max_value_bytes)
            .map_err(|err| match err.kind() {
                // Over this build's cap: left for a build that reads it.
                ErrorKind::TooLarge => DecodeFailure::Shape(err),
                _ => DecodeFailure::Corrupt(err),
            })?;
        if header.schema != schema {
            return Err(DecodeFailure::Shape(Error::decode(format!(
                "the entry was written for schema {:#018x}, this reader expects {schema:#018x} \
                 (another model version or build)",
                header.schema
            ))));
        }
        let value = envelope::decode_payload(&header, payload)?;
        Ok(Entry {
            value,
            size: bytes.len(),
            raw_size: header.payload_len as usize,
            store_ttl: None,
            expires_at_ms: header.expires_at_ms,
            compute_ms: header.compute_ms,
            stamps: header.stamps,
        })
    }
}

/// `found`, the answer to an `MGET` of `asked` keys, if it has one value
/// per key: a custom store that answers with another number of values is
/// failing like any other.
pub(super) fn same_length(found: Vec<Option<Bytes>>, asked: usize) -> Result<Vec<Option<Bytes>>> {
    if found.len() == asked {
        Ok(found)
    } else {
        Err(Error::new(
            ErrorKind::Store,
            format!("MGET of {asked} keys answered {} values", found.len()),
        ))
    }
}

/// A decoded value with what the read path needs from its envelope.
#[derive(Debug)]
pub(super) struct Entry<T> {
    pub(super) value: T,
    /// The envelope's size in bytes.
    pub(super) size: usize,
    /// The payload's size before compression.
    pub(super) raw_size: usize,
    /// How much longer the store keeps it, when the read asked.
    pub(super) store_ttl: Option<std::time::Duration>,
    /// Logical expiry (the physical TTL may add a stale grace period).
    pub(super) expires_at_ms: u64,
    /// How long the value took to compute: XFetch's δ.
    pub(super) compute_ms: u32,
    /// The tag stamps it was filled under.
    pub(super) stamps: Vec<Stamp>,
}

impl<T> Entry<T> {
    pub(super) fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Whether every one of `tags` still holds the stamp this entry was
    /// filled under; `current` are the tags' stamps now (`None`: one is
    /// missing — deleted by an invalidation, or evicted — which fails).
    pub(super) fn tags_hold(&self, tags: &[String], current: Option<&[u64]>) -> bool {
        if tags.is_empty() {
            return true;
        }
        let Some(current) = current.filter(|c| c.len() == tags.len()) else {
            return false;
        };
        tags.iter().zip(current).all(|(tag, now)| {
            self.stamps
                .iter()
                .any(|stamp| stamp.key == *tag && stamp.value == *now)
        })
    }
}
