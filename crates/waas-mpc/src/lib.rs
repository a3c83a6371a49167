//! The protocol core of waas-sdk: two parties, a browser device and a server, each hold half of a
//! secp256k1 key and run key generation, signing, archive, backup and recovery together.
//!
//! The core is sans-I/O: a party is a state machine that takes messages and returns messages or a
//! result ([`Step`]). It has no network, storage or clock, so the same code runs in the browser
//! (wasm) and on the server (native), and tests can drive both parties, drop messages or tamper
//! with them. The two-party ECDSA itself is DKLs23 from the `dkls23-core` crate, hidden behind
//! this crate's own types and wire format ([`Envelope`]).
//!
//! Each protocol has a specification in `docs/protocol/` that names every check and its reason.

mod address;
mod archive;
mod backup;
mod derive;
mod engine;
mod envelope;
mod error;
mod keygen;
mod pairing;
mod pairing_format;
pub mod passcode;
mod recovery;
mod refresh;
mod role;
mod session;
mod sign;
mod state;

pub use address::ethereum_address;
pub use archive::{Archive, ArchiveContext, ExportedKey, open_server_share, seal_server_share};
pub use backup::{
    BackupContext, BackupFacts, BackupRound1, BackupRound2, BackupRound3, BackupString,
    DecryptionShare, Half, PartialUse, backup_key, ciphertext_ephemeral, ciphertexts_hash,
    decrypt_half, encrypt_device_half, encrypt_half, verify_device_half, verify_key_share,
    verify_partial,
};
pub use derive::{DerivationError, ExtendedPrivateKey, ExtendedPublicKey, HARDENED, parse_path};
pub use envelope::{Envelope, MAX_MESSAGE_BYTES, Protocol, WIRE_VERSION};
pub use error::{DecodeError, MpcError};
pub use keygen::Keygen;
pub use pairing::{Pairing, PairingPublic};
pub use recovery::{
    ADD_DEVICE_PURPOSE, DeviceRecovery, RESTORED_EPOCH, RecoveryContext, RecoveryRound1,
    RecoveryRound3, ServerBackup, restore_server, server_refresh,
};
pub use refresh::{EpochSet, Refresh};
pub use role::{Role, RoleError};
pub use session::SessionId;
pub use sign::{Signature, Signing, SigningRequest};
pub use state::Step;
