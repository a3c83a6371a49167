//! The JSON resources and request bodies of the REST API (camelCase, as WaaS). Byte strings are
//! `0x`-prefixed lowercase hex when they are keys, digests or signatures a wallet shows, and
//! unpadded base64url when they are opaque protocol data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{
    DeviceGroupName, DeviceName, ErrorBody, MpcKeyName, MpcOperationName, MpcWalletName,
    OperationName, PasscodeLoginName, PoolName,
};
pub use waas_eth::TypedPayload;

/// RegisterDevice: `POST /v1/device:register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// [`crate::RegistrationData`] in its base64url form.
    pub registration_data: String,
}

/// RevokeDevice: `POST /v1/device:revoke`. The device itself or an API key may revoke it; another
/// device of one of its groups needs `login`, a fresh passcode login of that group it finished
/// (the step-up), used up by the revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeDeviceRequest {
    /// The device to revoke, `devices/{device}`.
    pub name: DeviceName,
    /// The caller's step-up when it revokes another device: `…/passcodeLogins/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<PasscodeLoginName>,
}

/// Whether a device may still act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum DeviceState {
    /// Registered and usable.
    Active,
    /// Revoked: its requests fail and the server's halves of its pairings are gone.
    Revoked,
}

/// A registered device (one browser profile).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// `devices/{device}`: derived from the auth key, so registering again names the same device.
    pub name: DeviceName,
    /// Active or revoked.
    pub state: DeviceState,
    /// The archive public key (secp256k1, compressed), `0x` hex.
    pub archive_public_key: String,
    /// When it was registered, RFC 3339.
    pub create_time: String,
}

/// CreatePool: `POST /v1/pools` (API keys only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePoolRequest {
    /// The new pool's id (`pools/{poolId}`).
    pub pool_id: String,
    /// A name for people.
    #[serde(default)]
    pub display_name: String,
    /// Whether devices may take the whole key out (PrepareDeviceArchive, export). On unless
    /// set to false, as in the reference.
    #[serde(default = "export_on")]
    pub export_enabled: bool,
}

fn export_on() -> bool {
    true
}

/// A pool: the tenant that owns device groups and wallets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// `pools/{pool}`.
    pub name: PoolName,
    /// A name for people.
    pub display_name: String,
    /// When it was created, RFC 3339.
    pub create_time: String,
    /// Whether devices may take the whole key out (PrepareDeviceArchive, export).
    pub export_enabled: bool,
}

/// The longest `requestId` accepted, in characters. An id is kept with its operation and
/// indexed, so it is bounded (a random 128-bit id takes 32 hex characters).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether the server accepts `id` as a `requestId`: 1 to [`MAX_REQUEST_ID_LEN`] printable ASCII
/// characters (space to `~`), so that it reads the same in logs and in every store.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// CreateMPCWallet: `POST /v1/pools/{pool}/mpcWallets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMpcWalletRequest {
    /// The device that will hold the other half of the key.
    pub device: DeviceName,
    /// Makes the call idempotent: the same id from the same caller returns the same operation.
    /// See [`is_valid_request_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An MPC wallet: addresses that derive from one device group's root key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpcWallet {
    /// `pools/{pool}/mpcWallets/{mpc_wallet}`.
    pub name: MpcWalletName,
    /// The device group whose key it uses.
    pub device_group: DeviceGroupName,
    /// When it was created, RFC 3339.
    pub create_time: String,
}

/// GenerateAddress: `POST /v1/pools/{pool}/mpcWallets/{mpc_wallet}:generateAddress`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateAddressRequest {
    /// The network, `networks/{network}`; only EVM networks (one address format) for now.
    #[serde(default = "default_network")]
    pub network: String,
}

fn default_network() -> String {
    DEFAULT_NETWORK.to_owned()
}

/// The network an address is for when the request names none.
pub const DEFAULT_NETWORK: &str = "networks/ethereum-mainnet";

/// An address of a wallet: the Ethereum address of one MPC key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// The EIP-55 checksummed address, `0x…`.
    pub address: String,
    /// The network, `networks/{network}`.
    pub network: String,
    /// The wallet it belongs to.
    pub mpc_wallet: MpcWalletName,
    /// The MPC key that signs for it.
    pub mpc_keys: Vec<MpcKeyName>,
    /// Its derivation path below the wallet's root key, e.g. `0/3`.
    pub derivation_path: String,
}

/// ListAddresses: `GET /v1/pools/{pool}/mpcWallets/{mpc_wallet}/addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAddressesResponse {
    /// The addresses, oldest first.
    pub addresses: Vec<Address>,
}

