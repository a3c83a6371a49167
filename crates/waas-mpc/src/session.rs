//! Session identifiers and transcript hashes: SHA-256 over domain-separated, length-prefixed parts,
//! so no two different lists of parts (or labels) ever hash the same input.

use sha2::{Digest, Sha256};

/// The domain of every hash this crate computes; a new wire version gets a new domain.
const DOMAIN: &[u8] = b"waas-mpc/v1";

/// A 32-byte session identifier. Every message names the session it belongs to, and a party
/// rejects messages of any other session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Derives an id from a label (what the session is for) and its parts, e.g.
    /// `SessionId::derive("keygen", &[operation_name.as_bytes()])`.
    pub fn derive(label: &str, parts: &[&[u8]]) -> Self {
        Self(hash_parts(label, parts))
    }

    /// An id received or stored as bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of the domain, the label and each part, each prefixed with its length.
pub(crate) fn hash_parts(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [DOMAIN, label.as_bytes()].iter().chain(parts) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unambiguous() {
        let a = SessionId::derive("keygen", &[b"ab", b"c"]);
        let b = SessionId::derive("keygen", &[b"a", b"bc"]);
        let c = SessionId::derive("sign", &[b"ab", b"c"]);
        let d = SessionId::derive("keygenab", &[b"c"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, SessionId::derive("keygen", &[b"ab", b"c"]));
    }
}
