//! The device's key store (design §3), in one IndexedDB database per origin:
//!
//! - `keys/wrapping`: a non-extractable WebCrypto AES-256-GCM key, bound to this profile;
//! - `keys/auth`: the non-extractable WebCrypto P-256 key that signs API requests;
//! - `meta/device`: public facts (both public keys, the registration data) and the data key
//!   (DEK), wrapped twice: by an Argon2id key from the passcode, then by `keys/wrapping`, so an
//!   unlock needs this profile's key *and* the passcode;
//! - `records/{id}`: secrets (the archive key, pairings), each AES-256-GCM under the DEK with its
//!   id in the AAD, so a record moved to another id does not open.
//!
//! The DEK and every secret exist only in wasm memory, zeroized on drop.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use js_sys::{Object, Reflect, Uint8Array};
use k256::ecdsa::signature::Signer;
use waas_api::RegistrationData;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::CryptoKey;
use zeroize::Zeroizing;

mod archive;
// Only the rare flows of the full module read the archive or keep a backup (src/client/mod.rs).
#[cfg(feature = "rare-flows")]
mod backup;
mod login_wrap;

#[cfg(feature = "rare-flows")]
pub(crate) use archive::ArchiveUnlock;
#[cfg(feature = "rare-flows")]
pub(crate) use backup::StoredBackup;
pub(crate) use login_wrap::{LoginWrap, PeeledWraps};

use crate::SdkError;
use crate::browser::idb::Database;
use crate::browser::{subtle, webauthn};

/// The database every SDK call uses unless told otherwise.
pub(crate) const DEFAULT_STORE: &str = "waas-sdk";
const FORMAT_VERSION: u32 = 1;
/// The labels of the two ways the DEK is wrapped; each layer's AAD names the way, so a layer of
/// one cannot be passed off as the other's.
const PASSCODE: &str = "passcode";
const PASSKEY: &str = "passkey";
const RECORD_AAD: &[u8] = b"waas-sdk record v1\0";
/// The DEK's wrap under the new passcode while a passcode change is under way.
const PASSCODE_NEXT: &str = "passcodeNext";
/// The DEK's wrap on a profile bootstrapped to recover a wallet: no passcode in it (see
/// [`KeyStore::bootstrap`]).
const AWAITING_RECOVERY: &str = "awaitingRecovery";
/// The inner key of the [`AWAITING_RECOVERY`] wrap. Not a secret, on purpose: that wrap's only
/// protection is the profile's key, and its inner layer exists to keep one wrap format.
const NO_SECRET: [u8; 32] = [0; 32];
/// Present while a passcode change is under way (it may have moved some records already).
const PASSCODE_CHANGING: &str = "passcodeChanging";
/// The Web Lock held while the device's passcode changes.
pub(crate) const DEVICE_LOCK: &str = "waas-sdk/device";
/// The passkey key's purpose when it wraps the DEK.
const DEK_PURPOSE: &[u8] = b"waas-sdk dek wrapping key v1";
/// The record holding the archive key's secret.
const ARCHIVE_KEY: &str = "archive-key";

/// Argon2id parameters for the passcode key. OWASP's minimum for Argon2id (19 MiB, 2 passes);
/// stored with the wrapped key, so stronger settings later still open old stores.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_PARALLELISM: u32 = 1;
/// The parameter range a stored set may have: never weaker than the minimum above, never so
/// costly that a tampered store hangs the page.
const ARGON2_MAX_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_MAX_ITERATIONS: u32 = 10;

/// What a passcode must look like.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PasscodePolicy {
    /// The fewest characters.
    pub(crate) min_length: usize,
    /// Digits only, like a phone's PIN.
    pub(crate) digits_only: bool,
}

impl Default for PasscodePolicy {
    fn default() -> Self {
        Self {
            min_length: 6,
            digits_only: true,
        }
    }
}

impl PasscodePolicy {
    pub(crate) fn check(&self, passcode: &str) -> Result<(), SdkError> {
        if passcode.chars().count() < self.min_length {
            return Err(SdkError::InvalidArgument(format!(
                "the passcode needs at least {} characters",
                self.min_length
            )));
        }
        if self.digits_only && !passcode.chars().all(|c| c.is_ascii_digit()) {
            return Err(SdkError::InvalidArgument(
                "the passcode may only contain digits".into(),
            ));
        }
        Ok(())
    }
}

/// The key store of one origin (or of a named database, for several devices in one origin).
pub(crate) struct KeyStore {
    db: Database,
}

/// The public facts of this device, readable without unlocking.
pub(crate) struct DevicePublic {
    pub(crate) registration_data: String,
}

/// The store, unlocked: holds the DEK until dropped.
pub(crate) struct Unlocked {
    dek: Zeroizing<[u8; 32]>,
}

/// The DEK wrapped in two layers: by a key from the passcode or the passkey (in wasm), then by
/// the profile's non-extractable key (WebCrypto). Unwrapping needs both.
struct Layers {
    inner_nonce: [u8; 12],
    outer_nonce: [u8; 12],
    wrapped: Vec<u8>,
}

