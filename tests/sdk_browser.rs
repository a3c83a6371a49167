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

/// The device key store in IndexedDB, with WebCrypto keys: each test uses its own database.
mod key_store {
    use js_sys::Reflect;
    use waas_sdk::WaasDevice;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen(inline_js = r#"
        function open(name) {
          return new Promise((resolve, reject) => {
            const request = indexedDB.open(name);
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
        }
        function done(request) {
          return new Promise((resolve, reject) => {
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
        }
        export async function readMeta(name) {
          const db = await open(name);
          const value = await done(db.transaction('meta').objectStore('meta').get('device'));
          db.close();
          return JSON.stringify(value, (_, v) => (v instanceof Uint8Array ? Array.from(v) : v));
        }
        export async function flipWrappedByte(name) {
          const db = await open(name);
          const store = db.transaction('meta', 'readwrite').objectStore('meta');
          const device = await done(store.get('device'));
          device.passcode.wrapped[5] ^= 1;
          await done(store.put(device, 'device'));
          db.close();
        }
    "#)]
    extern "C" {
        #[wasm_bindgen(js_name = readMeta)]
        async fn read_meta(name: &str) -> JsValue;
        #[wasm_bindgen(js_name = flipWrappedByte)]
        async fn flip_wrapped_byte(name: &str);
    }

    fn fresh_name() -> String {
        format!("waas-test-{}", js_sys::Math::random().to_bits())
    }

    async fn device(name: &str) -> WaasDevice {
        WaasDevice::open(Some(name.to_owned()), None).await.unwrap()
    }

    fn code(error: waas_sdk::SdkError) -> String {
        let value = JsValue::from(error);
        assert!(value.dyn_ref::<js_sys::Error>().is_some(), "a JS Error");
        Reflect::get(&value, &"code".into())
            .unwrap()
            .as_string()
            .unwrap()
    }

    #[wasm_bindgen_test]
    async fn bootstrap_once_then_a_no_op() {
        let name = fresh_name();
        let device = device(&name).await;
        assert!(!device.is_bootstrapped().await.unwrap());
        assert!(device.bootstrap("123456".into()).await.unwrap());
        assert!(device.is_bootstrapped().await.unwrap());
        let data = device.registration_data().await.unwrap();
        let parsed = waas_api::RegistrationData::decode(&data).unwrap();
        assert_eq!(parsed.auth_public_key[0], 4, "uncompressed P-256");

        // Again, in another handle on the same store: nothing changes.
        let meta = read_meta(&name).await.as_string().unwrap();
        let again = self::device(&name).await;
        assert!(!again.bootstrap("654321".into()).await.unwrap());
        assert_eq!(read_meta(&name).await.as_string().unwrap(), meta);
        assert_eq!(again.registration_data().await.unwrap(), data);
        again.check_passcode("123456".into()).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn use_before_bootstrap_is_not_bootstrapped() {
        let device = device(&fresh_name()).await;
        assert_eq!(
            code(device.registration_data().await.unwrap_err()),
            "NOT_BOOTSTRAPPED"
        );
        assert_eq!(
            code(device.check_passcode("123456".into()).await.unwrap_err()),
            "NOT_BOOTSTRAPPED"
        );
    }

    #[wasm_bindgen_test]
    async fn a_weak_passcode_is_refused_and_nothing_is_stored() {
        let device = device(&fresh_name()).await;
        for weak in ["12345", "12345a", ""] {
            assert_eq!(
                code(device.bootstrap(weak.into()).await.unwrap_err()),
                "INVALID_ARGUMENT"
            );
        }
        assert!(!device.is_bootstrapped().await.unwrap());
    }

    #[wasm_bindgen_test]
    async fn a_wrong_passcode_changes_nothing() {
        let name = fresh_name();
        let device = device(&name).await;
        device.bootstrap("123456".into()).await.unwrap();
        let meta = read_meta(&name).await.as_string().unwrap();
        assert_eq!(
            code(device.check_passcode("123457".into()).await.unwrap_err()),
            "WRONG_PASSCODE"
        );
        assert_eq!(
            code(
                device
                    .reset_passcode("123457".into(), "999999".into())
                    .await
                    .unwrap_err()
            ),
            "WRONG_PASSCODE"
        );
        assert_eq!(read_meta(&name).await.as_string().unwrap(), meta);
        device.check_passcode("123456".into()).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn reset_passcode_rewraps() {
        let name = fresh_name();
        let device = device(&name).await;
        device.bootstrap("123456".into()).await.unwrap();
        let data = device.registration_data().await.unwrap();
        device
            .reset_passcode("123456".into(), "24681357".into())
            .await
            .unwrap();
        assert_eq!(
            code(device.check_passcode("123456".into()).await.unwrap_err()),
            "WRONG_PASSCODE"
        );
        device.check_passcode("24681357".into()).await.unwrap();
        assert_eq!(device.registration_data().await.unwrap(), data, "same keys");
    }

    #[wasm_bindgen_test]
    async fn a_tampered_store_is_corrupt_not_a_wrong_passcode() {
        let name = fresh_name();
        let device = device(&name).await;
        device.bootstrap("123456".into()).await.unwrap();
        flip_wrapped_byte(&name).await;
        let meta = read_meta(&name).await.as_string().unwrap();
        assert_eq!(
            code(device.check_passcode("123456".into()).await.unwrap_err()),
            "STORAGE_CORRUPT"
        );
        assert_eq!(
            code(
                device
                    .reset_passcode("123456".into(), "999999".into())
                    .await
                    .unwrap_err()
            ),
            "STORAGE_CORRUPT"
        );
        assert_eq!(
            read_meta(&name).await.as_string().unwrap(),
            meta,
            "nothing written"
        );
    }
}
