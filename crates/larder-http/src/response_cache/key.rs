//! The cache key of a request: method, path, the allow-listed query
//! parameters as the handler reads them, the declared `Vary` headers, the
//! host and scheme the request was for, the forwarding headers, and the
//! authenticated identity.
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
//! of `invalidate_path("/users/abc")`; so do `/files/x/../report` and
//! `/files//report` for a handler that resolves them as a file server does,
//! and `/admin/report;jsessionid=…` and `/static/..;/admin/report` for a
//! servlet container (which cuts path parameters first): no path with a
//! `;` is stored.
//!
//! # The host
//!
//! A handler can read the host from the target's authority (absolute-form
//! HTTP/1.1, HTTP/2's `:authority`), from the `Host` header (axum-extra's
//! `Host` extractor prefers it), or from what a proxy says
//! ([`FORWARDING_HEADERS`], `Forwarded`). All of them are keyed, whether
//! the route declares them or not:
//!
//! - the target's authority and the `Host` header must agree, byte for
//!   byte, or the request bypasses the cache: `GET http://shop.example/`
//!   with `Host: evil.example` would otherwise store a page built for
//!   `evil.example` under `shop.example`. A request with several `Host`
//!   headers bypasses too. The host is keyed as it was sent: a different
//!   case, a trailing dot or an explicit port is a variant of its own
//!   (only a handler knows whether it treats them alike);
//! - the target's scheme (`http://…` in absolute-form, HTTP/2's `:scheme`)
//!   is keyed: a page whose links follow `http` never answers a request
//!   that did not name it;
//! - every value of every [`FORWARDING_HEADERS`] name, plus the names a
//!   layer adds with
//!   [`add_forwarding_headers`](super::ResponseCacheLayer::add_forwarding_headers),
//!   and `Forwarded` without its `for=` parameters.
//!
//! Headers that carry the client's own address — `X-Forwarded-For`,
//! `X-Real-IP`, `X-ProxyUser-Ip`, `X-Client-IP`, `True-Client-IP`,
//! `CF-Connecting-IP`, `Fastly-Client-IP`, `X-Cluster-Client-IP`, and
//! `Forwarded`'s `for=` — are not keyed: a front proxy sets them on every
//! request, different for every client, so keying them would turn the
//! shared cache into one copy per client. A page that shows or depends on
//! the client's address is per-client and should not be behind this layer;
//! if it must, add the header with `add_forwarding_headers` (or
//! `vary_on_headers`).

use http::header::HeaderName;
use http::request;
use larder::key::ArgsDigest;

pub use super::path::{canonical_path, is_canonical};

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

/// `uri` with its path and query replaced (scheme and authority kept), or
/// `None` if `path_and_query` is not valid in a URI.
pub(crate) fn with_path_and_query(uri: &http::Uri, path_and_query: &str) -> Option<http::Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Request headers every key includes, declared or not, besides `Host`,
/// the target's authority and scheme, and `Forwarded`: what a proxy tells
/// the app about the host, scheme, port or path the client asked for.
/// Handlers build links, redirects and tenants from them, so a body built
/// for one value must never answer a request with another (web cache
/// poisoning). A front proxy should set or strip them: every distinct
/// value is a variant of its own.
///
/// - host: `X-Forwarded-Host`, `X-Forwarded-Server`, `X-Host`,
///   `X-HTTP-Host-Override`, `X-Original-Host`;
/// - scheme: `X-Forwarded-Proto`, `X-Forwarded-Protocol`,
///   `X-Forwarded-Scheme`, `X-Forwarded-Ssl`, `X-Url-Scheme`,
///   `Front-End-Https`;
/// - port and path: `X-Forwarded-Port`, `X-Forwarded-Prefix`,
///   `X-Forwarded-Uri`, `X-Forwarded-Path`, `X-Original-URL`,
///   `X-Original-URI`, `X-Rewrite-URL`, `X-Envoy-Original-Path`;
/// - the proxies on the way: `Via`.
///
/// Others are added per layer with
/// [`add_forwarding_headers`](super::ResponseCacheLayer::add_forwarding_headers);
/// the client-address headers are left out on purpose (see the [module
/// docs](self#the-host)).
pub static FORWARDING_HEADERS: [HeaderName; 20] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-http-host-override"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-protocol"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-path"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-envoy-original-path"),
    http::header::VIA,
];

/// Whether the key includes `name` whether or not the route declares it
/// (a response may name it in `Vary`); `added` are the layer's own
/// forwarding headers.
pub(crate) fn is_always_keyed(name: &str, added: &[HeaderName]) -> bool {
    name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("forwarded")
        || FORWARDING_HEADERS
            .iter()
            .chain(added)
            .any(|h| h.as_str().eq_ignore_ascii_case(name))
}