/// A device group: the devices that share one wallet key, each paired with the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceGroup {
    /// `pools/{pool}/deviceGroups/{device_group}`.
    pub name: DeviceGroupName,
    /// Its devices.
    pub devices: Vec<DeviceName>,
    /// Each device's state, in the order of `devices`, so a wallet can show which ones are
    /// revoked (a device's own state alone would not tell it about the others).
    #[serde(default)]
    pub device_states: Vec<GroupDeviceState>,
    /// [`crate::export::ExportMetadata`], base64url, once key generation has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpc_key_export_metadata: Option<String>,
}

/// One device of a group and its state ([`DeviceGroup::device_states`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeviceState {
    /// The device.
    pub device: DeviceName,
    /// Active or revoked.
    pub state: DeviceState,
}

/// What happened to a group's devices: `GET /v1/pools/{pool}/deviceGroups/{device_group}/events`
/// (for its devices and API keys), so the other devices can tell the user that a device was
/// added (a recovery, which may be a thief's) or revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeviceGroupEventsResponse {
    /// The events, oldest first.
    pub events: Vec<DeviceGroupEvent>,
}

/// One change of a group's devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceGroupEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: DeviceGroupEventType,
    /// The device it happened to.
    pub device: DeviceName,
    /// The operation that did it (AddDevice's), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationName>,
    /// When, RFC 3339.
    pub time: String,
}

/// What happened to a device of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum DeviceGroupEventType {
    /// AddDevice made it a device of the group (a recovery with a backup and the passcode).
    DeviceAdded,
    /// RevokeDevice revoked it.
    DeviceRevoked,
}

/// CreateMPCKey: `POST /v1/pools/{pool}/deviceGroups/{device_group}/mpcKeys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMpcKeyRequest {
    /// Non-hardened indices below the root, e.g. `0/7` (the root itself: empty).
    pub derivation_path: String,
}

/// A key of a device group: a non-hardened child of its root key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpcKey {
    /// `pools/{pool}/deviceGroups/{device_group}/mpcKeys/{mpc_key}`.
    pub name: MpcKeyName,
    /// Its derivation path below the root, e.g. `0/3`.
    pub derivation_path: String,
    /// Its public key, compressed SEC1, `0x` hex.
    pub public_key: String,
    /// Its Ethereum address (EIP-55).
    pub address: String,
}

/// CreateSignature: `POST /v1/pools/{pool}/deviceGroups/{device_group}/mpcKeys/{mpc_key}/signatures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSignatureRequest {
    /// The 32-byte digest to sign, `0x` hex: the caller's own digest of `typed_payload` when
    /// that is given (the server refuses a request where they differ), else a raw digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// What is signed, when it is an Ethereum message, typed data or transaction: the server
    /// computes its digest itself, and keeps it with the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_payload: Option<TypedPayload>,
    /// Makes the call idempotent: the same id from the same caller returns the same operation.
    /// See [`is_valid_request_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Finer reasons of CreateSignature's refusals (the error body's `reason`).
pub mod reason {
    /// `payload` is not the digest of `typedPayload`: the caller and the server disagree on what
    /// is signed, so nothing is.
    pub const DIGEST_MISMATCH: &str = "DIGEST_MISMATCH";
}

/// A typed payload as operations and signatures carry it once the server checked it: its JSON
/// text. Who needs its structure parses it ([`TypedPayloadJson::parse`]); the browser's main
/// module, which only passes it on, then needs no reader for every kind of payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypedPayloadJson(Box<serde_json::value::RawValue>);

impl TypedPayloadJson {
    /// The JSON text of `payload`.
    pub fn new(payload: &TypedPayload) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(payload).map(Self)
    }

    /// The payload.
    pub fn parse(&self) -> Result<TypedPayload, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for TypedPayloadJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TypedPayloadJson {}

/// A finished signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// The key that signed.
    pub mpc_key: MpcKeyName,
    /// The digest that was signed, `0x` hex.
    pub payload: String,
    /// What the digest is of, as the request gave it (none for a raw digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_payload: Option<TypedPayloadJson>,
    /// The signature.
    pub signed_payload: SignedPayload,
}

/// An ECDSA signature in the forms wallets use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPayload {
    /// r, `0x` hex, 32 bytes.
    pub r: String,
    /// s, `0x` hex, 32 bytes, low-S.
    pub s: String,
    /// 27 or 28 (27 + the recovery id), as `personal_sign` returns it.
    pub v: u8,
    /// `r ‖ s ‖ v`, 65 bytes, `0x` hex.
    pub signature: String,
}

