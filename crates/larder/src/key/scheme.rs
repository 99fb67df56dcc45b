use super::escape_glob;

/// Maps logical keys and patterns to physical ones:
/// `{prefix}:{version}:{logical}`.
#[derive(Debug, Clone)]
pub(crate) struct KeyScheme {
    /// `{prefix}:{version}:`
    base: String,
    /// `{prefix}:{version}~lease:` — outside every pattern of `base`.
    lease_base: String,
    /// `{prefix}:{version}~epoch`
    epoch: String,
    /// The base with glob metacharacters escaped, for patterns.
    base_pattern: String,
}

impl KeyScheme {
    pub(crate) fn new(prefix: &str, version: &str) -> Self {
        let base = format!("{prefix}:{version}:");
        let base_pattern = escape_glob(&base);
        Self {
            lease_base: format!("{prefix}:{version}~lease:"),
            epoch: format!("{prefix}:{version}~epoch"),
            base,
            base_pattern,
        }
    }

    /// The lease key of `logical`. Leases live beside the values, not under
    /// them, so `SCAN MATCH` of a value pattern never counts them.
    pub(crate) fn lease(&self, logical: &str) -> String {
        let mut key = String::with_capacity(self.lease_base.len() + logical.len());
        key.push_str(&self.lease_base);
        key.push_str(logical);
        key
    }

    /// The cache's lease-epoch key.
    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
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
    fn prefix_metacharacters_cannot_widen_a_pattern() {
        let scheme = KeyScheme::new("sh*p", "1");
        let pattern = scheme.pattern("product:*");
        assert!(glob_match(pattern.as_bytes(), b"sh*p:1:product:1"));
        assert!(!glob_match(pattern.as_bytes(), b"shop:1:product:1"));
    }
}
