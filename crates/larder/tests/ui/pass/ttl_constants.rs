//! `ttl = …` and `none_ttl = …` take any constant expression of `u64`
//! seconds: a literal, a `const` item (anywhere in scope), arithmetic, an
//! associated constant, a const generic of the impl.

use std::marker::PhantomData;

const ONE_HOUR: u64 = 60 * 60;

mod settings {
    pub const NEGATIVE_TTL: u64 = 30;
}

#[larder::cached(namespace = "user_data", ttl = ONE_HOUR)]
async fn by_const(id: u64) -> u64 {
    id
}

#[larder::cached(ttl = 24 * ONE_HOUR)]
fn by_arithmetic(id: u64) -> u64 {
    id
}

#[larder::cached(ttl = ONE_HOUR, cache_none = true, none_ttl = settings::NEGATIVE_TTL)]
async fn maybe(id: u64) -> Option<u64> {
    (id > 0).then_some(id)
}

#[larder::cached(ttl = 3600u64)]
async fn by_suffixed_literal(id: u64) -> u64 {
    id
}

struct Repo {
    cache: larder::Cache,
}

impl Repo {
    const TTL: u64 = 600;

    #[larder::cached(ttl = Self::TTL, cache = self.cache, receiver = "skip")]
    async fn load(&self, id: u64) -> u64 {
        id
    }
}

#[derive(serde::Serialize)]
struct Window<const SECS: u64> {
    #[serde(skip)]
    marker: PhantomData<()>,
}

impl<const SECS: u64> Window<SECS> {
    #[larder::cached(ttl = SECS, receiver = "key")]
    async fn width(&self, id: u64) -> u64 {
        id + SECS
    }
}

fn main() {
    larder::init(larder::Cache::in_memory()).unwrap();
    larder::block_on(async {
        assert_eq!(by_const(1).await, 1);
        assert_eq!(maybe(0).await, None);
        assert_eq!(by_suffixed_literal(2).await, 2);
        let repo = Repo {
            cache: larder::Cache::in_memory(),
        };
        assert_eq!(repo.load(3).await, 3);
        let window = Window::<60> {
            marker: PhantomData,
        };
        assert_eq!(window.width(1).await, 61);
    });
    assert_eq!(by_arithmetic(4), 4);
}
