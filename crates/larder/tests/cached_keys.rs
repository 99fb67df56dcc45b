//! `#[larder::cached]` keys in a shared cache: one caller's answer must never
//! reach a call that differs from it in anything the body can read.
//!
//! Each case is an attack: two calls that must not share an entry, each
//! answered with a value that says who computed it. The cache is the
//! in-process store (Redis is irrelevant to which key a call builds).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use larder::Cache;
use larder::key::{ArgsDigest, escape_glob};
use serde::Serialize;

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

/// `{namespace}:` followed by a 32-hex digest.
fn assert_digest_key(key: &str, namespace: &str) {
    let digest = key
        .strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{key} is not under {namespace}:"));
    assert!(
        digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
}

// ---- point 3: the default namespace is unique per function -------------

mod users {
    #[larder::cached(cache = *super::CACHE)]
    pub async fn display_name(id: u64) -> String {
        format!("user {id}")
    }
}

mod products {
    #[larder::cached(cache = *super::CACHE)]
    pub async fn display_name(id: u64) -> String {
        format!("product {id}")
    }
}

#[tokio::test]
async fn same_named_functions_in_two_modules_do_not_share_entries() {
    assert_eq!(users::display_name(1).await, "user 1");
    assert_eq!(products::display_name(1).await, "product 1");
    assert_eq!(users::display_name(1).await, "user 1");
    assert_digest_key(
        &users::display_name_key(1).unwrap(),
        "cached_keys.users.display_name",
    );
    assert_digest_key(
        &products::display_name_key(1).unwrap(),
        "cached_keys.products.display_name",
    );
}

#[larder::cached(cache = *CACHE, namespace = "user_data")]
async fn get_user_data(user_id: u64) -> String {
    format!("user {user_id}")
}

#[tokio::test]
async fn an_explicit_namespace_keeps_the_django_shape_exactly() {
    let digest = ArgsDigest::new().arg(&42_u64).unwrap().finish();
    assert_eq!(
        get_user_data_key(42).unwrap(),
        format!("user_data:{digest}")
    );
}

struct Invoices;
struct Orders;

impl Invoices {
    #[larder::cached(cache = *CACHE, receiver = "skip")]
    async fn total(&self, id: u64) -> String {
        format!("invoice {id}")
    }

    #[larder::cached(cache = *CACHE)]
    async fn load(id: u64) -> String {
        format!("invoice row {id}")
    }
}

impl Orders {
    #[larder::cached(cache = *CACHE, receiver = "skip")]
    async fn total(&self, id: u64) -> String {
        format!("order {id}")
    }

    #[larder::cached(cache = *CACHE)]
    async fn load(id: u64) -> String {
        format!("order row {id}")
    }
}

#[tokio::test]
async fn same_named_methods_and_associated_functions_of_two_types_do_not_share_entries() {
    assert_eq!(Invoices.total(3).await, "invoice 3");
    assert_eq!(Orders.total(3).await, "order 3");
    assert_eq!(Invoices::load(3).await, "invoice row 3");
    assert_eq!(Orders::load(3).await, "order row 3");
    assert_digest_key(
        &Invoices::total_key(3).unwrap(),
        "cached_keys.Invoices.total",
    );
    assert_digest_key(&Orders::load_key(3).unwrap(), "cached_keys.Orders.load");
}

fn nested_in_first() -> String {
    #[larder::cached(cache = *CACHE)]
    fn inner(id: u64) -> String {
        format!("first {id}")
    }
    inner(1)
}

fn nested_in_second() -> String {
    #[larder::cached(cache = *CACHE)]
    fn inner(id: u64) -> String {
        format!("second {id}")
    }
    inner(1)
}

#[test]
fn same_named_functions_nested_in_two_functions_do_not_share_entries() {
    assert_eq!(nested_in_first(), "first 1");
    assert_eq!(nested_in_second(), "second 1");
}

#[test]
fn same_named_functions_in_two_closures_do_not_share_entries() {
    let first = || {
        #[larder::cached(cache = *CACHE)]
        fn pick(id: u64) -> String {
            format!("first closure {id}")
        }
        pick(1)
    };
    let second = || {
        #[larder::cached(cache = *CACHE)]
        fn pick(id: u64) -> String {
            format!("second closure {id}")
        }
        pick(1)
    };
    assert_eq!(first(), "first closure 1");
    assert_eq!(second(), "second closure 1");
}

trait Named {
    const NAME: &'static str;
}
struct Apples;
struct Pears;
impl Named for Apples {
    const NAME: &'static str = "apples";
}
impl Named for Pears {
    const NAME: &'static str = "pears";
}

#[larder::cached(cache = *CACHE)]
async fn count<T: Named>(shelf: u64) -> String {
    format!("{} on shelf {shelf}", T::NAME)
}

#[larder::cached(cache = *CACHE)]
async fn chunk<const N: usize>(id: u64) -> String {
    format!("{id} in chunks of {N}")
}

#[larder::cached(cache = *CACHE)]
async fn type_of(value: impl Serialize + Send) -> String {
    std::any::type_name_of_val(&value).to_owned()
}

#[tokio::test]
async fn instantiations_of_a_generic_function_do_not_share_entries() {
    assert_eq!(count::<Apples>(1).await, "apples on shelf 1");
    assert_eq!(count::<Pears>(1).await, "pears on shelf 1");
    assert_eq!(chunk::<2>(1).await, "1 in chunks of 2");
    assert_eq!(chunk::<3>(1).await, "1 in chunks of 3");
    // MessagePack writes 1_u8 and 1_u64 alike: only the type tells them apart.
    assert_eq!(type_of(1_u8).await, "u8");
    assert_eq!(type_of(1_u64).await, "u64");
}

#[derive(Serialize)]
#[serde(bound = "")]
struct Shelf<T>(std::marker::PhantomData<T>);

impl<T: Named> Shelf<T> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }

    #[larder::cached(cache = *CACHE, receiver = "skip")]
    async fn label(&self, id: u64) -> String {
        format!("{} {id}", T::NAME)
    }

    /// `Shelf<Apples>` and `Shelf<Pears>` serialize alike (`PhantomData`):
    /// only `Self`'s type, which `{self}` covers, tells them apart.
    #[larder::cached(cache = *CACHE, receiver = "key", key = "shelf:{self}:{id}")]
    async fn title(&self, id: u64) -> String {
        format!("{} title {id}", T::NAME)
    }

    /// A template that places neither the receiver nor `Self`: runs
    /// uncached rather than shared, whatever the namespace.
    #[larder::cached(cache = *CACHE, namespace = "shelf", receiver = "skip", key = "{id}")]
    async fn weight(&self, id: u64) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{} weight {id}", T::NAME)
    }

    /// Cannot name `Self` in its key: runs uncached rather than shared.
    #[larder::cached(cache = *CACHE)]
    async fn size(id: u64) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{} size {id}", T::NAME)
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn instances_of_a_generic_impl_do_not_share_entries() {
    assert_eq!(Shelf::<Apples>::new().label(1).await, "apples 1");
    assert_eq!(Shelf::<Pears>::new().label(1).await, "pears 1");
    assert_ne!(
        Shelf::<Apples>::label_key(1).unwrap(),
        Shelf::<Pears>::label_key(1).unwrap()
    );
    assert_digest_key(
        &Shelf::<Apples>::label_key(1).unwrap(),
        "cached_keys.Shelf<_>.label",
    );

    let (apples, pears) = (Shelf::<Apples>::new(), Shelf::<Pears>::new());
    assert_eq!(apples.title(1).await, "apples title 1");
    assert_eq!(pears.title(1).await, "pears title 1");
    assert_ne!(apples.title_key(1).unwrap(), pears.title_key(1).unwrap());

    // Where `Self` is not in the key, fail closed: every call computes.
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(apples.weight(1).await, "apples weight 1");
    assert_eq!(pears.weight(1).await, "pears weight 1");
    assert_eq!(Shelf::<Apples>::size(1).await, "apples size 1");
    assert_eq!(Shelf::<Pears>::size(1).await, "pears size 1");
    assert_eq!(Shelf::<Apples>::size(1).await, "apples size 1");
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 5, "never cached");
    for err in [
        Shelf::<Apples>::size_key(1).unwrap_err(),
        Shelf::<Apples>::weight_key(1).unwrap_err(),
    ] {
        assert!(err.to_string().contains("generic impl"), "{err}");
    }
}

