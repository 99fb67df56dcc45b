//! Models shared by the model tests: the Django original's `Product` (with
//! an excluded field and a related `Category`) and small `widget` models
//! with various options; helpers to look at what was stored.

use bytes::Bytes;
use larder::Cache;
use larder::model::{CachedModel, Dependency, ModelOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
}

impl CachedModel for Category {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions = ModelOptions::new("category");
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

/// The Django original's `Product`: `redis_cache_related = ["category"]`,
/// `redis_cache_exclude = ["internal_notes"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price_cents: u64,
    pub category: Category,
    pub internal_notes: String,
}

#[derive(Serialize)]
pub struct StoredProduct<'a> {
    pub id: u64,
    pub name: &'a str,
    pub price_cents: u64,
    pub category: &'a Category,
}

#[derive(Deserialize)]
pub struct LoadedProduct {
    pub id: u64,
    pub name: String,
    pub price_cents: u64,
    pub category: Category,
}

impl CachedModel for Product {
    type Id = u64;
    type Stored<'a> = StoredProduct<'a>;
    type Loaded = LoadedProduct;
    const OPTIONS: ModelOptions = ModelOptions::new("product").related(&["category"]);
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> StoredProduct<'_> {
        StoredProduct {
            id: self.id,
            name: &self.name,
            price_cents: self.price_cents,
            category: &self.category,
        }
    }
    fn from_loaded(p: LoadedProduct) -> Self {
        Product {
            id: p.id,
            name: p.name,
            price_cents: p.price_cents,
            category: p.category,
            internal_notes: String::default(),
        }
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::on::<Category>(&self.category.id)]
    }
}

pub const NOTES: &str = "supplier owes us 300";

pub fn category(id: u64) -> Category {
    Category {
        id,
        name: format!("Category {id}"),
    }
}

/// Product `id`, in category `category_id`, as the database holds it.
pub fn product(id: u64, category_id: u64) -> Product {
    Product {
        id,
        name: format!("Product {id}"),
        price_cents: 999 + id,
        category: category(category_id),
        internal_notes: NOTES.into(),
    }
}

/// What the cache gives back for `product(id, category_id)`.
pub fn cached(id: u64, category_id: u64) -> Product {
    Product {
        internal_notes: String::new(),
        ..product(id, category_id)
    }
}

/// A model storing itself, with `options`.
macro_rules! widget {
    ($name:ident, $options:expr) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            pub id: u64,
            pub name: String,
        }
        impl CachedModel for $name {
            type Id = u64;
            type Stored<'a> = &'a Self;
            type Loaded = Self;
            const OPTIONS: ModelOptions = $options;
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
        #[allow(dead_code)]
        impl $name {
            pub fn new(id: u64) -> Self {
                Self {
                    id,
                    name: format!("widget {id}"),
                }
            }
        }
    };
}

widget!(Widget, ModelOptions::new("widget"));
widget!(WidgetV1, ModelOptions::new("widget").version("1.0"));
widget!(WidgetV2, ModelOptions::new("widget").version("2.0"));
widget!(WidgetS1, ModelOptions::new("widget").schema(1));
widget!(WidgetS2, ModelOptions::new("widget").schema(2));
widget!(Disabled, ModelOptions::new("disabled").enabled(false));
widget!(BadPrefix, ModelOptions::new("bad:prefix"));
widget!(
    DisabledCategory,
    ModelOptions::new("category").enabled(false)
);

/// The raw bytes under the logical `key`, read from the store underneath.
pub async fn raw_bytes(cache: &Cache, key: &str) -> Option<Bytes> {
    cache.store().get(&cache.physical_key(key)).await.unwrap()
}

/// The payload of an uncompressed envelope (see `larder::envelope`'s
/// layout: a 32-byte head, the stamps, the payload length, the payload,
/// the checksum).
pub fn payload(envelope: &[u8]) -> &[u8] {
    let count = u16::from_le_bytes([envelope[32], envelope[33]]);
    let mut at = 34;
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes([envelope[at], envelope[at + 1]]));
        at += 2 + len + 8;
    }
    &envelope[at + 4..envelope.len() - 4]
}

/// The physical key of a tag's index, as the key scheme names it.
pub fn tag_index(cache: &Cache, tag: &str) -> String {
    let config = cache.config();
    format!("{}:{}~tag:{tag}", config.prefix(), config.version())
}
