//! The stored form of a [`Pairing`]: our own versioned, field-by-field format.
//!
//! Pairings live for years, far longer than any release of the engine, so they are not stored as
//! the engine's serde bytes: every field is written here explicitly, and a future engine version
//! only needs this module updated, never an old build to read old pairings.
//!
//! Version 1, integers big-endian, scalars 32 bytes, points 33 bytes compressed SEC1:
//!
//! ```text
//! version u8 = 1 | role u8 | epoch u64
//! id [32] | root public key [33] | chain code [32] | device public share [33] | server public share [33]
//! engine session id: len u16, bytes | share scalar
//! zero-share seeds: count u8, each { lowest index u8 (0/1), counterparty u8, seed [32] }
//! OT senders:   count u8, each { counterparty u8, gadget: count u16 + scalars,
//!                                correlation: bit count u16 + packed bits, seeds: count u16 + [32]s }
//! OT receivers: count u8, each { counterparty u8, gadget: count u16 + scalars,
//!                                seeds0: count u16 + [32]s, seeds1: count u16 + [32]s }
//! derivation: depth u8 | child number u32 | parent fingerprint [4]
//! checksum [32] = H("pairing record", everything before it)
//! ```
//!
//! What follows from other fields is not stored but rebuilt: the engine parameters (2-of-2), the
//! party index (the role), the engine's copies of the key, share and chain code. On reading, the
//! checksum catches corruption anywhere in the record (the OT state included: a flipped seed would
//! otherwise surface later as the *peer* failing a consistency check, a terminal error blaming the
//! wrong party), and the structure is checked: the share matches its public share, X_d + S_d = X,
//! the MPC state names the peer and is complete or absent, and the root has no parent.

use std::collections::BTreeMap;

use dkls23_core::protocols::PartyIndex;
use dkls23_core::utilities::multiplication::{MulReceiver, MulSender};
use dkls23_core::utilities::zero_shares::SeedPair;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::GroupEncoding;
use serde::Serialize;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Role;
use crate::engine::{self, Curve, Point, Scalar};
use crate::error::MpcError;
use crate::pairing::{MpcState, Pairing, PairingPublic, compressed, lagrange};
use crate::session::hash_parts;

const FORMAT_VERSION: u8 = 1;

fn invalid(what: &str) -> MpcError {
    MpcError::InvalidState(format!("stored pairing: {what}"))
}

impl Pairing {
    /// The pairing's stored form. It holds the party's secret share: keep the bytes encrypted.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        let party = &self.party;
        let mut out = Writer(Zeroizing::new(Vec::with_capacity(64 * 1024)));
        out.u8(FORMAT_VERSION);
        out.u8(self.role.to_wire());
        out.bytes(&self.epoch.to_be_bytes());
        let public = &self.public;
        for field in [
            &public.id[..],
            &public.root_public_key,
            &public.chain_code,
            &public.device_public_share,
            &public.server_public_share,
        ] {
            out.bytes(field);
        }
        out.len16(party.session_id.len())?;
        out.bytes(&party.session_id);
        out.scalar(&party.poly_point);

