//! The two parties of every protocol.

use thiserror::Error;

/// Which side of the two-party protocol a message comes from or a state machine plays.
///
/// The wire byte doubles as the party's index in the threshold scheme (1 and 2), so a message that
/// claims a role also claims an index, and a party that receives its own role rejects the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The user's browser (or any other device) holding the device share.
    Device,
    /// The WaaS server holding the server share.
    Server,
}

/// A role byte that names neither party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("unknown role byte {0:#04x} (expected 1 for device or 2 for server)")]
pub struct RoleError(pub u8);

impl Role {
    /// The role's byte on the wire, which is also its party index.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Device => 1,
            Self::Server => 2,
        }
    }

    /// Reads a role byte, rejecting anything but 1 and 2.
    pub fn from_wire(byte: u8) -> Result<Self, RoleError> {
        match byte {
            1 => Ok(Self::Device),
            2 => Ok(Self::Server),
            other => Err(RoleError(other)),
        }
    }

    /// The other party.
    pub fn peer(self) -> Self {
        match self {
            Self::Device => Self::Server,
            Self::Server => Self::Device,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_round_trip_and_only_two_exist() {
        for role in [Role::Device, Role::Server] {
            assert_eq!(Role::from_wire(role.to_wire()), Ok(role));
            assert_eq!(role.peer().peer(), role);
            assert_ne!(role.peer(), role);
        }
        let accepted = (0..=u8::MAX)
            .filter(|b| Role::from_wire(*b).is_ok())
            .count();
        assert_eq!(accepted, 2);
        assert_eq!(Role::from_wire(0), Err(RoleError(0)));
    }
}
