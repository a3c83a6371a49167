//! The device archive: the server's additive share of one device's pairing, sent once to that
//! device so that the device alone can later rebuild the whole key for export
//! (docs/protocol/archive.md).
//!
//! The server encrypts its share `s_d` to the device's archive key A (ECIES: secp256k1 ECDH,
//! HKDF-SHA256, AES-256-GCM). The key derivation also takes a secret from a fresh passcode login
//! (OPAQUE, [`crate::passcode`]): the archive key's secret sits in the browser's key store behind
//! the passcode alone, so without that second input a thief who guessed the passcode offline
//! could ask for a new archive and read it. With it, each archive needs one rate-limited login.
//! The context (device group, device, pairing, epoch, purpose) is in both the key derivation and
//! the AAD, so a ciphertext made for one pairing or device does not open for another.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hkdf::Hkdf;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::point::AffineCoordinates;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::derive::{ExtendedPrivateKey, decode_point, decode_secret, public_of};
use crate::engine::{self, Point, Scalar};
use crate::error::{DecodeError, MpcError};
use crate::pairing::{Pairing, PairingPublic, compressed};
use crate::pairing_format::Reader;
use crate::session::hash_parts;
use crate::{Role, ethereum_address};

/// The sealed share's format version.
const SEALED_VERSION: u8 = 1;
/// version | ephemeral key R (33) | nonce (12) | ciphertext of the 32-byte share and its tag (48).
const SEALED_LEN: usize = 1 + 33 + 12 + 32 + 16;
/// The stored archive's format version.
const ARCHIVE_VERSION: u8 = 1;
/// version | epoch (8) | id (32) | X (33) | chain code (32) | X_d (33) | S_d (33) | x_d (32) | s_d (32).
const ARCHIVE_LEN: usize = 1 + 8 + 32 + 33 + 32 + 33 + 33 + 32 + 32;

/// Where a sealed share belongs. Both sides build it from their own records, never from the
/// message: a ciphertext for another group, device, pairing or epoch then fails to open.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveContext<'a> {
    /// The device group's resource name.
    pub device_group: &'a str,
    /// The device's resource name.
    pub device: &'a str,
    /// The pairing's id.
    pub pairing_id: &'a [u8; 32],
    /// The pairing's epoch.
    pub epoch: u64,
}

impl ArchiveContext<'_> {
    fn bytes(&self, ephemeral: &[u8; 33], archive_key: &[u8; 33]) -> [u8; 32] {
        hash_parts(
            "device archive v1",
            &[
                self.device_group.as_bytes(),
                self.device.as_bytes(),
                self.pairing_id,
                &self.epoch.to_be_bytes(),
                ephemeral,
                archive_key,
            ],
        )
    }
}

