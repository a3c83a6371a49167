//! BIP32 for the MPC root: extended keys, non-hardened child derivation (CKDpub and CKDpriv), and
//! their `xpub…`/`xprv…` strings.
//!
//! The wallet's root key X and the chain code from key generation form an extended public key.
//! Hardened derivation would need HMAC over the private key inside MPC, so the root plays the part
//! an account key (`m/44'/60'/0'`) plays in a seed wallet, and addresses are its non-hardened
//! children `0/i`. CKDpriv exists for export: an exported root xprv reproduces every child in any
//! BIP32 tool.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::GroupEncoding;
use ripemd::Ripemd160;
use sha2::{Digest, Sha256, Sha512};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::engine::{Point, Scalar};

/// The first index of a hardened child.
pub const HARDENED: u32 = 1 << 31;
const XPUB_VERSION: [u8; 4] = [0x04, 0x88, 0xb2, 0x1e];
const XPRV_VERSION: [u8; 4] = [0x04, 0x88, 0xad, 0xe4];
const ENCODED_LEN: usize = 78;

/// Why a derivation or an extended key failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerivationError {
    /// A hardened index, which MPC keys cannot derive.
    #[error("hardened index {0} is not supported: MPC keys derive non-hardened children only")]
    Hardened(u32),
    /// BIP32's rare invalid child: IL ≥ n, or the child key is the point at infinity (or zero).
    /// BIP32 says to proceed with the next index.
    #[error("child {0} is invalid (IL ≥ n or the key is zero); use the next index")]
    InvalidChild(u32),
    /// Deeper than 255 levels.
    #[error("derivation deeper than 255 levels")]
    TooDeep,
    /// A path string that is not `m/0/1`-style.
    #[error("invalid derivation path {0:?}")]
    InvalidPath(String),
    /// An `xpub`/`xprv` string that does not decode.
    #[error("invalid extended key: {0}")]
    InvalidKey(&'static str),
}

/// Parses `m/0/1`, `0/1` or `m` into non-hardened indices.
pub fn parse_path(path: &str) -> Result<Vec<u32>, DerivationError> {
    let bad = || DerivationError::InvalidPath(path.chars().take(64).collect());
    let rest = match path.strip_prefix('m') {
        Some("") => return Ok(Vec::new()),
        Some(rest) => rest.strip_prefix('/').ok_or_else(bad)?,
        None => path,
    };
    rest.split('/')
        .map(|step| {
            if step.ends_with(['\'', 'h', 'H']) {
                return Err(DerivationError::Hardened(HARDENED));
            }
            if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let index: u32 = step.parse().map_err(|_| bad())?;
            if index >= HARDENED {
                Err(DerivationError::Hardened(index))
            } else {
                Ok(index)
            }
        })
        .collect()
}

/// An extended public key (BIP32 `xpub`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedPublicKey {
    /// Levels below the root.
    pub depth: u8,
    /// The first four bytes of the parent's key identifier (zero at the root).
    pub parent_fingerprint: [u8; 4],
    /// The index this key was derived with (zero at the root).
    pub child_number: u32,
    /// The chain code.
    pub chain_code: [u8; 32],
    /// The key, compressed SEC1.
    pub public_key: [u8; 33],
}

impl ExtendedPublicKey {
    /// A root extended key: depth 0, no parent.
    pub fn root(public_key: [u8; 33], chain_code: [u8; 32]) -> Self {
        Self {
            depth: 0,
            parent_fingerprint: [0; 4],
            child_number: 0,
            chain_code,
            public_key,
        }
    }

    /// CKDpub: the non-hardened child `index`.
    pub fn child(&self, index: u32) -> Result<Self, DerivationError> {
        check_index(index)?;
        let parent = decode_point(&self.public_key)?;
        let (tweak, chain_code) = tweak(&self.chain_code, &self.public_key, index)?;
        let child = child_point(&parent, &tweak, index)?;
        self.with_child(index, chain_code, child.to_bytes().into())
    }

