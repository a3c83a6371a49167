//! Key export (docs/protocol/archive.md): offline `exportPrivateKeys` from the device archive
//! (`archive.rs` prepares it), and the passcode reset that keeps the server's record and the
//! archive's wrap in step. Rare flows: only in the full module (feature `rare-flows`).

use js_sys::{Array, Object, Reflect};
use waas_api::export::ExportMetadata;
use waas_api::{DeviceGroupName, passcode::reason};
use waas_mpc::passcode::ExportKey;
use waas_mpc::{ExtendedPublicKey, parse_path};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use zeroize::Zeroizing;

use super::passcode::Login;
use super::{Unlock, WaasClient, abort, unlock_of};
use crate::SdkError;
use crate::device::{DeviceOptions, parse_options};
use crate::keystore::{ArchiveUnlock, DEVICE_LOCK, LoginWrap, Unlocked};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** One exported key: the whole private key of an address. Show it only to its owner. */
export interface ExportedKey {
  /** The EIP-55 address. */
  address: string;
  /** The secp256k1 private key, `0x` and 64 hex digits (what MetaMask imports). */
  privateKey: string;
  /** Its path below the wallet's root, e.g. `0/3`. */
  derivationPath: string;
  /** The MPC key it was. */
  mpcKey: string;
}
/** What `exportPrivateKeys` returns: every key of the wallet, and the root extended private key
 * (depth 0; any BIP32 tool derives every address from it at `0/i`). */
export interface ExportedKeys { keys: ExportedKey[]; xprv: string; }
"#;

#[wasm_bindgen]
extern "C" {
    /// `ExportedKeys`.
    #[wasm_bindgen(typescript_type = "ExportedKeys")]
    pub type JsExportedKeys;
}

/// A group's record at the server during a passcode change.
enum GroupRecord {
    /// Under the old passcode: the login to move it with.
    Old(Login),
    /// Under the new one already.
    New(Login),
    /// Never registered.
    NotRegistered,
}

