//! The device archive in the key store (docs/protocol/archive.md): the whole key of one device
//! group, sealed under a random archive key (AK). AK is wrapped by the OPAQUE export key and, on
//! a device with a passkey, by a key from the passkey's PRF; each wrap then by the profile key.
//! Never by a key from the passcode alone: a 6-digit passcode falls to an offline search of a
//! copied profile, and this record is the whole wallet.
//!
//! Record `records/archive/{group}`: `{ version, epoch, operation, sealedHash, nonce,
//! ciphertext, exportWrap: Layers, previousExportWrap?: Layers, passkeyWrap?: { salt, ...Layers } }`.
//! `operation` and `sealedHash` let a PrepareDeviceArchive whose last round was lost finish
//! without a new login; `previousExportWrap` keeps the archive open through a passcode reset
//! that stopped between the server's new record and the device's last write.

use js_sys::{Object, Reflect};
use waas_mpc::Archive;
use waas_mpc::passcode::ExportKey;
use wasm_bindgen::JsValue;
use zeroize::Zeroizing;

use super::{KeyStore, Layers, PasskeyWrap, array_field, bytes_value, field, random, seal, set};
#[cfg(feature = "rare-flows")]
use super::{bytes_field, open, u32_field, updated};
use crate::SdkError;

const ARCHIVE_VERSION: u32 = 1;
/// The wraps' ways (each layer's AAD names its way, so one cannot pass for another).
const EXPORT_WAY: &str = "archive-export";
const PASSKEY_WAY: &str = "archive-passkey";
/// The passkey key's purpose when it wraps the archive key (not the DEK's key).
const ARCHIVE_PURPOSE: &[u8] = b"waas-sdk archive wrapping key v1";

/// What opens a stored archive.
#[cfg(feature = "rare-flows")]
pub(crate) enum ArchiveUnlock<'a> {
    /// The OPAQUE export key from a login (or the registration) with the passcode.
    ExportKey(&'a ExportKey),
    /// The device's passkey (offline; the browser asks the user to verify).
    Passkey,
}

fn record_id(group: &str) -> String {
    format!("archive/{group}")
}

/// The sealed archive's AAD: the group and epoch it belongs to.
fn archive_aad(group: &str, epoch: u64) -> Vec<u8> {
    [
        b"waas-sdk archive v1\0".as_slice(),
        group.as_bytes(),
        b"\0",
        &epoch.to_be_bytes(),
    ]
    .concat()
}

impl KeyStore {
    /// Stores `archive` for `group`, wrapped by `export_key` and, where the device has a
    /// passkey, by the passkey too (the browser asks the user to verify). Replaces an older
    /// archive of the group only once the new one is complete.
    pub(crate) async fn store_archive(
        &self,
        group: &str,
        archive: &Archive,
        export_key: &ExportKey,
        operation: &str,
        sealed_hash: &[u8; 32],
    ) -> Result<(), SdkError> {
        let (device, profile) = self.device().await?;
        let archive_key = Zeroizing::new(random::<32>()?);
        let nonce = random::<12>()?;
        let ciphertext = seal(
            &archive_key,
            &nonce,
            &archive_aad(group, archive.epoch()),
            &archive.encode(),
        )?;
        let export_wrap = Layers::wrap(
            EXPORT_WAY,
            group.as_bytes(),
            &export_key.archive_wrap_key(),
            &archive_key,
            &profile,
        )
        .await?;
        let record = Object::new();
        set(&record, "version", &ARCHIVE_VERSION.into())?;
        set(&record, "epoch", &(archive.epoch() as f64).into())?;
        set(&record, "operation", &operation.into())?;
        set(&record, "sealedHash", &bytes_value(sealed_hash))?;
        set(&record, "nonce", &bytes_value(&nonce))?;
        set(&record, "ciphertext", &bytes_value(&ciphertext))?;
        let wrap = Object::new();
        export_wrap.write(&wrap)?;
        set(&record, "exportWrap", &wrap.into())?;
        if let Some(passkey) = passkey_of(&device)? {
            let salt = random::<32>()?;
            let key = passkey.evaluated_key(&salt, ARCHIVE_PURPOSE).await?;
            let layers = Layers::wrap(
                PASSKEY_WAY,
                &passkey_header(group, &passkey.credential_id, &salt),
                &key,
                &archive_key,
                &profile,
            )
            .await?;
            let wrap = Object::new();
            set(&wrap, "salt", &bytes_value(&salt))?;
            layers.write(&wrap)?;
            set(&record, "passkeyWrap", &wrap.into())?;
        }
        self.db
            .put("records", &record_id(group), &record.into())
            .await
    }

