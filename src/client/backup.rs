//! Backup (docs/protocol/backup.md): PrepareDeviceBackup's device side with its dry run, the
//! backup string, and forgetting it once the user kept it.

use waas_api::export::PrepareDeviceBackupRequest;
use waas_api::resources::{MpcData, MpcProtocol, Operation};
use waas_api::{DeviceGroupName, MpcOperationName};
use waas_mpc::{
    BackupContext, BackupFacts, BackupRound1, BackupRound2, BackupString, DecryptionShare, Half,
    PartialUse, Role, backup_key, ciphertext_ephemeral, ciphertexts_hash, decrypt_half,
    encrypt_device_half, verify_key_share, verify_partial,
};
use wasm_bindgen::prelude::wasm_bindgen;

use super::passcode::Login;
use super::{JsOperation, Unlock, WaasClient, to_js, unlock_of};
use crate::SdkError;
use crate::keystore::{StoredBackup, Unlocked};

#[wasm_bindgen]
impl WaasClient {
    /// PrepareDeviceBackup for this device: an operation whose device side
    /// (`computePrepareDeviceBackupMPCOperation`) makes a backup of the wallet, kept by the user
    /// as a string and usable, with the passcode, to recover the wallet on a new browser.
    #[wasm_bindgen(js_name = prepareDeviceBackup)]
    pub async fn prepare_device_backup(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<JsOperation, SdkError> {
        let operation = self.backup_operation(&device_group.parse()?).await?;
        Ok(to_js(&operation)?.into())
    }

    /// The device's side of a PrepareDeviceBackup operation: with a passcode login (counted at the
    /// server), a fresh 2-of-2 decryption key with the server, both halves of the pairing
    /// encrypted to it, and a dry run that opens the device's half again with the server's
    /// proven partial decryption, before anything is kept. Then `exportDeviceBackup` gives the
    /// string.
    #[wasm_bindgen(js_name = computePrepareDeviceBackupMPCOperation)]
    pub async fn compute_prepare_device_backup_mpc_operation(
        &self,
        #[wasm_bindgen(js_name = mpcData)] mpc_data: String,
        passcode: String,
    ) -> Result<(), SdkError> {
        let data = MpcData::decode(&mpc_data)
            .map_err(|error| SdkError::InvalidArgument(error.to_string()))?;
        let group = data.mpc_operation.device_group_name();
        let (unlocked, login) = self
            .unlock(
                &crate::keystore::Unlock::Passcode(passcode.clone()),
                Some(&group),
            )
            .await?;
        self.make_backup(&data, &passcode, &unlocked, login).await
    }

    /// The whole backup: PrepareDeviceBackup, its device side, and the string. Show it to the
    /// user to keep (their own cloud storage, a password manager, paper), then call
    /// `confirmBackupSaved`. The string alone opens nothing: recovery also needs the passcode,
    /// counted at the server.
    pub async fn backup(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
        passcode: String,
    ) -> Result<String, SdkError> {
        let group: DeviceGroupName = device_group.parse()?;
        let operation = self.backup_operation(&group).await?;
        let waas_api::resources::OperationMetadata::PrepareDeviceBackup { mpc_operation, .. } =
            &operation.metadata
        else {
            return Err(SdkError::Untrusted(
                "PrepareDeviceBackup answered another kind of operation".into(),
            ));
        };
        let pending = self.pending(&group, mpc_operation).await?;
        let (unlocked, login) = self
            .unlock(
                &crate::keystore::Unlock::Passcode(passcode.clone()),
                Some(&group),
            )
            .await?;
        self.make_backup(&pending, &passcode, &unlocked, login)
            .await?;
        self.backup_string(&group, &unlocked).await
    }

    /// The backup string this device keeps for the wallet of `deviceGroup` (`waasbackup1…`),
    /// after the user unlocks. `NO_BACKUP` if there is none, or the user confirmed it saved.
    #[wasm_bindgen(js_name = exportDeviceBackup)]
    pub async fn export_device_backup(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
        unlock: Unlock,
    ) -> Result<String, SdkError> {
        let group: DeviceGroupName = device_group.parse()?;
        let (unlocked, _) = self.unlock(&unlock_of(&unlock)?, Some(&group)).await?;
        self.backup_string(&group, &unlocked).await
    }

    /// The user kept the backup string: the device forgets it (its decryption half), so a thief
    /// of this profile does not find it here.
    #[wasm_bindgen(js_name = confirmBackupSaved)]
    pub async fn confirm_backup_saved(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<(), SdkError> {
        let group: DeviceGroupName = device_group.parse()?;
        self.store.forget_backup(&group.to_string()).await
    }
}

impl WaasClient {
    async fn backup_operation(&self, group: &DeviceGroupName) -> Result<Operation, SdkError> {
        let body = PrepareDeviceBackupRequest {
            device: self.identity().await?.0.clone(),
        };
        self.send(
            "POST",
            &format!("/v1/{group}:prepareDeviceBackup"),
            Some(&body),
            true,
        )
        .await
    }

    async fn backup_string(
        &self,
        group: &DeviceGroupName,
        unlocked: &Unlocked,
    ) -> Result<String, SdkError> {
        let none = || {
            SdkError::NoBackup(format!(
                "this device keeps no backup of {group}: make one, or it was confirmed saved"
            ))
        };
        let group_text = group.to_string();
        let stored = self
            .store
            .backup(unlocked, &group_text)
            .await?
            .ok_or_else(none)?;
        if !stored.verified {
            // The dry run passed but round 5's answer never came: only a backup the server made
            // current is handed out.
            self.send_round5(unlocked, &group_text, &stored)
                .await
                .map_err(|_| none())?;
        }
        Ok(stored.string.to_string())
    }

    /// Round 5 for a backup kept after its dry run (again, if its answer was lost: a repeat gets
    /// the stored answer), then the backup is marked verified.
    async fn send_round5(
        &self,
        unlocked: &Unlocked,
        group: &str,
        stored: &StoredBackup,
    ) -> Result<(), SdkError> {
        let string = BackupString::decode(&stored.string).map_err(abort)?;
        let operation: MpcOperationName = stored.operation.parse()?;
        self.exchange_last(&operation, 5, &string.ciphertexts_hash)
            .await?;
        self.store
            .store_backup(unlocked, group, &stored.operation, true, &stored.string)
            .await
    }

    /// PrepareDeviceBackup's rounds (docs/protocol/backup.md), under the group's Web Lock.
    async fn make_backup(
        &self,
        data: &MpcData,
        passcode: &str,
        unlocked: &Unlocked,
        login: Option<Login>,
    ) -> Result<(), SdkError> {
        let MpcProtocol::PrepareDeviceBackup { pairing_id } = &data.protocol else {
            return Err(SdkError::InvalidArgument(
                "this mpcData is not a PrepareDeviceBackup operation".into(),
            ));
        };
        let (_, _lock) = self.lock_own(data).await?;
        let group = data.mpc_operation.device_group_name();
        let group_text = group.to_string();
        let operation = data.mpc_operation.to_string();
        if let Some(stored) = self.store.backup(unlocked, &group_text).await?
            && stored.operation == operation
        {
            // Made and dry-run already; the last round may not have reached the server.
            return self.send_round5(unlocked, &group_text, &stored).await;
        }
        let pairing = self.operation_pairing(data, pairing_id, unlocked).await?;
        let public = pairing.public().clone();
        let login = self.fresh_login(&group, passcode, login).await?;
        let context = BackupContext {
            device_group: &group_text,
            backup: &operation,
            pairing_id: &public.id,
            epoch: data.epoch,
        };
        // Round 1: the login and the device's half of the decryption key.
        let own = DecryptionShare::generate().map_err(abort)?;
        let round1 = BackupRound1 {
            login: login.name.to_string(),
            key_share: own
                .key_share_message(&context, Role::Device)
                .map_err(abort)?,
        }
        .encode()
        .map_err(abort)?;
        let round2 = BackupRound2::decode(&self.exchange(&data.mpc_operation, 1, &round1).await?)
            .map_err(untrusted)?;
        // The server's half, its proof, and the key: a rogue half stops everything here.
        let server_key =
            verify_key_share(&round2.key_share, &context, Role::Server).map_err(untrusted)?;
        let key = backup_key(&own.public(), &server_key).map_err(untrusted)?;
        ciphertext_ephemeral(&round2.server_half).map_err(untrusted)?;
        // Round 3: this device's share, encrypted to the key, with the proof of its r.
        let share = pairing.additive_share();
        let round3 = encrypt_device_half(&key, &share, &context).map_err(abort)?;
        let partial = self
            .exchange(&data.mpc_operation, 3, &round3.encode().map_err(abort)?)
            .await?;
        let ct_x = round3.device_half;
        // The dry run: the server's proven partial opens ct_x again, to this device's own share.
        let ephemeral = ciphertext_ephemeral(&ct_x).map_err(abort)?;
        let server_partial = verify_partial(
            &partial,
            &server_key,
            &ephemeral,
            Half::Device,
            &context,
            Role::Server,
            PartialUse::DryRun,
        )
        .map_err(untrusted)?;
        // It opens to a share whose public point is X_d, so to this device's own share (one
        // point, one scalar): nothing more to compare.
        decrypt_half(
            &ct_x,
            &own,
            &server_partial,
            &key,
            Half::Device,
            &context,
            &public.device_public_share,
        )
        .map_err(untrusted)?;
        let hash = ciphertexts_hash(&ct_x, &round2.server_half);
        let wallet = self
            .store
            .group_wallet(&group_text)
            .await?
            .unwrap_or_default();
        let string = BackupString::new(
            &own,
            BackupFacts {
                backup: operation.clone(),
                wallet,
                device_group: group_text.clone(),
                pairing_id: public.id,
                epoch: data.epoch,
                server_key_share: server_key,
                root_public_key: public.root_public_key,
                chain_code: public.chain_code,
                device_public_share: public.device_public_share,
                server_public_share: public.server_public_share,
                ciphertexts_hash: hash,
            },
        )
        .encode()
        .map_err(abort)?;
        // Kept before round 5, so a lost answer loses nothing; handed out only once verified.
        self.store
            .store_backup(unlocked, &group_text, &operation, false, &string)
            .await?;
        self.exchange_last(&data.mpc_operation, 5, &hash).await?;
        self.store
            .store_backup(unlocked, &group_text, &operation, true, &string)
            .await
    }
}

fn abort(error: waas_mpc::MpcError) -> SdkError {
    SdkError::Crypto(error.to_string())
}

fn untrusted(error: waas_mpc::MpcError) -> SdkError {
    SdkError::Untrusted(format!("the backup is refused: {error}"))
}