        out.len8(party.zero_share.seeds.len())?;
        for pair in &party.zero_share.seeds {
            out.u8(u8::from(pair.lowest_index));
            out.u8(pair.index_counterparty.as_u8());
            out.bytes(&pair.seed);
        }
        out.len8(party.mul_senders.len())?;
        for (counterparty, sender) in &party.mul_senders {
            out.u8(counterparty.as_u8());
            out.scalars(&sender.public_gadget)?;
            out.bits(&sender.ote_sender.correlation)?;
            out.seeds(&sender.ote_sender.seeds)?;
        }
        out.len8(party.mul_receivers.len())?;
        for (counterparty, receiver) in &party.mul_receivers {
            out.u8(counterparty.as_u8());
            out.scalars(&receiver.public_gadget)?;
            out.seeds(&receiver.ote_receiver.seeds0)?;
            out.seeds(&receiver.ote_receiver.seeds1)?;
        }
        let derivation = &party.derivation_data;
        out.u8(derivation.depth);
        out.bytes(&derivation.child_number.to_be_bytes());
        out.bytes(&derivation.parent_fingerprint);
        Ok(seal(out.0))
    }

    /// Reads a pairing stored with [`Pairing::to_bytes`], checking it on the way.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let mut input = Reader(unseal(bytes)?);
        if input.u8()? != FORMAT_VERSION {
            return Err(invalid("unknown format version"));
        }
        let role = Role::from_wire(input.u8()?).map_err(|_| invalid("unknown role"))?;
        let epoch = u64::from_be_bytes(input.array()?);
        let public = PairingPublic {
            id: input.array()?,
            root_public_key: input.array()?,
            chain_code: input.array()?,
            device_public_share: input.array()?,
            server_public_share: input.array()?,
        };
        let key = point(&public.root_public_key)?;
        let shares = k256::ProjectivePoint::from(point(&public.device_public_share)?)
            + point(&public.server_public_share)?;
        if shares.to_affine() != key {
            return Err(invalid("the public shares do not sum to the key"));
        }
        let session_id_len = usize::from(input.u16()?);
        let session_id = input.take(session_id_len)?.to_vec();
        let share = input.scalar()?;
        check_share(role, &share, &public)?;

        let mut seeds = Vec::new();
        for _ in 0..input.u8()? {
            seeds.push(SeedPair {
                lowest_index: match input.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(invalid("bad flag")),
                },
                index_counterparty: input.index()?,
                seed: input.array()?,
            });
        }
        let mut mul_senders = BTreeMap::new();
        for _ in 0..input.u8()? {
            let counterparty = input.index()?;
            let sender = engine_shaped::<MulSender<Curve>>(&SenderShape {
                public_gadget: input.scalars()?,
                ote_sender: OteSenderShape {
                    correlation: input.bits()?,
                    seeds: input.seeds()?,
                },
            })?;
            if mul_senders.insert(counterparty, sender).is_some() {
                return Err(invalid("duplicate OT sender state"));
            }
        }
        let mut mul_receivers = BTreeMap::new();
        for _ in 0..input.u8()? {
            let counterparty = input.index()?;
            let receiver = engine_shaped::<MulReceiver<Curve>>(&ReceiverShape {
                public_gadget: input.scalars()?,
                ote_receiver: OteReceiverShape {
                    seeds0: input.seeds()?,
                    seeds1: input.seeds()?,
                },
            })?;
            if mul_receivers.insert(counterparty, receiver).is_some() {
                return Err(invalid("duplicate OT receiver state"));
            }
        }
        check_mpc_state(role, &seeds, &mul_senders, &mul_receivers)?;
        let (depth, child_number, parent_fingerprint) = (
            input.u8()?,
            u32::from_be_bytes(input.array()?),
            input.array()?,
        );
        if (depth, child_number, parent_fingerprint) != (0, 0, [0; 4]) {
            return Err(invalid("a pairing is a root key"));
        }
        if !input.0.is_empty() {
            return Err(invalid("trailing bytes"));
        }
        let mpc = MpcState {
            seeds,
            senders: mul_senders,
            receivers: mul_receivers,
        };
        Self::from_parts(role, epoch, public, session_id, share, mpc)
    }
}

fn seal(mut body: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let checksum = hash_parts("pairing record", &[&body]);
    body.extend_from_slice(&checksum);
    body
}

fn unseal(bytes: &[u8]) -> Result<&[u8], MpcError> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or_else(|| invalid("truncated"))?;
    let (body, checksum) = bytes.split_at(body_len);
    if bool::from(hash_parts("pairing record", &[body]).ct_eq(checksum)) {
        Ok(body)
    } else {
        Err(invalid("checksum mismatch: the record is corrupted"))
    }
}

