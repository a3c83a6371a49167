//! The waas-sdk browser SDK: the binding layer between JavaScript and the protocol core.
//!
//! This crate only converts between JS and core types; protocol logic lives in `crates/waas-mpc`
//! and REST types in `crates/waas-api`. One file per domain, each wrapping core types for JS.
//! Every exported function returns `Result<_, SdkError>`, which reaches JS as a thrown `WaasError`
//! with a stable `code`; nothing here panics across the wasm boundary.

mod browser;
mod client;
mod device;
mod error;
mod keystore;
mod names;

use wasm_bindgen::prelude::wasm_bindgen;

pub use client::WaasClient;
pub use device::{WaasDevice, bootstrap_device, get_registration_data, reset_passcode};
pub use error::SdkError;
pub use names::ResourceName;

/// The SDK's version (the crate version it was built from).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
