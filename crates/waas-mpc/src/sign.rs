//! Two-party signing (DKLs23, 2-of-2), in four messages and two HTTP round trips:
//!
//! | round | from   | carries                                                           |
//! |-------|--------|-------------------------------------------------------------------|
//! | 1     | device | engine phase 1 (OT extension towards the server)                  |
//! | 2     | server | engine phases 1 and 2                                             |
//! | 3     | device | engine phase 2, and its phase-3 broadcast                         |
//! | 4     | server | its phase-3 broadcast (the server has the signature now)          |
//!
//! Both parties sign under the same non-hardened child of the root (each applies the BIP32 tweak
//! to its own share, as the engine requires), and both check the final signature against the
//! derived public key. The session id hashes the operation, the pairing, its epoch, the path and
//! the digest, so a message of one signing session is useless in any other. See
//! docs/protocol/sign.md.

use dkls23_core::protocols::PartyIndex;
use dkls23_core::protocols::signing::{
    Broadcast3to4, KeepPhase1to2, KeepPhase2to3, SignData, TransmitPhase1to2, TransmitPhase2to3,
    UniqueKeep1to2, UniqueKeep2to3,
};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

use crate::Role;
use crate::derive::{DerivationError, HARDENED};
use crate::engine::{self, Curve, Party};
use crate::envelope::{Envelope, Protocol};
use crate::error::MpcError;
use crate::pairing::{Pairing, compressed};
use crate::session::SessionId;
use crate::state::{self, Step};

/// What to sign.
#[derive(Clone, Debug)]
pub struct SigningRequest<'a> {
    /// The name of the operation both parties run; it binds the session.
    pub operation: &'a str,
    /// Non-hardened child indices below the root, e.g. `[0, 5]` for `0/5`. Empty: the root key.
    pub path: &'a [u32],
    /// The 32-byte message digest (a prehash: the caller hashes the message).
    pub digest: [u8; 32],
}

/// A finished ECDSA signature: low-S, verified under the derived key, with its recovery id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// r, big-endian.
    pub r: [u8; 32],
    /// s, big-endian, at most n/2.
    pub s: [u8; 32],
    /// 0 or 1: the parity of R's y coordinate (R.x ≥ n cannot happen here: the engine rejects it).
    pub recovery_id: u8,
}

impl Signature {
    /// The 65-byte Ethereum form `r ‖ s ‖ v` with `v = 27 + recovery_id`, as `eth_sign` and
    /// `personal_sign` return it.
    pub fn to_ethereum_bytes(&self) -> [u8; 65] {
        let mut bytes = [0u8; 65];
        bytes[..32].copy_from_slice(&self.r);
        bytes[32..64].copy_from_slice(&self.s);
        bytes[64] = 27 + self.recovery_id;
        bytes
    }

