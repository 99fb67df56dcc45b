//! Which function a key belongs to: the default namespace, and whether the
//! function's `Self` must be named in the key.
//!
//! The macro cannot see where a function is defined (a module, an `impl`
//! block, a function body), so each generated function declares a marker
//! type and reads the compiler's name for it: `app::billing::Invoices::
//! total::{{closure}}::__LarderSite` says "`total`, in `impl Invoices` of
//! `app::billing`". The name is read once per generated function.

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::{Error, ErrorKind, Result};

/// What the generated code knows at compile time.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `type_name` of the marker declared in the generated function.
    pub marker: &'static str,
    /// The generated function's name (`total`, `total_key`, …).
    pub function: &'static str,
    /// The cached function's name (`total`).
    pub cached: &'static str,
    /// `namespace = "…"`, if given.
    pub namespace: Option<&'static str>,
    /// Whether the function has a receiver.
    pub receiver: bool,
    /// Whether the key can carry `Self`'s type: a method whose key is a
    /// digest, or whose template holds `{self}`.
    pub names_self: bool,
    /// Where the function is written, to tell apart functions of one
    /// name in anonymous scopes (closures, `const _` blocks).
    pub line: u32,
    /// See `line`.
    pub column: u32,
}

/// The resolved identity of a cached function.
#[derive(Debug)]
pub struct Resolved {
    namespace: Box<str>,
    generic_impl: bool,
}

impl Resolved {
    /// The namespace: the attribute's, or the function's path.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether the function is defined in a generic `impl`, so `Self`'s
    /// type must be part of the key.
    pub fn generic_impl(&self) -> bool {
        self.generic_impl
    }
}

/// A generated function's identity, resolved on first use.
#[derive(Debug)]
pub struct Site {
    resolved: OnceLock<std::result::Result<Resolved, Box<str>>>,
}

impl Default for Site {
    fn default() -> Self {
        Self::new()
    }
}

impl Site {
    /// Unresolved.
    pub const fn new() -> Self {
        Self {
            resolved: OnceLock::new(),
        }
    }

    /// The identity described by `spec` (the same `spec` on every call).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the function cannot be keyed safely; the
    /// message says why and what to change.
    pub fn resolve(&self, spec: &Spec) -> Result<&Resolved> {
        self.resolved
            .get_or_init(|| resolve(spec))
            .as_ref()
            .map_err(|message| Error::new(ErrorKind::Config, message.to_string()))
    }
}

fn resolve(spec: &Spec) -> std::result::Result<Resolved, Box<str>> {
    let container = container(spec).ok_or_else(|| {
        format!(
            "#[cached] could not tell where `{}` is defined (the compiler names it `{}`); give it `namespace = \"…\"`",
            spec.cached, spec.marker
        )
    })?;
    let segments = top_level_segments(container);
    let generic_impl = segments.last().is_some_and(|last| has_placeholder(last));
    if generic_impl && !spec.names_self {
        let reason = if spec.receiver {
            "its key template does not place the receiver: use the digest key (remove `key = …`), or `receiver = \"key\"` with `{self}` in the template"
        } else {
            "an associated function without a receiver cannot name `Self` in its key: give it a receiver (`&self` with `receiver = \"skip\"`) or move it out of the generic impl"
        };
        return Err(format!(
            "`{}::{}` is defined in a generic impl, whose instances must not share entries, but {reason}",
            container, spec.cached
        )
        .into());
    }
    let namespace = match spec.namespace {
        Some(namespace) => namespace.into(),
        None => {
            let mut namespace = String::with_capacity(container.len() + spec.cached.len() + 8);
            push_path(&mut namespace, container);
            namespace.push('.');
            push_path(&mut namespace, spec.cached);
            let anonymous = segments
                .iter()
                .any(|segment| *segment == "_" || segment.starts_with('{'));
            if anonymous {
                // Two functions of one name in two closures or `const _`
                // blocks of one item have the same path.
                let _ = write!(namespace, "@{}.{}", spec.line, spec.column);
            }
            namespace.into()
        }
    };
    Ok(Resolved {
        namespace,
        generic_impl,
    })
}