// ---- point 4: key templates ---------------------------------------------

#[larder::cached(cache = *CACHE, key = "{user_id}:{include_private}")]
async fn profile(user_id: u64, include_private: bool) -> String {
    if include_private {
        format!("private profile of {user_id}")
    } else {
        format!("public profile of {user_id}")
    }
}

#[tokio::test]
async fn an_argument_left_out_of_a_template_cannot_share_an_entry() {
    assert_eq!(profile(5, true).await, "private profile of 5");
    assert_eq!(profile(5, false).await, "public profile of 5");
    assert_eq!(profile_key(5, true).unwrap(), "cached_keys.profile:5:true");
}

#[larder::cached(cache = *CACHE, key = "{tenant}:{doc}")]
async fn document(tenant: &str, doc: &str) -> String {
    format!("{tenant} / {doc}")
}

#[tokio::test]
async fn separators_inside_template_values_cannot_collide() {
    assert_ne!(
        document_key("acme:secret", "plan").unwrap(),
        document_key("acme", "secret:plan").unwrap()
    );
    assert_eq!(document("acme:secret", "plan").await, "acme:secret / plan");
    assert_eq!(document("acme", "secret:plan").await, "acme / secret:plan");
    assert_eq!(
        document_key("acme:secret", "plan").unwrap(),
        "cached_keys.document:acme%3Asecret:plan"
    );
    // The escape itself, glob characters and control bytes are escaped too.
    for (a, b) in [
        (("a%3Ab", "c"), ("a:b", "c")),
        (("a", "b*"), ("a", "b?")),
        (("a\n", "b"), ("a%0A", "b")),
        (("a[1]", "b"), ("a\\1", "b")),
    ] {
        let (one, other) = (
            document_key(a.0, a.1).unwrap(),
            document_key(b.0, b.1).unwrap(),
        );
        assert_ne!(one, other);
        assert_eq!(escape_glob(&one), one, "no glob character in {one}");
        assert_eq!(document(a.0, a.1).await, format!("{} / {}", a.0, a.1));
        assert_eq!(document(b.0, b.1).await, format!("{} / {}", b.0, b.1));
    }
}

