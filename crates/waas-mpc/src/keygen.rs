//! Two-party key generation (DKLs23 DKG, 2-of-2), in four messages and two HTTP round trips:
//!
//! | round | from   | carries                                                                    |
//! |-------|--------|----------------------------------------------------------------------------|
//! | 1     | device | device nonce; the device's polynomial point for the server                  |
//! | 2     | server | server nonce; its polynomial point for the device; its commitments (proof, zero-share seed, chain code) |
//! | 3     | device | the device's commitments *and* openings, its OT setup                       |
//! | 4     | server | the server's openings and OT setup; the transcript hash of rounds 1–3       |
//!
//! The server commits (round 2) before it sees anything of the device's but one random polynomial
//! point, and the device opens (round 3) only after the server has committed, so neither side can
//! choose its key share or chain-code contribution after seeing the other's. The engine session
//! id hashes the caller's context and both nonces, so both sides contribute to its freshness.
//! See docs/protocol/keygen.md.

use std::collections::BTreeMap;

use dkls23_core::protocols::PartyIndex;
use dkls23_core::protocols::dkg::{
    self, BroadcastDerivationPhase2to4, BroadcastDerivationPhase3to4, KeepInitMulPhase3to4,
    KeepInitZeroSharePhase3to4, ProofCommitment, SessionData, TransmitInitMulPhase3to4,
    TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23_core::utilities::hashes::HashOutput;
use dkls23_core::utilities::proofs::DLogProof;
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
    chain_code_commitment: BroadcastDerivationPhase2to4,
}

#[derive(Serialize, Deserialize)]
struct Round3 {
    proof: ProofCommitment<Curve>,
    zero_seed_commitment: TransmitInitZeroSharePhase2to4,
    chain_code_commitment: BroadcastDerivationPhase2to4,
    zero_seed: TransmitInitZeroSharePhase3to4,
    ot_setup: TransmitInitMulPhase3to4<Curve>,
    chain_code: BroadcastDerivationPhase3to4,
}

#[derive(Serialize, Deserialize)]
struct Round4 {
    proof: DLogProof<Curve>,
    zero_seed: TransmitInitZeroSharePhase3to4,
    ot_setup: TransmitInitMulPhase3to4<Curve>,
    chain_code: BroadcastDerivationPhase3to4,
    transcript: [u8; 32],
}

/// What a party keeps from phase 3 until phase 4 of the engine's DKG.
#[derive(Serialize, Deserialize)]
struct Phase3Kept {
    data: SessionData,
    poly_point: Scalar,
    own_proof: ProofCommitment<Curve>,
    zero_kept: BTreeMap<PartyIndex, KeepInitZeroSharePhase3to4>,
    mul_kept: BTreeMap<PartyIndex, KeepInitMulPhase3to4<Curve>>,
    own_chain_code_commitment: BroadcastDerivationPhase2to4,
    own_chain_code: BroadcastDerivationPhase3to4,
}

impl Drop for Phase3Kept {
    fn drop(&mut self) {
        self.poly_point.zeroize();
        engine::wipe_phase3_secrets(&mut self.zero_kept, &mut self.mul_kept);
    }
}

// One per session, moved rarely and never held in collections: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
enum State {
    DeviceAwaitingRound2 {
        device_nonce: [u8; 32],
        fragments: Zeroizing<Vec<Scalar>>,
        round1_hash: [u8; 32],
    },
    DeviceAwaitingRound4 {
        kept: Phase3Kept,
        server_proof_commitment: HashOutput,
        server_zero_seed_commitment: TransmitInitZeroSharePhase2to4,
        server_chain_code_commitment: BroadcastDerivationPhase2to4,
        transcript: [u8; 32],
    },
    ServerAwaitingRound1,
    ServerAwaitingRound3 {
        kept: Phase3Kept,
        own_zero_seed: TransmitInitZeroSharePhase3to4,
        own_ot_setup: TransmitInitMulPhase3to4<Curve>,
        round1_hash: [u8; 32],
        round2_hash: [u8; 32],
    },
    Over,
}

/// One party's key-generation session. Feed it the peer's messages with [`Keygen::handle`]; store
/// it between messages with [`Keygen::to_bytes`] (it holds secrets: keep the bytes encrypted).
pub struct Keygen {
    role: Role,
    context: SessionId,
    state: State,
}