/// How the DEK is wrapped by the passcode.
struct PasscodeWrap {
    salt: [u8; 16],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    layers: Layers,
}

/// How the DEK is wrapped by a passkey's PRF output.
struct PasskeyWrap {
    credential_id: Vec<u8>,
    salt: [u8; 32],
    layers: Layers,
}

/// What unlocks the store for one operation.
pub(crate) enum Unlock {
    /// The user's passcode.
    Passcode(String),
    /// The device's passkey (the browser asks the user to verify).
    Passkey,
}

fn random<const N: usize>() -> Result<[u8; N], SdkError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| SdkError::Crypto(error.to_string()))?;
    Ok(bytes)
}

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), SdkError> {
    Reflect::set(object, &key.into(), value)
        .map(drop)
        .map_err(|_| SdkError::Storage(format!("cannot set {key}")))
}

/// A copy of a stored object with `set` fields set and `remove` fields gone; every other field,
/// including those of newer versions, stays.
fn updated(
    stored: &JsValue,
    set_fields: &[(&str, &JsValue)],
    remove: &[&str],
) -> Result<JsValue, SdkError> {
    let copy: Object = Object::assign(&Object::new(), stored.unchecked_ref());
    for (key, value) in set_fields {
        set(&copy, key, value)?;
    }
    for key in remove {
        Reflect::delete_property(&copy, &(*key).into())
            .map_err(|_| SdkError::Storage(format!("cannot remove {key}")))?;
    }
    Ok(copy.into())
}

fn bytes_value(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}

fn field(object: &JsValue, key: &str) -> Result<JsValue, SdkError> {
    Reflect::get(object, &key.into())
        .ok()
        .filter(|value| !value.is_undefined())
        .ok_or_else(|| SdkError::Corrupt(format!("the stored device has no {key}")))
}

fn bytes_field(object: &JsValue, key: &str) -> Result<Vec<u8>, SdkError> {
    field(object, key)?
        .dyn_into::<Uint8Array>()
        .map(|array| array.to_vec())
        .map_err(|_| SdkError::Corrupt(format!("the stored {key} is not bytes")))
}

fn array_field<const N: usize>(object: &JsValue, key: &str) -> Result<[u8; N], SdkError> {
    bytes_field(object, key)?
        .try_into()
        .map_err(|_| SdkError::Corrupt(format!("the stored {key} has the wrong length")))
}

fn u32_field(object: &JsValue, key: &str) -> Result<u32, SdkError> {
    field(object, key)?
        .as_f64()
        .filter(|value| value.fract() == 0.0 && *value >= 0.0 && *value <= f64::from(u32::MAX))
        .map(|value| value as u32)
        .ok_or_else(|| SdkError::Corrupt(format!("the stored {key} is not a count")))
}

/// AES-256-GCM in wasm (the DEK and the passcode key never leave wasm memory).
fn seal(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SdkError> {
    Aes256Gcm::new(key.into())
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SdkError::Crypto("encryption failed".into()))
}

fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    Aes256Gcm::new(key.into())
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn aad(way: &str, layer: &str) -> Vec<u8> {
    format!("waas-sdk dek/{way}/{layer} v1").into_bytes()
}

/// The profile layer's AAD: the way, the wrap's parameters (salt, KDF settings or passkey id)
/// and the inner nonce, so that none of them can be altered without the profile layer failing
/// (a tampered store reads as corrupt, never as a wrong passcode).
fn profile_aad(way: &str, header: &[u8], inner_nonce: &[u8; 12]) -> Vec<u8> {
    [aad(way, "profile").as_slice(), header, inner_nonce].concat()
}

impl Layers {
    async fn wrap(
        way: &str,
        header: &[u8],
        key: &[u8; 32],
        dek: &[u8; 32],
        profile: &CryptoKey,
    ) -> Result<Self, SdkError> {
        let inner_nonce = random::<12>()?;
        let inner = Zeroizing::new(seal(key, &inner_nonce, &aad(way, "inner"), dek)?);
        let outer_nonce = random::<12>()?;
        let wrapped = subtle::encrypt(
            profile,
            &outer_nonce,
            &profile_aad(way, header, &inner_nonce),
            &inner,
        )
        .await?;
        Ok(Self {
            inner_nonce,
            outer_nonce,
            wrapped,
        })
    }

    /// The outer layer only: fails as corrupt when the store was altered or copied to another
    /// profile, before any passcode or passkey is tried.
    async fn peel(
        &self,
        way: &str,
        header: &[u8],
        profile: &CryptoKey,
    ) -> Result<Zeroizing<Vec<u8>>, SdkError> {
        subtle::decrypt(
            profile,
            &self.outer_nonce,
            &profile_aad(way, header, &self.inner_nonce),
            &self.wrapped,
        )
        .await
    }

    /// The DEK from the peeled inner layer, if `key` is the right one.
    fn open_inner(&self, way: &str, key: &[u8; 32], inner: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let dek = open(key, &self.inner_nonce, &aad(way, "inner"), inner)?;
        let dek: [u8; 32] = dek.as_slice().try_into().ok()?;
        Some(Zeroizing::new(dek))
    }

