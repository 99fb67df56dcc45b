//! The derived `ModelOptions::schema`: a fingerprint of the stored fields'
//! names and types as written, so that adding, removing, renaming or
//! retyping a stored field makes the entries of the old shape misses.
//!
//! It is syntactic: `String` and `std::string::String` differ, and a
//! change inside a field's own type (a field added to `Category`) is not
//! seen — the model's `version` is for that. The order of the fields does
//! not count: entries are encoded with field names, so a reordered struct
//! reads the old entries.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Ident, Type};

/// The fingerprint of `fields` (name, type), in any order: a 64-bit FNV-1a
/// hash of the fields sorted by name, each as its name and its type's
/// tokens one space apart (so it does not depend on how the compiler
/// prints tokens, nor on the spacing the user wrote).
pub(super) fn fingerprint<'a>(fields: impl IntoIterator<Item = (&'a Ident, &'a Type)>) -> u64 {
    let mut fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(ident, ty)| {
            let mut written = String::new();
            canonical(ty.to_token_stream(), &mut written);
            (ident.to_string(), written)
        })
        .collect();
    fields.sort();
    let mut hash = Fnv::new();
    hash.mix(b"larder-derive-schema\0");
    for (name, ty) in &fields {
        hash.mix(name.as_bytes());
        hash.mix(b"\0");
        hash.mix(ty.as_bytes());
        hash.mix(b"\0");
    }
    hash.0
}

/// Appends `tokens` to `out`, one space before each token.
fn canonical(tokens: TokenStream, out: &mut String) {
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    // A type passed through a `macro_rules!` fragment: the
                    // same type as written out.
                    Delimiter::None => ("", ""),
                };
                out.push(' ');
                out.push_str(open);
                canonical(group.stream(), out);
                out.push(' ');
                out.push_str(close);
            }
            TokenTree::Ident(ident) => {
                out.push(' ');
                out.push_str(&ident.to_string());
            }
            TokenTree::Punct(punct) => {
                out.push(' ');
                out.push(punct.as_char());
            }
            TokenTree::Literal(literal) => {
                out.push(' ');
                out.push_str(&literal.to_string());
            }
        }
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn mix(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(fields: &[(&str, &str)]) -> u64 {
        let parsed: Vec<(Ident, Type)> = fields
            .iter()
            .map(|(name, ty)| {
                (
                    syn::parse_str(name).expect("an ident"),
                    syn::parse_str(ty).expect("a type"),
                )
            })
            .collect();
        fingerprint(parsed.iter().map(|(ident, ty)| (ident, ty)))
    }

    #[test]
    fn names_and_types_count_order_and_spacing_do_not() {
        let base = of(&[("id", "u64"), ("tags", "Vec<String>")]);
        assert_eq!(base, of(&[("tags", "Vec < String >"), ("id", "u64")]));
        let changed = [
            of(&[("id", "u64")]),
            of(&[("id", "u64"), ("tags", "Vec<String>"), ("name", "String")]),
            of(&[("id", "u64"), ("labels", "Vec<String>")]),
            of(&[("id", "u32"), ("tags", "Vec<String>")]),
            of(&[("id", "u64"), ("tags", "Vec<(String)>")]),
        ];
        for other in changed {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn the_fingerprint_is_stable_across_builds() {
        // Pinned: a change here turns every derived model's entries into
        // misses on deploy.
        assert_eq!(
            of(&[("id", "u64"), ("name", "String")]),
            of(&[("name", "String"), ("id", "u64")])
        );
        // (FNV-1a of "larder-derive-schema\0id\0 u64\0name\0 String\0", checked
        // against an independent implementation.)
        assert_eq!(
            of(&[("id", "u64"), ("name", "String")]),
            0x129f_7fd8_044b_a5cb
        );
    }
}
