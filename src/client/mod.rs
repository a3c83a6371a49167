//! `WaasClient`: the REST calls of the server over `fetch`, each signed with the device's
//! non-extractable key (docs/api.md, "Request tokens"), and the device's side of the MPC
//! operations (`computeMPCOperation`) with the convenience flows built on them.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use js_sys::Reflect;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use waas_api::auth::{ALGORITHM, MAX_TOKEN_LIFETIME_SECS, RequestClaims, TokenHeader, reason};
use waas_api::resources::{
    Address, CreateMpcWalletRequest, CreateSignatureRequest, DEFAULT_NETWORK, DeviceGroup,
    ExchangeRequest, ExchangeResponse, GenerateAddressRequest, ListMpcOperationsResponse, MpcData,
    MpcProtocol, Operation, OperationMetadata, OperationResponse, RegisterDeviceRequest, Signature,
    SignedPayload, TypedPayload, TypedPayloadJson,
};
use waas_api::{DeviceGroupName, ErrorBody, ErrorCode, MpcKeyName, MpcOperationName, PoolName};
use waas_mpc::{Keygen, SessionId, Signing, SigningRequest, ethereum_address, parse_path};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

mod archive;
// The rare flows (backup, recovery, export, revoke, the passcode reset at the server) are only in
// the full module, which the npm package loads on first use so every page load does not pay for
// them (docs/design-notes.md, "Two modules").
#[cfg(feature = "rare-flows")]
mod backup;
mod devices;
mod ethereum;
#[cfg(feature = "rare-flows")]
mod export;
mod passcode;
#[cfg(feature = "rare-flows")]
mod recovery;
#[cfg(feature = "rare-flows")]
mod revoke;

use crate::SdkError;
use crate::browser::{fetch, subtle};
use crate::keystore::{DEFAULT_STORE, KeyStore, Unlocked};

/// How long to wait before each resend of an idempotent request that got no answer, or the
/// answer `UNAVAILABLE` (the server's database out of reach for a moment).
const RESEND_DELAYS_MS: [f64; 3] = [250.0, 1000.0, 2500.0];

/// The largest clock correction the client accepts from the server.
const MAX_CLOCK_OFFSET_MS: f64 = 24.0 * 3600.0 * 1000.0;

/// The pool wallets are created in unless the caller names one (the server creates it).
const DEFAULT_POOL: &str = "pools/default";

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** How `WaasClient.connect` reaches the server. */
export interface ClientOptions {
  /** The key store (default: the origin's `waas-sdk`). */
  storeName?: string;
  /** The server's `--audience` (default `waas-server`). */
  audience?: string;
}
/** What unlocks the device's keys for one operation: the passcode, or the passkey (the browser
 * asks the user to verify). */
export type Unlock = { passcode: string } | { passkey: true };
/** `createWallet` needs the passcode (it is registered at the server for export and recovery). */
export type CreateWalletUnlock = { passcode: string };
/** How long `waitOperation` waits. */
export interface WaitOptions { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal; }
/** A long-running operation (docs/api.md). */
export interface Operation {
  name: string;
  metadata: { '@type': string; deviceGroup?: string; mpcWallet?: string; mpcKey?: string; device?: string; mpcOperation: string };
  done: boolean;
  error?: { code: string; message: string; status: number };
  response?: MpcWallet | Signature | DeviceArchive | DeviceBackup | DeviceAdded;
}
export interface MpcWallet { '@type'?: 'MPCWallet'; name: string; deviceGroup: string; createTime: string; }
export interface Signature {
  '@type'?: 'Signature';
  mpcKey: string;
  /** The digest signed, `0x` hex. */
  payload: string;
  /** What `payload` is the digest of (none for a bare digest: `createSignature`, `signPayload`). */
  typedPayload?: TypedPayload;
  signedPayload: { r: string; s: string; v: number; signature: string };
}
/** What a signature's digest is of, as the request gave it (the server computed the same digest). */
export type TypedPayload =
  | { type: 'eip191'; message: `0x${string}` }
  | { type: 'eip712'; typedData: Exclude<TypedDataDefinition, string> }
  | { type: 'transaction'; transaction: TransactionRequest & { type: 'eip1559' | 'legacy' } };
export interface Address { address: string; network: string; mpcWallet: string; mpcKeys: string[]; derivationPath: string; }
/** A device group; `mpcKeyExportMetadata` (once key generation is done) is what
 * `exportPrivateKeys` takes. */
export interface DeviceGroup {
  name: string;
  devices: string[];
  /** Each device's state: a revoked one stays listed. */
  deviceStates: { device: string; state: 'ACTIVE' | 'REVOKED' }[];
  mpcKeyExportMetadata?: string;
}
/** A finished PrepareDeviceArchive. */
export interface DeviceArchive { '@type'?: 'DeviceArchive'; deviceGroup: string; device: string; epoch: number; }
/** A finished PrepareDeviceBackup: the group's backup, verified by this device's dry run. */
export interface DeviceBackup { '@type'?: 'DeviceBackup'; deviceGroup: string; device: string; epoch: number; ciphertextsHash: string; }
/** A finished AddDevice: the device is in the group, with its own pairing. */
export interface DeviceAdded { '@type'?: 'DeviceAdded'; deviceGroup: string; device: string; epoch: number; }
export interface MpcOperation { name: string; mpcData: string; metadata: Operation['metadata']; }
export interface Device { name: string; state: 'ACTIVE' | 'REVOKED'; archivePublicKey: string; createTime: string; }
/** What `createWallet` made: the wallet and its first address, checked against the device's own
 * key. `archived`: this device holds the wallet's archive (export works). It is false when the
 * pool has export off, or when the passcode registration or the archive failed (`archiveError`);
 * the wallet exists either way, and `exportPrivateKeys` or the group's PrepareDeviceArchive
 * operation can finish the archive later. */