    fn write(&self, object: &Object) -> Result<(), SdkError> {
        set(object, "innerNonce", &bytes_value(&self.inner_nonce))?;
        set(object, "outerNonce", &bytes_value(&self.outer_nonce))?;
        set(object, "wrapped", &bytes_value(&self.wrapped))
    }

    fn read(value: &JsValue) -> Result<Self, SdkError> {
        Ok(Self {
            inner_nonce: array_field(value, "innerNonce")?,
            outer_nonce: array_field(value, "outerNonce")?,
            wrapped: bytes_field(value, "wrapped")?,
        })
    }
}

impl PasscodeWrap {
    /// The parameters the profile layer authenticates.
    fn header(salt: &[u8; 16], memory_kib: u32, iterations: u32, parallelism: u32) -> Vec<u8> {
        [
            salt.as_slice(),
            &memory_kib.to_be_bytes(),
            &iterations.to_be_bytes(),
            &parallelism.to_be_bytes(),
        ]
        .concat()
    }

    fn passcode_key(
        passcode: &str,
        salt: &[u8; 16],
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        if !(ARGON2_MEMORY_KIB..=ARGON2_MAX_MEMORY_KIB).contains(&memory_kib)
            || !(ARGON2_ITERATIONS..=ARGON2_MAX_ITERATIONS).contains(&iterations)
            || parallelism != ARGON2_PARALLELISM
        {
            return Err(SdkError::Corrupt(
                "the stored passcode parameters are out of range".into(),
            ));
        }
        let params = Params::new(memory_kib, iterations, parallelism, Some(32))
            .map_err(|error| SdkError::Corrupt(format!("passcode parameters: {error}")))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passcode.as_bytes(), salt, key.as_mut_slice())
            .map_err(|error| SdkError::Crypto(format!("Argon2id: {error}")))?;
        Ok(key)
    }

    /// Wraps `dek` under the passcode, then under the profile's key.
    async fn new(passcode: &str, dek: &[u8; 32], profile: &CryptoKey) -> Result<Self, SdkError> {
        let salt = random::<16>()?;
        let key = Self::passcode_key(
            passcode,
            &salt,
            ARGON2_MEMORY_KIB,
            ARGON2_ITERATIONS,
            ARGON2_PARALLELISM,
        )?;
        Ok(Self {
            salt,
            memory_kib: ARGON2_MEMORY_KIB,
            iterations: ARGON2_ITERATIONS,
            parallelism: ARGON2_PARALLELISM,
            layers: Layers::wrap(
                PASSCODE,
                &Self::header(
                    &salt,
                    ARGON2_MEMORY_KIB,
                    ARGON2_ITERATIONS,
                    ARGON2_PARALLELISM,
                ),
                &key,
                dek,
                profile,
            )
            .await?,
        })
    }

    /// The DEK, if `passcode` is right.
    async fn unwrap(
        &self,
        passcode: &str,
        profile: &CryptoKey,
    ) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        let header = Self::header(
            &self.salt,
            self.memory_kib,
            self.iterations,
            self.parallelism,
        );
        let inner = self.layers.peel(PASSCODE, &header, profile).await?;
        let key = Self::passcode_key(
            passcode,
            &self.salt,
            self.memory_kib,
            self.iterations,
            self.parallelism,
        )?;
        self.layers
            .open_inner(PASSCODE, &key, &inner)
            .ok_or(SdkError::WrongPasscode)
    }

    fn to_js(&self) -> Result<JsValue, SdkError> {
        let object = Object::new();
        set(&object, "salt", &bytes_value(&self.salt))?;
        set(&object, "memoryKib", &self.memory_kib.into())?;
        set(&object, "iterations", &self.iterations.into())?;
        set(&object, "parallelism", &self.parallelism.into())?;
        self.layers.write(&object)?;
        Ok(object.into())
    }

    fn from_js(value: &JsValue) -> Result<Self, SdkError> {
        Ok(Self {
            salt: array_field(value, "salt")?,
            memory_kib: u32_field(value, "memoryKib")?,
            iterations: u32_field(value, "iterations")?,
            parallelism: u32_field(value, "parallelism")?,
            layers: Layers::read(value)?,
        })
    }
}

impl PasskeyWrap {
    /// The parameters the profile layer authenticates.
    fn header(credential_id: &[u8], salt: &[u8; 32]) -> Vec<u8> {
        let length = u32::try_from(credential_id.len()).unwrap_or(u32::MAX);
        [salt.as_slice(), &length.to_be_bytes(), credential_id].concat()
    }

