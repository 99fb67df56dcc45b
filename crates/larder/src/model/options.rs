//! [`ModelOptions`]: how a model is cached — the Django original's
//! `redis_cache_*` class attributes, as a `const`.

use std::time::Duration;

/// How one model type is cached: the Django original's
/// `redis_cache_prefix`, `redis_cache_timeout`, `redis_cache_version`,
/// `redis_cache_enabled` and `redis_cache_related`, plus a schema
/// fingerprint. Built in `const` context:
///
/// ```
/// use std::time::Duration;
/// use larder::model::ModelOptions;
///
/// const PRODUCT: ModelOptions = ModelOptions::new("product")
///     .timeout(Duration::from_secs(86_400)) // redis_cache_timeout = 86400
///     .related(&["category"])              // redis_cache_related = ["category"]
///     .version("2.0");                     // redis_cache_version = "2.0"
/// assert_eq!(PRODUCT.prefix, "product");
/// assert!(PRODUCT.enabled);
/// assert_ne!(PRODUCT.fingerprint(), ModelOptions::new("product").fingerprint());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelOptions {
    /// The first segment of the model's logical keys: `product` gives
    /// `product:1`. 1 to 64 ASCII letters, digits, `.`, `_` or `-` (the
    /// rule of [`ConfigBuilder::prefix`](crate::config::ConfigBuilder::prefix));
    /// anything else makes every operation on the model fail with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub prefix: &'static str,
    /// How long an entry lives, before jitter. Default: one day (the
    /// Django original's `redis_cache_timeout = 86400`).
    pub timeout: Duration,
    /// The model's cache version (`redis_cache_version`). Changing it makes
    /// every entry of the model written by an older build a miss at once,
    /// with no scan; the old entries are kept (not deleted) until they
    /// expire, so a build still running the old version keeps reading its
    /// own during a rolling deploy. Default: empty.
    pub version: &'static str,
    /// `false` turns the model's reads and writes into a pass-through:
    /// reads miss, writes do nothing (`redis_cache_enabled`). Invalidations
    /// still run in full, so entries written while caching was on (or by
    /// another build) never outlive a write. Default: `true`.
    pub enabled: bool,
    /// Marks the model as critical, as the Django original's
    /// `warm_critical_models` reads it. Recorded only: no operation of
    /// this release reads it. Default: `false`.
    pub critical: bool,
    /// The prefixes of the models whose data this one embeds
    /// (`redis_cache_related`). Every [`Dependency`](super::Dependency) a
    /// model reports must name one of them; caching a model with a
    /// dependency on an unlisted model is an error. Default: none.
    pub related: &'static [&'static str],
    /// A fingerprint of the stored shape, chosen by whoever writes the
    /// impl (0 for none). Entries written under another value are misses,
    /// kept like those of another [`version`](Self::version).
    pub schema: u64,
    /// How long an instance may stay in the local (L1) tier, in this
    /// process's memory; `None` (the default) keeps it in Redis only. Takes
    /// effect only for models that can be copied out of the tier: derived
    /// with `#[larder(local = …)]`, which needs the model to be `Clone`.
    pub local: Option<Duration>,
}

/// The default [`ModelOptions::timeout`]: one day.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl ModelOptions {
    /// The options of a model whose keys start `{prefix}:`, with the
    /// defaults: a one-day timeout, no version, enabled, not critical, no
    /// related models, schema 0.
    pub const fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            timeout: DAY,
            version: "",
            enabled: true,
            critical: false,
            related: &[],
            schema: 0,
            local: None,
        }
    }

    /// Sets [`local`](Self::local).
    pub const fn local(mut self, ttl: Duration) -> Self {
        self.local = Some(ttl);
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`version`](Self::version).
    #[must_use]
    pub const fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// Sets [`enabled`](Self::enabled).
    #[must_use]
    pub const fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets [`critical`](Self::critical).
    #[must_use]
    pub const fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Sets [`related`](Self::related).
    #[must_use]
    pub const fn related(mut self, related: &'static [&'static str]) -> Self {
        self.related = related;
        self
    }

    /// Sets [`schema`](Self::schema).
    #[must_use]
    pub const fn schema(mut self, schema: u64) -> Self {
        self.schema = schema;
        self
    }

    /// What the model's envelopes carry in their schema field: a 64-bit
    /// FNV-1a hash of the [`version`](Self::version) (length-prefixed) and
    /// the [`schema`](Self::schema), never 0 (0 marks plain values, which a
    /// model never reads as its own). The same in every build and on every
    /// platform; the type's name is deliberately not part of it, as it is
    /// not stable across builds.
    pub const fn fingerprint(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        const fn mix(mut hash: u64, bytes: &[u8]) -> u64 {
            let mut i = 0;
            while i < bytes.len() {
                hash ^= bytes[i] as u64;
                hash = hash.wrapping_mul(PRIME);
                i += 1;
            }
            hash
        }
        let version = self.version.as_bytes();
        let mut hash = mix(OFFSET, b"larder-model\0");
        hash = mix(hash, &(version.len() as u64).to_le_bytes());
        hash = mix(hash, version);
        hash = mix(hash, &self.schema.to_le_bytes());
        // Entries of a model with related models record their stamps; a
        // build that adds or changes `related` must not read entries
        // written without them.
        if !self.related.is_empty() {
            hash = mix(hash, b"\0related");
            hash = mix(hash, &(self.related.len() as u64).to_le_bytes());
            let mut i = 0;
            while i < self.related.len() {
                let prefix = self.related[i].as_bytes();
                hash = mix(hash, &(prefix.len() as u64).to_le_bytes());
                hash = mix(hash, prefix);
                i += 1;
            }
        }
        if hash == 0 { 1 } else { hash }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_django_original() {
        let options = ModelOptions::new("product");
        assert_eq!(options.timeout, Duration::from_secs(86_400));
        assert_eq!(options.version, "");
        assert!(options.enabled);
        assert!(!options.critical);
        assert!(options.related.is_empty());
        assert_eq!(options.schema, 0);
    }

    #[test]
    fn the_fingerprint_follows_version_schema_and_related_only() {
        let base = ModelOptions::new("product");
        let fingerprints = [
            base.fingerprint(),
            base.version("2.0").fingerprint(),
            base.version("2.1").fingerprint(),
            base.schema(1).fingerprint(),
            base.version("2.0").schema(1).fingerprint(),
            // Entries of a model with related models record stamps that
            // entries written without them lack.
            base.related(&["category"]).fingerprint(),
            base.related(&["category", "brand"]).fingerprint(),
            base.related(&["categorybrand"]).fingerprint(),
        ];
        for (i, a) in fingerprints.iter().enumerate() {
            assert_ne!(*a, 0);
            for b in &fingerprints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Neither the prefix nor the other options change it: an entry's
        // schema says which build wrote it, not where it lives.
        let other = ModelOptions::new("category")
            .timeout(Duration::from_secs(1))
            .enabled(false);
        assert_eq!(other.fingerprint(), base.fingerprint());
    }

    #[test]
    fn the_fingerprint_is_stable_across_builds() {
        // Pinned: a change here turns every model entry in production into
        // a miss on deploy. (FNV-1a, checked against an independent implementation.)
        assert_eq!(ModelOptions::new("p").fingerprint(), 0xed35_ba24_52cd_c4e1);
    }
}
