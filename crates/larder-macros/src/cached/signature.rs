//! The function's parameters: which go into the key, which is the TTL,
//! which are skipped — and the signatures Larder cannot cache.

use darling::Error;
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, Pat, Receiver, Signature, Type};

/// What a parameter does for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Digested into the key.
    Key,
    /// `ttl`: overrides the TTL of this call; not in the key.
    Ttl,
    /// `#[larder(skip)]`: not in the key.
    Skip,
}

#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) role: Role,
    /// The type holds `impl Trait`: a type parameter of its own.
    pub(crate) impl_trait: bool,
}

/// A type or const parameter of the function that is part of the key.
#[derive(Debug)]
pub(crate) enum Generic {
    /// `T`: its type name is digested.
    Type(Ident),
    /// `const N: usize`: its value is digested.
    Const(Ident),
}

impl Generic {
    pub(crate) fn ident(&self) -> &Ident {
        match self {
            Generic::Type(ident) | Generic::Const(ident) => ident,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Params {
    pub(crate) receiver: Option<Receiver>,
    pub(crate) params: Vec<Param>,
    /// Type and const parameters not marked `#[larder(skip)]`.
    pub(crate) generics: Vec<Generic>,
}

impl Params {
    pub(crate) fn with_role(&self, role: Role) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(move |p| p.role == role)
    }
}

/// Reads the parameters and removes `#[larder(...)]` attributes from `sig`
/// (rustc would reject them).
pub(crate) fn analyze(sig: &mut Signature) -> darling::Result<Params> {
    let mut errors = Error::accumulator();
    if let Some(constness) = &sig.constness {
        errors.push(Error::custom("a #[cached] function cannot be `const`").with_span(constness));
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(Error::custom("a #[cached] function cannot be `unsafe`").with_span(unsafety));
    }
    if let Some(abi) = &sig.abi {
        errors
            .push(Error::custom("a #[cached] function cannot have an `extern` ABI").with_span(abi));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::custom("a #[cached] function cannot be variadic").with_span(variadic));
    }
    let mut generics = Vec::new();
    for param in &mut sig.generics.params {
        match param {
            GenericParam::Type(ty) => {
                if !errors
                    .handle(take_larder_attrs(&mut ty.attrs))
                    .unwrap_or(false)
                {
                    generics.push(Generic::Type(ty.ident.clone()));
                }
            }
            GenericParam::Const(konst) => {
                if !errors
                    .handle(take_larder_attrs(&mut konst.attrs))
                    .unwrap_or(false)
                {
                    generics.push(Generic::Const(konst.ident.clone()));
                }
            }
            GenericParam::Lifetime(lifetime) => {
                if errors
                    .handle(take_larder_attrs(&mut lifetime.attrs))
                    .unwrap_or(false)
                {
                    errors.push(
                        Error::custom(
                            "lifetimes are never part of the key; `#[larder(skip)]` is not needed",
                        )
                        .with_span(&lifetime.lifetime),
                    );
                }
            }
        }
    }
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(typed) => {
                let skip = errors
                    .handle(take_larder_attrs(&mut typed.attrs))
                    .unwrap_or(false);
                let ident = match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => {
                        pat.ident.clone()
                    }
                    other => {
                        errors.push(
                            Error::custom(
                                "#[cached] needs a plain name for every argument (it digests them into the key); \
                                 bind the value to a name and destructure it in the body",
                            )
                            .with_span(&other.span()),
                        );
                        continue;
                    }
                };
                let role = if ident == "ttl" {
                    if skip {
                        errors.push(
                            Error::custom(
                                "`ttl` is never part of the key; `#[larder(skip)]` is not needed",
                            )
                            .with_span(&ident),
                        );
                    }
                    Role::Ttl
                } else if skip {
                    Role::Skip
                } else {
                    Role::Key
                };
                params.push(Param {
                    ident,
                    impl_trait: mentions_impl(typed.ty.to_token_stream()),
                    ty: (*typed.ty).clone(),
                    role,
                });
            }
        }
    }
    errors.finish_with(Params {
        receiver,
        params,
        generics,
    })
}

/// Whether a type holds `impl Trait` anywhere (`&impl Serialize`,
/// `Vec<impl Serialize>`): `impl` is a keyword, so any such token is one.
fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

/// Removes `#[larder(...)]` from an argument; returns whether it said `skip`.
fn take_larder_attrs(attrs: &mut Vec<syn::Attribute>) -> darling::Result<bool> {
    let mut skip = false;
    let mut error = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("larder") {
            return true;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown argument option; the only one is `#[larder(skip)]`"))
            }
        });
        if let Err(err) = parsed {
            error = Some(Error::from(err));
        }
        false
    });
    match error {
        Some(err) => Err(err),
        None => Ok(skip),
    }
}
