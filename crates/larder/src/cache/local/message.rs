//! The invalidations instances send each other, on the cache's channel.
//!
//! The channel also carries fill announcements (value keys, see
//! `signals.rs`); an invalidation starts with a zero byte, which no
//! physical key does (prefixes are ASCII letters, digits, `_` and `-`).
//! Every string is length-prefixed, so the encoding is injective whatever
//! bytes keys hold. A message that starts like an invalidation but does not
//! parse is not ignored: the receiver empties its whole local tier.

/// The first byte of every invalidation message.
pub(crate) const MARK: u8 = 0;

/// What an instance tells the others to drop from their local tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// These physical keys changed (deleted or written).
    Keys(Vec<String>),
    /// Entries filled under these tags (or recording these stamps) are void.
    Tags(Vec<String>),
    /// Every physical key matching this Redis glob is gone.
    Pattern(String),
    /// Everything is void.
    Flush,
}

const KEYS: u8 = b'k';
const TAGS: u8 = b't';
const PATTERN: u8 = b'p';
const FLUSH: u8 = b'f';

impl Invalidation {
    /// The message's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, items): (u8, &[String]) = match self {
            Invalidation::Keys(keys) => (KEYS, keys),
            Invalidation::Tags(tags) => (TAGS, tags),
            Invalidation::Pattern(pattern) => (PATTERN, std::slice::from_ref(pattern)),
            Invalidation::Flush => (FLUSH, &[]),
        };
        let size = 2 + items.iter().map(|item| 4 + item.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(MARK);
        out.push(kind);
        for item in items {
            // Keys longer than 4 GiB cannot reach Redis; saturate rather
            // than wrap, and the receiver finds the message malformed.
            let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(item.as_bytes());
        }
        out
    }

    /// The invalidation in `bytes`, which start with [`MARK`]; `None` if
    /// they do not parse (the caller then flushes: fail closed).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Invalidation> {
        let [MARK, kind, rest @ ..] = bytes else {
            return None;
        };
        let items = strings(rest)?;
        match *kind {
            KEYS => Some(Invalidation::Keys(items)),
            TAGS => Some(Invalidation::Tags(items)),
            PATTERN if items.len() == 1 => items.into_iter().next().map(Invalidation::Pattern),
            FLUSH if items.is_empty() => Some(Invalidation::Flush),
            _ => None,
        }
    }
}

/// Length-prefixed UTF-8 strings filling `bytes` exactly.
fn strings(mut bytes: &[u8]) -> Option<Vec<String>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (item, rest) = rest.split_at(len);
        items.push(String::from_utf8(item.to_vec()).ok()?);
        bytes = rest;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let cases = [
            Invalidation::Keys(vec!["a:1:user:1".into(), String::new(), "x\0y".into()]),
            Invalidation::Tags(vec!["product#7".into()]),
            Invalidation::Pattern("a:1:user:*".into()),
            Invalidation::Flush,
        ];
        for case in cases {
            assert_eq!(Invalidation::decode(&case.encode()), Some(case));
        }
    }

    #[test]
    fn keys_that_contain_separators_stay_apart() {
        let one = Invalidation::Keys(vec!["a\0\0\0\u{1}b".into()]).encode();
        let two = Invalidation::Keys(vec!["a".into(), "b".into()]).encode();
        assert_ne!(one, two);
        assert_eq!(
            Invalidation::decode(&one),
            Some(Invalidation::Keys(vec!["a\0\0\0\u{1}b".into()]))
        );
    }

    #[test]
    fn malformed_messages_do_not_parse() {
        for bad in [
            &b""[..],
            b"\0",
            b"\0z",
            b"x",
            b"\0k\0\0\0\x05abc",
            b"\0k\0\0",
            b"\0p",
            b"\0p\0\0\0\x01a\0\0\0\x01b",
            b"\0f\0\0\0\x01a",
            b"\0k\0\0\0\x02\xff\xfe",
        ] {
            assert_eq!(Invalidation::decode(bad), None, "{bad:?}");
        }
    }
}