export interface CreatedWallet {
  wallet: MpcWallet;
  address: Address;
  archived: boolean;
  archiveError?: { code: string; message: string };
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `ClientOptions`.
    #[wasm_bindgen(typescript_type = "ClientOptions")]
    pub type ClientOptions;
    /// `Unlock`.
    #[wasm_bindgen(typescript_type = "Unlock")]
    pub type Unlock;
    /// `CreateWalletUnlock`.
    #[wasm_bindgen(typescript_type = "CreateWalletUnlock")]
    pub type CreateWalletUnlock;
    /// `WaitOptions`.
    #[wasm_bindgen(typescript_type = "WaitOptions")]
    pub type WaitOptions;
    /// `Operation`.
    #[wasm_bindgen(typescript_type = "Operation")]
    pub type JsOperation;
    /// `Address`.
    #[wasm_bindgen(typescript_type = "Address")]
    pub type JsAddress;
    /// `DeviceGroup`.
    #[wasm_bindgen(typescript_type = "DeviceGroup")]
    pub type JsDeviceGroup;
    /// `MpcOperation[]`.
    #[wasm_bindgen(typescript_type = "MpcOperation[]")]
    pub type JsMpcOperations;
    /// `Device`.
    #[wasm_bindgen(typescript_type = "Device")]
    pub type JsDevice;
    /// `Signature`.
    #[wasm_bindgen(typescript_type = "Signature")]
    pub type JsSignature;
    /// `CreatedWallet`.
    #[wasm_bindgen(typescript_type = "CreatedWallet")]
    pub type JsCreatedWallet;
}

fn string_option(options: &JsValue, key: &str) -> Option<String> {
    Reflect::get(options, &key.into())
        .ok()
        .and_then(|value| value.as_string())
}

fn number_option(options: &JsValue, key: &str) -> Option<f64> {
    Reflect::get(options, &key.into())
        .ok()
        .and_then(|value| value.as_f64())
}

/// A serde value as a plain JS object (through JSON, so the shape is exactly the API's).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, SdkError> {
    let json = serde_json::to_string(value).map_err(|error| SdkError::Crypto(error.to_string()))?;
    js_sys::JSON::parse(&json).map_err(|_| SdkError::Crypto("cannot build a JS value".into()))
}

fn unlock_of(unlock: &Unlock) -> Result<crate::keystore::Unlock, SdkError> {
    if let Some(passcode) = string_option(unlock, "passcode") {
        return Ok(crate::keystore::Unlock::Passcode(passcode));
    }
    if Reflect::get(unlock, &"passkey".into())
        .ok()
        .and_then(|value| value.as_bool())
        == Some(true)
    {
        return Ok(crate::keystore::Unlock::Passkey);
    }
    Err(SdkError::InvalidArgument(
        "unlock is { passcode } or { passkey: true }".into(),
    ))
}

/// The client of one server, for this profile's device.
#[wasm_bindgen]
pub struct WaasClient {
    base_url: String,
    audience: String,
    store: Rc<KeyStore>,
    /// Server time minus local time, from the last `Date` header, in milliseconds.
    clock_offset_ms: Cell<f64>,
    /// This device's name and auth key, read from the store once (they never change).
    identity: OnceCell<(waas_api::DeviceName, web_sys::CryptoKey)>,
}

