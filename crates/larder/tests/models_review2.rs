//! A second hostile review of model caching (issue 11): `get_or_load_model`
//! and the invalidations that race it. Every test named for a behaviour
//! that should hold and marked `R<n>` FAILS on the reviewed commit (a
//! confirmed defect), and passes since its fix (R2 became a compile-time
//! refusal, `tests/ui/fail/model_related_nested.rs`); the ones marked
//! "holds" are regression tests. Private redis-servers (never the one on 6379) and the in-process
//! store.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::models::{Category, Product, category, product};
use common::{Fixture, on_both_stores};
use larder::model::{CachedModel, Dependency, ModelOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// A page keyed by its slug, looked up case-insensitively, as a `citext`
/// column, `WHERE lower(slug) = lower($1)`, or a URL router normalising
/// `/Teapots` to the canonical `teapots` would.
#[derive(Debug, Clone, PartialEq, larder::CachedModel)]
#[larder(prefix = "review2-page")]
struct Page {
    #[larder(id)]
    slug: String,
    title: String,
}

fn page(title: &str) -> Page {
    Page {
        slug: "teapots".into(),
        title: title.into(),
    }
}

on_both_stores!(
    a_loaded_model_is_only_stored_under_its_own_id,
    a_read_after_a_related_invalidation_never_joins_an_older_load,
    a_read_after_a_related_generation_bump_never_joins_an_older_load,
    a_read_after_its_own_invalidation_never_joins_an_older_load,
    a_read_after_its_own_generation_bump_never_joins_an_older_load,
    an_older_load_never_fills_after_its_own_generation_bump,
    an_older_load_never_fills_after_a_related_invalidation,
    a_change_to_a_model_embedded_two_levels_deep_invalidates,
    a_row_with_more_related_rows_than_an_entry_records_is_still_read,
    writes_to_unrelated_categories_do_not_starve_product_fills,
    concurrent_reads_of_a_missing_row_share_one_load,
    a_failed_early_refresh_still_serves_the_fresh_model,
);

// R1. `get_or_load_model(id, load)` stores whatever `load` returns under
// `id`'s key without checking that the loaded model's `id()` is `id`. A
// lookup that is not exact (a case-insensitive slug or `citext` column, a
// trimmed or normalised id, a merged/redirected row) caches the row under
// an alias key that no invalidation of the row ever names: saving the row
// (`CachedRepository::save`, the change feed, `invalidate_model_cache_id`)
// invalidates `teapots`, never `Teapots`, which serves the old row until
// its timeout (a day by default). Fail closed: a loaded model whose id's
// key differs from the requested key should be returned but not stored
// (or stored under its own key only). Found by reading `model_load.rs`:
// `key` is computed from the argument, `found.id()` is never looked at.
async fn a_loaded_model_is_only_stored_under_its_own_id(fixture: Fixture) {
    let cache = fixture.cache().await;
    let first = cache
        .get_or_load_model::<Page, larder::Error, _, _>("Teapots".into(), || async {
            Ok(Some(page("Teapots, old")))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.title, "Teapots, old");
    // The row is saved: its id is `teapots`, and that is what is invalidated.
    cache
        .invalidate_model_cache_id::<Page>("teapots".into())
        .await
        .unwrap();
    let again = cache
        .get_or_load_model::<Page, larder::Error, _, _>("Teapots".into(), || async {
            Ok(Some(page("Teapots, new")))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.title, "Teapots, new",
        "the old row was cached under an alias of its id and survived its invalidation"
    );
}

/// Starts `get_or_load_model::<Product>(1)` whose load returns Product 1 in
/// Category 5 *as it was* (named `Category 5`) once released, and waits
/// until the load has begun.
async fn a_slow_old_load(
    cache: &larder::Cache,
) -> (
    tokio::task::JoinHandle<larder::Result<Option<Product>>>,
    oneshot::Sender<()>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let cache = cache.clone();
    let leader = tokio::spawn(async move {
        cache
            .get_or_load_model::<Product, larder::Error, _, _>(1, || async move {
                let _ = started_tx.send(());
                let _ = release_rx.await;
                Ok(Some(product(1, 5)))
            })
            .await
    });
    started_rx.await.unwrap();
    (leader, release_tx)
}

/// A read of Product 1 that begins now; its own load would find Category 5
/// renamed. Returns what it got and how many times its load ran.
async fn a_later_read(
    cache: &larder::Cache,
    leader: tokio::task::JoinHandle<larder::Result<Option<Product>>>,
    release: oneshot::Sender<()>,
) -> (Product, usize) {
    let loads = Arc::new(AtomicUsize::new(0));
    let follower = {
        let cache = cache.clone();
        let loads = Arc::clone(&loads);
        tokio::spawn(async move {
            cache
                .get_or_load_model::<Product, larder::Error, _, _>(1, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    let mut renamed = product(1, 5);
                    renamed.category = Category {
                        id: 5,
                        name: "Category 5, renamed".into(),
                    };
                    Ok(Some(renamed))
                })
                .await
        })
    };
    // Let the later read reach the flight (or the lease) of the older load.
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();
    leader.await.unwrap().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("the later read finishes")
        .unwrap()
        .unwrap()
        .unwrap();
    (got, loads.load(Ordering::SeqCst))
}

// Holds (regression test). Suspected: a read that BEGINS after a related
// instance's invalidation has completed would join this process's
// in-flight load of the Product that began before the save (model flights
// are joined with no tags, and invalidations detach flights only by key
// and tag) and be handed the old Category. It is not: the later read gets
// the renamed category.
async fn a_read_after_a_related_invalidation_never_joins_an_older_load(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    // Category 5 is renamed and committed; its invalidation completes.
    cache
        .invalidate_model_cache_id::<Category>(5)
        .await
        .unwrap();
    let (got, loads) = a_later_read(&cache, leader, release).await;
    assert_eq!(
        got.category.name, "Category 5, renamed",
        "a read that began after the category's invalidation was served the load that \
         began before it (its own load ran {loads} times)"
    );
}

// Holds (regression test). As above, with the related model's generation bumped
// (`bump_model_generation::<Category>()`: a bulk UPDATE of categories, the
// change feed's reconnect): the later read is still handed the older load.
async fn a_read_after_a_related_generation_bump_never_joins_an_older_load(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    cache.bump_model_generation::<Category>().await.unwrap();
    let (got, loads) = a_later_read(&cache, leader, release).await;
    assert_eq!(
        got.category.name, "Category 5, renamed",
        "a read that began after the categories' generation bump was served the load that \
         began before it (its own load ran {loads} times)"
    );
}

// Holds (regression test): the same race on the Product's own key is
// handled — `invalidate_model_cache_id::<Product>(1)` detaches the flight.
async fn a_read_after_its_own_invalidation_never_joins_an_older_load(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    cache.invalidate_model_cache_id::<Product>(1).await.unwrap();
    let (got, _) = a_later_read(&cache, leader, release).await;
    assert_eq!(got.category.name, "Category 5, renamed");
}

// Holds: the same with the model's own generation bumped.
async fn a_read_after_its_own_generation_bump_never_joins_an_older_load(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    cache.bump_model_generation::<Product>().await.unwrap();
    let (got, _) = a_later_read(&cache, leader, release).await;
    assert_eq!(got.category.name, "Category 5, renamed");
}

// Holds: a load that began before the model's generation bump does not
// store its (older) row afterwards.
async fn an_older_load_never_fills_after_its_own_generation_bump(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    cache.bump_model_generation::<Product>().await.unwrap();
    release.send(()).unwrap();
    leader.await.unwrap().unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}

// Holds: nor after a related instance's invalidation.
async fn an_older_load_never_fills_after_a_related_invalidation(fixture: Fixture) {
    let cache = fixture.cache().await;
    let (leader, release) = a_slow_old_load(&cache).await;
    cache
        .invalidate_model_cache_ids::<Category>(&[4, 5, 6])
        .await
        .unwrap();
    release.send(()).unwrap();
    leader.await.unwrap().unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    let _ = category(0);
}

/// A department, embedded in the shelves that hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, larder::CachedModel)]
#[larder(prefix = "review2-dept")]
struct Dept {
    id: u64,
    name: String,
}

/// A shelf embeds its department (a related field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, larder::CachedModel)]
#[larder(prefix = "review2-shelf", related(dept))]
struct Shelf {
    id: u64,
    dept: Dept,
}

/// An item embeds its shelf and, with it, the shelf's department. The
/// derive refuses that nesting; by hand, every nested model is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u64,
    name: String,
    shelf: Shelf,
}

impl CachedModel for Item {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions =
        ModelOptions::new("review2-item").related(&["review2-shelf", "review2-dept"]);
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![
            Dependency::on::<Shelf>(&self.shelf.id),
            Dependency::on::<Dept>(&self.shelf.dept.id),
        ]
    }
}

