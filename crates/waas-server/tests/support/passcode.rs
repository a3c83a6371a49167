//! The test device's side of the passcode (OPAQUE, docs/protocol/passcode.md) and of the device
//! archive (docs/protocol/archive.md), driven over HTTP as the browser SDK does: the client
//! steps of `waas_mpc::passcode` and `waas_mpc::open_server_share` with the device's own archive
//! key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::export::{ExportMetadata, PrepareDeviceArchiveRequest};
use waas_api::passcode::{
    PasscodeLoginFinishRequest, PasscodeLoginFinishResponse, PasscodeLoginStartRequest,
    PasscodeLoginStartResponse, PasscodeRegisterFinishRequest, PasscodeRegisterFinishResponse,
    PasscodeRegisterStartRequest, PasscodeRegisterStartResponse, PasscodeReset, purpose,
};
use waas_api::resources::{
    DeviceArchive, MpcData, MpcOperation, MpcProtocol, Operation, OperationMetadata,
    OperationResponse,
};
use waas_api::{DeviceGroupName, MpcOperationName, PasscodeLoginName};
use waas_mpc::passcode::{
    ClientLogin, ClientRegistration, LoginKeys, PasscodeContext, PasscodeError,
};
use waas_mpc::{Archive, ArchiveContext, Pairing, open_server_share};

use super::ApiKeyClient;
use super::client::{Call, Raw, b64, sha256};
use super::device::{TestDevice, reply};
use super::eth::hex0x;

/// The passcode most tests register.
pub const PASSCODE: &[u8] = b"123456";

/// `passcode:{verb}` of a group, built but not sent.
fn passcode_call<'a>(
    device: &'a TestDevice,
    group: &DeviceGroupName,
    verb: &str,
    body: &impl serde::Serialize,
) -> Call<'a> {
    device
        .client
        .post(format!("/v1/{group}/passcode:{verb}"))
        .json(body)
}

/// The OPAQUE context of a group: its name (the client identity). The server's identity is its
/// OPAQUE public key, whatever its `--audience`.
fn context(group: &str) -> PasscodeContext<'_> {
    PasscodeContext {
        device_group: group,
    }
}

/// A registration the device has started: its request is ready, nothing is sent yet.
pub struct StartedRegistration {
    /// The device's OPAQUE state.
    pub client: ClientRegistration,
    /// The RegistrationRequest.
    pub request: Vec<u8>,
    /// The passcode being registered.
    pub passcode: Vec<u8>,
}

/// A login the device has started (loginStart answered), not finished yet.
pub struct StartedLogin {
    /// The device's OPAQUE state.
    pub client: ClientLogin,
    /// The server's answer: the login's name and its CredentialResponse.
    pub response: PasscodeLoginStartResponse,
    /// The passcode the device tries.
    pub passcode: Vec<u8>,
}

/// A login the device finished: its name and what it gave the device.
pub struct Login {
    /// `…/passcodeLogins/{id}`.
    pub name: PasscodeLoginName,
    /// The session secret (shared with the server) and the export key (the device's alone).
    pub keys: LoginKeys,
}

impl Login {
    /// A reset's authorization of `message` for `purpose`.
    pub fn reset(&self, purpose: &str, message: &[u8]) -> PasscodeReset {
        PasscodeReset {
            login: self.name.clone(),
            authorization: b64(&self.keys.session.authorize(purpose, message)),
        }
    }
}

/// An archive the device opened: the operation's round-2 answer and what it holds.
pub struct Opened {
    /// The whole key, checked by `open_server_share`.
    pub archive: Archive,
    /// The sealed share as the server sent it.
    pub sealed: Vec<u8>,
    /// The round-1 answer, raw, to compare with repeats.
    pub answer: Raw,
}

impl StartedLogin {
    /// The device's finish: its CredentialFinalization and keys, or `WrongPasscode`.
    pub fn finish(self, group: &DeviceGroupName) -> Result<(Vec<u8>, Login), PasscodeError> {
        let response = URL_SAFE_NO_PAD
            .decode(&self.response.credential_response)
            .unwrap();
        let group_text = group.to_string();
        let (finalization, keys) =
            self.client
                .finish(&self.passcode, &response, &context(&group_text))?;
        Ok((
            finalization,
            Login {
                name: self.response.login,
                keys,
            },
        ))
    }
}

