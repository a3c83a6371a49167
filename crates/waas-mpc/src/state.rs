//! What a party returns after each message ([`Step`]), and the stored form of a session between
//! messages: a versioned header (version, protocol, role, context) and the postcard-encoded state.
//! In-flight state lives for one operation only, so it may use the engine's own encoding; a
//! pairing, which lives for years, has its own field-by-field format (see `pairing`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::Role;
use crate::error::MpcError;
use crate::session::SessionId;

/// The result of handing a party one message: a reply to send, the session's output, or both.
/// `Debug` shows the reply's length only.
#[must_use]
pub struct Step<T> {
    /// The message to send to the peer, if any.
    pub reply: Option<Vec<u8>>,
    /// The session's result, once it has finished.
    pub output: Option<T>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field(
                "reply",
                &self
                    .reply
                    .as_ref()
                    .map(|reply| format!("<{} bytes>", reply.len())),
            )
            .field("output", &self.output)
            .finish()
    }
}

impl<T> Step<T> {
    pub(crate) fn reply(reply: Vec<u8>) -> Self {
        Self {
            reply: Some(reply),
            output: None,
        }
    }

    pub(crate) fn finish(output: T) -> Self {
        Self {
            reply: None,
            output: Some(output),
        }
    }

    pub(crate) fn reply_and_finish(reply: Vec<u8>, output: T) -> Self {
        Self {
            reply: Some(reply),
            output: Some(output),
        }
    }
}

const STATE_VERSION: u8 = 1;

/// Which protocol a stored session belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Kind {
    Keygen = 1,
    Sign = 2,
    Refresh = 3,
}

pub(crate) fn encode<S: Serialize>(
    kind: Kind,
    role: Role,
    context: &SessionId,
    state: &S,
) -> Result<Zeroizing<Vec<u8>>, MpcError> {
    let body = Zeroizing::new(to_exact_vec(state)?);
    let mut bytes = Zeroizing::new(Vec::with_capacity(3 + 32 + body.len()));
    bytes.extend_from_slice(&[STATE_VERSION, kind as u8, role.to_wire()]);
    bytes.extend_from_slice(context.as_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

pub(crate) fn decode<S: DeserializeOwned>(
    kind: Kind,
    bytes: &[u8],
) -> Result<(Role, SessionId, S), MpcError> {
    let invalid = |what: &str| MpcError::InvalidState(what.to_owned());
    let (header, body) = bytes
        .split_at_checked(3 + 32)
        .ok_or_else(|| invalid("truncated"))?;
    let [version, stored_kind, role, context @ ..] = header else {
        return Err(invalid("truncated"));
    };
    if *version != STATE_VERSION {
        return Err(invalid("unknown state version"));
    }
    if *stored_kind != kind as u8 {
        return Err(invalid("state of another protocol"));
    }
    let role = Role::from_wire(*role).map_err(|_| invalid("unknown role"))?;
    let context: [u8; 32] = context.try_into().map_err(|_| invalid("truncated"))?;
    let (state, rest) = postcard::take_from_bytes(body)
        .map_err(|error| MpcError::InvalidState(format!("cannot decode: {error}")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes"));
    }
    Ok((role, SessionId::from_bytes(context), state))
}

/// Postcard bytes in a buffer allocated once at their exact size, so no reallocation leaves copies
/// of secrets behind in freed memory.
pub(crate) fn to_exact_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, MpcError> {
    let encode_error =
        |error: postcard::Error| MpcError::InvalidState(format!("cannot encode: {error}"));
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(encode_error)?;
    postcard::to_extend(value, Vec::with_capacity(size)).map_err(encode_error)
}
