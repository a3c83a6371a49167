//! Key generation and signing for both parties inside wasm (Node.js), as the browser SDK runs the
//! device's side: the same code, randomness from WebCrypto.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k256::ecdsa::VerifyingKey;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn keygen_and_sign_in_wasm() {
    let (device, server) = support::keygen("operations/wasm-keygen");
    assert_eq!(device.public(), server.public());
    let digest = [42u8; 32];
    let signature = support::sign(&device, &server, &[0, 1], digest);
    assert!(signature.recovery_id <= 1);
    let root = VerifyingKey::from_sec1_bytes(&device.public().root_public_key).unwrap();
    assert!(
        signature.verify(&root, &digest).is_err(),
        "signed by the child, not the root"
    );
}
