//! Related fields holding an `Option` and a `Vec` of a model.

use larder::CachedModel;
use larder::model::Dependency;

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "category")]
struct Category {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "listing", related(main_category, extra_categories))]
struct Listing {
    id: u64,
    main_category: Option<Category>,
    extra_categories: Vec<Category>,
}

fn main() {
    let category = |id| Category { id, name: String::new() };
    let listing = Listing {
        id: 1,
        main_category: Some(category(3)),
        extra_categories: vec![category(4)],
    };
    assert_eq!(
        listing.dependencies(),
        [Dependency::new("category", 3), Dependency::new("category", 4)]
    );
    assert_eq!(Listing::OPTIONS.related, ["category", "category"]);
}