/// A long-running operation: `GET /v1/operations/{operation}` polls it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `operations/{operation}`.
    pub name: OperationName,
    /// What it is about.
    pub metadata: OperationMetadata,
    /// Whether it has finished, with a `response` or an `error`.
    pub done: bool,
    /// Why it failed, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// What it produced, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<OperationResponse>,
}

/// What an operation is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
// Deserialize: `crate::tagged`, the same JSON without serde's buffering.
#[serde(tag = "@type")]
#[non_exhaustive]
pub enum OperationMetadata {
    /// CreateMPCWallet: key generation for a new device group.
    #[serde(rename = "CreateMPCWalletMetadata", rename_all = "camelCase")]
    CreateMpcWallet {
        /// The new device group.
        device_group: DeviceGroupName,
        /// The new wallet.
        mpc_wallet: MpcWalletName,
        /// The device's part of the operation.
        mpc_operation: MpcOperationName,
    },
    /// CreateSignature.
    #[serde(rename = "CreateSignatureMetadata", rename_all = "camelCase")]
    CreateSignature {
        /// The signing key.
        mpc_key: MpcKeyName,
        /// The device's part of the operation.
        mpc_operation: MpcOperationName,
    },
    /// PrepareDeviceArchive: the server's share of one device's pairing, sent to that device.
    #[serde(rename = "PrepareDeviceArchiveMetadata", rename_all = "camelCase")]
    PrepareDeviceArchive {
        /// The group.
        device_group: DeviceGroupName,
        /// The device that gets the archive.
        device: DeviceName,
        /// The device's part of the operation.
        mpc_operation: MpcOperationName,
    },
    /// PrepareDeviceBackup: both halves of one device's pairing encrypted to a fresh 2-of-2
    /// decryption key, whose device half the user keeps (docs/protocol/backup.md).
    #[serde(rename = "PrepareDeviceBackupMetadata", rename_all = "camelCase")]
    PrepareDeviceBackup {
        /// The group.
        device_group: DeviceGroupName,
        /// The device that makes the backup.
        device: DeviceName,
        /// The device's part of the operation.
        mpc_operation: MpcOperationName,
    },
    /// AddDevice: a new device joins the group with a backup and the passcode, and gets its own
    /// pairing (docs/protocol/recovery.md).
    #[serde(rename = "AddDeviceMetadata", rename_all = "camelCase")]
    AddDevice {
        /// The group.
        device_group: DeviceGroupName,
        /// The device being added.
        device: DeviceName,
        /// The device's part of the operation.
        mpc_operation: MpcOperationName,
    },
}

/// What a finished operation produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
// Deserialize: `crate::tagged`, the same JSON without serde's buffering.
#[serde(tag = "@type")]
#[non_exhaustive]
pub enum OperationResponse {
    /// CreateMPCWallet's wallet.
    #[serde(rename = "MPCWallet")]
    MpcWallet(MpcWallet),
    /// CreateSignature's signature.
    #[serde(rename = "Signature")]
    Signature(Signature),
    /// PrepareDeviceArchive's result.
    #[serde(rename = "DeviceArchive")]
    DeviceArchive(DeviceArchive),
    /// PrepareDeviceBackup's result.
    #[serde(rename = "DeviceBackup")]
    DeviceBackup(DeviceBackup),
    /// AddDevice's result.
    #[serde(rename = "DeviceAdded")]
    DeviceAdded(DeviceAdded),
}

/// A finished AddDevice: the device is a device of the group, with its own pairing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceAdded {
    /// The group.
    pub device_group: DeviceGroupName,
    /// The device added.
    pub device: DeviceName,
    /// Its pairing's first epoch.
    pub epoch: u64,
}

/// A finished PrepareDeviceBackup: the group's current backup, verified by the device's dry run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceBackup {
    /// The group.
    pub device_group: DeviceGroupName,
    /// The device that made it.
    pub device: DeviceName,
    /// The pairing epoch backed up.
    pub epoch: u64,
    /// H(ct_x ‖ ct_s), `0x` hex: the backup string commits to the same.
    pub ciphertexts_hash: String,
}

/// A finished PrepareDeviceArchive: the device holds its archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceArchive {
    /// The group.
    pub device_group: DeviceGroupName,
    /// The device.
    pub device: DeviceName,
    /// The pairing epoch the archive is of.
    pub epoch: u64,
}

