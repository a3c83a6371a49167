//! Recovery (docs/protocol/recovery.md): AddDevice's device side. A new browser profile,
//! bootstrapped with the wallet's passcode, joins the wallet's device group with the backup
//! string and the passcode, and gets its own pairing with the server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::export::AddDeviceRequest;
use waas_api::resources::{
    DeviceGroup, DeviceState, ListAddressesResponse, MpcData, MpcProtocol, Operation,
    OperationMetadata, OperationResponse,
};
use waas_api::{DeviceGroupName, MpcOperationName, MpcWalletName};
use waas_mpc::passcode::PasscodeError;
use waas_mpc::{BackupString, DeviceRecovery, MpcError, RESTORED_EPOCH, RecoveryContext};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

use super::{JsOperation, WaasClient, abort, abort_text, to_js};
use crate::SdkError;
use crate::keystore::{LoginWrap, Unlock, Unlocked};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** What `recover` gave this device: the wallet, its first address (checked against the
 * recovered key), and whether the device holds the wallet's archive (export on). Make a new
 * backup now (`needsBackup`): the one just used was made by another device, and the user may no
 * longer hold it safely. */
export interface RecoveredWallet {
  wallet: string;
  deviceGroup: string;
  address: Address;
  archived: boolean;
  needsBackup: true;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `RecoveredWallet`.
    #[wasm_bindgen(typescript_type = "RecoveredWallet")]
    pub type JsRecoveredWallet;
}

#[wasm_bindgen]
impl WaasClient {
    /// AddDevice for this device, with the backup `deviceBackup` (the `waasbackup1…` string):
    /// an operation whose device side (`computeAddDeviceMPCOperation`) proves the backup and the
    /// passcode to the server and gives this device its own pairing of the wallet. Only the
    /// backup's ids are read here; nothing secret is sent.
    #[wasm_bindgen(js_name = addDevice)]
    pub async fn add_device(
        &self,
        #[wasm_bindgen(js_name = deviceBackup)] device_backup: String,
    ) -> Result<JsOperation, SdkError> {
        let backup = read_backup(&device_backup)?;
        let operation = self.add_device_operation(&backup).await?;
        Ok(to_js(&operation)?.into())
    }

    /// The device's side of an AddDevice operation (`mpcData` from ListMPCOperations), with the
    /// passcode and the backup string. The passcode first opens this device's own keys (a new
    /// profile is bootstrapped with the wallet's passcode), so a mistyped one costs no attempt at
    /// the server; there, attempts count only once the backup is proven, and lock the group's
    /// recovery after 10.
    #[wasm_bindgen(js_name = computeAddDeviceMPCOperation)]
    pub async fn compute_add_device_mpc_operation(
        &self,
        #[wasm_bindgen(js_name = mpcData)] mpc_data: String,
        passcode: String,
        #[wasm_bindgen(js_name = deviceBackup)] device_backup: String,
    ) -> Result<(), SdkError> {
        let data = MpcData::decode(&mpc_data)
            .map_err(|error| SdkError::InvalidArgument(error.to_string()))?;
        let backup = read_backup(&device_backup)?;
        let (unlocked, _) = self
            .unlock(&Unlock::Passcode(passcode.clone()), None)
            .await?;
        self.run_recovery(&data, backup, &passcode, &unlocked).await
    }

