//! The attribute's options: `#[cached(namespace = "user_data", ttl = 3600)]`.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::TokenStream;
use syn::{Expr, LitStr};

/// Everything `#[cached(...)]` accepts. Unknown options are an error that
/// points at the option.
#[derive(Debug, FromMeta)]
pub(crate) struct CachedArgs {
    /// Key namespace; defaults to the function's name.
    pub(crate) namespace: Option<LitStr>,
    /// TTL in seconds; defaults to the cache's default TTL.
    #[darling(default, with = seconds)]
    pub(crate) ttl: Option<u64>,
    /// A readable key from named arguments, e.g. `"{user_id}"`, instead of
    /// the digest of all arguments.
    pub(crate) key: Option<LitStr>,
    /// An explicit cache instead of the global one.
    pub(crate) cache: Option<Expr>,
    /// Cache `None` results of an `Option`-returning function too.
    #[darling(default)]
    pub(crate) cache_none: bool,
    /// TTL in seconds of a cached `None` (requires `cache_none`).
    #[darling(default, with = seconds)]
    pub(crate) none_ttl: Option<u64>,
}

/// A whole number of seconds, with an error that says so.
fn seconds(meta: &syn::Meta) -> darling::Result<Option<u64>> {
    let syn::Meta::NameValue(pair) = meta else {
        return Err(
            darling::Error::custom("expected `= <seconds>`, e.g. `ttl = 3600`").with_span(meta),
        );
    };
    match &pair.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => int.base10_parse().map(Some).map_err(darling::Error::from),
        other => Err(darling::Error::custom(
            "a TTL is a whole number of seconds, e.g. `ttl = 3600` for an hour; use a `ttl` parameter or return `Expiring<T>` for a TTL computed at run time",
        )
        .with_span(other)),
    }
}

impl CachedArgs {
    pub(crate) fn parse(args: TokenStream) -> darling::Result<Self> {
        let metas = NestedMeta::parse_meta_list(args)?;
        let parsed = Self::from_list(&metas)?;
        if let Some(ns) = &parsed.namespace {
            let value = ns.value();
            if value.is_empty() || value.contains(['*', '?', '[', ']', '\\']) {
                return Err(darling::Error::custom(
                    "namespace must be non-empty and free of glob characters `* ? [ ] \\`",
                )
                .with_span(ns));
            }
        }
        if parsed.ttl == Some(0) {
            return Err(darling::Error::custom("ttl must be at least 1 second"));
        }
        Ok(parsed)
    }
}