    /// The PrepareDeviceArchive operation the stored archive of `group` came from, and the hash
    /// of its sealed share (its last round).
    pub(crate) async fn archive_origin(
        &self,
        group: &str,
    ) -> Result<Option<(String, [u8; 32])>, SdkError> {
        let Some(record) = self.db.get("records", &record_id(group)).await? else {
            return Ok(None);
        };
        let operation = field(&record, "operation")?
            .as_string()
            .ok_or_else(|| SdkError::Corrupt("the archive's operation is not text".into()))?;
        Ok(Some((operation, array_field(&record, "sealedHash")?)))
    }
}

// Reading the archive (export) and rewrapping it (the passcode reset at the server) are rare flows:
// only in the full module (src/client/mod.rs).
#[cfg(feature = "rare-flows")]
impl KeyStore {
    /// Whether this device holds an archive of `group`.
    pub(crate) async fn has_archive(&self, group: &str) -> Result<bool, SdkError> {
        Ok(self.db.get("records", &record_id(group)).await?.is_some())
    }

    /// Opens the archive of `group` and checks it whole (`Archive::decode`).
    pub(crate) async fn open_archive(
        &self,
        group: &str,
        unlock: &ArchiveUnlock<'_>,
    ) -> Result<Archive, SdkError> {
        let (device, profile) = self.device().await?;
        let record = self
            .db
            .get("records", &record_id(group))
            .await?
            .ok_or_else(|| {
                SdkError::NoArchive(format!(
                    "this device holds no archive of {group}: run its PrepareDeviceArchive operation first"
                ))
            })?;
        let version = u32_field(&record, "version")?;
        if version != ARCHIVE_VERSION {
            return Err(SdkError::Corrupt(format!(
                "unknown archive version {version}"
            )));
        }
        let archive_key = match unlock {
            ArchiveUnlock::ExportKey(export_key) => {
                self.open_export_wrap(group, &record, export_key, &profile)
                    .await?
                    .0
            }
            ArchiveUnlock::Passkey => {
                let passkey = passkey_of(&device)?
                    .ok_or_else(|| SdkError::PasskeyFailed("this device has no passkey".into()))?;
                let wrap = Reflect::get(&record, &"passkeyWrap".into())
                    .ok()
                    .filter(JsValue::is_object)
                    .ok_or_else(|| {
                        SdkError::PasskeyFailed(
                            "this archive was stored without the passkey: use the passcode".into(),
                        )
                    })?;
                let salt: [u8; 32] = array_field(&wrap, "salt")?;
                let layers = Layers::read(&wrap)?;
                let header = passkey_header(group, &passkey.credential_id, &salt);
                let inner = layers.peel(PASSKEY_WAY, &header, &profile).await?;
                let key = passkey.evaluated_key(&salt, ARCHIVE_PURPOSE).await?;
                layers
                    .open_inner(PASSKEY_WAY, &key, &inner)
                    .ok_or_else(|| SdkError::PasskeyFailed("another passkey answered".into()))?
            }
        };
        let epoch = u32_field(&record, "epoch")?;
        let nonce: [u8; 12] = array_field(&record, "nonce")?;
        let ciphertext = bytes_field(&record, "ciphertext")?;
        let bytes = open(
            &archive_key,
            &nonce,
            &archive_aad(group, epoch.into()),
            &ciphertext,
        )
        .ok_or_else(|| SdkError::Corrupt("the archive fails its integrity check".into()))?;
        let archive =
            Archive::decode(&bytes).map_err(|error| SdkError::Corrupt(error.to_string()))?;
        if archive.epoch() != u64::from(epoch) {
            return Err(SdkError::Corrupt("the archive names another epoch".into()));
        }
        Ok(archive)
    }