impl TestDevice {
    /// `passcode:registerStart`, built but not sent.
    pub fn register_start_call(
        &self,
        group: &DeviceGroupName,
        request: &[u8],
        reset: Option<PasscodeReset>,
    ) -> Call<'_> {
        passcode_call(
            self,
            group,
            "registerStart",
            &PasscodeRegisterStartRequest {
                registration_request: b64(request),
                reset,
            },
        )
    }

    /// `passcode:registerFinish`, built but not sent.
    pub fn register_finish_call(
        &self,
        group: &DeviceGroupName,
        upload: &[u8],
        reset: Option<PasscodeReset>,
    ) -> Call<'_> {
        passcode_call(
            self,
            group,
            "registerFinish",
            &PasscodeRegisterFinishRequest {
                registration_upload: b64(upload),
                reset,
            },
        )
    }

    /// `passcode:loginStart`, built but not sent.
    pub fn login_start_call(&self, group: &DeviceGroupName, request: &[u8]) -> Call<'_> {
        passcode_call(
            self,
            group,
            "loginStart",
            &PasscodeLoginStartRequest {
                credential_request: b64(request),
            },
        )
    }

    /// `passcode:loginFinish`, built but not sent.
    pub fn login_finish_call(
        &self,
        group: &DeviceGroupName,
        login: &PasscodeLoginName,
        finalization: &[u8],
    ) -> Call<'_> {
        passcode_call(
            self,
            group,
            "loginFinish",
            &PasscodeLoginFinishRequest {
                login: login.clone(),
                credential_finalization: b64(finalization),
            },
        )
    }

    /// The device blinds `passcode` for a registration (nothing is sent).
    pub fn start_registration(&self, passcode: &[u8]) -> StartedRegistration {
        let (client, request) = ClientRegistration::start(passcode).unwrap();
        StartedRegistration {
            client,
            request,
            passcode: passcode.to_vec(),
        }
    }

    /// registerStart, which must be answered (with `reset`'s authorization of the request, if
    /// given), and the device's upload, not sent. Returns the passcode and the upload.
    pub async fn registration_upload(
        &self,
        group: &DeviceGroupName,
        started: StartedRegistration,
        reset: Option<&Login>,
    ) -> (Vec<u8>, Vec<u8>) {
        let StartedRegistration {
            client,
            request,
            passcode,
        } = started;
        let start_reset = reset.map(|login| login.reset(purpose::RESET_START, &request));
        let answer: PasscodeRegisterStartResponse = self
            .register_start_call(group, &request, start_reset)
            .ok()
            .await;
        let response = URL_SAFE_NO_PAD
            .decode(&answer.registration_response)
            .unwrap();
        let group_text = group.to_string();
        let (upload, _export_key) = client
            .finish(&passcode, &response, &context(&group_text))
            .unwrap();
        (passcode, upload)
    }

    /// A whole registration: [`Self::registration_upload`], then registerFinish (with `reset`'s
    /// authorization of the upload). Returns the record version.
    pub async fn finish_registration(
        &self,
        group: &DeviceGroupName,
        started: StartedRegistration,
        reset: Option<&Login>,
    ) -> u64 {
        let (_, upload) = self.registration_upload(group, started, reset).await;
        let finish_reset = reset.map(|login| login.reset(purpose::RESET_FINISH, &upload));
        let done: PasscodeRegisterFinishResponse = self
            .register_finish_call(group, &upload, finish_reset)
            .ok()
            .await;
        done.version
    }

    /// The group's first passcode registration; returns the record version (1).
    pub async fn register_passcode(&self, group: &DeviceGroupName, passcode: &[u8]) -> u64 {
        let started = self.start_registration(passcode);
        self.finish_registration(group, started, None).await
    }

    /// A new passcode, authorized by `login` (a fresh login of the old one); returns the new
    /// record version.
    pub async fn reset_passcode(
        &self,
        group: &DeviceGroupName,
        login: &Login,
        new_passcode: &[u8],
    ) -> u64 {
        let started = self.start_registration(new_passcode);
        self.finish_registration(group, started, Some(login)).await
    }

    /// loginStart with `passcode`, any answer, and the device's state if it was answered.
    pub async fn try_login_start(
        &self,
        group: &DeviceGroupName,
        passcode: &[u8],
    ) -> (Raw, Option<StartedLogin>) {
        let (client, request) = ClientLogin::start(passcode).unwrap();
        let raw = self.login_start_call(group, &request).send().await;
        let started = (raw.status == 200).then(|| StartedLogin {
            client,
            response: raw.json(),
            passcode: passcode.to_vec(),
        });
        (raw, started)
    }

    /// loginStart with `passcode`, which must be answered.
    pub async fn login_start(&self, group: &DeviceGroupName, passcode: &[u8]) -> StartedLogin {
        let (raw, started) = self.try_login_start(group, passcode).await;
        started.unwrap_or_else(|| panic!("loginStart refused:\n{raw:?}"))
    }

    /// A whole login with the right passcode: loginStart, the device's finish, loginFinish.
    pub async fn login(&self, group: &DeviceGroupName, passcode: &[u8]) -> Login {
        let started = self.login_start(group, passcode).await;
        let (finalization, login) = started.finish(group).unwrap();
        let finished: PasscodeLoginFinishResponse = self
            .login_finish_call(group, &login.name, &finalization)
            .ok()
            .await;
        assert_eq!(finished.login, login.name);
        login
    }

    /// PrepareDeviceArchive for this device, built but not sent.
    pub fn prepare_archive_call(&self, group: &DeviceGroupName) -> Call<'_> {
        prepare_archive_call(&self.client, group, self)
    }

    /// PrepareDeviceArchive for this device: the operation, not done.
    pub async fn prepare_archive(&self, group: &DeviceGroupName) -> Operation {
        let operation: Operation = self.prepare_archive_call(group).ok().await;
        assert!(!operation.done, "{operation:?}");
        operation
    }

    /// This device's archive operations listed in `group`, oldest first, each checked: for this
    /// device, on `pairing`'s id and epoch.
    pub async fn archive_operations(
        &self,
        group: &DeviceGroupName,
        pairing: &Pairing,
    ) -> Vec<MpcOperation> {
        let listed = self.list_mpc_operations(group).await;
        let archives: Vec<MpcOperation> = listed
            .into_iter()
            .filter(|op| matches!(op.metadata, OperationMetadata::PrepareDeviceArchive { .. }))
            .collect();
        for op in &archives {
            let OperationMetadata::PrepareDeviceArchive {
                device_group,
                device,
                mpc_operation,
            } = &op.metadata
            else {
                unreachable!()
            };
            assert_eq!((device_group, device), (group, &self.name), "{op:?}");
            assert_eq!(mpc_operation, &op.name, "{op:?}");
            let data = MpcData::decode(&op.mpc_data).unwrap();
            assert_eq!(data.mpc_operation, op.name, "{data:?}");
            assert_eq!(data.device, self.name, "{data:?}");
            assert_eq!(data.epoch, pairing.epoch(), "{data:?}");
            assert_eq!(
                data.protocol,
                MpcProtocol::PrepareDeviceArchive {
                    pairing_id: hex0x(&pairing.public().id)
                },
                "{data:?}"
            );
        }
        archives
    }

    /// The one archive operation listed for this device in `group` (the one CreateMPCWallet
    /// queued, or one asked for).
    pub async fn queued_archive(
        &self,
        group: &DeviceGroupName,
        pairing: &Pairing,
    ) -> MpcOperationName {
        let archives = self.archive_operations(group, pairing).await;
        assert_eq!(archives.len(), 1, "one archive operation: {archives:#?}");
        archives[0].name.clone()
    }

    /// Asserts that the only work left in `group` is this device's archive (queued with the
    /// wallet and not run by the test).
    pub async fn assert_only_archive_pending(&self, group: &DeviceGroupName, why: &str) {
        let open = self.list_mpc_operations(group).await;
        assert!(
            open.len() == 1
                && matches!(&open[0].metadata, OperationMetadata::PrepareDeviceArchive { device, .. } if *device == self.name),
            "{why}; pending: {open:#?}"
        );
    }

    /// Round 1 of an archive with `login`'s name, and the device opening the answer with its
    /// archive key and the login's secret under its own view of the context.
    pub async fn open_archive(
        &self,
        op: &MpcOperationName,
        pairing: &Pairing,
        login: &Login,
    ) -> Opened {
        let answer = self
            .exchange(op, 1, login.name.to_string().as_bytes())
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let sealed = reply(&answer.json(), 2);
        let archive = self.open_sealed_share(op, pairing, login, &sealed).unwrap();
        Opened {
            archive,
            sealed,
            answer,
        }
    }

    /// Opens a sealed share as the device does (its context from its own records).
    pub fn open_sealed_share(
        &self,
        op: &MpcOperationName,
        pairing: &Pairing,
        login: &Login,
        sealed: &[u8],
    ) -> Result<Archive, waas_mpc::MpcError> {
        let group = op.device_group_name().to_string();
        let device = self.name.to_string();
        let context = ArchiveContext {
            device_group: &group,
            device: &device,
            pairing_id: &pairing.public().id,
            epoch: pairing.epoch(),
        };
        let secret: [u8; 32] = self.keys.archive.to_bytes().into();
        open_server_share(
            pairing,
            &secret,
            &login.keys.session.archive_binding(),
            &context,
            sealed,
        )
    }

    /// A whole archive: round 1 with `login`, the device opens it, round 3 (its hash); the
    /// operation must be done with its DeviceArchive. Returns the archive.
    pub async fn run_archive(
        &self,
        operation: &waas_api::OperationName,
        op: &MpcOperationName,
        pairing: &Pairing,
        login: &Login,
    ) -> Archive {
        let opened = self.open_archive(op, pairing, login).await;
        let finished = self.exchange_ok(op, 3, &sha256(&opened.sealed)).await;
        assert!(finished.done && finished.message.is_none(), "{finished:?}");
        self.assert_archived(operation, op, pairing).await;
        opened.archive
    }

    /// GetOperation must be done with this device's DeviceArchive at `pairing`'s epoch.
    pub async fn assert_archived(
        &self,
        operation: &waas_api::OperationName,
        op: &MpcOperationName,
        pairing: &Pairing,
    ) {
        let done = self.get_operation(operation).await;
        assert!(done.done && done.error.is_none(), "{done:?}");
        assert_eq!(
            done.response,
            Some(OperationResponse::DeviceArchive(DeviceArchive {
                device_group: op.device_group_name(),
                device: self.name.clone(),
                epoch: pairing.epoch(),
            })),
            "{done:?}"
        );
    }

    /// GetDeviceGroup's export metadata, decoded (`None` before key generation is confirmed).
    pub async fn export_metadata(&self, group: &DeviceGroupName) -> Option<ExportMetadata> {
        self.get_device_group(group)
            .await
            .mpc_key_export_metadata
            .map(|text| ExportMetadata::decode(&text).unwrap())
    }
}