/// The server's side: encrypts its additive share of `pairing` to the device's archive key.
/// `login_secret` is the archive binding of the passcode login that authorized this archive.
pub fn seal_server_share(
    pairing: &Pairing,
    archive_key: &[u8; 33],
    login_secret: &[u8; 32],
    context: &ArchiveContext<'_>,
) -> Result<Vec<u8>, MpcError> {
    pairing.ensure_is(Role::Server, context.pairing_id, context.epoch)?;
    let recipient = decode_point(archive_key)?;
    let ephemeral_secret = Zeroizing::new(engine::random_scalar()?);
    let ephemeral = compressed(&(k256::ProjectivePoint::GENERATOR * *ephemeral_secret).to_affine());
    let shared = ecdh(&ephemeral_secret, &recipient);
    let binding = context.bytes(&ephemeral, archive_key);
    let cipher = cipher(&shared, login_secret, &binding)?;
    let nonce = engine::random_nonce()?;
    let share = pairing.additive_share();
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &share[..],
                aad: &binding,
            },
        )
        .map_err(|_| MpcError::InvalidState("archive encryption failed".into()))?;
    let mut sealed = Vec::with_capacity(SEALED_LEN);
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&ephemeral);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The device's side: opens the server's share with the archive key's secret and the same login
/// secret, checks it against the server's public share of the device's own pairing (s_d·G = S_d)
/// and returns the archive. Any failure leaves nothing behind.
pub fn open_server_share(
    pairing: &Pairing,
    archive_secret: &[u8; 32],
    login_secret: &[u8; 32],
    context: &ArchiveContext<'_>,
    sealed: &[u8],
) -> Result<Archive, MpcError> {
    pairing.ensure_is(Role::Device, context.pairing_id, context.epoch)?;
    if sealed.len() != SEALED_LEN {
        return Err(DecodeError::Truncated.into());
    }
    if sealed[0] != SEALED_VERSION {
        return Err(DecodeError::UnsupportedVersion(sealed[0]).into());
    }
    let (ephemeral, rest) = sealed[1..].split_at(33);
    let (nonce, ciphertext) = rest.split_at(12);
    let ephemeral: [u8; 33] = ephemeral.try_into().map_err(|_| DecodeError::Truncated)?;
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| DecodeError::Truncated)?;
    let ephemeral_point =
        decode_point(&ephemeral).map_err(|_| DecodeError::InvalidPoint("archive ephemeral key"))?;

    let secret = decode_secret(archive_secret)?;
    let archive_key = public_of(archive_secret)?;
    let shared = ecdh(&secret, &ephemeral_point);
    let binding = context.bytes(&ephemeral, &archive_key);
    let cipher = cipher(&shared, login_secret, &binding)?;
    let share = Zeroizing::new(
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &binding,
                },
            )
            .map_err(|_| {
                MpcError::Rejected(
                    "the archive does not open (another device, pairing or login)".into(),
                )
            })?,
    );
    let server_share: [u8; 32] = share[..]
        .try_into()
        .map_err(|_| MpcError::Rejected("the archived share is not 32 bytes".into()))?;
    let archive = Archive {
        epoch: pairing.epoch(),
        public: pairing.public().clone(),
        device_share: *pairing.additive_share(),
        server_share,
    };
    archive.check()?;
    Ok(archive)
}

/// Both additive shares of one pairing, with its public facts: the whole key. Only ever held by
/// the device that exports. Zeroized on drop; `Debug` prints `<redacted>`; not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Archive {
    #[zeroize(skip)]
    epoch: u64,
    #[zeroize(skip)]
    public: PairingPublic,
    device_share: [u8; 32],
    server_share: [u8; 32],
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Archive(<redacted>)")
    }
}

impl Archive {
    /// The pairing's epoch the shares are of.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The pairing's public facts (root key, chain code, share points).
    pub fn public(&self) -> &PairingPublic {
        &self.public
    }

    /// The root extended private key: x = x_d + s_d, checked against the root public key
    /// (x·G = X) before it is returned.
    pub fn root_key(&self) -> Result<ExtendedPrivateKey, MpcError> {
        let device = decode_secret(&self.device_share)?;
        let server = decode_secret(&self.server_share)?;
        let root = Zeroizing::new(*device + *server);
        let root_bytes: Zeroizing<[u8; 32]> = Zeroizing::new(root.to_repr().into());
        let key = ExtendedPrivateKey::root(&root_bytes, self.public.chain_code)?;
        if key.to_public().public_key != self.public.root_public_key {
            return Err(MpcError::InvalidState(
                "the archive's shares do not make its root key".into(),
            ));
        }
        Ok(key)
    }

