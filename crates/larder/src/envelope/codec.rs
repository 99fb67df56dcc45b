use serde::Serialize;
use serde::de::DeserializeOwned;

use super::compression;
use super::header::{Header, codec_flag, compression_flag};
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

/// Serializes `value` behind `header` (whose flags and payload length are
/// filled in here) into one buffer. The caller compares the length with
/// `max_value_bytes`: an oversized envelope is still handed to in-process
/// waiters, just not stored.
///
/// Structs are written with their field names (MessagePack maps), so a
/// reordered or renamed field between two builds is a decode failure — a
/// miss — never a value read into the wrong field.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    mut header: Header,
    settings: &EnvelopeSettings,
) -> Result<Vec<u8>> {
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
    Ok(out)
}

fn encode_error(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::new(
        ErrorKind::Encode,
        "the value cannot be serialized for the cache",
    )
    .with_source(source)
}

/// Deserializes the payload that [`super::parse`] split off.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    header: &Header,
    payload: &[u8],
    settings: &EnvelopeSettings,
) -> Result<T> {
    let declared = header.payload_len as usize;
    if declared > settings.max_value_bytes {
        return Err(Error::decode(format!(
            "envelope declares a {declared}-byte payload, over max_value_bytes = {}",
            settings.max_value_bytes
        )));
    }
    let inflated;
    let raw = if header.compression_flag == 0 {
        if payload.len() != declared {
            return Err(Error::decode("payload length does not match the envelope"));
        }
        payload
    } else {
        inflated = compression::decompress(header.compression_flag, payload, declared)?;
        &inflated[..]
    };
    match header.codec_flag {
        0 => rmp_serde::from_slice(raw)
            .map_err(|e| Error::decode("MessagePack payload does not fit the type").with_source(e)),
        _ => serde_json::from_slice(raw)
            .map_err(|e| Error::decode("JSON payload does not fit the type").with_source(e)),
    }
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
        let bytes = encode(value, Header::default(), s).unwrap();
        let (header, payload) = parse(&bytes).unwrap();
        (decode_payload(&header, payload, s).unwrap(), bytes)
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
        .unwrap();
        let (header, payload) = parse(&bytes).unwrap();
        let p: Product = decode_payload(&header, payload, &s).unwrap();
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
        let mut s = settings(Codec::MessagePack, Compression::None);
        let bytes = encode(&big(), Header::default(), &s).unwrap();
        s.max_value_bytes = 100;
        let (header, payload) = parse(&bytes).unwrap();
        assert!(
            decode_payload::<Product>(&header, payload, &s)
                .unwrap_err()
                .is_decode()
        );
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let s = settings(Codec::MessagePack, Compression::default());
        let (_, bytes) = round_trip(&big(), &s);
        for cut in [0, 1, 10, 40, bytes.len() / 2, bytes.len() - 1] {
            let Ok((header, payload)) = parse(&bytes[..cut]) else {
                continue;
            };
            assert!(decode_payload::<Product>(&header, payload, &s).is_err());
        }
        let mut flipped = bytes.clone();
        for i in (40..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        if let Ok((header, payload)) = parse(&flipped) {
            // Either an error or — if the damage misses every structural
            // byte — a value; never a panic.
            let _ = decode_payload::<Product>(&header, payload, &s);
        }
    }
}
