use serde::Serialize;
use serde::de::DeserializeOwned;

use super::compression;
use super::header::{Header, codec_flag, compression_flag, seal};
use crate::config::{Codec, Compression};
use crate::{Error, ErrorKind, Result};

/// The envelope-related settings of a cache.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EnvelopeSettings {
    pub(crate) codec: Codec,
    pub(crate) compression: Compression,
    pub(crate) compression_threshold: usize,
    pub(crate) max_value_bytes: usize,
}

/// An encoded envelope and the size of its payload before compression.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The envelope, checksum included.
    pub(crate) bytes: Vec<u8>,
    /// The payload's size before compression: what `max_value_bytes`
    /// bounds, on writes and reads alike.
    pub(crate) payload_len: usize,
}

/// Serializes `value` behind `header` (whose flags and payload length are
/// filled in here) into one buffer, sealed with its checksum. The caller
/// compares the payload length with `max_value_bytes`: an oversized
/// envelope is still handed to in-process waiters, just not stored.
///
/// Structs are written with their field names (MessagePack maps), so a
/// reordered or renamed field between two builds is a decode failure — a
/// miss — never a value read into the wrong field.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    mut header: Header,
    settings: &EnvelopeSettings,
) -> Result<Encoded> {
    header.codec_flag = codec_flag(settings.codec);
    header.compression_flag = 0;
    let mut out = Vec::with_capacity(128);
    header.write(&mut out);
    let payload_at = out.len();
    match settings.codec {
        Codec::MessagePack => {
            rmp_serde::encode::write_named(&mut out, value).map_err(|e| encode_error(e.into()))?
        }
        Codec::Json => {
            serde_json::to_writer(&mut out, value).map_err(|e| encode_error(e.into()))?
        }
    }
    let payload_len = out.len() - payload_at;
    let Ok(payload_len32) = u32::try_from(payload_len) else {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the encoded value is {payload_len} bytes; envelopes hold at most 4 GiB"),
        ));
    };
    out[payload_at - 4..payload_at].copy_from_slice(&payload_len32.to_le_bytes());

    if settings.compression != Compression::None
        && payload_len >= settings.compression_threshold
        && let Some(compressed) = compression::compress(settings.compression, &out[payload_at..])
        && compressed.len() < payload_len
    {
        out.truncate(payload_at);
        out.extend_from_slice(&compressed);
        out[3] |= compression_flag(settings.compression) << 2;
    }
    seal(&mut out);
    Ok(Encoded {
        bytes: out,
        payload_len,
    })
}

fn encode_error(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::new(
        ErrorKind::Encode,
        "the value cannot be serialized for the cache",
    )
    .with_source(source)
}

/// Deserializes the payload that [`super::parse`] split off (and checked
/// against the size cap and the checksum).
///
/// # Errors
/// [`DecodeFailure::Corrupt`] when the payload is not what the header
/// says; [`DecodeFailure::Shape`] when it is intact but does not fit `T`.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    header: &Header,
    payload: &[u8],
) -> Result<T, DecodeFailure> {
    let declared = header.payload_len as usize;
    let inflated;
    let raw = if header.compression_flag == 0 {
        if payload.len() != declared {
            return Err(DecodeFailure::Corrupt(Error::decode(
                "payload length does not match the envelope",
            )));
        }
        payload
    } else if !compression::supported(header.compression_flag) {
        return Err(DecodeFailure::Shape(Error::decode(
            "payload is compressed with an algorithm this build lacks \
             (enable larder's `lz4`/`zstd` feature)",
        )));
    } else {
        inflated = compression::decompress(header.compression_flag, payload, declared)
            .map_err(DecodeFailure::Corrupt)?;
        &inflated[..]
    };
    let decoded = match header.codec_flag {
        0 => rmp_serde::from_slice(raw)
            .map_err(|e| Error::decode("MessagePack payload does not fit the type").with_source(e)),
        _ => serde_json::from_slice(raw)
            .map_err(|e| Error::decode("JSON payload does not fit the type").with_source(e)),
    };
    decoded.map_err(DecodeFailure::Shape)
}

/// Why stored bytes did not decode.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// Not a valid envelope: foreign, truncated or damaged bytes (the
    /// checksum or the structure says so). Safe to remove.
    Corrupt(Error),
    /// A valid envelope whose payload does not fit the type asked for: most
    /// likely written by another build with another shape of the type
    /// (a rolling deploy). Not removed: that build reads it.
    Shape(Error),
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::envelope::parse;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Product {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn settings(codec: Codec, compression: Compression) -> EnvelopeSettings {
        EnvelopeSettings {
            codec,
            compression,
            compression_threshold: 64,
            max_value_bytes: 1 << 20,
        }
    }

    fn round_trip(value: &Product, s: &EnvelopeSettings) -> (Product, Vec<u8>) {
        let bytes = encode(value, Header::default(), s).unwrap().bytes;
        let (header, payload) = parse(&bytes, s.max_value_bytes).unwrap();
        (decode_payload(&header, payload).unwrap(), bytes)
    }

    fn big() -> Product {
        Product {
            id: 7,
            name: "x".repeat(4000),
            tags: vec!["a".into(); 100],
        }
    }

    #[test]
    fn every_codec_and_compression_round_trips() {
        let mut combos = vec![
            (Codec::MessagePack, Compression::None),
            (Codec::Json, Compression::None),
        ];
        if cfg!(feature = "lz4") {
            combos.push((Codec::MessagePack, Compression::Lz4));
        }
        if cfg!(feature = "zstd") {
            combos.push((Codec::Json, Compression::Zstd));
        }
        for (codec, compression) in combos {
            let s = settings(codec, compression);
            let (back, bytes) = round_trip(&big(), &s);
            assert_eq!(back, big());
            if compression != Compression::None {
                assert!(bytes.len() < 1000, "{compression:?} did not shrink");
            }
        }
    }

    #[test]
    fn reordered_fields_decode_by_name() {
        #[derive(Serialize)]
        struct Swapped<'a> {
            tags: Vec<String>,
            name: &'a str,
            id: u64,
        }
        let s = settings(Codec::MessagePack, Compression::None);
        let bytes = encode(
            &Swapped {
                tags: vec![],
                name: "n",
                id: 1,
            },
            Header::default(),
            &s,
        )
        .unwrap()
        .bytes;
        let (header, payload) = parse(&bytes, s.max_value_bytes).unwrap();
        let p: Product = decode_payload(&header, payload).unwrap();
        assert_eq!(
            p,
            Product {
                id: 1,
                name: "n".into(),
                tags: vec![]
            }
        );
    }

    #[test]
    fn oversized_payloads_are_not_decoded() {
        let s = settings(Codec::MessagePack, Compression::Lz4);
        let encoded = encode(&big(), Header::default(), &s).unwrap();
        assert!(encoded.payload_len > 4000);
        // The compressed envelope is small; the cap is on the payload.
        assert!(encoded.bytes.len() < 1000);
        assert!(parse(&encoded.bytes, 1000).unwrap_err().is_too_large());
        assert!(parse(&encoded.bytes, encoded.payload_len).is_ok());
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let s = settings(Codec::MessagePack, Compression::default());
        let (_, bytes) = round_trip(&big(), &s);
        for cut in [0, 1, 10, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&bytes[..cut], s.max_value_bytes).is_err());
        }
        let mut flipped = bytes.clone();
        for i in (40..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        assert!(parse(&flipped, s.max_value_bytes).is_err());
    }
}
