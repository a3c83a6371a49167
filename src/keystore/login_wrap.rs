//! The data key (DEK) under the passcode at the server (docs/protocol/key-store.md): once the
//! device holds a wallet, the DEK's passcode layer is keyed by the OPAQUE export key of the
//! group's record, so every unlock with the passcode is one login the server counts. No copy of
//! the profile can test a passcode guess without the server; the local Argon2id wrap lives only
//! from bootstrap until the first wallet's record, and is deleted in the write that adds the
//! first login wrap.
//!
//! Field `loginWraps` of `meta/device`: `{ [group]: { wrap: Layers, previousWrap?: Layers } }`.
//! `previousWrap` keeps the DEK open under the old record through a passcode reset that stopped
//! between the server's new record and this device's last write.

use js_sys::{Object, Reflect};
use waas_mpc::passcode::ExportKey;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::CryptoKey;
use zeroize::Zeroizing;

use super::{KeyStore, Layers, PASSCODE, PASSCODE_NEXT, Unlocked, set, updated};
use crate::SdkError;

/// The wraps' way (each layer's AAD names its way, so a wrap of another kind cannot pass for one).
const LOGIN_WAY: &str = "login";
/// The field of `meta/device` holding the wraps.
pub(super) const LOGIN_WRAPS: &str = "loginWraps";
const WRAP: &str = "wrap";
const PREVIOUS_WRAP: &str = "previousWrap";

/// `loginWraps`, or an empty object.
fn login_wraps(device: &JsValue) -> JsValue {
    Reflect::get(device, &LOGIN_WRAPS.into())
        .ok()
        .filter(JsValue::is_object)
        .unwrap_or_else(|| Object::new().into())
}

/// The wraps of `group`, if any.
fn group_wraps(device: &JsValue, group: &str) -> Option<JsValue> {
    Reflect::get(&login_wraps(device), &group.into())
        .ok()
        .filter(JsValue::is_object)
}

/// Whether a device record unlocks with the passcode only through a login.
pub(super) fn has_login_wraps(device: &JsValue) -> bool {
    Object::keys(login_wraps(device).unchecked_ref::<Object>()).length() > 0
}

impl KeyStore {
    /// The groups whose record wraps the DEK, in a stable order. Empty until the first wallet's
    /// passcode is registered: the local wrap still opens the DEK then.
    pub(crate) async fn login_wrapped_groups(&self) -> Result<Vec<String>, SdkError> {
        let (device, _) = self.device().await?;
        let mut groups: Vec<String> = Object::keys(login_wraps(&device).unchecked_ref::<Object>())
            .iter()
            .filter_map(|group| group.as_string())
            .collect();
        groups.sort();
        Ok(groups)
    }

    /// The profile layers of `group`'s wraps, peeled before the login: an altered or copied
    /// store is `STORAGE_CORRUPT` before the server counts an attempt.
    pub(crate) async fn peel_login_wraps(&self, group: &str) -> Result<PeeledWraps, SdkError> {
        let (device, profile) = self.device().await?;
        let wraps = group_wraps(&device, group)
            .ok_or_else(|| SdkError::InvalidArgument(format!("no login opens {group}")))?;
        PeeledWraps::peel(group, &wraps, &profile).await
    }

    /// Wraps the DEK under `group`'s record (export key `new`) and deletes the local passcode
    /// wraps in the same write: from now on only a login opens the DEK with the passcode. With
    /// `keep`, the wrap that opens under that (the old record's) export key stays as
    /// `previousWrap` until [`Self::finish_login_rewrap`]; the one kept is the one that opens,
    /// since after a reset that stopped before the server switched, the current wrap may be under
    /// a key that never became a record.
    pub(crate) async fn wrap_for_login(
        &self,
        unlocked: &Unlocked,
        group: &str,
        new: &ExportKey,
        keep: Option<&ExportKey>,
    ) -> Result<(), SdkError> {
        let (device, profile) = self.device().await?;
        let layers = Layers::wrap(
            LOGIN_WAY,
            group.as_bytes(),
            &new.data_key_wrap_key(),
            &unlocked.dek,
            &profile,
        )
        .await?;
        let entry = Object::new();
        let wrap = Object::new();
        layers.write(&wrap)?;
        set(&entry, WRAP, &wrap.into())?;
        if let (Some(old), Some(wraps)) = (keep, group_wraps(&device, group))
            && let Some((_, opened)) = PeeledWraps::peel(group, &wraps, &profile)
                .await?
                .open_with(old)
        {
            set(&entry, PREVIOUS_WRAP, &Reflect::get(&wraps, &opened.into()).unwrap_or_default())?;
        }
        let all = updated(&login_wraps(&device), &[(group, &entry.into())], &[])?;
        let device = updated(&device, &[(LOGIN_WRAPS, &all)], &[PASSCODE, PASSCODE_NEXT])?;
        self.db.put("meta", "device", &device).await
    }

    /// A passcode reset of `group`, second half (the server has the new record): drops the wrap
    /// under the old one.
    pub(crate) async fn finish_login_rewrap(&self, group: &str) -> Result<(), SdkError> {
        let (device, _) = self.device().await?;
        let Some(wraps) = group_wraps(&device, group) else {
            return Ok(());
        };
        let entry = updated(&wraps, &[], &[PREVIOUS_WRAP])?;
        let all = updated(&login_wraps(&device), &[(group, &entry)], &[])?;
        let device = updated(&device, &[(LOGIN_WRAPS, &all)], &[])?;
        self.db.put("meta", "device", &device).await
    }
}

/// A group's wraps with their profile layers peeled: the current one and the one a reset in
/// progress kept.
pub(crate) struct PeeledWraps {
    group: String,
    peeled: Vec<(&'static str, Layers, Zeroizing<Vec<u8>>)>,
}

impl PeeledWraps {
    async fn peel(group: &str, wraps: &JsValue, profile: &CryptoKey) -> Result<Self, SdkError> {
        let mut peeled = Vec::new();
        for name in [WRAP, PREVIOUS_WRAP] {
            let Some(wrap) = Reflect::get(wraps, &name.into())
                .ok()
                .filter(JsValue::is_object)
            else {
                continue;
            };
            let layers = Layers::read(&wrap)?;
            let inner = layers.peel(LOGIN_WAY, group.as_bytes(), profile).await?;
            peeled.push((name, layers, inner));
        }
        Ok(Self {
            group: group.to_owned(),
            peeled,
        })
    }

    /// The DEK and the name of the wrap that `export_key` opens, if one does.
    fn open_with(&self, export_key: &ExportKey) -> Option<(Zeroizing<[u8; 32]>, &'static str)> {
        let key = export_key.data_key_wrap_key();
        self.peeled.iter().find_map(|(name, layers, inner)| {
            layers
                .open_inner(LOGIN_WAY, &key, inner)
                .map(|dek| (dek, *name))
        })
    }

    /// The DEK, with the export key of a login to the group.
    pub(crate) fn open(&self, export_key: &ExportKey) -> Result<Unlocked, SdkError> {
        match self.open_with(export_key) {
            Some((dek, _)) => Ok(Unlocked { dek }),
            // The login succeeded, so the passcode was right: the record at the server is not
            // the one this device wrapped for (another device of the group reset it).
            None => Err(SdkError::PasscodeChangedElsewhere(format!(
                "the passcode of {} was changed on another device: unlock with the passkey, or with the passcode this device last set",
                self.group
            ))),
        }
    }
}