#[wasm_bindgen]
impl WaasClient {
    /// A client of the server at `baseUrl` (`https://waas.example`, or `''` for this origin).
    pub async fn connect(
        #[wasm_bindgen(js_name = baseUrl)] base_url: String,
        options: Option<ClientOptions>,
    ) -> Result<WaasClient, SdkError> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, JsValue::from);
        check_base_url(&base_url)?;
        let store_name =
            string_option(&options, "storeName").unwrap_or_else(|| DEFAULT_STORE.into());
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            audience: string_option(&options, "audience").unwrap_or_else(|| "waas-server".into()),
            store: Rc::new(KeyStore::open(&store_name).await?),
            clock_offset_ms: Cell::new(0.0),
            identity: OnceCell::new(),
        })
    }

    /// RegisterDevice: registers this profile's device (again is fine: the same device).
    #[wasm_bindgen(js_name = registerDevice)]
    pub async fn register_device(&self) -> Result<JsDevice, SdkError> {
        let body = RegisterDeviceRequest {
            registration_data: self.store.public().await?.registration_data,
        };
        let device: waas_api::resources::Device = self
            .send("POST", "/v1/device:register", Some(&body), false)
            .await?;
        Ok(to_js(&device)?.into())
    }

    /// CreateMPCWallet for this device, in `pool` (default `pools/default`).
    #[wasm_bindgen(js_name = createMPCWallet)]
    pub async fn create_mpc_wallet(&self, pool: Option<String>) -> Result<JsOperation, SdkError> {
        Ok(to_js(&self.create_wallet_operation(pool).await?)?.into())
    }

    /// GetDeviceGroup.
    #[wasm_bindgen(js_name = getDeviceGroup)]
    pub async fn get_device_group(&self, name: String) -> Result<JsDeviceGroup, SdkError> {
        let name: DeviceGroupName = name.parse()?;
        let group: DeviceGroup = self
            .send::<(), _>("GET", &format!("/v1/{name}"), None, true)
            .await?;
        Ok(to_js(&group)?.into())
    }

    /// ListMPCOperations: what this device has to compute on the group.
    #[wasm_bindgen(js_name = listMPCOperations)]
    pub async fn list_mpc_operations(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<JsMpcOperations, SdkError> {
        let list = self.list_operations(&device_group.parse()?).await?;
        Ok(to_js(&list.mpc_operations)?.into())
    }

    /// GenerateAddress: the wallet's next address, refused unless it is this device's own
    /// derivation of that path.
    #[wasm_bindgen(js_name = generateAddress)]
    pub async fn generate_address(
        &self,
        wallet: String,
        network: Option<String>,
    ) -> Result<JsAddress, SdkError> {
        let wallet: waas_api::MpcWalletName = wallet.parse()?;
        // The group this device recorded when it made the wallet; the server's word otherwise.
        let group = match self.store.wallet_group(&wallet.to_string()).await? {
            Some(group) => group.parse()?,
            None => {
                let resource: waas_api::resources::MpcWallet = self
                    .send::<(), _>("GET", &format!("/v1/{wallet}"), None, true)
                    .await?;
                resource.device_group
            }
        };
        let body = GenerateAddressRequest {
            network: network.unwrap_or_else(|| DEFAULT_NETWORK.into()),
        };
        let address: Address = self
            .send(
                "POST",
                &format!("/v1/{wallet}:generateAddress"),
                Some(&body),
                true,
            )
            .await?;
        self.check_address(&wallet, &group, &address).await?;
        Ok(to_js(&address)?.into())
    }

    /// CreateSignature: an operation to sign a 32-byte digest (`0x` hex) with the key.
    #[wasm_bindgen(js_name = createSignature)]
    pub async fn create_signature(
        &self,
        #[wasm_bindgen(js_name = mpcKey)] mpc_key: String,
        digest: String,
        #[wasm_bindgen(js_name = requestId)] request_id: Option<String>,
    ) -> Result<JsOperation, SdkError> {
        let key: MpcKeyName = mpc_key.parse()?;
        let body = CreateSignatureRequest {
            payload: Some(digest),
            typed_payload: None,
            request_id,
        };
        let operation: Operation = self
            .send("POST", &format!("/v1/{key}/signatures"), Some(&body), true)
            .await?;
        Ok(to_js(&operation)?.into())
    }

    /// GetOperation.
    #[wasm_bindgen(js_name = getOperation)]
    pub async fn get_operation(&self, name: String) -> Result<JsOperation, SdkError> {
        Ok(to_js(&self.operation(&name).await?)?.into())
    }

    /// Polls an operation until it is done (or `timeoutMs`, default 60 s, passes, or `signal`
    /// aborts). Resolves with the done operation; one that failed rejects with `PROTOCOL_ABORT`.
    #[wasm_bindgen(js_name = waitOperation)]
    pub async fn wait_operation(
        &self,
        name: String,
        options: Option<WaitOptions>,
    ) -> Result<JsOperation, SdkError> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, JsValue::from);
        Ok(to_js(&self.wait(&name, &options).await?)?.into())
    }

    /// Runs this device's side of an MPC operation (`mpcData` from ListMPCOperations): key
    /// generation or signing. The new pairing is stored encrypted; a signature is returned by
    /// GetOperation. Holds a Web Lock on the device group while it runs.
    #[wasm_bindgen(js_name = computeMPCOperation)]
    pub async fn compute_mpc_operation(
        &self,
        #[wasm_bindgen(js_name = mpcData)] mpc_data: String,
        unlock: Unlock,
    ) -> Result<(), SdkError> {
        let data = MpcData::decode(&mpc_data)
            .map_err(|error| SdkError::InvalidArgument(error.to_string()))?;
        let group = data.mpc_operation.device_group_name();
        let (unlocked, _) = self.unlock(&unlock_of(&unlock)?, Some(&group)).await?;
        self.compute(&data, &unlocked, &Expected::Any)
            .await
            .map(drop)
    }

    /// The whole wallet creation: CreateMPCWallet, key generation on this device, and the first
    /// address (checked against the device's own key).
    #[wasm_bindgen(js_name = createWallet)]
    pub async fn create_wallet(
        &self,
        unlock: CreateWalletUnlock,
        pool: Option<String>,
    ) -> Result<JsCreatedWallet, SdkError> {
        // The passcode is registered at the server for the new wallet (export and recovery
        // log in with it), so it is needed here even on a device with a passkey; unlocking with
        // it first proves it is this device's passcode, before the server does any work.
        let passcode = string_option(&unlock, "passcode").ok_or_else(|| {
            SdkError::InvalidArgument(
                "createWallet needs the passcode: it is registered at the server for export".into(),
            )
        })?;
        // No passcode change may run between this unlock and the passcode's registration for
        // the new wallet (it would register the old one).
        let _device_lock = crate::browser::WebLock::acquire(crate::keystore::DEVICE_LOCK).await?;
        let (unlocked, _) = self
            .unlock(&crate::keystore::Unlock::Passcode(passcode.clone()), None)
            .await?;
        let operation = self.create_wallet_operation(pool).await?;
        let OperationMetadata::CreateMpcWallet {
            device_group,
            mpc_wallet,
            mpc_operation,
        } = &operation.metadata
        else {
            return Err(SdkError::Untrusted(
                "CreateMPCWallet answered another kind of operation".into(),
            ));
        };
        if mpc_operation.device_group_name() != *device_group
            || mpc_wallet.pool_name() != device_group.pool_name()
        {
            return Err(SdkError::Untrusted(
                "CreateMPCWallet's operation, group and wallet do not belong together".into(),
            ));
        }
        let pending = self.pending(device_group, mpc_operation).await?;
        self.compute(&pending, &unlocked, &Expected::Keygen(device_group))
            .await?;
        let done = self
            .wait(&operation.name.to_string(), &JsValue::UNDEFINED)
            .await?;
        let Some(OperationResponse::MpcWallet(wallet)) = done.response else {
            return Err(SdkError::Untrusted(
                "the wallet operation has no wallet".into(),
            ));
        };
        if wallet.name != *mpc_wallet || wallet.device_group != *device_group {
            return Err(SdkError::Untrusted(
                "the operation made another wallet".into(),
            ));
        }
        // This device made the wallet on this group: later addresses are checked against it.
        self.store
            .remember_wallet(&mpc_wallet.to_string(), &device_group.to_string())
            .await?;
        // The wallet exists from here on: a failure to register the passcode or store the
        // archive is reported in the result, not thrown, so the app does not make a second
        // wallet. Export registers and archives later (see `archived`).
        let archived = self
            .register_and_archive(device_group, &passcode, &unlocked)
            .await
            .map_err(
                |error| serde_json::json!({ "code": error.code(), "message": error.to_string() }),
            );
        let address: Address = self
            .send(
                "POST",
                &format!("/v1/{mpc_wallet}:generateAddress"),
                Some(&GenerateAddressRequest {
                    network: DEFAULT_NETWORK.into(),
                }),
                true,
            )
            .await?;
        self.check_address(mpc_wallet, device_group, &address)
            .await?;
        let created = match archived {
            Ok(archived) => serde_json::json!({
                "wallet": wallet, "address": address, "archived": archived,
            }),
            Err(error) => serde_json::json!({
                "wallet": wallet, "address": address, "archived": false, "archiveError": error,
            }),
        };
        Ok(to_js(&created)?.into())
    }

    /// Signs a 32-byte digest (`0x` hex) with the key: CreateSignature, this device's side of
    /// the signing, and the finished signature (checked to be for this digest).
    #[wasm_bindgen(js_name = signPayload)]
    pub async fn sign_payload(
        &self,
        #[wasm_bindgen(js_name = mpcKey)] mpc_key: String,
        digest: String,
        unlock: Unlock,
    ) -> Result<JsSignature, SdkError> {
        let digest = parse_digest(&digest)?;
        let (_, resource) = self
            .sign_digest(mpc_key.parse()?, digest, None, &unlock)
            .await?;
        Ok(to_js(&resource)?.into())
    }

    /// Checks the passcode the way an operation would: on a device with a wallet, by one login
    /// at the server (a wrong passcode is counted there, like any other), else locally.
    #[wasm_bindgen(js_name = checkPasscode)]
    pub async fn check_passcode(&self, passcode: String) -> Result<(), SdkError> {
        self.unlock(&crate::keystore::Unlock::Passcode(passcode), None)
            .await
            .map(drop)
    }
}

