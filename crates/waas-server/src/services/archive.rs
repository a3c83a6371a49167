//! PrepareDeviceArchive (docs/protocol/archive.md): the server's additive share of one device's
//! pairing, sealed to that device's archive key and to a fresh passcode login, over the durable
//! exchange of `exchange.rs`:
//!
//! 1. the device names a passcode login it finished (UTF-8); the server checks it, seals its
//!    share and commits the answer together with the login's use (so a login buys one archive);
//! 2. (the server's answer: the sealed share);
//! 3. the device sends the SHA-256 of the sealed share once it stored its archive; done.
//!
//! A refused login changes nothing: the device may log in again and send round 1 anew.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use waas_api::export::PrepareDeviceArchiveRequest;
use waas_api::passcode::reason;
use waas_api::resources::{
    DeviceArchive, DeviceState, ExchangeResponse, MpcProtocol, Operation, OperationMetadata,
    OperationResponse,
};
use waas_api::{DeviceGroupName, DeviceName, MpcOperationName, OperationName, PasscodeLoginName};
use waas_mpc::{ArchiveContext, seal_server_share};

use super::passcode::UsableLogin;
use super::wallets::new_id;
use super::{Services, ensure_acts_for, hex0x};
use crate::ApiError;
use crate::auth::Principal;
use crate::store::{
    NewOperation, OperationKind, OperationRecord, OperationState, StepEffect, StepUpdate, Store,
};
use crate::time::now_ms;

/// A PrepareDeviceArchive or PrepareDeviceBackup (`kind`) operation for `device` on its pairing
/// `pairing_id` at `epoch`.
pub(super) fn device_operation(
    kind: OperationKind,
    group: &DeviceGroupName,
    device: &DeviceName,
    epoch: u64,
    pairing_id: &[u8],
    creator: String,
) -> Result<NewOperation, ApiError> {
    let operation = OperationName::new(new_id()?);
    let mpc_operation = MpcOperationName::new(
        group.pool().clone(),
        group.device_group().clone(),
        operation.operation().clone(),
    );
    let (device_group, device_name, pairing_id) =
        (group.clone(), device.clone(), hex0x(pairing_id));
    let (metadata, params) = match kind {
        OperationKind::PrepareDeviceArchive => (
            OperationMetadata::PrepareDeviceArchive {
                device_group,
                device: device_name,
                mpc_operation,
            },
            MpcProtocol::PrepareDeviceArchive { pairing_id },
        ),
        OperationKind::PrepareDeviceBackup => (
            OperationMetadata::PrepareDeviceBackup {
                device_group,
                device: device_name,
                mpc_operation,
            },
            MpcProtocol::PrepareDeviceBackup { pairing_id },
        ),
        OperationKind::CreateDeviceGroup
        | OperationKind::CreateSignature
        | OperationKind::AddDevice => {
            return Err(ApiError::internal("not a device operation"));
        }
    };
    Ok(NewOperation {
        name: operation,
        kind,
        device_group: group.clone(),
        device: device.clone(),
        epoch,
        metadata: serde_json::to_string(&metadata).map_err(ApiError::internal)?,
        params: serde_json::to_string(&params).map_err(ApiError::internal)?,
        creator,
        request_id: None,
        request_hash: Vec::new(),
    })
}

impl<S: Store> Services<S> {
    /// PrepareDeviceArchive: an archive operation for a device of an active group, in a pool
    /// with export on. A device asks for itself only; an API key for any device of the group.
    /// The device's archive operation on its current epoch that has not started yet is
    /// returned instead of a second one.
    pub async fn prepare_device_archive(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PrepareDeviceArchiveRequest,
    ) -> Result<Operation, ApiError> {
        let device = request.device;
        ensure_acts_for(caller, &device)?;
        self.ensure_can_read(caller, group).await?;
        let pool = self
            .store
            .pool(&group.pool_name())
            .await?
            .ok_or_else(|| ApiError::not_found(group))?;
        if !pool.export_enabled {
            return Err(
                ApiError::precondition(format!("export is disabled in {}", pool.name))
                    .with_reason(reason::EXPORT_DISABLED),
            );
        }
        self.device_operation(caller, group, &device, OperationKind::PrepareDeviceArchive)
            .await
    }

