//! The native test device: its keys, its registration, a typed helper for every route, and its
//! side of key generation and signing, driven over HTTP exactly as the browser SDK will.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey;
use waas_api::resources::{
    Address, CreateMpcKeyRequest, CreateMpcWalletRequest, CreatePoolRequest,
    CreateSignatureRequest, Device, DeviceGroup, ExchangeRequest, ExchangeResponse,
    GenerateAddressRequest, ListAddressesResponse, ListMpcOperationsResponse, MpcData, MpcKey,
    MpcOperation, MpcProtocol, MpcWallet, Operation, OperationMetadata, OperationResponse, Pool,
    RegisterDeviceRequest, Signature, TypedPayload,
};
use waas_api::{
    DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName, MpcWalletName, OperationName,
    PasscodeLoginName, PoolName, RegistrationData,
};
use waas_mpc::{Keygen, Pairing, SessionId, Signing, SigningRequest};

use super::client::{Auth, Call, Client, Raw, Signer, b64};
use super::default_pool;
use super::eth::{hex0x, hex32};
use super::route::Route;
use super::server::DevApiKey;

/// A secret from 32 random bytes, drawn again in the (negligible) case they are not a valid scalar.
fn random_secret<T>(parse: impl Fn(&[u8]) -> Option<T>) -> T {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        if let Some(key) = parse(&bytes) {
            return key;
        }
    }
}

/// A device's two keys: P-256 to sign requests, secp256k1 for archives.
#[derive(Clone)]
pub struct DeviceKeys {
    /// Signs every request (ES256).
    pub auth: p256::ecdsa::SigningKey,
    /// The server encrypts archives to it.
    pub archive: k256::ecdsa::SigningKey,
}

impl DeviceKeys {
    /// Fresh keys.
    pub fn random() -> Self {
        Self {
            auth: random_secret(|b| p256::ecdsa::SigningKey::from_slice(b).ok()),
            archive: random_secret(|b| k256::ecdsa::SigningKey::from_slice(b).ok()),
        }
    }

    /// Both public keys with both proofs of possession.
    pub fn registration_data(&self) -> RegistrationData {
        let auth_public_key: [u8; 65] = self
            .auth
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .try_into()
            .unwrap();
        let archive_public_key: [u8; 33] = self
            .archive
            .verifying_key()
            .to_sec1_point(true)
            .as_bytes()
            .try_into()
            .unwrap();
        let signed = RegistrationData::signed_bytes(&auth_public_key, &archive_public_key);
        let auth_proof: p256::ecdsa::Signature = self.auth.sign(&signed);
        // k256's `Signer` hashes with SHA-256 first, as the format asks.
        let archive_proof: k256::ecdsa::Signature = self.archive.sign(&signed);
        RegistrationData {
            auth_public_key,
            archive_public_key,
            auth_proof: auth_proof.to_bytes().into(),
            archive_proof: archive_proof.to_bytes().into(),
        }
    }

    /// The RegisterDevice body.
    pub fn register_request(&self) -> RegisterDeviceRequest {
        RegisterDeviceRequest {
            registration_data: self.registration_data().encode(),
        }
    }
}

/// A wallet the device finished key generation for.
pub struct Wallet {
    /// The wallet as GetOperation returned it.
    pub wallet: MpcWallet,
    /// Its device group.
    pub device_group: DeviceGroupName,
    /// The CreateMPCWallet operation.
    pub operation: OperationName,
    /// The device's half of the key.
    pub pairing: Arc<Pairing>,
}

/// A finished signing, as both sides saw it.
pub struct Signed {
    /// GetOperation after the last round: done, with the signature.
    pub operation: Operation,
    /// The signature in the operation's response.
    pub signature: Signature,
    /// What the device's session produced.
    pub device: waas_mpc::Signature,
    /// The path the server asked the device to sign under.
    pub derivation_path: Vec<u32>,
}

/// RevokeDevice of `device` by whoever `client` signs as, with a step-up login or none; built
/// but not sent.
pub fn revoke_call<'a>(
    client: &'a Client,
    device: &DeviceName,
    login: Option<&PasscodeLoginName>,
) -> Call<'a> {
    client
        .post("/v1/device:revoke")
        .json(&waas_api::resources::RevokeDeviceRequest {
            name: device.clone(),
            login: login.cloned(),
        })
}