/// The host a request is for: the target's authority and the `Host`
/// header, which must agree (byte for byte) when both are there; `Err`
/// when they do not, or when there are several `Host` headers.
fn host(request: &request::Parts) -> Result<Option<&[u8]>, ()> {
    let mut hosts = request.headers.get_all(http::header::HOST).iter();
    let header = hosts.next().map(http::HeaderValue::as_bytes);
    if hosts.next().is_some() {
        return Err(());
    }
    let authority = request.uri.authority().map(|a| a.as_str().as_bytes());
    match (authority, header) {
        (Some(authority), Some(header)) if authority != header => Err(()),
        (authority, header) => Ok(authority.or(header)),
    }
}

/// The host-selecting inputs of a request, serialized one by one (no
/// copies): the target's scheme, the host ([`host`]), every value of the
/// [`FORWARDING_HEADERS`] and the layer's `added` ones, and `Forwarded`
/// without its `for` parameters (which differ per client and would split
/// the cache) but with its element boundaries (an application reads the
/// first).
struct HostInputs<'a> {
    request: &'a request::Parts,
    host: Option<&'a [u8]>,
    added: &'a [HeaderName],
}

impl serde::Serialize for HostInputs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // One walk over the request's (few) headers rather than a lookup
        // per known name (most of which a request does not carry): the
        // forwarding ones, in a canonical order — their place in the list,
        // then their order in the request.
        let mut found: Vec<(usize, &HeaderName, &[u8])> = Vec::new();
        let mut forwarded = 0;
        for (name, value) in &self.request.headers {
            if name == http::header::FORWARDED {
                forwarded += 1;
            } else if let Some(rank) = forwarding_rank(name, self.added) {
                found.push((rank, name, value.as_bytes()));
            }
        }
        found.sort_by_key(|(rank, _, _)| *rank); // stable: request order kept
        let mut seq = serializer.serialize_seq(Some(2 + found.len() + forwarded))?;
        seq.serialize_element(&("scheme", self.request.uri.scheme_str()))?;
        seq.serialize_element(&("host", self.host.map(AsBytes)))?;
        for (_, name, value) in found {
            seq.serialize_element(&(name.as_str(), AsBytes(value)))?;
        }
        if forwarded > 0 {
            for value in self.request.headers.get_all(http::header::FORWARDED) {
                let kept = forwarded_without_for(value.as_bytes());
                seq.serialize_element(&("forwarded", AsBytes(&kept)))?;
            }
        }
        seq.end()
    }
}

/// Where `name` stands among [`FORWARDING_HEADERS`] and then `added`; `None`
/// if it is neither. (`HeaderName`s compare without spelling themselves
/// out: most misses cost a few instructions each.)
fn forwarding_rank(name: &HeaderName, added: &[HeaderName]) -> Option<usize> {
    FORWARDING_HEADERS
        .iter()
        .chain(added)
        .position(|known| known == name)
}

/// The declared `Vary` headers' values, serialized without copies.
struct Declared<'a> {
    request: &'a request::Parts,
    vary: &'a [HeaderName],
}

impl serde::Serialize for Declared<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.vary.len()))?;
        for name in self.vary {
            let values = Values(self.request.headers.get_all(name));
            seq.serialize_element(&(name.as_str(), values))?;
        }
        seq.end()
    }
}

/// Every value of one header, each as bytes.
struct Values<'a>(http::header::GetAll<'a, http::HeaderValue>);

impl serde::Serialize for Values<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.iter().count()))?;
        for value in self.0.iter() {
            seq.serialize_element(&AsBytes(value.as_bytes()))?;
        }
        seq.end()
    }
}

/// Bytes serialized as bytes (one length-prefixed string), not as a
/// sequence of numbers.
#[derive(Clone, Copy)]
struct AsBytes<'a>(&'a [u8]);

impl serde::Serialize for AsBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A `Forwarded` value with every `for=` parameter removed and everything
/// else — other parameters, element and parameter boundaries — kept.
fn forwarded_without_for(value: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(value.len());
    for (e, element) in split_unquoted(value, b',').into_iter().enumerate() {
        if e > 0 {
            kept.push(b',');
        }
        let mut first = true;
        for pair in split_unquoted(element, b';') {
            let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
            if name.trim_ascii().eq_ignore_ascii_case(b"for") {
                continue;
            }
            if !first {
                kept.push(b';');
            }
            first = false;
            kept.extend_from_slice(pair.trim_ascii());
        }
    }
    kept
}

/// Splits on `separator` outside double-quoted strings.
fn split_unquoted(value: &[u8], separator: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// The parts of a request that select a stored variant.
#[derive(Debug, Clone)]
pub struct Variant<'a> {
    /// The allow-listed query parameters, in key order.
    pub query: &'a [(String, String)],
    /// The declared `Vary` headers to key on.
    pub vary: &'a [HeaderName],
    /// Forwarding headers keyed besides [`FORWARDING_HEADERS`].
    pub forwarding: &'a [HeaderName],
    /// The authenticated identity, if the route keys on it (never a token).
    pub identity: Option<&'a str>,
    /// Shared-cache mode: the whole query string as sent (every spelling
    /// its own variant); `None` in application mode, which keys
    /// [`query`](Self::query).
    pub raw_query: Option<&'a str>,
}

