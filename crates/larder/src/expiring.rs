//! A value that carries its own time to live.

use std::time::Duration;

/// A computed value with the TTL it should be cached for, chosen from the
/// data itself — the Django original's "popular products for 5 minutes, the rest for 2
/// hours".
///
/// Return it from [`Cache::get_or_compute_expiring`](crate::Cache::get_or_compute_expiring)
/// or from the body of a `#[larder::cached]` function; callers receive the
/// plain value.
///
/// ```
/// use std::time::Duration;
/// use larder::Expiring;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// let cache = larder::Cache::in_memory();
/// let popularity = 9;
/// let price: u64 = cache
///     .get_or_compute_expiring("product_data:1", || async move {
///         let ttl = if popularity > 8 { 300 } else { 7200 };
///         Expiring::new(1999, Duration::from_secs(ttl))
///     })
///     .await?;
/// assert_eq!(price, 1999);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiring<T> {
    /// The value.
    pub value: T,
    /// How long to cache it (jitter is still applied).
    pub ttl: Duration,
}

impl<T> Expiring<T> {
    /// `value`, to be cached for `ttl`.
    pub fn new(value: T, ttl: Duration) -> Self {
        Self { value, ttl }
    }

    /// `value`, to be cached for `secs` seconds.
    pub fn secs(value: T, secs: u64) -> Self {
        Self::new(value, Duration::from_secs(secs))
    }
}
