//! The SDK's bindings in headless Chromium (wasm-bindgen-test).
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

sdk_tests!();

/// The page is what wallets run in: a secure context with WebCrypto, which key storage needs.
#[wasm_bindgen_test]
fn runs_in_a_secure_browser_context() {
    let global = js_sys::global();
    let is_secure = js_sys::Reflect::get(&global, &"isSecureContext".into()).unwrap();
    assert_eq!(is_secure.as_bool(), Some(true));
    let crypto = js_sys::Reflect::get(&global, &"crypto".into()).unwrap();
    let subtle = js_sys::Reflect::get(&crypto, &"subtle".into()).unwrap();
    assert!(subtle.is_object());
}
