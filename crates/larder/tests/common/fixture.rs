//! Running one suite on both stores: a private redis-server and the
//! in-process `MemoryStore`.

use std::sync::Arc;

use larder::config::ConfigBuilder;
use larder::store::MemoryStore;
use larder::{Cache, Config};
use larder_test_support::RedisServer;

/// Where the caches of one test keep their data. Caches made from one
/// fixture share it, as two processes share one Redis.
pub enum Fixture {
    Memory(Arc<MemoryStore>),
    Redis(RedisServer),
}

impl Fixture {
    pub fn memory() -> Self {
        Fixture::Memory(Arc::new(MemoryStore::new(256 << 20)))
    }

    pub fn redis() -> Self {
        Fixture::Redis(RedisServer::spawn())
    }

    pub async fn cache_with(&self, tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Cache {
        match self {
            Fixture::Memory(store) => {
                let config = tweak(Config::builder()).build().unwrap();
                Cache::with_store(config, store.clone())
            }
            Fixture::Redis(server) => super::redis_cache(server, tweak).await,
        }
    }

    pub async fn cache(&self) -> Cache {
        self.cache_with(|b| b).await
    }

    /// The private server, when the fixture is one.
    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            Fixture::Memory(_) => None,
            Fixture::Redis(server) => Some(server),
        }
    }
}

/// Declares `memory::NAME` and `redis::NAME` tests for every `async fn
/// NAME(fixture: Fixture)` listed; `Fixture` must be in scope.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::redis()).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;
