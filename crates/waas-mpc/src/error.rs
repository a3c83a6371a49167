//! Errors of the protocol core.
//!
//! The split that matters is [`MpcError::is_terminal`]: a terminal error means the counterparty
//! provably cheated in a way that leaks secret state if the pairing is used again, so the pairing
//! must never sign again. Every other error only ends the current session (or only rejects one
//! message) and leaves the pairing as it was, so a network attacker who garbles, replays or
//! reorders messages cannot destroy a wallet.

use thiserror::Error;

use crate::Role;

/// Why bytes are not a well-formed message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The message's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Shorter than its header or than what the header promises.
    #[error("message is truncated")]
    Truncated,
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// A protocol byte naming no protocol.
    #[error("unknown protocol {0}")]
    UnknownProtocol(u8),
    /// A role byte naming neither party.
    #[error("unknown sender role {0}")]
    UnknownRole(u8),
    /// The payload does not decode as the round's message.
    #[error("payload does not decode: {0}")]
    Payload(String),
    /// Bytes left over after the payload.
    #[error("trailing bytes after the payload")]
    TrailingBytes,
    /// A point is the identity (or otherwise unusable) where a real point is required.
    #[error("invalid point in {0}")]
    InvalidPoint(&'static str),
    /// A field names the wrong party as its sender or receiver.
    #[error("message field {0} names the wrong party")]
    WrongParty(&'static str),
}

/// Everything the protocol core can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MpcError {
    /// The bytes are not a well-formed message. The session goes on.
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    /// The message belongs to another session (a replay from elsewhere). The session goes on.
    #[error("message belongs to another session")]
    WrongSession,
    /// The message is for another protocol. The session goes on.
    #[error("message is for another protocol")]
    WrongProtocol,
    /// The message claims the wrong sender (our own role, or a reflection). The session goes on.
    #[error("message claims to come from the {got:?}, expected the {expected:?}")]
    WrongSender {
        /// The peer's role.
        expected: Role,
        /// The role the message claims.
        got: Role,
    },
    /// The message is for another round (a duplicate or reordered message). The session goes on.
    #[error("expected a round {expected} message, got round {got}")]
    WrongRound {
        /// The round this party waits for.
        expected: u8,
        /// The round of the message.
        got: u8,
    },
    /// The session has finished or failed; it takes no more messages.
    #[error("the session is over")]
    SessionOver,
    /// The counterparty's message failed a check (a proof, a commitment). This session is over;
    /// the pairing, if any, is untouched and a new session may be tried.
    #[error("the counterparty's message failed a check: {0}")]
    Rejected(String),
    /// The counterparty cheated in the multiplication (OT) consistency checks, or the final
    /// signature did not verify. Terminal: the pairing must never be used again, because reusing
    /// its OT state with a cheating peer leaks the key (the DKLs23 selective-abort attack).
    #[error("the counterparty cheated ({0}); this pairing must not be used again")]
    CounterpartyCheated(String),
    /// Stored state does not decode, or is for another version or role.
    #[error("stored state is invalid: {0}")]
    InvalidState(String),
    /// The OS (or WebCrypto) gave no randomness.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// A derivation path or BIP32 step failed.
    #[error("key derivation failed: {0}")]
    Derivation(#[from] crate::derive::DerivationError),
}

impl MpcError {
    /// Whether the pairing must be retired: see [`MpcError::CounterpartyCheated`].
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::CounterpartyCheated(_))
    }
}
