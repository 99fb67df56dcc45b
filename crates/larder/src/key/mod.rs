//! Keys: the physical key scheme, argument digests and safe patterns.
//!
//! A **logical key** is what callers write — `product:1`, `user:123:profile`
//! — the same shapes as the Django original. The **physical key** stored in Redis is
//! `{prefix}:{global version}:{logical key}`, so changing the global version
//! makes every older entry unreachable without touching it.
//!
//! Function results are keyed `{namespace}:{digest}` where the digest covers
//! every argument through an unambiguous, length-prefixed encoding:
//!
//! ```
//! use larder::key::ArgsDigest;
//!
//! let a = ArgsDigest::new().arg(&"a:b")?.arg(&"c")?.finish();
//! let b = ArgsDigest::new().arg(&"a")?.arg(&"b:c")?.finish();
//! // The length follows each argument: ("ab") and ("a", "b") differ too.
//! assert_ne!(ArgsDigest::new().arg(&"ab")?.finish(), ArgsDigest::new().arg(&"a")?.arg(&"b")?.finish());
//! assert_ne!(a, b);
//! assert_eq!(a.len(), 32);
//! # Ok::<(), larder::Error>(())
//! ```
//!
//! User input must never reach a pattern unescaped; [`escape_glob`] makes an
//! id match only itself:
//!
//! ```
//! use larder::key::escape_glob;
//!
//! let user_id = "a*"; // from a request
//! let pattern = format!("user:{}:*", escape_glob(user_id));
//! assert_eq!(pattern, r"user:a\*:*");
//! ```

mod digest;
mod glob;
mod scheme;

/// Escapes a value the way a `#[cached(key = "…")]` template writes it
/// (`%` `:` `*` `?` `[` `]` `\` and control bytes as `%XX`), so that a
/// pattern built by hand matches the keys the template made:
///
/// ```
/// use larder::key::{escape_glob, escape_segment};
///
/// let tenant = "acme:eu"; // as a template writes it: `acme%3Aeu`
/// let pattern = format!("invoice:{}:*", escape_glob(&escape_segment(tenant)));
/// assert_eq!(pattern, "invoice:acme%3Aeu:*");
/// ```
pub use crate::__private::escape_segment;
pub use digest::ArgsDigest;
pub use glob::escape_glob;
pub(crate) use glob::glob_match;
pub(crate) use scheme::{KeyScheme, namespace_of, namespace_of_pattern};
