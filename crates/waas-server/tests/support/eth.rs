//! Ethereum addresses, computed by the test device on its own, to check the server's.

use k256::ecdsa::{RecoveryId, VerifyingKey};
use sha3::{Digest, Keccak256};
use waas_api::resources::SignedPayload;
use waas_mpc::Pairing;

/// The address of a key: the last 20 bytes of Keccak-256 of its uncompressed point (no 0x04).
pub fn address(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_sec1_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    hash[12..].try_into().unwrap()
}

/// EIP-55: hex digit i is upper case when nibble i of Keccak-256(lowercase hex) is 8 or more.
pub fn eip55(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = Keccak256::digest(lower.as_bytes());
    let checksummed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    format!("0x{checksummed}")
}

/// The compressed public key at `path` below the pairing's root, from the device's own xpub.
pub fn public_key_at(pairing: &Pairing, path: &[u32]) -> [u8; 33] {
    pairing.xpub().derive(path).unwrap().public_key
}

/// The EIP-55 address at `path` below the pairing's root.
pub fn address_at(pairing: &Pairing, path: &[u32]) -> String {
    let key = VerifyingKey::from_sec1_bytes(&public_key_at(pairing, path)).unwrap();
    eip55(&address(&key))
}

/// 32 bytes from `0x`-prefixed hex.
pub fn hex32(text: &str) -> [u8; 32] {
    let digits = text
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("{text:?} has no 0x"));
    hex::decode(digits).unwrap().try_into().unwrap()
}

/// `0x` + lowercase hex.
pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Recovers the signer's address from `digest` and the signature as the API returns it, checking
/// on the way that its fields agree with each other (r ‖ s ‖ v = `signature`, v is 27 or 28, low-S).
pub fn recover(digest: &[u8; 32], signed: &SignedPayload) -> String {
    let (r, s) = (hex32(&signed.r), hex32(&signed.s));
    assert!(signed.v == 27 || signed.v == 28, "v = {}", signed.v);
    let mut joined = [r.as_slice(), s.as_slice(), &[signed.v]].concat();
    assert_eq!(hex0x(&joined), signed.signature.to_lowercase(), "r ‖ s ‖ v");
    joined.truncate(64);
    let signature = k256::ecdsa::Signature::from_slice(&joined).unwrap();
    assert_eq!(signature.normalize_s(), signature, "s is not low-S");
    let key = VerifyingKey::recover_from_prehash(
        digest,
        &signature,
        RecoveryId::from_byte(signed.v - 27).unwrap(),
    )
    .unwrap();
    eip55(&address(&key))
}

/// Asserts that `signed` is a signature of `digest` by the key whose address is `expected`
/// (compared case-insensitively; EIP-55 is checked where addresses are shown).
pub fn assert_signed_by(digest: &[u8; 32], signed: &SignedPayload, expected: &str) {
    let recovered = recover(digest, signed);
    assert!(
        recovered.eq_ignore_ascii_case(expected),
        "the signature recovers {recovered}, not {expected}"
    );
}