/// PrepareDeviceArchive for `device`, signed by whoever `client` signs as, built but not sent.
fn prepare_archive_call<'a>(
    client: &'a super::Client,
    group: &DeviceGroupName,
    device: &TestDevice,
) -> Call<'a> {
    client
        .post(format!("/v1/{group}:prepareDeviceArchive"))
        .json(&PrepareDeviceArchiveRequest {
            device: device.name.clone(),
        })
}

impl super::TestServer {
    /// A new device with a wallet in the default pool and the group's passcode ([`PASSCODE`])
    /// registered.
    pub async fn device_with_passcode(&self) -> (TestDevice, super::Wallet) {
        let device = self.device().await;
        let wallet = device.create_wallet(&super::default_pool()).await;
        device
            .register_passcode(&wallet.device_group, PASSCODE)
            .await;
        (device, wallet)
    }
}

impl ApiKeyClient {
    /// PrepareDeviceArchive for `device`, built but not sent.
    pub fn prepare_archive_call<'a>(
        &'a self,
        group: &DeviceGroupName,
        device: &TestDevice,
    ) -> Call<'a> {
        prepare_archive_call(&self.client, group, device)
    }
}

/// The device's part of an archive operation.
pub fn archive_op_of(operation: &Operation) -> MpcOperationName {
    match &operation.metadata {
        OperationMetadata::PrepareDeviceArchive { mpc_operation, .. } => mpc_operation.clone(),
        other => panic!("not an archive: {other:?}"),
    }
}
