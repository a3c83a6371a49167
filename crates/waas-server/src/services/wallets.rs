//! CreateMPCWallet, GetMPCWallet, GenerateAddress, GetAddress, ListAddresses, GetDeviceGroup,
//! CreateMPCKey, GetMPCKey. Addresses and keys are public derivations of the group's root key.

use waas_api::export::{ExportKeyMetadata, ExportMetadata};
use waas_api::resources::{
    Address, CreateMpcKeyRequest, CreateMpcWalletRequest, DeviceGroup, DeviceGroupEvent,
    GenerateAddressRequest, GroupDeviceState, ListAddressesResponse, ListDeviceGroupEventsResponse,
    MpcData, MpcKey, MpcProtocol, MpcWallet, Operation, OperationMetadata,
};
use waas_api::{
    DeviceGroupName, MpcKeyName, MpcOperationName, MpcWalletName, OperationName, PoolName,
    ResourceId,
};
use waas_mpc::{ExtendedPublicKey, ethereum_address, parse_path};

use super::{Services, check_request_id, ensure_acts_for, hex0x, request_hash, same_request};
use crate::ApiError;
use crate::auth::Principal;
use crate::store::{
    AddressRecord, GroupRecord, GroupState, KeyRecord, NewOperation, NewWallet, OperationKind,
    Store, WalletRecord,
};
use crate::time::rfc3339_ms;

/// The sealing kind of a group's chain code.
pub(super) const CHAIN_CODE: &str = "chain-code";

pub(super) fn wallet_resource(record: &WalletRecord) -> MpcWallet {
    MpcWallet {
        name: record.name.clone(),
        device_group: record.device_group.clone(),
        create_time: rfc3339_ms(record.create_time_ms),
    }
}

fn key_resource(record: KeyRecord) -> MpcKey {
    MpcKey {
        name: record.name,
        derivation_path: record.derivation_path,
        public_key: hex0x(&record.public_key),
        address: record.address,
    }
}

fn address_resource(record: AddressRecord) -> Address {
    Address {
        address: record.address,
        network: record.network,
        mpc_wallet: record.mpc_wallet,
        derivation_path: record.key.derivation_path.clone(),
        mpc_keys: vec![record.key.name],
    }
}

/// A fresh random resource id.
pub(super) fn new_id() -> Result<ResourceId, ApiError> {
    ResourceId::new(uuid::Uuid::new_v4().to_string()).map_err(ApiError::internal)
}

/// The id of the key at a path: `m` for the root, `m-0-5` for `0/5`, so each path has one key.
fn key_id(path: &[u32]) -> Result<ResourceId, ApiError> {
    let id: String = std::iter::once("m".to_owned())
        .chain(path.iter().map(u32::to_string))
        .collect::<Vec<_>>()
        .join("-");
    Ok(ResourceId::new(id)?)
}