/// The marker's path without the marker, the closures of the generated
/// function's body and the generated function: where the cached function
/// is defined (`app::billing::Invoices`).
fn container(spec: &Spec) -> Option<&'static str> {
    let mut path = spec.marker.strip_suffix("::__LarderSite")?;
    while let Some((rest, last)) = path.rsplit_once("::") {
        if last.starts_with("{{") {
            path = rest;
        } else {
            break;
        }
    }
    path.strip_suffix(spec.function)?.strip_suffix("::")
}

/// `a::B<c::D>::e` → `["a", "B<c::D>", "e"]`: splits at `::` outside
/// brackets.
fn top_level_segments(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            // `->` in a function pointer type is not a bracket.
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                segments.push(&path[start..i]);
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(&path[start..]);
    segments
}

/// Whether a path segment shows a generic parameter instead of a type or
/// value: the compiler prints an impl's type parameters as `_` and its
/// const parameters by their bare name (`Repo<_>`, `Grid<N>`), while every
/// named type is printed with its path (`app::User`) and every value as a
/// literal. Lifetimes (`'_`) are erased at run time and never matter.
fn has_placeholder(segment: &str) -> bool {
    const KNOWN: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f16", "f32", "f64", "f128", "dyn", "const", "mut", "fn", "for",
        "unsafe", "extern", "impl", "as", "true", "false",
    ];
    if segment.starts_with('{') {
        return false; // `{{closure}}`
    }
    let bytes = segment.as_bytes();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut in_quotes = false;
    let mut chars = segment.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' {
            in_quotes = !in_quotes;
            continue;
        }
        if in_quotes || !is_word(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, next)) = chars.peek() {
            if !is_word(next) {
                break;
            }
            end = i + next.len_utf8();
            chars.next();
        }
        let word = &segment[start..end];
        let after_path = start >= 2 && &bytes[start - 2..start] == b"::";
        let before_path = bytes.get(end..end + 2) == Some(b"::");
        let lifetime_or_char = start >= 1 && bytes[start - 1] == b'\'';
        let literal = word.starts_with(|c: char| c.is_ascii_digit());
        if after_path || before_path || lifetime_or_char || literal {
            continue;
        }
        if word == "_" || !KNOWN.contains(&word) {
            // Outside brackets, the segment's own name (`Repo` in
            // `Repo<_>`) is not a parameter.
            if !(start == 0 && before_generic(segment, end)) {
                return true;
            }
        }
    }
    false
}

/// Whether `segment[..end]` is the name in front of `segment`'s own
/// generic arguments or the whole segment (`Repo` in `Repo<_>`).
fn before_generic(segment: &str, end: usize) -> bool {
    matches!(segment.as_bytes().get(end), None | Some(b'<'))
}

/// Appends a compiler path with `::` as `.` and the characters that would
/// confuse a key or a pattern escaped as `%XX`: `.` `%` `@` `:` (a lone
/// one, in a `char` value), glob characters and control bytes. The
/// result contains no `:`, so it is one key segment, and maps back to the
/// path unambiguously.
fn push_path(out: &mut String, path: &str) {
    let mut rest = path;
    while let Some(at) = rest.find("::") {
        push_escaped_path_part(out, &rest[..at]);
        out.push('.');
        rest = &rest[at + 2..];
    }
    push_escaped_path_part(out, rest);
}

