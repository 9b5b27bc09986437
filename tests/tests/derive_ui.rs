//! `#[derive(Model)]` at compile time: models that must build (`tests/ui/pass/`) and
//! mistakes that must be rejected with an error at the token at fault (`tests/ui/*.rs`,
//! each beside the `.stderr` it must produce). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p chakra-tests --test derive_ui`, then read them: the
//! spans are what is under test.

#[test]
fn derive_model_accepts_valid_models_and_points_at_mistakes() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
