//! The `#[cached]` attribute and `#[derive(CachedModel)]` of
//! [Larder](https://docs.rs/larder). Depend on `larder` and write
//! `#[larder::cached(...)]` or `#[derive(larder::CachedModel)]`; this crate
//! is their implementation and they are documented there.

mod cached;
mod cached_model;
mod crate_path;
mod seconds;

use proc_macro::TokenStream;

/// Caches a function's result in Larder. See `larder::cached` for the full
/// documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}

/// Implements `larder::model::CachedModel` from `#[larder(...)]`
/// attributes. See `larder::CachedModel` for the full documentation.
#[proc_macro_derive(CachedModel, attributes(larder))]
pub fn derive_cached_model(input: TokenStream) -> TokenStream {
    cached_model::expand(input.into()).into()
}
