//! The Ethereum payloads a waas-sdk key signs, and the 32-byte digest of each.
//!
//! The device and the server both compute a payload's digest from the payload itself, with the
//! same code: the device signs only the digest it computed, and the server refuses a request
//! whose digest is not the payload's, so both know what the signature is for (docs/protocol/
//! ethereum.md). Plain data and hashing, no I/O:
//! - [`personal_message_digest`]: EIP-191 `personal_sign` (version `0x45`);
//! - [`typed_data_digest`] (feature `eip712`): EIP-712 typed data from its `eth_signTypedData_v4`
//!   JSON;
//! - [`Transaction`]: EIP-1559 and legacy (EIP-155) transactions, their signing hash and their
//!   signed RLP encoding;
//! - [`TypedPayload`]: any of these as the REST API carries them.

mod error;
mod message;
mod payload;
mod quantity;
mod transaction;
#[cfg(feature = "eip712")]
mod typed_data;

pub use error::EthError;
pub use message::personal_message_digest;
pub use payload::TypedPayload;
pub use quantity::{AccessListItem, Address, Bytes, Quantity, StorageKey};
pub use transaction::{
    Eip1559Transaction, LegacyTransaction, RecoverableSignature, SignedTransaction, Transaction,
};
#[cfg(feature = "eip712")]
pub use typed_data::typed_data_digest;

/// Keccak-256, Ethereum's hash.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    use sha3::Digest as _;
    sha3::Keccak256::digest(bytes).into()
}
