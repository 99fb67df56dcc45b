//! Reading [`ConfigBuilder`] settings from environment variables.

use std::str::FromStr;
use std::time::Duration;

use super::builder::is_key_segment;
use super::{Codec, Compression, ConfigBuilder, FailMode};
use crate::{Error, Result};

/// Applies every set variable to a default builder. `lookup` abstracts
/// `std::env::var` so tests need not mutate the process environment.
pub(super) fn builder_from(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigBuilder> {
    let mut b = ConfigBuilder::new();
    if let Some(url) = lookup("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        b = b.redis_url(url.trim());
    }
    if let Some(v) = lookup("LARDER_PREFIX") {
        b = b.prefix(v);
    }
    if let Some(v) = version(&lookup)? {
        b = b.version(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_DEFAULT_TTL", "seconds")? {
        b = b.default_ttl(Duration::from_secs(v));
    }
    if let Some(v) = number::<f64>(&lookup, "LARDER_TTL_JITTER", "a fraction like 0.1")? {
        b = b.ttl_jitter(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_DEADLINE_MS", "milliseconds")? {
        b = b.deadline(Duration::from_millis(v));
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_CONNECT_TIMEOUT_MS", "milliseconds")? {
        b = b.connect_timeout(Duration::from_millis(v));
    }
    if let Some(v) = switch(&lookup, "LARDER_TCP_NODELAY")? {
        b = b.tcp_nodelay(v);
    }
    if let Some(v) = number::<usize>(&lookup, "LARDER_MAX_VALUE_BYTES", "bytes")? {
        b = b.max_value_bytes(v);
    }
    if let Some(v) = lookup("LARDER_CODEC") {
        b = b.codec(match v.trim().to_ascii_lowercase().as_str() {
            "msgpack" | "messagepack" => Codec::MessagePack,
            "json" => Codec::Json,
            _ => return Err(invalid("LARDER_CODEC", &v, "`msgpack` or `json`")),
        });
    }
    if let Some(v) = lookup("LARDER_COMPRESSION") {
        b = b.compression(match v.trim().to_ascii_lowercase().as_str() {
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            "none" | "off" => Compression::None,
            _ => {
                return Err(invalid("LARDER_COMPRESSION", &v, "`lz4`, `zstd` or `none`"));
            }
        });
    }
    if let Some(v) = number::<usize>(&lookup, "LARDER_COMPRESSION_THRESHOLD", "bytes")? {
        b = b.compression_threshold(v);
    }
    if let Some(v) = lookup("LARDER_FAIL_MODE") {
        b = b.fail_mode(match v.trim().to_ascii_lowercase().as_str() {
            "open" => FailMode::Open,
            "closed" => FailMode::Closed,
            _ => return Err(invalid("LARDER_FAIL_MODE", &v, "`open` or `closed`")),
        });
    }
    if let Some(v) = number::<u32>(&lookup, "LARDER_BREAKER_FAILURES", "a count")? {
        b = b.breaker_failures(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_BREAKER_OPEN_MS", "milliseconds")? {
        b = b.breaker_open_for(Duration::from_millis(v));
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_MEMORY_CAPACITY_BYTES", "bytes")? {
        b = b.memory_capacity_bytes(v);
    }
    if let Some(v) = switch(&lookup, "LARDER_LEASES")? {
        b = b.leases(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_LEASE_TTL_MS", "milliseconds")? {
        b = b.lease_ttl(Duration::from_millis(v));
    }
    if let Some(v) = number::<f64>(&lookup, "LARDER_XFETCH_BETA", "a number like 1.0")? {
        b = b.xfetch_beta(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_STALE_GRACE_MS", "milliseconds")? {
        b = b.stale_grace(Duration::from_millis(v));
    }
    if let Some(v) = switch(&lookup, "LARDER_STALE_IF_ERROR")? {
        b = b.stale_if_error(v);
    }
    if let Some(v) = lookup("LARDER_LOCAL") {
        for (namespace, seconds) in local_namespaces(&v)? {
            b = b.local(namespace, Duration::from_secs(seconds));
        }
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_LOCAL_CAPACITY_BYTES", "bytes")? {
        b = b.local_capacity_bytes(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_LOCAL_MAX_ENTRIES", "a count")? {
        b = b.local_max_entries(v);
    }
    if let Some(v) = number::<u64>(&lookup, "LARDER_LOCAL_PING_MS", "milliseconds")? {
        b = b.local_ping_interval(Duration::from_millis(v));
    }
    Ok(b)
}

/// `LARDER_LOCAL`: `namespace=seconds` pairs separated by commas
/// (`user=60,product=30`); empty is none.
fn local_namespaces(value: &str) -> Result<Vec<(String, u64)>> {
    let expected = "`namespace=seconds` pairs separated by commas, like `user=60,product=30`";
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (namespace, seconds) = pair
                .split_once('=')
                .ok_or_else(|| invalid("LARDER_LOCAL", value, expected))?;
            let namespace = namespace.trim();
            let seconds = seconds
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid("LARDER_LOCAL", value, expected))?;
            if namespace.is_empty() || namespace.contains(':') {
                return Err(invalid("LARDER_LOCAL", value, expected));
            }
            Ok((namespace.to_owned(), seconds))
        })
        .collect()
}

/// `LARDER_VERSION`, or the Django original's `CACHE_VERSION` under its own
/// name. A team moving from Django keeps its deploy settings, and a bump of
/// `CACHE_VERSION` still invalidates everything. When both are set they
/// must agree: which one a bump was meant for cannot be guessed, and
/// guessing wrong would silently serve entries the bump meant to retire.
fn version(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
    // An empty `CACHE_VERSION` names no version (as an empty `REDIS_URL`
    // names no server).
    let django = lookup("CACHE_VERSION").filter(|v| !v.trim().is_empty());
    let (name, value) = match (lookup("LARDER_VERSION"), django) {
        (Some(larder), Some(django)) if larder != django => {
            return Err(Error::config(format!(
                "LARDER_VERSION={larder:?} and CACHE_VERSION={django:?} disagree; \
                 CACHE_VERSION is the Django original's name for LARDER_VERSION: \
                 unset one of them or give both the same value"
            )));
        }
        (Some(larder), _) => ("LARDER_VERSION", larder),
        (None, Some(django)) => ("CACHE_VERSION", django),
        (None, None) => return Ok(None),
    };
    if !is_key_segment(&value) {
        return Err(invalid(
            name,
            &value,
            "1 to 64 ASCII letters, digits, `.`, `_` or `-`, such as `1.1`",
        ));
    }
    Ok(Some(value))
}

fn number<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    unit: &str,
) -> Result<Option<T>> {
    match lookup(name) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(name, &raw, unit)),
    }
}

fn switch(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<bool>> {
    match lookup(name) {
        None => Ok(None),
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(Some(true)),
            "off" | "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(invalid(name, &raw, "`on` or `off`")),
        },
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::config(format!("{name}={value:?} is invalid; expected {expected}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn local_namespaces_parse_or_fail_clearly() {
        assert_eq!(
            local_namespaces(" user=60, product = 30 ,").unwrap(),
            [("user".to_owned(), 60), ("product".to_owned(), 30)]
        );
        assert!(local_namespaces("").unwrap().is_empty());
        for bad in ["user", "user=x", "=5", "a:b=5", "user=-1"] {
            let err = local_namespaces(bad).unwrap_err();
            assert!(err.to_string().contains("LARDER_LOCAL"), "{bad}: {err}");
        }
    }

    fn from(vars: &[(&str, &str)]) -> Result<crate::Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        builder_from(|name| map.get(name).cloned())?.build()
    }

    #[test]
    fn reads_every_variable() {
        let config = from(&[
            ("REDIS_URL", "redis://user:pw@127.0.0.1:6390/1"),
            ("LARDER_PREFIX", "svc"),
            ("LARDER_VERSION", "1.1"),
            ("LARDER_DEFAULT_TTL", "3600"),
            ("LARDER_TTL_JITTER", "0.2"),
            ("LARDER_DEADLINE_MS", "50"),
            ("LARDER_MAX_VALUE_BYTES", "1000"),
            ("LARDER_CODEC", "json"),
            ("LARDER_COMPRESSION", "none"),
            ("LARDER_FAIL_MODE", "closed"),
            ("LARDER_TCP_NODELAY", "off"),
        ])
        .unwrap();
        assert!(!config.tcp_nodelay());
        assert_eq!(
            config.redis_url().unwrap().to_string(),
            "redis://user:***@127.0.0.1:6390/1"
        );
        assert_eq!(config.prefix(), "svc");
        assert_eq!(config.version(), "1.1");
        assert_eq!(config.default_ttl(), Duration::from_secs(3600));
        assert_eq!(config.ttl_jitter(), 0.2);
        assert_eq!(config.deadline(), Duration::from_millis(50));
        assert_eq!(config.max_value_bytes(), 1000);
        assert_eq!(config.codec(), Codec::Json);
        assert_eq!(config.compression(), Compression::None);
        assert_eq!(config.fail_mode(), FailMode::Closed);
    }

    #[test]
    fn empty_environment_means_in_memory_defaults() {
        let config = from(&[]).unwrap();
        assert!(config.redis_url().is_none());
        assert_eq!(config.version(), "1");
        assert!(config.tcp_nodelay());
    }

    #[test]
    fn cache_version_is_the_django_name_of_larder_version() {
        assert_eq!(from(&[("CACHE_VERSION", "1.1")]).unwrap().version(), "1.1");
        let both = from(&[("CACHE_VERSION", "2"), ("LARDER_VERSION", "2")]).unwrap();
        assert_eq!(both.version(), "2");
        assert_eq!(from(&[("CACHE_VERSION", " ")]).unwrap().version(), "1");
    }

    #[test]
    fn disagreeing_versions_are_an_error_naming_both() {
        let err = from(&[("CACHE_VERSION", "1.1"), ("LARDER_VERSION", "2")]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let message = err.to_string();
        assert!(message.contains("LARDER_VERSION=\"2\""), "{message}");
        assert!(message.contains("CACHE_VERSION=\"1.1\""), "{message}");
    }

    #[test]
    fn a_malformed_version_names_its_variable() {
        let err = from(&[("CACHE_VERSION", "1.1 beta")]).unwrap_err();
        assert!(err.to_string().contains("CACHE_VERSION"), "{err}");
        let err = from(&[("LARDER_VERSION", "v:2")]).unwrap_err();
        assert!(err.to_string().contains("LARDER_VERSION"), "{err}");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let err = from(&[("LARDER_DEFAULT_TTL", "an hour")]).unwrap_err();
        assert!(err.to_string().contains("LARDER_DEFAULT_TTL"), "{err}");
        let err = from(&[("LARDER_CODEC", "xml")]).unwrap_err();
        assert!(err.to_string().contains("msgpack"), "{err}");
    }
}
