//! The device archive's preparation (docs/protocol/archive.md): PrepareDeviceArchive's device side,
//! which `createWallet` and `recover` run when the pool has export on, and the logins it shares
//! with backup. In the main module; opening the archive (export) is in `export.rs`.

use sha2::{Digest, Sha256};
use waas_api::export::PrepareDeviceArchiveRequest;
use waas_api::resources::{MpcData, MpcProtocol};
use waas_api::{DeviceGroupName, passcode::reason};
use waas_mpc::{ArchiveContext, open_server_share};
use wasm_bindgen::prelude::wasm_bindgen;

use super::WaasClient;
use super::passcode::Login;
use crate::SdkError;
use crate::keystore::{LoginWrap, Unlocked};

#[wasm_bindgen]
impl WaasClient {
    /// PrepareDeviceArchive for this device: an operation whose device side
    /// (`computePrepareDeviceArchiveMPCOperation`, found with `listMPCOperations`) gives this
    /// device the archive export needs. `createWallet` runs it already where export is on; this
    /// is for a wallet whose archive failed or is older than a passcode reset elsewhere.
    #[wasm_bindgen(js_name = prepareDeviceArchive)]
    pub async fn prepare_device_archive(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<super::JsOperation, SdkError> {
        let group: DeviceGroupName = device_group.parse()?;
        let body = PrepareDeviceArchiveRequest {
            device: self.identity().await?.0.clone(),
        };
        let operation: waas_api::resources::Operation = self
            .send(
                "POST",
                &format!("/v1/{group}:prepareDeviceArchive"),
                Some(&body),
                true,
            )
            .await?;
        Ok(super::to_js(&operation)?.into())
    }

    /// The device's side of a PrepareDeviceArchive operation: logs in with the passcode (OPAQUE,
    /// counted at the server), receives the server's share sealed to this device's archive key,
    /// checks it against the device's own pairing, and stores the archive wrapped by the OPAQUE
    /// export key (and the passkey, where the device has one), never by the passcode alone.
    #[wasm_bindgen(js_name = computePrepareDeviceArchiveMPCOperation)]
    pub async fn compute_prepare_device_archive_mpc_operation(
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
        self.prepare_archive(&data, &passcode, &unlocked, login)
            .await
    }
}

impl WaasClient {
    /// The device's side of PrepareDeviceArchive (`mpcData` checked against the device's own
    /// records first), under the group's Web Lock.
    pub(crate) async fn prepare_archive(
        &self,
        data: &MpcData,
        passcode: &str,
        unlocked: &Unlocked,
        login: Option<Login>,
    ) -> Result<(), SdkError> {
        let MpcProtocol::PrepareDeviceArchive { pairing_id } = &data.protocol else {
            return Err(SdkError::InvalidArgument(
                "this mpcData is not a PrepareDeviceArchive operation".into(),
            ));
        };
        let (device, _lock) = self.lock_own(data).await?;
        let group = data.mpc_operation.device_group_name();
        let group_text = group.to_string();
        let operation = data.mpc_operation.to_string();
        if let Some((stored_for, sealed_hash)) = self.store.archive_origin(&group_text).await?
            && stored_for == operation
        {
            // Stored already; the last round may not have reached the server. If the server
            // has since expired the operation, the device holds its archive all the same.
            return match self
                .exchange_last(&data.mpc_operation, 3, &sealed_hash)
                .await
            {
                Err(SdkError::Server { code, .. }) if code == "FAILED_PRECONDITION" => Ok(()),
                other => other,
            };
        }
        let pairing = self.operation_pairing(data, pairing_id, unlocked).await?;
        let archive_secret = self.store.archive_secret(unlocked).await?;
        let login = self.fresh_login(&group, passcode, login).await?;
        if !self
            .store
            .login_wrapped_groups()
            .await?
            .contains(&group_text)
        {
            // A wallet made before the data key moved under the record (or whose registration
            // failed at creation): from now on only a login opens it with the passcode.
            self.store
                .wrap_for_login(
                    unlocked,
                    &group_text,
                    &login.keys.export_key,
                    LoginWrap::First,
                )
                .await?;
        }
        // A lost answer is asked for again with the same login: the server answers a repeat
        // with its stored answer, while a new login would be a different round 1 (refused).
        let message = login.name.to_string();
        let mut attempts = 0;
        let sealed = loop {
            match self
                .exchange(&data.mpc_operation, 1, message.as_bytes())
                .await
            {
                Err(SdkError::Network(_)) if attempts < 2 => attempts += 1,
                other => break other?,
            }
        };
        let context = ArchiveContext {
            device_group: &group_text,
            device: &device.to_string(),
            pairing_id: &pairing.public().id,
            epoch: data.epoch,
        };
        // A wrong ciphertext or a share that does not match the device's own pairing: nothing
        // is stored.
        let archive = open_server_share(
            &pairing,
            &archive_secret,
            &login.keys.session.archive_binding(),
            &context,
            &sealed,
        )
        .map_err(|error| SdkError::Untrusted(format!("the archive is refused: {error}")))?;
        let sealed_hash: [u8; 32] = Sha256::digest(&sealed).into();
        self.store
            .store_archive(
                &group_text,
                &archive,
                &login.keys.export_key,
                &operation,
                &sealed_hash,
            )
            .await?;
        self.exchange_last(&data.mpc_operation, 3, &sealed_hash)
            .await
    }

