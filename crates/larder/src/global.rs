//! The global default cache and the Django original's free functions.
//!
//! Install one [`Cache`] at start-up (like `tracing`'s global subscriber);
//! the free functions and the `#[cached]` macro then use it. Services with
//! several caches, and tests, use explicit [`Cache`] handles instead.
//!
//! Every operation of [`Cache`] that the Django original has is here too:
//! [`get`], [`get_many`], [`set`], [`set_many`], [`get_or_compute`],
//! [`get_or_compute_expiring`], [`try_get_or_compute`],
//! [`get_or_revalidate`], [`refresh`], [`delete_cached_data`],
//! [`delete_many`] and [`invalidate_cache_pattern`], and for models
//! ([`crate::model`]) [`cache_model`], [`get_cached_model`],
//! [`get_cached_models`], [`invalidate_model_cache`] and
//! [`invalidate_model_cache_id`]. Before [`init`] each returns an error of
//! kind [`ErrorKind::NotInitialized`].
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

use crate::model::CachedModel;
use crate::{Cache, Error, ErrorKind, Expiring, Result};

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

/// [`Cache::get`] on the global cache: the value under `key`, if cached.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// larder::set("product:1", &"Teapot", std::time::Duration::from_secs(60)).await?;
/// assert_eq!(larder::get::<String>("product:1").await?.as_deref(), Some("Teapot"));
/// assert_eq!(larder::get::<String>("product:2").await?, None);
/// # Ok(()) }
/// ```
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

/// [`Cache::get_many`] on the global cache: the values under `keys`, in
/// order, in one round trip.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// larder::set_many(&[("price:1", 1999), ("price:2", 2499)], Duration::from_secs(60)).await?;
/// let prices: Vec<Option<u64>> = larder::get_many(&["price:1", "price:3"]).await?;
/// assert_eq!(prices, [Some(1999), None]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::get_many`], or [`ErrorKind::NotInitialized`].
pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(keys: &[K]) -> Result<Vec<Option<T>>> {
    global()?.get_many(keys).await
}

/// [`Cache::set_many`] on the global cache: stores every `(key, value)`
/// pair for `ttl` (see [`get_many`] for an example).
///
/// # Errors
/// As [`Cache::set_many`], or [`ErrorKind::NotInitialized`].
pub async fn set_many<T: Serialize, K: AsRef<str>>(
    entries: &[(K, T)],
    ttl: Duration,
) -> Result<()> {
    global()?.set_many(entries, ttl).await
}

