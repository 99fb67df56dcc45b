//! The global default cache and the Django original's free functions.
//!
//! Install one [`Cache`] at start-up (like `tracing`'s global subscriber);
//! the free functions and the `#[cached]` macro then use it. Services with
//! several caches, and tests, use explicit [`Cache`] handles instead.
//!
//! ```
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
//! larder::init(larder::Cache::in_memory())?;
//!
//! larder::set("product:1", &"Teapot", Duration::from_secs(60)).await?;
//! larder::set("product:2", &"Kettle", Duration::from_secs(60)).await?;
//! assert!(larder::delete_cached_data("product:1").await?);
//! assert_eq!(larder::invalidate_cache_pattern("product:*").await?, 1);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Cache, Error, ErrorKind, Result};

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Installs `cache` as the global default. Call once, at start-up.
///
/// # Errors
/// [`ErrorKind::AlreadyInitialized`] if a global cache is already installed
/// (the first one stays).
pub fn init(cache: Cache) -> Result<&'static Cache> {
    let mut installed = false;
    let global = GLOBAL.get_or_init(|| {
        installed = true;
        cache
    });
    if installed {
        Ok(global)
    } else {
        Err(Error::new(
            ErrorKind::AlreadyInitialized,
            "larder::init was called twice; install the global cache once, at start-up",
        ))
    }
}

/// Builds a cache from the environment ([`Cache::from_env`]) and installs
/// it as the global default.
///
/// # Errors
/// As [`Cache::from_env`] and [`init`].
pub async fn init_from_env() -> Result<&'static Cache> {
    init(Cache::from_env().await?)
}

/// The global default cache.
///
/// # Errors
/// [`ErrorKind::NotInitialized`] before [`init`].
pub fn global() -> Result<&'static Cache> {
    GLOBAL.get().ok_or_else(|| {
        Error::new(
            ErrorKind::NotInitialized,
            "no global cache: call larder::init(cache) or larder::init_from_env() at start-up",
        )
    })
}

/// [`Cache::get`] on the global cache.
///
/// # Errors
/// As [`Cache::get`], or [`ErrorKind::NotInitialized`].
pub async fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    global()?.get(key).await
}

/// [`Cache::set`] on the global cache.
///
/// # Errors
/// As [`Cache::set`], or [`ErrorKind::NotInitialized`].
pub async fn set<T: Serialize + ?Sized>(key: &str, value: &T, ttl: Duration) -> Result<()> {
    global()?.set(key, value, ttl).await
}

/// [`Cache::get_many`] on the global cache.
///
/// # Errors
/// As [`Cache::get_many`], or [`ErrorKind::NotInitialized`].
pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(keys: &[K]) -> Result<Vec<Option<T>>> {
    global()?.get_many(keys).await
}

/// [`Cache::set_many`] on the global cache.
///
/// # Errors
/// As [`Cache::set_many`], or [`ErrorKind::NotInitialized`].
pub async fn set_many<T: Serialize, K: AsRef<str>>(
    entries: &[(K, T)],
    ttl: Duration,
) -> Result<()> {
    global()?.set_many(entries, ttl).await
}

/// [`Cache::get_or_compute`] on the global cache.
///
/// # Errors
/// As [`Cache::get_or_compute`], or [`ErrorKind::NotInitialized`].
pub async fn get_or_compute<T, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    global()?.get_or_compute(key, ttl, compute).await
}

/// [`Cache::try_get_or_compute`] on the global cache.
///
/// # Errors
/// As [`Cache::try_get_or_compute`], or [`ErrorKind::NotInitialized`].
pub async fn try_get_or_compute<T, E, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    global()?.try_get_or_compute(key, ttl, compute).await
}

/// [`Cache::delete_cached_data`] on the global cache.
///
/// # Errors
/// As [`Cache::delete_cached_data`], or [`ErrorKind::NotInitialized`].
pub async fn delete_cached_data(key: &str) -> Result<bool> {
    global()?.delete_cached_data(key).await
}

/// [`Cache::invalidate_cache_pattern`] on the global cache.
///
/// # Errors
/// As [`Cache::invalidate_cache_pattern`], or [`ErrorKind::NotInitialized`].
pub async fn invalidate_cache_pattern(pattern: &str) -> Result<u64> {
    global()?.invalidate_cache_pattern(pattern).await
}
