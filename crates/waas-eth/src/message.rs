//! EIP-191 signed messages, version `0x45` (`personal_sign`).

use crate::keccak256;

/// The digest `personal_sign` signs: Keccak-256 of `"\x19Ethereum Signed Message:\n"`, the
/// message's length in decimal, and the message. The prefix makes a signed message unusable as
/// a transaction or as typed data.
pub fn personal_message_digest(message: &[u8]) -> [u8; 32] {
    let mut prefixed = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    prefixed.extend_from_slice(message);
    keccak256(&prefixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_has_the_well_known_digest() {
        // The digest every Ethereum library gives for "hello world" (e.g. viem's hashMessage).
        assert_eq!(
            hex::encode(personal_message_digest(b"hello world")),
            "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"
        );
    }
}
