//! Backup and recovery, the cryptography both parties share (docs/protocol/backup.md).
//!
//! A backup is both additive shares of a pairing (x_d, the device's; s_d, the server's) encrypted
//! to a fresh 2-of-2 *decryption* key P = P_dev + P_srv. The device's decryption half d_dev leaves
//! the device as the backup string, for the user to keep; the server keeps d_srv and both
//! ciphertexts. Neither side can open either ciphertext alone, and each opening needs the other's
//! *partial decryption* d_i·R, proven correct:
//!
//! - each half of P comes with a Schnorr proof of knowledge (dkls23-core's Fischlin-transformed
//!   `DLogProof`) bound to the backup, the role and the point, so neither party can choose its
//!   half after seeing the other's to control P (a rogue key);
//! - each ciphertext is ElGamal-KEM: R = r·G, k = HKDF-SHA256(r·P ‖ R ‖ P, the context), then
//!   AES-256-GCM with the context as AAD; the context names the group, the backup, the pairing,
//!   the epoch and which half it holds, so a ciphertext does not open as another;
//! - a partial decryption D_i = d_i·R comes with a Chaum–Pedersen proof (dkls23-core's
//!   `CPProof`, made non-interactive here with a challenge hashing the whole statement) that
//!   log_G(P_i) = log_R(D_i), bound to the backup, the role and the half, so a party cannot hand
//!   out a wrong partial, nor use one given for one ciphertext on the other.
//!
//! Nothing here holds a network, storage or clock; the operations' state machines and the stores
//! call these steps.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use dkls23_core::utilities::proofs::{CPProof, DLogProof, RandomCommitments};
use hkdf::Hkdf;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::Reduce;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Role;
use crate::derive::{decode_point, decode_secret};
use crate::engine::{self, Curve, Point, Scalar};
use crate::error::{DecodeError, MpcError};
use crate::pairing::compressed;
use crate::pairing_format::Reader;
use crate::recovery::RecoveryContext;
use crate::session::hash_parts;

/// The ciphertext format version.
const CIPHERTEXT_VERSION: u8 = 1;
/// version | R (33) | nonce (12) | ciphertext of the 32-byte share and its tag (48).
const CIPHERTEXT_LEN: usize = 1 + 33 + 12 + 32 + 16;
/// The backup string's format version, and its prefix (a person can tell it from other keys).
const STRING_VERSION: u8 = 1;
const STRING_PREFIX: &str = "waasbackup1";

/// Which share of the pairing a ciphertext holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// x_d, the device's share (ct_x).
    Device,
    /// s_d, the server's share (ct_s).
    Server,
}

impl Half {
    fn label(self) -> &'static [u8] {
        match self {
            Half::Device => b"device half",
            Half::Server => b"server half",
        }
    }
}

/// Where a backup belongs. Both sides build it from their own records (the device in recovery:
/// from the backup string), never from a message.
#[derive(Clone, Copy, Debug)]
pub struct BackupContext<'a> {
    /// The device group's resource name.
    pub device_group: &'a str,
    /// The backup's id (the PrepareDeviceBackup operation that made it).
    pub backup: &'a str,
    /// The pairing backed up.
    pub pairing_id: &'a [u8; 32],
    /// Its epoch.
    pub epoch: u64,
}

impl BackupContext<'_> {
    fn hash(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let epoch = self.epoch.to_be_bytes();
        let mut all: Vec<&[u8]> = vec![
            self.device_group.as_bytes(),
            self.backup.as_bytes(),
            self.pairing_id,
            &epoch,
        ];
        all.extend_from_slice(parts);
        hash_parts(label, &all)
    }
}

/// One party's half of the decryption key: d_i and P_i = d_i·G. Zeroized on drop; `Debug` prints
/// `<redacted>`; not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DecryptionShare {
    secret: Scalar,
    #[zeroize(skip)]
    public: [u8; 33],
}

impl fmt::Debug for DecryptionShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptionShare(<redacted>)")
    }
}