impl WaasClient {
    /// Signs `digest` (this device's own digest of `typed_payload`, when there is one) with the
    /// key: CreateSignature, this device's side of the signing, and the signature, which the
    /// protocol checked under the device's own derivation of the key (not whatever GetOperation
    /// would say).
    async fn sign_digest(
        &self,
        key: MpcKeyName,
        digest: [u8; 32],
        typed_payload: Option<TypedPayload>,
        unlock: &Unlock,
    ) -> Result<(waas_mpc::Signature, Signature), SdkError> {
        let (unlocked, _) = self
            .unlock(&unlock_of(unlock)?, Some(&key.device_group_name()))
            .await?;
        let digest_hex = format!("0x{}", hex::encode(digest));
        // A request id of its own, so that a resend names the same operation.
        let body = CreateSignatureRequest {
            payload: Some(digest_hex.clone()),
            typed_payload,
            request_id: Some(fresh_request_id()?),
        };
        let operation: Operation = self
            .send_resending("POST", &format!("/v1/{key}/signatures"), &body)
            .await?;
        let OperationMetadata::CreateSignature { mpc_operation, .. } = &operation.metadata else {
            return Err(SdkError::Untrusted(
                "CreateSignature answered another kind of operation".into(),
            ));
        };
        let pending = self
            .pending(&key.device_group_name(), mpc_operation)
            .await?;
        let signature = self
            .compute(&pending, &unlocked, &Expected::Sign(&key, &digest_hex))
            .await?
            .ok_or_else(|| abort_text("signing produced no signature"))?;
        let bytes = signature.to_ethereum_bytes();
        let resource = Signature {
            mpc_key: key,
            payload: digest_hex,
            typed_payload: body
                .typed_payload
                .as_ref()
                .map(TypedPayloadJson::new)
                .transpose()
                .map_err(|error| SdkError::Crypto(error.to_string()))?,
            signed_payload: SignedPayload {
                r: format!("0x{}", hex::encode(signature.r)),
                s: format!("0x{}", hex::encode(signature.s)),
                v: bytes[64],
                signature: format!("0x{}", hex::encode(bytes)),
            },
        };
        Ok((signature, resource))
    }