// R2 (fixed). A related model with related models of its own was stored
// whole while only its own id was recorded: renaming the Shelf's Dept left
// every Item embedding the Shelf stale. The derive now refuses such a field
// at compile time (`tests/ui/fail/model_related_nested.rs`); a hand-written
// impl lists every nested model in `related` and `dependencies()`, as
// `Item` does here.
async fn a_change_to_a_model_embedded_two_levels_deep_invalidates(fixture: Fixture) {
    let cache = fixture.cache().await;
    let dept = Dept {
        id: 3,
        name: "Kitchen".into(),
    };
    let shelf = Shelf {
        id: 2,
        dept: dept.clone(),
    };
    let item = Item {
        id: 1,
        name: "Teapot".into(),
        shelf: shelf.clone(),
    };
    cache.cache_model(&shelf).await.unwrap();
    cache.cache_model(&item).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Item>(1).await.unwrap().as_ref(),
        Some(&item)
    );
    cache.invalidate_model_cache(&dept).await.unwrap();
    assert_eq!(cache.get_cached_model::<Shelf>(2).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Item>(1).await.unwrap(), None);
}

/// An order embedding its lines (a related `Vec`).
#[derive(Debug, Clone, PartialEq, larder::CachedModel)]
#[larder(prefix = "review2-line")]
struct Line {
    id: u64,
    sku: String,
}