/// A half of the decryption key as sent: the point and its proof of knowledge.
#[derive(Serialize, Deserialize)]
struct KeyShareMessage {
    proof: DLogProof<Curve>,
}

/// A partial decryption as sent: D_i = d_i·R and its Chaum–Pedersen proof.
#[derive(Serialize, Deserialize)]
struct PartialMessage {
    commitments: RandomCommitments<Curve>,
    proof: CPProof<Curve>,
}

impl DecryptionShare {
    /// A fresh half, from the OS's randomness.
    pub fn generate() -> Result<Self, MpcError> {
        let secret = engine::random_scalar()?;
        Ok(Self::from_scalar(secret))
    }

    fn from_scalar(secret: Scalar) -> Self {
        let public = compressed(&(k256::ProjectivePoint::GENERATOR * secret).to_affine());
        Self { secret, public }
    }

    /// The half stored (the server's, sealed) or kept by the user (the device's, in the string).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, MpcError> {
        let secret = decode_secret(bytes)?;
        Ok(Self::from_scalar(*secret))
    }

    /// The secret, to store.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_repr().into())
    }

    /// P_i.
    pub fn public(&self) -> [u8; 33] {
        self.public
    }

    /// P_i with its proof of knowledge, bound to the backup and to `role` (the sender's).
    pub fn key_share_message(
        &self,
        context: &BackupContext<'_>,
        role: Role,
    ) -> Result<Vec<u8>, MpcError> {
        let session = key_proof_session(context, role, &self.public);
        let proof = DLogProof::<Curve>::prove(&self.secret, &session).map_err(|_| {
            MpcError::Randomness("the proof of knowledge found no challenge".into())
        })?;
        encode(&KeyShareMessage { proof })
    }
}

/// The peer's half of the decryption key, checked: a valid point, not the identity, with a proof
/// of knowledge for this backup from `role` (the peer's). Returns P_i.
pub fn verify_key_share(
    message: &[u8],
    context: &BackupContext<'_>,
    role: Role,
) -> Result<[u8; 33], MpcError> {
    let KeyShareMessage { proof } = decode(message)?;
    if proof.point == Point::IDENTITY {
        return Err(DecodeError::InvalidPoint("backup key share").into());
    }
    let public = compressed(&proof.point);
    let session = key_proof_session(context, role, &public);
    if !DLogProof::<Curve>::verify(&proof, &session) {
        return Err(MpcError::Rejected(
            "the backup key share has no valid proof of knowledge".into(),
        ));
    }
    Ok(public)
}

/// P = P_dev + P_srv; the identity (P_srv = −P_dev) is refused.
pub fn backup_key(device: &[u8; 33], server: &[u8; 33]) -> Result<[u8; 33], MpcError> {
    let device = decode_point(device)?;
    let server = decode_point(server)?;
    let key = (k256::ProjectivePoint::from(device) + server).to_affine();
    if key == Point::IDENTITY {
        return Err(MpcError::Rejected("the backup key is the identity".into()));
    }
    Ok(compressed(&key))
}

/// Encrypts one additive share (`half`) to the backup key P.
pub fn encrypt_half(
    key: &[u8; 33],
    half: Half,
    share: &[u8; 32],
    context: &BackupContext<'_>,
) -> Result<Vec<u8>, MpcError> {
    Ok(encrypt(key, half, share, context)?.0)
}

