//! TEMPORARY, not to be committed: stands in for `Cache::get_or_load_model`
//! until it lands on main (unguarded!).
#![allow(missing_docs, dead_code)]
use larder::Cache;
use larder::model::CachedModel;

pub(crate) trait Shim {
    async fn get_or_load_model<M, E, F, Fut>(&self, id: M::Id, load: F) -> Result<Option<M>, E>
    where
        M: CachedModel,
        E: From<larder::Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>, E>>;
}
impl Shim for Cache {
    async fn get_or_load_model<M, E, F, Fut>(&self, id: M::Id, load: F) -> Result<Option<M>, E>
    where
        M: CachedModel,
        E: From<larder::Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>, E>>,
    {
        if let Some(m) = self.get_cached_model::<M>(id).await? {
            return Ok(Some(m));
        }
        let m = load().await?;
        if let Some(m) = &m {
            self.cache_model(m).await?;
        }
        Ok(m)
    }
}