    /// The keys at `paths` below the root (non-hardened, e.g. `[0, 3]`): each secret with its
    /// public key and address, every one checked against the wallet's extended public key.
    pub fn derive(&self, paths: &[Vec<u32>]) -> Result<Vec<ExportedKey>, MpcError> {
        let xpub = self.root_key()?.to_public();
        paths
            .iter()
            .map(|path| {
                let key = self.root_key()?.derive(path)?;
                let public_key = key.to_public().public_key;
                if public_key != xpub.derive(path)?.public_key {
                    return Err(MpcError::InvalidState(
                        "a derived private key does not match its public key".into(),
                    ));
                }
                Ok(ExportedKey {
                    path: path.clone(),
                    address: ethereum_address(&public_key)?,
                    public_key,
                    secret: key.secret_bytes(),
                })
            })
            .collect()
    }

    /// The stored form (versioned, fixed size). It holds the whole key: keep it sealed.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(ARCHIVE_LEN));
        out.push(ARCHIVE_VERSION);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.public.id);
        out.extend_from_slice(&self.public.root_public_key);
        out.extend_from_slice(&self.public.chain_code);
        out.extend_from_slice(&self.public.device_public_share);
        out.extend_from_slice(&self.public.server_public_share);
        out.extend_from_slice(&self.device_share);
        out.extend_from_slice(&self.server_share);
        out
    }

    /// Reads the stored form and checks it whole: each share against its public share, and
    /// the two shares against the root key.
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        if bytes.len() != ARCHIVE_LEN {
            return Err(MpcError::InvalidState("archive of the wrong size".into()));
        }
        if bytes[0] != ARCHIVE_VERSION {
            return Err(MpcError::InvalidState(format!(
                "archive version {} is not supported",
                bytes[0]
            )));
        }
        let mut reader = Reader(&bytes[1..]);
        let epoch = u64::from_be_bytes(reader.array()?);
        let public = PairingPublic {
            id: reader.array()?,
            root_public_key: reader.array()?,
            chain_code: reader.array()?,
            device_public_share: reader.array()?,
            server_public_share: reader.array()?,
        };
        let archive = Self {
            epoch,
            public,
            device_share: reader.array()?,
            server_share: reader.array()?,
        };
        archive.check()?;
        Ok(archive)
    }

    /// Each share matches its public share, and together they make the root key.
    fn check(&self) -> Result<(), MpcError> {
        for (share, public, whose) in [
            (
                &self.device_share,
                &self.public.device_public_share,
                "device",
            ),
            (
                &self.server_share,
                &self.public.server_public_share,
                "server",
            ),
        ] {
            let point = public_of(share).map_err(|_| {
                MpcError::Rejected(format!("the {whose} share is not a valid scalar"))
            })?;
            if &point != public {
                return Err(MpcError::Rejected(format!(
                    "the {whose} share does not match its public share"
                )));
            }
        }
        self.root_key().map(drop)
    }
}

/// One exported key: a secret the caller asked to see.
pub struct ExportedKey {
    /// Its path below the root.
    pub path: Vec<u32>,
    /// Its compressed public key.
    pub public_key: [u8; 33],
    /// Its Ethereum address (EIP-55).
    pub address: String,
    /// Its secret scalar, big-endian.
    pub secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedKey")
            .field("path", &self.path)
            .field("address", &self.address)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The x-coordinate of secret·point.
fn ecdh(secret: &Scalar, point: &Point) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(
        (k256::ProjectivePoint::from(*point) * *secret)
            .to_affine()
            .x()
            .into(),
    )
}

/// AES-256-GCM under HKDF-SHA256(ECDH x-coordinate ‖ login secret), the context as info.
fn cipher(
    shared_x: &[u8; 32],
    login_secret: &[u8; 32],
    binding: &[u8; 32],
) -> Result<Aes256Gcm, MpcError> {
    let mut input = Zeroizing::new([0u8; 64]);
    input[..32].copy_from_slice(shared_x);
    input[32..].copy_from_slice(login_secret);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(b"waas-sdk device archive v1"), &input[..])
        .expand(binding, &mut key[..])
        .map_err(|_| MpcError::InvalidState("archive key derivation".into()))?;
    Ok(Aes256Gcm::new(&(*key).into()))
}