/// The decoded reply of an exchange, panicking with the request if there is none.
pub fn reply(response: &ExchangeResponse, round: u8) -> Vec<u8> {
    assert_eq!(response.round, Some(round), "{response:?}");
    let message = response
        .message
        .as_deref()
        .unwrap_or_else(|| panic!("no message in {response:?}"));
    URL_SAFE_NO_PAD.decode(message).unwrap()
}

/// `/v1/{name}`.
fn v1(name: impl std::fmt::Display) -> String {
    format!("/v1/{name}")
}

/// CreateMPCWallet in `pool` for `device`, by whoever `client` signs as (the device itself or an
/// API key), built but not sent.
fn create_wallet_call<'a>(
    client: &'a Client,
    pool: &PoolName,
    device: &DeviceName,
    request_id: Option<&str>,
) -> Call<'a> {
    client
        .post(format!("{}/mpcWallets", v1(pool)))
        .json(&CreateMpcWalletRequest {
            device: device.clone(),
            request_id: request_id.map(str::to_owned),
        })
}

/// A registered device.
pub struct TestDevice {
    /// `devices/{id}`.
    pub name: DeviceName,
    /// Its keys.
    pub keys: DeviceKeys,
    /// Signs as this device.
    pub client: Client,
}

impl TestDevice {
    /// Makes fresh keys and registers them.
    pub async fn register(route: Route) -> Self {
        let keys = DeviceKeys::random();
        let device: Device = Client::new(route.clone(), None)
            .post("/v1/device:register")
            .json(&keys.register_request())
            .ok()
            .await;
        let client = Client::new(
            route,
            Some(Signer::new(keys.auth.clone(), device.name.to_string())),
        );
        Self {
            name: device.name,
            keys,
            client,
        }
    }

    /// RegisterDevice again with the same keys (unauthenticated).
    pub async fn register_again(&self) -> Raw {
        self.client
            .post("/v1/device:register")
            .auth(Auth::None)
            .json(&self.keys.register_request())
            .send()
            .await
    }

    /// GetDevice.
    pub async fn get_device(&self) -> Device {
        self.client.get(v1(&self.name)).ok().await
    }

    /// GetPool.
    pub async fn get_pool(&self, pool: &PoolName) -> Pool {
        self.client.get(v1(pool)).ok().await
    }

