//! The browser APIs the SDK uses, wrapped thinly for Rust: IndexedDB ([`idb`]) and WebCrypto
//! ([`subtle`]). They work in pages and in workers (the global scope is looked up, not assumed
//! to be `window`).

pub(crate) mod idb;
pub(crate) mod subtle;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::SdkError;

/// A property of the global object (`window` or `self`), if it is an object of type `T`.
pub(crate) fn global<T: JsCast>(name: &str) -> Result<T, SdkError> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))
        .ok()
        .and_then(|value| value.dyn_into::<T>().ok())
        .ok_or_else(|| SdkError::Unsupported(format!("this environment has no {name}")))
}

/// Calls `object.method(...args)` and awaits the promise it returns.
pub(crate) async fn call_async(
    object: &JsValue,
    method: &str,
    args: &[&JsValue],
) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &JsValue::from_str(method))?.dyn_into()?;
    let array = args.iter().copied().collect::<js_sys::Array>();
    let promise: Promise = function.apply(object, &array)?.dyn_into()?;
    wasm_bindgen_futures::JsFuture::from(promise).await
}

/// The message of a JS exception, for error messages (never holds secrets: browser API errors).
pub(crate) fn describe(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| {
            format!(
                "{}: {}",
                String::from(error.name()),
                String::from(error.message())
            )
        })
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}
