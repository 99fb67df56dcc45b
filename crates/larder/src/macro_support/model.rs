//! What `#[derive(CachedModel)]` generates calls to: the fields named in
//! `related(..)`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{CachedModel, Dependency};

/// A field named in `related(..)`: a cached model, or an `Option` or `Vec`
/// of one. Its [`Model`](Self::Model)'s prefix goes into
/// `ModelOptions::related`, each instance it holds becomes a
/// [`Dependency`], and it is stored as its model stores itself (the
/// model's excluded fields stay out of the embedding entry too).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a related field: it is not a cached model",
    label = "named in `related(..)`, so this type must implement `CachedModel`",
    note = "a related field holds a cached model `M` (a type with `#[derive(larder::CachedModel)]` or an impl of `larder::model::CachedModel`), an `Option<M>` or a `Vec<M>`; take the field out of `related(..)` if its data does not come from another model"
)]
pub trait RelatedField: Sized {
    /// The related model.
    type Model: CachedModel;

    /// What is stored for the field, borrowed.
    type Stored<'a>: Serialize
    where
        Self: 'a;

    /// What is read back for the field.
    type Loaded: DeserializeOwned;

    /// The stored view of the field.
    fn stored(&self) -> Self::Stored<'_>;

    /// The field rebuilt from what was stored.
    fn from_loaded(loaded: Self::Loaded) -> Self;

    /// Appends a dependency on each related instance the field holds.
    fn push_dependencies(&self, dependencies: &mut Vec<Dependency>);
}

impl<M: CachedModel> RelatedField for M {
    type Model = M;
    type Stored<'a>
        = M::Stored<'a>
    where
        M: 'a;
    type Loaded = M::Loaded;

    fn stored(&self) -> Self::Stored<'_> {
        CachedModel::stored(self)
    }

    fn from_loaded(loaded: M::Loaded) -> Self {
        <M as CachedModel>::from_loaded(loaded)
    }

    fn push_dependencies(&self, dependencies: &mut Vec<Dependency>) {
        dependencies.push(Dependency::on::<M>(&self.id()));
    }
}

impl<M: CachedModel> RelatedField for Option<M> {
    type Model = M;
    type Stored<'a>
        = Option<M::Stored<'a>>
    where
        M: 'a;
    type Loaded = Option<M::Loaded>;

    fn stored(&self) -> Self::Stored<'_> {
        self.as_ref().map(CachedModel::stored)
    }

    fn from_loaded(loaded: Self::Loaded) -> Self {
        loaded.map(<M as CachedModel>::from_loaded)
    }

    fn push_dependencies(&self, dependencies: &mut Vec<Dependency>) {
        if let Some(model) = self {
            RelatedField::push_dependencies(model, dependencies);
        }
    }
}

impl<M: CachedModel> RelatedField for Vec<M> {
    type Model = M;
    type Stored<'a>
        = Vec<M::Stored<'a>>
    where
        M: 'a;
    type Loaded = Vec<M::Loaded>;

    fn stored(&self) -> Self::Stored<'_> {
        self.iter().map(CachedModel::stored).collect()
    }

    fn from_loaded(loaded: Self::Loaded) -> Self {
        loaded
            .into_iter()
            .map(<M as CachedModel>::from_loaded)
            .collect()
    }

    fn push_dependencies(&self, dependencies: &mut Vec<Dependency>) {
        dependencies.extend(self.iter().map(|model| Dependency::on::<M>(&model.id())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelOptions;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Tag {
        id: u32,
    }

    impl CachedModel for Tag {
        type Id = u32;
        type Stored<'a> = &'a Self;
        type Loaded = Self;
        const OPTIONS: ModelOptions = ModelOptions::new("tag");
        fn id(&self) -> u32 {
            self.id
        }
        fn stored(&self) -> &Self {
            self
        }
        fn from_loaded(loaded: Self) -> Self {
            loaded
        }
    }

    fn dependencies(field: &impl RelatedField) -> Vec<Dependency> {
        let mut dependencies = Vec::new();
        RelatedField::push_dependencies(field, &mut dependencies);
        dependencies
    }

    #[test]
    fn a_model_an_option_and_a_vec_of_one_are_related_fields() {
        assert_eq!(dependencies(&Tag { id: 1 }), [Dependency::new("tag", 1)]);
        assert_eq!(dependencies(&None::<Tag>), []);
        assert_eq!(
            dependencies(&Some(Tag { id: 2 })),
            [Dependency::new("tag", 2)]
        );
        assert_eq!(
            dependencies(&vec![Tag { id: 3 }, Tag { id: 4 }]),
            [Dependency::new("tag", 3), Dependency::new("tag", 4)]
        );
    }
}