    /// The wrapping key from the authenticator's PRF output.
    /// `purpose` names what the key wraps, so the DEK's key and the archive's differ.
    fn passkey_key(prf: &[u8; 32], purpose: &[u8]) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"waas-sdk passkey"), prf)
            .expand(purpose, key.as_mut_slice())
            .map_err(|_| SdkError::Crypto("HKDF".into()))?;
        Ok(key)
    }

    /// The wrapping key for `purpose` from this passkey's PRF output for `salt`, after the user
    /// verifies.
    async fn evaluated_key(
        &self,
        salt: &[u8; 32],
        purpose: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        let prf = webauthn::evaluate(&self.credential_id, salt)
            .await?
            .ok_or_else(|| SdkError::PasskeyFailed("the passkey gave no PRF output".into()))?;
        Self::passkey_key(&prf, purpose)
    }

    /// Creates a passkey and wraps `dek` under its PRF output; `None` if the browser or the
    /// authenticator has no PRF (the device then unlocks with the passcode alone).
    async fn new(dek: &[u8; 32], profile: &CryptoKey) -> Result<Option<Self>, SdkError> {
        let salt = random::<32>()?;
        let (credential_id, prf) = webauthn::create("waas-sdk device", &salt).await?;
        let Some(prf) = prf else {
            return Ok(None);
        };
        let key = Self::passkey_key(&prf, DEK_PURPOSE)?;
        let layers = Layers::wrap(
            PASSKEY,
            &Self::header(&credential_id, &salt),
            &key,
            dek,
            profile,
        )
        .await?;
        Ok(Some(Self {
            credential_id,
            salt,
            layers,
        }))
    }

    /// The DEK, after the user verifies with the passkey.
    async fn unwrap(&self, profile: &CryptoKey) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        let header = Self::header(&self.credential_id, &self.salt);
        let inner = self.layers.peel(PASSKEY, &header, profile).await?;
        let key = self.evaluated_key(&self.salt, DEK_PURPOSE).await?;
        self.layers
            .open_inner(PASSKEY, &key, &inner)
            .ok_or_else(|| SdkError::PasskeyFailed("another passkey answered".into()))
    }

    fn to_js(&self) -> Result<JsValue, SdkError> {
        let object = Object::new();
        set(&object, "credentialId", &bytes_value(&self.credential_id))?;
        set(&object, "salt", &bytes_value(&self.salt))?;
        self.layers.write(&object)?;
        Ok(object.into())
    }

    fn from_js(value: &JsValue) -> Result<Self, SdkError> {
        Ok(Self {
            credential_id: bytes_field(value, "credentialId")?,
            salt: array_field(value, "salt")?,
            layers: Layers::read(value)?,
        })
    }
}

impl KeyStore {
    /// Opens the key store database `name`.
    pub(crate) async fn open(name: &str) -> Result<Self, SdkError> {
        Ok(Self {
            db: Database::open(name).await?,
        })
    }

    /// Whether this profile has a device.
    pub(crate) async fn is_bootstrapped(&self) -> Result<bool, SdkError> {
        Ok(self.db.get("meta", "device").await?.is_some())
    }

    /// Creates the device: the keys, the DEK under `passcode`, the archive key, the registration
    /// data. All or nothing; `AlreadyBootstrapped` if the profile has a device (even one created
    /// by another tab a moment ago).
    /// With `passkey`, also creates a passkey and wraps the DEK under its PRF output where the
    /// browser supports PRF; returns whether it did.
    ///
    /// With `recovery` (a profile set up to recover a wallet with its backup), the passcode is
    /// checked against the policy only and never kept: the DEK waits under the profile's key
    /// alone until the recovery puts it under the wallet's record, in the write that deletes this
    /// wrap. A passcode wrap here would be an offline test of a live wallet's passcode for
    /// anyone with a copy of the profile (and, often, the backup file next to it); the server
    /// checks the passcode during the recovery instead, counted.
    pub(crate) async fn bootstrap(
        &self,
        passcode: &str,
        policy: PasscodePolicy,
        passkey: bool,
        recovery: bool,
    ) -> Result<bool, SdkError> {
        policy.check(passcode)?;
        if self.is_bootstrapped().await? {
            return Err(SdkError::AlreadyBootstrapped);
        }
        let profile = subtle::generate_wrapping_key().await?;
        let (auth_key, auth_public_key) = subtle::generate_signing_key().await?;
        let archive_secret = Zeroizing::new(random::<32>()?);
        let archive = k256::ecdsa::SigningKey::from_slice(archive_secret.as_slice())
            .map_err(|_| SdkError::Crypto("the archive key is not a valid scalar".into()))?;
        let archive_public_key: [u8; 33] = archive
            .verifying_key()
            .to_sec1_point(true)
            .as_bytes()
            .try_into()
            .map_err(|_| SdkError::Crypto("the archive public key is not compressed".into()))?;
        let signed = RegistrationData::signed_bytes(&auth_public_key, &archive_public_key);
        let auth_proof = subtle::sign_es256(&auth_key, &signed).await?;
        let archive_proof: k256::ecdsa::Signature = archive.sign(&signed);
        let registration_data = RegistrationData {
            auth_public_key,
            archive_public_key,
            auth_proof,
            archive_proof: archive_proof.to_bytes().into(),
        }
        .encode();

        let dek = Zeroizing::new(random::<32>()?);
        let wrap = if recovery {
            let object = Object::new();
            Layers::wrap(AWAITING_RECOVERY, &[], &NO_SECRET, &dek, &profile)
                .await?
                .write(&object)?;
            (AWAITING_RECOVERY, JsValue::from(object))
        } else {
            (
                PASSCODE,
                PasscodeWrap::new(passcode, &dek, &profile).await?.to_js()?,
            )
        };
        let passkey_wrap = if passkey {
            PasskeyWrap::new(&dek, &profile).await?
        } else {
            None
        };
        let unlocked = Unlocked { dek };
        let archive_record = unlocked.seal_record(ARCHIVE_KEY, archive_secret.as_slice())?;

        let device = Object::new();
        set(&device, "version", &FORMAT_VERSION.into())?;
        set(&device, "authPublicKey", &bytes_value(&auth_public_key))?;
        set(
            &device,
            "archivePublicKey",
            &bytes_value(&archive_public_key),
        )?;
        set(&device, "registrationData", &registration_data.into())?;
        set(&device, wrap.0, &wrap.1)?;
        if let Some(passkey_wrap) = &passkey_wrap {
            set(&device, "passkey", &passkey_wrap.to_js()?)?;
        }
        set(&device, "createTime", &js_sys::Date::now().into())?;
        let written = self
            .db
            .insert_many(&[
                ("keys", "wrapping", &profile.into()),
                ("keys", "auth", &auth_key.into()),
                ("records", ARCHIVE_KEY, &archive_record),
                ("meta", "device", &device.into()),
            ])
            .await;
        match written {
            Ok(()) => Ok(passkey_wrap.is_some()),
            // The insert-only write failed: if another tab bootstrapped meanwhile, say so.
            Err(_) if self.is_bootstrapped().await? => Err(SdkError::AlreadyBootstrapped),
            Err(error) => Err(error),
        }
    }

