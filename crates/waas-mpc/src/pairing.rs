//! A pairing: what one party keeps between operations. The device and the server each hold one
//! pairing per device; together their shares make the wallet's key, and neither alone can sign.

use std::fmt;

use dkls23_core::protocols::PublicKeyPackage;
use k256::elliptic_curve::group::GroupEncoding;

use crate::Role;
use crate::derive::ExtendedPublicKey;
use crate::engine::{self, Curve, Party, Point, Scalar};
use crate::error::MpcError;
use crate::session::hash_parts;

/// The public facts of a pairing, the same on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingPublic {
    /// Identifies the pairing: a hash of the key-generation session.
    pub id: [u8; 32],
    /// The wallet's root public key X (compressed SEC1).
    pub root_public_key: [u8; 33],
    /// The chain code from the key-generation coin toss; with X it forms the wallet's xpub.
    pub chain_code: [u8; 32],
    /// X_d = x_d·G, the device's additive share's public point (x_d + s_d = x).
    pub device_public_share: [u8; 33],
    /// S_d = s_d·G, the server's additive share's public point.
    pub server_public_share: [u8; 33],
}

/// One party's half of a pairing: its share, the MPC (OT) state signing needs, and the public facts.
/// Never printed: `Debug` shows only public facts.
pub struct Pairing {
    pub(crate) role: Role,
    pub(crate) epoch: u64,
    pub(crate) party: Party,
    pub(crate) public: PairingPublic,
}

impl Pairing {
    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The pairing's epoch: 0 after key generation, one more after each refresh.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The public facts.
    pub fn public(&self) -> &PairingPublic {
        &self.public
    }

    /// The wallet's extended public key: the root key X with the joint chain code. Addresses are
    /// its non-hardened children.
    pub fn xpub(&self) -> ExtendedPublicKey {
        ExtendedPublicKey::root(self.public.root_public_key, self.public.chain_code)
    }

    /// Builds the pairing at the end of key generation, after checking what the engine does not:
    /// the key and both shares are real points, the shares differ (a peer that replayed our own
    /// proof would make them equal), the chain code is not all zero (a peer that replayed our own
    /// chain-code opening would make it so), and the additive shares sum to the key.
    pub(crate) fn from_keygen(
        role: Role,
        party: Party,
        package: &PublicKeyPackage<Curve>,
    ) -> Result<Self, MpcError> {
        let device = share_point(package, Role::Device)?;
        let server = share_point(package, Role::Server)?;
        if device == server {
            return Err(MpcError::Rejected(
                "both parties hold the same share point".into(),
            ));
        }
        let chain_code = party.derivation_data.chain_code;
        if chain_code == [0u8; 32] {
            return Err(MpcError::Rejected("the chain code is all zero".into()));
        }
        let key = party.pk;
        engine::check_point(&key, "root public key")?;
        if party.derivation_data.pk != key {
            return Err(MpcError::InvalidState(
                "derivation data names another key".into(),
            ));
        }

        // Additive view: x = λ_d·p_d + λ_s·p_s with λ_d = 2 and λ_s = -1 for indices 1 and 2.
        let device_additive =
            (k256::ProjectivePoint::from(device) * Scalar::from(2u64)).to_affine();
        let server_additive = (-k256::ProjectivePoint::from(server)).to_affine();
        if (k256::ProjectivePoint::from(device_additive) + server_additive).to_affine() != key {
            return Err(MpcError::Rejected(
                "the shares do not sum to the key".into(),
            ));
        }
        engine::check_point(&device_additive, "device public share")?;
        engine::check_point(&server_additive, "server public share")?;

        let public = PairingPublic {
            id: hash_parts("pairing", &[&party.session_id]),
            root_public_key: compressed(&key),
            chain_code,
            device_public_share: compressed(&device_additive),
            server_public_share: compressed(&server_additive),
        };
        Ok(Self {
            role,
            epoch: 0,
            party,
            public,
        })
    }
}

impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("public", &self.public)
            .field("share", &"<redacted>")
            .finish()
    }
}

fn share_point(package: &PublicKeyPackage<Curve>, role: Role) -> Result<Point, MpcError> {
    let point = *package
        .verifying_share(engine::index(role)?)
        .ok_or_else(|| MpcError::Rejected(format!("no verifying share for the {role:?}")))?;
    engine::check_point(&point, "verifying share")?;
    Ok(point)
}

/// A point's compressed SEC1 bytes.
pub(crate) fn compressed(point: &Point) -> [u8; 33] {
    point.to_bytes().into()
}
