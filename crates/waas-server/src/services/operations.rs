//! CreateSignature, GetOperation, ListMPCOperations: the operations a device computes its part of.

use waas_api::resources::{
    CreateSignatureRequest, DeviceState, ListMpcOperationsResponse, MpcOperation, MpcProtocol,
    Operation, OperationMetadata, TypedPayloadJson,
};
use waas_api::{
    DeviceGroupName, DeviceName, ErrorBody, MpcKeyName, MpcOperationName, OperationName,
};

use super::wallets::{mpc_data, new_id};
use super::{Services, check_request_id, hex0x, parse_hex0x, request_hash, same_request};
use crate::ApiError;
use crate::auth::Principal;
use crate::store::{NewOperation, OperationKind, OperationRecord, Store};

impl<S: Store> Services<S> {
    /// CreateSignature: an operation that signs a 32-byte digest with the key, on the calling
    /// device's pairing (or, for an API key, the group's only device's). The digest is
    /// `payload`, or the server's own digest of `typedPayload`, which `payload` must then equal.
    pub async fn create_signature(
        &self,
        caller: &Principal,
        key_name: &MpcKeyName,
        request: CreateSignatureRequest,
    ) -> Result<Operation, ApiError> {
        check_request_id(request.request_id.as_deref())?;
        let group_name = key_name.device_group_name();
        self.ensure_can_read(caller, &group_name).await?;
        // Off the async threads: hashing typed data is bounded (waas-eth) but not free.
        let (request, digest) = tokio::task::spawn_blocking(move || {
            let digest = request_digest(&request);
            (request, digest)
        })
        .await
        .map_err(ApiError::internal)?;
        let digest = digest?;
        let typed_payload = request
            .typed_payload
            .as_ref()
            .map(TypedPayloadJson::new)
            .transpose()
            .map_err(ApiError::internal)?;
        let key = self
            .store
            .key(key_name)
            .await?
            .ok_or_else(|| ApiError::not_found(key_name))?;
        self.active_group(&group_name).await?;
        let device = match caller {
            Principal::Device(device) => device.clone(),
            // The group's one active device: a revoked one signs nothing, so it does not make
            // the choice ambiguous (as after a recovery and the lost device's revocation).
            Principal::ApiKey(_) => {
                let active: Vec<DeviceName> = self
                    .store
                    .device_states(&group_name)
                    .await?
                    .into_iter()
                    .filter(|(_, state)| *state == DeviceState::Active)
                    .map(|(device, _)| device)
                    .collect();
                match <[DeviceName; 1]>::try_from(active) {
                    Ok([device]) => device,
                    Err(_) => {
                        return Err(ApiError::precondition(
                            "the group has several active devices: the device must ask itself",
                        ));
                    }
                }
            }
        };
        let epoch = self
            .store
            .confirmed_epoch(&group_name, &device)
            .await?
            .ok_or_else(|| {
                ApiError::precondition(format!("{device} has no pairing in {group_name}"))
            })?;
        let pairing = self
            .store
            .pairing(&group_name, &device, epoch)
            .await?
            .ok_or_else(|| ApiError::internal("a confirmed epoch without its pairing"))?;

        let (operation, mpc_operation) = new_operation_names(&group_name)?;
        let metadata = OperationMetadata::CreateSignature {
            mpc_key: key_name.clone(),
            mpc_operation,
        };
        let params = MpcProtocol::CreateSignature {
            mpc_key: key_name.clone(),
            derivation_path: key.derivation_path,
            digest: hex0x(&digest),
            typed_payload: typed_payload.clone(),
            pairing_id: hex0x(&pairing.pairing_id),
        };
        let request_hash = request_hash(&[
            "CreateSignature",
            &key_name.to_string(),
            &hex0x(&digest),
            typed_payload.as_ref().map_or("", TypedPayloadJson::as_str),
        ]);
        let created = self
            .store
            .create_operation(&NewOperation {
                name: operation,
                kind: OperationKind::CreateSignature,
                device_group: group_name,
                device,
                epoch,
                metadata: serde_json::to_string(&metadata).map_err(ApiError::internal)?,
                params: serde_json::to_string(&params).map_err(ApiError::internal)?,
                creator: caller.subject(),
                request_id: request.request_id,
                request_hash: request_hash.clone(),
            })
            .await?;
        self.operation_resource(&same_request(created, &request_hash)?)
    }

