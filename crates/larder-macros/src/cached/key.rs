//! The key expression: `{namespace}:{digest}` or `{namespace}:{template}`,
//! with everything that tells two calls apart — the function (its path,
//! `Self`'s type in a generic impl, its type and const parameters), the
//! receiver when keyed, and the arguments.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use super::args::{CachedArgs, RECEIVER_CHOICES};
use super::signature::{Generic, Params, Role};
use super::template::{self, Piece, Template};

/// How the key of one cached function is built.
pub(crate) struct KeyPlan<'a> {
    larder: TokenStream,
    args: &'a CachedArgs,
    params: &'a Params,
    cached: &'a Ident,
    template: Option<Template>,
}

impl<'a> KeyPlan<'a> {
    /// Checks the receiver choice and the template against the signature.
    pub(crate) fn new(
        larder: TokenStream,
        args: &'a CachedArgs,
        params: &'a Params,
        cached: &'a Ident,
    ) -> darling::Result<Self> {
        let mut errors = darling::Error::accumulator();
        match (&params.receiver, &args.receiver) {
            (Some(receiver), None) => errors.push(
                darling::Error::custom(format!(
                    "#[cached] on a method must say whether `self` is part of the key: {RECEIVER_CHOICES}"
                ))
                .with_span(&receiver.self_token),
            ),
            (None, Some(choice)) => errors.push(
                darling::Error::custom(
                    "`receiver = …` applies to methods; this function has no `self`",
                )
                .with_span(&choice.span),
            ),
            _ => {}
        }
        let template = args
            .key
            .as_ref()
            .and_then(|lit| errors.handle(template::check(lit, args, params)));
        errors.finish_with(Self {
            larder,
            args,
            params,
            cached,
            template,
        })
    }

    fn receiver_keyed(&self) -> bool {
        self.args
            .receiver
            .as_ref()
            .is_some_and(|choice| choice.keyed)
    }

    /// Whether the key can name `Self`'s type: a method with a digest key,
    /// or whose template places the receiver.
    fn names_self(&self) -> bool {
        self.params.receiver.is_some()
            && self.template.as_ref().is_none_or(Template::places_receiver)
    }

    /// An expression of type `larder::Result<String>`: the key, as built in
    /// the generated function `function`.
    pub(crate) fn expr(&self, function: &Ident) -> TokenStream {
        let larder = &self.larder;
        let function = function.unraw().to_string();
        let cached = self.cached.unraw().to_string();
        let namespace = match &self.args.namespace {
            Some(ns) => quote!(::core::option::Option::Some(#ns)),
            None => quote!(::core::option::Option::None),
        };
        let receiver = self.params.receiver.is_some();
        let names_self = self.names_self();
        let position = self.cached.span();
        let line = quote_spanned!(position=> ::core::line!());
        let column = quote_spanned!(position=> ::core::column!());
        let body = match &self.template {
            Some(template) => self.template_body(template),
            None => self.digest_body(),
        };
        quote! {
            (|| -> #larder::Result<::std::string::String> {
                #[allow(dead_code)]
                struct __LarderSite;
                static __LARDER_SITE: #larder::__private::Site = #larder::__private::Site::new();
                let __larder_site = __LARDER_SITE.resolve(&#larder::__private::Spec {
                    marker: ::core::any::type_name::<__LarderSite>(),
                    function: #function,
                    cached: #cached,
                    namespace: #namespace,
                    receiver: #receiver,
                    names_self: #names_self,
                    line: #line,
                    column: #column,
                })?;
                #body
            })()
        }
    }

    /// `Self`'s type when the impl is generic, then the type and const
    /// parameters and the types of `impl Trait` arguments, into
    /// `__larder_digest`.
    fn instantiation(&self) -> TokenStream {
        let larder = &self.larder;
        let self_type = self.params.receiver.as_ref().map(|_| {
            quote! {
                if __larder_site.generic_impl() {
                    #larder::__private::KeyArg::digest_into(::core::any::type_name::<Self>(), &mut __larder_digest)?;
                }
            }
        });
        let generics = self.params.generics.iter().map(|generic| match generic {
            Generic::Type(ident) => quote! {
                #larder::__private::KeyArg::digest_into(::core::any::type_name::<#ident>(), &mut __larder_digest)?;
            },
            Generic::Const(ident) => quote! {
                #larder::__private::KeyArg::digest_into(&#ident, &mut __larder_digest)?;
            },
        });
        let impl_types = self
            .params
            .with_role(Role::Key)
            .filter(|param| param.impl_trait)
            .map(|param| {
                let ident = &param.ident;
                quote! {
                    #larder::__private::KeyArg::digest_into(::core::any::type_name_of_val(&#ident), &mut __larder_digest)?;
                }
            });
        quote!(#self_type #(#generics)* #(#impl_types)*)
    }

    /// The receiver into `__larder_digest` (`receiver = "key"`).
    fn receiver(&self) -> Option<TokenStream> {
        let larder = &self.larder;
        let receiver = self.params.receiver.as_ref()?;
        if !self.receiver_keyed() {
            return None;
        }
        let span = receiver.self_token.span();
        Some(quote_spanned! {span=>
            let __larder_self: &Self = &self;
            #larder::__private::KeyReceiver::digest_receiver(__larder_self, &mut __larder_digest)?;
        })
    }

    fn digest_body(&self) -> TokenStream {
        let larder = &self.larder;
        let instantiation = self.instantiation();
        let receiver = self.receiver();
        let args = self.params.with_role(Role::Key).map(|param| {
            let ident = &param.ident;
            quote_spanned! {param.ty.span()=>
                #larder::__private::KeyArg::digest_into(&#ident, &mut __larder_digest)?;
            }
        });
        quote! {
            let mut __larder_digest = #larder::__private::ArgsDigest::new();
            #instantiation
            #receiver
            #(#args)*
            ::core::result::Result::Ok(#larder::__private::digest_key(__larder_site.namespace(), &__larder_digest))
        }
    }

    fn template_body(&self, template: &Template) -> TokenStream {
        let larder = &self.larder;
        let mut fixed = 1;
        let mut args = template.args.iter();
        let pieces: Vec<_> = template
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(text) => {
                    fixed += text.len();
                    quote!(__larder_key.push_str(#text);)
                }
                Piece::Arg(_) => {
                    fixed += 8;
                    let ident = args.next().expect("one identifier per argument piece");
                    let ty = self
                        .params
                        .params
                        .iter()
                        .find(|param| param.ident == *ident)
                        .map_or_else(|| ident.span(), |param| param.ty.span());
                    quote_spanned! {ty=>
                        #larder::__private::TemplateArg::write_into(&#ident, &mut __larder_key)?;
                    }
                }
                Piece::Receiver => {
                    fixed += 32;
                    let instantiation = self.instantiation();
                    let receiver = self.receiver();
                    quote! {{
                        let mut __larder_digest = #larder::__private::ArgsDigest::new();
                        #instantiation
                        #receiver
                        __larder_digest.finish_into(&mut __larder_key);
                    }}
                }
            })
            .collect();
        quote! {
            let __larder_namespace = __larder_site.namespace();
            let mut __larder_key = ::std::string::String::with_capacity(__larder_namespace.len() + #fixed);
            __larder_key.push_str(__larder_namespace);
            __larder_key.push(':');
            #(#pieces)*
            ::core::result::Result::Ok(__larder_key)
        }
    }
}
