use crate::config::{Codec, Compression};
use crate::{Error, Result};

pub(super) const MAGIC: [u8; 2] = *b"LD";
/// 2: a CRC32 of everything before it ends the envelope.
pub(super) const FORMAT_VERSION: u8 = 2;
/// The checksum's size at the end of every envelope.
pub(super) const CHECKSUM_LEN: usize = 4;

/// A dependency stamp an entry was built under: the stamp key and the value
/// it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) key: String,
    pub(crate) value: u64,
}

/// The metadata of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pub(crate) codec_flag: u8,
    pub(crate) compression_flag: u8,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) compute_ms: u32,
    pub(crate) schema: u64,
    pub(crate) stamps: Vec<Stamp>,
    /// Payload length before compression.
    pub(crate) payload_len: u32,
}

pub(super) fn codec_flag(codec: Codec) -> u8 {
    match codec {
        Codec::MessagePack => 0,
        Codec::Json => 1,
    }
}

pub(super) fn compression_flag(compression: Compression) -> u8 {
    match compression {
        Compression::None => 0,
        Compression::Lz4 => 1,
        Compression::Zstd => 2,
    }
}

impl Header {
    /// Appends the header to `out`.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.codec_flag | (self.compression_flag << 2));
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        out.extend_from_slice(&self.compute_ms.to_le_bytes());
        out.extend_from_slice(&self.schema.to_le_bytes());
        let count = u16::try_from(self.stamps.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for stamp in self.stamps.iter().take(usize::from(count)) {
            let key = stamp.key.as_bytes();
            let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&key[..usize::from(len)]);
            out.extend_from_slice(&stamp.value.to_le_bytes());
        }
        out.extend_from_slice(&self.payload_len.to_le_bytes());
    }
}

/// A cursor that refuses to read past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::decode("envelope is truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Appends the checksum of everything in `out` so far: the envelope's end.
pub(super) fn seal(out: &mut Vec<u8>) {
    let checksum = crc32fast::hash(out);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// Splits `bytes` into its header and (possibly compressed) payload.
///
/// Checks, in this order, so that hostile bytes cost little: the header's
/// shape; the payload's declared size against `max_payload` (the value is
/// not even checksummed when it is over the cap); the checksum. A bit
/// flipped anywhere fails the checksum, so corrupt bytes are an error,
/// never another value.
pub(crate) fn parse(bytes: &[u8], max_payload: usize) -> Result<(Header, &[u8])> {
    let Some(body_len) = bytes.len().checked_sub(CHECKSUM_LEN) else {
        return Err(Error::decode("envelope is truncated"));
    };
    let (body, checksum) = bytes.split_at(body_len);
    let (header, payload) = parse_header(body)?;
    let declared = header.payload_len as usize;
    if declared > max_payload {
        // Intact, perhaps, but larger than this build reads: another
        // build's (with a higher cap) — a miss, not corruption.
        return Err(Error::new(
            crate::ErrorKind::TooLarge,
            format!(
                "stored value declares a {declared}-byte payload, over max_value_bytes = {max_payload}"
            ),
        ));
    }
    if payload.len() > declared {
        return Err(Error::decode(
            "payload is longer than the envelope declares",
        ));
    }
    let expected = u32::from_le_bytes(checksum.try_into().unwrap_or_default());
    if crc32fast::hash(body) != expected {
        return Err(Error::decode("envelope checksum mismatch (corrupt bytes)"));
    }
    Ok((header, payload))
}

fn parse_header(bytes: &[u8]) -> Result<(Header, &[u8])> {
    let mut r = Reader { bytes };
    if r.array::<2>()? != MAGIC {
        return Err(Error::decode("not a Larder envelope (bad magic)"));
    }
    let version = r.array::<1>()?[0];
    if version != FORMAT_VERSION {
        return Err(Error::decode(format!(
            "envelope format {version} is not supported by this build (expects {FORMAT_VERSION})"
        )));
    }
    let flags = r.array::<1>()?[0];
    let codec_flag = flags & 0b11;
    let compression_flag = (flags >> 2) & 0b11;
    if codec_flag > 1 || compression_flag > 2 || flags >> 4 != 0 {
        return Err(Error::decode(format!(
            "unknown envelope flags {flags:#04x}"
        )));
    }
    let created_at_ms = r.u64()?;
    let expires_at_ms = r.u64()?;
    let compute_ms = r.u32()?;
    let schema = r.u64()?;
    let count = r.u16()?;
    let mut stamps = Vec::new();
    for _ in 0..count {
        let len = r.u16()?;
        let key = std::str::from_utf8(r.take(usize::from(len))?)
            .map_err(|_| Error::decode("stamp key is not UTF-8"))?
            .to_owned();
        stamps.push(Stamp {
            key,
            value: r.u64()?,
        });
    }
    let payload_len = r.u32()?;
    let header = Header {
        codec_flag,
        compression_flag,
        created_at_ms,
        expires_at_ms,
        compute_ms,
        schema,
        stamps,
        payload_len,
    };
    Ok((header, r.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header {
            codec_flag: 1,
            compression_flag: 2,
            created_at_ms: 1,
            expires_at_ms: 2,
            compute_ms: 3,
            schema: 4,
            stamps: vec![Stamp {
                key: "stamp:category".into(),
                value: 9,
            }],
            payload_len: 3,
        };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        bytes.extend_from_slice(b"abc");
        seal(&mut bytes);
        let (parsed, payload) = parse(&bytes, 1024).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut bytes = Vec::new();
        Header {
            stamps: vec![Stamp {
                key: "k".into(),
                value: 1,
            }],
            ..Header::default()
        }
        .write(&mut bytes);
        seal(&mut bytes);
        assert!(parse(&bytes, 0).is_ok());
        for len in 0..bytes.len() {
            assert!(parse(&bytes[..len], 0).is_err());
        }
    }

    #[test]
    fn every_flipped_bit_is_an_error() {
        let mut bytes = Vec::new();
        Header {
            payload_len: 3,
            ..Header::default()
        }
        .write(&mut bytes);
        bytes.extend_from_slice(b"abc");
        seal(&mut bytes);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(parse(&flipped, 1024).is_err(), "bit {bit}");
        }
    }
}
