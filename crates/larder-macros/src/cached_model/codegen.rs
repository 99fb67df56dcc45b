//! Emitting the impl: the borrowed and owned shadow structs, the options,
//! and `impl CachedModel`, inside a `const _: () = { … };` block so that
//! the derive adds no name to the user's module.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use super::args::ModelArgs;
use super::fields::{ModelField, ModelFields};
use super::schema;
use crate::crate_path;

/// The derive's output for `input`.
pub(super) fn generate(
    input: &DeriveInput,
    args: &ModelArgs,
    fields: &ModelFields<'_>,
) -> darling::Result<TokenStream> {
    let larder = crate_path::larder();
    let serde_path = crate_path::serde();
    let model = &input.ident;
    let options = options(input, args, fields, &larder)?;
    let stored = format_ident!("__LarderStored{}", model);
    let loaded = format_ident!("__LarderLoaded{}", model);

    // A related field is stored as its model stores itself; the others
    // as they are, borrowed.
    let stored_fields = fields.stored().map(|field| {
        let ident = field.ident;
        let ty = own_type(field, model);
        if field.related {
            let related = related_field(field, &larder);
            quote!(#ident: <#ty as #related>::Stored<'__larder>)
        } else {
            quote!(#ident: &'__larder #ty)
        }
    });
    let loaded_fields = fields.stored().map(|field| {
        let ident = field.ident;
        let ty = own_type(field, model);
        if field.related {
            let related = related_field(field, &larder);
            quote!(#ident: <#ty as #related>::Loaded)
        } else {
            quote!(#ident: #ty)
        }
    });
    let borrow = fields.stored().map(|field| {
        let ident = field.ident;
        if field.related {
            let ty = field.ty;
            let related = related_field(field, &larder);
            quote!(#ident: <#ty as #related>::stored(&self.#ident))
        } else {
            quote!(#ident: &self.#ident)
        }
    });
    let rebuild = fields.fields.iter().map(|field| {
        let ident = field.ident;
        let ty = field.ty;
        if field.excluded {
            // Spanned to the field's type: a type without `Default` is
            // reported there.
            let default = quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default());
            quote!(#ident: #default)
        } else if field.related {
            let related = related_field(field, &larder);
            quote!(#ident: <#ty as #related>::from_loaded(loaded.#ident))
        } else {
            quote!(#ident: loaded.#ident)
        }
    });
    let id = fields.id();
    let id_ident = id.ident;
    let id_ty = id.ty;
    let id_clone =
        quote_spanned!(id_ty.span()=> <#id_ty as ::core::clone::Clone>::clone(&self.#id_ident));
    let dependencies = dependencies(fields, &larder);
    // A related model that embeds related models of its own would be
    // stored whole, nested rows and all, while only its own id is
    // recorded: a change to a nested row would not reach this entry.
    let flat = fields.related().map(|field| {
        let ty = field.ty;
        let related = related_field(field, &larder);
        quote_spanned! {ty.span()=>
            const _: () = ::core::assert!(
                <<#ty as #related>::Model as #larder::model::CachedModel>::OPTIONS
                    .related
                    .is_empty(),
                "#[derive(CachedModel)]: this related model has related models of its own; \
                 their changes would not reach this entry. Embed a model without related \
                 models, or implement `larder::model::CachedModel` by hand and list every \
                 nested model in `ModelOptions::related` and `dependencies()`"
            );
        }
    });

    let local_copy = if args.local.is_some() {
        quote! {
            fn to_local(&self) -> ::core::option::Option<#larder::__private::LocalValue> {
                ::core::option::Option::Some(::std::sync::Arc::new(
                    <Self as ::core::clone::Clone>::clone(self),
                ))
            }

            fn from_local(
                held: &#larder::__private::LocalValue,
            ) -> ::core::option::Option<Self> {
                held.downcast_ref::<Self>().cloned()
            }
        }
    } else {
        TokenStream::new()
    };
    Ok(quote! {
        #[doc(hidden)]
        const _: () = {
            #(#flat)*

            /// What is stored: the fields not excluded, borrowed.
            #[doc(hidden)]
            #[derive(#larder::__private::serde::Serialize)]
            #[serde(crate = #serde_path)]
            pub struct #stored<'__larder> {
                #(#stored_fields,)*
            }

            /// What is read back: the fields not excluded, owned.
            #[doc(hidden)]
            #[derive(#larder::__private::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            pub struct #loaded {
                #(#loaded_fields,)*
            }

            #[automatically_derived]
            impl #larder::model::CachedModel for #model {
                type Id = #id_ty;
                type Stored<'__larder> = #stored<'__larder>;
                type Loaded = #loaded;
                const OPTIONS: #larder::model::ModelOptions = #options;

                fn id(&self) -> Self::Id {
                    #id_clone
                }

                fn stored(&self) -> Self::Stored<'_> {
                    #stored { #(#borrow,)* }
                }

                fn from_loaded(loaded: Self::Loaded) -> Self {
                    Self { #(#rebuild,)* }
                }

                #dependencies

                #local_copy
            }
        };
    })
}

/// `ModelOptions::new(prefix)` and a setter for each option given, then
/// the schema.
fn options(
    input: &DeriveInput,
    args: &ModelArgs,
    fields: &ModelFields<'_>,
    larder: &TokenStream,
) -> darling::Result<TokenStream> {
    let prefix = prefix(input, args)?;
    let mut options = quote!(#larder::model::ModelOptions::new(#prefix));
    if let Some(timeout) = &args.timeout {
        let duration = timeout.duration("#[derive(CachedModel)]", "timeout");
        options.extend(quote!(.timeout(#duration)));
    }
    if let Some(version) = &args.version {
        options.extend(quote!(.version(#version)));
    }
    if let Some(enabled) = args.enabled {
        options.extend(quote!(.enabled(#enabled)));
    }
    if args.critical {
        options.extend(quote!(.critical(true)));
    }
    if let Some(local) = &args.local {
        let duration = local.duration("#[derive(CachedModel)]", "local");
        options.extend(quote!(.local(#duration)));
    }
    let related: Vec<TokenStream> = fields
        .related()
        .map(|field| {
            let ty = field.ty;
            let related = related_field(field, larder);
            quote!(<<#ty as #related>::Model as #larder::model::CachedModel>::OPTIONS.prefix)
        })
        .collect();
    if !related.is_empty() {
        // A `const` block: the array lives in static memory, as
        // `ModelOptions::related` needs.
        options.extend(quote! {
            .related(const { &[#(#related),*] })
        });
    }
    let schema = schema::fingerprint(fields.stored().map(|field| (field.ident, field.ty)));
    options.extend(quote!(.schema(#schema)));
    Ok(options)
}

/// The `prefix = "…"` literal, checked as the runtime checks a model
/// prefix.
fn prefix(input: &DeriveInput, args: &ModelArgs) -> darling::Result<LitStr> {
    let Some(prefix) = &args.prefix else {
        return Err(darling::Error::custom(format!(
            "CachedModel needs `#[larder(prefix = \"…\")]`: the first segment of every key of a \
             `{}` (`prefix = \"product\"` gives `product:1`)",
            input.ident
        ))
        .with_span(&input.ident));
    };
    let value = prefix.value();
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(prefix.clone())
    } else {
        Err(darling::Error::custom(
            "a model prefix is 1 to 64 ASCII letters, digits, `.`, `_` or `-`: \
             `:`, `~` and glob characters could share or widen other keys",
        )
        .with_span(prefix))
    }
}

/// `fn dependencies`, when fields are related.
fn dependencies(fields: &ModelFields<'_>, larder: &TokenStream) -> TokenStream {
    let pushes: Vec<TokenStream> = fields
        .related()
        .map(|field| {
            let ident = field.ident;
            let ty = field.ty;
            let related = related_field(field, larder);
            quote!(<#ty as #related>::push_dependencies(&self.#ident, &mut dependencies);)
        })
        .collect();
    if pushes.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn dependencies(&self) -> ::std::vec::Vec<#larder::model::Dependency> {
            let mut dependencies = ::std::vec::Vec::new();
            #(#pushes)*
            dependencies
        }
    }
}

/// The path of `RelatedField`, spanned to a related field's type: a type
/// that is not a cached model is reported there, once for all the places
/// the field is used.
fn related_field(field: &ModelField<'_>, larder: &TokenStream) -> TokenStream {
    quote_spanned!(field.ty.span()=> #larder::__private::RelatedField)
}

/// The field's type for a shadow struct: `Self` there would name the
/// shadow struct, so it becomes the model's name.
fn own_type(field: &ModelField<'_>, model: &Ident) -> TokenStream {
    replace_self(field.ty.to_token_stream(), model)
}

fn replace_self(tokens: TokenStream, model: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Ident(ident) if ident == "Self" => {
                TokenTree::Ident(Ident::new(&model.to_string(), ident.span()))
            }
            TokenTree::Group(group) => {
                let mut replaced =
                    Group::new(group.delimiter(), replace_self(group.stream(), model));
                replaced.set_span(group.span());
                TokenTree::Group(replaced)
            }
            other => other,
        })
        .collect()
}