    /// This device's name and auth key.
    async fn identity(&self) -> Result<&(waas_api::DeviceName, web_sys::CryptoKey), SdkError> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let identity = (
            self.store.device_name().await?,
            self.store.auth_key().await?,
        );
        Ok(self.identity.get_or_init(|| identity))
    }

    async fn create_wallet_operation(&self, pool: Option<String>) -> Result<Operation, SdkError> {
        let pool: PoolName = pool.as_deref().unwrap_or(DEFAULT_POOL).parse()?;
        // A request id of its own, so that a resend names the same key generation.
        let body = CreateMpcWalletRequest {
            device: self.identity().await?.0.clone(),
            request_id: Some(fresh_request_id()?),
        };
        self.send_resending("POST", &format!("/v1/{pool}/mpcWallets"), &body)
            .await
    }

    async fn list_operations(
        &self,
        group: &DeviceGroupName,
    ) -> Result<ListMpcOperationsResponse, SdkError> {
        self.send::<(), _>("GET", &format!("/v1/{group}/mpcOperations"), None, true)
            .await
    }

    /// The device's part of `mpc_operation`, from ListMPCOperations.
    async fn pending(
        &self,
        group: &DeviceGroupName,
        mpc_operation: &MpcOperationName,
    ) -> Result<MpcData, SdkError> {
        let list = self.list_operations(group).await?;
        let entry = list
            .mpc_operations
            .into_iter()
            .find(|entry| entry.name == *mpc_operation)
            .ok_or_else(|| {
                SdkError::Untrusted(format!("{mpc_operation} is not pending for this device"))
            })?;
        let data = MpcData::decode(&entry.mpc_data)
            .map_err(|error| SdkError::Untrusted(error.to_string()))?;
        if data.mpc_operation != *mpc_operation {
            return Err(SdkError::Untrusted(
                "mpcData names another operation".into(),
            ));
        }
        Ok(data)
    }

    async fn operation(&self, name: &str) -> Result<Operation, SdkError> {
        let name: waas_api::OperationName = name.parse()?;
        self.send::<(), _>("GET", &format!("/v1/{name}"), None, true)
            .await
    }

    async fn wait(&self, name: &str, options: &JsValue) -> Result<Operation, SdkError> {
        let timeout = number_option(options, "timeoutMs").unwrap_or(60_000.0);
        let interval = number_option(options, "intervalMs")
            .unwrap_or(250.0)
            .max(50.0);
        let signal = Reflect::get(options, &"signal".into()).unwrap_or(JsValue::UNDEFINED);
        let deadline = js_sys::Date::now() + timeout;
        loop {
            if Reflect::get(&signal, &"aborted".into())
                .ok()
                .and_then(|v| v.as_bool())
                == Some(true)
            {
                return Err(SdkError::Timeout("the wait was aborted".into()));
            }
            let operation = self.operation(name).await?;
            if operation.done {
                if let Some(error) = operation.error {
                    return Err(SdkError::ProtocolAbort(format!(
                        "{}: {}",
                        error_code(&error),
                        error.message
                    )));
                }
                return Ok(operation);
            }
            if js_sys::Date::now() >= deadline {
                return Err(SdkError::Timeout(format!(
                    "{name} did not finish in {} ms",
                    // Whole milliseconds: formatting an f64 would link 14 KB of float printing.
                    timeout.max(0.0) as u64
                )));
            }
            crate::browser::sleep(interval).await;
        }
    }

    /// Checks a server-supplied address: for this wallet, named by the key of its path in this
    /// group, and this device's own derivation of that path.
    async fn check_address(
        &self,
        wallet: &waas_api::MpcWalletName,
        group: &DeviceGroupName,
        address: &Address,
    ) -> Result<(), SdkError> {
        if address.mpc_wallet != *wallet {
            return Err(SdkError::Untrusted(format!(
                "the server answered with an address of {}",
                address.mpc_wallet
            )));
        }
        let path = parse_path(&address.derivation_path)
            .map_err(|error| SdkError::Untrusted(error.to_string()))?;
        let [key] = address.mpc_keys.as_slice() else {
            return Err(SdkError::Untrusted("an address has one key".into()));
        };
        if key.device_group_name() != *group
            || key_path(key).as_deref() != Some(address.derivation_path.as_str())
        {
            return Err(SdkError::Untrusted(format!(
                "{key} is not the key at {} of {group}",
                address.derivation_path
            )));
        }
        let stored =
            self.store.group(&group.to_string()).await?.ok_or_else(|| {
                SdkError::Untrusted(format!("this device has no key for {group}"))
            })?;
        let derived = waas_mpc::ExtendedPublicKey::root(stored.root_public_key, stored.chain_code)
            .derive(&path)
            .map_err(|error| SdkError::Untrusted(error.to_string()))?;
        let own = ethereum_address(&derived.public_key)
            .map_err(|error| SdkError::Untrusted(error.to_string()))?;
        if own != address.address {
            return Err(SdkError::Untrusted(format!(
                "the server says {} for {}, this device derives {own}",
                address.address, address.derivation_path
            )));
        }
        Ok(())
    }

    /// Checks that `data` is for this device, and takes the Web Lock of its group, so two tabs
    /// never run one operation twice. Returns the device's name and the held lock.
    pub(crate) async fn lock_own(
        &self,
        data: &MpcData,
    ) -> Result<(waas_api::DeviceName, crate::browser::WebLock), SdkError> {
        let device = self.identity().await?.0.clone();
        if data.device != device {
            return Err(SdkError::InvalidArgument(format!(
                "{} is for another device",
                data.mpc_operation
            )));
        }
        let group = data.mpc_operation.device_group_name();
        let lock = crate::browser::WebLock::acquire(&format!("waas-sdk/{group}")).await?;
        Ok((device, lock))
    }

    /// The device's side of one operation, under a Web Lock on its group. `expected` is what the
    /// caller asked for: the operation must be exactly that, or nothing runs. Returns the
    /// device's own signature for a signing (checked by the protocol under its own key).
    async fn compute(
        &self,
        data: &MpcData,
        unlocked: &Unlocked,
        expected: &Expected<'_>,
    ) -> Result<Option<waas_mpc::Signature>, SdkError> {
        expected.check(data)?;
        let group = data.mpc_operation.device_group_name();
        let (device, _lock) = self.lock_own(data).await?;
        match &data.protocol {
            MpcProtocol::CreateDeviceGroup => {
                if data.epoch != 0 {
                    return Err(SdkError::Untrusted(
                        "key generation starts at epoch 0".into(),
                    ));
                }
                if self.store.group(&group.to_string()).await?.is_some() {
                    // Stored, but the confirmation may not have reached the server: send it
                    // again (the server answers a repeat with its stored answer).
                    let pairing = self.store.pairing(unlocked, &group.to_string(), 0).await?;
                    self.exchange_last(&data.mpc_operation, 5, &pairing.public().confirmation())
                        .await?;
                    return Ok(None);
                }
                let context = SessionId::derive(
                    "waas-sdk keygen",
                    &[
                        data.mpc_operation.to_string().as_bytes(),
                        device.to_string().as_bytes(),
                    ],
                );
                let (mut keygen, round1) = Keygen::start_device(context).map_err(abort)?;
                let round2 = self.exchange(&data.mpc_operation, 1, &round1).await?;
                let round3 = keygen
                    .handle(&round2)
                    .map_err(abort)?
                    .reply
                    .ok_or_else(|| abort_text("no round 3"))?;
                let round4 = self.exchange(&data.mpc_operation, 3, &round3).await?;
                let pairing = keygen
                    .handle(&round4)
                    .map_err(abort)?
                    .output
                    .ok_or_else(|| abort_text("no pairing"))?;
                self.store
                    .insert_pairing(unlocked, &group.to_string(), &pairing)
                    .await?;
                self.exchange_last(&data.mpc_operation, 5, &pairing.public().confirmation())
                    .await?;
                Ok(None)
            }
            MpcProtocol::CreateSignature {
                derivation_path,
                digest,
                pairing_id,
                ..
            } => {
                let group_name = group.to_string();
                let pairing = self
                    .store
                    .pairing(unlocked, &group_name, data.epoch)
                    .await?;
                if !pairing_id
                    .eq_ignore_ascii_case(&format!("0x{}", hex::encode(pairing.public().id)))
                {
                    return Err(SdkError::Untrusted(
                        "the operation names another pairing".into(),
                    ));
                }
                let path = parse_path(derivation_path)
                    .map_err(|error| SdkError::Untrusted(error.to_string()))?;
                let digest = parse_digest(digest)?;
                let operation = data.mpc_operation.to_string();
                let request = SigningRequest {
                    operation: &operation,
                    path: &path,
                    digest,
                };
                let (mut signing, round1) =
                    Signing::start_device(&pairing, &request).map_err(abort)?;
                let result = async {
                    let round2 = self.exchange(&data.mpc_operation, 1, &round1).await?;
                    let round3 = signing
                        .handle(&pairing, &round2)
                        .map_err(abort)?
                        .reply
                        .ok_or_else(|| abort_text("no round 3"))?;
                    let round4 = self.exchange(&data.mpc_operation, 3, &round3).await?;
                    signing
                        .handle(&pairing, &round4)
                        .map_err(abort)?
                        .output
                        .ok_or_else(|| abort_text("no signature"))
                }
                .await;
                if let Err(SdkError::PairingRetired(_)) = &result {
                    // The server failed a check only a cheating peer fails: the engine forbids
                    // using this pairing again (the selective-abort attack), so it is retired
                    // before the error reaches the caller.
                    self.store.retire_pairing(&group_name, data.epoch).await?;
                }
                result.map(Some)
            }
            MpcProtocol::PrepareDeviceArchive { .. } => Err(SdkError::InvalidArgument(
                "PrepareDeviceArchive needs the passcode: use computePrepareDeviceArchiveMPCOperation"
                    .into(),
            )),
            MpcProtocol::PrepareDeviceBackup { .. } => Err(SdkError::InvalidArgument(
                "PrepareDeviceBackup needs the passcode: use computePrepareDeviceBackupMPCOperation"
                    .into(),
            )),
            _ => Err(SdkError::InvalidArgument(
                "this SDK does not run that protocol yet".into(),
            )),
        }
    }

    /// One exchange round; returns the server's reply message.
    async fn exchange(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> Result<Vec<u8>, SdkError> {
        let response = self.exchange_raw(operation, round, message).await?;
        let reply = response
            .message
            .ok_or_else(|| abort_text("the server sent no reply"))?;
        URL_SAFE_NO_PAD
            .decode(reply)
            .map_err(|_| SdkError::Untrusted("the reply is not base64url".into()))
    }

    /// The last exchange round, which has no reply message.
    async fn exchange_last(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> Result<(), SdkError> {
        let response = self.exchange_raw(operation, round, message).await?;
        if response.done {
            Ok(())
        } else {
            Err(abort_text("the server did not finish the operation"))
        }
    }

    async fn exchange_raw(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> Result<ExchangeResponse, SdkError> {
        let body = ExchangeRequest {
            round,
            message: URL_SAFE_NO_PAD.encode(message),
        };
        let path = format!("/v1/{operation}:exchange");
        // A round is idempotent at the server (a repeat gets the stored answer): a server or
        // database restarting, or a lost answer, costs a moment instead of a new operation (in
        // a recovery, a counted passcode attempt).
        let sent = self.send_resending("POST", &path, &body).await;
        sent.map_err(|error| match error {
            SdkError::Server { code, message, .. } if code == "ABORTED" => {
                SdkError::ProtocolAbort(message)
            }
            other => other,
        })
    }

    /// [`Self::send`] of a request the server treats as idempotent (an exchange round, a create
    /// with a request id), sent again a few times when it got no answer or was answered
    /// UNAVAILABLE (the server's database out of reach: nothing of it was written, or all of it).
    async fn send_resending<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, SdkError> {
        let mut sent = self.send(method, path, Some(body), true).await;
        for delay_ms in RESEND_DELAYS_MS {
            if !sent.as_ref().is_err_and(resendable) {
                break;
            }
            crate::browser::sleep(delay_ms).await;
            sent = self.send(method, path, Some(body), true).await;
        }
        sent
    }

    /// One API call: JSON body, request token, clock correction from `Date`, typed answer. A
    /// token refused for the clock is minted again once, with the corrected clock.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
        signed: bool,
    ) -> Result<T, SdkError> {
        let body = body
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| SdkError::InvalidArgument(error.to_string()))?;
        // The request itself is not generic and runs as a boxed future, so each body and answer
        // type adds only its (de)serialization, not another copy of the whole exchange.
        let answer = Box::pin(self.send_json(method, path, body, signed)).await?;
        serde_json::from_str(&answer).map_err(|error| {
            SdkError::Untrusted(format!("unexpected answer to {method} {path}: {error}"))
        })
    }

    /// One API call with a JSON body; returns the answer's JSON text.
    async fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        signed: bool,
    ) -> Result<String, SdkError> {
        let mut retried = false;
        loop {
            let mut headers = vec![("Accept", "application/json".to_owned())];
            if body.is_some() {
                headers.push(("Content-Type", "application/json".to_owned()));
            }
            if signed {
                let token = self
                    .token(method, path, body.as_deref().unwrap_or(""))
                    .await?;
                headers.push(("Authorization", format!("Bearer {token}")));
            }
            let header_refs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sent_at = js_sys::Date::now();
            let response = fetch(
                method,
                &format!("{}{path}", self.base_url),
                &header_refs,
                body.as_deref(),
            )
            .await?;
            if (200..300).contains(&response.status) {
                return Ok(response.body);
            }
            let error: Option<ErrorBody> = serde_json::from_str(&response.body).ok();
            let clock = error.as_ref().and_then(|error| error.reason.as_deref());
            if signed
                && !retried
                && matches!(clock, Some(reason::CLOCK_SKEW | reason::TOKEN_EXPIRED))
                && let Some(server_ms) = response.date_ms
            {
                // The server refused our clock: take its time (`Date` has whole seconds, so the
                // middle of that second) and mint a new token once. Only from such an answer,
                // and within a day, so a lying `Date` elsewhere cannot shift later tokens.
                let local = (sent_at + js_sys::Date::now()) / 2.0;
                let offset =
                    (server_ms + 500.0 - local).clamp(-MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS);
                self.clock_offset_ms.set(offset);
                retried = true;
                continue;
            }
            return Err(match error {
                Some(error) => server_error(error, response.status),
                None => SdkError::Server {
                    code: "UNKNOWN".into(),
                    status: response.status,
                    message: format!("{method} {path} answered HTTP {}", response.status),
                    reason: None,
                },
            });
        }
    }

    /// A request token for one request (docs/api.md).
    async fn token(&self, method: &str, path: &str, body: &str) -> Result<String, SdkError> {
        let now = ((js_sys::Date::now() + self.clock_offset_ms.get()) / 1000.0).floor() as i64;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|error| SdkError::Crypto(error.to_string()))?;
        let header = TokenHeader {
            alg: ALGORITHM.into(),
            typ: Some("JWT".into()),
        };
        let claims = RequestClaims {
            sub: self.identity().await?.0.to_string(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + MAX_TOKEN_LIFETIME_SECS,
            jti: hex::encode(jti),
            htm: method.into(),
            htu: path.into(),
            bh: URL_SAFE_NO_PAD.encode(Sha256::digest(body.as_bytes())),
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(to_json(&header)?),
            URL_SAFE_NO_PAD.encode(to_json(&claims)?)
        );
        let signature =
            subtle::sign_es256(&self.identity().await?.1, signing_input.as_bytes()).await?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// A random request id (128 bits, hex): one per call the SDK may send again.
fn fresh_request_id() -> Result<String, SdkError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|error| SdkError::Crypto(error.to_string()))?;
    Ok(hex::encode(id))
}

