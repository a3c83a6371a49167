//! The SDK's bindings in Node.js (wasm-bindgen-test).
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn version_is_the_crate_version() {
    common::version_is_the_crate_version();
}

#[wasm_bindgen_test]
fn names_parse_into_their_parts() {
    common::names_parse_into_their_parts();
}

#[wasm_bindgen_test]
fn bad_names_become_waas_errors_with_a_code() {
    common::bad_names_become_waas_errors_with_a_code();
}
