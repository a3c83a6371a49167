//! Two-party refresh (DKLs23 "complete" refresh): new shares of the same key and fresh OT state,
//! in the same four-message shape as key generation:
//!
//! | round | from   | carries                                                           |
//! |-------|--------|-------------------------------------------------------------------|
//! | 1     | device | device nonce; its zero-constant polynomial point for the server    |
//! | 2     | server | server nonce; its point for the device; its commitments            |
//! | 3     | device | its commitments and openings, its new OT setup                     |
//! | 4     | server | its openings and OT setup; the transcript hash of rounds 1–3       |
//!
//! The complete refresh never reads the old OT state, so it also turns a pairing restored from a
//! bare share ([`Pairing::restore`]) into a full one; the fast refresh, which re-randomises old OT
//! state, is deliberately not offered. Every (x_d, s_d) of every epoch still sums to the same key,
//! so archives and backups stay valid across refreshes.
//!
//! Epochs: a refresh cannot switch both machines at once, so the server keeps epoch e next to e+1
//! until the device first uses e+1 ([`EpochSet`]); a crash at any point leaves a usable pairing.
//! See docs/protocol/refresh.md.

use std::collections::BTreeMap;

use dkls23_core::protocols::PartyIndex;
use dkls23_core::protocols::dkg::{
    KeepInitMulPhase3to4, KeepInitZeroSharePhase3to4, ProofCommitment, TransmitInitMulPhase3to4,
    TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23_core::utilities::hashes::HashOutput;
use dkls23_core::utilities::proofs::DLogProof;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::Role;
use crate::engine::{self, Curve, Scalar};
use crate::envelope::{Envelope, Protocol};
use crate::error::MpcError;
use crate::pairing::Pairing;
use crate::session::{SessionId, hash_parts};
use crate::state::{self, Step};

#[derive(Serialize, Deserialize)]
struct Round1 {
    device_nonce: [u8; 32],
    fragment: Scalar,
}

#[derive(Serialize, Deserialize)]
struct Round2 {
    server_nonce: [u8; 32],
    fragment: Scalar,
    proof_commitment: HashOutput,
    zero_seed_commitment: TransmitInitZeroSharePhase2to4,
}

#[derive(Serialize, Deserialize)]
struct Round3 {
    proof: ProofCommitment<Curve>,
    zero_seed_commitment: TransmitInitZeroSharePhase2to4,
    zero_seed: TransmitInitZeroSharePhase3to4,
    ot_setup: TransmitInitMulPhase3to4<Curve>,
}

#[derive(Serialize, Deserialize)]
struct Round4 {
    proof: DLogProof<Curve>,
    zero_seed: TransmitInitZeroSharePhase3to4,
    ot_setup: TransmitInitMulPhase3to4<Curve>,
    transcript: [u8; 32],
}

/// What a party keeps from phase 3 until phase 4.
#[derive(Serialize, Deserialize)]
struct Kept {
    refresh_id: [u8; 32],
    correction: Scalar,
    own_proof: ProofCommitment<Curve>,
    zero_kept: BTreeMap<PartyIndex, KeepInitZeroSharePhase3to4>,
    mul_kept: BTreeMap<PartyIndex, KeepInitMulPhase3to4<Curve>>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.correction.zeroize();
        engine::wipe_phase3_secrets(&mut self.zero_kept, &mut self.mul_kept);
    }
}

// One per session, moved rarely and never held in collections: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
enum State {
    DeviceAwaitingRound2 {
        device_nonce: [u8; 32],
        own_fragment: Zeroizing<Scalar>,
        round1_hash: [u8; 32],
    },
    DeviceAwaitingRound4 {
        kept: Kept,
        server_proof_commitment: HashOutput,
        server_zero_seed_commitment: TransmitInitZeroSharePhase2to4,
        transcript: [u8; 32],
    },
    ServerAwaitingRound1,
    ServerAwaitingRound3 {
        kept: Kept,
        own_zero_seed: TransmitInitZeroSharePhase3to4,
        own_ot_setup: TransmitInitMulPhase3to4<Curve>,
        round1_hash: [u8; 32],
        round2_hash: [u8; 32],
    },
    Over,
}

#[derive(Serialize, Deserialize)]
struct Session {
    pairing_id: [u8; 32],
    epoch: u64,
    state: State,
}

/// One party's refresh session over a pairing of epoch e; its output is the pairing of epoch e+1.
/// Store it between messages with [`Refresh::to_bytes`] (it holds secrets).
pub struct Refresh {
    role: Role,
    context: SessionId,
    session: Session,
}

