//! Key generation and signing between both parties, natively.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use support::{keygen, sign};
use waas_mpc::Role;

#[test]
fn keygen_then_sign_at_the_root() {
    let (device, server) = keygen("operations/keygen-1");
    assert_eq!(device.role(), Role::Device);
    assert_eq!(server.role(), Role::Server);
    assert_eq!(device.public(), server.public());
    assert_eq!(device.epoch(), 0);

    let digest = [7u8; 32];
    let signature = sign(&device, &server, &[], digest);
    let key = VerifyingKey::from_sec1_bytes(&device.public().root_public_key).unwrap();
    let k256_signature = k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    key.verify_prehash(&digest, &k256_signature).unwrap();
    signature.verify(&key, &digest).unwrap();
    assert!(format!("{device:?}").contains("<redacted>"));
}

#[test]
fn signs_under_a_child_path() {
    let (device, server) = keygen("operations/keygen-2");
    let signature = sign(&device, &server, &[0, 3], [9u8; 32]);
    let root = VerifyingKey::from_sec1_bytes(&device.public().root_public_key).unwrap();
    // Not valid under the root: the child key signed.
    assert!(signature.verify(&root, &[9u8; 32]).is_err());
}