#[larder::cached(cache = *CACHE, namespace = "user", key = "{user_id}:profile")]
async fn user_profile(user_id: u64) -> String {
    format!("profile {user_id}")
}

#[larder::cached(cache = *CACHE, namespace = "user", key = "{user_id}:settings")]
async fn user_settings(user_id: u64, #[larder(skip)] trace_id: &str) -> String {
    let _ = trace_id;
    format!("settings {user_id}")
}

#[larder::cached(cache = *CACHE, namespace = "account", key = "{login}:profile")]
async fn account_profile(login: &str) -> String {
    format!("account {login}")
}

#[tokio::test]
async fn readable_templates_keep_the_django_pattern_invalidation() {
    assert_eq!(user_profile_key(123).unwrap(), "user:123:profile");
    user_profile(123).await;
    user_settings(123, "t-1").await;
    user_profile(1234).await;
    assert_eq!(
        CACHE.invalidate_cache_pattern("user:123:*").await.unwrap(),
        2
    );
    assert_eq!(user_profile_peek(123).await.unwrap(), None);
    assert_eq!(user_settings_peek(123).await.unwrap(), None);
    assert_eq!(
        user_profile_peek(1234).await.unwrap().as_deref(),
        Some("profile 1234")
    );

    // A value with special characters: the pattern is built from the same
    // escape, then glob-escaped (which leaves an escaped value unchanged).
    let login = "a:b*";
    account_profile(login).await;
    account_profile("a:bc").await;
    assert_eq!(
        account_profile_key(login).unwrap(),
        "account:a%3Ab%2A:profile"
    );
    let segment = larder::__private::escape_segment(login);
    let pattern = format!("account:{}:*", escape_glob(&segment));
    assert_eq!(CACHE.invalidate_cache_pattern(&pattern).await.unwrap(), 1);
    assert_eq!(account_profile_peek(login).await.unwrap(), None);
    assert!(account_profile_peek("a:bc").await.unwrap().is_some());
}

