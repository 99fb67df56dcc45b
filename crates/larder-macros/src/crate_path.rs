//! The path generated code uses to reach the runtime crate.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

/// `::larder` (or its renamed form in the user's `Cargo.toml`).
pub(crate) fn larder() -> TokenStream {
    let ident = Ident::new(&name(), Span::call_site());
    quote!(::#ident)
}

/// `"::larder::__private::serde"`, for `#[serde(crate = "…")]`.
pub(crate) fn serde() -> String {
    format!("::{}::__private::serde", name())
}

/// `larder`, or the name the user's `Cargo.toml` gives it.
fn name() -> String {
    match crate_name("larder") {
        Ok(FoundCrate::Name(name)) => name,
        // Inside larder's own doc tests and examples, and when the lookup
        // fails (e.g. a build without a manifest): the usual name.
        Ok(FoundCrate::Itself) | Err(_) => "larder".to_owned(),
    }
}
