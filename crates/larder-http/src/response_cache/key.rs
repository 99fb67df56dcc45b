//! The cache key of a request: method, path, the allow-listed query
//! parameters as the handler reads them, the declared `Vary` headers, the
//! host the request was for, and the authenticated identity.
//!
//! Everything that comes from the request goes through a digest, so no
//! request can shape a key (or a pattern) beyond its own entry. The key is
//! `{namespace}:{path digest}:{variant digest}`: all stored variants of one
//! path share a prefix, which is how a write to a path invalidates them.
//!
//! The path is the one the client sent — with the `axum` feature, axum's
//! `OriginalUri`, so a layer inside `Router::nest` still keys on the nested
//! prefix (`/tenants/{tenant}/…`). Only its canonical spelling is stored
//! ([`is_canonical`]): `/users/a%62c` reaches the same handler as
//! `/users/abc`, and caching it under its own key would put it out of reach
//! of `invalidate_path("/users/abc")`.

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
    /// Unlisted parameters were dropped (`strip_unlisted`): these are the
    /// allow-listed ones, in key order, and the handler must get only them.
    Stripped(Vec<(String, String)>),
}

/// Parses `query` like the handler's `Query` extractor does
/// (`application/x-www-form-urlencoded`: `+` is a space, percent-escapes
/// decoded) and keeps the allow-listed parameters, sorted by name; repeated
/// parameters keep their order (`?tag=a&tag=b` ≠ `?tag=b&tag=a`). With
/// `strip_unlisted`, unlisted parameters are dropped instead of bypassing.
pub fn query(query: Option<&str>, allowed: &[String], strip_unlisted: bool) -> Query {
    let mut kept = Vec::new();
    let mut stripped = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if allowed.iter().any(|a| *a == name) {
            kept.push((name.into_owned(), value.into_owned()));
        } else if strip_unlisted {
            stripped = true;
        } else {
            return Query::Unlisted(name.into_owned());
        }
    }
    // Stable: repeated names keep their relative order.
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    if stripped {
        Query::Stripped(kept)
    } else {
        Query::Keyed(kept)
    }
}

/// The path a request is keyed and invalidated on: the one the client sent,
/// before any `Router::nest` cut a prefix off (axum's `OriginalUri`, with
/// the `axum` feature).
pub fn request_path(request: &request::Parts) -> &str {
    #[cfg(feature = "axum")]
    if let Some(original) = request.extensions.get::<axum::extract::OriginalUri>() {
        return original.0.path();
    }
    request.uri.path()
}

/// Whether `path` is in the one spelling that is stored: percent-escapes
/// only where needed (never for the unreserved `A–Z a–z 0–9 - . _ ~`), in
/// upper-case hex, none malformed. Other spellings of a path bypass the
/// cache, so invalidating the path reaches every stored copy of it.
pub fn is_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match escaped(bytes, i) {
                Some(byte) if !is_unreserved(byte) => {
                    if bytes[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
                        return false;
                    }
                }
                _ => return false,
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// `path` in its canonical spelling ([`is_canonical`]): escapes of
/// unreserved characters decoded, the others in upper-case hex. Malformed
/// escapes are left as they are.
pub fn canonical_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut canonical = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = escaped(bytes, i)
        {
            if is_unreserved(byte) {
                canonical.push(char::from(byte));
            } else {
                canonical.push_str(&format!("%{byte:02X}"));
            }
            i += 3;
        } else {
            // Not an escape: copy up to the next `%` (keeps UTF-8 whole).
            let next = bytes[i + 1..]
                .iter()
                .position(|&b| b == b'%')
                .map_or(bytes.len(), |p| i + 1 + p);
            canonical.push_str(&path[i..next]);
            i = next;
        }
    }
    canonical
}

/// The byte a `%XY` escape at `at` stands for.
fn escaped(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = bytes.get(at + 1..at + 3)?;
    let high = char::from(hex[0]).to_digit(16)?;
    let low = char::from(hex[1]).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Request headers every key includes, declared or not: the host the
/// request was for and what a proxy says about it. Handlers build links
/// and pick tenants from them, so a body built for one host must never
/// answer a request for another (web cache poisoning).
const HOST_HEADERS: [HeaderName; 8] = [
    http::header::HOST,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// The host-selecting inputs of a request: the URI's authority, the
/// [`HOST_HEADERS`], and the `host` and `proto` parameters of `Forwarded`
/// (not its `for`, which differs per client and would split the cache).
fn host_inputs(request: &request::Parts) -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    if let Some(authority) = request.uri.authority() {
        inputs.push((
            ":authority".to_owned(),
            authority.as_str().as_bytes().to_vec(),
        ));
    }
    for name in &HOST_HEADERS {
        for value in request.headers.get_all(name) {
            inputs.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
    for value in request.headers.get_all(http::header::FORWARDED) {
        let Ok(value) = value.to_str() else {
            inputs.push(("forwarded".to_owned(), value.as_bytes().to_vec()));
            continue;
        };
        for pair in value.split([',', ';']) {
            if let Some((name, argument)) = pair.split_once('=') {
                let name = name.trim().to_ascii_lowercase();
                if name == "host" || name == "proto" {
                    inputs.push((
                        format!("forwarded:{name}"),
                        argument.trim().as_bytes().to_vec(),
                    ));
                }
            }
        }
    }
    inputs
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
    let _ = digest.arg(&host_inputs(request));
    let _ = digest.arg(&variant.identity);
    let mut key = path_prefix(namespace, request_path(request));
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
    fn only_canonical_paths_are_stored() {
        for canonical in ["/users/abc", "/files/a%2Fb", "/caf%C3%A9", "/", ""] {
            assert!(is_canonical(canonical), "{canonical}");
            assert_eq!(canonical_path(canonical), canonical);
        }
        for (other, canonical) in [
            ("/users/a%62c", "/users/abc"),
            ("/files/a%2fb", "/files/a%2Fb"),
            ("/%7Euser/x%2Dy", "/~user/x-y"),
            ("/caf%c3%a9", "/caf%C3%A9"),
        ] {
            assert!(!is_canonical(other), "{other}");
            assert_eq!(canonical_path(other), canonical, "{other}");
        }
        for malformed in ["/bad%zz", "/bad%2", "/bad%"] {
            assert!(!is_canonical(malformed), "{malformed}");
            assert_eq!(canonical_path(malformed), malformed);
        }
    }

    #[test]
    fn unlisted_params_bypass_or_are_stripped() {
        assert_eq!(
            query(Some("category=tools&utm_source=x"), &allowed(), false),
            Query::Unlisted("utm_source".into())
        );
        assert_eq!(
            query(Some("category=tools&utm_source=x"), &allowed(), true),
            Query::Stripped(vec![("category".into(), "tools".into())])
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
        let e = key(
            "products",
            &parts(
                "/products",
                &[("accept-language", "en"), ("x-request-id", "42")],
            ),
            &variant(None),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d, "a forwarded host selects its own variant");
        assert_eq!(a, e, "an undeclared header cannot change the key");
        assert!(a.starts_with(&path_prefix("products", "/products")));
        assert!(
            !a.contains("tools") && !a.contains("/products"),
            "request input only inside digests: {a}"
        );
    }
}