fn path_text(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

impl<S: Store> Services<S> {
    /// CreateMPCWallet: a new device group with `request.device` as its device, a wallet on it,
    /// and the key-generation operation the device must compute.
    pub async fn create_wallet(
        &self,
        caller: &Principal,
        pool: &PoolName,
        request: CreateMpcWalletRequest,
    ) -> Result<Operation, ApiError> {
        check_request_id(request.request_id.as_deref())?;
        ensure_acts_for(caller, &request.device)?;
        self.store
            .pool(pool)
            .await?
            .ok_or_else(|| ApiError::not_found(pool))?;
        let device = self
            .store
            .device(&request.device)
            .await?
            .ok_or_else(|| ApiError::not_found(&request.device))?;
        if device.state != waas_api::resources::DeviceState::Active {
            return Err(ApiError::precondition(format!(
                "{} is revoked",
                device.name
            )));
        }
        let group = DeviceGroupName::new(pool.pool().clone(), new_id()?);
        let wallet = MpcWalletName::new(pool.pool().clone(), new_id()?);
        let operation = OperationName::new(new_id()?);
        let mpc_operation = MpcOperationName::new(
            pool.pool().clone(),
            group.device_group().clone(),
            operation.operation().clone(),
        );
        let metadata = OperationMetadata::CreateMpcWallet {
            device_group: group.clone(),
            mpc_wallet: wallet.clone(),
            mpc_operation,
        };
        let request_hash = request_hash(&[
            "CreateMPCWallet",
            &pool.to_string(),
            &device.name.to_string(),
        ]);
        let created = self
            .store
            .create_wallet(&NewWallet {
                wallet,
                operation: NewOperation {
                    name: operation,
                    kind: OperationKind::CreateDeviceGroup,
                    device_group: group,
                    device: request.device,
                    epoch: 0,
                    metadata: serde_json::to_string(&metadata).map_err(ApiError::internal)?,
                    params: "{}".into(),
                    creator: caller.subject(),
                    request_id: request.request_id,
                    request_hash: request_hash.clone(),
                },
            })
            .await?;
        self.operation_resource(&same_request(created, &request_hash)?)
    }

    /// GetMPCWallet.
    pub async fn get_wallet(
        &self,
        caller: &Principal,
        name: &MpcWalletName,
    ) -> Result<MpcWallet, ApiError> {
        let wallet = self.readable_wallet(caller, name).await?;
        Ok(wallet_resource(&wallet))
    }

    /// GenerateAddress: the wallet's next address, `0/i`.
    pub async fn generate_address(
        &self,
        caller: &Principal,
        name: &MpcWalletName,
        request: GenerateAddressRequest,
    ) -> Result<Address, ApiError> {
        let network = request
            .network
            .strip_prefix("networks/")
            .and_then(|id| ResourceId::new(id).ok())
            .ok_or_else(|| ApiError::invalid("network must be networks/{network}"))?;
        let wallet = self.readable_wallet(caller, name).await?;
        let group = self.active_group(&wallet.device_group).await?;
        let xpub = self.group_xpub(&group)?;
        let record = self
            .store
            .add_next_address(&group.name, name, |index| {
                let key = self.derive_key(&group.name, &xpub, &[0, index])?;
                Ok::<_, ApiError>(AddressRecord {
                    address: key.address.clone(),
                    network: format!("networks/{network}"),
                    mpc_wallet: name.clone(),
                    key,
                })
            })
            .await?;
        Ok(address_resource(record))
    }

    /// ListAddresses, oldest first.
    pub async fn list_addresses(
        &self,
        caller: &Principal,
        name: &MpcWalletName,
    ) -> Result<ListAddressesResponse, ApiError> {
        self.readable_wallet(caller, name).await?;
        let addresses = self.store.addresses(name).await?;
        Ok(ListAddressesResponse {
            addresses: addresses.into_iter().map(address_resource).collect(),
        })
    }

    /// GetAddress, by its hex in any case.
    pub async fn get_address(
        &self,
        caller: &Principal,
        name: &MpcWalletName,
        address: &str,
    ) -> Result<Address, ApiError> {
        super::parse_hex0x::<20>(&address.to_ascii_lowercase(), "address")?;
        self.readable_wallet(caller, name).await?;
        let record = self
            .store
            .address(name, address)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("address {address} of {name}")))?;
        Ok(address_resource(record))
    }

    /// GetDeviceGroup.
    pub async fn get_device_group(
        &self,
        caller: &Principal,
        name: &DeviceGroupName,
    ) -> Result<DeviceGroup, ApiError> {
        self.ensure_can_read(caller, name).await?;
        let group = self
            .store
            .device_group(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        let metadata = match (&group.state, &group.root_public_key) {
            (GroupState::Active, Some(root)) => Some(self.export_metadata(name, root).await?),
            _ => None,
        };
        let device_states = self
            .store
            .device_states(name)
            .await?
            .into_iter()
            .map(|(device, state)| GroupDeviceState { device, state })
            .collect();
        Ok(DeviceGroup {
            name: group.name,
            devices: group.devices,
            device_states,
            mpc_key_export_metadata: metadata,
        })
    }

    /// ListDeviceGroupEvents: what happened to the group's devices, oldest first (devices added
    /// by a recovery, devices revoked), for its devices and API keys.
    pub async fn list_device_group_events(
        &self,
        caller: &Principal,
        name: &DeviceGroupName,
    ) -> Result<ListDeviceGroupEventsResponse, ApiError> {
        self.ensure_can_read(caller, name).await?;
        self.store
            .device_group(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        let events = self
            .store
            .device_group_events(name)
            .await?
            .into_iter()
            .map(|event| DeviceGroupEvent {
                kind: event.kind,
                device: event.device,
                operation: event.operation,
                time: rfc3339_ms(event.time_ms),
            })
            .collect();
        Ok(ListDeviceGroupEventsResponse { events })
    }

    /// What a device needs to check and export every key of an active group: its root key and
    /// every key made so far (docs/protocol/archive.md). All public.
    async fn export_metadata(
        &self,
        group: &DeviceGroupName,
        root_public_key: &[u8],
    ) -> Result<String, ApiError> {
        let keys = self.store.keys(group).await?;
        Ok(ExportMetadata {
            version: ExportMetadata::VERSION,
            device_group: group.clone(),
            root_public_key: hex0x(root_public_key),
            keys: keys
                .into_iter()
                .map(|key| ExportKeyMetadata {
                    mpc_key: key.name,
                    derivation_path: key.derivation_path,
                    public_key: hex0x(&key.public_key),
                    address: key.address,
                })
                .collect(),
        }
        .encode())
    }

    /// CreateMPCKey: the key at a non-hardened path below the root.
    pub async fn create_key(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: CreateMpcKeyRequest,
    ) -> Result<MpcKey, ApiError> {
        self.ensure_can_read(caller, group).await?;
        let path = parse_path(&request.derivation_path)
            .map_err(|error| ApiError::invalid(error.to_string()))?;
        let group = self.active_group(group).await?;
        let xpub = self.group_xpub(&group)?;
        let key = self.derive_key(&group.name, &xpub, &path)?;
        Ok(key_resource(self.store.put_key(&group.name, &key).await?))
    }

    /// GetMPCKey.
    pub async fn get_key(&self, caller: &Principal, name: &MpcKeyName) -> Result<MpcKey, ApiError> {
        self.ensure_can_read(caller, &name.device_group_name())
            .await?;
        let key = self
            .store
            .key(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        Ok(key_resource(key))
    }

    /// The wallet, if the caller may read it.
    async fn readable_wallet(
        &self,
        caller: &Principal,
        name: &MpcWalletName,
    ) -> Result<WalletRecord, ApiError> {
        let wallet = self
            .store
            .wallet(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        self.ensure_can_read(caller, &wallet.device_group).await?;
        Ok(wallet)
    }

    /// The group, if its key generation has finished.
    pub(super) async fn active_group(
        &self,
        name: &DeviceGroupName,
    ) -> Result<GroupRecord, ApiError> {
        let group = self
            .store
            .device_group(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        if group.state != GroupState::Active {
            return Err(ApiError::precondition(format!(
                "{name} has no key yet: its key generation has not finished"
            )));
        }
        Ok(group)
    }

    /// The group's root xpub, from X and the sealed chain code.
    fn group_xpub(&self, group: &GroupRecord) -> Result<ExtendedPublicKey, ApiError> {
        let (root, chain_code) = self.group_root(group)?;
        Ok(ExtendedPublicKey::root(root, chain_code))
    }

    /// The group's root key X and its chain code (opened from its sealed form).
    pub(super) fn group_root(&self, group: &GroupRecord) -> Result<([u8; 33], [u8; 32]), ApiError> {
        let (Some(root), Some(sealed)) = (&group.root_public_key, &group.chain_code_sealed) else {
            return Err(ApiError::internal("an active group without a root key"));
        };
        let root: [u8; 33] = root
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal("a stored root key has the wrong length"))?;
        let chain_code = self
            .master_key
            .open(CHAIN_CODE, &group.name.to_string(), sealed)
            .map_err(ApiError::internal)?;
        let chain_code: [u8; 32] = chain_code
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal("a stored chain code has the wrong length"))?;
        Ok((root, chain_code))
    }

    fn derive_key(
        &self,
        group: &DeviceGroupName,
        xpub: &ExtendedPublicKey,
        path: &[u32],
    ) -> Result<KeyRecord, ApiError> {
        let child = xpub
            .derive(path)
            .map_err(|error| ApiError::invalid(error.to_string()))?;
        let address = ethereum_address(&child.public_key).map_err(ApiError::internal)?;
        Ok(KeyRecord {
            name: MpcKeyName::new(
                group.pool().clone(),
                group.device_group().clone(),
                key_id(path)?,
            ),
            derivation_path: path_text(path),
            public_key: child.public_key.to_vec(),
            address,
        })
    }
}

/// The mpcData of an operation, for the device.
pub(super) fn mpc_data(
    mpc_operation: MpcOperationName,
    record: &crate::store::OperationRecord,
    protocol: MpcProtocol,
) -> String {
    MpcData {
        version: MpcData::VERSION,
        mpc_operation,
        device: record.device.clone(),
        epoch: record.epoch,
        protocol,
    }
    .encode()
}