    /// The whole recovery on this (bootstrapped, registered) device: AddDevice, its device side,
    /// the archive if the pool has export on, and the wallet's first address. Then ask the user
    /// for a new backup (`backup`).
    pub async fn recover(
        &self,
        #[wasm_bindgen(js_name = deviceBackup)] device_backup: String,
        passcode: String,
    ) -> Result<JsRecoveredWallet, SdkError> {
        let backup = read_backup(&device_backup)?;
        let (unlocked, _) = self
            .unlock(&Unlock::Passcode(passcode.clone()), None)
            .await?;
        let group: DeviceGroupName = backup.device_group.parse()?;
        let wallet: MpcWalletName = backup.wallet.parse()?;
        // A recovery that stored its pairing is finished, not started again: its operation may
        // still wait for round 9 (its answer was lost), or be done. One whose operation ended
        // without adding this device is forgotten, and one cut off before the pairing was
        // stored left nothing to resume with: a new operation starts over.
        let group_text = group.to_string();
        let mut data = None;
        let mut finished = false;
        if self.store.group(&group_text).await?.is_some() {
            let stored = self
                .store
                .pairing(&unlocked, &group_text, RESTORED_EPOCH + 1)
                .await?;
            data = self.unfinished_recovery(&group, &backup, &stored).await?;
            finished = data.is_none() && self.is_member(&group).await?;
            if data.is_none() && !finished {
                self.store
                    .forget_pairing(&group_text, RESTORED_EPOCH + 1)
                    .await?;
            }
        }
        if data.is_none() && !finished {
            let operation = self.add_device_operation(&backup).await?;
            let OperationMetadata::AddDevice {
                device_group,
                mpc_operation,
                ..
            } = &operation.metadata
            else {
                return Err(SdkError::Untrusted(
                    "AddDevice answered another kind of operation".into(),
                ));
            };
            if *device_group != group || mpc_operation.device_group_name() != group {
                return Err(SdkError::Untrusted(
                    "AddDevice answered for another group".into(),
                ));
            }
            data = Some(self.pending(&group, mpc_operation).await?);
        }
        if let Some(data) = data {
            let name = data.mpc_operation.operation_name().to_string();
            self.run_recovery(&data, backup, &passcode, &unlocked)
                .await?;
            let done = self.wait(&name, &JsValue::UNDEFINED).await?;
            let device = &self.identity().await?.0;
            if !matches!(done.response, Some(OperationResponse::DeviceAdded(ref added))
                if added.device_group == group && added.device == *device)
            {
                return Err(SdkError::Untrusted(
                    "the AddDevice operation did not add this device".into(),
                ));
            }
        }
        // A failed archive leaves the recovery done: export can archive later.
        let archived = self
            .archive_if_queued(&group, &passcode, &unlocked)
            .await
            .unwrap_or(false);
        let addresses: ListAddressesResponse = self
            .send::<(), _>("GET", &format!("/v1/{wallet}/addresses"), None, true)
            .await?;
        let address = addresses
            .addresses
            .into_iter()
            .next()
            .ok_or_else(|| SdkError::Untrusted("the wallet has no address".into()))?;
        self.check_address(&wallet, &group, &address).await?;
        let recovered = serde_json::json!({
            "wallet": wallet,
            "deviceGroup": group,
            "address": address,
            "archived": archived,
            "needsBackup": true,
        });
        Ok(to_js(&recovered)?.into())
    }
}

