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
use zeroize::Zeroizing;

use super::{AWAITING_RECOVERY, KeyStore, Layers, PASSCODE, PASSCODE_NEXT, Unlocked, set, updated};
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
    /// The groups whose record wraps the DEK, in the order they were added. Empty until the first
    /// wallet's passcode is registered: the local wrap still opens the DEK then.
    pub(crate) async fn login_wrapped_groups(&self) -> Result<Vec<String>, SdkError> {
        let (device, _) = self.device().await?;
        Ok(Object::keys(login_wraps(&device).unchecked_ref::<Object>())
            .iter()
            .filter_map(|group| group.as_string())
            .collect())
    }

    /// The profile layers of `group`'s wraps, peeled before the login: an altered or copied
    /// store is `STORAGE_CORRUPT` before the server counts an attempt.
    pub(crate) async fn peel_login_wraps(&self, group: &str) -> Result<PeeledWraps, SdkError> {
        let (device, profile) = self.device().await?;
        let wraps = group_wraps(&device, group)
            .ok_or_else(|| SdkError::InvalidArgument(format!("no login opens {group}")))?;
        let mut peeled = Vec::new();
        for name in [WRAP, PREVIOUS_WRAP] {
            let Some(wrap) = Reflect::get(&wraps, &name.into())
                .ok()
                .filter(JsValue::is_object)
            else {
                continue;
            };
            let layers = Layers::read(&wrap)?;
            let inner = layers.peel(LOGIN_WAY, group.as_bytes(), &profile).await?;
            peeled.push((layers, inner));
        }
        Ok(PeeledWraps {
            group: group.to_owned(),
            peeled,
        })
    }

    /// Wraps the DEK under `group`'s record (export key `new`) and deletes the local passcode
    /// wraps (or the wrap of a profile set up for recovery) in the same write: from now on only a login opens the DEK with the passcode. `when`
    /// says what the write replaces, checked in its transaction (another tab may have written
    /// meanwhile).
    pub(crate) async fn wrap_for_login(
        &self,
        unlocked: &Unlocked,
        group: &str,
        new: &ExportKey,
        when: LoginWrap<'_>,
    ) -> Result<(), SdkError> {
        let (_, profile) = self.device().await?;
        let wrap = |key: &ExportKey| {
            let key = key.data_key_wrap_key();
            let profile = profile.clone();
            async move {
                let layers =
                    Layers::wrap(LOGIN_WAY, group.as_bytes(), &key, &unlocked.dek, &profile)
                        .await?;
                let object = Object::new();
                layers.write(&object)?;
                Ok::<JsValue, SdkError>(object.into())
            }
        };
        let entry = Object::new();
        set(&entry, WRAP, &wrap(new).await?)?;
        #[cfg(feature = "rare-flows")]
        if let LoginWrap::Change { old } = when {
            set(&entry, PREVIOUS_WRAP, &wrap(old).await?)?;
        }
        self.update_device(&|device| {
            let stored = group_wraps(device, group);
            let replace = match &when {
                LoginWrap::First => stored.is_none(),
                #[cfg(feature = "rare-flows")]
                LoginWrap::Change { .. } | LoginWrap::Settle => true,
                LoginWrap::Repair(peeled) => stored.is_some_and(|stored| peeled.is(&stored)),
            };
            if !replace {
                return Ok(device.clone());
            }
            let all = updated(&login_wraps(device), &[(group, &entry)], &[])?;
            updated(
                device,
                &[(LOGIN_WRAPS, &all)],
                &[PASSCODE, PASSCODE_NEXT, AWAITING_RECOVERY],
            )
        })
        .await
    }

    /// A passcode change of `group`, second half (the server has the new record): drops the wrap
    /// under the old one.
    #[cfg(feature = "rare-flows")]
    pub(crate) async fn finish_login_rewrap(&self, group: &str) -> Result<(), SdkError> {
        self.update_device(&|device| {
            let Some(wraps) = group_wraps(device, group) else {
                return Ok(device.clone());
            };
            let entry = updated(&wraps, &[], &[PREVIOUS_WRAP])?;
            let all = updated(&login_wraps(device), &[(group, &entry)], &[])?;
            updated(device, &[(LOGIN_WRAPS, &all)], &[])
        })
        .await
    }
}

/// What a login wrap's write may replace.
pub(crate) enum LoginWrap<'a> {
    /// The group's first login wrap: written only if the group has none yet.
    First,
    /// A passcode change (under its locks): a wrap under the old record's export key stays as
    /// `previousWrap` until [`KeyStore::finish_login_rewrap`], so the DEK opens whichever record
    /// the server ends up with. The passcode reset at the server is a rare flow (full module).
    #[cfg(feature = "rare-flows")]
    Change {
        /// The export key of the record in place.
        old: &'a ExportKey,
    },
    /// A passcode change that the server finished before this device did (under its locks):
    /// the wrap under the record in place replaces both.
    #[cfg(feature = "rare-flows")]
    Settle,
    /// A group whose record moved on without this device: rewrapped only if its wraps are still
    /// the ones peeled, so a passcode change another tab made meanwhile is not undone.
    Repair(&'a PeeledWraps),
}

/// A group's wraps with their profile layers peeled: the current one and the one a passcode
/// change in progress kept.
pub(crate) struct PeeledWraps {
    group: String,
    peeled: Vec<(Layers, Zeroizing<Vec<u8>>)>,
}

impl PeeledWraps {
    /// Whether `stored` (a group's entry) still holds exactly the wraps peeled.
    fn is(&self, stored: &JsValue) -> bool {
        let mut stored_layers = [WRAP, PREVIOUS_WRAP].into_iter().filter_map(|name| {
            Reflect::get(stored, &name.into())
                .ok()
                .filter(JsValue::is_object)
        });
        self.peeled.iter().all(|(layers, _)| {
            stored_layers
                .next()
                .and_then(|wrap| Layers::read(&wrap).ok())
                .is_some_and(|stored| stored.wrapped == layers.wrapped)
        }) && stored_layers.next().is_none()
    }

    /// The DEK, with the export key of a login to the group.
    pub(crate) fn open(&self, export_key: &ExportKey) -> Result<Unlocked, SdkError> {
        let key = export_key.data_key_wrap_key();
        self.peeled
            .iter()
            .find_map(|(layers, inner)| layers.open_inner(LOGIN_WAY, &key, inner))
            .map(|dek| Unlocked { dek })
            // The login succeeded, so the passcode was right: the record at the server is not one
            // this device wrapped its key for.
            .ok_or_else(|| {
                SdkError::PasscodeChangedElsewhere(format!(
                    "the passcode is right, but this device's keys are not wrapped under the current passcode record of {} (changed on another device, or the server's records were restored)",
                    self.group
                ))
            })
    }
}