    /// A passcode reset, first half: wraps the archive key of `group` under `new` as well, keeping
    /// the wrap under `old` until [`Self::finish_archive_rewrap`]. Also settles a reset that the
    /// server finished but this device did not: with `old` equal to `new`, the wrap that opens
    /// becomes the current one.
    pub(crate) async fn begin_archive_rewrap(
        &self,
        group: &str,
        old: &ExportKey,
        new: &ExportKey,
    ) -> Result<(), SdkError> {
        let (_, profile) = self.device().await?;
        let Some(record) = self.db.get("records", &record_id(group)).await? else {
            return Ok(());
        };
        // The wrap that opened under the old key is the one to keep: after an earlier reset that
        // stopped before the server switched, the current wrap may be under a key that never
        // became a record.
        let (archive_key, opened) = self.open_export_wrap(group, &record, old, &profile).await?;
        let wrap = Layers::wrap(
            EXPORT_WAY,
            group.as_bytes(),
            &new.archive_wrap_key(),
            &archive_key,
            &profile,
        )
        .await?;
        let object = Object::new();
        wrap.write(&object)?;
        let record = updated(
            &record,
            &[
                ("previousExportWrap", &field(&record, opened)?),
                ("exportWrap", &object.into()),
            ],
            &[],
        )?;
        self.db.put("records", &record_id(group), &record).await
    }

    /// A passcode reset, second half (the server has the new record): drops the old wrap.
    pub(crate) async fn finish_archive_rewrap(&self, group: &str) -> Result<(), SdkError> {
        let Some(record) = self.db.get("records", &record_id(group)).await? else {
            return Ok(());
        };
        let record = updated(&record, &[], &["previousExportWrap"])?;
        self.db.put("records", &record_id(group), &record).await
    }

    /// The archive key from the wrap under the export key, and which wrap opened: the current
    /// one, else the one a reset in progress kept.
    async fn open_export_wrap(
        &self,
        group: &str,
        record: &JsValue,
        export_key: &ExportKey,
        profile: &web_sys::CryptoKey,
    ) -> Result<(Zeroizing<[u8; 32]>, &'static str), SdkError> {
        let key = export_key.archive_wrap_key();
        for name in ["exportWrap", "previousExportWrap"] {
            let Some(wrap) = Reflect::get(record, &name.into())
                .ok()
                .filter(JsValue::is_object)
            else {
                continue;
            };
            let layers = Layers::read(&wrap)?;
            let inner = layers.peel(EXPORT_WAY, group.as_bytes(), profile).await?;
            if let Some(archive_key) = layers.open_inner(EXPORT_WAY, &key, &inner) {
                return Ok((archive_key, name));
            }
        }
        // The passcode was right (the login succeeded), so the record at the server is not the
        // one this archive was wrapped for: another device reset the passcode.
        Err(SdkError::NoArchive(format!(
            "the passcode of {group} was reset elsewhere: prepare the archive again"
        )))
    }
}

/// The device's passkey (its credential), if it has one.
fn passkey_of(device: &JsValue) -> Result<Option<PasskeyWrap>, SdkError> {
    match Reflect::get(device, &"passkey".into()) {
        Ok(wrap) if wrap.is_object() => PasskeyWrap::from_js(&wrap).map(Some),
        _ => Ok(None),
    }
}

/// What the passkey wrap's profile layer authenticates: the group, the credential and the salt.
fn passkey_header(group: &str, credential_id: &[u8], salt: &[u8; 32]) -> Vec<u8> {
    [
        PasskeyWrap::header(credential_id, salt).as_slice(),
        group.as_bytes(),
    ]
    .concat()
}
