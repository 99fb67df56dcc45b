//! `#[derive(CachedModel)]`: the struct's `#[larder(...)]` options and its
//! fields are read, checked, and turned into an impl of
//! `larder::model::CachedModel` with its shadow structs.

mod args;
mod codegen;
mod fields;
mod schema;

use darling::FromDeriveInput;
use proc_macro2::TokenStream;
use syn::DeriveInput;

use self::args::ModelArgs;

/// Expands `#[derive(CachedModel)]` on `input`; on an error, only the
/// error (the struct itself is the user's, emitted by the compiler).
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let mut errors = darling::Error::accumulator();
    let args = errors.handle(ModelArgs::from_derive_input(&input));
    let fields = match &args {
        Some(args) => errors.handle(fields::analyze(&input, args)),
        None => None,
    };
    let generated = match (&args, &fields) {
        (Some(args), Some(fields)) => errors.handle(codegen::generate(&input, args, fields)),
        _ => None,
    };
    match (errors.finish(), generated) {
        (Ok(()), Some(generated)) => generated,
        (Err(errors), _) => errors.write_errors(),
        // Every `None` above comes with an error in the accumulator.
        (Ok(()), None) => TokenStream::new(),
    }
}
