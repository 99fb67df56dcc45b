//! The attribute's options: `#[cached(namespace = "user_data", ttl = 3600)]`.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::TokenStream;
use syn::{Expr, LitStr};

/// Everything `#[cached(...)]` accepts. Unknown options are an error that
/// points at the option.
#[derive(Debug, FromMeta)]
pub(crate) struct CachedArgs {
    /// Key namespace; defaults to the function's path.
    pub(crate) namespace: Option<LitStr>,
    /// TTL in seconds; defaults to the cache's default TTL.
    #[darling(default, with = seconds)]
    pub(crate) ttl: Option<Seconds>,
    /// A readable key from named arguments, e.g. `"{user_id}"`, instead of
    /// the digest of all arguments.
    pub(crate) key: Option<LitStr>,
    /// Whether a method's `self` is part of the key; required on methods.
    pub(crate) receiver: Option<ReceiverChoice>,
    /// An explicit cache instead of the global one.
    pub(crate) cache: Option<Expr>,
    /// Cache `None` results of an `Option`-returning function too.
    #[darling(default)]
    pub(crate) cache_none: bool,
    /// TTL in seconds of a cached `None` (requires `cache_none`).
    #[darling(default, with = seconds)]
    pub(crate) none_ttl: Option<Seconds>,
}

/// A TTL option's value: whole seconds, as an integer literal (checked
/// here) or as any constant expression of type `u64` — `ONE_HOUR`,
/// `60 * 60`, `Self::TTL` — which the compiler checks where it is written.
#[derive(Debug, Clone)]
pub(crate) struct Seconds {
    /// The expression as written.
    pub(crate) expr: Expr,
    /// Its value, when it is an integer literal.
    pub(crate) literal: Option<u64>,
}

/// `receiver = "key"` or `receiver = "skip"`.
#[derive(Debug, Clone)]
pub(crate) struct ReceiverChoice {
    pub(crate) keyed: bool,
    /// The option's value, for errors.
    pub(crate) span: LitStr,
}

/// What each receiver choice means, for errors that ask for one.
pub(crate) const RECEIVER_CHOICES: &str = "`receiver = \"key\"` digests `self` into the key (`Self: Serialize`; mark fields such as a cache or a pool `#[serde(skip)]`), `receiver = \"skip\"` leaves it out (only when nothing in `self` can change the answer)";

impl FromMeta for ReceiverChoice {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let value = match meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(value),
                        ..
                    }),
                ..
            }) => value,
            other => {
                return Err(darling::Error::custom(format!(
                    "expected a string: {RECEIVER_CHOICES}"
                ))
                .with_span(other));
            }
        };
        let keyed = match value.value().as_str() {
            "key" => true,
            "skip" => false,
            other => {
                return Err(darling::Error::custom(format!(
                    "unknown receiver option `{other}`: {RECEIVER_CHOICES}"
                ))
                .with_span(value));
            }
        };
        Ok(Self {
            keyed,
            span: value.clone(),
        })
    }
}

/// A whole number of seconds, with an error that says so. Literals that
/// cannot be seconds are refused here, with a hint; other expressions are
/// left to the compiler, which checks their type and constness.
fn seconds(meta: &syn::Meta) -> darling::Result<Option<Seconds>> {
    let option = meta
        .path()
        .get_ident()
        .map_or_else(|| "ttl".to_owned(), ToString::to_string);
    let syn::Meta::NameValue(pair) = meta else {
        return Err(darling::Error::custom(format!(
            "expected `{option} = <seconds>`, e.g. `{option} = 3600` or `{option} = ONE_HOUR`"
        ))
        .with_span(meta));
    };
    let literal = match &pair.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => Some(int.base10_parse::<u64>()?),
        syn::Expr::Lit(other) => {
            return Err(darling::Error::custom(format!(
                "a TTL is a whole number of seconds, e.g. `{option} = 3600` for an hour, or a `u64` constant; use a `ttl` parameter or return `Expiring<T>` for a TTL computed at run time"
            ))
            .with_span(other));
        }
        _ => None,
    };
    if literal == Some(0) {
        return Err(
            darling::Error::custom(format!("`{option}` must be at least 1 second"))
                .with_span(&pair.value),
        );
    }
    Ok(Some(Seconds {
        expr: pair.value.clone(),
        literal,
    }))
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
        Ok(parsed)
    }
}