    /// PrepareDeviceArchive's and PrepareDeviceBackup's common part, once the caller may ask:
    /// `kind`'s operation for `device`, an active device of the active `group`, on its confirmed
    /// epoch. The device's operation of that kind on that epoch that has not started yet is
    /// returned instead of a second one.
    pub(super) async fn device_operation(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        device: &DeviceName,
        kind: OperationKind,
    ) -> Result<Operation, ApiError> {
        let record = self.active_group(group).await?;
        if !record.devices.contains(device) {
            return Err(ApiError::precondition(format!(
                "{device} is not a device of {group}"
            )));
        }
        let active = self
            .store
            .device(device)
            .await?
            .is_some_and(|found| found.state == DeviceState::Active);
        if !active {
            return Err(ApiError::precondition(format!("{device} is revoked")));
        }
        let epoch = self
            .store
            .confirmed_epoch(group, device)
            .await?
            .ok_or_else(|| ApiError::precondition(format!("{device} has no pairing in {group}")))?;
        let pending = self
            .store
            .open_operations(group, device)
            .await?
            .into_iter()
            .find(|open| {
                open.kind == kind && open.state == OperationState::Pending && open.epoch == epoch
            });
        if let Some(pending) = pending {
            return self.operation_resource(&pending);
        }
        let pairing = self
            .store
            .pairing(group, device, epoch)
            .await?
            .ok_or_else(|| ApiError::internal("a confirmed epoch without its pairing"))?;
        let new = device_operation(
            kind,
            group,
            device,
            epoch,
            &pairing.pairing_id,
            caller.subject(),
        )?;
        let created = self.store.create_operation(&new).await?.into_inner();
        tracing::info!(operation = %created.name, %device, ?kind, "queued a device operation");
        self.operation_resource(&created)
    }

    /// Round 1: the login the device names is checked (finished by this device for this group,
    /// fresh, unused), then the server's share is sealed to the device's archive key and the
    /// login's archive binding; the commit uses the login up on the condition that it still may
    /// be. Any refusal here writes nothing.
    pub(super) async fn archive_round1(
        &self,
        record: &OperationRecord,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let login: PasscodeLoginName = std::str::from_utf8(message)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                ApiError::invalid("round 1 must be the name of a finished passcode login")
                    .with_reason(reason::LOGIN_INVALID)
            })?;
        let UsableLogin { usage, session, .. } = self
            .usable_login(&record.device, &record.device_group, &login, now_ms())
            .await?;
        let pairing = self.pairing(record).await?;
        let public = pairing.public();
        let MpcProtocol::PrepareDeviceArchive { pairing_id } = super::operations::protocol(record)?
        else {
            return Err(ApiError::internal("an archive of another protocol"));
        };
        if pairing_id != hex0x(&public.id) {
            return Err(ApiError::internal(
                "the archive's pairing is not the epoch's pairing",
            ));
        }
        let device = self
            .store
            .device(&record.device)
            .await?
            .ok_or_else(|| ApiError::internal("an archive for an unknown device"))?;
        let archive_key: [u8; 33] = device
            .archive_public_key
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal("a stored archive key has the wrong length"))?;
        let group = record.device_group.to_string();
        let device_name = record.device.to_string();
        let context = ArchiveContext {
            device_group: &group,
            device: &device_name,
            pairing_id: &public.id,
            epoch: record.epoch,
        };
        let sealed =
            seal_server_share(&pairing, &archive_key, &session.archive_binding(), &context)
                .map_err(ApiError::internal)?;
        update.reply = Some(
            serde_json::to_string(&ExchangeResponse {
                round: Some(2),
                message: Some(URL_SAFE_NO_PAD.encode(sealed)),
                done: false,
            })
            .map_err(ApiError::internal)?,
        );
        update.state = OperationState::Running;
        update.effect = StepEffect::UseLogin(usage);
        Ok(update)
    }

    /// Round 3: the device's SHA-256 of the sealed share it stored must be that of the one sent;
    /// then the operation is done. Another hash is refused and changes nothing.
    pub(super) fn archive_round3(
        &self,
        record: &OperationRecord,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let sent: ExchangeResponse = record
            .reply
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal("an archive at round 1 without its answer"))?;
        let sealed = sent
            .message
            .as_deref()
            .map(|text| URL_SAFE_NO_PAD.decode(text))
            .transpose()
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal("an archive's answer without its message"))?;
        // Public data: an ordinary comparison is fine.
        if message != Sha256::digest(&sealed).as_slice() {
            return Err(ApiError::invalid(
                "round 3 must be the SHA-256 of the sealed share the server sent",
            ));
        }
        update.response = Some(
            serde_json::to_string(&OperationResponse::DeviceArchive(DeviceArchive {
                device_group: record.device_group.clone(),
                device: record.device.clone(),
                epoch: record.epoch,
            }))
            .map_err(ApiError::internal)?,
        );
        Ok(update)
    }
}