impl Refresh {
    /// Starts the device's side: returns the session and the round-1 message for the server.
    pub fn start_device(
        pairing: &Pairing,
        context: SessionId,
    ) -> Result<(Self, Vec<u8>), MpcError> {
        let mut refresh = Self::new(Role::Device, pairing, context)?;
        let device_nonce = engine::random_bytes()?;
        let fragments = Zeroizing::new(pairing.party.refresh_complete_phase1());
        let [own_fragment, for_server] = fragments.as_slice() else {
            return Err(MpcError::InvalidState(
                "expected two polynomial points".into(),
            ));
        };
        let message = refresh.seal(
            1,
            &Round1 {
                device_nonce,
                fragment: *for_server,
            },
        )?;
        refresh.session.state = State::DeviceAwaitingRound2 {
            device_nonce,
            own_fragment: Zeroizing::new(*own_fragment),
            round1_hash: hash_parts("refresh message", &[&message]),
        };
        Ok((refresh, message))
    }

    /// The server's side, waiting for the device's round-1 message.
    pub fn new_server(pairing: &Pairing, context: SessionId) -> Result<Self, MpcError> {
        Self::new(Role::Server, pairing, context)
    }

    fn new(role: Role, pairing: &Pairing, context: SessionId) -> Result<Self, MpcError> {
        if pairing.role != role {
            return Err(MpcError::InvalidState(format!(
                "a {role:?} session needs a {role:?} pairing"
            )));
        }
        Ok(Self {
            role,
            context,
            session: Session {
                pairing_id: pairing.public.id,
                epoch: pairing.epoch,
                state: State::ServerAwaitingRound1,
            },
        })
    }

    /// Takes the peer's next message, with the pairing of the epoch being refreshed. Bad messages
    /// are rejected without changing the session; a failed check ends it (the old pairing stays
    /// valid); a finished refresh yields the pairing of the next epoch.
    pub fn handle(&mut self, pairing: &Pairing, message: &[u8]) -> Result<Step<Pairing>, MpcError> {
        pairing.ensure_is(self.role, &self.session.pairing_id, self.session.epoch)?;
        let decoded = match &self.session.state {
            State::ServerAwaitingRound1 => Decoded::Round1(self.open(message, 1)?),
            State::DeviceAwaitingRound2 { .. } => Decoded::Round2(self.open(message, 2)?),
            State::ServerAwaitingRound3 { .. } => Decoded::Round3(Box::new(self.open(message, 3)?)),
            State::DeviceAwaitingRound4 { .. } => Decoded::Round4(Box::new(self.open(message, 4)?)),
            State::Over => return Err(MpcError::SessionOver),
        };
        decoded.check(self.role)?;
        let message_hash = hash_parts("refresh message", &[message]);
        match (
            std::mem::replace(&mut self.session.state, State::Over),
            decoded,
        ) {
            (State::ServerAwaitingRound1, Decoded::Round1(round1)) => {
                let server_nonce = engine::random_bytes()?;
                let refresh_id = self.refresh_id(&round1.device_nonce, &server_nonce);
                let fragments = Zeroizing::new(pairing.party.refresh_complete_phase1());
                let [for_device, own_fragment] = fragments.as_slice() else {
                    return Err(MpcError::InvalidState(
                        "expected two polynomial points".into(),
                    ));
                };
                let (kept, zero_seed_commitment, own_zero_seed, own_ot_setup) =
                    phases_2_and_3(pairing, refresh_id, &[*own_fragment, round1.fragment])?;
                let reply = self.seal(
                    2,
                    &Round2 {
                        server_nonce,
                        fragment: *for_device,
                        proof_commitment: kept.own_proof.commitment,
                        zero_seed_commitment,
                    },
                )?;
                let round2_hash = hash_parts("refresh message", &[&reply]);
                self.session.state = State::ServerAwaitingRound3 {
                    kept,
                    own_zero_seed,
                    own_ot_setup,
                    round1_hash: message_hash,
                    round2_hash,
                };
                Ok(Step::reply(reply))
            }
            (
                State::DeviceAwaitingRound2 {
                    device_nonce,
                    own_fragment,
                    round1_hash,
                },
                Decoded::Round2(round2),
            ) => {
                let refresh_id = self.refresh_id(&device_nonce, &round2.server_nonce);
                let (kept, zero_seed_commitment, zero_seed, ot_setup) =
                    phases_2_and_3(pairing, refresh_id, &[*own_fragment, round2.fragment])?;
                let reply = self.seal(
                    3,
                    &Round3 {
                        proof: kept.own_proof.clone(),
                        zero_seed_commitment,
                        zero_seed,
                        ot_setup,
                    },
                )?;
                let round3_hash = hash_parts("refresh message", &[&reply]);
                self.session.state = State::DeviceAwaitingRound4 {
                    kept,
                    server_proof_commitment: round2.proof_commitment,
                    server_zero_seed_commitment: round2.zero_seed_commitment,
                    transcript: hash_parts(
                        "refresh transcript",
                        &[&round1_hash, &message_hash, &round3_hash],
                    ),
                };
                Ok(Step::reply(reply))
            }
            (
                State::ServerAwaitingRound3 {
                    kept,
                    own_zero_seed,
                    own_ot_setup,
                    round1_hash,
                    round2_hash,
                },
                Decoded::Round3(round3),
            ) => {
                let transcript = hash_parts(
                    "refresh transcript",
                    &[&round1_hash, &round2_hash, &message_hash],
                );
                let own_proof = kept.own_proof.proof.clone();
                let round3 = *round3;
                let next = phase4(
                    pairing,
                    kept,
                    round3.proof,
                    round3.zero_seed_commitment,
                    round3.zero_seed,
                    round3.ot_setup,
                )?;
                let reply = self.seal(
                    4,
                    &Round4 {
                        proof: own_proof,
                        zero_seed: own_zero_seed,
                        ot_setup: own_ot_setup,
                        transcript,
                    },
                )?;
                Ok(Step::reply_and_finish(reply, next))
            }
            (
                State::DeviceAwaitingRound4 {
                    kept,
                    server_proof_commitment,
                    server_zero_seed_commitment,
                    transcript,
                },
                Decoded::Round4(round4),
            ) => {
                let round4 = *round4;
                if !bool::from(round4.transcript.ct_eq(&transcript)) {
                    return Err(MpcError::Rejected(
                        "the server saw a different transcript".into(),
                    ));
                }
                let server_proof = ProofCommitment {
                    index: engine::index(Role::Server)?,
                    proof: round4.proof,
                    commitment: server_proof_commitment,
                };
                let next = phase4(
                    pairing,
                    kept,
                    server_proof,
                    server_zero_seed_commitment,
                    round4.zero_seed,
                    round4.ot_setup,
                )?;
                Ok(Step::finish(next))
            }
            _ => Err(MpcError::InvalidState(
                "refresh state and message disagree".into(),
            )),
        }
    }

