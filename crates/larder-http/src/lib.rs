//! HTTP response caching on [Larder](larder): a tower layer for axum (and
//! any tower service). A response cache is a security boundary — one wrong
//! rule serves one user's data to another — so every storability rule here
//! follows RFC 9111 for a shared cache and is tested.
//!
//! Work in progress: the storability policy and the cache key are here; the
//! `ResponseCacheLayer` itself lands next.

pub mod response_cache;
