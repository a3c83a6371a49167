//! The SDK's bindings in Node.js (wasm-bindgen-test).
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

sdk_tests!();