/// The MPC state is all there (one entry, for the peer) or all absent (a restored pairing).
fn check_mpc_state(
    role: Role,
    seeds: &[SeedPair],
    senders: &BTreeMap<PartyIndex, MulSender<Curve>>,
    receivers: &BTreeMap<PartyIndex, MulReceiver<Curve>>,
) -> Result<(), MpcError> {
    let peer = engine::index(role.peer())?;
    match (seeds, senders.len(), receivers.len()) {
        ([], 0, 0) => Ok(()),
        ([seed], 1, 1) => {
            let sender = senders
                .get(&peer)
                .ok_or_else(|| invalid("OT sender state for another party"))?;
            let receiver = receivers
                .get(&peer)
                .ok_or_else(|| invalid("OT receiver state for another party"))?;
            let consistent = seed.index_counterparty == peer
                && seed.lowest_index == (role == Role::Device)
                && !sender.public_gadget.is_empty()
                && sender.public_gadget.len() == receiver.public_gadget.len()
                && sender.ote_sender.correlation.len() == sender.ote_sender.seeds.len()
                && receiver.ote_receiver.seeds0.len() == receiver.ote_receiver.seeds1.len()
                && sender.ote_sender.seeds.len() == receiver.ote_receiver.seeds0.len();
            if consistent {
                Ok(())
            } else {
                Err(invalid("inconsistent MPC state"))
            }
        }
        _ => Err(invalid("incomplete MPC state")),
    }
}

/// The share must be the one behind the stored public share of its role.
fn check_share(role: Role, share: &Scalar, public: &PairingPublic) -> Result<(), MpcError> {
    let expected = match role {
        Role::Device => &public.device_public_share,
        Role::Server => &public.server_public_share,
    };
    let actual = (k256::ProjectivePoint::GENERATOR * (*share * lagrange(role))).to_affine();
    if &compressed(&actual) == expected {
        Ok(())
    } else {
        Err(invalid("the share does not match its public share"))
    }
}

fn point(bytes: &[u8; 33]) -> Result<Point, MpcError> {
    let point = Option::<Point>::from(Point::from_bytes(&(*bytes).into()))
        .ok_or_else(|| invalid("bad point"))?;
    engine::check_point(&point, "stored key").map_err(|_| invalid("identity key"))?;
    Ok(point)
}

// The engine's OT state types have a private marker field, so they are built through their serde
// shape: these mirrors serialize exactly as the engine's types deserialize. They hold OT secrets,
// so they are wiped when dropped.
#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct SenderShape {
    public_gadget: Vec<Scalar>,
    ote_sender: OteSenderShape,
}
#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct OteSenderShape {
    correlation: Vec<bool>,
    seeds: Vec<[u8; 32]>,
}
#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct ReceiverShape {
    public_gadget: Vec<Scalar>,
    ote_receiver: OteReceiverShape,
}
#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct OteReceiverShape {
    seeds0: Vec<[u8; 32]>,
    seeds1: Vec<[u8; 32]>,
}

fn engine_shaped<T: serde::de::DeserializeOwned>(shape: &impl Serialize) -> Result<T, MpcError> {
    let bytes = Zeroizing::new(
        crate::state::to_exact_vec(shape).map_err(|_| invalid("cannot re-encode OT state"))?,
    );
    postcard::from_bytes(&bytes).map_err(|_| invalid("OT state does not fit the engine"))
}

struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    fn u8(&mut self, byte: u8) {
        self.0.push(byte);
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn len8(&mut self, len: usize) -> Result<(), MpcError> {
        self.u8(u8::try_from(len).map_err(|_| invalid("too many entries"))?);
        Ok(())
    }
    fn len16(&mut self, len: usize) -> Result<(), MpcError> {
        self.bytes(
            &u16::try_from(len)
                .map_err(|_| invalid("too many entries"))?
                .to_be_bytes(),
        );
        Ok(())
    }
    fn scalar(&mut self, scalar: &Scalar) {
        self.bytes(&scalar.to_repr());
    }
    fn scalars(&mut self, scalars: &[Scalar]) -> Result<(), MpcError> {
        self.len16(scalars.len())?;
        scalars.iter().for_each(|scalar| self.scalar(scalar));
        Ok(())
    }
    fn bits(&mut self, bits: &[bool]) -> Result<(), MpcError> {
        self.len16(bits.len())?;
        for chunk in bits.chunks(8) {
            self.u8(chunk
                .iter()
                .enumerate()
                .fold(0, |byte, (i, bit)| byte | (u8::from(*bit) << i)));
        }
        Ok(())
    }
    fn seeds(&mut self, seeds: &[[u8; 32]]) -> Result<(), MpcError> {
        self.len16(seeds.len())?;
        seeds.iter().for_each(|seed| self.bytes(seed));
        Ok(())
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], MpcError> {
        let (head, rest) = self
            .0
            .split_at_checked(len)
            .ok_or_else(|| invalid("truncated"))?;
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MpcError> {
        self.take(N)?.try_into().map_err(|_| invalid("truncated"))
    }
    fn u8(&mut self) -> Result<u8, MpcError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, MpcError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn index(&mut self) -> Result<PartyIndex, MpcError> {
        PartyIndex::new(self.u8()?).map_err(|_| invalid("party index 0"))
    }
    fn scalar(&mut self) -> Result<Scalar, MpcError> {
        Option::from(Scalar::from_repr(self.array::<32>()?.into()))
            .ok_or_else(|| invalid("scalar out of range"))
    }
    fn scalars(&mut self) -> Result<Vec<Scalar>, MpcError> {
        (0..self.u16()?).map(|_| self.scalar()).collect()
    }
    fn bits(&mut self) -> Result<Vec<bool>, MpcError> {
        let count = usize::from(self.u16()?);
        let bytes = self.take(count.div_ceil(8))?;
        let bits = bytes
            .iter()
            .flat_map(|byte| (0..8).map(move |i| byte >> i & 1 == 1));
        Ok(bits.take(count).collect())
    }
    fn seeds(&mut self) -> Result<Vec<[u8; 32]>, MpcError> {
        (0..self.u16()?).map(|_| self.array()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keygen, SessionId};

    fn pairings() -> (Pairing, Pairing) {
        let context = SessionId::derive("keygen", &[b"pairing-format"]);
        let (mut device, round1) = Keygen::start_device(context).unwrap();
        let mut server = Keygen::new_server(context);
        let round2 = server.handle(&round1).unwrap().reply.unwrap();
        let round3 = device.handle(&round2).unwrap().reply.unwrap();
        let step = server.handle(&round3).unwrap();
        let device_pairing = device.handle(&step.reply.unwrap()).unwrap().output.unwrap();
        (device_pairing, step.output.unwrap())
    }

    /// Edits a record's body and seals it again, as a writer with a bug (or an attacker who can
    /// recompute the checksum) would: the structural checks must still refuse it.
    fn edited(pairing: &Pairing, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let bytes = pairing.to_bytes().unwrap();
        let mut body = Zeroizing::new(unseal(&bytes).unwrap().to_vec());
        edit(&mut body);
        Pairing::from_bytes(&seal(body))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn structure_is_checked_behind_the_checksum() {
        let (device, server) = pairings();
        let role_at = 1;
        let share_at = 1 + 1 + 8 + 32 + 33 + 32 + 33 + 33 + 2 + device.party.session_id.len();
        let public_share_at = 1 + 1 + 8 + 32 + 33 + 32;
        assert!(edited(&device, |b| b[0] = 2).contains("unknown format version"));
        assert!(
            edited(&device, |b| b[share_at + 31] ^= 1).contains("does not match its public share")
        );
        assert!(
            edited(&server, |b| b[role_at] = Role::Device.to_wire())
                .contains("does not match its public share")
        );
        // A valid point that is not the device's share: the server's share in its place.
        let server_share_at = public_share_at + 33;
        assert!(
            edited(&device, |b| {
                let server_share = b[server_share_at..server_share_at + 33].to_vec();
                b[public_share_at..public_share_at + 33].copy_from_slice(&server_share);
            })
            .contains("public shares do not sum")
        );
        assert!(
            edited(&device, |b| {
                let last = b.len() - 1;
                b[last] = 1;
            })
            .contains("a pairing is a root key")
        );
        assert!(edited(&device, |b| b.push(0)).contains("trailing bytes"));
        assert!(edited(&device, |b| b.truncate(b.len() - 1)).contains("truncated"));
        // Both intact records still load.
        Pairing::from_bytes(&device.to_bytes().unwrap()).unwrap();
        Pairing::from_bytes(&server.to_bytes().unwrap()).unwrap();
    }
}
