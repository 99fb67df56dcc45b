//! The struct's fields, sorted into the id, the stored fields, the
//! excluded ones and the related ones, with every misuse an error at the
//! token that causes it.

use darling::FromField;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Ident, Path, Type};

use super::args::{FieldArgs, ModelArgs};

/// One field of the model.
pub(super) struct ModelField<'a> {
    pub(super) ident: &'a Ident,
    pub(super) ty: &'a Type,
    /// Named in `exclude(..)`: never stored, `Default` on read.
    pub(super) excluded: bool,
    /// Named in `related(..)`: its models are dependencies.
    pub(super) related: bool,
}

/// The model's fields, in declaration order, and which one is the id.
pub(super) struct ModelFields<'a> {
    pub(super) fields: Vec<ModelField<'a>>,
    /// Index of the id in `fields`.
    pub(super) id: usize,
}

impl<'a> ModelFields<'a> {
    pub(super) fn id(&self) -> &ModelField<'a> {
        &self.fields[self.id]
    }

    pub(super) fn stored(&self) -> impl Iterator<Item = &ModelField<'a>> {
        self.fields.iter().filter(|field| !field.excluded)
    }

    pub(super) fn related(&self) -> impl Iterator<Item = &ModelField<'a>> {
        self.fields.iter().filter(|field| field.related)
    }
}

/// Reads the fields of `input`, checked against `args`.
pub(super) fn analyze<'a>(
    input: &'a DeriveInput,
    args: &ModelArgs,
) -> darling::Result<ModelFields<'a>> {
    let named = named_fields(input)?;
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(darling::Error::custom(
            "CachedModel cannot be derived for generic types yet; implement \
             `larder::model::CachedModel` by hand (its docs show how)",
        )
        .with_span(&input.generics));
    }
    let mut errors = darling::Error::accumulator();
    let mut fields = Vec::with_capacity(named.len());
    let mut marked_id = None;
    for field in named {
        let Some(ident) = field.ident.as_ref() else {
            continue;
        };
        let marked = errors
            .handle(FieldArgs::from_field(field))
            .filter(|field_args| field_args.id.is_present());
        if let Some(field_args) = marked {
            if marked_id.is_some() {
                errors.push(
                    darling::Error::custom(
                        "a model has one id: `#[larder(id)]` is already on another field",
                    )
                    .with_span(&field_args.id.span()),
                );
            } else {
                marked_id = Some(fields.len());
            }
        }
        fields.push(ModelField {
            ident,
            ty: &field.ty,
            excluded: false,
            related: false,
        });
    }
    let id = marked_id.or_else(|| fields.iter().position(|field| field.ident.unraw() == "id"));
    if id.is_none() {
        errors.push(no_id(input));
    }
    for path in args.exclude.iter() {
        if let Some(index) = errors.handle(find(&fields, path, "exclude")) {
            let field = &mut fields[index];
            if field.excluded {
                errors.push(listed_twice(path, "exclude"));
            }
            field.excluded = true;
            if Some(index) == id {
                errors.push(
                    darling::Error::custom(format!(
                        "`{}` is the model's id, which is always stored: it is part of the key",
                        field.ident
                    ))
                    .with_span(path),
                );
            }
        }
    }
    for path in args.related.iter() {
        if let Some(index) = errors.handle(find(&fields, path, "related")) {
            let field = &mut fields[index];
            if field.related {
                errors.push(listed_twice(path, "related"));
            }
            field.related = true;
            if field.excluded {
                errors.push(
                    darling::Error::custom(format!(
                        "`{}` is both excluded and related: a related field is stored data from \
                         another model, whose invalidation makes this entry a miss; remove it \
                         from one of the lists",
                        field.ident
                    ))
                    .with_span(path),
                );
            }
        }
    }
    let checked = errors.finish();
    match id {
        Some(id) => checked.map(|()| ModelFields { fields, id }),
        // The accumulator holds the error already.
        None => Err(checked.err().unwrap_or_else(|| no_id(input))),
    }
}

fn no_id(input: &DeriveInput) -> darling::Error {
    darling::Error::custom(format!(
        "CachedModel needs an id: a field named `id`, or mark the field that identifies \
         a `{}` with `#[larder(id)]`",
        input.ident
    ))
    .with_span(&input.ident)
}

/// The named fields, or an error at the token that says what the item is.
fn named_fields(
    input: &DeriveInput,
) -> darling::Result<&syn::punctuated::Punctuated<syn::Field, syn::Token![,]>> {
    const STRUCTS_ONLY: &str = "CachedModel is derived for structs with named fields \
                                (`struct Product { id: u64, … }`): the stored form names each field";
    match &input.data {
        Data::Struct(data) => match &data.fields {
            syn::Fields::Named(named) => Ok(&named.named),
            syn::Fields::Unnamed(unnamed) => {
                Err(darling::Error::custom(STRUCTS_ONLY).with_span(&unnamed.span()))
            }
            syn::Fields::Unit => Err(darling::Error::custom(STRUCTS_ONLY).with_span(&input.ident)),
        },
        Data::Enum(data) => Err(darling::Error::custom(format!(
            "{STRUCTS_ONLY}; for an enum, implement `larder::model::CachedModel` by hand"
        ))
        .with_span(&data.enum_token)),
        Data::Union(data) => Err(darling::Error::custom(STRUCTS_ONLY).with_span(&data.union_token)),
    }
}

/// The index of the field `path` names in `option(..)`.
fn find(fields: &[ModelField<'_>], path: &Path, option: &str) -> darling::Result<usize> {
    let Some(name) = path.get_ident() else {
        return Err(darling::Error::custom(format!(
            "`{option}(..)` lists field names, e.g. `{option}(category)`"
        ))
        .with_span(path));
    };
    fields
        .iter()
        .position(|field| field.ident.unraw() == name.unraw())
        .ok_or_else(|| {
            let names: Vec<String> = fields
                .iter()
                .map(|field| format!("`{}`", field.ident.to_token_stream()))
                .collect();
            darling::Error::custom(format!(
                "`{option}({name})` names no field of this struct; its fields are {}",
                names.join(", ")
            ))
            .with_span(path)
        })
}

fn listed_twice(path: &Path, option: &str) -> darling::Error {
    darling::Error::custom(format!(
        "`{}` is listed twice in `{option}(..)`",
        path.to_token_stream()
    ))
    .with_span(path)
}