    /// Whether the device was set up to recover a wallet (`bootstrap` with `recovery`) and
    /// holds none yet: its passcode was never kept, so only the server can check it.
    pub(crate) async fn awaiting_recovery(&self) -> Result<bool, SdkError> {
        let (device, _) = self.device().await?;
        Ok(awaiting_recovery(&device))
    }

    /// Whether the device can unlock with a passkey.
    pub(crate) async fn has_passkey(&self) -> Result<bool, SdkError> {
        let (device, _) = self.device().await?;
        Ok(Reflect::get(&device, &"passkey".into()).is_ok_and(|value| value.is_object()))
    }

    async fn device(&self) -> Result<(JsValue, CryptoKey), SdkError> {
        let [device, profile] = <[Option<JsValue>; 2]>::try_from(
            self.db
                .get_many(&[("meta", "device"), ("keys", "wrapping")])
                .await?,
        )
        .map_err(|_| SdkError::Storage("unexpected read".into()))?;
        let device = device.ok_or(SdkError::NotBootstrapped)?;
        let version = u32_field(&device, "version")?;
        if version != FORMAT_VERSION {
            return Err(SdkError::Corrupt(format!(
                "unknown key store version {version}"
            )));
        }
        let profile = profile
            .and_then(|key| key.dyn_into::<CryptoKey>().ok())
            .ok_or_else(|| SdkError::Corrupt("the profile key is missing".into()))?;
        Ok((device, profile))
    }

    /// Changes the device record in one transaction (a write of another tab in between is
    /// never lost). `change` must not await.
    async fn update_device(
        &self,
        change: &dyn Fn(&JsValue) -> Result<JsValue, SdkError>,
    ) -> Result<(), SdkError> {
        self.db
            .update("meta", "device", &mut |device| {
                change(&device.ok_or(SdkError::NotBootstrapped)?)
            })
            .await
    }

    /// The device's public facts.
    pub(crate) async fn public(&self) -> Result<DevicePublic, SdkError> {
        let (device, _) = self.device().await?;
        let registration_data = field(&device, "registrationData")?
            .as_string()
            .ok_or_else(|| SdkError::Corrupt("the stored registration data is not text".into()))?;
        Ok(DevicePublic { registration_data })
    }

