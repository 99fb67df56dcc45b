//! [`CachedModel`]: what a type tells Larder to be cached as a model, and
//! [`Dependency`]: a related model whose change makes an entry stale.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ModelOptions;

/// A type cached as a model: one entry per instance under `{prefix}:{id}`
/// (`product:1`), the Django original's `RedisCachedModel`.
///
/// Derive it: `#[derive(larder::CachedModel)]` with `#[larder(prefix =
/// "product", exclude(..), related(..), …)]` writes this impl from the
/// struct's fields (see [the derive](macro@crate::model::CachedModel)).
///
/// # Without the derive
///
/// Enums, generic types, or a stored form of your own choosing take an
/// impl by hand. A model without excluded fields stores itself
/// (`type Stored<'a> = &'a Self`, `type Loaded = Self`); one with excluded
/// fields stores a borrowed view without them and is rebuilt from what was
/// stored, the excluded fields set to their `Default`. This impl is the
/// Django original's `Product`, with `redis_cache_exclude =
/// ["internal_notes"]` and `redis_cache_related = ["category"]`:
///
/// ```
/// use std::time::Duration;
/// use larder::model::{CachedModel, Dependency, ModelOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Category { id: u64, name: String }
///
/// impl CachedModel for Category {
///     type Id = u64;
///     type Stored<'a> = &'a Self;
///     type Loaded = Self;
///     const OPTIONS: ModelOptions = ModelOptions::new("category");
///     fn id(&self) -> u64 { self.id }
///     fn stored(&self) -> &Self { self }
///     fn from_loaded(loaded: Self) -> Self { loaded }
/// }
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct Product {
///     id: u64,
///     name: String,
///     price_cents: u64,
///     category: Category,
///     internal_notes: String, // never cached
/// }
///
/// /// What is written: everything but `internal_notes`, borrowed.
/// #[derive(Serialize)]
/// struct StoredProduct<'a> { id: u64, name: &'a str, price_cents: u64, category: &'a Category }
///
/// /// What is read back.
/// #[derive(Deserialize)]
/// struct LoadedProduct { id: u64, name: String, price_cents: u64, category: Category }
///
/// impl CachedModel for Product {
///     type Id = u64;
///     type Stored<'a> = StoredProduct<'a>;
///     type Loaded = LoadedProduct;
///     const OPTIONS: ModelOptions = ModelOptions::new("product")
///         .timeout(Duration::from_secs(86_400))
///         .related(&["category"]);
///
///     fn id(&self) -> u64 { self.id }
///
///     fn stored(&self) -> StoredProduct<'_> {
///         StoredProduct {
///             id: self.id,
///             name: &self.name,
///             price_cents: self.price_cents,
///             category: &self.category,
///         }
///     }
///
///     fn from_loaded(p: LoadedProduct) -> Self {
///         Product {
///             id: p.id,
///             name: p.name,
///             price_cents: p.price_cents,
///             category: p.category,
///             internal_notes: String::default(),
///         }
///     }
///
///     /// The embedded category: invalidating it makes this entry a miss.
///     fn dependencies(&self) -> Vec<Dependency> {
///         vec![Dependency::on::<Category>(&self.category.id)]
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
/// let cache = larder::Cache::in_memory();
/// let teapots = Category { id: 3, name: "Teapots".into() };
/// let product = Product {
///     id: 1,
///     name: "Teapot".into(),
///     price_cents: 1999,
///     category: teapots.clone(),
///     internal_notes: "supplier owes us".into(),
/// };
/// cache.cache_model(&product).await?;
/// let cached = cache.get_cached_model::<Product>(1).await?.expect("a hit");
/// assert_eq!(cached.internal_notes, ""); // excluded: never stored
///
/// cache.invalidate_model_cache(&teapots).await?; // the category changed
/// assert!(cache.get_cached_model::<Product>(1).await?.is_none());
/// # Ok(()) }
/// ```
///
/// This is what `#[derive(CachedModel)]` writes for the same `Product`,
/// except that the derive also sets [`ModelOptions::schema`] from the
/// stored fields.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cached model",
    label = "`{Self}` does not implement `CachedModel`",
    note = "derive it with `#[derive(larder::CachedModel)]` and `#[larder(prefix = \"…\")]`, or implement `larder::model::CachedModel` by hand"
)]
pub trait CachedModel: Sized {
    /// The model's id: written with its `Display` form as the key's second
    /// segment (`1` in `product:1`), escaped as a `#[cached]` key template
    /// escapes values, so numbers and plain words stay as they are.
    type Id: fmt::Display;

    /// What is written to the cache: the model without its excluded fields,
    /// borrowed from it (no clone).
    type Stored<'a>: Serialize
    where
        Self: 'a;

    /// What is read back: the stored fields, owned.
    type Loaded: DeserializeOwned;

    /// How the model is cached.
    const OPTIONS: ModelOptions;

    /// This instance's id.
    fn id(&self) -> Self::Id;

    /// The view of `self` that is stored.
    fn stored(&self) -> Self::Stored<'_>;

    /// The model rebuilt from what was stored; excluded fields get their
    /// `Default`.
    fn from_loaded(loaded: Self::Loaded) -> Self;

    /// The related model instances whose data this instance embeds: when
    /// one of them is invalidated
    /// ([`Cache::invalidate_model_cache`](crate::Cache::invalidate_model_cache)),
    /// this instance's entry becomes a miss. Each must name a model listed
    /// in [`ModelOptions::related`]. Default: none.
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }

    /// A copy of `self` for the local tier; `None` (the default) keeps the
    /// model out of it. `#[larder(local = …)]` implements this and
    /// [`from_local`](Self::from_local) for a `Clone` model.
    #[doc(hidden)]
    fn to_local(&self) -> Option<crate::__private::LocalValue> {
        None
    }

    /// The model back from the local tier's copy.
    #[doc(hidden)]
    fn from_local(held: &crate::__private::LocalValue) -> Option<Self> {
        let _ = held;
        None
    }
}

/// A related model instance an entry embeds: the related model's prefix
/// and the `Display` form of its id — a Product embedding its Category 3
/// depends on `("category", "3")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The related model's [`ModelOptions::prefix`].
    pub model: &'static str,
    /// The related instance's id, as its `Display` writes it.
    pub id: String,
}

impl Dependency {
    /// A dependency on the instance `id` of the model with prefix `model`.
    pub fn new(model: &'static str, id: impl fmt::Display) -> Self {
        Self {
            model,
            id: id.to_string(),
        }
    }

    /// A dependency on the instance `id` of the model `M`.
    pub fn on<M: CachedModel>(id: &M::Id) -> Self {
        Self::new(M::OPTIONS.prefix, id)
    }
}