    /// The session's bytes, to store between messages. They hold secrets.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        state::encode(
            state::Kind::Refresh,
            self.role,
            &self.context,
            &self.session,
        )
    }

    /// A session stored with [`Refresh::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let (role, context, session) = state::decode(state::Kind::Refresh, bytes)?;
        Ok(Self {
            role,
            context,
            session,
        })
    }

    fn refresh_id(&self, device_nonce: &[u8; 32], server_nonce: &[u8; 32]) -> [u8; 32] {
        hash_parts(
            "refresh engine session",
            &[
                self.context.as_bytes(),
                &self.session.pairing_id,
                &self.session.epoch.to_be_bytes(),
                device_nonce,
                server_nonce,
            ],
        )
    }

    fn open<T: DeserializeOwned>(&self, message: &[u8], round: u8) -> Result<T, MpcError> {
        Envelope::open(
            message,
            Protocol::Refresh,
            self.context,
            round,
            self.role.peer(),
        )
    }

    fn seal<T: Serialize>(&self, round: u8, message: &T) -> Result<Vec<u8>, MpcError> {
        Envelope::seal(Protocol::Refresh, self.context, round, self.role, message)
    }
}

enum Decoded {
    Round1(Round1),
    Round2(Round2),
    Round3(Box<Round3>),
    Round4(Box<Round4>),
}

impl Decoded {
    /// As in key generation: the engine's routing fields must name peer → us, before the session's
    /// state is touched.
    fn check(&self, me: Role) -> Result<(), MpcError> {
        match self {
            Self::Round1(_) => Ok(()),
            Self::Round2(round) => engine::check_route(
                &round.zero_seed_commitment.parties,
                me,
                "zero seed commitment",
            ),
            Self::Round3(round) => {
                engine::check_sender(round.proof.index, me, "proof")?;
                engine::check_point(&round.proof.proof.point, "proof")?;
                engine::check_route(
                    &round.zero_seed_commitment.parties,
                    me,
                    "zero seed commitment",
                )?;
                engine::check_route(&round.zero_seed.parties, me, "zero seed")?;
                engine::check_route(&round.ot_setup.parties, me, "OT setup")
            }
            Self::Round4(round) => {
                engine::check_point(&round.proof.point, "proof")?;
                engine::check_route(&round.zero_seed.parties, me, "zero seed")?;
                engine::check_route(&round.ot_setup.parties, me, "OT setup")
            }
        }
    }
}