// ---- point 5: the receiver ----------------------------------------------

/// A tenant-scoped repository: the tenant is state that changes answers,
/// the cache is not.
#[derive(Serialize)]
struct TenantInvoices {
    tenant: String,
    #[serde(skip)]
    cache: Arc<Cache>,
}

impl TenantInvoices {
    #[larder::cached(cache = self.cache, receiver = "key")]
    async fn invoice_total(&self, invoice: u64) -> String {
        format!("{}: invoice {invoice}", self.tenant)
    }

    #[larder::cached(cache = self.cache, receiver = "key", key = "invoice:{self}:{invoice}")]
    async fn invoice_title(&self, invoice: u64) -> String {
        format!("{}: title {invoice}", self.tenant)
    }

    // `cache = self.cache` cannot lend the cache while the body holds
    // `&mut self` or `Arc<Self>`: these two use the shared static cache.
    #[larder::cached(cache = *CACHE, receiver = "key")]
    fn rename(&mut self, invoice: u64) -> String {
        format!("{}: rename {invoice}", self.tenant)
    }

    #[larder::cached(cache = *CACHE, receiver = "key")]
    async fn shared(self: Arc<Self>, invoice: u64) -> String {
        format!("{}: shared {invoice}", self.tenant)
    }

    #[larder::cached(cache = self.cache, receiver = "skip")]
    async fn tax_rate(&self, country: u64) -> String {
        format!("rate {country}")
    }
}

fn tenants() -> (TenantInvoices, TenantInvoices) {
    let cache = Arc::new(Cache::in_memory());
    let tenant = |name: &str| TenantInvoices {
        tenant: name.into(),
        cache: Arc::clone(&cache),
    };
    (tenant("acme"), tenant("globex"))
}

#[tokio::test]
async fn two_receivers_do_not_share_entries() {
    let (acme, globex) = tenants();
    assert_eq!(acme.invoice_total(7).await, "acme: invoice 7");
    assert_eq!(globex.invoice_total(7).await, "globex: invoice 7");
    assert_eq!(acme.invoice_total(7).await, "acme: invoice 7");
    assert_ne!(
        acme.invoice_total_key(7).unwrap(),
        globex.invoice_total_key(7).unwrap()
    );
    assert!(acme.invoice_total_invalidate(7).await.unwrap());
    assert_eq!(
        globex.invoice_total_peek(7).await.unwrap().as_deref(),
        Some("globex: invoice 7")
    );
}

#[tokio::test]
async fn every_receiver_form_is_keyed() {
    let (mut acme, mut globex) = tenants();
    assert_eq!(acme.invoice_title(7).await, "acme: title 7");
    assert_eq!(globex.invoice_title(7).await, "globex: title 7");
    let key = acme.invoice_title_key(7).unwrap();
    assert!(
        key.starts_with("cached_keys.TenantInvoices.invoice_title:invoice:") && key.ends_with(":7"),
        "{key}"
    );
    assert_eq!(acme.rename(7), "acme: rename 7");
    assert_eq!(globex.rename(7), "globex: rename 7");
    let (acme, globex) = (Arc::new(acme), Arc::new(globex));
    assert_eq!(Arc::clone(&acme).shared(7).await, "acme: shared 7");
    assert_eq!(Arc::clone(&globex).shared(7).await, "globex: shared 7");
}

#[tokio::test]
async fn a_skipped_receiver_shares_entries_as_it_says() {
    let (acme, globex) = tenants();
    assert_eq!(acme.tax_rate(49).await, "rate 49");
    assert_eq!(
        globex.tax_rate_peek(49).await.unwrap().as_deref(),
        Some("rate 49")
    );
    assert_digest_key(
        &TenantInvoices::tax_rate_key(49).unwrap(),
        "cached_keys.TenantInvoices.tax_rate",
    );
}
