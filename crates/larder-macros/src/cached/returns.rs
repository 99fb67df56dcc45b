//! The return type: what is cached, and what the caller receives.
//!
//! `T` caches `T`; `Result<T, E>` caches only `Ok`; `Option<T>` caches only
//! `Some` unless `cache_none`. Wherever `T` is `Expiring<U>`, the body picks
//! the TTL and the caller receives `U`.

use darling::Error;
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, ReturnType, Type, TypePath};

/// The shape of the return type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Plain,
    Fallible,
    Optional,
}

#[derive(Debug)]
pub(crate) struct Returns {
    pub(crate) shape: Shape,
    /// The body picks the TTL (`Expiring<T>`).
    pub(crate) expiring: bool,
    /// The return type as the body writes it.
    pub(crate) inner: Type,
    /// The return type callers see (`Expiring` removed).
    pub(crate) outer: Type,
    /// `T`: the value inside the shape, `Expiring` removed.
    pub(crate) value: Type,
}

pub(crate) fn analyze(sig: &syn::Signature) -> darling::Result<Returns> {
    let ReturnType::Type(_, ty) = &sig.output else {
        return Err(Error::custom(
            "a #[cached] function must return a value; there is nothing to cache in `()`",
        )
        .with_span(&sig.ident));
    };
    let inner = ungroup(ty).clone();
    check_owned(&inner)?;
    let (shape, ok) = match last_segment(&inner) {
        Some(("Result", Some(first))) => (Shape::Fallible, first),
        Some(("Option", Some(first))) => (Shape::Optional, first),
        _ => (Shape::Plain, inner.clone()),
    };
    check_owned(&ok)?;
    let (expiring, value) = match last_segment(&ok) {
        Some(("Expiring", Some(value))) => (true, value),
        _ => (false, ok),
    };
    let outer = if !expiring {
        inner.clone()
    } else if shape == Shape::Plain {
        value.clone()
    } else {
        replace_first_arg(&inner, &value)
    };
    Ok(Returns {
        shape,
        expiring,
        inner,
        outer,
        value,
    })
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        other => other,
    }
}

fn check_owned(ty: &Type) -> darling::Result<()> {
    match ungroup(ty) {
        Type::Reference(_) => Err(Error::custom(
            "a #[cached] function must return an owned value: cached results are deserialized, so they cannot borrow",
        )
        .with_span(&ty.span())),
        Type::ImplTrait(_) => Err(Error::custom(
            "a #[cached] function cannot return `impl Trait`: name a type that implements Serialize and Deserialize",
        )
        .with_span(&ty.span())),
        Type::Tuple(tuple) if tuple.elems.is_empty() => Err(Error::custom(
            "a #[cached] function must return a value; there is nothing to cache in `()`",
        )
        .with_span(&ty.span())),
        _ => Ok(()),
    }
}

/// The last path segment's name and its first type argument.
fn last_segment(ty: &Type) -> Option<(&'static str, Option<Type>)> {
    let Type::Path(TypePath {
        qself: None, path, ..
    }) = ungroup(ty)
    else {
        return None;
    };
    let segment = path.segments.last()?;
    let name = ["Result", "Option", "Expiring"]
        .into_iter()
        .find(|name| segment.ident == name)?;
    let first = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        }),
        _ => None,
    };
    Some((name, first))
}

fn replace_first_arg(ty: &Type, replacement: &Type) -> Type {
    let mut ty = ungroup(ty).clone();
    if let Type::Path(TypePath { path, .. }) = &mut ty
        && let Some(segment) = path.segments.last_mut()
        && let PathArguments::AngleBracketed(args) = &mut segment.arguments
        && let Some(first) = args.args.iter_mut().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
    {
        *first = replacement.clone();
    }
    ty
}
