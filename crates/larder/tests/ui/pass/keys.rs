//! The accepted ways to key a method's receiver, generic functions and
//! templates.

use std::sync::Arc;

use serde::Serialize;

#[derive(Serialize)]
struct TenantRepo {
    tenant: String,
    /// Never changes an answer: not part of the key.
    #[serde(skip)]
    cache: larder::Cache,
}

impl TenantRepo {
    #[larder::cached(cache = self.cache, receiver = "key")]
    async fn by_ref(&self, id: u64) -> String {
        format!("{} {id}", self.tenant)
    }

    #[larder::cached(receiver = "key")]
    fn by_mut(&mut self, id: u64) -> String {
        self.tenant.push('!');
        format!("{} {id}", self.tenant)
    }

    #[larder::cached(receiver = "key")]
    async fn by_arc(self: Arc<Self>, id: u64) -> String {
        format!("{} {id}", self.tenant)
    }

    #[larder::cached(receiver = "key")]
    fn by_value(self, id: u64) -> String {
        format!("{} {id}", self.tenant)
    }

    #[larder::cached(cache = self.cache, receiver = "key", key = "tenant:{self}:{id}")]
    async fn templated(&self, id: u64) -> String {
        format!("{} {id}", self.tenant)
    }

    #[larder::cached(cache = self.cache, receiver = "skip", key = "{id}")]
    async fn shared(&self, id: u64) -> u64 {
        id
    }

    #[larder::cached]
    async fn associated(id: u64) -> u64 {
        id
    }
}

trait Table {
    const NAME: &'static str;
}

struct Users;

impl Table for Users {
    const NAME: &'static str = "users";
}

#[larder::cached]
async fn generic_digest<T: Table, const N: usize>(id: u64, extra: impl Serialize + Send) -> String {
    let _ = extra;
    format!("{} {id} {N}", T::NAME)
}

#[larder::cached(key = "{{literal}}:{id}")]
async fn skipped_generic<#[larder(skip)] E: Send>(#[larder(skip)] executor: E, id: u64) -> u64 {
    let _ = executor;
    id
}

fn main() {
    larder::init(larder::Cache::in_memory()).unwrap();
    larder::block_on(async {
        let repo = TenantRepo { tenant: "acme".into(), cache: larder::Cache::in_memory() };
        assert_eq!(repo.by_ref(1).await, "acme 1");
        assert!(repo.by_ref_key(1).unwrap().starts_with(&format!("{}.TenantRepo.by_ref:", module_path!())));
        assert!(repo.templated_key(1).unwrap().contains(".TenantRepo.templated:tenant:"));
        assert_eq!(TenantRepo::shared_key(1).unwrap(), format!("{}.TenantRepo.shared:1", module_path!()));
        assert_eq!(TenantRepo::associated(2).await, 2);
        let arc = Arc::new(TenantRepo { tenant: "globex".into(), cache: larder::Cache::in_memory() });
        assert_eq!(arc.by_arc(3).await, "globex 3");
        assert_eq!(generic_digest::<Users, 2>(1, 5_u8).await, "users 1 2");
        assert_eq!(skipped_generic((), 4).await, 4);
        assert_eq!(skipped_generic_key::<()>(4).unwrap(), format!("{}.skipped_generic:{{literal}}:4", module_path!()));
    });
    let mut repo = TenantRepo { tenant: "initech".into(), cache: larder::Cache::in_memory() };
    assert_eq!(repo.by_mut(1), "initech! 1");
    assert_eq!(repo.by_value(1), "initech! 1");
}
