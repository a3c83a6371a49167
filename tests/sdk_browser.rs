//! The SDK's bindings in headless Chromium (wasm-bindgen-test).
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

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

/// The page is what wallets run in: a secure context with WebCrypto, which later key storage needs.
#[wasm_bindgen_test]
fn runs_in_a_secure_browser_context() {
    let global = js_sys::global();
    let is_secure = js_sys::Reflect::get(&global, &"isSecureContext".into()).unwrap();
    assert_eq!(is_secure.as_bool(), Some(true));
    let crypto = js_sys::Reflect::get(&global, &"crypto".into()).unwrap();
    let subtle = js_sys::Reflect::get(&crypto, &"subtle".into()).unwrap();
    assert!(subtle.is_object());
}