    /// The header of child `index` of this key, with the child's chain code and key.
    fn with_child(
        &self,
        index: u32,
        chain_code: [u8; 32],
        public_key: [u8; 33],
    ) -> Result<Self, DerivationError> {
        Ok(Self {
            depth: self.depth.checked_add(1).ok_or(DerivationError::TooDeep)?,
            parent_fingerprint: self.fingerprint(),
            child_number: index,
            chain_code,
            public_key,
        })
    }

    /// The key at `path` (non-hardened indices) below this one.
    pub fn derive(&self, path: &[u32]) -> Result<Self, DerivationError> {
        path.iter()
            .try_fold(self.clone(), |key, index| key.child(*index))
    }

    /// The first four bytes of HASH160 of the key, which children name as their parent.
    pub fn fingerprint(&self) -> [u8; 4] {
        fingerprint(&self.public_key)
    }
}

impl fmt::Display for ExtendedPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(XPUB_VERSION, self, &self.public_key))
    }
}

impl FromStr for ExtendedPublicKey {
    type Err = DerivationError;

    fn from_str(text: &str) -> Result<Self, DerivationError> {
        parse(&decode(text)?, XPUB_VERSION, |key| {
            decode_point(key)?;
            Ok(*key)
        })
    }
}

/// An extended private key (BIP32 `xprv`): only ever built for export. Zeroized on drop; `Debug`
/// prints `<redacted>`; not `Clone`, so no stray copies.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ExtendedPrivateKey {
    /// The matching public key and its header (depth, parent, index, chain code): public data.
    #[zeroize(skip)]
    public: ExtendedPublicKey,
    secret: [u8; 32],
}

impl ExtendedPrivateKey {
    /// A root extended private key from a secret scalar (big-endian) and a chain code.
    pub fn root(secret: &[u8; 32], chain_code: [u8; 32]) -> Result<Self, DerivationError> {
        Ok(Self {
            public: ExtendedPublicKey::root(public_of(secret)?, chain_code),
            secret: *secret,
        })
    }

    /// CKDpriv: the non-hardened child `index`.
    pub fn child(&self, index: u32) -> Result<Self, DerivationError> {
        check_index(index)?;
        let (tweak, chain_code) = tweak(&self.public.chain_code, &self.public.public_key, index)?;
        let secret = Zeroizing::new(*decode_secret(&self.secret)? + tweak);
        if bool::from(secret.is_zero()) {
            return Err(DerivationError::InvalidChild(index));
        }
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(secret.to_repr().into());
        Ok(Self {
            public: self
                .public
                .with_child(index, chain_code, public_of(&secret)?)?,
            secret: *secret,
        })
    }

    /// The key at `path` (non-hardened indices) below this one.
    pub fn derive(self, path: &[u32]) -> Result<Self, DerivationError> {
        path.iter().try_fold(self, |key, index| key.child(*index))
    }

    /// The secret scalar, big-endian: what wallets import as a raw private key.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret)
    }

    /// The matching extended public key.
    pub fn to_public(&self) -> ExtendedPublicKey {
        self.public.clone()
    }

    /// The `xprv…` string. It is the whole key: show it only to its owner.
    pub fn to_xprv(&self) -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 33]);
        key[1..].copy_from_slice(&self.secret);
        Zeroizing::new(encode(XPRV_VERSION, &self.public, &key[..]))
    }

    /// Reads an `xprv…` string.
    pub fn from_xprv(text: &str) -> Result<Self, DerivationError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        let public = parse(&decode(text)?, XPRV_VERSION, |key| {
            let [0, rest @ ..] = key else {
                return Err(DerivationError::InvalidKey(
                    "private key must start with 0x00",
                ));
            };
            secret.copy_from_slice(rest);
            public_of(&secret)
        })?;
        Ok(Self {
            public,
            secret: *secret,
        })
    }
}

impl fmt::Debug for ExtendedPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtendedPrivateKey(<redacted>)")
    }
}

fn check_index(index: u32) -> Result<(), DerivationError> {
    if index >= HARDENED {
        Err(DerivationError::Hardened(index))
    } else {
        Ok(())
    }
}

