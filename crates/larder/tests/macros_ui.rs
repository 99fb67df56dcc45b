//! `#[larder::cached]` and `#[derive(larder::CachedModel)]` at compile
//! time: what must compile (and run), and what must be refused with an
//! error pointing at the user's code. The derive's cases are the
//! `model_*.rs` files.

#[test]
fn cached_attribute_ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
