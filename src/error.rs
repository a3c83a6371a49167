//! SDK errors and their JS form, the `WaasError` class of `js/waas-error.js`.

use thiserror::Error;
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

/// Everything an SDK call can fail with. Each variant has a stable [`code`](SdkError::code) that JS
/// code branches on; the message is for people.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A string that should be a resource name is not one.
    #[error("invalid resource name: {0}")]
    InvalidName(#[from] waas_api::NameError),
}

impl SdkError {
    /// The stable code, the `code` property of the thrown `WaasError`. Codes are never reused or
    /// renamed; `pkg/index.d.ts` lists them as a union type.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "INVALID_NAME",
        }
    }
}

#[wasm_bindgen(module = "/js/waas-error.js")]
extern "C" {
    /// The JS error class every SDK failure is thrown as.
    #[wasm_bindgen(js_name = WaasError)]
    pub type JsWaasError;

    #[wasm_bindgen(constructor, js_class = WaasError)]
    fn new(code: &str, message: &str) -> JsWaasError;
}

impl From<SdkError> for JsValue {
    fn from(error: SdkError) -> JsValue {
        JsWaasError::new(error.code(), &error.to_string()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let error = SdkError::from(waas_api::NameError::UnknownKind);
        assert_eq!(error.code(), "INVALID_NAME");
        assert!(error.to_string().starts_with("invalid resource name: "));
    }
}
