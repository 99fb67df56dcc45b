//! Emitting the cached function and its companions.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, ItemFn};

use super::args::CachedArgs;
use super::key::KeyPlan;
use super::returns::{Returns, Shape};
use super::signature::{Params, Role};
use crate::crate_path;
use crate::seconds::Seconds;

/// Everything the emitted items share.
struct Plan<'a> {
    larder: TokenStream,
    args: &'a CachedArgs,
    function: &'a ItemFn,
    params: &'a Params,
    returns: &'a Returns,
    key: KeyPlan<'a>,
    /// How the docs name the key's first segment.
    namespace: String,
    is_async: bool,
}

pub(super) fn generate(
    args: &CachedArgs,
    function: &ItemFn,
    params: &Params,
    returns: &Returns,
) -> darling::Result<TokenStream> {
    if args.cache_none && returns.shape != Shape::Optional {
        return Err(darling::Error::custom(
            "`cache_none` applies only to functions returning `Option<T>`",
        ));
    }
    if args.none_ttl.is_some() && !args.cache_none {
        return Err(darling::Error::custom(
            "`none_ttl` needs `cache_none = true`",
        ));
    }
    let larder = crate_path::larder();
    let key = KeyPlan::new(larder.clone(), args, params, &function.sig.ident)?;
    let plan = Plan {
        larder,
        args,
        function,
        params,
        returns,
        key,
        namespace: args.namespace.as_ref().map_or_else(
            || "this function's path (`crate.module.name:…`)".to_owned(),
            |ns| format!("`{}:…`", ns.value()),
        ),
        is_async: function.sig.asyncness.is_some(),
    };
    let main = plan.main_fn();
    let companions = plan.companions();
    Ok(quote! {
        #main
        #companions
    })
}