    /// The DEK, for a correct passcode (on a device without a wallet yet: with one, the passcode
    /// opens it only through a login, `WaasClient::unlock`) or after the passkey's user
    /// verification.
    pub(crate) async fn unlock(&self, unlock: &Unlock) -> Result<Unlocked, SdkError> {
        let (device, profile) = self.device().await?;
        let dek = match unlock {
            Unlock::Passcode(_) if login_wrap::has_login_wraps(&device) => {
                return Err(SdkError::InvalidArgument(
                    "this device holds a wallet: its passcode is checked at the server (use WaasClient)"
                        .into(),
                ));
            }
            // Set up to recover a wallet: nothing here tests the passcode (the recovery does, at
            // the server) and the device holds nothing yet.
            Unlock::Passcode(_) if awaiting_recovery(&device) => {
                let layers = Layers::read(&field(&device, AWAITING_RECOVERY)?)?;
                let inner = layers.peel(AWAITING_RECOVERY, &[], &profile).await?;
                layers
                    .open_inner(AWAITING_RECOVERY, &NO_SECRET, &inner)
                    .ok_or_else(|| SdkError::Corrupt("the device's key does not open".into()))?
            }
            Unlock::Passcode(passcode) => {
                let current = PasscodeWrap::from_js(&field(&device, PASSCODE)?)?
                    .unwrap(passcode, &profile)
                    .await;
                match (current, pending_wrap(&device)?) {
                    // A passcode reset that has not finished yet (`WaasClient.resetPasscode`
                    // stopped half way): the new passcode opens too.
                    (Err(SdkError::WrongPasscode), Some(next)) => {
                        next.unwrap(passcode, &profile).await?
                    }
                    (current, _) => current?,
                }
            }
            Unlock::Passkey => {
                let wrap = Reflect::get(&device, &"passkey".into())
                    .ok()
                    .filter(JsValue::is_object)
                    .ok_or_else(|| SdkError::PasskeyFailed("this device has no passkey".into()))?;
                PasskeyWrap::from_js(&wrap)?.unwrap(&profile).await?
            }
        };
        Ok(Unlocked { dek })
    }

    /// Rewraps the DEK under a new passcode; the records stay as they are. Only for a device
    /// without wallets: a wallet's passcode is also registered at the server, and
    /// `WaasClient.resetPasscode` changes both.
    pub(crate) async fn reset_passcode(
        &self,
        old: &str,
        new: &str,
        policy: PasscodePolicy,
    ) -> Result<(), SdkError> {
        let _lock = crate::browser::WebLock::acquire(DEVICE_LOCK).await?;
        if self.awaiting_recovery().await? {
            return Err(SdkError::InvalidArgument(
                "this device was set up to recover a wallet and keeps no passcode to change".into(),
            ));
        }
        if !self.groups().await?.is_empty() {
            return Err(SdkError::InvalidArgument(
                "this device holds wallets, whose passcode is also at the server: use WaasClient.resetPasscode".into(),
            ));
        }
        self.rewrap_passcode(old, new, policy).await
    }

    /// Rewraps the DEK under a new passcode. The caller holds [`DEVICE_LOCK`], so two tabs
    /// cannot interleave read and write.
    async fn rewrap_passcode(
        &self,
        old: &str,
        new: &str,
        policy: PasscodePolicy,
    ) -> Result<(), SdkError> {
        policy.check(new)?;
        let unlocked = self.unlock(&Unlock::Passcode(old.to_owned())).await?;
        self.begin_passcode_change(&unlocked, new).await?;
        self.finish_passcode_change().await
    }

    /// Whether a passcode change was begun and not finished.
    #[cfg(feature = "rare-flows")]
    pub(crate) async fn passcode_change_pending(&self) -> Result<bool, SdkError> {
        let (device, _) = self.device().await?;
        Ok(Reflect::get(&device, &PASSCODE_CHANGING.into()).is_ok_and(|value| value.is_truthy()))
    }

    /// A passcode change, first half: marks the change as under way and, on a device that still
    /// has the local wrap, wraps the DEK under `new` as well (`passcodeNext`), so both passcodes
    /// open the device until [`Self::finish_passcode_change`]. A change that stops between the
    /// server's new records and this device's last write loses nothing.
    pub(crate) async fn begin_passcode_change(
        &self,
        unlocked: &Unlocked,
        new: &str,
    ) -> Result<(), SdkError> {
        let (device, profile) = self.device().await?;
        let next = if has_local_wrap(&device) {
            Some(
                PasscodeWrap::new(new, &unlocked.dek, &profile)
                    .await?
                    .to_js()?,
            )
        } else {
            None
        };
        self.update_device(&|device| match &next {
            // Only while the local wrap is there: once a login wrap replaced it, a wrap under
            // the new passcode would be an offline test of it.
            Some(next) if has_local_wrap(device) => updated(
                device,
                &[(PASSCODE_CHANGING, &JsValue::TRUE), (PASSCODE_NEXT, next)],
                &[],
            ),
            _ => updated(device, &[(PASSCODE_CHANGING, &JsValue::TRUE)], &[]),
        })
        .await
    }

    /// A passcode change, second half: the new local wrap (if any) replaces the old one.
    pub(crate) async fn finish_passcode_change(&self) -> Result<(), SdkError> {
        self.update_device(
            &|device| match Reflect::get(device, &PASSCODE_NEXT.into()) {
                Ok(next) if next.is_object() => updated(
                    device,
                    &[(PASSCODE, &next)],
                    &[PASSCODE_NEXT, PASSCODE_CHANGING],
                ),
                _ => updated(device, &[], &[PASSCODE_CHANGING]),
            },
        )
        .await
    }

    /// The archive key's secret (the device archive is sealed to its public key).
    pub(crate) async fn archive_secret(
        &self,
        unlocked: &Unlocked,
    ) -> Result<Zeroizing<[u8; 32]>, SdkError> {
        let record = self
            .db
            .get("records", ARCHIVE_KEY)
            .await?
            .ok_or(SdkError::NotBootstrapped)?;
        let bytes = unlocked.open_record(ARCHIVE_KEY, &record)?;
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SdkError::Corrupt("the archive key has the wrong length".into()))?;
        Ok(Zeroizing::new(secret))
    }
}