    /// Checks the signature under `key` for `digest`, and that its recovery id recovers `key`.
    pub fn verify(&self, key: &VerifyingKey, digest: &[u8; 32]) -> Result<(), MpcError> {
        let bad = |why: &str| MpcError::CounterpartyCheated(format!("the signature {why}"));
        let signature = k256::ecdsa::Signature::from_scalars(self.r, self.s)
            .map_err(|_| bad("is malformed"))?;
        if signature.normalize_s() != signature {
            return Err(bad("is not low-S"));
        }
        key.verify_prehash(digest, &signature)
            .map_err(|_| bad("does not verify"))?;
        let recovery_id =
            RecoveryId::from_byte(self.recovery_id).ok_or_else(|| bad("has a bad recovery id"))?;
        let recovered = VerifyingKey::recover_from_prehash(digest, &signature, recovery_id)
            .map_err(|_| bad("does not recover"))?;
        if &recovered != key {
            return Err(bad("recovers another key"));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Round1 {
    phase1: TransmitPhase1to2,
}

#[derive(Serialize, Deserialize)]
struct Round2 {
    phase1: TransmitPhase1to2,
    phase2: TransmitPhase2to3<Curve>,
}

#[derive(Serialize, Deserialize)]
struct Round3 {
    phase2: TransmitPhase2to3<Curve>,
    phase3: Broadcast3to4<Curve>,
}

#[derive(Serialize, Deserialize)]
struct Round4 {
    phase3: Broadcast3to4<Curve>,
}

#[derive(Serialize, Deserialize)]
enum State {
    DeviceAwaitingRound2 {
        unique: UniqueKeep1to2<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase1to2<Curve>>,
    },
    DeviceAwaitingRound4 {
        x_coordinate: String,
        own_broadcast: Broadcast3to4<Curve>,
    },
    ServerAwaitingRound1,
    ServerAwaitingRound3 {
        unique: UniqueKeep2to3<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase2to3<Curve>>,
    },
    Over,
}

#[derive(Serialize, Deserialize)]
struct Session {
    pairing_id: [u8; 32],
    epoch: u64,
    path: Vec<u32>,
    digest: [u8; 32],
    state: State,
}

/// One party's signing session. Feed it the peer's messages with [`Signing::handle`]; store it
/// between messages with [`Signing::to_bytes`] (it holds one-time secrets: keep the bytes
/// encrypted, and never resume from an old copy).
pub struct Signing {
    role: Role,
    id: SessionId,
    session: Session,
}

impl Signing {
    /// Starts the device's side: returns the session and the round-1 message for the server.
    pub fn start_device(
        pairing: &Pairing,
        request: &SigningRequest<'_>,
    ) -> Result<(Self, Vec<u8>), MpcError> {
        let mut signing = Self::new(Role::Device, pairing, request)?;
        let party = signing.derived_party(pairing)?;
        let (unique, kept, transmit) = party
            .sign_phase1(&signing.sign_data()?)
            .map_err(engine::abort)?;
        let message = signing.seal(
            1,
            &Round1 {
                phase1: engine::only(transmit, "phase-1 message")?,
            },
        )?;
        signing.session.state = State::DeviceAwaitingRound2 { unique, kept };
        Ok((signing, message))
    }

    /// The server's side, waiting for the device's round-1 message.
    pub fn new_server(pairing: &Pairing, request: &SigningRequest<'_>) -> Result<Self, MpcError> {
        Self::new(Role::Server, pairing, request)
    }

    fn new(role: Role, pairing: &Pairing, request: &SigningRequest<'_>) -> Result<Self, MpcError> {
        if pairing.role != role {
            return Err(MpcError::InvalidState(format!(
                "a {role:?} session needs a {role:?} pairing"
            )));
        }
        if !pairing.can_sign() {
            return Err(MpcError::InvalidState(
                "the pairing has no MPC state (restored from a bare share): refresh it first"
                    .into(),
            ));
        }
        check_path(request.path)?;
        let path_bytes: Vec<u8> = request
            .path
            .iter()
            .flat_map(|index| index.to_be_bytes())
            .collect();
        let id = SessionId::derive(
            "sign",
            &[
                request.operation.as_bytes(),
                &pairing.public.id,
                &pairing.epoch.to_be_bytes(),
                &path_bytes,
                &request.digest,
            ],
        );
        Ok(Self {
            role,
            id,
            session: Session {
                pairing_id: pairing.public.id,
                epoch: pairing.epoch,
                path: request.path.to_vec(),
                digest: request.digest,
                state: State::ServerAwaitingRound1,
            },
        })
    }

    /// Takes the peer's next message. `pairing` must be the one the session started with. A
    /// message that is malformed, or for another session, round or sender, is rejected and leaves
    /// the session as it was; a failed check ends the session, and a terminal error
    /// ([`MpcError::is_terminal`]) means the pairing must be retired.
    pub fn handle(
        &mut self,
        pairing: &Pairing,
        message: &[u8],
    ) -> Result<Step<Signature>, MpcError> {
        pairing.ensure_is(self.role, &self.session.pairing_id, self.session.epoch)?;
        // Decode and check before taking the state, so a bad message changes nothing.
        let decoded = match &self.session.state {
            State::ServerAwaitingRound1 => Decoded::Round1(self.open(message, 1)?),
            State::DeviceAwaitingRound2 { .. } => Decoded::Round2(Box::new(self.open(message, 2)?)),
            State::ServerAwaitingRound3 { .. } => Decoded::Round3(Box::new(self.open(message, 3)?)),
            State::DeviceAwaitingRound4 { .. } => Decoded::Round4(self.open(message, 4)?),
            State::Over => return Err(MpcError::SessionOver),
        };
        decoded.check(self.role)?;
        let party = self.derived_party(pairing)?;
        let data = self.sign_data()?;
        let state = std::mem::replace(&mut self.session.state, State::Over);
        match (state, decoded) {
            (State::ServerAwaitingRound1, Decoded::Round1(round1)) => {
                let (unique, kept, phase1) = party.sign_phase1(&data).map_err(engine::abort)?;
                let (unique, kept, phase2) = party
                    .sign_phase2(&data, unique, kept, &[round1.phase1])
                    .map_err(engine::abort)?;
                let reply = self.seal(
                    2,
                    &Round2 {
                        phase1: engine::only(phase1, "phase-1 message")?,
                        phase2: engine::only(phase2, "phase-2 message")?,
                    },
                )?;
                self.session.state = State::ServerAwaitingRound3 { unique, kept };
                Ok(Step::reply(reply))
            }
            (State::DeviceAwaitingRound2 { unique, kept }, Decoded::Round2(round2)) => {
                let round2 = *round2;
                let (unique, kept, phase2) = party
                    .sign_phase2(&data, unique, kept, &[round2.phase1])
                    .map_err(engine::abort)?;
                let (x_coordinate, own_broadcast) = party
                    .sign_phase3(&data, unique, kept, &[round2.phase2])
                    .map_err(engine::abort)?;
                let reply = self.seal(
                    3,
                    &Round3 {
                        phase2: engine::only(phase2, "phase-2 message")?,
                        phase3: own_broadcast.clone(),
                    },
                )?;
                self.session.state = State::DeviceAwaitingRound4 {
                    x_coordinate,
                    own_broadcast,
                };
                Ok(Step::reply(reply))
            }
            (State::ServerAwaitingRound3 { unique, kept }, Decoded::Round3(round3)) => {
                let round3 = *round3;
                let (x_coordinate, own_broadcast) = party
                    .sign_phase3(&data, unique, kept, &[round3.phase2])
                    .map_err(engine::abort)?;
                let reply = self.seal(
                    4,
                    &Round4 {
                        phase3: own_broadcast.clone(),
                    },
                )?;
                let signature =
                    self.finish(&party, &data, &x_coordinate, own_broadcast, round3.phase3)?;
                Ok(Step::reply_and_finish(reply, signature))
            }
            (
                State::DeviceAwaitingRound4 {
                    x_coordinate,
                    own_broadcast,
                },
                Decoded::Round4(round4),
            ) => {
                let signature =
                    self.finish(&party, &data, &x_coordinate, own_broadcast, round4.phase3)?;
                Ok(Step::finish(signature))
            }
            _ => Err(MpcError::InvalidState(
                "signing state and message disagree".into(),
            )),
        }
    }

    /// The session's bytes, to store between messages. They hold one-time secrets.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        state::encode(state::Kind::Sign, self.role, &self.id, &self.session)
    }

    /// A session stored with [`Signing::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let (role, id, session) = state::decode(state::Kind::Sign, bytes)?;
        Ok(Self { role, id, session })
    }

    fn open<T: DeserializeOwned>(&self, message: &[u8], round: u8) -> Result<T, MpcError> {
        Envelope::open(message, Protocol::Sign, self.id, round, self.role.peer())
    }

    fn seal<T: Serialize>(&self, round: u8, message: &T) -> Result<Vec<u8>, MpcError> {
        Envelope::seal(Protocol::Sign, self.id, round, self.role, message)
    }

    fn sign_data(&self) -> Result<SignData, MpcError> {
        Ok(SignData {
            sign_id: self.id.as_bytes().to_vec(),
            counterparties: vec![engine::index(self.role.peer())?],
            message_hash: self.session.digest,
        })
    }

    /// The party's share tweaked down the path; the engine signs with the child share. The child
    /// key must be the one BIP32 (our CKDpub of the pairing's xpub) names, or the wallet would
    /// show one address and sign for another.
    fn derived_party(&self, pairing: &Pairing) -> Result<Party, MpcError> {
        if self.session.path.is_empty() {
            return Ok(pairing.party.clone());
        }
        let expected = pairing.xpub().derive(&self.session.path)?;
        let path: String = self
            .session
            .path
            .iter()
            .map(|index| format!("/{index}"))
            .collect();
        let last = self.session.path.last().copied().unwrap_or_default();
        let party = pairing
            .party
            .derive_from_path(&format!("m{path}"), engine::no_address)
            .map_err(|_| DerivationError::InvalidChild(last))?;
        if compressed(&party.pk) != expected.public_key {
            return Err(MpcError::InvalidState(
                "the engine's child key differs from BIP32's".into(),
            ));
        }
        Ok(party)
    }

    fn finish(
        &self,
        party: &Party,
        data: &SignData,
        x_coordinate: &str,
        own: Broadcast3to4<Curve>,
        peer: Broadcast3to4<Curve>,
    ) -> Result<Signature, MpcError> {
        let (s_hex, recovery_id) = party
            .sign_phase4(data, x_coordinate, &[own, peer], true)
            .map_err(engine::final_step_abort)?;
        let signature = Signature {
            r: hex32(x_coordinate)?,
            s: hex32(&s_hex)?,
            recovery_id,
        };
        let key = VerifyingKey::from_affine(party.pk).map_err(|_| {
            MpcError::InvalidState("the derived key is not a valid public key".into())
        })?;
        signature.verify(&key, &self.session.digest)?;
        Ok(signature)
    }
}

/// Rejects hardened indices: hardened derivation needs the private key inside MPC.
fn check_path(path: &[u32]) -> Result<(), MpcError> {
    match path.iter().find(|index| **index >= HARDENED) {
        Some(index) => Err(DerivationError::Hardened(*index).into()),
        None if path.len() > 255 => Err(DerivationError::TooDeep.into()),
        None => Ok(()),
    }
}

fn hex32(hex: &str) -> Result<[u8; 32], MpcError> {
    let bad = || MpcError::InvalidState("the engine returned a malformed scalar".into());
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(bytes)
}

/// A received round, decoded and awaiting its routing checks.
enum Decoded {
    Round1(Round1),
    Round2(Box<Round2>),
    Round3(Box<Round3>),
    Round4(Round4),
}

impl Decoded {
    /// The engine trusts its messages' sender fields and some points; check them first.
    fn check(&self, me: Role) -> Result<(), MpcError> {
        match self {
            Self::Round1(round) => engine::check_route(&round.phase1.parties, me, "phase 1"),
            Self::Round2(round) => {
                engine::check_route(&round.phase1.parties, me, "phase 1")?;
                check_phase2(&round.phase2, me)
            }
            Self::Round3(round) => check_phase2(&round.phase2, me),
            Self::Round4(_) => Ok(()),
        }
    }
}

fn check_phase2(phase2: &TransmitPhase2to3<Curve>, me: Role) -> Result<(), MpcError> {
    engine::check_route(&phase2.parties, me, "phase 2")?;
    engine::check_point(&phase2.gamma_u, "gamma_u")?;
    engine::check_point(&phase2.gamma_v, "gamma_v")?;
    engine::check_point(&phase2.public_share, "public share")?;
    engine::check_point(&phase2.instance_point, "instance point")
}
