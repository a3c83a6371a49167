//! Ethereum addresses of keys: Keccak-256 of the uncompressed key, last 20 bytes, EIP-55 case.
//! The device and the server each compute them from their own copy of the public key, so a
//! wallet never shows an address it was told.

use k256::elliptic_curve::sec1::ToSec1Point;
use sha3::{Digest, Keccak256};

use crate::derive::{DerivationError, decode_point};

/// The EIP-55 checksummed address (`0x…`) of a compressed secp256k1 public key.
pub fn ethereum_address(public_key: &[u8; 33]) -> Result<String, DerivationError> {
    let point = decode_point(public_key)?;
    let uncompressed = point.to_sec1_point(false);
    let hash = Keccak256::digest(&uncompressed.as_bytes()[1..]);
    Ok(checksummed(&hash[12..]))
}

/// EIP-55: a hex letter is upper case where the matching nibble of Keccak-256(lower-case hex) ≥ 8.
fn checksummed(address: &[u8]) -> String {
    let lower: String = address.iter().map(|byte| format!("{byte:02x}")).collect();
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_examples() {
        // The test vectors of EIP-55 (all-caps, all-lower and mixed cases).
        for expected in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        ] {
            let bytes: Vec<u8> = (0..20)
                .map(|i| u8::from_str_radix(&expected[2 + 2 * i..4 + 2 * i], 16).unwrap())
                .collect();
            assert_eq!(checksummed(&bytes), expected);
        }
    }

    #[test]
    fn the_address_of_the_generator() {
        // Private key 1: its address is well known.
        let generator = k256::ProjectivePoint::GENERATOR
            .to_affine()
            .to_sec1_point(true);
        let key: [u8; 33] = generator.as_bytes().try_into().unwrap();
        assert_eq!(
            ethereum_address(&key).unwrap(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }
}
