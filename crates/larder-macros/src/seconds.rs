//! A duration option written in whole seconds — `#[cached(ttl = 3600)]`,
//! `#[larder(timeout = 86400)]` — as an integer literal or a constant
//! expression of type `u64`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Expr;
use syn::spanned::Spanned;

/// A seconds option's value: an integer literal (checked here) or any
/// constant expression of type `u64` — `ONE_HOUR`, `60 * 60`, `Self::TTL`
/// — which the compiler checks where it is written.
#[derive(Debug, Clone)]
pub(crate) struct Seconds {
    /// The expression as written.
    pub(crate) expr: Expr,
    /// Its value, when it is an integer literal.
    pub(crate) literal: Option<u64>,
}

impl Seconds {
    /// A `Duration` expression. A literal was checked when parsed; any
    /// other expression is evaluated in a `const` block with the type `u64`
    /// expected, so the compiler reports a wrong type, a value known only
    /// at run time, or zero (`{attribute}: `{option}` must be at least 1
    /// second`), at the expression itself.
    ///
    /// Zero is found when the constant is evaluated: by `cargo build`, not
    /// by `cargo check`.
    pub(crate) fn duration(&self, attribute: &str, option: &str) -> TokenStream {
        if let Some(secs) = self.literal {
            return quote!(::core::time::Duration::from_secs(#secs));
        }
        let expr = &self.expr;
        let zero = format!("{attribute}: `{option}` must be at least 1 second");
        quote_spanned! {expr.span()=>
            const {
                let __larder_seconds: u64 = #expr;
                if __larder_seconds == 0 {
                    ::core::panic!(#zero);
                }
                ::core::time::Duration::from_secs(__larder_seconds)
            }
        }
    }
}

/// `ttl = …` and `none_ttl = …` of `#[cached]`.
pub(crate) fn ttl(meta: &syn::Meta) -> darling::Result<Option<Seconds>> {
    parse(
        meta,
        "a TTL is a whole number of seconds",
        (3600, "an hour"),
        "; use a `ttl` parameter or return `Expiring<T>` for a TTL computed at run time",
    )
}

/// `timeout = …` of `#[derive(CachedModel)]`.
pub(crate) fn timeout(meta: &syn::Meta) -> darling::Result<Option<Seconds>> {
    parse(
        meta,
        "a model's timeout is a whole number of seconds",
        (86_400, "a day"),
        "",
    )
}

/// A whole number of seconds, with an error that says so. Literals that
/// cannot be seconds are refused here, with a hint; other expressions are
/// left to the compiler, which checks their type and constness.
fn parse(
    meta: &syn::Meta,
    what: &str,
    (example, meaning): (u64, &str),
    hint: &str,
) -> darling::Result<Option<Seconds>> {
    let option = meta
        .path()
        .get_ident()
        .map_or_else(|| "ttl".to_owned(), ToString::to_string);
    let syn::Meta::NameValue(pair) = meta else {
        return Err(darling::Error::custom(format!(
            "expected `{option} = <seconds>`, e.g. `{option} = {example}` or `{option} = ONE_HOUR`"
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
                "{what}, e.g. `{option} = {example}` for {meaning}, or a `u64` constant{hint}"
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
