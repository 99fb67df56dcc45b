//! `#[cached]`: the attribute's options, the function's signature and
//! return type are read, checked, and turned into the cached function and
//! its companions.

mod args;
mod codegen;
mod key;
mod returns;
mod signature;
mod template;

use proc_macro2::TokenStream;
use quote::quote;

use self::args::CachedArgs;

/// Expands `#[cached(args)] item`. On an error the function is still
/// emitted, uncached and without its `#[larder(...)]` attributes, so the
/// compiler reports the error itself and not every call of the function.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = CachedArgs::parse(args);
    let mut function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(err) => {
            let error = darling::Error::custom(format!("#[cached] goes on a function: {err}"))
                .with_span(&err.span())
                .write_errors();
            return quote!(#error #item);
        }
    };
    let mut errors = darling::Error::accumulator();
    let args = errors.handle(args);
    let params = errors.handle(signature::analyze(&mut function.sig));
    let returns = errors.handle(returns::analyze(&function.sig));
    let generated = match (args, params, returns) {
        (Some(args), Some(params), Some(returns)) => {
            errors.handle(codegen::generate(&args, &function, &params, &returns))
        }
        _ => None,
    };
    match (errors.finish(), generated) {
        (Ok(()), Some(generated)) => generated,
        (result, _) => {
            let errors = result.err().map(darling::Error::write_errors);
            quote! {
                #errors
                #[allow(dead_code)]
                #function
            }
        }
    }
}
