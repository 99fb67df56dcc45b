//! The `#[cached]` attribute of [Larder](https://docs.rs/larder). Depend on
//! `larder` and write `#[larder::cached(...)]`; this crate is its
//! implementation and is documented there.

mod cached;
mod crate_path;

use proc_macro::TokenStream;

/// Caches a function's result in Larder. See `larder::cached` for the full
/// documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}
