//! Lease types shared by the stores (Facebook's memcache leases, NSDI 2013
//! §3.2.1): on a miss a reader takes a token for the key; only the holder
//! computes, and its fill is a compare-and-set on the token. Invalidating a
//! key removes the value and the lease, and invalidating by pattern bumps the
//! cache's lease epoch, so a computation that began before a write can never
//! store its (now stale) result.

/// The keys a lease operation touches.
#[derive(Debug, Clone, Copy)]
pub struct LeaseKeys<'a> {
    /// The value's physical key.
    pub value: &'a str,
    /// The lease's key.
    pub lease: &'a str,
    /// The cache-wide lease epoch's key (bumped by pattern invalidation).
    pub epoch: &'a str,
}

/// A lease: the holder's token and the epoch it was granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Random, per lease.
    pub token: u64,
    /// The lease epoch when granted.
    pub epoch: u64,
}

impl Lease {
    /// What the lease key holds: `token:epoch`.
    pub(crate) fn encoded(token: u64, epoch: u64) -> String {
        format!("{token}:{epoch}")
    }
}

/// The answer of [`Store::get_or_lease`](super::Store::get_or_lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseRead {
    /// The value is there.
    Hit(bytes::Bytes),
    /// No value; the lease is the caller's.
    Granted(Lease),
    /// No value; another caller holds the lease.
    Held,
}
