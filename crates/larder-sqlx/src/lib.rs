//! Cached model repositories over [sqlx](https://docs.rs/sqlx) for Larder.
//!
//! Kept out of `larder` so that the cache itself has no database
//! dependencies.

#[cfg(feature = "postgres")]
pub mod change_feed;
