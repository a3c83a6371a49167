//! AddDevice driven round by round by a new device (waas-mpc's `DeviceRecovery`), its names
//! taken from mpcData, never from the server's answers: shared by the recovery suite and the
//! replica and fault suites, which check that every backup still recovers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::export::AddDeviceRequest;
use waas_api::resources::{
    DeviceAdded, MpcData, MpcProtocol, Operation, OperationMetadata, OperationResponse,
};
use waas_api::{DeviceGroupName, MpcOperationName, OperationName};
use waas_mpc::{DeviceRecovery, Pairing, RecoveryContext};

use super::backup::{MadeBackup, made_backup};
use super::{Call, Client, PASSCODE, TestDevice, TestServer, Wallet, reply};

/// AddDevice of `device` to `group` with `backup`, by whoever `client` signs as; built, not sent.
pub fn add_device_call<'a>(
    client: &'a Client,
    group: &DeviceGroupName,
    device: &TestDevice,
    backup: &str,
) -> Call<'a> {
    client
        .post(format!("/v1/{group}:addDevice"))
        .json(&AddDeviceRequest {
            device: device.name.clone(),
            backup: backup.parse().unwrap(),
        })
}

/// A wallet with the passcode, an address, and a finished backup of it.
pub struct Owned {
    pub owner: TestDevice,
    pub wallet: Wallet,
    pub made: MadeBackup,
    /// The group's passcode now ([`PASSCODE`] until a test resets it).
    pub passcode: &'static [u8],
}

impl Owned {
    pub async fn new(server: &TestServer) -> Self {
        let (owner, wallet) = server.device_with_passcode().await;
        let made = made_backup(&owner, &wallet).await;
        Self {
            owner,
            wallet,
            made,
            passcode: PASSCODE,
        }
    }

    pub fn group(&self) -> &DeviceGroupName {
        &self.wallet.device_group
    }

    /// Whether `device` is listed in the group (as its owner sees it).
    pub async fn has_device(&self, device: &TestDevice) -> bool {
        let group = self.owner.get_device_group(self.group()).await;
        group.devices.contains(&device.name)
    }
}

/// The states of the server's pairing halves of `device`.
pub async fn pairing_states(server: &TestServer, device: &TestDevice) -> Vec<String> {
    server
        .db_query(
            "SELECT state FROM pairings WHERE device = ?",
            &[&device.name.to_string()],
        )
        .await
}

/// The new device's side of one AddDevice: its names from mpcData (never from the server's
/// answers) and, once started, `DeviceRecovery`.
pub struct Recovery<'a> {
    pub device: &'a TestDevice,
    pub op: MpcOperationName,
    pub operation: OperationName,
    /// The op's name and the device's, as `RecoveryContext` borrows them.
    pub names: (String, String),
    pub device_half: Vec<u8>,
    pub server_half: Vec<u8>,
    /// The group's passcode when the recovery started.
    pub passcode: &'static [u8],
}

impl<'a> Recovery<'a> {
    /// AddDevice by the device itself; ListMPCOperations (the device is no member yet) must
    /// show it with mpcData naming this device, the backup's epoch and both ciphertexts.
    pub async fn start(device: &'a TestDevice, owned: &Owned) -> Self {
        let operation: Operation =
            add_device_call(&device.client, owned.group(), device, &owned.made.backup)
                .ok()
                .await;
        assert!(!operation.done, "{operation:?}");
        let OperationMetadata::AddDevice {
            device_group,
            device: named,
            mpc_operation,
        } = &operation.metadata
        else {
            panic!("not an AddDevice: {operation:?}")
        };
        assert_eq!((device_group, named), (owned.group(), &device.name));
        let listed = device.list_mpc_operations(owned.group()).await;
        assert!(
            listed
                .iter()
                .all(|op| matches!(op.metadata, OperationMetadata::AddDevice { .. })),
            "a device being added sees its AddDevice operations only: {listed:?}"
        );
        let op = listed
            .into_iter()
            .find(|op| &op.name == mpc_operation)
            .unwrap();
        let data = MpcData::decode(&op.mpc_data).unwrap();
        let MpcProtocol::AddDevice {
            backup,
            device_ciphertext,
            server_ciphertext,
        } = &data.protocol
        else {
            panic!("not an AddDevice: {data:?}")
        };
        assert_eq!(backup.to_string(), owned.made.backup);
        assert_eq!(
            (data.device.clone(), data.epoch),
            (device.name.clone(), owned.wallet.pairing.epoch())
        );
        let device_half = URL_SAFE_NO_PAD.decode(device_ciphertext).unwrap();
        let server_half = URL_SAFE_NO_PAD.decode(server_ciphertext).unwrap();
        assert_eq!(
            (&device_half, &server_half),
            (&owned.made.device_half, &owned.made.server_half)
        );
        Self {
            device,
            names: (op.name.to_string(), device.name.to_string()),
            op: op.name,
            operation: operation.name,
            device_half,
            server_half,
            passcode: owned.passcode,
        }
    }

