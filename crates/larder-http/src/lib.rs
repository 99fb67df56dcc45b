//! HTTP response caching on [Larder](larder): a tower layer for axum (and
//! any tower service). A response cache is a security boundary — one wrong
//! rule serves one user's data to another — so every storability rule here
//! follows RFC 9111 for a shared cache and is tested.
//!
//! See [`response_cache`] and [`ResponseCacheLayer`].

pub mod response_cache;

pub use response_cache::{CacheMode, ResponseCache, ResponseCacheLayer};

/// The guide for users of the Django original (`docs/from-django.md`): its
/// code blocks run as doctests, as written.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/from-django.md")]
struct DjangoGuide;
