//! `key = "user:{user_id}:profile"`: a readable key, checked against the
//! signature so that nothing the body reads is left out of it.
//!
//! Values are escaped at run time (`larder::__private::TemplateArg`), so a
//! `:` between two placeholders is a boundary no value can forge; the
//! checks here make sure such a boundary exists and that every argument
//! is either placed or explicitly skipped.

use darling::Error;
use syn::{Ident, LitStr};

use super::args::CachedArgs;
use super::signature::{Params, Role};

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Written as it is.
    Literal(String),
    /// `{name}`: an argument, escaped.
    Arg(String),
    /// `{self}`: a digest of the receiver.
    Receiver,
}

/// A checked template.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) pieces: Vec<Piece>,
    /// The arguments, as identifiers of the signature, in `pieces` order.
    pub(crate) args: Vec<Ident>,
}

impl Piece {
    /// `{name}` as written, for a placeholder.
    fn placeholder(&self) -> Option<String> {
        match self {
            Piece::Literal(_) => None,
            Piece::Arg(name) => Some(format!("{{{name}}}")),
            Piece::Receiver => Some("{self}".to_owned()),
        }
    }
}

impl Template {
    pub(crate) fn places_receiver(&self) -> bool {
        self.pieces.contains(&Piece::Receiver)
    }
}

