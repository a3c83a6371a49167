//! A pairing: what one party keeps between operations. The device and the server each hold one
//! pairing per device; together their shares make the wallet's key, and neither alone can sign.

use std::collections::BTreeMap;
use std::fmt;

use dkls23_core::protocols::PartyIndex;
use dkls23_core::protocols::derivation::DerivData;
use dkls23_core::utilities::multiplication::{MulReceiver, MulSender};
use dkls23_core::utilities::zero_shares::{SeedPair, ZeroShare};
use k256::elliptic_curve::PrimeField;
use zeroize::Zeroizing;

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

impl PairingPublic {
    /// What a party sends to say it holds this pairing: a hash of every public fact, so the
    /// receiver learns that both sides ended key generation with the same key, chain code and
    /// share points (the id alone is known to both sides before the last round).
    pub fn confirmation(&self) -> [u8; 32] {
        hash_parts(
            "pairing confirmation",
            &[
                &self.id,
                &self.root_public_key,
                &self.chain_code,
                &self.device_public_share,
                &self.server_public_share,
            ],
        )
    }
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

impl Pairing {
    /// The pairing of the next epoch, from the engine party a complete refresh produced: same key,
    /// same id, new shares (so new public shares) and new MPC state.
    pub(crate) fn refreshed(&self, party: Party) -> Result<Self, MpcError> {
        if party.pk != self.party.pk {
            return Err(MpcError::Rejected("the refresh changed the key".into()));
        }
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or_else(|| MpcError::InvalidState("epoch overflow".into()))?;
        let public = public_with_share(self.role, &party.poly_point, &self.public)?;
        Ok(Self {
            role: self.role,
            epoch,
            party,
            public,
        })
    }

    /// This party's additive share (x_d for the device, s_d for the server; x_d + s_d = x),
    /// big-endian. Archive, backup and recovery move this value; never log or send it in clear.
    pub fn additive_share(&self) -> Zeroizing<[u8; 32]> {
        let share = Zeroizing::new(self.party.poly_point * lagrange(self.role));
        Zeroizing::new(share.to_repr().into())
    }

    /// Whether the pairing can sign: false for a pairing restored from a bare share until a
    /// complete refresh has given it MPC (OT) state.
    pub fn can_sign(&self) -> bool {
        let peer = engine::index(self.role.peer()).ok();
        peer.is_some_and(|peer| {
            self.party.mul_senders.contains_key(&peer)
                && self.party.mul_receivers.contains_key(&peer)
                && !self.party.zero_share.seeds.is_empty()
        })
    }

    /// Rebuilds a party from a bare additive share (as recovery will have it) and the pairing's
    /// public facts: no MPC state, so it cannot sign until a complete refresh with the other party
    /// ([`crate::Refresh`]). `engine_session` is the pairing's current engine session id, which
    /// the refresh binds to. The share must match its public share.
    pub fn restore(
        role: Role,
        additive_share: &[u8; 32],
        public: PairingPublic,
        epoch: u64,
        engine_session: Vec<u8>,
    ) -> Result<Self, MpcError> {
        let share: Option<Scalar> = Scalar::from_repr((*additive_share).into()).into();
        let share =
            Zeroizing::new(share.ok_or_else(|| MpcError::Rejected("share out of range".into()))?);
        let inverse: Option<Scalar> = lagrange(role).invert().into();
        let inverse =
            inverse.ok_or_else(|| MpcError::InvalidState("Lagrange coefficient".into()))?;
        let poly_point = *share * inverse;
        let checked = public_with_share(role, &poly_point, &public)?;
        if checked != public {
            return Err(MpcError::Rejected(
                "the share does not match its public share".into(),
            ));
        }
        Self::from_parts(
            role,
            epoch,
            public,
            engine_session,
            poly_point,
            MpcState::default(),
        )
    }

    /// Assembles a pairing from its parts; the engine's copies of the key, share and chain code,
    /// its parameters and index, and the root's derivation data follow from them.
    pub(crate) fn from_parts(
        role: Role,
        epoch: u64,
        public: PairingPublic,
        engine_session: Vec<u8>,
        poly_point: Scalar,
        mpc: MpcState,
    ) -> Result<Self, MpcError> {
        let key: Option<Point> = Point::from_bytes(&public.root_public_key.into()).into();
        let key = key.ok_or_else(|| MpcError::InvalidState("bad root key".into()))?;
        engine::check_point(&key, "root public key")?;
        let party = Party {
            parameters: engine::parameters()?,
            party_index: engine::index(role)?,
            session_id: engine_session,
            poly_point,
            pk: key,
            zero_share: ZeroShare { seeds: mpc.seeds },
            mul_senders: mpc.senders,
            mul_receivers: mpc.receivers,
            derivation_data: DerivData {
                depth: 0,
                child_number: 0,
                parent_fingerprint: [0; 4],
                poly_point,
                pk: key,
                chain_code: public.chain_code,
            },
            address: String::new(),
        };
        Ok(Self {
            role,
            epoch,
            party,
            public,
        })
    }

    /// Refuses a pairing other than the one (role, id, epoch) a session started with.
    pub(crate) fn ensure_is(&self, role: Role, id: &[u8; 32], epoch: u64) -> Result<(), MpcError> {
        if self.role == role && &self.public.id == id && self.epoch == epoch {
            Ok(())
        } else {
            Err(MpcError::InvalidState(
                "the session belongs to another pairing or epoch".into(),
            ))
        }
    }

    /// The engine session id the pairing's MPC state is bound to (public): what a restored
    /// party needs to refresh with this one.
    pub fn engine_session(&self) -> &[u8] {
        &self.party.session_id
    }
}

/// A pairing's MPC state: zero-share seeds and OT state for the peer; empty for a pairing restored
/// from a bare share.
#[derive(Default)]
pub(crate) struct MpcState {
    pub(crate) seeds: Vec<SeedPair>,
    pub(crate) senders: BTreeMap<PartyIndex, MulSender<Curve>>,
    pub(crate) receivers: BTreeMap<PartyIndex, MulReceiver<Curve>>,
}

/// λ of a role in x = λ_d·p_d + λ_s·p_s: 2 for the device (index 1), -1 for the server (index 2).
pub(crate) fn lagrange(role: Role) -> Scalar {
    match role {
        Role::Device => Scalar::from(2u64),
        Role::Server => -Scalar::ONE,
    }
}

/// `public` with this role's public share recomputed from `poly_point`, and the other role's as
/// X minus it.
fn public_with_share(
    role: Role,
    poly_point: &Scalar,
    public: &PairingPublic,
) -> Result<PairingPublic, MpcError> {
    let key: Option<Point> = Point::from_bytes(&public.root_public_key.into()).into();
    let key = key.ok_or_else(|| MpcError::Rejected("bad root key".into()))?;
    let own = k256::ProjectivePoint::GENERATOR * (*poly_point * lagrange(role));
    let other = k256::ProjectivePoint::from(key) - own;
    let (own, other) = (own.to_affine(), other.to_affine());
    engine::check_point(&own, "own public share")?;
    engine::check_point(&other, "peer public share")?;
    let (device, server) = match role {
        Role::Device => (own, other),
        Role::Server => (other, own),
    };
    Ok(PairingPublic {
        device_public_share: compressed(&device),
        server_public_share: compressed(&server),
        ..public.clone()
    })
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