/// Encrypts the device's share (ct_x) with a proof of knowledge of its r, bound to the backup
/// and the half: the server answers its partial decryption only for an R whose r the device
/// provably knows. Without it, a device could send R = R_s + b·G (ct_s's R, blinded), take
/// d_srv·R − b·P_srv = d_srv·R_s from the answer, and open ct_s: the server's share.
pub fn encrypt_device_half(
    key: &[u8; 33],
    share: &[u8; 32],
    context: &BackupContext<'_>,
) -> Result<BackupRound3, MpcError> {
    let (device_half, ephemeral_secret) = encrypt(key, Half::Device, share, context)?;
    let ephemeral = split(&device_half)?.ephemeral;
    let session = ephemeral_proof_session(context, &ephemeral);
    let proof = DLogProof::<Curve>::prove(&ephemeral_secret, &session)
        .map_err(|_| MpcError::Randomness("the proof of knowledge found no challenge".into()))?;
    Ok(BackupRound3 {
        device_half,
        ephemeral_proof: encode(&KeyShareMessage { proof })?,
    })
}

/// Round 3 as the server receives it: ct_x's form, and the proof that the device knows its r.
/// Returns ct_x's R.
pub fn verify_device_half(
    round: &BackupRound3,
    context: &BackupContext<'_>,
) -> Result<[u8; 33], MpcError> {
    let ephemeral = split(&round.device_half)?.ephemeral;
    let KeyShareMessage { proof } = decode(&round.ephemeral_proof)?;
    if proof.point == Point::IDENTITY || compressed(&proof.point) != ephemeral {
        return Err(MpcError::Rejected(
            "the proof is for another R than the ciphertext's".into(),
        ));
    }
    let session = ephemeral_proof_session(context, &ephemeral);
    if !DLogProof::<Curve>::verify(&proof, &session) {
        return Err(MpcError::Rejected(
            "the ciphertext's R has no valid proof of knowledge".into(),
        ));
    }
    Ok(ephemeral)
}

/// ElGamal-KEM to P; also returns r.
fn encrypt(
    key: &[u8; 33],
    half: Half,
    share: &[u8; 32],
    context: &BackupContext<'_>,
) -> Result<(Vec<u8>, Zeroizing<Scalar>), MpcError> {
    let key_point = decode_point(key)?;
    let ephemeral_secret = Zeroizing::new(engine::random_scalar()?);
    let ephemeral = compressed(&(k256::ProjectivePoint::GENERATOR * *ephemeral_secret).to_affine());
    let shared = Zeroizing::new(compressed(
        &(k256::ProjectivePoint::from(key_point) * *ephemeral_secret).to_affine(),
    ));
    let (cipher, binding) = cipher(&shared, &ephemeral, key, half, context)?;
    let nonce = engine::random_nonce()?;
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: share,
                aad: &binding,
            },
        )
        .map_err(|_| MpcError::InvalidState("backup encryption failed".into()))?;
    let mut sealed = Vec::with_capacity(CIPHERTEXT_LEN);
    sealed.push(CIPHERTEXT_VERSION);
    sealed.extend_from_slice(&ephemeral);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok((sealed, ephemeral_secret))
}

/// A ciphertext's R (checked: a valid point, not the identity), which partial decryptions are
/// made for.
pub fn ciphertext_ephemeral(ciphertext: &[u8]) -> Result<[u8; 33], MpcError> {
    Ok(split(ciphertext)?.ephemeral)
}

/// What a partial decryption is made for: its proof's challenge hashes it, so a partial given
/// in one backup's dry run or one recovery is not accepted in another (a replayed proof of
/// holding the backup proves nothing).
#[derive(Clone, Copy, Debug)]
pub enum PartialUse<'a> {
    /// The backup's own dry run (PrepareDeviceBackup's rounds 3 and 4).
    DryRun,
    /// A recovery: the AddDevice operation and its new device.
    Recovery(&'a RecoveryContext<'a>),
}

impl PartialUse<'_> {
    fn binding(&self) -> [u8; 32] {
        match self {
            PartialUse::DryRun => hash_parts("backup partial use v1", &[b"dry run"]),
            PartialUse::Recovery(recovery) => hash_parts(
                "backup partial use v1",
                &[
                    b"recovery",
                    recovery.operation.as_bytes(),
                    recovery.device.as_bytes(),
                ],
            ),
        }
    }
}