    /// GetOperation.
    pub async fn get_operation(
        &self,
        caller: &Principal,
        name: &OperationName,
    ) -> Result<Operation, ApiError> {
        let record = self
            .store
            .operation(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        // Its own device may always read it: a device being added (AddDevice) is no device of
        // the group until the operation is done.
        if !matches!(caller, Principal::Device(device) if *device == record.device) {
            self.ensure_can_read(caller, &record.device_group).await?;
        }
        self.operation_resource(&record)
    }

    /// ListMPCOperations: what the calling device has to compute on the group, oldest first. A
    /// device that is not (yet) a device of the group sees only its own open AddDevice
    /// operations there, so a new device gets its recovery's mpcData; without any, it is refused
    /// as before.
    pub async fn list_mpc_operations(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
    ) -> Result<ListMpcOperationsResponse, ApiError> {
        let Principal::Device(device) = caller else {
            return Err(ApiError::denied("only a device computes MPC operations"));
        };
        let mut records = self.store.open_operations(group, device).await?;
        if !self.store.is_member(group, device).await? {
            records.retain(|record| record.kind == OperationKind::AddDevice);
            if records.is_empty() {
                // The refusal every other non-member gets.
                self.ensure_can_read(caller, group).await?;
            }
        }
        let mpc_operations = records
            .iter()
            .map(|record| {
                let metadata = metadata(record)?;
                let mpc_operation = match &metadata {
                    OperationMetadata::CreateMpcWallet { mpc_operation, .. }
                    | OperationMetadata::CreateSignature { mpc_operation, .. }
                    | OperationMetadata::PrepareDeviceArchive { mpc_operation, .. }
                    | OperationMetadata::PrepareDeviceBackup { mpc_operation, .. }
                    | OperationMetadata::AddDevice { mpc_operation, .. } => mpc_operation.clone(),
                    _ => return Err(ApiError::internal("unknown operation metadata")),
                };
                Ok(MpcOperation {
                    name: mpc_operation.clone(),
                    mpc_data: mpc_data(mpc_operation, record, protocol(record)?),
                    metadata,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(ListMpcOperationsResponse { mpc_operations })
    }

    /// The API form of a stored operation.
    pub(super) fn operation_resource(
        &self,
        record: &OperationRecord,
    ) -> Result<Operation, ApiError> {
        Ok(Operation {
            name: record.name.clone(),
            metadata: metadata(record)?,
            done: record.state.is_finished(),
            error: parse_json::<ErrorBody>(&record.error)?,
            response: parse_json(&record.response)?,
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    json: &Option<String>,
) -> Result<Option<T>, ApiError> {
    json.as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(ApiError::internal)
}

fn metadata(record: &OperationRecord) -> Result<OperationMetadata, ApiError> {
    serde_json::from_str(&record.metadata).map_err(ApiError::internal)
}

/// A new operation's names in `group`: `operations/{id}` and the device's part of it,
/// `…/deviceGroups/{g}/mpcOperations/{id}`, with one fresh id.
pub(super) fn new_operation_names(
    group: &DeviceGroupName,
) -> Result<(OperationName, MpcOperationName), ApiError> {
    let operation = OperationName::new(new_id()?);
    let mpc_operation = MpcOperationName::new(
        group.pool().clone(),
        group.device_group().clone(),
        operation.operation().clone(),
    );
    Ok((operation, mpc_operation))
}

/// The protocol an operation runs, with its inputs.
pub(super) fn protocol(record: &OperationRecord) -> Result<MpcProtocol, ApiError> {
    match record.kind {
        OperationKind::CreateDeviceGroup => Ok(MpcProtocol::CreateDeviceGroup),
        OperationKind::CreateSignature
        | OperationKind::PrepareDeviceArchive
        | OperationKind::PrepareDeviceBackup
        | OperationKind::AddDevice => {
            serde_json::from_str(&record.params).map_err(ApiError::internal)
        }
    }
}

/// The digest a CreateSignature signs: the server's own digest of the typed payload (which the
/// caller's `payload`, when given, must equal), or the raw `payload`.
fn request_digest(request: &CreateSignatureRequest) -> Result<[u8; 32], ApiError> {
    let given = request
        .payload
        .as_deref()
        .map(|payload| parse_hex0x::<32>(payload, "payload"))
        .transpose()?;
    let Some(typed) = &request.typed_payload else {
        return given.ok_or_else(|| ApiError::invalid("payload or typedPayload is required"));
    };
    let computed = typed
        .digest()
        .map_err(|error| ApiError::invalid(format!("typedPayload: {error}")))?;
    match given {
        Some(given) if given != computed => Err(ApiError::invalid(format!(
            "payload {} is not the digest of {} ({})",
            hex0x(&given),
            typed.kind(),
            hex0x(&computed)
        ))
        .with_reason(waas_api::resources::reason::DIGEST_MISMATCH)),
        _ => Ok(computed),
    }
}