#[derive(Debug, Clone, PartialEq, larder::CachedModel)]
#[larder(prefix = "review2-order", related(lines))]
struct Order {
    id: u64,
    lines: Vec<Line>,
}

// R3. A row with more related instances than an entry records
// (`MAX_DEPENDENCIES` = 1,024: an order with 1,025 lines, a category page
// listing 1,025 products) cannot be READ through the cache at all:
// `get_or_load_model` maps the `TooLarge` of `model_dependencies` to a
// failed load (`Unloaded::Failed`), so the caller gets an error although
// the database answered — every time, for as long as the row has that
// many lines (`CachedRepository::get` of that id always fails; waiters
// get `ErrorKind::Origin`). An oversized or unencodable value on the same
// path is returned and simply not stored (`fill.rs`: `Filled::Unstored`),
// and the design's rule is that the cache never makes the origin's answer
// fail. Fix: return the loaded model without a fill (warn and count), as
// for an oversized value. Found by following `model_dependencies`' error
// in `model_load.rs`.
async fn a_row_with_more_related_rows_than_an_entry_records_is_still_read(fixture: Fixture) {
    let cache = fixture.cache().await;
    let order = Order {
        id: 1,
        lines: (0..=larder::model::MAX_DEPENDENCIES as u64)
            .map(|id| Line {
                id,
                sku: format!("sku-{id}"),
            })
            .collect(),
    };
    let loaded = {
        let order = order.clone();
        cache
            .get_or_load_model::<Order, larder::Error, _, _>(1, || async move { Ok(Some(order)) })
            .await
    };
    match loaded {
        Ok(found) => assert_eq!(found.as_ref(), Some(&order)),
        Err(error) => panic!("the database answered, the read failed: {error}"),
    }
    // Not cached, as it cannot be checked on read.
    assert_eq!(cache.get_cached_model::<Order>(1).await.unwrap(), None);
}

