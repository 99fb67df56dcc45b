//! Caching whole responses, the seed's `@cache_api_response(timeout=900,
//! vary_on_query_params=['category', 'sort'])`, as a tower layer.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use larder_http::ResponseCacheLayer;
//!
//! async fn products() -> &'static str { "[...]" }
//!
//! let cache = larder::Cache::in_memory();
//! let app: Router = Router::new().route(
//!     "/api/products",
//!     get(products).layer(
//!         ResponseCacheLayer::new(cache)
//!             .namespace("products")
//!             .ttl(Duration::from_secs(900))
//!             .vary_on_query(["category", "sort"]),
//!     ),
//! );
//! ```
//!
//! What is stored follows RFC 9111 for a shared cache ([`policy`]); what a
//! request is keyed on is the method, path, allow-listed query parameters,
//! declared headers and — for per-user routes — the authenticated identity
//! ([`key`]). Hits carry `X-Cache: HIT`, a recomputed `Age` and a strong
//! `ETag`; `If-None-Match` gets a 304. Misses go through Larder's read path,
//! so concurrent identical misses call the handler once, and a failing Redis
//! means the handler answers.

mod body;
pub mod key;
mod layer;
pub mod policy;
mod service;
mod stored;

pub use body::ResponseBody;
pub use layer::{IdentityFn, ResponseCacheLayer};
pub use service::ResponseCache;
