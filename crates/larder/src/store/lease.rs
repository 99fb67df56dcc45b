//! Lease types shared by the stores (Facebook's memcache leases, NSDI 2013
//! §3.2.1): on a miss a reader takes a token for the key; only the holder
//! computes, and its fill is a compare-and-set on the token.
//!
//! A lease is granted **under stamps**: small keys holding random values
//! (the cache-wide stamp, the key's namespace stamp, …). The lease records
//! the values it saw; a fill stores only if the lease is still the key's and
//! every stamp still holds what it held at the grant. Invalidating a key
//! removes its lease; invalidating by pattern deletes the stamp that covers
//! the pattern, which voids every lease granted under it — including those
//! of keys that have no value yet and so cannot be found by a scan. A
//! missing stamp voids its leases, so losing a stamp key (eviction, a
//! failover) can only cost fills, never accept a stale one; a grant that
//! finds a stamp missing writes a new random value. So a computation that
//! began before a write can never store its (now stale) result.
//!
//! Waiters learn of a fill when it happens: a caller that finds the lease
//! held marks the key as waited on, and the fill (or the holder's giving
//! up) then publishes the value key on the cache's fill channel.

/// The keys a lease operation touches.
#[derive(Debug, Clone, Copy)]
pub struct LeaseKeys<'a> {
    /// The value's physical key.
    pub value: &'a str,
    /// The lease's key.
    pub lease: &'a str,
    /// Marks the lease as waited on: the fill (or release) then publishes
    /// `value` on `channel`.
    pub waiters: &'a str,
    /// The channel fills are announced on.
    pub channel: &'a str,
    /// The stamps the lease is granted under; deleting any of them voids it.
    pub stamps: &'a [String],
    /// Sets the value key joins when it is filled (tag indexes): an
    /// invalidation of the tag removes exactly its members.
    pub indexes: &'a [String],
}

/// A lease: the holder's token. What it was granted under stays in the
/// store, beside the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Random, per lease.
    pub token: u64,
}

/// A lease just granted, with the values its stamps held: a fill under it
/// records them in the envelope, so that a read can tell whether a stamp
/// moved since (tags are checked on every read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The lease.
    pub lease: Lease,
    /// The values of [`LeaseKeys::stamps`], in order.
    pub stamps: Vec<u64>,
}

/// The answer of [`Store::get_or_lease`](super::Store::get_or_lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseRead {
    /// The value is there, and the values of [`LeaseKeys::stamps`] (`None`
    /// if one is missing).
    Hit {
        /// The value.
        value: bytes::Bytes,
        /// The stamps' current values.
        stamps: Option<Vec<u64>>,
    },
    /// No value; the lease is the caller's.
    Granted(Grant),
    /// No value; another caller holds the lease for at most `remaining`.
    /// The caller is marked as waiting: the fill will be announced.
    Held {
        /// How long the holder's lease has left.
        remaining: std::time::Duration,
    },
}

/// Parses `|s1|s2…` (what the lease scripts return) into stamp values.
pub(crate) fn parse_stamps(seen: &str) -> Option<Vec<u64>> {
    seen.split('|').skip(1).map(|s| s.parse().ok()).collect()
}

/// How long a stamp lives without being rewritten. Long beyond any lease;
/// when one expires, only the leases granted under it lose their fills.
pub(crate) const STAMP_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
