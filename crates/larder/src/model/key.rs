//! A model's keys: `{prefix}:{id}` for an instance's entry (the Django
//! original's shape), `model:{prefix}:{id}` for the tag its dependents are
//! filled under, and `model:{prefix}` for the generation every dependent
//! of any instance records.

use std::fmt::Display;

use super::{CachedModel, Dependency, ModelOptions};
use crate::__private::TemplateArg;
use crate::config::is_key_segment;
use crate::{Error, Result};

/// The logical key of `M`'s instance `id`: `product:1` — what
/// [`Cache::delete_cached_data`](crate::Cache::delete_cached_data) and
/// [`Cache::invalidate_cache_pattern`](crate::Cache::invalidate_cache_pattern)
/// (`product:*`) take. The id is escaped as a `#[cached]` key template
/// escapes values (`:`, `%`, glob characters and control bytes as `%XX`),
/// so no id can pass for another's key or widen a pattern.
///
/// ```
/// use larder::model::{CachedModel, ModelOptions, model_key};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Product { id: u64 }
/// # impl CachedModel for Product {
/// #     type Id = u64; type Stored<'a> = &'a Self; type Loaded = Self;
/// #     const OPTIONS: ModelOptions = ModelOptions::new("product");
/// #     fn id(&self) -> u64 { self.id } fn stored(&self) -> &Self { self }
/// #     fn from_loaded(p: Self) -> Self { p }
/// # }
/// assert_eq!(model_key::<Product>(&1)?, "product:1");
/// # Ok::<(), larder::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) if the model's prefix is
/// not a valid key segment; [`ErrorKind::Encode`](crate::ErrorKind::Encode)
/// if the id's `Display` fails.
pub fn model_key<M: CachedModel>(id: &M::Id) -> Result<String> {
    instance_key(&M::OPTIONS, id)
}

/// [`model_key`] from the options.
pub(crate) fn instance_key(options: &ModelOptions, id: &dyn Display) -> Result<String> {
    check_prefix(options.prefix)?;
    joined("", options.prefix, id)
}

/// The tag the dependents of the instance `id` of the model `prefix` are
/// filled under: `model:category:3`.
pub(crate) fn instance_tag(prefix: &str, id: &dyn Display) -> Result<String> {
    joined("model:", prefix, id)
}

/// The tag of a dependency of a model with `options`, checked: the related
/// model must be listed in [`ModelOptions::related`].
pub(crate) fn dependency_tag(options: &ModelOptions, dependency: &Dependency) -> Result<String> {
    if !options.related.contains(&dependency.model) {
        return Err(Error::config(format!(
            "model `{}` reports a dependency on `{}:{}`, but `{}` is not in its related models \
             {:?}; add it to ModelOptions::related",
            options.prefix, dependency.model, dependency.id, dependency.model, options.related
        )));
    }
    check_prefix(dependency.model)?;
    instance_tag(dependency.model, &dependency.id)
}

/// The tag of the generation of the model `prefix`: recorded by every
/// entry that embeds one of its instances, so that
/// [`Cache::bump_model_generation`](crate::Cache::bump_model_generation)
/// turns them all into misses. A prefix has no `:`, so no instance tag
/// (`model:{prefix}:{id}`) can be one.
pub(crate) fn generation_tag(prefix: &str) -> String {
    format!("model:{prefix}")
}

/// The tags an entry with `dependencies` records, and the ones it joins
/// the indexes of: each dependency's instance tag (both), and the
/// generation tag of each related model it names (recorded only: an index
/// of every dependent of a model would grow without bound).
#[derive(Debug, Default)]
pub(crate) struct DependencyTags {
    pub(crate) recorded: Vec<String>,
    pub(crate) indexed: Vec<String>,
}

impl DependencyTags {
    /// The tags of `dependencies` of a model with `options`, checked (see
    /// [`dependency_tag`]), each once.
    pub(crate) fn of(options: &ModelOptions, dependencies: &[Dependency]) -> Result<Self> {
        let mut tags = Self::default();
        let mut models: Vec<&str> = Vec::new();
        for dependency in dependencies {
            let tag = dependency_tag(options, dependency)?;
            if !tags.indexed.contains(&tag) {
                tags.indexed.push(tag);
            }
            if !models.contains(&dependency.model) {
                models.push(dependency.model);
            }
        }
        tags.recorded = tags.indexed.clone();
        tags.recorded.extend(models.into_iter().map(generation_tag));
        Ok(tags)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }
}

fn joined(head: &str, prefix: &str, id: &dyn Display) -> Result<String> {
    let mut key = String::with_capacity(head.len() + prefix.len() + 8);
    key.push_str(head);
    key.push_str(prefix);
    key.push(':');
    id.write_into(&mut key)?;
    Ok(key)
}

/// A model prefix follows the rule of the cache's own prefix: anything
/// else could alias another model's keys (`:`), widen a pattern (globs)
/// or reach Larder's bookkeeping keys (`~`).
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    if is_key_segment(prefix) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "model prefix {prefix:?} must be 1 to 64 ASCII letters, digits, `.`, `_` or `-` \
             (`:`, `~` and glob characters could share or widen other keys); \
             fix ModelOptions::new({prefix:?})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_django_shape_and_escape_ids() {
        let options = ModelOptions::new("product");
        assert_eq!(instance_key(&options, &1).unwrap(), "product:1");
        assert_eq!(instance_key(&options, &"a:b*").unwrap(), "product:a%3Ab%2A");
        assert_eq!(instance_tag("category", &3).unwrap(), "model:category:3");
    }

    #[test]
    fn bad_prefixes_are_config_errors() {
        for prefix in ["", "pro:duct", "prod*", "a~b", "p{x}", "with space"] {
            let err = instance_key(&ModelOptions::new(prefix), &1).unwrap_err();
            assert!(err.is_config(), "{prefix:?}");
            assert!(err.to_string().contains("model prefix"), "{err}");
        }
    }

    #[test]
    fn a_dependency_must_be_on_a_related_model() {
        let options = ModelOptions::new("product").related(&["category"]);
        let tag = dependency_tag(&options, &Dependency::new("category", 3)).unwrap();
        assert_eq!(tag, "model:category:3");
        let err = dependency_tag(&options, &Dependency::new("brand", 3)).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains("related"), "{err}");
    }

    #[test]
    fn dependents_record_each_instance_tag_once_and_each_model_generation() {
        let options = ModelOptions::new("bundle").related(&["category", "brand"]);
        let dependencies = [
            Dependency::new("category", 3),
            Dependency::new("brand", 1),
            Dependency::new("category", 3),
            Dependency::new("category", 4),
        ];
        let tags = DependencyTags::of(&options, &dependencies).unwrap();
        assert_eq!(
            tags.indexed,
            ["model:category:3", "model:brand:1", "model:category:4"]
        );
        assert_eq!(
            tags.recorded,
            [
                "model:category:3",
                "model:brand:1",
                "model:category:4",
                "model:category",
                "model:brand"
            ]
        );
        assert!(DependencyTags::of(&options, &[]).unwrap().is_empty());
    }
}