/// Whether a request that failed so may be sent again as it was: no answer came, or the
/// server answered `UNAVAILABLE`. Any other answer is the round's own and would come again.
fn resendable(error: &SdkError) -> bool {
    matches!(error, SdkError::Network(_) | SdkError::Unavailable { .. })
}

/// The server's URL: `''` (this page's origin), HTTPS, or plain HTTP to the loopback only (key
/// generation messages carry secret polynomial points: never over plain HTTP on a network).
fn check_base_url(base_url: &str) -> Result<(), SdkError> {
    if base_url.is_empty() || base_url.starts_with("https://") {
        return Ok(());
    }
    let authority = base_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        Ok(())
    } else {
        Err(SdkError::InvalidArgument(format!(
            "the server URL must be https:// (or http:// to localhost): {base_url}"
        )))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, SdkError> {
    serde_json::to_string(value).map_err(|error| SdkError::Crypto(error.to_string()))
}

/// A refusal as the SDK reports it: the passcode and export refusals have their own codes.
fn server_error(error: ErrorBody, status: u16) -> SdkError {
    use waas_api::passcode::reason as passcode;
    match error.reason.as_deref() {
        Some(passcode::PASSCODE_BACKOFF) => SdkError::PasscodeBackoff {
            retry_after_seconds: error.retry_after_seconds.unwrap_or(1),
        },
        Some(passcode::PASSCODE_LOCKED) => SdkError::PasscodeLocked,
        Some(passcode::EXPORT_DISABLED) => SdkError::ExportDisabled,
        // The server saw a login MAC that did not verify: the device did not hold the passcode.
        Some(passcode::WRONG_PASSCODE) => SdkError::WrongPasscode,
        // Another device changed the passcode meanwhile (e.g. a reset ended a recovery).
        Some(passcode::PASSCODE_CHANGED) => SdkError::PasscodeChangedElsewhere(error.message),
        // This device's own requests are refused: it was revoked (only it is told so).
        Some(reason::DEVICE_REVOKED) => SdkError::DeviceRevoked,
        // The server's database is restarting or out of reach: the same call goes through later.
        _ if error.code == ErrorCode::Unavailable => SdkError::Unavailable {
            retry_after_seconds: error.retry_after_seconds.unwrap_or(1),
            message: error.message,
        },
        reason => SdkError::Server {
            code: error_code(&error),
            status,
            message: error.message,
            reason: reason.map(str::to_owned),
        },
    }
}

fn error_code(error: &ErrorBody) -> String {
    serde_json::to_value(error.code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| "UNKNOWN".into())
}

fn parse_digest(digest: &str) -> Result<[u8; 32], SdkError> {
    let mut bytes = [0u8; 32];
    digest
        .strip_prefix("0x")
        .and_then(|hex_digits| hex::decode_to_slice(hex_digits, &mut bytes).ok())
        .ok_or_else(|| SdkError::InvalidArgument("a digest is 0x and 64 hex digits".into()))?;
    Ok(bytes)
}

/// An engine error as the SDK reports it: a terminal one (the peer provably cheated) retires
/// the pairing (see `compute`).
fn abort(error: waas_mpc::MpcError) -> SdkError {
    if error.is_terminal() {
        SdkError::PairingRetired(error.to_string())
    } else {
        SdkError::ProtocolAbort(error.to_string())
    }
}

/// What the caller asked a computation to be; anything else is refused before it runs.
enum Expected<'a> {
    /// Whatever `mpcData` says (`computeMPCOperation`, as in the WaaS SDKs), if it is coherent.
    Any,
    /// Key generation of this group (`createWallet`).
    Keygen(&'a DeviceGroupName),
    /// A signature of this digest with this key (`signPayload`).
    Sign(&'a MpcKeyName, &'a str),
}

impl Expected<'_> {
    fn check(&self, data: &MpcData) -> Result<(), SdkError> {
        let group = data.mpc_operation.device_group_name();
        // Always: a signing names a key of the operation's own group, at the path the key's
        // name says, so the pairing used and the key signed under are the key named.
        if let MpcProtocol::CreateSignature {
            mpc_key,
            derivation_path,
            ..
        } = &data.protocol
        {
            if mpc_key.device_group_name() != group {
                return Err(SdkError::Untrusted(format!(
                    "{} signs with {mpc_key}, a key of another group",
                    data.mpc_operation
                )));
            }
            if key_path(mpc_key).as_deref() != Some(derivation_path.as_str()) {
                return Err(SdkError::Untrusted(format!(
                    "{mpc_key} is not at path {derivation_path}"
                )));
            }
        }
        let matches = match (self, &data.protocol) {
            (Self::Any, _) => true,
            (Self::Keygen(expected), MpcProtocol::CreateDeviceGroup) => **expected == group,
            (
                Self::Sign(key, digest),
                MpcProtocol::CreateSignature {
                    mpc_key,
                    digest: asked,
                    ..
                },
            ) => mpc_key == *key && asked.eq_ignore_ascii_case(digest),
            _ => false,
        };
        if matches {
            Ok(())
        } else {
            Err(SdkError::Untrusted(format!(
                "{} is not the operation this call asked for",
                data.mpc_operation
            )))
        }
    }
}