impl DecryptionShare {
    /// This party's partial decryption of the ciphertext whose R is `ephemeral`: d_i·R with a
    /// proof that it used the d_i behind P_i, bound to the backup, `role` (this party's), the
    /// `half` the ciphertext holds and what the partial is for (`usage`).
    pub fn partial(
        &self,
        ephemeral: &[u8; 33],
        half: Half,
        context: &BackupContext<'_>,
        role: Role,
        usage: PartialUse<'_>,
    ) -> Result<Vec<u8>, MpcError> {
        let base = decode_point(ephemeral)?;
        let (nonce, commitments) = CPProof::<Curve>::prove_step1(&Point::GENERATOR, &base);
        let nonce = Zeroizing::new(nonce);
        let partial = compressed(&(k256::ProjectivePoint::from(base) * self.secret).to_affine());
        let challenge = partial_challenge(
            context,
            role,
            half,
            usage,
            &self.public,
            ephemeral,
            &partial,
            &commitments,
        );
        let proof = CPProof::<Curve>::prove_step2(
            &Point::GENERATOR,
            &base,
            &self.secret,
            &nonce,
            &challenge,
        );
        encode(&PartialMessage { commitments, proof })
    }
}

/// The peer's partial decryption, checked against the peer's P_i (`share`, from this party's own
/// records), the ciphertext's R, the half it was asked for and what it is for. Returns D_i.
pub fn verify_partial(
    message: &[u8],
    share: &[u8; 33],
    ephemeral: &[u8; 33],
    half: Half,
    context: &BackupContext<'_>,
    role: Role,
    usage: PartialUse<'_>,
) -> Result<Point, MpcError> {
    let PartialMessage { commitments, proof } = decode(message)?;
    let share_point = decode_point(share)?;
    let base = decode_point(ephemeral)?;
    // The statement is this party's, not the message's: the bases and P_i are checked, and the
    // challenge is recomputed over them.
    if proof.base_g != Point::GENERATOR
        || proof.base_h != base
        || proof.point_u != share_point
        || proof.point_v == Point::IDENTITY
    {
        return Err(MpcError::Rejected(
            "the partial decryption is for another key or ciphertext".into(),
        ));
    }
    let partial = compressed(&proof.point_v);
    let challenge = partial_challenge(
        context,
        role,
        half,
        usage,
        share,
        ephemeral,
        &partial,
        &commitments,
    );
    if !proof.verify(&commitments, &challenge) {
        return Err(MpcError::Rejected(
            "the partial decryption's proof does not verify".into(),
        ));
    }
    Ok(proof.point_v)
}

/// Opens `ciphertext` (holding `half`) with this party's share of the decryption key and the
/// peer's verified partial, and checks the share against its public point (`expected`: X_d for
/// the device's half, S_d for the server's). Nothing is returned unless all of it holds.
pub fn decrypt_half(
    ciphertext: &[u8],
    own: &DecryptionShare,
    peer_partial: &Point,
    key: &[u8; 33],
    half: Half,
    context: &BackupContext<'_>,
    expected: &[u8; 33],
) -> Result<Zeroizing<[u8; 32]>, MpcError> {
    let share = open(ciphertext, own, peer_partial, key, half, context)?;
    let public = crate::derive::public_of(&share)?;
    if public != *expected {
        return Err(MpcError::Rejected(
            "the backed-up share does not match its public point".into(),
        ));
    }
    Ok(share)
}