impl Plan<'_> {
    fn ident(&self) -> &Ident {
        &self.function.sig.ident
    }

    /// The type stored in the cache.
    fn cached_type(&self) -> TokenStream {
        let value = &self.returns.value;
        if self.args.cache_none {
            quote!(::core::option::Option<#value>)
        } else {
            quote!(#value)
        }
    }

    /// `let __larder_cache: Option<&Cache> = …;`. A `call` of the function
    /// (not a companion) before `larder::init` runs uncached and is
    /// reported; it needs `__larder_key` in scope.
    fn cache_binding(&self, call: bool) -> TokenStream {
        let larder = &self.larder;
        match &self.args.cache {
            Some(expr) => quote_spanned! {expr.span()=>
                let __larder_cache_source = &(#expr);
                let __larder_cache = ::core::option::Option::Some(
                    #larder::__private::AsCache::as_cache(__larder_cache_source),
                );
            },
            None if call => {
                let function = self.ident().unraw().to_string();
                let namespace = match &self.args.namespace {
                    Some(ns) => quote!(::core::option::Option::Some(#ns)),
                    None => quote!(::core::option::Option::None),
                };
                quote! {
                    let __larder_cache = #larder::__private::global_for_call(
                        ::core::concat!(::core::module_path!(), "::", #function),
                        #namespace,
                        &__larder_key,
                    );
                }
            }
            None => quote! {
                let __larder_cache = #larder::__private::global();
            },
        }
    }

    fn ttl_attr(&self) -> TokenStream {
        match &self.args.ttl {
            Some(ttl) => {
                let ttl = self.duration(ttl, "ttl");
                quote!(::core::option::Option::Some(#ttl))
            }
            None => quote!(::core::option::Option::None),
        }
    }

    /// A `Duration` expression for a TTL option.
    fn duration(&self, seconds: &Seconds, option: &str) -> TokenStream {
        seconds.duration("#[larder::cached]", option)
    }

    /// The body of the cached function (`refresh = false`) or of its
    /// `_refresh` companion.
    fn cached_body(&self, refresh: bool) -> TokenStream {
        let larder = &self.larder;
        let key = if refresh {
            self.key.expr(&format_ident!("{}_refresh", self.ident()))
        } else {
            self.key.expr(self.ident())
        };
        let cache = self.cache_binding(true);
        let ttl_attr = self.ttl_attr();
        let ttl_arg = match self.params.with_role(Role::Ttl).next() {
            Some(param) => {
                let ident = &param.ident;
                quote_spanned! {param.ty.span()=>
                    #larder::__private::TtlArg::ttl(&#ident)
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let mode = if refresh {
            quote!(#larder::__private::Mode::Refresh)
        } else {
            quote!(#larder::__private::Mode::Read)
        };
        let inner = &self.returns.inner;
        let block = &self.function.block;
        let to_computed = if self.returns.expiring {
            quote!(#larder::__private::Computed::from)
        } else {
            quote!(#larder::__private::Computed::plain)
        };
        let cached_type = self.cached_type();
        let (support, local) = match &self.args.local {
            Some(local) => {
                let local = self.duration(local, "local");
                (quote!(cached_local), quote!(#local,))
            }
            None => (quote!(cached), quote!()),
        };
        let call = |error: TokenStream, convert: TokenStream| {
            quote! {
                #larder::__private::#support::<#cached_type, #error, _, _>(
                    __larder_cache,
                    __larder_key,
                    __larder_ttls,
                    #local
                    #mode,
                    move || async move {
                        let __larder_out: #inner = async move #block.await;
                        #convert
                    },
                )
                .await
            }
        };
        let run = match (self.returns.shape, self.args.cache_none) {
            (Shape::Plain, _) => {
                let call = call(
                    quote!(::core::convert::Infallible),
                    quote!(::core::result::Result::Ok(#to_computed(__larder_out))),
                );
                quote!(#larder::__private::infallible(#call))
            }
            (Shape::Fallible, _) => call(quote!(_), quote!(__larder_out.map(#to_computed))),
            (Shape::Optional, false) => {
                let call = call(
                    quote!(#larder::__private::NotCached),
                    quote!(__larder_out.map(#to_computed).ok_or(#larder::__private::NotCached)),
                );
                quote!(#call.ok())
            }
            (Shape::Optional, true) => {
                let none_ttl = match (&self.args.none_ttl, &self.args.ttl) {
                    (Some(none_ttl), _) => self.duration(none_ttl, "none_ttl"),
                    (None, Some(ttl)) => self.duration(ttl, "ttl"),
                    (None, None) => quote!(::core::time::Duration::from_secs(60)),
                };
                let call = call(
                    quote!(::core::convert::Infallible),
                    quote!(::core::result::Result::Ok(#larder::__private::optional(
                        __larder_out.map(#to_computed),
                        #none_ttl,
                    ))),
                );
                quote!(#larder::__private::infallible(#call))
            }
        };
        self.maybe_blocking(quote! {
            let __larder_key = #key;
            let __larder_ttls = #larder::__private::Ttls {
                argument: #ttl_arg,
                attribute: #ttl_attr,
            };
            #cache
            #run
        })
    }

    /// `async` functions await their body; sync ones block on it.
    fn maybe_blocking(&self, body: TokenStream) -> TokenStream {
        if self.is_async {
            quote!({ #body })
        } else {
            let larder = &self.larder;
            quote!({ #larder::__private::block_on(async move { #body }) })
        }
    }

    fn main_fn(&self) -> TokenStream {
        let ItemFn {
            attrs, vis, sig, ..
        } = self.function;
        let mut sig = sig.clone();
        let outer = &self.returns.outer;
        sig.output = syn::parse_quote!(-> #outer);
        let body = self.cached_body(false);
        let ttl = self.args.ttl.as_ref().map_or_else(
            || "the cache's default TTL".to_owned(),
            |ttl| match ttl.literal {
                Some(secs) => format!("{secs} s"),
                None => {
                    let expr = &ttl.expr;
                    let written = quote!(#expr).to_string().replace(" :: ", "::");
                    format!("`{written}` seconds")
                }
            },
        );
        let note = format!(
            " Cached by Larder under {} for {ttl} (`#[larder::cached]`); see also `{}_invalidate`, `{}_refresh`, `{}_prime`, `{}_peek` and `{}_key`.",
            self.namespace,
            self.ident(),
            self.ident(),
            self.ident(),
            self.ident(),
            self.ident()
        );
        quote! {
            #(#attrs)*
            #[doc = ""]
            #[doc = #note]
            #[allow(clippy::redundant_closure_call, clippy::redundant_async_block)]
            #vis #sig #body
        }
    }

    fn companions(&self) -> TokenStream {
        let larder = &self.larder;
        let ident = self.ident();
        let vis = &self.function.vis;
        let (impl_generics, _, where_clause) = self.function.sig.generics.split_for_impl();
        let generics = &self.function.sig.generics.params;
        let generics = if generics.is_empty() {
            quote!()
        } else {
            quote!(<#generics>)
        };
        let _ = impl_generics;
        let asyncness = if self.is_async {
            quote!(async)
        } else {
            quote!()
        };
        let receiver = self.params.receiver.as_ref().map(|r| {
            if matches!(r.kind, syn::ReceiverKind::Typed(..)) {
                quote!(#r,)
            } else {
                quote!(&self,)
            }
        });
        let key_params: Vec<_> = self
            .params
            .with_role(Role::Key)
            .map(|p| {
                let (ident, ty) = (&p.ident, &p.ty);
                quote!(#ident: #ty)
            })
            .collect();
        let mark_used: Vec<_> = self
            .params
            .with_role(Role::Key)
            .map(|p| {
                let ident = &p.ident;
                quote!(let _ = &#ident;)
            })
            .collect();
        let cache = self.cache_binding(false);
        let cached_type = self.cached_type();
        let ttl_attr = self.ttl_attr();
        let value_ident = if self.params.params.iter().any(|p| p.ident == "value") {
            format_ident!("cached_value")
        } else {
            format_ident!("value")
        };
        let name = format!("`{ident}`");

        let key_fn = format_ident!("{ident}_key");
        let invalidate_fn = format_ident!("{ident}_invalidate");
        let peek_fn = format_ident!("{ident}_peek");
        let prime_fn = format_ident!("{ident}_prime");
        let refresh_fn = format_ident!("{ident}_refresh");
        // A key cannot name the implementor of a trait or the trait's
        // parameters, so a default method would hand one implementor's
        // answers to all. This item makes a trait definition (or impl)
        // refuse the attribute: "functions in traits cannot be declared
        // const", pointing at the function.
        let not_in_traits = format_ident!("__larder_not_in_traits_{ident}");
        let const_token = quote_spanned!(ident.span()=> const);

        let key_doc = format!(
            " The logical cache key of {name} for these arguments (under {}).",
            self.namespace
        );
        let key_receiver = self
            .args
            .receiver
            .as_ref()
            .filter(|choice| choice.keyed)
            .map(|_| quote!(&self,));
        let invalidate_doc = format!(
            " Removes the cached result of {name} for these arguments; returns whether one was cached."
        );
        let peek_doc =
            format!(" The cached result of {name} for these arguments, without computing it.");
        let prime_doc =
            format!(" Caches `{value_ident}` as the result of {name} for these arguments.");
        let refresh_doc = format!(
            " Recomputes {name} for these arguments and caches the result, whatever is cached now."
        );
        let errors_doc = " # Errors\n When the store fails, the key cannot be computed, or no cache is available.";

        let key = self.key.expr(&invalidate_fn);
        let invalidate_body = self.maybe_blocking(quote! {
            #(#mark_used)*
            let __larder_key = #key;
            #cache
            #larder::__private::invalidate(__larder_cache, __larder_key).await
        });
        let key = self.key.expr(&peek_fn);
        let peek_body = self.maybe_blocking(quote! {
            #(#mark_used)*
            let __larder_key = #key;
            #cache
            #larder::__private::peek::<#cached_type>(__larder_cache, __larder_key).await
        });
        let key = self.key.expr(&prime_fn);
        let prime_body = self.maybe_blocking(quote! {
            #(#mark_used)*
            let __larder_key = #key;
            #cache
            #larder::__private::prime(__larder_cache, __larder_key, &#value_ident, #ttl_attr).await
        });

        let mut refresh_sig = self.function.sig.clone();
        refresh_sig.ident = refresh_fn.clone();
        let outer = &self.returns.outer;
        refresh_sig.output = syn::parse_quote!(-> #outer);
        let refresh_body = self.cached_body(true);
        let key = self.key.expr(&key_fn);

        quote! {
            #[doc(hidden)]
            #[allow(dead_code, non_snake_case)]
            #const_token fn #not_in_traits() {}

            #[doc = #key_doc]
            #[doc = ""]
            #[doc = " # Errors"]
            #[doc = " When an argument cannot be serialized, or the function cannot be keyed safely (the message says why)."]
            #[allow(clippy::redundant_closure_call, dead_code)]
            #vis fn #key_fn #generics (#key_receiver #(#key_params),*) -> #larder::Result<::std::string::String> #where_clause {
                #(#mark_used)*
                #key
            }

            #[doc = #invalidate_doc]
            #[doc = ""]
            #[doc = #errors_doc]
            #[allow(clippy::redundant_closure_call, dead_code)]
            #vis #asyncness fn #invalidate_fn #generics (#receiver #(#key_params),*) -> #larder::Result<bool> #where_clause
            #invalidate_body

            #[doc = #peek_doc]
            #[doc = ""]
            #[doc = #errors_doc]
            #[allow(clippy::redundant_closure_call, dead_code)]
            #vis #asyncness fn #peek_fn #generics (#receiver #(#key_params),*) -> #larder::Result<::core::option::Option<#cached_type>> #where_clause
            #peek_body

            #[doc = #prime_doc]
            #[doc = ""]
            #[doc = #errors_doc]
            #[allow(clippy::redundant_closure_call, dead_code)]
            #vis #asyncness fn #prime_fn #generics (#receiver #(#key_params,)* #value_ident: #cached_type) -> #larder::Result<()> #where_clause
            #prime_body

            #[doc = #refresh_doc]
            #[allow(clippy::redundant_closure_call, clippy::redundant_async_block, dead_code)]
            #vis #refresh_sig
            #refresh_body
        }
    }
}