impl Keygen {
    /// Starts the device's side: returns the session and the round-1 message for the server.
    /// `context` names the operation both sides run (e.g. derived from the operation's name).
    pub fn start_device(context: SessionId) -> Result<(Self, Vec<u8>), MpcError> {
        let device_nonce = engine::random_bytes()?;
        let data = session_data(Role::Device, &[0; 32])?;
        // The polynomial does not depend on the session id, so round 1 can go before it is known.
        let fragments = Zeroizing::new(dkg::phase1::<Curve>(&data));
        let for_server = *fragments
            .get(usize::from(Role::Server.to_wire() - 1))
            .ok_or_else(|| MpcError::InvalidState("no fragment for the server".into()))?;
        let message = Envelope::seal(
            Protocol::Keygen,
            context,
            1,
            Role::Device,
            &Round1 {
                device_nonce,
                fragment: for_server,
            },
        )?;
        let round1_hash = hash_parts("keygen message", &[&message]);
        let state = State::DeviceAwaitingRound2 {
            device_nonce,
            fragments,
            round1_hash,
        };
        Ok((
            Self {
                role: Role::Device,
                context,
                state,
            },
            message,
        ))
    }

    /// The server's side, waiting for the device's round-1 message.
    pub fn new_server(context: SessionId) -> Self {
        Self {
            role: Role::Server,
            context,
            state: State::ServerAwaitingRound1,
        }
    }

    /// Takes the peer's next message. A message that is malformed, or for another session, round
    /// or sender, is rejected and leaves the session as it was; a failed check ends the session.
    pub fn handle(&mut self, message: &[u8]) -> Result<Step<Pairing>, MpcError> {
        // Decode and check before taking the state, so a bad message changes nothing.
        let step = match &self.state {
            State::ServerAwaitingRound1 => Decoded::Round1(self.open(message, 1)?),
            State::DeviceAwaitingRound2 { .. } => Decoded::Round2(self.open(message, 2)?),
            State::ServerAwaitingRound3 { .. } => Decoded::Round3(Box::new(self.open(message, 3)?)),
            State::DeviceAwaitingRound4 { .. } => Decoded::Round4(Box::new(self.open(message, 4)?)),
            State::Over => return Err(MpcError::SessionOver),
        };
        step.check(self.role)?;
        let message_hash = hash_parts("keygen message", &[message]);
        let state = std::mem::replace(&mut self.state, State::Over);
        let (next, step) = match (state, step) {
            (State::ServerAwaitingRound1, Decoded::Round1(round1)) => {
                self.server_round1(round1, message_hash)?
            }
            (
                State::DeviceAwaitingRound2 {
                    device_nonce,
                    fragments,
                    round1_hash,
                },
                Decoded::Round2(round2),
            ) => self.device_round2(device_nonce, fragments, round1_hash, message_hash, round2)?,
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
                    "keygen transcript",
                    &[&round1_hash, &round2_hash, &message_hash],
                );
                (
                    State::Over,
                    server_round3(
                        kept,
                        own_zero_seed,
                        own_ot_setup,
                        transcript,
                        *round3,
                        self.context,
                    )?,
                )
            }
            (
                State::DeviceAwaitingRound4 {
                    kept,
                    server_proof_commitment,
                    server_zero_seed_commitment,
                    server_chain_code_commitment,
                    transcript,
                },
                Decoded::Round4(round4),
            ) => (
                State::Over,
                device_round4(
                    kept,
                    server_proof_commitment,
                    server_zero_seed_commitment,
                    server_chain_code_commitment,
                    transcript,
                    *round4,
                )?,
            ),
            _ => {
                return Err(MpcError::InvalidState(
                    "keygen state and message disagree".into(),
                ));
            }
        };
        self.state = next;
        Ok(step)
    }

    fn open<T: serde::de::DeserializeOwned>(
        &self,
        message: &[u8],
        round: u8,
    ) -> Result<T, MpcError> {
        Envelope::open(
            message,
            Protocol::Keygen,
            self.context,
            round,
            self.role.peer(),
        )
    }

    fn server_round1(
        &self,
        round1: Round1,
        round1_hash: [u8; 32],
    ) -> Result<(State, Step<Pairing>), MpcError> {
        let server_nonce = engine::random_bytes()?;
        let session_id = engine_session_id(&self.context, &round1.device_nonce, &server_nonce);
        let data = session_data(Role::Server, &session_id)?;
        let fragments = Zeroizing::new(dkg::phase1::<Curve>(&data));
        let (for_device, mine) = match fragments.as_slice() {
            [for_device, mine] => (*for_device, *mine),
            _ => {
                return Err(MpcError::InvalidState(
                    "expected two polynomial points".into(),
                ));
            }
        };
        let (kept, zero_seed_commitment, own_zero_seed, own_ot_setup) =
            phases_2_and_3(data, &[mine, round1.fragment])?;
        let reply = Envelope::seal(
            Protocol::Keygen,
            self.context,
            2,
            Role::Server,
            &Round2 {
                server_nonce,
                fragment: for_device,
                proof_commitment: kept.own_proof.commitment,
                zero_seed_commitment,
                chain_code_commitment: kept.own_chain_code_commitment.clone(),
            },
        )?;
        let round2_hash = hash_parts("keygen message", &[&reply]);
        let state = State::ServerAwaitingRound3 {
            kept,
            own_zero_seed,
            own_ot_setup,
            round1_hash,
            round2_hash,
        };
        Ok((state, Step::reply(reply)))
    }

    fn device_round2(
        &self,
        device_nonce: [u8; 32],
        fragments: Zeroizing<Vec<Scalar>>,
        round1_hash: [u8; 32],
        round2_hash: [u8; 32],
        round2: Round2,
    ) -> Result<(State, Step<Pairing>), MpcError> {
        let session_id = engine_session_id(&self.context, &device_nonce, &round2.server_nonce);
        let data = session_data(Role::Device, &session_id)?;
        let mine = *fragments
            .first()
            .ok_or_else(|| MpcError::InvalidState("no own polynomial point".into()))?;
        let (kept, zero_seed_commitment, zero_seed, ot_setup) =
            phases_2_and_3(data, &[mine, round2.fragment])?;
        let reply = Envelope::seal(
            Protocol::Keygen,
            self.context,
            3,
            Role::Device,
            &Round3 {
                proof: kept.own_proof.clone(),
                zero_seed_commitment,
                chain_code_commitment: kept.own_chain_code_commitment.clone(),
                zero_seed,
                ot_setup,
                chain_code: kept.own_chain_code.clone(),
            },
        )?;
        let round3_hash = hash_parts("keygen message", &[&reply]);
        let state = State::DeviceAwaitingRound4 {
            kept,
            server_proof_commitment: round2.proof_commitment,
            server_zero_seed_commitment: round2.zero_seed_commitment,
            server_chain_code_commitment: round2.chain_code_commitment,
            transcript: hash_parts(
                "keygen transcript",
                &[&round1_hash, &round2_hash, &round3_hash],
            ),
        };
        Ok((state, Step::reply(reply)))
    }

    /// The session's bytes, to store between messages. They hold secret key material.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        state::encode(state::Kind::Keygen, self.role, &self.context, &self.state)
    }

    /// A session stored with [`Keygen::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let (role, context, state) = state::decode(state::Kind::Keygen, bytes)?;
        Ok(Self {
            role,
            context,
            state,
        })
    }
}