/// Splits a template into pieces.
pub(crate) fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '}' => {
                return Err(
                    "unmatched `}` in the key template; write `}}` for a literal brace".into(),
                );
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(
                                "unclosed `{` in the key template; write `{{` for a literal brace"
                                    .into(),
                            );
                        }
                    }
                }
                let piece = placeholder(&name)?;
                if let Some(previous) = pieces.last().and_then(Piece::placeholder)
                    && !literal.contains(':')
                {
                    return Err(format!(
                        "put a `:` between `{previous}` and `{{{name}}}` in the key template: values are escaped so that a `:` inside one cannot pass for the separator, but any other separator can (`{{a}}-{{b}}` writes `x-y-z` for both (\"x-y\", \"z\") and (\"x\", \"y-z\"))"
                    ));
                }
                pieces.extend(
                    (!literal.is_empty()).then(|| Piece::Literal(std::mem::take(&mut literal))),
                );
                pieces.push(piece);
            }
            '*' | '?' | '[' | ']' | '\\' => {
                return Err(format!(
                    "a key template cannot hold the glob character `{c}`: it would act as a wildcard in `invalidate_cache_pattern`"
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn placeholder(name: &str) -> Result<Piece, String> {
    if name == "self" {
        return Ok(Piece::Receiver);
    }
    if let Some(field) = name.strip_prefix("self.") {
        return Err(format!(
            "a key template cannot read fields of `self` (`{{{name}}}`): pass `{field}` as an argument and place it, or key the whole receiver with `receiver = \"key\"` and `{{self}}`"
        ));
    }
    if let Some((arg, spec)) = name.split_once(':') {
        return Err(format!(
            "`{{{name}}}`: format specs (`:{spec}`) are not supported in a key template; write `{{{arg}}}` (values are written with `Display`, escaped)"
        ));
    }
    if syn::parse_str::<Ident>(name).is_err() {
        return Err(format!(
            "`{{{name}}}` is not an argument name; a key template places arguments by name, e.g. `{{user_id}}`"
        ));
    }
    Ok(Piece::Arg(name.to_owned()))
}

/// Parses `lit` and checks it against the signature: every key argument
/// placed, nothing else placed, the receiver placed when it is keyed.
pub(crate) fn check(lit: &LitStr, args: &CachedArgs, params: &Params) -> darling::Result<Template> {
    let pieces = parse(&lit.value()).map_err(|msg| Error::custom(msg).with_span(lit))?;
    let mut errors = Error::accumulator();
    let mut placed = Vec::new();
    for piece in &pieces {
        match piece {
            Piece::Literal(_) => {}
            Piece::Receiver => match (&params.receiver, &args.receiver) {
                (None, _) => errors.push(
                    Error::custom("`{self}` in a key template needs a method; this function has no `self`")
                        .with_span(lit),
                ),
                (Some(_), Some(choice)) if !choice.keyed => errors.push(
                    Error::custom(
                        "`{self}` places the receiver in the key, but `receiver = \"skip\"` leaves it out; write `receiver = \"key\"`",
                    )
                    .with_span(&choice.span),
                ),
                _ => {}
            },
            Piece::Arg(name) => match params.params.iter().find(|p| p.ident == name) {
                None => {
                    let names: Vec<_> = params
                        .with_role(Role::Key)
                        .map(|p| format!("`{{{}}}`", p.ident))
                        .collect();
                    errors.push(
                        Error::custom(format!(
                            "the key template places `{{{name}}}`, but the function has no argument `{name}`; it can place {}",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ))
                        .with_span(lit),
                    );
                }
                Some(param) if param.role == Role::Ttl => errors.push(
                    Error::custom("`ttl` sets the TTL of the call and is never part of the key; remove `{ttl}` from the template")
                        .with_span(lit),
                ),
                Some(param) if param.role == Role::Skip => errors.push(
                    Error::custom(format!(
                        "the key template places `{{{name}}}`, but `{name}` is `#[larder(skip)]`: remove one of the two"
                    ))
                    .with_span(lit),
                ),
                Some(param) => placed.push(param.ident.clone()),
            },
        }
    }
    let template = lit.value();
    for param in params.with_role(Role::Key) {
        if !placed.contains(&param.ident) {
            let name = &param.ident;
            errors.push(
                Error::custom(format!(
                    "`{name}` is not in the key template \"{template}\": two calls that differ only in `{name}` would share one cached answer; place it (`{{{name}}}`), or mark it `#[larder(skip)]` if it never changes the answer"
                ))
                .with_span(name),
            );
        } else if param.impl_trait {
            errors.push(
                Error::custom(format!(
                    "`{}` has an `impl Trait` type, which a key template cannot tell apart (`5_u8` and `5_u64` are both written `5`): name a concrete type, or use the digest key (remove `key = …`)",
                    param.ident
                ))
                .with_span(&param.ident),
            );
        }
    }
    for generic in &params.generics {
        let name = generic.ident();
        errors.push(
            Error::custom(format!(
                "a key template cannot tell the instantiations of `{name}` apart: use the digest key (remove `key = …`), which includes `{name}`, or mark it `#[larder(skip)]` if it never changes the answer"
            ))
            .with_span(name),
        );
    }
    if let (Some(_), Some(choice)) = (&params.receiver, &args.receiver)
        && choice.keyed
        && !pieces.contains(&Piece::Receiver)
    {
        errors.push(
            Error::custom(
                "`receiver = \"key\"` with a key template: place the receiver with `{self}`, e.g. `key = \"{self}:{id}\"` (it is written as a digest of `self`)",
            )
            .with_span(&choice.span),
        );
    }
    errors.finish_with(Template {
        pieces,
        args: placed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.to_owned())
    }

    fn arg(s: &str) -> Piece {
        Piece::Arg(s.to_owned())
    }

    #[test]
    fn literals_placeholders_and_braces() {
        assert_eq!(
            parse("user:{user_id}:profile").unwrap(),
            [lit("user:"), arg("user_id"), lit(":profile")]
        );
        assert_eq!(
            parse("{tenant}:{self}:{{x}}").unwrap(),
            [arg("tenant"), lit(":"), Piece::Receiver, lit(":{x}")]
        );
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn placeholders_need_a_colon_between_them() {
        assert!(
            parse("{a}{b}")
                .unwrap_err()
                .contains("put a `:` between `{a}` and `{b}`")
        );
        assert!(parse("{a}-{b}").unwrap_err().contains("put a `:`"));
        assert!(parse("{a}-{self}").unwrap_err().contains("put a `:`"));
        assert!(parse("{a}/x:y/{b}").is_ok());
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(parse("{a").unwrap_err().contains("unclosed"));
        assert!(parse("a}").unwrap_err().contains("unmatched"));
        assert!(parse("{a:?}").unwrap_err().contains("format specs"));
        assert!(parse("{}").unwrap_err().contains("not an argument name"));
        assert!(parse("{0}").unwrap_err().contains("not an argument name"));
        assert!(
            parse("{self.tenant}")
                .unwrap_err()
                .contains("fields of `self`")
        );
        assert!(parse("user:*:{id}").unwrap_err().contains("glob"));
    }
}
