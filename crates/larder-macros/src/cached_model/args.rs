//! The derive's options: `#[larder(prefix = "product", timeout = 86400,
//! related(category), exclude(internal_notes))]` on the struct, and
//! `#[larder(id)]` on a field.

use darling::util::{Flag, PathList};
use darling::{FromDeriveInput, FromField};
use syn::LitStr;

use crate::seconds::{self, Seconds};

/// Everything `#[larder(...)]` accepts on the struct. Unknown options are
/// an error that points at the option.
#[derive(Debug, FromDeriveInput)]
#[darling(attributes(larder))]
pub(super) struct ModelArgs {
    /// `redis_cache_prefix`: the keys' first segment. Required.
    pub(super) prefix: Option<LitStr>,
    /// `redis_cache_timeout`, in seconds.
    #[darling(default, with = seconds::timeout)]
    pub(super) timeout: Option<Seconds>,
    /// `redis_cache_version`.
    pub(super) version: Option<LitStr>,
    /// `redis_cache_enabled`.
    pub(super) enabled: Option<bool>,
    /// Listed for cache warming.
    #[darling(default)]
    pub(super) critical: bool,
    /// Seconds an instance may stay in the local (L1) tier; needs `Clone`.
    #[darling(default, with = seconds::ttl)]
    pub(super) local: Option<Seconds>,
    /// `redis_cache_related`: fields holding related models.
    #[darling(default)]
    pub(super) related: PathList,
    /// `redis_cache_exclude`: fields never stored.
    #[darling(default)]
    pub(super) exclude: PathList,
}

/// Everything `#[larder(...)]` accepts on a field.
#[derive(Debug, FromField)]
#[darling(attributes(larder))]
pub(super) struct FieldArgs {
    /// The field is the model's id.
    pub(super) id: Flag,
}