enum Decoded {
    Round1(Round1),
    Round2(Round2),
    Round3(Box<Round3>),
    Round4(Box<Round4>),
}

impl Decoded {
    /// The engine trusts its messages' sender and receiver fields (it does not bind commitments or
    /// proofs to them, and panics on some mismatches): each must name the peer as sender and us as
    /// receiver. Checked before the session's state is touched.
    fn check(&self, me: Role) -> Result<(), MpcError> {
        match self {
            Self::Round1(_) => Ok(()),
            Self::Round2(round) => {
                engine::check_route(
                    &round.zero_seed_commitment.parties,
                    me,
                    "zero seed commitment",
                )?;
                engine::check_sender(
                    round.chain_code_commitment.sender_index,
                    me,
                    "chain code commitment",
                )
            }
            Self::Round3(round) => {
                engine::check_sender(round.proof.index, me, "proof")?;
                engine::check_point(&round.proof.proof.point, "proof")?;
                engine::check_route(
                    &round.zero_seed_commitment.parties,
                    me,
                    "zero seed commitment",
                )?;
                engine::check_route(&round.zero_seed.parties, me, "zero seed")?;
                engine::check_route(&round.ot_setup.parties, me, "OT setup")?;
                engine::check_sender(
                    round.chain_code_commitment.sender_index,
                    me,
                    "chain code commitment",
                )?;
                engine::check_sender(round.chain_code.sender_index, me, "chain code")
            }
            Self::Round4(round) => {
                engine::check_point(&round.proof.point, "proof")?;
                engine::check_route(&round.zero_seed.parties, me, "zero seed")?;
                engine::check_route(&round.ot_setup.parties, me, "OT setup")?;
                engine::check_sender(round.chain_code.sender_index, me, "chain code")
            }
        }
    }
}

fn session_data(role: Role, session_id: &[u8; 32]) -> Result<SessionData, MpcError> {
    Ok(SessionData {
        parameters: engine::parameters()?,
        party_index: engine::index(role)?,
        session_id: session_id.to_vec(),
    })
}

fn engine_session_id(
    context: &SessionId,
    device_nonce: &[u8; 32],
    server_nonce: &[u8; 32],
) -> [u8; 32] {
    hash_parts(
        "keygen engine session",
        &[context.as_bytes(), device_nonce, server_nonce],
    )
}