/// Opens `ciphertext` without a public point to check the share against: for the server's own
/// ct_s in recovery, which the server made itself (the AEAD already refuses any other
/// ciphertext, half, backup or partial), when the pairing it backed up may be gone (revoked).
pub(crate) fn open(
    ciphertext: &[u8],
    own: &DecryptionShare,
    peer_partial: &Point,
    key: &[u8; 33],
    half: Half,
    context: &BackupContext<'_>,
) -> Result<Zeroizing<[u8; 32]>, MpcError> {
    let Parts {
        ephemeral,
        nonce,
        sealed,
    } = split(ciphertext)?;
    let base = decode_point(&ephemeral)?;
    let own_partial = k256::ProjectivePoint::from(base) * own.secret;
    let shared = Zeroizing::new(compressed(&(own_partial + *peer_partial).to_affine()));
    let (cipher, binding) = cipher(&shared, &ephemeral, key, half, context)?;
    let share = Zeroizing::new(
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &binding,
                },
            )
            .map_err(|_| {
                MpcError::Rejected(
                    "the backup does not open (another backup, half, key or partial)".into(),
                )
            })?,
    );
    let share: [u8; 32] = share[..]
        .try_into()
        .map_err(|_| MpcError::Rejected("the backed-up share is not 32 bytes".into()))?;
    Ok(Zeroizing::new(share))
}

/// PrepareDeviceBackup's round 1, device → server: the passcode login that authorizes the
/// backup (its name) and the device's half of the decryption key with its proof
/// ([`DecryptionShare::key_share_message`]). Rounds 4 (the server's partial decryption of ct_x)
/// and 5 (H(ct_x ‖ ct_s)) are each one value, sent as is.
#[derive(Serialize, Deserialize)]
pub struct BackupRound1 {
    /// The passcode login's resource name.
    pub login: String,
    /// P_dev and its proof.
    pub key_share: Vec<u8>,
}

/// PrepareDeviceBackup's round 3, device → server: ct_x and the proof that the device knows its
/// r ([`encrypt_device_half`], [`verify_device_half`]).
#[derive(Serialize, Deserialize)]
pub struct BackupRound3 {
    /// ct_x: the device's share encrypted to P.
    pub device_half: Vec<u8>,
    /// The proof of knowledge of ct_x's r.
    pub ephemeral_proof: Vec<u8>,
}

/// PrepareDeviceBackup's round 2, server → device.
#[derive(Serialize, Deserialize)]
pub struct BackupRound2 {
    /// P_srv and its proof.
    pub key_share: Vec<u8>,
    /// ct_s: the server's share encrypted to P.
    pub server_half: Vec<u8>,
}

impl BackupRound1 {
    /// The message's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MpcError> {
        encode(self)
    }

    /// Reads a message made by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        decode(bytes)
    }
}

impl BackupRound3 {
    /// The message's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MpcError> {
        encode(self)
    }

    /// Reads a message made by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        decode(bytes)
    }
}

impl BackupRound2 {
    /// The message's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MpcError> {
        encode(self)
    }

    /// Reads a message made by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        decode(bytes)
    }
}

/// H(ct_x ‖ ct_s): the backup string commits to both ciphertexts, so in recovery the device
/// makes its partial only for the real ct_s (and takes R_x only from the real ct_x).
pub fn ciphertexts_hash(device_half: &[u8], server_half: &[u8]) -> [u8; 32] {
    hash_parts("backup ciphertexts v1", &[device_half, server_half])
}

/// What the user keeps: the device's half of the decryption key and the public facts recovery
/// checks everything else against. Never a signing share. Zeroized on drop; `Debug` prints
/// `<redacted>`; not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BackupString {
    /// The PrepareDeviceBackup operation that made it.
    #[zeroize(skip)]
    pub backup: String,
    /// The wallet's resource name.
    #[zeroize(skip)]
    pub wallet: String,
    /// The device group's resource name.
    #[zeroize(skip)]
    pub device_group: String,
    /// The pairing backed up.
    #[zeroize(skip)]
    pub pairing_id: [u8; 32],
    /// Its epoch.
    #[zeroize(skip)]
    pub epoch: u64,
    /// d_dev.
    device_decryption_share: [u8; 32],
    /// P_dev.
    #[zeroize(skip)]
    pub device_key_share: [u8; 33],
    /// P_srv.
    #[zeroize(skip)]
    pub server_key_share: [u8; 33],
    /// The wallet's root public key X.
    #[zeroize(skip)]
    pub root_public_key: [u8; 33],
    /// The wallet's chain code.
    #[zeroize(skip)]
    pub chain_code: [u8; 32],
    /// X_d: what the decrypted device share is checked against.
    #[zeroize(skip)]
    pub device_public_share: [u8; 33],
    /// S_d: what the decrypted server share is checked against.
    #[zeroize(skip)]
    pub server_public_share: [u8; 33],
    /// H(ct_x ‖ ct_s).
    #[zeroize(skip)]
    pub ciphertexts_hash: [u8; 32],
}

