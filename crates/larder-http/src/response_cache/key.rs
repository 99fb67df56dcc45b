//! The cache key of a request: method, path, the allow-listed query
//! parameters as the handler reads them, the declared `Vary` headers, and
//! the authenticated identity.
//!
//! Everything that comes from the request goes through a digest, so no
//! request can shape a key (or a pattern) beyond its own entry. The key is
//! `{namespace}:{path digest}:{variant digest}`: all stored variants of one
//! path share a prefix, which is how a write to a path invalidates them.

use http::header::HeaderName;
use http::request;
use larder::key::ArgsDigest;

/// How a request's query string maps to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The allow-listed parameters, in key order.
    Keyed(Vec<(String, String)>),
    /// A parameter outside the allow-list: the request bypasses the cache,
    /// so an unlisted parameter can never change a cached body.
    Unlisted(String),
}

/// Parses `query` like the handler's `Query` extractor does
/// (`application/x-www-form-urlencoded`: `+` is a space, percent-escapes
/// decoded) and keeps the allow-listed parameters, sorted by name; repeated
/// parameters keep their order (`?tag=a&tag=b` ≠ `?tag=b&tag=a`). With
/// `strip_unlisted`, unlisted parameters are dropped instead of bypassing.
pub fn query(query: Option<&str>, allowed: &[String], strip_unlisted: bool) -> Query {
    let mut kept = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if allowed.iter().any(|a| *a == name) {
            kept.push((name.into_owned(), value.into_owned()));
        } else if !strip_unlisted {
            return Query::Unlisted(name.into_owned());
        }
    }
    // Stable: repeated names keep their relative order.
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    Query::Keyed(kept)
}

/// The parts of a request that select a stored variant.
#[derive(Debug, Clone)]
pub struct Variant<'a> {
    /// The allow-listed query parameters, in key order.
    pub query: &'a [(String, String)],
    /// The declared `Vary` headers to key on.
    pub vary: &'a [HeaderName],
    /// The authenticated identity, if the route keys on it (never a token).
    pub identity: Option<&'a str>,
}

/// The key prefix shared by every variant of `path`.
pub fn path_prefix(namespace: &str, path: &str) -> String {
    let mut digest = ArgsDigest::new();
    // Digesting a &str cannot fail.
    let _ = digest.arg(path);
    format!("{namespace}:{}", digest.finish())
}

/// The full key of a request. `HEAD` shares `GET`'s key: it is answered from
/// the stored `GET`.
pub fn key(namespace: &str, request: &request::Parts, variant: &Variant<'_>) -> String {
    let mut digest = ArgsDigest::new();
    let headers: Vec<(&str, Vec<&[u8]>)> = variant
        .vary
        .iter()
        .map(|name| {
            let values = request
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            (name.as_str(), values)
        })
        .collect();
    // Strings, byte slices and options always serialize.
    let _ = digest.arg(variant.query);
    let _ = digest.arg(&headers);
    let _ = digest.arg(&variant.identity);
    let mut key = path_prefix(namespace, request.uri.path());
    key.push(':');
    digest.finish_into(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn allowed() -> Vec<String> {
        vec!["category".into(), "sort".into(), "tag".into()]
    }

    fn keyed(q: &str) -> Vec<(String, String)> {
        match query(Some(q), &allowed(), false) {
            Query::Keyed(pairs) => pairs,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn reordered_params_share_a_key_but_repeated_ones_keep_order() {
        assert_eq!(
            keyed("sort=price&category=tools"),
            keyed("category=tools&sort=price")
        );
        assert_ne!(keyed("tag=a&tag=b"), keyed("tag=b&tag=a"));
        assert_eq!(
            keyed("category=garden+tools"),
            keyed("category=garden%20tools")
        );
    }

    #[test]
    fn unlisted_params_bypass_or_are_stripped() {
        assert_eq!(
            query(Some("category=tools&utm_source=x"), &allowed(), false),
            Query::Unlisted("utm_source".into())
        );
        assert_eq!(
            query(Some("category=tools&utm_source=x"), &allowed(), true),
            Query::Keyed(vec![("category".into(), "tools".into())])
        );
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = Request::builder().uri(uri);
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_separate_paths_variants_and_identities() {
        let vary = [HeaderName::from_static("accept-language")];
        let q = keyed("category=tools");
        let variant = |identity| Variant {
            query: &q,
            vary: &vary,
            identity,
        };
        let a = key(
            "products",
            &parts("/products", &[("accept-language", "en")]),
            &variant(None),
        );
        let b = key(
            "products",
            &parts("/products", &[("accept-language", "de")]),
            &variant(None),
        );
        let c = key(
            "products",
            &parts("/products", &[("accept-language", "en")]),
            &variant(Some("user:1")),
        );
        let d = key(
            "products",
            &parts(
                "/products",
                &[("accept-language", "en"), ("x-forwarded-host", "evil")],
            ),
            &variant(None),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, d, "an undeclared header cannot change the key");
        assert!(a.starts_with(&path_prefix("products", "/products")));
        assert!(
            !a.contains("tools") && !a.contains("/products"),
            "request input only inside digests: {a}"
        );
    }
}
