//! `#[cached]`: the attribute's options, the function's signature and
//! return type are read, checked, and turned into the cached function and
//! its companions.

mod args;
mod codegen;
mod returns;
mod signature;

use proc_macro2::TokenStream;

use self::args::CachedArgs;

/// Expands `#[cached(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> darling::Result<TokenStream> {
    let args = CachedArgs::parse(args);
    let function: syn::ItemFn = syn::parse2(item).map_err(|err| {
        darling::Error::custom(format!("#[cached] goes on a function: {err}"))
            .with_span(&err.span())
    })?;
    let mut errors = darling::Error::accumulator();
    let args = errors.handle(args);
    let mut function = function;
    let params = errors.handle(signature::analyze(&mut function.sig));
    let returns = errors.handle(returns::analyze(&function.sig));
    errors.finish()?;
    match (args, params, returns) {
        (Some(args), Some(params), Some(returns)) => {
            codegen::generate(&args, &function, &params, &returns)
        }
        // `finish()` has reported whatever failed to parse.
        _ => Err(darling::Error::custom(
            "#[cached] could not read this function",
        )),
    }
}
