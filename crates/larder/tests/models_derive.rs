//! `#[derive(CachedModel)]` against both stores: the derived impl of the
//! Django original's `Product` keeps its keys, its exclusions and its
//! related category, and a change of the stored fields is a change of
//! schema. The hand-written models of `common/models.rs` are the baseline.

mod common;

use std::time::Duration;

use common::models::*;
use common::{Fixture, on_both_stores};
use larder::CachedModel;
use larder::model::{Dependency, model_key};
use larder::{Codec, Compression};

on_both_stores!(
    a_derived_model_round_trips_under_the_django_key,
    excluded_fields_never_reach_the_store,
    a_related_models_excluded_fields_stay_out_too,
    invalidating_a_category_misses_the_derived_products_that_embed_it,
    optional_and_listed_related_models_are_dependencies,
    adding_a_field_changes_the_schema,
);

/// The Django original's `Product`, derived: the fields and options of
/// the hand-written `common::models::Product`.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "product", related(category), exclude(internal_notes))]
struct DerivedProduct {
    id: u64,
    name: String,
    price_cents: u64,
    category: Category,
    internal_notes: String,
}

fn derived(product: Product) -> DerivedProduct {
    DerivedProduct {
        id: product.id,
        name: product.name,
        price_cents: product.price_cents,
        category: product.category,
        internal_notes: product.internal_notes,
    }
}

/// A derived related model with a field of its own never cached.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "supplier", exclude(contract))]
struct Supplier {
    id: u64,
    name: String,
    contract: String,
}

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "crate", related(supplier))]
struct Crate {
    id: u64,
    supplier: Supplier,
}

/// Related models in an `Option` and a `Vec`.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "listing", related(main_category, extra_categories))]
struct Listing {
    id: u64,
    main_category: Option<Category>,
    extra_categories: Vec<Category>,
}

/// Two builds of one model: the second adds a field.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "gadget")]
struct GadgetBefore {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "gadget")]
struct GadgetAfter {
    id: u64,
    name: String,
    colour: String,
}

#[test]
fn every_option_reaches_model_options() {
    #[derive(CachedModel)]
    #[larder(
        prefix = "product",
        timeout = 3600,
        version = "2.0",
        related(category),
        exclude(internal_notes),
        enabled = false,
        critical
    )]
    #[allow(dead_code)] // only the options are looked at
    struct Everything {
        id: u64,
        category: Category,
        internal_notes: String,
    }
    let options = Everything::OPTIONS;
    assert_eq!(options.prefix, "product");
    assert_eq!(options.timeout, Duration::from_secs(3600));
    assert_eq!(options.version, "2.0");
    assert!(!options.enabled);
    assert!(options.critical);
    assert_eq!(options.related, ["category"]);
    assert_ne!(options.schema, 0);
    // The defaults are `ModelOptions::new`'s.
    let options = GadgetBefore::OPTIONS;
    assert_eq!(options.timeout, Duration::from_secs(86_400));
    assert_eq!(options.version, "");
    assert!(options.enabled && !options.critical);
    assert!(options.related.is_empty());
}

#[test]
fn the_schema_follows_the_stored_fields_only() {
    // Same stored fields as the hand impl's, and excluded fields do not
    // count: `DerivedProduct` without `internal_notes` has its schema.
    #[derive(CachedModel)]
    #[larder(prefix = "product", related(category))]
    #[allow(dead_code)]
    struct WithoutNotes {
        id: u64,
        name: String,
        price_cents: u64,
        category: Category,
    }
    assert_eq!(WithoutNotes::OPTIONS.schema, DerivedProduct::OPTIONS.schema);
    assert_ne!(GadgetBefore::OPTIONS.schema, GadgetAfter::OPTIONS.schema);
    assert_ne!(
        GadgetBefore::OPTIONS.fingerprint(),
        GadgetAfter::OPTIONS.fingerprint()
    );
}

async fn a_derived_model_round_trips_under_the_django_key(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.prefix("shop").version("7")).await;
    assert_eq!(
        cache.get_cached_model::<DerivedProduct>(1).await.unwrap(),
        None
    );
    cache.cache_model(&derived(product(1, 3))).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<DerivedProduct>(1).await.unwrap(),
        Some(derived(cached(1, 3)))
    );
    assert_eq!(model_key::<DerivedProduct>(&1).unwrap(), "product:1");
    assert!(raw_bytes(&cache, "product:1").await.is_some());
    if let Some(server) = fixture.server() {
        let mut conn = common::raw(server).await;
        assert!(common::exists(&mut conn, "shop:7:product:1").await);
    }
    // The hand impl writes schema 0, the derive its fingerprint: moving
    // from one to the other is one miss per entry, never a misread.
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert!(raw_bytes(&cache, "product:1").await.is_some());
}

async fn excluded_fields_never_reach_the_store(fixture: Fixture) {
    let cache = fixture
        .cache_with(|b| b.codec(Codec::Json).compression(Compression::None))
        .await;
    cache.cache_model(&derived(product(1, 3))).await.unwrap();
    let bytes = raw_bytes(&cache, "product:1").await.unwrap();
    assert!(
        !bytes.windows(NOTES.len()).any(|w| w == NOTES.as_bytes()),
        "the excluded field reached the store"
    );
    let stored: serde_json::Value = serde_json::from_slice(payload(&bytes)).unwrap();
    let mut fields: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["category", "id", "name", "price_cents"]);
    assert_eq!(stored["category"]["name"], "Category 3");
    let back = cache
        .get_cached_model::<DerivedProduct>(1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.internal_notes, String::default());
    assert_eq!(back, derived(cached(1, 3)));
}