/// The key prefix shared by every variant of `path`.
pub fn path_prefix(namespace: &str, path: &str) -> String {
    let mut digest = ArgsDigest::new();
    // Digesting a &str cannot fail.
    let _ = digest.arg(path);
    format!("{namespace}:{}", digest.finish())
}

/// The pattern of every stored response of a layer's `namespace`:
/// `{namespace}:{path digest}:…`, spelled out so that a namespace `a` does
/// not also match the keys of a namespace `a:b`.
pub(crate) fn route_pattern(namespace: &str) -> String {
    let namespace = larder::key::escape_glob(namespace);
    let digest = "?".repeat(path_prefix("", "").len() - 1);
    format!("{namespace}:{digest}:*")
}

/// The tag every variant of a key's path joins: the key without its
/// variant digest, `{namespace}:{path digest}` — what
/// [`path_prefix`] gives for the path.
pub(crate) fn path_tag(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(tag, _)| tag)
}

/// The full key of a request, or `None` when the target's authority and
/// the `Host` header disagree or there are several `Host`s (see the
/// [module docs](self#the-host)). `HEAD` shares `GET`'s key: it is answered
/// from the stored `GET`.
pub fn key(namespace: &str, request: &request::Parts, variant: &Variant<'_>) -> Option<String> {
    let host = host(request).ok()?;
    let mut digest = ArgsDigest::new();
    // Strings, byte slices and options always serialize.
    let _ = digest.arg(variant.query);
    let _ = digest.arg(&Declared {
        request,
        vary: variant.vary,
    });
    let _ = digest.arg(&HostInputs {
        request,
        host,
        added: variant.forwarding,
    });
    let _ = digest.arg(&variant.identity);
    // Shared mode only: application-mode keys stay those of earlier releases.
    if let Some(raw_query) = variant.raw_query {
        let _ = digest.arg(raw_query);
    }
    let mut key = path_prefix(namespace, request_path(request));
    key.push(':');
    digest.finish_into(&mut key);
    Some(key)
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
    fn the_host_is_one_input_or_the_request_bypasses() {
        let variant = Variant {
            query: &[],
            vary: &[],
            forwarding: &[],
            identity: None,
            raw_query: None,
        };
        let of = |uri: &str, hosts: &[&str]| {
            let headers: Vec<_> = hosts.iter().map(|h| ("host", *h)).collect();
            super::key("n", &parts(uri, &headers), &variant)
        };
        let h1 = of("/p", &["shop.example"]);
        assert!(h1.is_some());
        assert_eq!(of("http://shop.example/p", &["evil.example"]), None);
        assert_eq!(of("http://shop.example/p", &["SHOP.example"]), None);
        assert_eq!(of("http://shop.example/p", &["shop.example:80"]), None);
        assert_eq!(of("/p", &["shop.example", "evil.example"]), None);
        assert_eq!(of("/p", &["shop.example", "shop.example"]), None);
        let absolute = of("http://shop.example/p", &["shop.example"]);
        assert!(absolute.is_some());
        assert_eq!(absolute, of("http://shop.example/p", &[]), "Host agrees");
        assert_ne!(absolute, h1, "the scheme is keyed");
        assert_ne!(absolute, of("https://shop.example/p", &[]));
        assert_ne!(h1, of("/p", &["Shop.example"]), "as sent");
        assert_ne!(h1, of("/p", &["shop.example."]));
    }

    #[test]
    fn forwarded_keeps_its_elements_but_not_for() {
        let kept = |v: &str| String::from_utf8(forwarded_without_for(v.as_bytes())).unwrap();
        assert_eq!(
            kept("for=1.2.3.4;host=shop;proto=https"),
            "host=shop;proto=https"
        );
        assert_eq!(kept("For=1.2.3.4;Host=shop"), "Host=shop");
        assert_eq!(
            kept("for=x, for=1.2.3.4;host=shop"),
            ",host=shop",
            "an element without a host stays an element"
        );
        assert_eq!(
            kept("host=\"a,b;c\";for=\"[::1]\""),
            "host=\"a,b;c\"",
            "separators inside quotes"
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

    fn key(namespace: &str, request: &request::Parts, variant: &Variant<'_>) -> String {
        super::key(namespace, request, variant).expect("one host")
    }

    #[test]
    fn keys_separate_paths_variants_and_identities() {
        let vary = [HeaderName::from_static("accept-language")];
        let q = keyed("category=tools");
        let variant = |identity| Variant {
            query: &q,
            vary: &vary,
            forwarding: &[],
            identity,
            raw_query: None,
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
