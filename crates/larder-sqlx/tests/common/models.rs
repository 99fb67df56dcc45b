//! The Django original's `Product` (an excluded field, a related
//! `Category`) and a `ProductV2` of another model version.

use larder::CachedModel;

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "category")]
pub struct Category {
    pub id: i64,
    pub name: String,
}

/// `redis_cache_related = ["category"]`, `redis_cache_exclude = ["internal_notes"]`.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(
    prefix = "product",
    timeout = 86400,
    related(category),
    exclude(internal_notes)
)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub category: Category,
    pub internal_notes: String,
}

/// The same rows, cached under `redis_cache_version = "2.0"`.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(
    prefix = "product",
    version = "2.0",
    related(category),
    exclude(internal_notes)
)]
pub struct ProductV2 {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub category: Category,
    pub internal_notes: String,
}

impl From<Product> for ProductV2 {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            name: p.name,
            price_cents: p.price_cents,
            category: p.category,
            internal_notes: p.internal_notes,
        }
    }
}

impl From<&ProductV2> for Product {
    fn from(p: &ProductV2) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            price_cents: p.price_cents,
            category: p.category.clone(),
            internal_notes: p.internal_notes.clone(),
        }
    }
}

/// A model keyed by a string the application does not control.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "note")]
pub struct Note {
    #[larder(id)]
    pub slug: String,
    pub body: String,
}

pub const NOTES: &str = "ZQX-supplier-owes-us-4471";

pub fn category(id: i64) -> Category {
    Category {
        id,
        name: format!("Category {id}"),
    }
}

/// Product `id` in category `category_id`, as the database holds it.
pub fn product(id: i64, category_id: i64) -> Product {
    Product {
        id,
        name: format!("Product {id}"),
        price_cents: 1000 + id,
        category: category(category_id),
        internal_notes: NOTES.into(),
    }
}

/// What the cache gives back for `p`: everything but the excluded field.
pub fn cached(p: &Product) -> Product {
    Product {
        internal_notes: String::new(),
        ..p.clone()
    }
}

impl Product {
    /// This product at another price.
    pub fn with_price(self, price_cents: i64) -> Self {
        Self {
            price_cents,
            ..self
        }
    }
}