    /// Right after key generation: registers the passcode for the new group, then runs the
    /// PrepareDeviceArchive the server queued for this device, if it did (export on). Returns
    /// whether the device now holds the archive.
    pub(crate) async fn register_and_archive(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
        unlocked: &Unlocked,
    ) -> Result<bool, SdkError> {
        let export_key = self.register_passcode(group, passcode, None).await?;
        // The data key moves under the record in the same write that deletes its local passcode
        // wrap: from here on no copy of this profile can test a passcode without the server.
        self.store
            .wrap_for_login(unlocked, &group.to_string(), &export_key, LoginWrap::First)
            .await?;
        self.archive_if_queued(group, passcode, unlocked).await
    }

    /// Runs the PrepareDeviceArchive the server queued for this device on `group`, if it did
    /// (export on: after key generation or recovery). Returns whether the device now holds the
    /// archive.
    pub(crate) async fn archive_if_queued(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
        unlocked: &Unlocked,
    ) -> Result<bool, SdkError> {
        let device = self.identity().await?.0.clone();
        for entry in self.list_operations(group).await?.mpc_operations {
            let data = MpcData::decode(&entry.mpc_data)
                .map_err(|error| SdkError::Untrusted(error.to_string()))?;
            if data.mpc_operation == entry.name
                && data.device == device
                && matches!(data.protocol, MpcProtocol::PrepareDeviceArchive { .. })
            {
                self.prepare_archive(&data, passcode, unlocked, None)
                    .await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The device's pairing an operation is for, checked to be the one `pairing_id` names.
    pub(crate) async fn operation_pairing(
        &self,
        data: &MpcData,
        pairing_id: &str,
        unlocked: &Unlocked,
    ) -> Result<waas_mpc::Pairing, SdkError> {
        let group = data.mpc_operation.device_group_name().to_string();
        let pairing = self.store.pairing(unlocked, &group, data.epoch).await?;
        if !pairing_id.eq_ignore_ascii_case(&format!("0x{}", hex::encode(pairing.public().id))) {
            return Err(SdkError::Untrusted(
                "the operation names another pairing".into(),
            ));
        }
        Ok(pairing)
    }

    /// The unlock's login if it was to `group`, else a new one: a fresh login either way.
    pub(crate) async fn fresh_login(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
        login: Option<Login>,
    ) -> Result<Login, SdkError> {
        match login.filter(|login| login.name.device_group_name() == *group) {
            Some(login) => Ok(login),
            None => self.login_or_register(group, passcode).await,
        }
    }

    /// A login; if the group's passcode was never registered (a wallet whose creation stopped
    /// before), registers it first.
    pub(crate) async fn login_or_register(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
    ) -> Result<Login, SdkError> {
        match self.login(group, passcode).await {
            Err(SdkError::Server {
                reason: Some(reason),
                ..
            }) if reason == reason::PASSCODE_NOT_REGISTERED => {
                self.register_passcode(group, passcode, None).await?;
                self.login(group, passcode).await
            }
            other => other,
        }
    }
}