// R4. The fill guard is per related MODEL (`model-writes:category`), so a
// save of ANY category during a product's load refuses that product's fill
// (documented as "costs that fill, never a stale entry"). Under a steady
// trickle of category writes — a view counter, a `last_seen` column, a
// bulk job, the change feed relaying another service's updates; here one
// write every 5 ms to categories no product embeds — a product load of
// 20 ms never fills: the products' hit rate drops to zero and every read
// goes to the database, however few categories actually change. The
// issue's promise is that saving Category 5 invalidates *exactly* the
// Products embedding Category 5. Suggested fix: keep the coarse guard only
// as a fallback — record, per related instance, a short-lived "written
// since" marker (or a per-instance guard set by the invalidation before
// its stamp moves) and refuse a fill only when one of ITS dependencies'
// markers moved since the lease; or retry the load once when the guard
// moved. Found by asking what a busy service's write rate does to the
// guard.
async fn writes_to_unrelated_categories_do_not_starve_product_fills(fixture: Fixture) {
    let cache = fixture.cache().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let cache = cache.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                cache
                    .invalidate_model_cache_id::<Category>(1000 + n % 50)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for id in 1..=10u64 {
        cache
            .get_or_load_model::<Product, larder::Error, _, _>(id, || async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Some(product(id, 5)))
            })
            .await
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let mut cached = 0;
    for id in 1..=10u64 {
        if cache
            .get_cached_model::<Product>(id)
            .await
            .unwrap()
            .is_some()
        {
            cached += 1;
        }
    }
    assert!(
        cached >= 5,
        "only {cached} of 10 products were cached: writes to categories they do not embed \
         refused their fills"
    );
}

// R5. Cache penetration: `get_or_load_model` of an id with no row
// (`Ok(None)`) is neither cached nor shared — "callers that waited on it
// load their own" — so N concurrent requests for a missing id (a hostile
// client walking ids, a deleted product still linked from a popular page)
// cost N database queries, one after another behind the lease, where a
// present row costs one. Single-flight shares a found row with the callers
// that joined before the load began; an absent row found by that same load
// is exactly as current for them. Suggested fix: share `Absent` with the
// flight's waiters (and across processes, an empty marker under the lease
// or a short negative entry, invalidated like any other). Found by reading
// `Sharing::passes` in `model_load.rs`.
async fn concurrent_reads_of_a_missing_row_share_one_load(fixture: Fixture) {
    let cache = fixture.cache().await;
    let loads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tokio::spawn(async move {
                cache
                    .get_or_load_model::<Product, larder::Error, _, _>(404, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(None)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), None);
    }
    let loads = loads.load(Ordering::SeqCst);
    assert!(
        loads <= 2,
        "20 concurrent reads of a missing row ran {loads} database loads"
    );
}

/// A model cached for 3 s (a short `redis_cache_timeout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    id: u64,
    price: u64,
}

impl CachedModel for Quote {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions =
        ModelOptions::new("review2-quote").timeout(Duration::from_secs(3));
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
}

// R6. An XFetch early refresh that fails turns a FRESH hit into an error.
// On a hit, `read_through_served` may refresh early (probability rising as
// expiry nears, β × the measured load time); it takes the lease and calls
// `compute_and_fill(..).map_err(|err| failure(err, None))` — the entry it
// has just read, still fresh, is dropped, so a database error (a restart,
// a failover, a pool timeout) fails the caller, and `stale_if_error`
// cannot help (no stale value is passed). `get_or_load_model` (and so
// `CachedRepository::get`) returns the load's error while a fresh entry
// sits in the cache; with the default β = 1, every near-expiry hit on a
// hot key is a chance to fail. Fix: on an early refresh's failure, serve
// the entry that was read (it is fresh) and log/count the failure. Found
// by reading the early-refresh branch of `flow.rs`.
async fn a_failed_early_refresh_still_serves_the_fresh_model(fixture: Fixture) {
    let cache = fixture.cache_with(|config| config.xfetch_beta(50.0)).await;
    let quote = Quote { id: 1, price: 10 };
    // The first load takes 200 ms: XFetch's delta for this key.
    let first = {
        let quote = quote.clone();
        cache
            .get_or_load_model::<Quote, larder::Error, _, _>(1, || async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Some(quote))
            })
            .await
            .unwrap()
    };
    assert_eq!(first.as_ref(), Some(&quote));
    // Still fresh (3 s ± 10 %), but near enough its expiry for β = 50 ×
    // 200 ms to refresh early. The database is down meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(cache.get_cached_model::<Quote>(1).await.unwrap().is_some());
    for _ in 0..5 {
        let read = cache
            .get_or_load_model::<Quote, larder::Error, _, _>(1, || async {
                Err(larder::Error::new(
                    larder::ErrorKind::Origin,
                    "the database is restarting",
                ))
            })
            .await;
        match read {
            Ok(found) => assert_eq!(found.as_ref(), Some(&quote)),
            Err(error) => panic!("a fresh entry was cached, the read failed: {error}"),
        }
    }
}