async fn a_related_models_excluded_fields_stay_out_too(fixture: Fixture) {
    let cache = fixture
        .cache_with(|b| b.codec(Codec::Json).compression(Compression::None))
        .await;
    let acme = Supplier {
        id: 9,
        name: "Acme".into(),
        contract: NOTES.into(),
    };
    let crate_ = Crate {
        id: 1,
        supplier: acme.clone(),
    };
    cache.cache_model(&crate_).await.unwrap();
    let bytes = raw_bytes(&cache, "crate:1").await.unwrap();
    assert!(
        !bytes.windows(NOTES.len()).any(|w| w == NOTES.as_bytes()),
        "the related model's excluded field reached the store"
    );
    let stored: serde_json::Value = serde_json::from_slice(payload(&bytes)).unwrap();
    assert_eq!(
        stored["supplier"],
        serde_json::json!({"id": 9, "name": "Acme"})
    );
    let back = cache.get_cached_model::<Crate>(1).await.unwrap().unwrap();
    assert_eq!(
        back.supplier,
        Supplier {
            contract: String::new(),
            ..acme.clone()
        }
    );
    assert_eq!(crate_.dependencies(), [Dependency::new("supplier", 9)]);
    cache.invalidate_model_cache(&acme).await.unwrap();
    assert_eq!(cache.get_cached_model::<Crate>(1).await.unwrap(), None);
}

async fn invalidating_a_category_misses_the_derived_products_that_embed_it(fixture: Fixture) {
    let cache = fixture.cache().await;
    assert_eq!(
        derived(product(1, 3)).dependencies(),
        [Dependency::new("category", 3)]
    );
    cache.cache_model(&category(3)).await.unwrap();
    cache.cache_model(&derived(product(1, 3))).await.unwrap();
    cache.cache_model(&derived(product(2, 4))).await.unwrap();

    assert!(cache.invalidate_model_cache(&category(3)).await.unwrap());
    assert_eq!(
        cache.get_cached_model::<DerivedProduct>(1).await.unwrap(),
        None
    );
    assert!(raw_bytes(&cache, "product:1").await.is_none());
    assert_eq!(
        cache.get_cached_model::<DerivedProduct>(2).await.unwrap(),
        Some(derived(cached(2, 4)))
    );
    // By id, without an entry of its own.
    cache
        .invalidate_model_cache_id::<Category>(4)
        .await
        .unwrap();
    assert_eq!(
        cache.get_cached_model::<DerivedProduct>(2).await.unwrap(),
        None
    );
}

async fn optional_and_listed_related_models_are_dependencies(fixture: Fixture) {
    let cache = fixture.cache().await;
    let listings = [
        Listing {
            id: 1,
            main_category: Some(category(3)),
            extra_categories: vec![],
        },
        Listing {
            id: 2,
            main_category: None,
            extra_categories: vec![category(4), category(5)],
        },
        Listing {
            id: 3,
            main_category: None,
            extra_categories: vec![],
        },
    ];
    assert_eq!(Listing::OPTIONS.related, ["category", "category"]);
    assert_eq!(
        listings[1].dependencies(),
        [
            Dependency::new("category", 4),
            Dependency::new("category", 5)
        ]
    );
    assert!(listings[2].dependencies().is_empty());
    for listing in &listings {
        cache.cache_model(listing).await.unwrap();
    }
    let all = || cache.get_cached_models::<Listing>(&[1, 2, 3]);
    assert_eq!(all().await.unwrap(), listings.clone().map(Some));
    cache
        .invalidate_model_cache_id::<Category>(5)
        .await
        .unwrap();
    assert_eq!(
        all().await.unwrap(),
        [Some(listings[0].clone()), None, Some(listings[2].clone())]
    );
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    assert_eq!(
        all().await.unwrap(),
        [None, None, Some(listings[2].clone())]
    );
}

async fn adding_a_field_changes_the_schema(fixture: Fixture) {
    let cache = fixture.cache().await;
    let before = GadgetBefore {
        id: 1,
        name: "kettle".into(),
    };
    let after = GadgetAfter {
        id: 2,
        name: "toaster".into(),
        colour: "red".into(),
    };
    cache.cache_model(&before).await.unwrap();
    cache.cache_model(&after).await.unwrap();
    // Each build misses the other's entry, and leaves it in place.
    assert_eq!(
        cache.get_cached_model::<GadgetAfter>(1).await.unwrap(),
        None
    );
    assert_eq!(
        cache.get_cached_model::<GadgetBefore>(2).await.unwrap(),
        None
    );
    assert!(raw_bytes(&cache, "gadget:1").await.is_some());
    assert!(raw_bytes(&cache, "gadget:2").await.is_some());
    assert_eq!(
        cache.get_cached_model::<GadgetBefore>(1).await.unwrap(),
        Some(before)
    );
    assert_eq!(
        cache.get_cached_model::<GadgetAfter>(2).await.unwrap(),
        Some(after)
    );
}
