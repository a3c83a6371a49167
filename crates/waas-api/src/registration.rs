//! The registration data a device hands to RegisterDevice: its public keys and proofs that it
//! holds their private keys.
//!
//! Binary, versioned, sent as unpadded base64url:
//!
//! | bytes | field |
//! |-------|-------|
//! | 1     | version, [`RegistrationData::VERSION`] |
//! | 65    | the device's auth key: P-256, uncompressed SEC1 (it signs every request, ES256) |
//! | 33    | the device's archive key: secp256k1, compressed SEC1 (the server encrypts archives to it) |
//! | 64    | ES256 signature (r ‖ s) of [`RegistrationData::signed_bytes`] by the auth key |
//! | 64    | ECDSA secp256k1 signature (r ‖ s, SHA-256) of the same bytes by the archive key |
//!
//! This crate only parses the layout; the server checks the keys and both signatures.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thiserror::Error;

/// Why registration data could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Not base64url.
    #[error("registration data is not unpadded base64url")]
    Encoding,
    /// The wrong number of bytes.
    #[error("registration data has {found} bytes, expected {expected}")]
    Length {
        /// What was found.
        found: usize,
        /// What this version needs.
        expected: usize,
    },
    /// A version this build does not read.
    #[error("registration data version {0} is not supported")]
    Version(u8),
}

/// A device's public keys and its proofs of possession.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationData {
    /// The P-256 auth public key, uncompressed SEC1 (`04 ‖ x ‖ y`).
    pub auth_public_key: [u8; 65],
    /// The secp256k1 archive public key, compressed SEC1.
    pub archive_public_key: [u8; 33],
    /// ES256 signature (r ‖ s) of [`Self::signed_bytes`] by the auth key.
    pub auth_proof: [u8; 64],
    /// ECDSA secp256k1 signature (r ‖ s, SHA-256 prehash) of [`Self::signed_bytes`] by the archive key.
    pub archive_proof: [u8; 64],
}

impl RegistrationData {
    /// The format version written.
    pub const VERSION: u8 = 1;
    /// The domain label at the start of the signed bytes.
    pub const PROOF_LABEL: &'static [u8] = b"waas-sdk device registration v1\0";
    const LEN: usize = 1 + 65 + 33 + 64 + 64;

    /// What both proofs sign: the label, then both public keys.
    pub fn signed_bytes(auth_public_key: &[u8; 65], archive_public_key: &[u8; 33]) -> Vec<u8> {
        [
            Self::PROOF_LABEL,
            auth_public_key.as_slice(),
            archive_public_key.as_slice(),
        ]
        .concat()
    }

    /// The unpadded base64url form.
    pub fn encode(&self) -> String {
        let bytes = [
            [Self::VERSION].as_slice(),
            &self.auth_public_key,
            &self.archive_public_key,
            &self.auth_proof,
            &self.archive_proof,
        ]
        .concat();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses the unpadded base64url form. Only the layout is checked here.
    pub fn decode(text: &str) -> Result<Self, RegistrationError> {
        // Bound the work before decoding: the encoded form of LEN bytes has a known length.
        if text.len() > Self::LEN.div_ceil(3) * 4 {
            return Err(RegistrationError::Length {
                found: text.len() * 3 / 4,
                expected: Self::LEN,
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| RegistrationError::Encoding)?;
        let (&version, rest) = bytes.split_first().ok_or(RegistrationError::Length {
            found: 0,
            expected: Self::LEN,
        })?;
        if version != Self::VERSION {
            return Err(RegistrationError::Version(version));
        }
        let length_error = RegistrationError::Length {
            found: bytes.len(),
            expected: Self::LEN,
        };
        let (auth_public_key, rest) = rest.split_first_chunk().ok_or(length_error.clone())?;
        let (archive_public_key, rest) = rest.split_first_chunk().ok_or(length_error.clone())?;
        let (auth_proof, rest) = rest.split_first_chunk().ok_or(length_error.clone())?;
        let (archive_proof, rest) = rest.split_first_chunk().ok_or(length_error.clone())?;
        if !rest.is_empty() {
            return Err(length_error);
        }
        Ok(Self {
            auth_public_key: *auth_public_key,
            archive_public_key: *archive_public_key,
            auth_proof: *auth_proof,
            archive_proof: *archive_proof,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegistrationData {
        RegistrationData {
            auth_public_key: [4; 65],
            archive_public_key: [2; 33],
            auth_proof: [7; 64],
            archive_proof: [9; 64],
        }
    }

    #[test]
    fn round_trips() {
        let text = sample().encode();
        assert_eq!(RegistrationData::decode(&text).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_encodings_lengths_and_versions() {
        assert_eq!(
            RegistrationData::decode("not base64!"),
            Err(RegistrationError::Encoding)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(sample().encode()).unwrap();
        bytes[0] = 2;
        assert_eq!(
            RegistrationData::decode(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(RegistrationError::Version(2))
        );
        bytes[0] = 1;
        bytes.pop();
        assert!(matches!(
            RegistrationData::decode(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(RegistrationError::Length { .. })
        ));
        assert!(matches!(
            RegistrationData::decode(&"A".repeat(10_000)),
            Err(RegistrationError::Length { .. })
        ));
        assert!(matches!(
            RegistrationData::decode(""),
            Err(RegistrationError::Length { .. })
        ));
    }
}
