//! The protocol core of waas-sdk: two parties, a browser device and a server, each hold half of a
//! secp256k1 key and run key generation, signing, archive, backup and recovery together.
//!
//! The core is sans-I/O: a party is a state machine that takes messages and returns messages or a
//! result. It has no network, storage or clock, so the same code runs in the browser (wasm) and on
//! the server (native), and tests can drive both parties, drop messages or tamper with them.
//!
//! The protocols themselves arrive with their specifications in `docs/protocol/`; this crate starts
//! with the vocabulary every one of them shares.

mod role;

pub use role::{Role, RoleError};
