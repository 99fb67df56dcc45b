//! Values written into a key template: percent-escaped, so that no value
//! can pass for the template's `:` separators or for a glob character.

use std::fmt;

use crate::{Error, ErrorKind, Result};

/// Bytes a template value never contains as themselves: `%` (the escape),
/// `:` (the key separator), the glob characters `* ? [ ] \` and control
/// bytes. Everything else, including non-ASCII text, is kept, so numbers
/// and identifiers stay readable (`user:123:profile`).
pub(crate) fn must_escape(byte: u8) -> bool {
    matches!(byte, b'%' | b':' | b'*' | b'?' | b'[' | b']' | b'\\') || byte.is_ascii_control()
}

/// Appends `value` to `out`, each byte for which `escape` holds written as
/// `%XX` (uppercase hex). Only ASCII bytes may be escaped, so `out` stays
/// UTF-8.
pub(crate) fn push_escaped_with(out: &mut String, value: &str, escape: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut plain = 0;
    for (i, byte) in value.bytes().enumerate() {
        if escape(byte) {
            debug_assert!(byte.is_ascii());
            out.push_str(&value[plain..i]);
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            plain = i + 1;
        }
    }
    out.push_str(&value[plain..]);
}

/// Appends `value` as a key template writes it: `%` `:` `*` `?` `[` `]` `\`
/// and control bytes as `%XX`, everything else as it is.
pub fn push_escaped(out: &mut String, value: &str) {
    push_escaped_with(out, value, must_escape);
}

/// `value` as a key template writes it (see [`push_escaped`]).
pub fn escape_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

/// Arguments a key template can write.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be written into a key template: it does not implement `Display`",
    label = "this argument is written into the key template",
    note = "templates suit ids, numbers and strings; for other arguments use the digest key (remove `key = …`), which takes any `Serialize` value"
)]
pub trait TemplateArg {
    /// Appends `self`'s `Display` form to `key`, escaped.
    ///
    /// # Errors
    /// When the `Display` implementation fails.
    fn write_into(&self, key: &mut String) -> Result<()>;
}

impl<T: fmt::Display + ?Sized> TemplateArg for T {
    fn write_into(&self, key: &mut String) -> Result<()> {
        fmt::write(&mut Escaping(key), format_args!("{self}")).map_err(|_| {
            Error::new(
                ErrorKind::Encode,
                "a key-template argument's `Display` implementation failed",
            )
        })
    }
}

/// Escapes whatever is formatted into it.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::key::escape_glob;

    fn written(value: &dyn TemplateArg) -> String {
        let mut key = String::new();
        value.write_into(&mut key).unwrap();
        key
    }

    #[test]
    fn numbers_and_identifiers_are_kept() {
        assert_eq!(written(&123_u64), "123");
        assert_eq!(written(&-5_i32), "-5");
        assert_eq!(written(&"alice"), "alice");
        assert_eq!(written(&"jörg.müller-2"), "jörg.müller-2");
    }

    #[test]
    fn separators_escapes_and_glob_characters_are_escaped() {
        assert_eq!(written(&"acme:secret"), "acme%3Asecret");
        assert_eq!(written(&"100%"), "100%25");
        assert_eq!(written(&r"a*b?c[d]e\f"), "a%2Ab%3Fc%5Bd%5De%5Cf");
        assert_eq!(written(&"line\nbreak\u{7f}"), "line%0Abreak%7F");
    }

    #[test]
    fn escaped_values_pass_through_escape_glob_unchanged() {
        let value = escape_segment(r"a*b:c[?]\%");
        assert_eq!(escape_glob(&value), value);
    }

    proptest! {
        #[test]
        fn escaping_is_injective(a in ".{0,8}", b in ".{0,8}") {
            prop_assume!(a != b);
            prop_assert_ne!(escape_segment(&a), escape_segment(&b));
        }

        #[test]
        fn escaped_values_hold_no_separator_or_glob_character(a in ".{0,16}") {
            let escaped = escape_segment(&a);
            prop_assert!(!escaped.contains([':', '*', '?', '[', ']', '\\']));
            prop_assert!(!escaped.bytes().any(|b| b.is_ascii_control()));
        }

        #[test]
        fn two_escaped_values_joined_by_a_colon_split_back(a in ".{0,8}", b in ".{0,8}", c in ".{0,8}", d in ".{0,8}") {
            prop_assume!((&a, &b) != (&c, &d));
            let join = |x: &str, y: &str| format!("{}:{}", escape_segment(x), escape_segment(y));
            prop_assert_ne!(join(&a, &b), join(&c, &d));
        }
    }
}