    /// CreateMPCWallet for this device (self-service), built but not sent, for tests that expect
    /// a refusal.
    pub fn create_wallet_call(&self, pool: &PoolName, request_id: Option<&str>) -> Call<'_> {
        create_wallet_call(&self.client, pool, &self.name, request_id)
    }

    /// CreateMPCWallet for this device (self-service): the operation, not done yet.
    pub async fn create_wallet_operation(
        &self,
        pool: &PoolName,
        request_id: Option<&str>,
    ) -> Operation {
        self.create_wallet_call(pool, request_id).ok().await
    }

    /// GetOperation.
    pub async fn get_operation(&self, operation: &OperationName) -> Operation {
        self.client.get(v1(operation)).ok().await
    }

    /// GetMPCWallet.
    pub async fn get_wallet(&self, wallet: &MpcWalletName) -> MpcWallet {
        self.client.get(v1(wallet)).ok().await
    }

    /// GenerateAddress, built but not sent (`network` None: the body names none, the server's
    /// default applies), for tests that expect a refusal.
    pub fn generate_address_call(&self, wallet: &MpcWalletName, network: Option<&str>) -> Call<'_> {
        let call = self.client.post(format!("{}:generateAddress", v1(wallet)));
        match network {
            Some(network) => call.json(&GenerateAddressRequest {
                network: network.to_owned(),
            }),
            None => call.json(&serde_json::json!({})),
        }
    }

    /// GenerateAddress (`network` None: the server's default).
    pub async fn generate_address(&self, wallet: &MpcWalletName, network: Option<&str>) -> Address {
        self.generate_address_call(wallet, network).ok().await
    }

    /// ListAddresses.
    pub async fn list_addresses(&self, wallet: &MpcWalletName) -> Vec<Address> {
        let list: ListAddressesResponse = self
            .client
            .get(format!("{}/addresses", v1(wallet)))
            .ok()
            .await;
        list.addresses
    }

    /// GetAddress.
    pub async fn get_address(&self, wallet: &MpcWalletName, address: &str) -> Address {
        self.client
            .get(format!("{}/addresses/{address}", v1(wallet)))
            .ok()
            .await
    }

    /// GetDeviceGroup.
    pub async fn get_device_group(&self, group: &DeviceGroupName) -> DeviceGroup {
        self.client.get(v1(group)).ok().await
    }

    /// ListMPCOperations: the device's pending work in `group`.
    pub async fn list_mpc_operations(&self, group: &DeviceGroupName) -> Vec<MpcOperation> {
        let list: ListMpcOperationsResponse = self
            .client
            .get(format!("{}/mpcOperations", v1(group)))
            .ok()
            .await;
        list.mpc_operations
    }

    /// The pending MPC operation `name`, from ListMPCOperations of its group.
    pub async fn find_mpc_operation(&self, name: &MpcOperationName) -> MpcOperation {
        let pending = self.list_mpc_operations(&name.device_group_name()).await;
        let names: Vec<String> = pending.iter().map(|op| op.name.to_string()).collect();
        pending
            .into_iter()
            .find(|op| &op.name == name)
            .unwrap_or_else(|| panic!("{name} is not among the pending operations {names:?}"))
    }

    /// CreateMPCKey, built but not sent, for tests that expect a refusal.
    pub fn create_mpc_key_call(&self, group: &DeviceGroupName, path: &str) -> Call<'_> {
        self.client
            .post(format!("{}/mpcKeys", v1(group)))
            .json(&CreateMpcKeyRequest {
                derivation_path: path.to_owned(),
            })
    }

    /// CreateMPCKey.
    pub async fn create_mpc_key(&self, group: &DeviceGroupName, path: &str) -> MpcKey {
        self.create_mpc_key_call(group, path).ok().await
    }

    /// GetMPCKey.
    pub async fn get_mpc_key(&self, key: &MpcKeyName) -> MpcKey {
        self.client.get(v1(key)).ok().await
    }

    /// CreateSignature, built but not sent, for tests that expect a refusal.
    pub fn create_signature_call(
        &self,
        key: &MpcKeyName,
        digest: &[u8; 32],
        request_id: Option<&str>,
    ) -> Call<'_> {
        self.client
            .post(format!("{}/signatures", v1(key)))
            .json(&CreateSignatureRequest {
                payload: Some(hex0x(digest)),
                typed_payload: None,
                request_id: request_id.map(str::to_owned),
            })
    }

    /// CreateSignature of a typed payload, with the caller's digest of it or none, built but not
    /// sent.
    pub fn create_typed_signature_call(
        &self,
        key: &MpcKeyName,
        typed_payload: &TypedPayload,
        digest: Option<&[u8; 32]>,
        request_id: Option<&str>,
    ) -> Call<'_> {
        self.client
            .post(format!("{}/signatures", v1(key)))
            .json(&CreateSignatureRequest {
                payload: digest.map(|digest| hex0x(digest)),
                typed_payload: Some(typed_payload.clone()),
                request_id: request_id.map(str::to_owned),
            })
    }

    /// CreateSignature: the operation, not done yet.
    pub async fn create_signature_operation(
        &self,
        key: &MpcKeyName,
        digest: &[u8; 32],
        request_id: Option<&str>,
    ) -> Operation {
        self.create_signature_call(key, digest, request_id)
            .ok()
            .await
    }

    /// One exchange, built but not sent (negative tests send it between two database dumps).
    pub fn exchange_call(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> Call<'_> {
        self.client
            .post(format!("{}:exchange", v1(operation)))
            .json(&ExchangeRequest {
                round,
                message: b64(message),
            })
    }

    /// One exchange, any answer.
    pub async fn exchange(&self, operation: &MpcOperationName, round: u8, message: &[u8]) -> Raw {
        self.exchange_call(operation, round, message).send().await
    }

    /// One exchange that must succeed.
    pub async fn exchange_ok(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> ExchangeResponse {
        self.exchange(operation, round, message).await.ok()
    }

    /// The key-generation context both sides derive from the operation and the device.
    pub fn keygen_context(&self, operation: &MpcOperationName) -> SessionId {
        SessionId::derive(
            "waas-sdk keygen",
            &[
                operation.to_string().as_bytes(),
                self.name.to_string().as_bytes(),
            ],
        )
    }

    /// Checks that `operation` asks this device for key generation on epoch 0, and starts it:
    /// the device's session and its round-1 message.
    pub fn start_keygen(&self, operation: &MpcOperation) -> (Keygen, Vec<u8>) {
        let data = MpcData::decode(&operation.mpc_data).unwrap();
        assert_eq!(data.mpc_operation, operation.name, "{data:?}");
        assert_eq!(data.device, self.name, "{data:?}");
        assert_eq!(data.epoch, 0, "{data:?}");
        assert_eq!(data.protocol, MpcProtocol::CreateDeviceGroup, "{data:?}");
        Keygen::start_device(self.keygen_context(&operation.name)).unwrap()
    }

    /// After key generation: GetOperation must be done with the wallet of its metadata.
    pub async fn finished_wallet(&self, operation: &Operation, pairing: Pairing) -> Wallet {
        let OperationMetadata::CreateMpcWallet {
            device_group,
            mpc_wallet,
            ..
        } = &operation.metadata
        else {
            panic!("not a CreateMPCWallet operation: {operation:?}")
        };
        let done = self.get_operation(&operation.name).await;
        assert!(done.done && done.error.is_none(), "{done:?}");
        let Some(OperationResponse::MpcWallet(wallet)) = done.response else {
            panic!("no wallet in {done:?}")
        };
        assert_eq!(&wallet.name, mpc_wallet, "{wallet:?}");
        assert_eq!(&wallet.device_group, device_group, "{wallet:?}");
        Wallet {
            wallet,
            device_group: device_group.clone(),
            operation: operation.name.clone(),
            pairing: Arc::new(pairing),
        }
    }

    /// Runs key generation for an operation someone created for this device (itself or an API
    /// key) to the end: rounds 1 and 3, then the confirmation (round 5, the pairing id).
    pub async fn complete_wallet(&self, operation: &Operation) -> Wallet {
        assert!(!operation.done, "{operation:?}");
        let mut started = self.begin_keygen_of(operation).await;
        let round3 = started.send_round1(self).await;
        let response = self.exchange_ok(&started.op, 3, &round3).await;
        assert!(!response.done, "done before the confirmation: {response:?}");
        let step = started.keygen.handle(&reply(&response, 4)).unwrap();
        assert!(
            step.reply.is_none(),
            "the device sends nothing after round 4"
        );
        let pairing = step.output.unwrap();
        let confirmed = self
            .exchange_ok(&started.op, 5, &pairing.public().confirmation())
            .await;
        assert!(
            confirmed.done,
            "the confirmation must finish: {confirmed:?}"
        );
        self.finished_wallet(operation, pairing).await
    }

    /// CreateMPCWallet in `pool` and key generation to the end.
    pub async fn create_wallet(&self, pool: &PoolName) -> Wallet {
        let operation = self.create_wallet_operation(pool, None).await;
        self.complete_wallet(&operation).await
    }

    /// A wallet in the default pool and its first address (0/0): where most signing tests start.
    pub async fn create_wallet_and_address(&self) -> (Wallet, Address) {
        let wallet = self.create_wallet(&default_pool()).await;
        let address = self.generate_address(&wallet.wallet.name, None).await;
        (wallet, address)
    }

    /// Asserts that ListMPCOperations of `group` is empty: no work is left for the device.
    pub async fn assert_nothing_pending(&self, group: &DeviceGroupName, why: &str) {
        let open = self.list_mpc_operations(group).await;
        assert!(open.is_empty(), "{why}; still pending: {open:?}");
    }

    /// Checks that `operation` asks this device to sign exactly `digest` with `key` under its
    /// pairing and epoch (the device's own policy: sign only what it asked for), and starts the
    /// session: the session, its round-1 message, and the derivation path.
    pub fn start_signing(
        &self,
        operation: &MpcOperation,
        pairing: &Pairing,
        key: &MpcKeyName,
        digest: &[u8; 32],
    ) -> (Signing, Vec<u8>, Vec<u32>) {
        let data = MpcData::decode(&operation.mpc_data).unwrap();
        assert_eq!(data.mpc_operation, operation.name, "{data:?}");
        assert_eq!(data.device, self.name, "{data:?}");
        assert_eq!(data.epoch, pairing.epoch(), "{data:?}");
        let MpcProtocol::CreateSignature {
            mpc_key,
            derivation_path,
            digest: asked,
            pairing_id,
            ..
        } = &data.protocol
        else {
            panic!("not a signing: {data:?}")
        };
        assert_eq!(mpc_key, key, "{data:?}");
        assert_eq!(&hex32(asked), digest, "{data:?}");
        assert_eq!(pairing_id, &hex0x(&pairing.public().id), "{data:?}");
        let path = waas_mpc::parse_path(derivation_path).unwrap();
        let name = operation.name.to_string();
        let request = SigningRequest {
            operation: &name,
            path: &path,
            digest: *digest,
        };
        let (session, round1) = Signing::start_device(pairing, &request).unwrap();
        (session, round1, path)
    }

    /// After signing: GetOperation must be done with the signature the device computed too.
    pub async fn finished_signature(
        &self,
        operation: &OperationName,
        device: waas_mpc::Signature,
        derivation_path: Vec<u32>,
    ) -> Signed {
        let done = self.get_operation(operation).await;
        assert!(done.done && done.error.is_none(), "{done:?}");
        let Some(OperationResponse::Signature(signature)) = done.response.clone() else {
            panic!("no signature in {done:?}")
        };
        let signed = &signature.signed_payload;
        assert_eq!(
            (
                signed.r.as_str(),
                signed.s.as_str(),
                signed.v,
                signed.signature.as_str()
            ),
            (
                hex0x(&device.r).as_str(),
                hex0x(&device.s).as_str(),
                27 + device.recovery_id,
                hex0x(&device.to_ethereum_bytes()).as_str()
            ),
            "the server's signature differs from the device's"
        );
        Signed {
            operation: done,
            signature,
            device,
            derivation_path,
        }
    }

    /// Runs the device's side of a CreateSignature operation to the end.
    pub async fn complete_signature(
        &self,
        pairing: &Pairing,
        operation: &Operation,
        digest: &[u8; 32],
    ) -> Signed {
        let mut started = self.begin_signing_of(pairing, operation, digest).await;
        let round3 = started.send_round1(self, pairing).await;
        let response = self.exchange_ok(&started.op, 3, &round3).await;
        assert!(
            response.done,
            "the server finishes at round 3: {response:?}"
        );
        started.finish(self, pairing, &response).await
    }

    /// CreateSignature of `digest` with `key` and signing to the end.
    pub async fn sign(&self, pairing: &Pairing, key: &MpcKeyName, digest: &[u8; 32]) -> Signed {
        let operation = self.create_signature_operation(key, digest, None).await;
        assert!(!operation.done, "{operation:?}");
        self.complete_signature(pairing, &operation, digest).await
    }
}

