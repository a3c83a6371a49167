//! Checks shared by the Node and the Chromium wasm-bindgen-test suites: the same SDK calls must
//! behave the same in both. Each suite expands [`sdk_tests!`] into its own test functions.

/// The `#[wasm_bindgen_test]` functions every environment runs.
macro_rules! sdk_tests {
    () => {
        use waas_sdk::{ResourceName, SdkError};
        use wasm_bindgen::{JsCast, JsValue};
        use wasm_bindgen_test::wasm_bindgen_test;

        #[wasm_bindgen_test]
        fn version_is_the_crate_version() {
            assert_eq!(waas_sdk::version(), env!("CARGO_PKG_VERSION"));
        }

        #[wasm_bindgen_test]
        fn names_parse_into_their_parts() {
            let name = ResourceName::parse("pools/default/deviceGroups/g-1/mpcKeys/k").unwrap();
            assert_eq!(name.kind(), "mpcKey");
            assert_eq!(name.id(), "k");
            assert_eq!(name.pool().as_deref(), Some("default"));
            assert_eq!(name.device_group().as_deref(), Some("g-1"));
            assert_eq!(
                name.to_js_string(),
                "pools/default/deviceGroups/g-1/mpcKeys/k"
            );
        }

        /// A bad name reaches JS as a `WaasError` (an `Error`) with code `INVALID_NAME`.
        #[wasm_bindgen_test]
        fn bad_names_become_waas_errors_with_a_code() {
            let error: SdkError = ResourceName::parse("pools/Not_Valid").unwrap_err();
            let thrown = JsValue::from(error);
            let error = thrown.dyn_ref::<js_sys::Error>().expect("a JS Error");
            assert_eq!(String::from(error.name()), "WaasError");
            let code = js_sys::Reflect::get(&thrown, &JsValue::from_str("code")).unwrap();
            assert_eq!(code.as_string().as_deref(), Some("INVALID_NAME"));
            let message = String::from(error.message());
            assert!(message.contains("Not_Valid"), "{message}");
        }
    };
}
