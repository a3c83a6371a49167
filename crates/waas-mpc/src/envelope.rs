//! The wire format of every protocol message: a fixed header, then a postcard payload.
//!
//! ```text
//! version u8 | protocol u8 | session [u8; 32] | round u8 | sender u8 | payload ...
//! ```
//!
//! The header binds the payload to one session, one round and one sender; [`Envelope::open`]
//! checks all three against what the receiving party expects before the payload is touched.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DecodeError, MpcError};
use crate::{Role, SessionId};

/// The wire version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

/// The largest message accepted. Key generation's biggest message (the OT setup) is about 150 KB
/// and signing's about 81 KB; anything much larger is an attack on memory, not a message.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;

const HEADER_LEN: usize = 1 + 1 + 32 + 1 + 1;

/// The protocols that exchange messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    /// Two-party key generation.
    Keygen = 1,
    /// Two-party signing.
    Sign = 2,
    /// Two-party refresh of a pairing's shares and OT state.
    Refresh = 3,
}

impl Protocol {
    fn from_wire(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            1 => Ok(Self::Keygen),
            2 => Ok(Self::Sign),
            3 => Ok(Self::Refresh),
            other => Err(DecodeError::UnknownProtocol(other)),
        }
    }
}

/// A decoded message whose payload has not been looked at yet. `Debug` shows the payload's length
/// only: payloads carry polynomial points and seeds that must not reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Which protocol the message is for.
    pub protocol: Protocol,
    /// The session it belongs to.
    pub session: SessionId,
    /// Its round, counted from 1 across both parties' messages.
    pub round: u8,
    /// Who sent it.
    pub sender: Role,
    /// The round's message, postcard-encoded.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("protocol", &self.protocol)
            .field("session", &self.session)
            .field("round", &self.round)
            .field("sender", &self.sender)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

impl Envelope {
    /// Seals `message` for the wire.
    pub(crate) fn seal<T: Serialize>(
        protocol: Protocol,
        session: SessionId,
        round: u8,
        sender: Role,
        message: &T,
    ) -> Result<Vec<u8>, MpcError> {
        let payload = crate::state::to_exact_vec(message)?;
        Ok(Self {
            protocol,
            session,
            round,
            sender,
            payload,
        }
        .encode())
    }

    /// The envelope's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.payload.len());
        bytes.push(WIRE_VERSION);
        bytes.push(self.protocol as u8);
        bytes.extend_from_slice(self.session.as_bytes());
        bytes.push(self.round);
        bytes.push(self.sender.to_wire());
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    /// Parses the header; the payload is kept as bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let (header, payload) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or(DecodeError::Truncated)?;
        let [version, protocol, rest @ ..] = header else {
            return Err(DecodeError::Truncated);
        };
        if *version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(*version));
        }
        let protocol = Protocol::from_wire(*protocol)?;
        let (session, [round, sender]) = rest.split_at(32) else {
            return Err(DecodeError::Truncated);
        };
        let session: [u8; 32] = session.try_into().map_err(|_| DecodeError::Truncated)?;
        let sender = Role::from_wire(*sender).map_err(|error| DecodeError::UnknownRole(error.0))?;
        Ok(Self {
            protocol,
            session: SessionId::from_bytes(session),
            round: *round,
            sender,
            payload: payload.to_vec(),
        })
    }

    /// Decodes `bytes` as the message `round` of `protocol` in `session` from `sender`, checking
    /// the header before the payload, and the payload to its last byte.
    pub(crate) fn open<T: DeserializeOwned>(
        bytes: &[u8],
        protocol: Protocol,
        session: SessionId,
        round: u8,
        sender: Role,
    ) -> Result<T, MpcError> {
        let envelope = Self::decode(bytes)?;
        if envelope.protocol != protocol {
            return Err(MpcError::WrongProtocol);
        }
        if envelope.session != session {
            return Err(MpcError::WrongSession);
        }
        if envelope.sender != sender {
            return Err(MpcError::WrongSender {
                expected: sender,
                got: envelope.sender,
            });
        }
        if envelope.round != round {
            return Err(MpcError::WrongRound {
                expected: round,
                got: envelope.round,
            });
        }
        let (message, rest) = postcard::take_from_bytes(&envelope.payload)
            .map_err(|error| DecodeError::Payload(error.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes.into());
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionId {
        SessionId::derive("test", &[])
    }

    fn sealed(round: u8, sender: Role) -> Vec<u8> {
        Envelope::seal(Protocol::Sign, session(), round, sender, &(7u32, [1u8; 4])).unwrap()
    }

    fn open(bytes: &[u8]) -> Result<(u32, [u8; 4]), MpcError> {
        Envelope::open(bytes, Protocol::Sign, session(), 2, Role::Server)
    }

    #[test]
    fn round_trips_and_checks_every_header_field() {
        assert_eq!(open(&sealed(2, Role::Server)).unwrap(), (7, [1; 4]));
        assert!(matches!(
            open(&sealed(3, Role::Server)),
            Err(MpcError::WrongRound {
                expected: 2,
                got: 3
            })
        ));
        assert!(matches!(
            open(&sealed(2, Role::Device)),
            Err(MpcError::WrongSender { .. })
        ));

        let mut other = Envelope::decode(&sealed(2, Role::Server)).unwrap();
        other.session = SessionId::derive("other", &[]);
        assert!(matches!(open(&other.encode()), Err(MpcError::WrongSession)));
        other.session = session();
        other.protocol = Protocol::Keygen;
        assert!(matches!(
            open(&other.encode()),
            Err(MpcError::WrongProtocol)
        ));
    }

    #[test]
    fn rejects_bad_bytes_with_the_reason() {
        let good = sealed(2, Role::Server);
        let decode = |bytes: &[u8]| match open(bytes) {
            Err(MpcError::Malformed(reason)) => reason,
            other => panic!("expected a decode error, got {other:?}"),
        };
        assert_eq!(decode(&good[..10]), DecodeError::Truncated);
        assert_eq!(decode(&[]), DecodeError::Truncated);
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(decode(&bad), DecodeError::UnsupportedVersion(2));
        bad = good.clone();
        bad[1] = 9;
        assert_eq!(decode(&bad), DecodeError::UnknownProtocol(9));
        bad = good.clone();
        bad[HEADER_LEN - 1] = 0;
        assert_eq!(decode(&bad), DecodeError::UnknownRole(0));
        bad = good.clone();
        bad.push(0);
        assert_eq!(decode(&bad), DecodeError::TrailingBytes);
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            DecodeError::Payload(_)
        ));
        let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(decode(&huge), DecodeError::TooLarge { .. }));
    }
}