/// A client that signs with the dev API key.
pub struct ApiKeyClient {
    /// `apiKeys/dev`.
    pub name: String,
    /// Signs as the API key.
    pub client: Client,
}

impl ApiKeyClient {
    /// From the dev API key file.
    pub fn new(route: Route, key: &DevApiKey) -> Self {
        let signing_key = p256::ecdsa::SigningKey::from_pkcs8_pem(&key.private_key).unwrap();
        Self {
            name: key.name.clone(),
            client: Client::new(route, Some(Signer::new(signing_key, key.name.clone()))),
        }
    }

    /// CreatePool (export on, the default).
    pub async fn create_pool(&self, pool_id: &str, display_name: &str) -> Pool {
        self.create_pool_with(pool_id, display_name, true).await
    }

    /// CreatePool with export on or off.
    pub async fn create_pool_with(
        &self,
        pool_id: &str,
        display_name: &str,
        export_enabled: bool,
    ) -> Pool {
        self.client
            .post("/v1/pools")
            .json(&CreatePoolRequest {
                pool_id: pool_id.to_owned(),
                display_name: display_name.to_owned(),
                export_enabled,
            })
            .ok()
            .await
    }

    /// GetPool.
    pub async fn get_pool(&self, pool: &PoolName) -> Pool {
        self.client.get(v1(pool)).ok().await
    }

    /// CreateMPCWallet for `device`, built but not sent, for tests that expect a refusal.
    pub fn create_wallet_call(
        &self,
        pool: &PoolName,
        device: &DeviceName,
        request_id: Option<&str>,
    ) -> Call<'_> {
        create_wallet_call(&self.client, pool, device, request_id)
    }

    /// CreateMPCWallet for `device`.
    pub async fn create_wallet_operation(
        &self,
        pool: &PoolName,
        device: &DeviceName,
        request_id: Option<&str>,
    ) -> Operation {
        self.create_wallet_call(pool, device, request_id).ok().await
    }

    /// GetOperation.
    pub async fn get_operation(&self, operation: &OperationName) -> Operation {
        self.client.get(v1(operation)).ok().await
    }
}