/// [`Cache::get_or_compute`] on the global cache: the value under `key`;
/// on a miss, `compute`s it once (however many callers miss together) and
/// stores it for `ttl`.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// let name: String = larder::get_or_compute("user_data:42", Duration::from_secs(3600), || async {
///     "Ada".to_string() // an expensive database query
/// })
/// .await?;
/// assert_eq!(name, "Ada");
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::get_or_compute`], or [`ErrorKind::NotInitialized`].
pub async fn get_or_compute<T, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    global()?.get_or_compute(key, ttl, compute).await
}

/// [`Cache::get_or_compute_expiring`] on the global cache: like
/// [`get_or_compute`], but the computed value picks its own TTL from the
/// data it loaded ([`Expiring`]) — the Django original's dynamic TTL.
///
/// ```
/// use std::time::Duration;
/// use larder::Expiring;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// let popularity = 9; // from the product row
/// let product: String = larder::get_or_compute_expiring("product_data:1", || async move {
///     // Popular products change often: cache them for 5 minutes, the rest for 2 hours.
///     let ttl = if popularity > 8 { 300 } else { 7200 };
///     Expiring::new("Teapot".to_string(), Duration::from_secs(ttl))
/// })
/// .await?;
/// assert_eq!(product, "Teapot");
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::get_or_compute_expiring`], or [`ErrorKind::NotInitialized`].
pub async fn get_or_compute_expiring<T, F, Fut>(key: &str, compute: F) -> Result<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Expiring<T>>,
{
    global()?.get_or_compute_expiring(key, compute).await
}

/// [`Cache::try_get_or_compute`] on the global cache: [`get_or_compute`]
/// for a fallible origin; only `Ok` values are cached.
///
/// ```
/// use std::time::Duration;
///
/// type BoxError = Box<dyn std::error::Error>;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
/// # larder::init(larder::Cache::in_memory())?;
/// let ttl = Duration::from_secs(3600);
/// let found: Result<u64, BoxError> =
///     larder::try_get_or_compute("stock:1", ttl, || async { Ok(12) }).await;
/// assert_eq!(found?, 12);
/// let missing: Result<u64, BoxError> =
///     larder::try_get_or_compute("stock:2", ttl, || async { Err("no such stock".into()) }).await;
/// assert!(missing.is_err());
/// assert_eq!(larder::get::<u64>("stock:2").await?, None); // errors are not cached
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::try_get_or_compute`], or [`ErrorKind::NotInitialized`]
/// (converted with `E: From<larder::Error>`).
pub async fn try_get_or_compute<T, E, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T, E>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    global()?.try_get_or_compute(key, ttl, compute).await
}

/// [`Cache::get_or_revalidate`] on the global cache: [`get_or_compute`]
/// with stale-while-revalidate. Inside the stale grace period
/// ([`ConfigBuilder::stale_grace`](crate::config::ConfigBuilder::stale_grace))
/// every caller gets the expired value at once while one refreshes it in
/// the background, so `compute` must be `Send + 'static`.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// let config = larder::Config::builder().stale_grace(Duration::from_secs(60)).build()?;
/// larder::init(larder::Cache::connect(config).await?)?;
/// let report: String =
///     larder::get_or_revalidate("expensive_report:7", Duration::from_secs(3600), || async {
///         "report 7".to_string() // minutes of work
///     })
///     .await?;
/// assert_eq!(report, "report 7");
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::get_or_revalidate`], or [`ErrorKind::NotInitialized`].
pub async fn get_or_revalidate<T, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    global()?.get_or_revalidate(key, ttl, compute).await
}

/// [`Cache::refresh`] on the global cache: recomputes the value under
/// `key` and stores it for `ttl`, whatever is cached now (to warm one key
/// ahead of its readers, say).
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// let hour = Duration::from_secs(3600);
/// larder::set("product:1", &"Teapot", hour).await?;
/// let fresh: String =
///     larder::refresh("product:1", hour, || async { "Kettle".to_string() }).await?;
/// assert_eq!(fresh, "Kettle");
/// assert_eq!(larder::get::<String>("product:1").await?.as_deref(), Some("Kettle"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::refresh`], or [`ErrorKind::NotInitialized`].
pub async fn refresh<T, F, Fut>(key: &str, ttl: Duration, compute: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    global()?.refresh(key, ttl, compute).await
}

/// [`Cache::delete_cached_data`] on the global cache: removes the entry
/// under `key` (the Django original's `delete_cached_data("product:1")`);
/// returns whether it existed. See the [module docs](mod@crate::global) for an example.
///
/// # Errors
/// As [`Cache::delete_cached_data`], or [`ErrorKind::NotInitialized`].
pub async fn delete_cached_data(key: &str) -> Result<bool> {
    global()?.delete_cached_data(key).await
}

/// [`Cache::delete_many`] on the global cache: removes the entries under
/// every key in `keys`, in one round trip; returns how many existed.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// # larder::init(larder::Cache::in_memory())?;
/// larder::set_many(&[("product:1", "Teapot"), ("product:2", "Kettle")], Duration::from_secs(60))
///     .await?;
/// assert_eq!(larder::delete_many(&["product:1", "product:2", "product:3"]).await?, 2);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Cache::delete_many`], or [`ErrorKind::NotInitialized`].
pub async fn delete_many<K: AsRef<str>>(keys: &[K]) -> Result<u64> {
    global()?.delete_many(keys).await
}