impl KeyStore {
    /// The non-extractable key that signs this device's requests.
    pub(crate) async fn auth_key(&self) -> Result<CryptoKey, SdkError> {
        self.db
            .get("keys", "auth")
            .await?
            .ok_or(SdkError::NotBootstrapped)?
            .dyn_into()
            .map_err(|_| SdkError::Corrupt("the auth key is not a CryptoKey".into()))
    }

    /// This device's resource name: `devices/{first 16 bytes of SHA-256(auth key), hex}`, as the
    /// server derives it.
    pub(crate) async fn device_name(&self) -> Result<waas_api::DeviceName, SdkError> {
        use sha2::Digest;
        let data = RegistrationData::decode(&self.public().await?.registration_data)
            .map_err(|error| SdkError::Corrupt(error.to_string()))?;
        let hash = sha2::Sha256::digest(data.auth_public_key);
        Ok(waas_api::DeviceName::new(waas_api::ResourceId::new(
            hex::encode(&hash[..16]),
        )?))
    }

    /// The pairing of `group` this device holds: its public facts (no unlock needed) and its
    /// sealed record.
    pub(crate) async fn group(&self, group: &str) -> Result<Option<StoredGroup>, SdkError> {
        let [entry, profile] = <[Option<JsValue>; 2]>::try_from(
            self.db
                .get_many(&[("meta", &format!("group/{group}")), ("keys", "wrapping")])
                .await?,
        )
        .map_err(|_| SdkError::Storage("unexpected read".into()))?;
        let (Some(entry), Some(profile)) = (entry, profile) else {
            return Ok(None);
        };
        let profile: CryptoKey = profile
            .dyn_into()
            .map_err(|_| SdkError::Corrupt("the profile key is missing".into()))?;
        let nonce: [u8; 12] = array_field(&entry, "chainCodeNonce")?;
        let sealed = bytes_field(&entry, "chainCode")?;
        let root_public_key: [u8; 33] = array_field(&entry, "rootPublicKey")?;
        let pairing_id: [u8; 32] = array_field(&entry, "pairingId")?;
        let epoch = u32_field(&entry, "epoch")?;
        let aad = group_aad(group, &root_public_key, &pairing_id, epoch.into());
        let chain_code = subtle::decrypt(&profile, &nonce, &aad, &sealed).await?;
        Ok(Some(StoredGroup {
            root_public_key,
            chain_code: chain_code
                .as_slice()
                .try_into()
                .map_err(|_| SdkError::Corrupt("the chain code has the wrong length".into()))?,
        }))
    }

    /// Stores a new group's pairing (epoch 0) with its public facts, atomically; refuses to
    /// overwrite one that exists (another tab, or a replayed operation).
    pub(crate) async fn insert_pairing(
        &self,
        unlocked: &Unlocked,
        group: &str,
        pairing: &waas_mpc::Pairing,
    ) -> Result<(), SdkError> {
        let profile: CryptoKey = self
            .db
            .get("keys", "wrapping")
            .await?
            .ok_or(SdkError::NotBootstrapped)?
            .dyn_into()
            .map_err(|_| SdkError::Corrupt("the profile key is missing".into()))?;
        let public = pairing.public();
        let nonce = random::<12>()?;
        let aad = group_aad(group, &public.root_public_key, &public.id, pairing.epoch());
        let chain_code = subtle::encrypt(&profile, &nonce, &aad, &public.chain_code).await?;
        let entry = Object::new();
        set(&entry, "epoch", &(pairing.epoch() as f64).into())?;
        set(&entry, "pairingId", &bytes_value(&public.id))?;
        set(
            &entry,
            "rootPublicKey",
            &bytes_value(&public.root_public_key),
        )?;
        set(&entry, "chainCodeNonce", &bytes_value(&nonce))?;
        set(&entry, "chainCode", &bytes_value(&chain_code))?;
        let id = pairing_record_id(group, pairing.epoch());
        let bytes = pairing
            .to_bytes()
            .map_err(|error| SdkError::Crypto(error.to_string()))?;
        let record = unlocked.seal_record(&id, &bytes)?;
        self.db
            .insert_many(&[
                ("records", &id, &record),
                ("meta", &format!("group/{group}"), &entry.into()),
            ])
            .await
    }

    /// Forgets `group`'s pairing at `epoch` and its public facts: a recovery that stored them but
    /// whose operation ended without adding this device (round 9 never committed), so that a
    /// new recovery can start over. Recovery is a rare flow: only in the full module.
    #[cfg(feature = "rare-flows")]
    pub(crate) async fn forget_pairing(&self, group: &str, epoch: u64) -> Result<(), SdkError> {
        self.db
            .delete("records", &pairing_record_id(group, epoch))
            .await?;
        self.db.delete("meta", &format!("group/{group}")).await
    }