impl fmt::Debug for BackupString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupString(<redacted>)")
    }
}

/// The public facts a backup string carries besides the decryption half.
#[derive(Clone, Debug)]
pub struct BackupFacts {
    /// The PrepareDeviceBackup operation.
    pub backup: String,
    /// The wallet's resource name.
    pub wallet: String,
    /// The device group's resource name.
    pub device_group: String,
    /// The pairing.
    pub pairing_id: [u8; 32],
    /// The pairing's epoch.
    pub epoch: u64,
    /// P_srv.
    pub server_key_share: [u8; 33],
    /// X.
    pub root_public_key: [u8; 33],
    /// The chain code.
    pub chain_code: [u8; 32],
    /// X_d.
    pub device_public_share: [u8; 33],
    /// S_d.
    pub server_public_share: [u8; 33],
    /// H(ct_x ‖ ct_s).
    pub ciphertexts_hash: [u8; 32],
}

impl BackupString {
    /// The string for `share` (d_dev) and `facts`.
    pub fn new(share: &DecryptionShare, facts: BackupFacts) -> Self {
        Self {
            backup: facts.backup,
            wallet: facts.wallet,
            device_group: facts.device_group,
            pairing_id: facts.pairing_id,
            epoch: facts.epoch,
            device_decryption_share: *share.to_bytes(),
            device_key_share: share.public(),
            server_key_share: facts.server_key_share,
            root_public_key: facts.root_public_key,
            chain_code: facts.chain_code,
            device_public_share: facts.device_public_share,
            server_public_share: facts.server_public_share,
            ciphertexts_hash: facts.ciphertexts_hash,
        }
    }

    /// d_dev, checked against P_dev.
    pub fn decryption_share(&self) -> Result<DecryptionShare, MpcError> {
        let share = DecryptionShare::from_bytes(&self.device_decryption_share)?;
        if share.public() != self.device_key_share {
            return Err(DecodeError::Payload("the backup's decryption half".into()).into());
        }
        Ok(share)
    }

