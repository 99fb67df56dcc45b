//! A watched model, type-erased: how the feed invalidates its ids and bumps
//! its generation without knowing its type.

use std::marker::PhantomData;
use std::str::FromStr;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use larder::Cache;
use larder::model::CachedModel;

/// What one batch of ids came to.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Ids whose entries were invalidated.
    pub(crate) invalidated: u64,
    /// An id did not parse as the model's id: the whole model must go.
    pub(crate) unparsable: Option<String>,
    /// The first cache failure, if any invalidation failed.
    pub(crate) failed: Option<larder::Error>,
}

/// A model the feed watches.
pub(crate) trait Watched: Send + Sync {
    /// The model's key prefix, for logs.
    fn prefix(&self) -> &'static str;

    /// Invalidates the entries of `ids` (and their dependents), up to
    /// `concurrency` at a time.
    fn invalidate<'a>(
        &'a self,
        cache: &'a Cache,
        ids: &'a [String],
        concurrency: usize,
    ) -> BoxFuture<'a, Applied>;

    /// Makes every entry of the model, and every entry embedding one of
    /// its instances, a miss.
    fn bump<'a>(&'a self, cache: &'a Cache) -> BoxFuture<'a, larder::Result<()>>;
}

pub(crate) struct Model<M>(PhantomData<fn() -> M>);

impl<M> Model<M> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M> Watched for Model<M>
where
    M: CachedModel + Send + Sync + 'static,
    M::Id: FromStr + Send + Sync + 'static,
{
    fn prefix(&self) -> &'static str {
        M::OPTIONS.prefix
    }

    fn invalidate<'a>(
        &'a self,
        cache: &'a Cache,
        ids: &'a [String],
        concurrency: usize,
    ) -> BoxFuture<'a, Applied> {
        async move {
            let mut applied = Applied::default();
            let mut parsed = Vec::with_capacity(ids.len());
            for id in ids {
                match id.parse::<M::Id>() {
                    Ok(id) => parsed.push(id),
                    Err(_) => {
                        applied.unparsable = Some(id.clone());
                        return applied;
                    }
                }
            }
            // One call per id, `concurrency` in flight on the cache's
            // multiplexed connection: Larder has no batched form of
            // `invalidate_model_cache_id` yet.
            let mut results = futures::stream::iter(parsed)
                .map(|id| cache.invalidate_model_cache_id::<M>(id))
                .buffer_unordered(concurrency.max(1));
            while let Some(result) = results.next().await {
                match result {
                    Ok(_) => applied.invalidated += 1,
                    Err(error) => {
                        applied.failed.get_or_insert(error);
                    }
                }
            }
            applied
        }
        .boxed()
    }

    fn bump<'a>(&'a self, cache: &'a Cache) -> BoxFuture<'a, larder::Result<()>> {
        cache.bump_model_generation::<M>().boxed()
    }
}
