//! Many sessions: 100 key generations each followed by a signature, and property tests over
//! digests and paths. Every signature is checked by k256 and by recovering the Ethereum address
//! of the key BIP32 names from (r, s, v).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, VerifyingKey};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sha3::Keccak256;
use waas_mpc::{Pairing, Signature};

/// The Ethereum address of a key: the last 20 bytes of Keccak-256 of its uncompressed point.
fn address(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_sec1_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    hash[12..].try_into().unwrap()
}

/// Checks a signature as a verifier that knows only the wallet's xpub would.
fn check(pairing: &Pairing, path: &[u32], digest: &[u8; 32], signature: &Signature) {
    let child = pairing.xpub().derive(path).unwrap();
    let key = VerifyingKey::from_sec1_bytes(&child.public_key).unwrap();
    let k256_signature = k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    key.verify_prehash(digest, &k256_signature).unwrap();
    assert!(k256_signature.normalize_s() == k256_signature, "low-S");

    let ethereum = signature.to_ethereum_bytes();
    let v = ethereum[64];
    assert!(v == 27 || v == 28);
    let recovered = VerifyingKey::recover_from_prehash(
        digest,
        &k256::ecdsa::Signature::from_slice(&ethereum[..64]).unwrap(),
        RecoveryId::from_byte(v - 27).unwrap(),
    )
    .unwrap();
    assert_eq!(address(&recovered), address(&key));
}

/// `count` fresh key generations, each followed by a signature on a varied digest and path.
fn sessions(batch: &str, count: u32) {
    for i in 0..count {
        let name = format!("operations/{batch}-{i}");
        let (device, server) = support::keygen(&name);
        let digest: [u8; 32] = Sha256::digest(name.as_bytes()).into();
        let path = [
            u32::from(digest[0] & 1),
            u32::from_be_bytes([digest[1] & 0x7f, digest[2], digest[3], digest[4]]),
        ];
        let signature = support::sign(&device, &server, &path, digest);
        check(&device, &path, &digest, &signature);
    }
}

// 100 sessions in four tests, so the test runner spreads them over the cores.
#[test]
fn sessions_a() {
    sessions("a", 25);
}
#[test]
fn sessions_b() {
    sessions("b", 25);
}
#[test]
fn sessions_c() {
    sessions("c", 25);
}
#[test]
fn sessions_d() {
    sessions("d", 25);
}

fn shared_pairings() -> &'static (Pairing, Pairing) {
    static PAIRINGS: std::sync::OnceLock<(Pairing, Pairing)> = std::sync::OnceLock::new();
    PAIRINGS.get_or_init(|| support::keygen("operations/property-keygen"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_digest_under_any_non_hardened_path_signs(
        digest in any::<[u8; 32]>(),
        path in prop::collection::vec(0u32..(1 << 31), 0..4),
    ) {
        let (device, server) = shared_pairings();
        let signature = support::sign(device, server, &path, digest);
        check(device, &path, &digest, &signature);
    }
}