/// ListMPCOperations: `GET /v1/pools/{pool}/deviceGroups/{device_group}/mpcOperations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMpcOperationsResponse {
    /// The operations the calling device has to compute, oldest first.
    pub mpc_operations: Vec<MpcOperation>,
}

/// An operation the device has to compute its part of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpcOperation {
    /// `pools/{pool}/deviceGroups/{device_group}/mpcOperations/{id}`.
    pub name: MpcOperationName,
    /// [`MpcData`], base64url: what the device runs. Pass it to `computeMPCOperation` as it is.
    pub mpc_data: String,
    /// What the operation is about.
    pub metadata: OperationMetadata,
}

/// What the device needs to run its side of an MPC operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpcData {
    /// [`MpcData::VERSION`].
    pub version: u8,
    /// The operation.
    pub mpc_operation: MpcOperationName,
    /// The device that computes it.
    pub device: DeviceName,
    /// The pairing epoch it runs on.
    pub epoch: u64,
    /// The protocol and its inputs.
    pub protocol: MpcProtocol,
}

/// The protocol an MPC operation runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
// Deserialize: `crate::tagged`, the same JSON without serde's buffering.
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum MpcProtocol {
    /// Key generation for a new device group.
    CreateDeviceGroup,
    /// Signing a digest with a key of the group.
    #[serde(rename_all = "camelCase")]
    CreateSignature {
        /// The signing key.
        mpc_key: MpcKeyName,
        /// Its derivation path below the root, e.g. `0/3`.
        derivation_path: String,
        /// The digest, `0x` hex.
        digest: String,
        /// What the digest is of, when the request said (none for a raw digest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        typed_payload: Option<TypedPayloadJson>,
        /// The pairing's id, `0x` hex.
        pairing_id: String,
    },
    /// The server's share of the device's pairing, sealed to its archive key
    /// (docs/protocol/archive.md). Round 1: the device names a passcode login it just finished
    /// (UTF-8); round 2: the sealed share; round 3: the device's SHA-256 of the sealed share,
    /// once the archive is stored.
    #[serde(rename_all = "camelCase")]
    PrepareDeviceArchive {
        /// The pairing's id, `0x` hex.
        pairing_id: String,
    },
    /// Both halves of the device's pairing encrypted to a fresh 2-of-2 decryption key
    /// (docs/protocol/backup.md): round 1 the device's login and decryption half, round 2 the
    /// server's half and ct_s, round 3 ct_x with the proof of its r, round 4 the server's partial decryption of ct_x,
    /// round 5 the device's H(ct_x ‖ ct_s) once its dry run passed (`waas_mpc::backup` messages).
    #[serde(rename_all = "camelCase")]
    PrepareDeviceBackup {
        /// The pairing's id, `0x` hex.
        pairing_id: String,
    },
    /// A new device joins the group with a backup (docs/protocol/recovery.md,
    /// `waas_mpc::recovery`): round 1 the device's proven partial on ct_s and an OPAQUE login
    /// request, round 2 the login response, round 3 the login's finalization and its MAC of the
    /// operation, round 4 the server's proven partial on ct_x, rounds 5 to 8 a complete refresh
    /// of the restored pairing, round 9 the device's confirmation of the pairing it stored.
    /// mpcData's epoch is the backed-up pairing's.
    #[serde(rename_all = "camelCase")]
    AddDevice {
        /// The backup, as its string names it.
        backup: MpcOperationName,
        /// ct_x, unpadded base64url: the device checks both ciphertexts against the string.
        device_ciphertext: String,
        /// ct_s, unpadded base64url.
        server_ciphertext: String,
    },
}

/// Why `mpcData` could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mpcData is not valid: {0}")]
pub struct MpcDataError(String);

impl MpcData {
    /// The format version written.
    pub const VERSION: u8 = 1;

    /// The base64url form that [`MpcOperation::mpc_data`] carries.
    pub fn encode(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses the base64url form.
    pub fn decode(text: &str) -> Result<Self, MpcDataError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| MpcDataError("not base64url".into()))?;
        // As text: the SDK's other JSON is read from text too, and one reader is less wasm.
        let text = std::str::from_utf8(&bytes).map_err(|_| MpcDataError("not UTF-8".into()))?;
        let data: Self =
            serde_json::from_str(text).map_err(|error| MpcDataError(error.to_string()))?;
        if data.version != Self::VERSION {
            return Err(MpcDataError(format!(
                "version {} is not supported",
                data.version
            )));
        }
        Ok(data)
    }
}

