use super::escape_glob;

/// Maps logical keys and patterns to physical ones:
/// `{prefix}:{version}:{logical}`, and names Larder's bookkeeping keys
/// beside them: `{prefix}:{version}~lease:{logical}`, `~wait:{logical}`,
/// `~stamp` (cache-wide), `~stamp:{namespace}`, `~tag:{tag}` and
/// `~tagstamp:{tag}`, and the fill channel `~fills`. Prefix and version hold neither `:` nor `~` (the config
/// checks), so no value key of one cache is a bookkeeping key of another,
/// and no value pattern (which always starts `{prefix}:{version}:`) can
/// match a bookkeeping key.
#[derive(Debug, Clone)]
pub(crate) struct KeyScheme {
    /// `{prefix}:{version}:`
    base: String,
    /// `{prefix}:{version}~` — bookkeeping keys start so.
    bookkeeping: String,
    /// `{prefix}:{version}~stamp`
    stamp: String,
    /// `{prefix}:{version}~fills`
    channel: String,
    /// The base with glob metacharacters escaped, for patterns.
    base_pattern: String,
}

impl KeyScheme {
    pub(crate) fn new(prefix: &str, version: &str) -> Self {
        let base = format!("{prefix}:{version}:");
        let base_pattern = escape_glob(&base);
        let bookkeeping = format!("{prefix}:{version}~");
        Self {
            stamp: format!("{bookkeeping}stamp"),
            channel: format!("{bookkeeping}fills"),
            bookkeeping,
            base,
            base_pattern,
        }
    }

    fn bookkeeping(&self, kind: &str, logical: &str) -> String {
        let mut key =
            String::with_capacity(self.bookkeeping.len() + kind.len() + 1 + logical.len());
        key.push_str(&self.bookkeeping);
        key.push_str(kind);
        key.push(':');
        key.push_str(logical);
        key
    }

    /// The lease key of `logical`. Leases live beside the values, not under
    /// them, so `SCAN MATCH` of a value pattern never counts them.
    pub(crate) fn lease(&self, logical: &str) -> String {
        self.bookkeeping("lease", logical)
    }

    /// The key that marks `logical`'s lease as waited on.
    pub(crate) fn waiters(&self, logical: &str) -> String {
        self.bookkeeping("wait", logical)
    }

    /// The cache-wide stamp: deleting it voids every lease of the cache.
    pub(crate) fn stamp(&self) -> &str {
        &self.stamp
    }

    /// The stamp of a namespace (the first `:`-separated segment of a
    /// logical key): deleting it voids the leases of that namespace only.
    pub(crate) fn namespace_stamp(&self, namespace: &str) -> String {
        self.bookkeeping("stamp", namespace)
    }

    /// The stamp of a tag: deleting it voids the leases of entries being
    /// computed under that tag.
    pub(crate) fn tag_stamp(&self, tag: &str) -> String {
        self.bookkeeping("tagstamp", tag)
    }

    /// The change marker of a tag: set for a short while when the tag is
    /// invalidated, so that a fill that read the tag's data before the
    /// invalidation, and learnt the tag only after, can tell.
    pub(crate) fn change_marker(&self, tag: &str) -> String {
        self.bookkeeping("changed", tag)
    }

    /// The index of a tag: the value keys filled under it.
    pub(crate) fn tag_index(&self, tag: &str) -> String {
        self.bookkeeping("tag", tag)
    }

    /// The channel fills are announced on.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The physical key of `logical`.
    pub(crate) fn physical(&self, logical: &str) -> String {
        let mut key = String::with_capacity(self.base.len() + logical.len());
        key.push_str(&self.base);
        key.push_str(logical);
        key
    }

    /// The physical pattern of a logical glob `pattern`. The prefix and
    /// version are escaped; `pattern` itself is a glob as written.
    pub(crate) fn pattern(&self, pattern: &str) -> String {
        let mut key = String::with_capacity(self.base_pattern.len() + pattern.len());
        key.push_str(&self.base_pattern);
        key.push_str(pattern);
        key
    }
}

/// The namespace of a logical key: its first `:`-separated segment.
pub(crate) fn namespace_of(logical: &str) -> &str {
    logical.split_once(':').map_or(logical, |(ns, _)| ns)
}

/// The one namespace every key matching the glob `pattern` is in, if the
/// pattern pins it: its first segment is literal (no glob character) and
/// ends at a `:` or at the pattern's end. `product:*` → `product`;
/// `product` → `product`; `prod*`, `*:1`, `[pq]roduct:*` → none.
pub(crate) fn namespace_of_pattern(pattern: &str) -> Option<&str> {
    let namespace = namespace_of(pattern);
    (!namespace.contains(['*', '?', '[', ']', '\\'])).then_some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::glob_match;

    #[test]
    fn physical_keys_carry_prefix_and_version() {
        let scheme = KeyScheme::new("shop", "1.1");
        assert_eq!(scheme.physical("product:1"), "shop:1.1:product:1");
    }

    #[test]
    fn a_pattern_pins_a_namespace_only_when_its_first_segment_is_literal() {
        for (pattern, namespace) in [
            ("product:*", Some("product")),
            ("product", Some("product")),
            ("user:123:*", Some("user")),
            ("prod*", None),
            ("*:1", None),
            ("[pq]roduct:*", None),
            ("pro\\duct:*", None),
            ("product?:*", None),
        ] {
            assert_eq!(namespace_of_pattern(pattern), namespace, "{pattern}");
            // Every key the pattern matches is in that namespace.
            if let Some(namespace) = namespace {
                for key in ["product:1", "product", "user:123:x", "products:1"] {
                    if glob_match(pattern.as_bytes(), key.as_bytes()) {
                        assert_eq!(namespace_of(key), namespace, "{pattern} / {key}");
                    }
                }
            }
        }
    }

    #[test]
    fn bookkeeping_keys_never_match_value_patterns() {
        let scheme = KeyScheme::new("shop", "1");
        for pattern in ["*", "product:*", "*lease*"] {
            let physical = scheme.pattern(pattern);
            for key in [
                scheme.lease("product:1"),
                scheme.waiters("product:1"),
                scheme.namespace_stamp("product"),
                scheme.stamp().to_owned(),
            ] {
                assert!(
                    !glob_match(physical.as_bytes(), key.as_bytes()),
                    "{pattern} {key}"
                );
            }
        }
    }

    #[test]
    fn prefix_metacharacters_cannot_widen_a_pattern() {
        let scheme = KeyScheme::new("sh*p", "1");
        let pattern = scheme.pattern("product:*");
        assert!(glob_match(pattern.as_bytes(), b"sh*p:1:product:1"));
        assert!(!glob_match(pattern.as_bytes(), b"shop:1:product:1"));
    }
}
