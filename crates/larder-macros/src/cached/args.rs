//! The attribute's options: `#[cached(namespace = "user_data", ttl = 3600)]`.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::TokenStream;
use syn::{Expr, LitStr};

use crate::seconds::{self, Seconds};

/// Everything `#[cached(...)]` accepts. Unknown options are an error that
/// points at the option.
#[derive(Debug, FromMeta)]
pub(crate) struct CachedArgs {
    /// Key namespace; defaults to the function's path.
    pub(crate) namespace: Option<LitStr>,
    /// TTL in seconds; defaults to the cache's default TTL.
    #[darling(default, with = seconds::ttl)]
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
    #[darling(default, with = seconds::ttl)]
    pub(crate) none_ttl: Option<Seconds>,
    /// Seconds the decoded value may stay in this process's memory (the
    /// local tier) in front of Redis; the value must be `Clone`.
    #[darling(default, with = seconds::ttl)]
    pub(crate) local: Option<Seconds>,
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