/// I = HMAC-SHA512(chain code, serP(K) ‖ ser32(i)); returns (IL as a scalar, IR).
fn tweak(
    chain_code: &[u8; 32],
    public_key: &[u8; 33],
    index: u32,
) -> Result<(Scalar, [u8; 32]), DerivationError> {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(chain_code)
        .map_err(|_| DerivationError::InvalidKey("chain code"))?;
    mac.update(public_key);
    mac.update(&index.to_be_bytes());
    let output = Zeroizing::new(<[u8; 64]>::from(mac.finalize().into_bytes()));
    let (left, right) = output.split_at(32);
    let left: [u8; 32] = left
        .try_into()
        .map_err(|_| DerivationError::InvalidChild(index))?;
    let right: [u8; 32] = right
        .try_into()
        .map_err(|_| DerivationError::InvalidChild(index))?;
    Ok((il_scalar(&left, index)?, right))
}

/// IL as a scalar; BIP32 rejects IL ≥ n rather than reducing it.
pub(crate) fn il_scalar(il: &[u8; 32], index: u32) -> Result<Scalar, DerivationError> {
    Option::from(Scalar::from_repr((*il).into())).ok_or(DerivationError::InvalidChild(index))
}

/// K_i = IL·G + K_par; BIP32 rejects the point at infinity.
pub(crate) fn child_point(
    parent: &Point,
    tweak: &Scalar,
    index: u32,
) -> Result<Point, DerivationError> {
    let child = (k256::ProjectivePoint::GENERATOR * tweak + parent).to_affine();
    if child == Point::IDENTITY {
        Err(DerivationError::InvalidChild(index))
    } else {
        Ok(child)
    }
}

pub(crate) fn decode_point(bytes: &[u8; 33]) -> Result<Point, DerivationError> {
    let point = Option::<Point>::from(Point::from_bytes(&(*bytes).into()))
        .ok_or(DerivationError::InvalidKey("not a point on secp256k1"))?;
    if point == Point::IDENTITY {
        Err(DerivationError::InvalidKey("the point at infinity"))
    } else {
        Ok(point)
    }
}

pub(crate) fn decode_secret(bytes: &[u8; 32]) -> Result<Zeroizing<Scalar>, DerivationError> {
    let scalar: Option<Scalar> = Scalar::from_repr((*bytes).into()).into();
    match scalar {
        Some(scalar) if !bool::from(scalar.is_zero()) => Ok(Zeroizing::new(scalar)),
        _ => Err(DerivationError::InvalidKey("private key out of range")),
    }
}

fn fingerprint(public_key: &[u8; 33]) -> [u8; 4] {
    let hash = Ripemd160::digest(Sha256::digest(public_key));
    [hash[0], hash[1], hash[2], hash[3]]
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let hash = Sha256::digest(Sha256::digest(payload));
    [hash[0], hash[1], hash[2], hash[3]]
}

/// The Base58Check string of a key: the header of `meta` (depth, parent, index, chain code), then
/// `key` (the public key, or 0x00 and the secret).
fn encode(version: [u8; 4], meta: &ExtendedPublicKey, key: &[u8]) -> String {
    let mut payload = Zeroizing::new(Vec::with_capacity(ENCODED_LEN + 4));
    payload.extend_from_slice(&version);
    payload.push(meta.depth);
    payload.extend_from_slice(&meta.parent_fingerprint);
    payload.extend_from_slice(&meta.child_number.to_be_bytes());
    payload.extend_from_slice(&meta.chain_code);
    payload.extend_from_slice(key);
    let check = checksum(&payload);
    payload.extend_from_slice(&check);
    bs58::encode(&payload[..]).into_string()
}

fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, DerivationError> {
    if text.len() > 120 {
        return Err(DerivationError::InvalidKey("too long"));
    }
    let bytes = Zeroizing::new(
        bs58::decode(text)
            .into_vec()
            .map_err(|_| DerivationError::InvalidKey("not Base58"))?,
    );
    let (payload, check) = bytes
        .split_at_checked(ENCODED_LEN)
        .filter(|(_, check)| check.len() == 4)
        .ok_or(DerivationError::InvalidKey("wrong length"))?;
    if checksum(payload) != check {
        return Err(DerivationError::InvalidKey("bad checksum"));
    }
    Ok(Zeroizing::new(payload.to_vec()))
}

