//! The envelope: the bytes Larder stores for every value.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "LD"
//! 2       1     format version (2)
//! 3       1     flags: bits 0-1 codec (0 MessagePack, 1 JSON),
//!                      bits 2-3 compression (0 none, 1 lz4, 2 zstd)
//! 4       8     created-at, ms since the Unix epoch
//! 12      8     logical expiry, ms since the Unix epoch
//! 20      4     compute time in ms (XFetch's delta)
//! 24      8     schema / model version fingerprint (0 = none)
//! 32      2     number of dependency stamps, then for each:
//!               2-byte key length, key bytes, 8-byte stamp value
//! ..      4     payload length before compression
//! ..      ..    payload
//! end-4   4     CRC32 of every byte before it
//! ```
//! All integers are little-endian. Decoding checks every length against the
//! bytes present and the configured size cap before allocating, then the
//! checksum, so corrupt or hostile bytes give
//! [`ErrorKind::Decode`](crate::ErrorKind::Decode), never a panic, an
//! oversized allocation or a wrong value: a flipped bit anywhere fails the
//! checksum.
//!
//! `max_value_bytes` bounds the payload **before** compression, on writes
//! and on reads alike: what is written is always readable, and a
//! decompression can never inflate past the cap.

mod codec;
mod compression;
mod header;

pub(crate) use codec::{DecodeFailure, EnvelopeSettings, decode_payload, encode};
pub(crate) use header::{Header, Stamp, parse};

use std::time::{SystemTime, UNIX_EPOCH};

/// The schema field of a plain value's envelope: no model version or
/// schema. Models' fingerprints are never 0.
pub(crate) const NO_SCHEMA: u64 = 0;

/// Milliseconds since the Unix epoch (wall clock: envelopes are read by
/// other processes).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
