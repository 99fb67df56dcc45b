//! Payload compression, each algorithm behind its cargo feature.

use crate::config::Compression;
use crate::{Error, Result};

/// Compresses `raw`; `None` when the algorithm is not compiled in.
pub(super) fn compress(compression: Compression, raw: &[u8]) -> Option<Vec<u8>> {
    match compression {
        Compression::None => None,
        #[cfg(feature = "lz4")]
        Compression::Lz4 => Some(lz4_flex::block::compress(raw)),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::bulk::compress(raw, 3).ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Inflates `data` to exactly `len` bytes; `len` was checked against the
/// size cap by the caller, so a hostile length cannot force a huge
/// allocation.
/// Whether this build can decompress payloads with `flag` (another build
/// may have been compiled with other features).
pub(super) fn supported(flag: u8) -> bool {
    (flag == 1 && cfg!(feature = "lz4")) || (flag == 2 && cfg!(feature = "zstd"))
}

pub(super) fn decompress(flag: u8, data: &[u8], len: usize) -> Result<Vec<u8>> {
    let out = match flag {
        #[cfg(feature = "lz4")]
        1 => lz4_flex::block::decompress(data, len)
            .map_err(|e| Error::decode("lz4 payload is corrupt").with_source(e))?,
        #[cfg(feature = "zstd")]
        2 => zstd::bulk::decompress(data, len)
            .map_err(|e| Error::decode("zstd payload is corrupt").with_source(e))?,
        #[allow(unreachable_patterns)]
        1 | 2 => {
            return Err(Error::decode(
                "payload is compressed with an algorithm this build lacks \
                 (enable larder's `lz4`/`zstd` feature)",
            ));
        }
        _ => return Err(Error::decode("unknown compression flag")),
    };
    if out.len() != len {
        return Err(Error::decode("decompressed payload has the wrong length"));
    }
    Ok(out)
}