/// Reads a 78-byte payload of `version`; `public_key` checks its key field and returns the public
/// key it stands for (itself for an xpub, secret·G for an xprv).
fn parse(
    payload: &[u8],
    version: [u8; 4],
    public_key: impl FnOnce(&[u8; 33]) -> Result<[u8; 33], DerivationError>,
) -> Result<ExtendedPublicKey, DerivationError> {
    let bad = DerivationError::InvalidKey;
    let payload: &[u8; ENCODED_LEN] = payload.try_into().map_err(|_| bad("wrong length"))?;
    let (head, key) = payload.split_at(ENCODED_LEN - 33);
    let [
        v0,
        v1,
        v2,
        v3,
        depth,
        f0,
        f1,
        f2,
        f3,
        c0,
        c1,
        c2,
        c3,
        chain_code @ ..,
    ] = head
    else {
        return Err(bad("wrong length"));
    };
    if [*v0, *v1, *v2, *v3] != version {
        return Err(bad("wrong version (not a mainnet key of this kind)"));
    }
    let (depth, parent_fingerprint) = (*depth, [*f0, *f1, *f2, *f3]);
    let child_number = u32::from_be_bytes([*c0, *c1, *c2, *c3]);
    if depth == 0 && (parent_fingerprint != [0; 4] || child_number != 0) {
        return Err(bad("a root key with a parent"));
    }
    let key: &[u8; 33] = key.try_into().map_err(|_| bad("wrong length"))?;
    Ok(ExtendedPublicKey {
        depth,
        parent_fingerprint,
        child_number,
        chain_code: chain_code.try_into().map_err(|_| bad("wrong length"))?,
        public_key: public_key(key)?,
    })
}

/// secret·G, compressed; the secret must be in [1, n).
pub(crate) fn public_of(secret: &[u8; 32]) -> Result<[u8; 33], DerivationError> {
    let secret = decode_secret(secret)?;
    Ok((k256::ProjectivePoint::GENERATOR * *secret)
        .to_affine()
        .to_bytes()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/0/5").unwrap(), vec![0, 5]);
        assert_eq!(parse_path("0/2147483647").unwrap(), vec![0, 2_147_483_647]);
        assert_eq!(parse_path("m/0'"), Err(DerivationError::Hardened(HARDENED)));
        assert_eq!(
            parse_path("m/2147483648"),
            Err(DerivationError::Hardened(HARDENED))
        );
        for bad in ["", "m/", "m1", "m//1", "m/+1", "m/-1", "m/a", "x/1", "m/1/"] {
            assert!(
                matches!(parse_path(bad), Err(DerivationError::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn il_at_or_above_the_order_is_rejected() {
        // n, the order of secp256k1, and the largest 256-bit value.
        let n: [u8; 32] = *b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xba\xae\xdc\xe6\xaf\x48\xa0\x3b\xbf\xd2\x5e\x8c\xd0\x36\x41\x41";
        assert_eq!(il_scalar(&n, 7), Err(DerivationError::InvalidChild(7)));
        assert_eq!(
            il_scalar(&[0xff; 32], 7),
            Err(DerivationError::InvalidChild(7))
        );
        let mut below = n;
        below[31] -= 1;
        assert!(il_scalar(&below, 7).is_ok());
    }

    #[test]
    fn a_child_at_infinity_is_rejected() {
        let tweak = Scalar::from(12_345u64);
        let parent = (-(k256::ProjectivePoint::GENERATOR * tweak)).to_affine();
        assert_eq!(
            child_point(&parent, &tweak, 3),
            Err(DerivationError::InvalidChild(3))
        );
        let fine = (k256::ProjectivePoint::GENERATOR * Scalar::from(2u64)).to_affine();
        assert!(child_point(&fine, &tweak, 3).is_ok());
    }

    #[test]
    fn private_keys_never_print() {
        let key = ExtendedPrivateKey::root(&[1; 32], [2; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "ExtendedPrivateKey(<redacted>)");
    }
}