    pub fn context(&self) -> RecoveryContext<'_> {
        RecoveryContext {
            operation: &self.names.0,
            device: &self.names.1,
        }
    }

    /// The device's round 1 with `passcode`.
    pub fn begin(&self, owned: &Owned, passcode: &[u8]) -> (DeviceRecovery, Vec<u8>) {
        DeviceRecovery::start(
            owned.made.read(),
            &self.context(),
            &self.device_half,
            &self.server_half,
            passcode,
        )
        .unwrap()
    }

    /// Round 1 sent: the server's round 2 (the OPAQUE response).
    pub async fn round1(&self, round1: &[u8]) -> Vec<u8> {
        reply(&self.device.exchange_ok(&self.op, 1, round1).await, 2)
    }

    /// Rounds 3 to 8 with the right passcode: the new device's pairing, not confirmed yet.
    pub async fn through_round8(&self, mut device: DeviceRecovery, round2: &[u8]) -> Pairing {
        let (round3, _) = device.login(round2, self.passcode).unwrap();
        let round4 = reply(&self.device.exchange_ok(&self.op, 3, &round3).await, 4);
        let round5 = device.open(&round4).unwrap();
        let round6 = reply(&self.device.exchange_ok(&self.op, 5, &round5).await, 6);
        let round7 = device.refresh(&round6).unwrap().reply.unwrap();
        let round8 = reply(&self.device.exchange_ok(&self.op, 7, &round7).await, 8);
        device.refresh(&round8).unwrap().output.unwrap()
    }

    /// A recovery of `device` through round 8: the server keeps the new pairing pending, and
    /// the device is no device of the group until round 9.
    pub async fn pending(
        server: &TestServer,
        device: &'a TestDevice,
        owned: &Owned,
    ) -> (Self, Pairing) {
        let recovery = Self::start(device, owned).await;
        let (started, round1) = recovery.begin(owned, owned.passcode);
        let round2 = recovery.round1(&round1).await;
        let pairing = recovery.through_round8(started, &round2).await;
        assert_eq!(pairing_states(server, device).await, ["PENDING"]);
        assert!(!owned.has_device(device).await);
        (recovery, pairing)
    }

    /// Rounds 3 to 9 with the right passcode: the new device's pairing, confirmed.
    pub async fn finish(&self, device: DeviceRecovery, round2: &[u8]) -> Pairing {
        let pairing = self.through_round8(device, round2).await;
        let done = self
            .device
            .exchange_and_repeat(&self.op, 9, &pairing.public().confirmation())
            .await;
        assert!(done.json::<waas_api::resources::ExchangeResponse>().done);
        pairing
    }

    /// GetOperation must be done with this device added at epoch 1.
    pub async fn assert_added(&self, group: &DeviceGroupName) {
        let done = self.device.get_operation(&self.operation).await;
        assert!(done.done && done.error.is_none(), "{done:?}");
        assert_eq!(
            done.response,
            Some(OperationResponse::DeviceAdded(DeviceAdded {
                device_group: group.clone(),
                device: self.device.name.clone(),
                epoch: 1,
            }))
        );
    }
}

/// A whole recovery of `device` with the right passcode: its confirmed pairing.
pub async fn recover(device: &TestDevice, owned: &Owned) -> Pairing {
    let recovery = Recovery::start(device, owned).await;
    let (started, round1) = recovery.begin(owned, owned.passcode);
    let round2 = recovery.round1(&round1).await;
    let pairing = recovery.finish(started, &round2).await;
    recovery.assert_added(owned.group()).await;
    pairing
}