#[allow(clippy::type_complexity)]
fn phases_2_and_3(
    pairing: &Pairing,
    refresh_id: [u8; 32],
    fragments: &[Scalar],
) -> Result<
    (
        Kept,
        TransmitInitZeroSharePhase2to4,
        TransmitInitZeroSharePhase3to4,
        TransmitInitMulPhase3to4<Curve>,
    ),
    MpcError,
> {
    let party = &pairing.party;
    let (correction, own_proof, mut zero_kept2, zero_transmit2) =
        party.refresh_complete_phase2(&refresh_id, fragments);
    let (zero_kept, zero_transmit3, mul_kept, mul_transmit) =
        party.refresh_complete_phase3(&refresh_id, &zero_kept2);
    engine::wipe_phase2_secrets(&mut zero_kept2);
    let kept = Kept {
        refresh_id,
        correction,
        own_proof,
        zero_kept,
        mul_kept,
    };
    Ok((
        kept,
        engine::only(zero_transmit2, "zero seed commitment")?,
        engine::only(zero_transmit3, "zero seed")?,
        engine::only(mul_transmit, "OT setup")?,
    ))
}

fn phase4(
    pairing: &Pairing,
    kept: Kept,
    peer_proof: ProofCommitment<Curve>,
    peer_zero_seed_commitment: TransmitInitZeroSharePhase2to4,
    peer_zero_seed: TransmitInitZeroSharePhase3to4,
    peer_ot_setup: TransmitInitMulPhase3to4<Curve>,
) -> Result<Pairing, MpcError> {
    // The routing fields and points were checked with the message (`Decoded::check`).
    let party = pairing
        .party
        .refresh_complete_phase4(
            &kept.refresh_id,
            &kept.correction,
            &[kept.own_proof.clone(), peer_proof],
            &kept.zero_kept,
            &[peer_zero_seed_commitment],
            &[peer_zero_seed],
            &kept.mul_kept,
            &[peer_ot_setup],
        )
        .map_err(engine::abort)?;
    pairing.refreshed(party)
}

/// A party's pairings around a refresh. After a refresh of epoch e the server holds e and e+1:
/// the device may not have received the last message, so e must keep working. The first time the
/// device uses e+1, e is dropped for good. A refresh the device never completed leaves an orphan
/// e+1 that the next refresh of e replaces. The device itself just replaces e with e+1 once it
/// has it.
#[derive(Debug)]
pub struct EpochSet {
    confirmed: Pairing,
    pending: Option<Pairing>,
}

impl EpochSet {
    /// One pairing, no refresh in flight.
    pub fn new(pairing: Pairing) -> Self {
        Self {
            confirmed: pairing,
            pending: None,
        }
    }

    /// Adds what a refresh produced. A refresh of the confirmed epoch replaces any earlier orphan;
    /// a refresh of the pending epoch proves the device holds it, so the pending epoch becomes the
    /// confirmed one first.
    pub fn add_refreshed(&mut self, next: Pairing) -> Result<(), MpcError> {
        if let Some(base_epoch) = next.epoch.checked_sub(1) {
            self.used(base_epoch);
        }
        let base = &self.confirmed;
        if next.public.id != base.public.id
            || next.role != base.role
            || Some(next.epoch) != base.epoch.checked_add(1)
        {
            return Err(MpcError::InvalidState(
                "not the next epoch of the confirmed pairing".into(),
            ));
        }
        self.pending = Some(next);
        Ok(())
    }

    /// The pairing of `epoch`, if held.
    pub fn get(&self, epoch: u64) -> Option<&Pairing> {
        std::iter::once(&self.confirmed)
            .chain(&self.pending)
            .find(|pairing| pairing.epoch == epoch)
    }

    /// The peer has used `epoch`: if it is the pending one, it becomes the confirmed one and the
    /// old epoch is dropped (and zeroized).
    pub fn used(&mut self, epoch: u64) {
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.epoch == epoch)
            && let Some(pending) = self.pending.take()
        {
            self.confirmed = pending;
        }
    }

    /// The newest pairing held.
    pub fn newest(&self) -> &Pairing {
        self.pending.as_ref().unwrap_or(&self.confirmed)
    }

    /// The epochs held, oldest first.
    pub fn epochs(&self) -> Vec<u64> {
        std::iter::once(&self.confirmed)
            .chain(&self.pending)
            .map(|pairing| pairing.epoch)
            .collect()
    }
}