    /// The context its ciphertexts were made in.
    pub fn context(&self) -> BackupContext<'_> {
        BackupContext {
            device_group: &self.device_group,
            backup: &self.backup,
            pairing_id: &self.pairing_id,
            epoch: self.epoch,
        }
    }

    /// `waasbackup1` then Base58 of (version ‖ body ‖ the first 4 bytes of its hash): a
    /// mistyped or cut string is refused before anything is used. The body: the three names
    /// (each a u16 length, then UTF-8), then fixed fields: pairing id, epoch, d_dev, P_dev, P_srv,
    /// X, chain code, X_d, S_d, H(ct_x ‖ ct_s).
    pub fn encode(&self) -> Result<Zeroizing<String>, MpcError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(512));
        bytes.push(STRING_VERSION);
        for name in [&self.backup, &self.wallet, &self.device_group] {
            let len = u16::try_from(name.len())
                .map_err(|_| MpcError::InvalidState("a backup name is too long".into()))?;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
        }
        for field in [
            &self.pairing_id[..],
            &self.epoch.to_be_bytes(),
            &self.device_decryption_share,
            &self.device_key_share,
            &self.server_key_share,
            &self.root_public_key,
            &self.chain_code,
            &self.device_public_share,
            &self.server_public_share,
            &self.ciphertexts_hash,
        ] {
            bytes.extend_from_slice(field);
        }
        Ok(Self::text_of(&bytes))
    }

    /// The string of a content (version and body): the prefix, then Base58 of the content and
    /// its checksum. Public for the fuzz target only, which needs strings whose checksum holds
    /// to reach the body's decoder behind it.
    #[doc(hidden)]
    pub fn text_of(content: &[u8]) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(content.len() + 4));
        bytes.extend_from_slice(content);
        bytes.extend_from_slice(&string_checksum(content));
        Zeroizing::new(format!(
            "{STRING_PREFIX}{}",
            bs58::encode(&bytes[..]).into_string()
        ))
    }

    /// Reads a string made by [`Self::encode`]; every point and the decryption half are checked.
    pub fn decode(text: &str) -> Result<Self, MpcError> {
        let body = text
            .trim()
            .strip_prefix(STRING_PREFIX)
            .ok_or_else(|| DecodeError::Payload("not a waas-sdk backup".into()))?;
        let bytes = Zeroizing::new(
            bs58::decode(body)
                .into_vec()
                .map_err(|_| DecodeError::Payload("the backup is not Base58".into()))?,
        );
        if bytes.len() < 1 + 4 {
            return Err(DecodeError::Truncated.into());
        }
        let (content, check) = bytes.split_at(bytes.len() - 4);
        if string_checksum(content)[..] != *check {
            return Err(DecodeError::Payload("the backup's checksum does not match".into()).into());
        }
        if content[0] != STRING_VERSION {
            return Err(DecodeError::UnsupportedVersion(content[0]).into());
        }
        let mut reader = Reader(&content[1..]);
        let mut name = || -> Result<String, MpcError> {
            let len = u16::from_be_bytes(reader.array()?);
            String::from_utf8(reader.take(len.into())?.to_vec())
                .map_err(|_| DecodeError::Payload("a backup name is not UTF-8".into()).into())
        };
        let (backup, wallet, device_group) = (name()?, name()?, name()?);
        let string = Self {
            backup,
            wallet,
            device_group,
            pairing_id: reader.array()?,
            epoch: u64::from_be_bytes(reader.array()?),
            device_decryption_share: reader.array()?,
            device_key_share: reader.array()?,
            server_key_share: reader.array()?,
            root_public_key: reader.array()?,
            chain_code: reader.array()?,
            device_public_share: reader.array()?,
            server_public_share: reader.array()?,
            ciphertexts_hash: reader.array()?,
        };
        if !reader.0.is_empty() {
            return Err(DecodeError::TrailingBytes.into());
        }
        for point in [
            &string.device_key_share,
            &string.server_key_share,
            &string.root_public_key,
            &string.device_public_share,
            &string.server_public_share,
        ] {
            if canonical(point).ok() != Some(*point) {
                return Err(DecodeError::InvalidPoint("backup string").into());
            }
        }
        string.decryption_share()?;
        string.check_facts()?;
        Ok(string)
    }

    /// The public facts agree with each other: X = X_d + S_d (the shares the ciphertexts hold
    /// are checked against X_d and S_d, so those must make the wallet's key), and the backup
    /// belongs to the group it names. Recovery takes every fact from the string, so a string
    /// altered (with a recomputed checksum) to name another key or group is refused here.
    fn check_facts(&self) -> Result<(), MpcError> {
        let sum = backup_key(&self.device_public_share, &self.server_public_share)
            .map_err(|_| DecodeError::Payload("the backup's public shares".into()))?;
        if sum != self.root_public_key {
            return Err(DecodeError::Payload(
                "the backup's public shares do not make its root key".into(),
            )
            .into());
        }
        if !self
            .backup
            .strip_prefix(self.device_group.as_str())
            .is_some_and(|rest| rest.starts_with("/mpcOperations/"))
        {
            return Err(DecodeError::Payload("the backup is not of its group".into()).into());
        }
        Ok(())
    }
}

