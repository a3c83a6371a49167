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
    // Not valid under the root: the child key that BIP32 names for 0/3 signed.
    assert!(signature.verify(&root, &[9u8; 32]).is_err());
    let child = device.xpub().derive(&[0, 3]).unwrap();
    let child_key = VerifyingKey::from_sec1_bytes(&child.public_key).unwrap();
    signature.verify(&child_key, &[9u8; 32]).unwrap();
}

#[test]
fn stored_pairings_round_trip_and_still_sign() {
    let (device, server) = keygen("operations/keygen-stored");
    let device_bytes = device.to_bytes().unwrap();
    let server_bytes = server.to_bytes().unwrap();
    let device2 = waas_mpc::Pairing::from_bytes(&device_bytes).unwrap();
    let server2 = waas_mpc::Pairing::from_bytes(&server_bytes).unwrap();
    assert_eq!(*device2.to_bytes().unwrap(), *device_bytes);
    assert_eq!(*server2.to_bytes().unwrap(), *server_bytes);
    assert_eq!(device2.public(), device.public());
    assert_eq!(server2.role(), Role::Server);
    // Restored pairings sign, and under the same child key as the originals.
    let child_key = |signature: waas_mpc::Signature| {
        let signature_k256 =
            k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
        let id = k256::ecdsa::RecoveryId::from_byte(signature.recovery_id).unwrap();
        VerifyingKey::recover_from_prehash(&[5u8; 32], &signature_k256, id).unwrap()
    };
    let restored = child_key(sign(&device2, &server2, &[0, 1], [5u8; 32]));
    assert_eq!(
        restored,
        child_key(sign(&device, &server, &[0, 1], [5u8; 32]))
    );
}

#[test]
fn stored_pairings_refuse_any_corruption() {
    let (device, _) = keygen("operations/keygen-checked");
    let bytes = device.to_bytes().unwrap();
    let read = |bytes: &[u8]| {
        waas_mpc::Pairing::from_bytes(bytes)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // One flipped bit anywhere (the share, the public facts, the OT seeds deep inside) is refused
    // before anything is used; deeper structural checks are unit tests of the format.
    for at in [
        0,
        1,
        9,
        60,
        200,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 1,
    ] {
        let mut corrupted = bytes.to_vec();
        corrupted[at] ^= 0x10;
        assert!(read(&corrupted).contains("checksum mismatch"), "byte {at}");
    }
    assert!(read(&bytes[..bytes.len() - 1]).contains("checksum mismatch"));
    assert!(read(&[&bytes[..], &[0]].concat()).contains("checksum mismatch"));
    assert!(read(&bytes[..10]).contains("truncated"));
}