/// The derivation path a key's name encodes: `m-0-5` is `0/5` (the server names keys so).
fn key_path(key: &MpcKeyName) -> Option<String> {
    let id = key.mpc_key().as_str();
    let rest = id.strip_prefix('m')?;
    if rest.is_empty() {
        return Some(String::new());
    }
    let indices: Vec<&str> = rest.strip_prefix('-')?.split('-').collect();
    indices
        .iter()
        .all(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .then(|| indices.join("/"))
}

fn abort_text(text: &str) -> SdkError {
    SdkError::ProtocolAbort(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's reading of a server's error answer with `code` (and HTTP status 503).
    fn answered(code: ErrorCode, retry_after_seconds: Option<u64>) -> SdkError {
        let mut body = ErrorBody::new(code, "m");
        body.retry_after_seconds = retry_after_seconds;
        server_error(body, 503)
    }

    #[test]
    fn unavailable_is_its_own_error_with_when_to_retry() {
        let error = answered(ErrorCode::Unavailable, Some(2));
        assert_eq!(error.code(), "UNAVAILABLE");
        assert!(matches!(
            error,
            SdkError::Unavailable {
                retry_after_seconds: 2,
                ..
            }
        ));
        let error = answered(ErrorCode::Unavailable, None);
        assert!(matches!(
            error,
            SdkError::Unavailable {
                retry_after_seconds: 1,
                ..
            }
        ));
        assert_eq!(answered(ErrorCode::Internal, None).code(), "SERVER");
    }

    #[test]
    fn an_exchange_is_sent_again_without_an_answer_or_when_unavailable_only() {
        assert!(resendable(&SdkError::Network("refused".into())));
        assert!(resendable(&answered(ErrorCode::Unavailable, None)));
        assert!(!resendable(&answered(ErrorCode::Internal, None)));
        assert!(!resendable(&answered(ErrorCode::FailedPrecondition, None)));
        assert!(!resendable(&SdkError::ProtocolAbort("check".into())));
        assert!(!resendable(&SdkError::DeviceRevoked));
    }
}