impl WaasClient {
    /// This device's AddDevice operation of `group` that is not done yet and made `stored` (the
    /// pairing a recovery stored before its round 9), if any.
    async fn unfinished_recovery(
        &self,
        group: &DeviceGroupName,
        backup: &BackupString,
        stored: &waas_mpc::Pairing,
    ) -> Result<Option<MpcData>, SdkError> {
        let device = self.identity().await?.0.clone();
        let list = match self.list_operations(group).await {
            Ok(list) => list,
            Err(SdkError::Server { code, .. }) if code == "PERMISSION_DENIED" => return Ok(None),
            Err(error) => return Err(error),
        };
        let device_text = device.to_string();
        for entry in list.mpc_operations {
            let data = MpcData::decode(&entry.mpc_data)
                .map_err(|error| SdkError::Untrusted(error.to_string()))?;
            let operation = entry.name.to_string();
            let context = RecoveryContext {
                operation: &operation,
                device: &device_text,
            };
            if data.mpc_operation == entry.name
                && data.device == device
                && matches!(data.protocol, MpcProtocol::AddDevice { .. })
                && context.pairing_id(&backup.context()) == stored.public().id
            {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// Whether this device is an active device of `group` (a non-member may not read it).
    async fn is_member(&self, group: &DeviceGroupName) -> Result<bool, SdkError> {
        let device = self.identity().await?.0.clone();
        match self
            .send::<(), DeviceGroup>("GET", &format!("/v1/{group}"), None, true)
            .await
        {
            Ok(read) => Ok(read
                .device_states
                .iter()
                .any(|entry| entry.device == device && entry.state == DeviceState::Active)),
            Err(SdkError::Server { code, .. }) if code == "PERMISSION_DENIED" => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn add_device_operation(&self, backup: &BackupString) -> Result<Operation, SdkError> {
        let group: DeviceGroupName = backup.device_group.parse()?;
        let body = AddDeviceRequest {
            device: self.identity().await?.0.clone(),
            backup: backup.backup.parse()?,
        };
        self.send("POST", &format!("/v1/{group}:addDevice"), Some(&body), true)
            .await
    }

    /// Rounds 1 to 9 (waas_mpc::recovery): every fact from the backup string, the ciphertexts
    /// checked against it before anything goes out. The new pairing, the wallet and the data
    /// key's wrap under the group's record are stored before round 9 confirms the pairing.
    async fn run_recovery(
        &self,
        data: &MpcData,
        backup: BackupString,
        passcode: &str,
        unlocked: &Unlocked,
    ) -> Result<(), SdkError> {
        let MpcProtocol::AddDevice {
            backup: backup_id,
            device_ciphertext,
            server_ciphertext,
        } = &data.protocol
        else {
            return Err(SdkError::InvalidArgument(
                "not an AddDevice operation: use computeMPCOperation".into(),
            ));
        };
        let group = data.mpc_operation.device_group_name();
        let group_text = group.to_string();
        if backup_id.to_string() != backup.backup
            || group_text != backup.device_group
            || data.epoch != backup.epoch
        {
            return Err(SdkError::InvalidArgument(
                "the operation is for another backup than this one".into(),
            ));
        }
        let (device, _lock) = self.lock_own(data).await?;
        let operation: &MpcOperationName = &data.mpc_operation;
        if self.store.group(&group_text).await?.is_some() {
            // Stored already: round 9's answer was lost. Send the confirmation again (the
            // server answers a repeat with its stored answer).
            let pairing = self
                .store
                .pairing(unlocked, &group_text, RESTORED_EPOCH + 1)
                .await?;
            return self
                .exchange_last(operation, 9, &pairing.public().confirmation())
                .await;
        }
        let device_half = ciphertext(device_ciphertext)?;
        let server_half = ciphertext(server_ciphertext)?;
        let wallet = backup.wallet.clone();
        let (operation_text, device_text) = (operation.to_string(), device.to_string());
        let context = RecoveryContext {
            operation: &operation_text,
            device: &device_text,
        };
        let (mut recovery, round1) = DeviceRecovery::start(
            backup,
            &context,
            &device_half,
            &server_half,
            passcode.as_bytes(),
        )
        .map_err(untrusted)?;
        let round2 = self.exchange(operation, 1, &round1).await?;
        let (round3, export_key) =
            recovery
                .login(&round2, passcode.as_bytes())
                .map_err(|error| match error {
                    PasscodeError::WrongPasscode => SdkError::WrongPasscode,
                    other => SdkError::Untrusted(other.to_string()),
                })?;
        let round4 = self.exchange(operation, 3, &round3).await?;
        let round5 = recovery.open(&round4).map_err(untrusted)?;
        let round6 = self.exchange(operation, 5, &round5).await?;
        let round7 = recovery
            .refresh(&round6)
            .map_err(abort)?
            .reply
            .ok_or_else(|| abort_text("no round 7"))?;
        let round8 = self.exchange(operation, 7, &round7).await?;
        let pairing = recovery
            .refresh(&round8)
            .map_err(abort)?
            .output
            .ok_or_else(|| abort_text("no pairing"))?;
        self.store
            .insert_pairing(unlocked, &group_text, &pairing)
            .await?;
        self.store.remember_wallet(&wallet, &group_text).await?;
        self.exchange_last(operation, 9, &pairing.public().confirmation())
            .await?;
        // A device of the group now: as after key generation, the data key goes under the
        // group's record, and the local wrap goes in the same write. Not before round 9: a
        // recovery that never commits must leave the device able to unlock and start over. (If
        // this write is lost, the next unlock, a login as a member now, makes it.)
        self.store
            .wrap_for_login(unlocked, &group_text, &export_key, LoginWrap::First)
            .await
    }
}

/// The backup string, read and checked (version, checksum, its facts agree). Its own error
/// code: a typo is the user's to fix, and nothing was sent.
fn read_backup(text: &str) -> Result<BackupString, SdkError> {
    BackupString::decode(text).map_err(|error| SdkError::InvalidBackup(error.to_string()))
}

fn ciphertext(text: &str) -> Result<Vec<u8>, SdkError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| SdkError::Untrusted("a backup ciphertext is not base64url".into()))
}

/// The server's messages or ciphertexts fail a check against the backup string.
fn untrusted(error: MpcError) -> SdkError {
    SdkError::Untrusted(error.to_string())
}