#[wasm_bindgen]
impl WaasClient {
    /// Every key of the wallet whose `mpcKeyExportMetadata` (from `getDeviceGroup`) is given,
    /// with its private key, and the root `xprv`. With `{ passkey: true }` it runs offline; with
    /// `{ passcode }` it needs one login at the server (counted: wrong passcodes back off, then
    /// lock), and the combining runs offline. Every key is checked against the metadata and the
    /// device's own derivation before anything is returned.
    ///
    /// Export combines the two shares into the whole key: it is not MPC-secure. Whoever sees the
    /// result holds the wallet.
    #[wasm_bindgen(js_name = exportPrivateKeys)]
    pub async fn export_private_keys(
        &self,
        metadata: String,
        unlock: Unlock,
    ) -> Result<JsExportedKeys, SdkError> {
        let metadata = ExportMetadata::decode(&metadata)
            .map_err(|error| SdkError::InvalidArgument(error.to_string()))?;
        let group = metadata.device_group.to_string();
        let stored = self.store.group(&group).await?.ok_or_else(|| {
            SdkError::InvalidArgument(format!("this device holds no wallet of {group}"))
        })?;
        if !metadata
            .root_public_key
            .eq_ignore_ascii_case(&format!("0x{}", hex::encode(stored.root_public_key)))
        {
            return Err(SdkError::Untrusted(
                "the metadata is of another wallet than the one this device holds".into(),
            ));
        }
        let paths = metadata
            .keys
            .iter()
            .map(|key| {
                parse_path(&key.derivation_path)
                    .map_err(|error| SdkError::Untrusted(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let archive = match unlock_of(&unlock)? {
            crate::keystore::Unlock::Passkey => {
                self.store
                    .open_archive(&group, &ArchiveUnlock::Passkey)
                    .await?
            }
            crate::keystore::Unlock::Passcode(passcode) => {
                self.store.has_archive(&group).await?.then_some(()).ok_or_else(|| {
                    SdkError::NoArchive(format!(
                        "this device holds no archive of {group}: run its PrepareDeviceArchive operation first"
                    ))
                })?;
                let login = self.login(&metadata.device_group, &passcode).await?;
                self.store
                    .open_archive(&group, &ArchiveUnlock::ExportKey(&login.keys.export_key))
                    .await?
            }
        };
        // From here on nothing touches the network.
        if archive.public().root_public_key != stored.root_public_key
            || archive.public().chain_code != stored.chain_code
        {
            return Err(SdkError::Corrupt(
                "the archive is of another wallet than the group's records".into(),
            ));
        }
        let own = ExtendedPublicKey::root(stored.root_public_key, stored.chain_code);
        let derived = archive.derive(&paths).map_err(abort)?;
        let keys = Array::new();
        for ((key, entry), path) in derived.iter().zip(&metadata.keys).zip(&paths) {
            let public_key = format!("0x{}", hex::encode(key.public_key));
            let own_key = own
                .derive(path)
                .map_err(|error| SdkError::Untrusted(error.to_string()))?
                .public_key;
            if own_key != key.public_key
                || !entry.public_key.eq_ignore_ascii_case(&public_key)
                || entry.address != key.address
                || entry.mpc_key.device_group_name() != metadata.device_group
            {
                return Err(SdkError::Untrusted(format!(
                    "the metadata of {} does not match this wallet's key at {}",
                    entry.mpc_key, entry.derivation_path
                )));
            }
            let object = Object::new();
            let private_key = Zeroizing::new(format!("0x{}", hex::encode(&key.secret[..])));
            for (field, value) in [
                ("address", key.address.as_str()),
                ("privateKey", private_key.as_str()),
                ("derivationPath", entry.derivation_path.as_str()),
                ("mpcKey", &entry.mpc_key.to_string()),
            ] {
                Reflect::set(&object, &field.into(), &value.into())
                    .map_err(|_| SdkError::Crypto("cannot build the result".into()))?;
            }
            keys.push(&object);
        }
        let root = archive.root_key().map_err(abort)?;
        let result = Object::new();
        Reflect::set(&result, &"keys".into(), &keys)
            .and_then(|_| Reflect::set(&result, &"xprv".into(), &root.to_xprv().as_str().into()))
            .map_err(|_| SdkError::Crypto("cannot build the result".into()))?;
        Ok(JsValue::from(result).into())
    }

    /// Changes the passcode: on this device (the key store's wrap) and at the server for every
    /// wallet this device holds (a login with the old passcode, then a new OPAQUE record), with
    /// each archive rewrapped under the new record's export key. `options` is the passcode policy
    /// (`minPasscodeLength`, `digitsOnly`) as for `WaasDevice.open`.
    #[wasm_bindgen(js_name = resetPasscode)]
    pub async fn reset_passcode(
        &self,
        #[wasm_bindgen(js_name = oldPasscode)] old_passcode: String,
        #[wasm_bindgen(js_name = newPasscode)] new_passcode: String,
        options: Option<DeviceOptions>,
    ) -> Result<(), SdkError> {
        let policy = parse_options(options)?.policy;
        policy.check(&new_passcode)?;
        let _lock = crate::browser::WebLock::acquire(DEVICE_LOCK).await?;
        // The old passcode must open this device before anything changes. A change that stopped
        // half way (a closed tab, a lost answer) is finished by calling this again with the same
        // passcodes: groups it moved open with the new one.
        let old = crate::keystore::Unlock::Passcode(old_passcode.clone());
        let ((unlocked, mut login), resumed) = match self.unlock(&old, None).await {
            Err(SdkError::WrongPasscode) if self.store.passcode_change_pending().await? => {
                let new = crate::keystore::Unlock::Passcode(new_passcode.clone());
                (self.unlock(&new, None).await?, true)
            }
            other => (other?, false),
        };
        self.store
            .begin_passcode_change(&unlocked, &new_passcode)
            .await?;
        for group in self.store.groups().await? {
            let name: DeviceGroupName = group.parse()?;
            let _group_lock =
                crate::browser::WebLock::acquire(&format!("waas-sdk/{group}")).await?;
            // The unlock's login, made with the passcode this group is tried with first.
            let made = login.take_if(|login| login.name.device_group_name() == name);
            self.change_group_passcode(
                &name,
                &old_passcode,
                &new_passcode,
                &unlocked,
                resumed,
                made,
            )
            .await?;
        }
        self.store.finish_passcode_change().await
    }
}

impl WaasClient {
    /// Moves one group's record at the server from `old` to `new`, with the archive's wrap and
    /// the data key's: both open under either record until the server has the new one.
    /// `resumed`: an earlier change stopped half way, so the group may be at `new` already.
    async fn change_group_passcode(
        &self,
        name: &DeviceGroupName,
        old: &str,
        new: &str,
        unlocked: &Unlocked,
        resumed: bool,
        made: Option<Login>,
    ) -> Result<(), SdkError> {
        let group = name.to_string();
        let login = match self.group_record(name, old, new, resumed, made).await? {
            GroupRecord::Old(login) => login,
            GroupRecord::NotRegistered => {
                // Never registered (the wallet's creation stopped early): register now.
                let key = self.register_passcode(name, new, None).await?;
                return self
                    .store
                    .wrap_for_login(unlocked, &group, &key, LoginWrap::First)
                    .await;
            }
            GroupRecord::New(login) => {
                // Moved by the change that stopped: settle this device's wraps on it.
                let key = &login.keys.export_key;
                self.rewrap_archive(&group, key, key).await?;
                self.store.finish_archive_rewrap(&group).await?;
                return self
                    .store
                    .wrap_for_login(unlocked, &group, key, LoginWrap::Settle)
                    .await;
            }
        };
        let registration = self.start_registration(name, new, Some(&login)).await?;
        let (old_key, new_key) = (&login.keys.export_key, registration.export_key());
        self.rewrap_archive(&group, old_key, new_key).await?;
        self.store
            .wrap_for_login(
                unlocked,
                &group,
                new_key,
                LoginWrap::Change { old: old_key },
            )
            .await?;
        self.finish_registration(name, registration, Some(&login))
            .await?;
        self.store.finish_archive_rewrap(&group).await?;
        self.store.finish_login_rewrap(&group).await
    }

    /// The archive of `group` wrapped under `new` too. An archive that no wrap of this device
    /// opens under `old` (its record moved on elsewhere) is left as it is: it does not stop the
    /// change, and export asks for a new one (`NO_ARCHIVE`).
    async fn rewrap_archive(
        &self,
        group: &str,
        old: &ExportKey,
        new: &ExportKey,
    ) -> Result<(), SdkError> {
        match self.store.begin_archive_rewrap(group, old, new).await {
            Err(SdkError::NoArchive(_)) => Ok(()),
            other => other,
        }
    }

    /// Which passcode the group's record at the server has, by a login: the likelier one first
    /// (`new` when resuming a change), so a wrong guess costs one counted failure at most.
    /// `made`: a login of this group with that first passcode, made already.
    async fn group_record(
        &self,
        name: &DeviceGroupName,
        old: &str,
        new: &str,
        resumed: bool,
        made: Option<Login>,
    ) -> Result<GroupRecord, SdkError> {
        let (first, second) = if resumed { (new, old) } else { (old, new) };
        let first_login = match made {
            Some(login) => Ok(login),
            None => self.login(name, first).await,
        };
        let login = match first_login {
            Err(SdkError::Server {
                reason: Some(reason),
                ..
            }) if reason == reason::PASSCODE_NOT_REGISTERED => {
                return Ok(GroupRecord::NotRegistered);
            }
            Err(SdkError::WrongPasscode) => (self.login(name, second).await?, !resumed),
            other => (other?, resumed),
        };
        Ok(match login {
            (login, true) => GroupRecord::New(login),
            (login, false) => GroupRecord::Old(login),
        })
    }
}