/// [`Cache::invalidate_cache_pattern`] on the global cache: removes every
/// entry whose key matches the glob `pattern` (the Django original's
/// `invalidate_cache_pattern("user:123:*")`); returns how many went. See
/// the [module docs](mod@crate::global) for an example.
///
/// # Errors
/// As [`Cache::invalidate_cache_pattern`], or [`ErrorKind::NotInitialized`].
pub async fn invalidate_cache_pattern(pattern: &str) -> Result<u64> {
    global()?.invalidate_cache_pattern(pattern).await
}

/// [`Cache::cache_model`] on the global cache: stores `model` under
/// `{prefix}:{id}` for its model's timeout (the Django original's
/// `cache_model(product)`). See the [`model`](crate::model) module for an
/// example.
///
/// # Errors
/// As [`Cache::cache_model`], or [`ErrorKind::NotInitialized`].
pub async fn cache_model<M: CachedModel>(model: &M) -> Result<()> {
    global()?.cache_model(model).await
}

/// [`Cache::get_cached_model`] on the global cache: the cached instance
/// `id` of `M`, if any (the Django original's `get_cached_model(Product,
/// id)`).
///
/// # Errors
/// As [`Cache::get_cached_model`], or [`ErrorKind::NotInitialized`].
pub async fn get_cached_model<M: CachedModel>(id: M::Id) -> Result<Option<M>> {
    global()?.get_cached_model(id).await
}

/// [`Cache::get_or_load_model`] on the global cache: the instance `id` of
/// `M` from the cache, or from `load` (your query) on a miss — cached
/// unless a write of the row, or of a related row it embeds, raced the
/// load.
///
/// # Errors
/// As [`Cache::get_or_load_model`], or [`ErrorKind::NotInitialized`]
/// (converted with `E: From<larder::Error>`).
pub async fn get_or_load_model<M, E, F, Fut>(id: M::Id, load: F) -> Result<Option<M>, E>
where
    M: CachedModel,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<M>, E>>,
{
    global()?.get_or_load_model(id, load).await
}

/// [`Cache::bump_model_generation`] on the global cache: every entry of
/// `M`, and every entry embedding one of its instances, is a miss.
///
/// # Errors
/// As [`Cache::bump_model_generation`], or [`ErrorKind::NotInitialized`].
pub async fn bump_model_generation<M: CachedModel>() -> Result<()> {
    global()?.bump_model_generation::<M>().await
}

/// [`Cache::invalidate_model_cache_ids`] on the global cache: many
/// instances of `M` invalidated in a few round trips.
///
/// # Errors
/// As [`Cache::invalidate_model_cache_ids`], or
/// [`ErrorKind::NotInitialized`].
pub async fn invalidate_model_cache_ids<M: CachedModel>(ids: &[M::Id]) -> Result<u64> {
    global()?.invalidate_model_cache_ids::<M>(ids).await
}

/// [`Cache::get_cached_models`] on the global cache: the cached instances
/// `ids` of `M`, in order, in one round trip for the values.
///
/// # Errors
/// As [`Cache::get_cached_models`], or [`ErrorKind::NotInitialized`].
pub async fn get_cached_models<M: CachedModel>(ids: &[M::Id]) -> Result<Vec<Option<M>>> {
    global()?.get_cached_models(ids).await
}

/// [`Cache::invalidate_model_cache`] on the global cache: invalidates
/// `model`'s entry and every entry that depends on it; returns whether its
/// own entry existed.
///
/// # Errors
/// As [`Cache::invalidate_model_cache`], or [`ErrorKind::NotInitialized`].
pub async fn invalidate_model_cache<M: CachedModel>(model: &M) -> Result<bool> {
    global()?.invalidate_model_cache(model).await
}

/// [`Cache::invalidate_model_cache_id`] on the global cache: the Django
/// original's `invalidate_model_cache(Product, 1)` is
/// `invalidate_model_cache_id::<Product>(1)`.
///
/// # Errors
/// As [`Cache::invalidate_model_cache_id`], or [`ErrorKind::NotInitialized`].
pub async fn invalidate_model_cache_id<M: CachedModel>(id: M::Id) -> Result<bool> {
    global()?.invalidate_model_cache_id::<M>(id).await
}
