//! The seam to the DKLs23 engine (`dkls23-core`): type aliases, party indices, checks of the
//! routing fields of received engine messages, and the mapping of engine aborts to our errors.
//! Nothing outside this crate sees an engine type.

use std::collections::BTreeMap;

use dkls23_core::protocols::dkg::{
    KeepInitMulPhase3to4, KeepInitZeroSharePhase2to3, KeepInitZeroSharePhase3to4,
};
use dkls23_core::protocols::{Abort, AbortKind, Parameters, PartiesMessage, PartyIndex};
use k256::elliptic_curve::CurveAffine;
use k256::elliptic_curve::PrimeField;
use zeroize::{Zeroize, Zeroizing};

use crate::Role;
use crate::error::{DecodeError, MpcError};

pub(crate) type Curve = k256::Secp256k1;
pub(crate) type Scalar = k256::Scalar;
pub(crate) type Point = k256::AffinePoint;
pub(crate) type Party = dkls23_core::protocols::Party<Curve>;

/// The engine's 1-based party index of a role: the device is 1, the server 2 (the role's wire byte).
pub(crate) fn index(role: Role) -> Result<PartyIndex, MpcError> {
    PartyIndex::new(role.to_wire()).map_err(|_| MpcError::InvalidState("party index 0".into()))
}

/// 2-of-2.
pub(crate) fn parameters() -> Result<Parameters, MpcError> {
    Parameters::new(2, 2).map_err(|_| MpcError::InvalidState("2-of-2 parameters".into()))
}

/// The engine derives an address string for every key; we derive addresses ourselves.
pub(crate) fn no_address(_: &Point) -> String {
    String::new()
}

/// Checks a received engine message's self-declared sender and receiver. The engine trusts these
/// fields (and panics on some mismatches), so they are checked before it sees the message.
pub(crate) fn check_route(
    parties: &PartiesMessage,
    me: Role,
    field: &'static str,
) -> Result<(), MpcError> {
    if parties.sender == index(me.peer())? && parties.receiver == index(me)? {
        Ok(())
    } else {
        Err(DecodeError::WrongParty(field).into())
    }
}

/// Checks that a received engine index names the peer.
pub(crate) fn check_sender(
    sender: PartyIndex,
    me: Role,
    field: &'static str,
) -> Result<(), MpcError> {
    if sender == index(me.peer())? {
        Ok(())
    } else {
        Err(DecodeError::WrongParty(field).into())
    }
}

/// Rejects the identity where a point must be a real point.
pub(crate) fn check_point(point: &Point, field: &'static str) -> Result<(), MpcError> {
    if bool::from(point.is_identity()) {
        Err(DecodeError::InvalidPoint(field).into())
    } else {
        Ok(())
    }
}

/// Takes the single element a 2-party engine call returns for the peer.
pub(crate) fn only<T>(items: Vec<T>, what: &'static str) -> Result<T, MpcError> {
    let mut items = items.into_iter();
    match (items.next(), items.next()) {
        (Some(item), None) => Ok(item),
        _ => Err(MpcError::InvalidState(format!(
            "expected one {what} for the peer"
        ))),
    }
}

/// Maps an engine abort. Bans (failed OT / multiplication consistency checks) are terminal;
/// everything else only ends the session. Signing's last step has its own rule
/// ([`final_step_abort`]).
pub(crate) fn abort(error: Abort) -> MpcError {
    match error.kind {
        AbortKind::BanCounterparty(_) => MpcError::CounterpartyCheated(error.description()),
        AbortKind::Recoverable => MpcError::Rejected(error.description()),
    }
}

/// In signing's last step every failure (a signature that does not verify, a zero denominator)
/// means the peer's broadcast was wrong, which an honest peer over an authenticated channel never
/// sends: terminal, as design §4 decides, so a peer cannot probe the final check repeatedly.
pub(crate) fn final_step_abort(error: Abort) -> MpcError {
    MpcError::CounterpartyCheated(error.description())
}

/// Fresh randomness from the OS (WebCrypto in browsers).
pub(crate) fn random_bytes() -> Result<[u8; 32], MpcError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| MpcError::Randomness(error.to_string()))?;
    Ok(bytes)
}

/// A nonzero scalar from the OS's randomness.
pub(crate) fn random_scalar() -> Result<Scalar, MpcError> {
    loop {
        let bytes = Zeroizing::new(random_bytes()?);
        let scalar: Option<Scalar> = Scalar::from_repr((*bytes).into()).into();
        if let Some(scalar) = scalar.filter(|scalar| !bool::from(scalar.is_zero())) {
            return Ok(scalar);
        }
    }
}

/// A 96-bit AES-GCM nonce from the OS's randomness.
pub(crate) fn random_nonce() -> Result<[u8; 12], MpcError> {
    let bytes = random_bytes()?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&bytes[..12]);
    Ok(nonce)
}

/// Wipes the zero-share seeds the engine's phase 2 keeps for phase 3.
pub(crate) fn wipe_phase2_secrets(
    zero_kept: &mut BTreeMap<PartyIndex, KeepInitZeroSharePhase2to3>,
) {
    for kept in zero_kept.values_mut() {
        kept.seed.zeroize();
        kept.salt.zeroize();
    }
}

/// Wipes the secrets the engine's key-generation and refresh phases leave for their last phase.
/// The engine does not zeroize these types itself, so the structs holding them do it on drop.
pub(crate) fn wipe_phase3_secrets(
    zero_kept: &mut BTreeMap<PartyIndex, KeepInitZeroSharePhase3to4>,
    mul_kept: &mut BTreeMap<PartyIndex, KeepInitMulPhase3to4<Curve>>,
) {
    for kept in zero_kept.values_mut() {
        kept.seed.zeroize();
    }
    for kept in mul_kept.values_mut() {
        kept.ot_sender.s.zeroize();
        kept.nonce.zeroize();
        kept.ot_receiver.seed.zeroize();
        kept.correlation.zeroize();
        kept.vec_r.zeroize();
    }
}