/// Engine phases 2 and 3 for one party: its commitments, then its openings and OT setup.
#[allow(clippy::type_complexity)]
fn phases_2_and_3(
    data: SessionData,
    fragments: &[Scalar],
) -> Result<
    (
        Phase3Kept,
        TransmitInitZeroSharePhase2to4,
        TransmitInitZeroSharePhase3to4,
        TransmitInitMulPhase3to4<Curve>,
    ),
    MpcError,
> {
    let (
        poly_point,
        own_proof,
        mut zero_kept2,
        zero_transmit2,
        chain_code_kept,
        own_chain_code_commitment,
    ) = dkg::phase2::<Curve>(&data, fragments);
    let (zero_kept, zero_transmit3, mul_kept, mul_transmit, own_chain_code) =
        dkg::phase3::<Curve>(&data, &zero_kept2, &chain_code_kept);
    engine::wipe_phase2_secrets(&mut zero_kept2);
    let kept = Phase3Kept {
        data,
        poly_point,
        own_proof,
        zero_kept,
        mul_kept,
        own_chain_code_commitment,
        own_chain_code,
    };
    Ok((
        kept,
        engine::only(zero_transmit2, "zero seed commitment")?,
        engine::only(zero_transmit3, "zero seed")?,
        engine::only(mul_transmit, "OT setup")?,
    ))
}

/// Engine phase 4: checks every opening against its commitment and the OT setup, and yields the
/// party's pairing.
#[allow(clippy::too_many_arguments)]
fn phase4(
    me: Role,
    kept: Phase3Kept,
    peer_proof: ProofCommitment<Curve>,
    peer_zero_seed_commitment: TransmitInitZeroSharePhase2to4,
    peer_zero_seed: TransmitInitZeroSharePhase3to4,
    peer_ot_setup: TransmitInitMulPhase3to4<Curve>,
    peer_chain_code_commitment: BroadcastDerivationPhase2to4,
    peer_chain_code: BroadcastDerivationPhase3to4,
) -> Result<Pairing, MpcError> {
    // The routing fields and points were checked with the message (`Decoded::check`).
    let mine = engine::index(me)?;
    let peer = engine::index(me.peer())?;
    let chain_code_commitments = BTreeMap::from([
        (mine, kept.own_chain_code_commitment.clone()),
        (peer, peer_chain_code_commitment),
    ]);
    let chain_codes =
        BTreeMap::from([(mine, kept.own_chain_code.clone()), (peer, peer_chain_code)]);
    let (party, package) = dkg::phase4::<Curve>(
        &kept.data,
        &kept.poly_point,
        &[kept.own_proof.clone(), peer_proof],
        &kept.zero_kept,
        &[peer_zero_seed_commitment],
        &[peer_zero_seed],
        &kept.mul_kept,
        &[peer_ot_setup],
        &chain_code_commitments,
        &chain_codes,
        engine::no_address,
    )
    .map_err(engine::abort)?;
    Pairing::from_keygen(me, party, &package)
}

fn server_round3(
    kept: Phase3Kept,
    own_zero_seed: TransmitInitZeroSharePhase3to4,
    own_ot_setup: TransmitInitMulPhase3to4<Curve>,
    transcript: [u8; 32],
    round3: Round3,
    context: SessionId,
) -> Result<Step<Pairing>, MpcError> {
    let own_proof = kept.own_proof.proof.clone();
    let own_chain_code = kept.own_chain_code.clone();
    let pairing = phase4(
        Role::Server,
        kept,
        round3.proof,
        round3.zero_seed_commitment,
        round3.zero_seed,
        round3.ot_setup,
        round3.chain_code_commitment,
        round3.chain_code,
    )?;
    let reply = Envelope::seal(
        Protocol::Keygen,
        context,
        4,
        Role::Server,
        &Round4 {
            proof: own_proof,
            zero_seed: own_zero_seed,
            ot_setup: own_ot_setup,
            chain_code: own_chain_code,
            transcript,
        },
    )?;
    Ok(Step::reply_and_finish(reply, pairing))
}

fn device_round4(
    kept: Phase3Kept,
    server_proof_commitment: HashOutput,
    server_zero_seed_commitment: TransmitInitZeroSharePhase2to4,
    server_chain_code_commitment: BroadcastDerivationPhase2to4,
    transcript: [u8; 32],
    round4: Round4,
) -> Result<Step<Pairing>, MpcError> {
    // Both sides must have seen the same rounds 1-3; otherwise someone in between rewrote them.
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
    let pairing = phase4(
        Role::Device,
        kept,
        server_proof,
        server_zero_seed_commitment,
        round4.zero_seed,
        round4.ot_setup,
        server_chain_code_commitment,
        round4.chain_code,
    )?;
    Ok(Step::finish(pairing))
}