    /// Marks `group`'s pairing at `epoch` as never to be used again (the server failed a check
    /// only a cheating peer fails). The record stays, for a backup to restore from.
    pub(crate) async fn retire_pairing(&self, group: &str, epoch: u64) -> Result<(), SdkError> {
        self.db
            .put("meta", &retired_id(group, epoch), &JsValue::TRUE)
            .await
    }

    /// Every group this device holds a pairing of.
    pub(crate) async fn groups(&self) -> Result<Vec<String>, SdkError> {
        Ok(self
            .db
            .keys("meta")
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix("group/").map(str::to_owned))
            .collect())
    }

    /// Records that this device made `wallet` on `group`.
    pub(crate) async fn remember_wallet(&self, wallet: &str, group: &str) -> Result<(), SdkError> {
        self.db
            .put(
                "meta",
                &format!("wallet/{wallet}"),
                &JsValue::from_str(group),
            )
            .await
    }

    /// The group this device recorded for `wallet`, if it made it.
    pub(crate) async fn wallet_group(&self, wallet: &str) -> Result<Option<String>, SdkError> {
        Ok(self
            .db
            .get("meta", &format!("wallet/{wallet}"))
            .await?
            .and_then(|group| group.as_string()))
    }

    /// The device's half of `group`'s pairing at `epoch`.
    pub(crate) async fn pairing(
        &self,
        unlocked: &Unlocked,
        group: &str,
        epoch: u64,
    ) -> Result<waas_mpc::Pairing, SdkError> {
        let id = pairing_record_id(group, epoch);
        let record = self.db.get("records", &id).await?.ok_or_else(|| {
            SdkError::InvalidArgument(format!(
                "this device has no pairing for {group} at epoch {epoch}"
            ))
        })?;
        let bytes = unlocked.open_record(&id, &record)?;
        waas_mpc::Pairing::from_bytes(&bytes).map_err(|error| SdkError::Corrupt(error.to_string()))
    }
}

/// A group's public facts as the device stored them.
pub(crate) struct StoredGroup {
    pub(crate) root_public_key: [u8; 33],
    pub(crate) chain_code: [u8; 32],
}

/// The sealed chain code's AAD: it authenticates the entry's other facts too, so an altered root
/// key (from which every address is checked) reads as `STORAGE_CORRUPT`, not as a lying server.
fn group_aad(
    group: &str,
    root_public_key: &[u8; 33],
    pairing_id: &[u8; 32],
    epoch: u64,
) -> Vec<u8> {
    [
        b"waas-sdk group v1\0".as_slice(),
        group.as_bytes(),
        b"\0",
        root_public_key,
        pairing_id,
        &epoch.to_be_bytes(),
    ]
    .concat()
}

/// Whether the device was set up to recover a wallet and has not yet (its DEK has no passcode
/// wrap at all).
fn awaiting_recovery(device: &JsValue) -> bool {
    Reflect::get(device, &AWAITING_RECOVERY.into()).is_ok_and(|value| value.is_object())
}

/// Whether the DEK still has its local passcode wrap (no wallet's record wraps it yet).
fn has_local_wrap(device: &JsValue) -> bool {
    Reflect::get(device, &PASSCODE.into()).is_ok_and(|value| value.is_object())
}

/// The wrap of a passcode change under way, if any.
fn pending_wrap(device: &JsValue) -> Result<Option<PasscodeWrap>, SdkError> {
    match Reflect::get(device, &PASSCODE_NEXT.into()) {
        Ok(wrap) if wrap.is_object() => PasscodeWrap::from_js(&wrap).map(Some),
        _ => Ok(None),
    }
}

fn retired_id(group: &str, epoch: u64) -> String {
    format!("retired/{group}/{epoch}")
}

fn pairing_record_id(group: &str, epoch: u64) -> String {
    format!("pairing/{group}/{epoch}")
}

impl Unlocked {
    /// Opens the record stored under `id`; a changed, moved or foreign record is `Corrupt`.
    pub(crate) fn open_record(
        &self,
        id: &str,
        record: &JsValue,
    ) -> Result<Zeroizing<Vec<u8>>, SdkError> {
        let nonce: [u8; 12] = array_field(record, "nonce")?;
        let ciphertext = bytes_field(record, "ciphertext")?;
        let aad = [RECORD_AAD, id.as_bytes()].concat();
        open(&self.dek, &nonce, &aad, &ciphertext)
            .ok_or_else(|| SdkError::Corrupt(format!("the record {id} fails its integrity check")))
    }

    /// A record for `id`: `{ nonce, ciphertext }`, AES-256-GCM under the DEK, the id in the AAD.
    pub(crate) fn seal_record(&self, id: &str, plaintext: &[u8]) -> Result<JsValue, SdkError> {
        let nonce = random::<12>()?;
        let aad = [RECORD_AAD, id.as_bytes()].concat();
        let ciphertext = seal(&self.dek, &nonce, &aad, plaintext)?;
        let record = Object::new();
        set(&record, "nonce", &bytes_value(&nonce))?;
        set(&record, "ciphertext", &bytes_value(&ciphertext))?;
        Ok(record.into())
    }
}