fn push_escaped_path_part(out: &mut String, part: &str) {
    super::escape::push_escaped_with(out, part, |b| {
        super::escape::must_escape(b) || b == b'.' || b == b'@'
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(marker: &'static str, function: &'static str, cached: &'static str) -> Spec {
        Spec {
            marker,
            function,
            cached,
            namespace: None,
            receiver: true,
            names_self: true,
            line: 7,
            column: 5,
        }
    }

    fn namespace(marker: &'static str, function: &'static str, cached: &'static str) -> String {
        resolve(&spec(marker, function, cached))
            .unwrap()
            .namespace
            .into()
    }

    #[test]
    fn free_functions_and_methods_are_named_by_their_path() {
        assert_eq!(
            namespace(
                "app::users::display_name::{{closure}}::{{closure}}::__LarderSite",
                "display_name",
                "display_name"
            ),
            "app.users.display_name"
        );
        assert_eq!(
            namespace(
                "app::billing::Invoices::total_key::{{closure}}::__LarderSite",
                "total_key",
                "total"
            ),
            "app.billing.Invoices.total"
        );
    }

    #[test]
    fn generic_impls_are_recognised() {
        for (marker, generic) in [
            ("app::Repo<_>::load::__LarderSite", true),
            ("app::Repo<alloc::vec::Vec<_>>::load::__LarderSite", true),
            ("app::Grid<N>::load::__LarderSite", true),
            ("<app::A as app::Tr<_>>::load::__LarderSite", true),
            ("app::Repo<u8>::load::__LarderSite", false),
            ("app::Repo<[u8; 4]>::load::__LarderSite", false),
            ("app::Grid<3>::load::__LarderSite", false),
            ("app::Borrowed<'_>::load::__LarderSite", false),
            ("app::Fp<fn(u8) -> u8>::load::__LarderSite", false),
            ("app::Fp<extern \"C\" fn(u8)>::load::__LarderSite", false),
            ("app::Repo<_>::method::load::__LarderSite", false),
            ("app::under_score::load::__LarderSite", false),
            ("app::_::load::__LarderSite", false),
            ("app::t::{{closure}}::load::__LarderSite", false),
        ] {
            let resolved = resolve(&spec(marker, "load", "load")).unwrap();
            assert_eq!(resolved.generic_impl, generic, "{marker}");
        }
    }

    #[test]
    fn a_generic_impl_without_self_in_the_key_fails_closed() {
        let mut spec = spec("app::Repo<_>::load::__LarderSite", "load", "load");
        spec.names_self = false;
        let err = resolve(&spec).unwrap_err();
        assert!(err.contains("generic impl"), "{err}");
    }

    #[test]
    fn namespaces_hold_no_separator_or_glob_character() {
        assert_eq!(
            namespace("app::Repo<[u8; 4]>::load::__LarderSite", "load", "load"),
            "app.Repo<%5Bu8; 4%5D>.load"
        );
        assert_eq!(
            namespace("app::Chars<':'>::load::__LarderSite", "load", "load"),
            "app.Chars<'%3A'>.load"
        );
        assert_eq!(
            namespace("app::Chars<'.'>::load::__LarderSite", "load", "load"),
            "app.Chars<'%2E'>.load"
        );
    }

    #[test]
    fn anonymous_scopes_add_the_position() {
        assert_eq!(
            namespace(
                "app::t::{{closure}}::load::{{closure}}::__LarderSite",
                "load",
                "load"
            ),
            "app.t.{{closure}}.load@7.5"
        );
        assert_eq!(
            namespace("app::_::load::__LarderSite", "load", "load"),
            "app._.load@7.5"
        );
    }

    #[test]
    fn an_unexpected_marker_fails_closed() {
        assert!(resolve(&spec("app::other::__LarderSite", "load", "load")).is_err());
        assert!(resolve(&spec("app::load::Other", "load", "load")).is_err());
        assert!(resolve(&spec("app::preload::__LarderSite", "load", "load")).is_err());
    }

    #[test]
    fn an_explicit_namespace_is_kept_as_written() {
        let mut spec = spec("app::users::load::__LarderSite", "load", "load");
        spec.namespace = Some("user_data");
        assert_eq!(resolve(&spec).unwrap().namespace(), "user_data");
    }
}