/// One message of an MPC protocol: `POST …/mpcOperations/{id}:exchange`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The round of `message` (the device sends the odd rounds).
    pub round: u8,
    /// The protocol message, base64url.
    pub message: String,
}

/// The server's answer to one exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeResponse {
    /// The round of the server's reply, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u8>,
    /// The server's reply, base64url, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether the operation has finished at the server.
    pub done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operation_json_is_tagged_and_camel_case() {
        let operation = Operation {
            name: "operations/o1".parse().unwrap(),
            metadata: OperationMetadata::CreateSignature {
                mpc_key: "pools/p/deviceGroups/g/mpcKeys/k".parse().unwrap(),
                mpc_operation: "pools/p/deviceGroups/g/mpcOperations/o1".parse().unwrap(),
            },
            done: false,
            error: None,
            response: None,
        };
        assert_eq!(
            serde_json::to_value(&operation).unwrap(),
            json!({
                "name": "operations/o1",
                "metadata": {
                    "@type": "CreateSignatureMetadata",
                    "mpcKey": "pools/p/deviceGroups/g/mpcKeys/k",
                    "mpcOperation": "pools/p/deviceGroups/g/mpcOperations/o1",
                },
                "done": false,
            })
        );
    }

    #[test]
    fn mpc_data_round_trips_and_checks_its_version() {
        let data = MpcData {
            version: MpcData::VERSION,
            mpc_operation: "pools/p/deviceGroups/g/mpcOperations/o".parse().unwrap(),
            device: "devices/d".parse().unwrap(),
            epoch: 0,
            protocol: MpcProtocol::CreateDeviceGroup,
        };
        assert_eq!(MpcData::decode(&data.encode()).unwrap(), data);
        let newer = MpcData { version: 2, ..data };
        assert!(MpcData::decode(&newer.encode()).is_err());
        assert!(MpcData::decode("%%").is_err());
    }

    #[test]
    fn group_events_and_device_states_are_typed_and_round_trip() {
        let events = ListDeviceGroupEventsResponse {
            events: vec![
                DeviceGroupEvent {
                    kind: DeviceGroupEventType::DeviceAdded,
                    device: "devices/new".parse().unwrap(),
                    operation: Some("operations/o1".parse().unwrap()),
                    time: "2025-01-02T03:04:05.678Z".into(),
                },
                DeviceGroupEvent {
                    kind: DeviceGroupEventType::DeviceRevoked,
                    device: "devices/old".parse().unwrap(),
                    operation: None,
                    time: "2025-01-02T03:04:06.000Z".into(),
                },
            ],
        };
        let value = json!({
            "events": [
                {
                    "type": "DEVICE_ADDED",
                    "device": "devices/new",
                    "operation": "operations/o1",
                    "time": "2025-01-02T03:04:05.678Z",
                },
                {
                    "type": "DEVICE_REVOKED",
                    "device": "devices/old",
                    "time": "2025-01-02T03:04:06.000Z",
                },
            ]
        });
        assert_eq!(serde_json::to_value(&events).unwrap(), value);
        assert_eq!(
            serde_json::from_value::<ListDeviceGroupEventsResponse>(value).unwrap(),
            events
        );
        let unknown = json!({"type": "DEVICE_RENAMED", "device": "devices/d", "time": "t"});
        assert!(serde_json::from_value::<DeviceGroupEvent>(unknown).is_err());

        let group = DeviceGroup {
            name: "pools/p/deviceGroups/g".parse().unwrap(),
            devices: vec!["devices/a".parse().unwrap()],
            device_states: vec![GroupDeviceState {
                device: "devices/a".parse().unwrap(),
                state: DeviceState::Revoked,
            }],
            mpc_key_export_metadata: None,
        };
        let value = json!({
            "name": "pools/p/deviceGroups/g",
            "devices": ["devices/a"],
            "deviceStates": [{"device": "devices/a", "state": "REVOKED"}],
        });
        assert_eq!(serde_json::to_value(&group).unwrap(), value);
        assert_eq!(serde_json::from_value::<DeviceGroup>(value).unwrap(), group);
        // A server from before the field: the states are simply not known.
        let older: DeviceGroup =
            serde_json::from_value(json!({"name": "pools/p/deviceGroups/g", "devices": []}))
                .unwrap();
        assert!(older.device_states.is_empty());
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let parsed: Result<CreateSignatureRequest, _> =
            serde_json::from_value(json!({"payload": "0x00", "payloadd": 1}));
        assert!(parsed.is_err());
    }
}