fn ephemeral_proof_session(context: &BackupContext<'_>, ephemeral: &[u8; 33]) -> [u8; 32] {
    context.hash(
        "backup ciphertext r v1",
        &[&[Role::Device.to_wire()], Half::Device.label(), ephemeral],
    )
}

/// The one compressed encoding of a point given in any SEC1 form.
fn canonical(point: &[u8; 33]) -> Result<[u8; 33], MpcError> {
    Ok(compressed(&decode_point(point)?))
}

fn key_proof_session(context: &BackupContext<'_>, role: Role, public: &[u8; 33]) -> [u8; 32] {
    context.hash("backup key share v1", &[&[role.to_wire()], public])
}

#[allow(clippy::too_many_arguments)]
fn partial_challenge(
    context: &BackupContext<'_>,
    role: Role,
    half: Half,
    usage: PartialUse<'_>,
    share: &[u8; 33],
    ephemeral: &[u8; 33],
    partial: &[u8; 33],
    commitments: &RandomCommitments<Curve>,
) -> Scalar {
    let digest = context.hash(
        "backup partial decryption v1",
        &[
            &[role.to_wire()],
            half.label(),
            &usage.binding(),
            share,
            ephemeral,
            partial,
            &compressed(&commitments.rc_g),
            &compressed(&commitments.rc_h),
        ],
    );
    <Scalar as Reduce<k256::FieldBytes>>::reduce(&digest.into())
}

/// AES-256-GCM under HKDF-SHA256(r·P ‖ R ‖ P), the context (with the half) as info and AAD.
fn cipher(
    shared: &[u8; 33],
    ephemeral: &[u8; 33],
    key: &[u8; 33],
    half: Half,
    context: &BackupContext<'_>,
) -> Result<(Aes256Gcm, [u8; 32]), MpcError> {
    let binding = context.hash("backup ciphertext v1", &[half.label(), ephemeral, key]);
    let mut input = Zeroizing::new([0u8; 99]);
    input[..33].copy_from_slice(shared);
    input[33..66].copy_from_slice(ephemeral);
    input[66..].copy_from_slice(key);
    let mut derived = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(b"waas-sdk backup v1"), &input[..])
        .expand(&binding, &mut derived[..])
        .map_err(|_| MpcError::InvalidState("backup key derivation".into()))?;
    Ok((Aes256Gcm::new(&(*derived).into()), binding))
}

/// A ciphertext's parts.
struct Parts<'a> {
    /// R, checked to be a point other than the identity.
    ephemeral: [u8; 33],
    nonce: [u8; 12],
    sealed: &'a [u8],
}

fn split(ciphertext: &[u8]) -> Result<Parts<'_>, MpcError> {
    if ciphertext.len() != CIPHERTEXT_LEN {
        return Err(DecodeError::Truncated.into());
    }
    if ciphertext[0] != CIPHERTEXT_VERSION {
        return Err(DecodeError::UnsupportedVersion(ciphertext[0]).into());
    }
    let (ephemeral, rest) = ciphertext[1..].split_at(33);
    let (nonce, sealed) = rest.split_at(12);
    let ephemeral: [u8; 33] = ephemeral.try_into().map_err(|_| DecodeError::Truncated)?;
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| DecodeError::Truncated)?;
    // One encoding per point (compressed SEC1): R is hashed into transcripts as bytes, and a
    // second encoding of the same point must not pass for another R.
    if canonical(&ephemeral).ok() != Some(ephemeral) {
        return Err(DecodeError::InvalidPoint("backup ciphertext's R").into());
    }
    Ok(Parts {
        ephemeral,
        nonce,
        sealed,
    })
}

fn string_checksum(bytes: &[u8]) -> [u8; 4] {
    let digest = hash_parts("backup string checksum v1", &[bytes]);
    [digest[0], digest[1], digest[2], digest[3]]
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, MpcError> {
    postcard::to_allocvec(value).map_err(|error| MpcError::InvalidState(error.to_string()))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, MpcError> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|error| DecodeError::Payload(error.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes.into());
    }
    Ok(value)
}
