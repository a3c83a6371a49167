//! The test device's side of PrepareDeviceBackup (docs/protocol/backup.md), driven over HTTP
//! with the waas-mpc backup steps, each answer checked as the SDK does; and the backup string
//! the user keeps after it, for recovery (docs/protocol/recovery.md).

use waas_api::export::PrepareDeviceBackupRequest;
use waas_api::resources::{
    DeviceBackup, ExchangeResponse, MpcData, MpcProtocol, Operation, OperationMetadata,
    OperationResponse,
};
use waas_api::{DeviceGroupName, MpcOperationName};
use waas_mpc::{
    BackupContext, BackupFacts, BackupRound1, BackupRound2, BackupRound3, BackupString,
    DecryptionShare, Half, Pairing, PartialUse, Role, backup_key, ciphertext_ephemeral,
    ciphertexts_hash, decrypt_half, encrypt_device_half, verify_key_share, verify_partial,
};

use super::device::{TestDevice, Wallet, reply};
use super::eth::hex0x;
use super::passcode::{Login, PASSCODE};

/// PrepareDeviceBackup for `device`, signed by whoever `client` signs as, built but not sent.
pub fn prepare_backup_call<'a>(
    client: &'a super::Client,
    group: &DeviceGroupName,
    device: &TestDevice,
) -> super::Call<'a> {
    client
        .post(format!("/v1/{group}:prepareDeviceBackup"))
        .json(&PrepareDeviceBackupRequest {
            device: device.name.clone(),
        })
}

/// The device's part of a backup operation.
pub fn backup_op_of(operation: &Operation) -> MpcOperationName {
    match &operation.metadata {
        OperationMetadata::PrepareDeviceBackup { mpc_operation, .. } => mpc_operation.clone(),
        other => panic!("not a backup: {other:?}"),
    }
}

/// The device's view of one backup: its names (from mpcData and its records, never from the
/// server's answers), its decryption half, and what it has received and sent so far.
pub struct Backup<'a> {
    pub device: &'a TestDevice,
    pub pairing: &'a Pairing,
    pub op: MpcOperationName,
    pub group: String,
    /// The backup's id: the MPC operation's name, as mpcData gives it.
    pub backup: String,
    pub share: DecryptionShare,
}

/// Round 2 as the device checked it.
pub struct Answered {
    pub server_key_share: [u8; 33],
    pub key: [u8; 33],
    pub server_half: Vec<u8>,
}

impl<'a> Backup<'a> {
    /// PrepareDeviceBackup by the device itself; the operation's mpcData is checked: this device,
    /// its pairing and epoch.
    pub async fn start(device: &'a TestDevice, wallet: &'a Wallet) -> Self {
        let operation: Operation =
            prepare_backup_call(&device.client, &wallet.device_group, device)
                .ok()
                .await;
        assert!(!operation.done, "{operation:?}");
        let op = backup_op_of(&operation);
        let listed = device.find_mpc_operation(&op).await;
        let data = MpcData::decode(&listed.mpc_data).unwrap();
        assert_eq!(
            (data.device.clone(), data.epoch, data.protocol.clone()),
            (
                device.name.clone(),
                wallet.pairing.epoch(),
                MpcProtocol::PrepareDeviceBackup {
                    pairing_id: hex0x(&wallet.pairing.public().id)
                }
            ),
            "{data:?}"
        );
        Self {
            device,
            pairing: &wallet.pairing,
            group: op.device_group_name().to_string(),
            backup: op.to_string(),
            op,
            share: DecryptionShare::generate().unwrap(),
        }
    }

    pub fn context(&self) -> BackupContext<'_> {
        BackupContext {
            device_group: &self.group,
            backup: &self.backup,
            pairing_id: &self.pairing.public().id,
            epoch: self.pairing.epoch(),
        }
    }

    /// Round 1's message with `login`'s name and P_dev with its proof.
    pub fn round1(&self, login: &str) -> Vec<u8> {
        BackupRound1 {
            login: login.to_owned(),
            key_share: self
                .share
                .key_share_message(&self.context(), Role::Device)
                .unwrap(),
        }
        .encode()
        .unwrap()
    }

    /// Round 1 (and its repeat, which gets the same answer), and round 2 checked as the device
    /// does: P_srv's proof for role server, P.
    pub async fn run_round1(&self, login: &Login) -> Answered {
        let message = self.round1(&login.name.to_string());
        let answer: ExchangeResponse = self
            .device
            .exchange_and_repeat(&self.op, 1, &message)
            .await
            .ok();
        let round2 = BackupRound2::decode(&reply(&answer, 2)).unwrap();
        let server_key_share =
            verify_key_share(&round2.key_share, &self.context(), Role::Server).unwrap();
        let key = backup_key(&self.share.public(), &server_key_share).unwrap();
        Answered {
            server_key_share,
            key,
            server_half: round2.server_half,
        }
    }

    /// Round 3: ct_x (the device's additive share encrypted to P) with the proof of its r.
    pub fn device_half(&self, answered: &Answered) -> BackupRound3 {
        encrypt_device_half(
            &answered.key,
            &self.pairing.additive_share(),
            &self.context(),
        )
        .unwrap()
    }

    /// Round 3 (and its repeat) and the dry run on round 4: the server's partial verifies
    /// against P_srv for ct_x's R, and ct_x opens to the device's own share.
    pub async fn run_round3(&self, answered: &Answered, round3: &BackupRound3) {
        let device_half = round3.device_half.as_slice();
        let answer: ExchangeResponse = self
            .device
            .exchange_and_repeat(&self.op, 3, &round3.encode().unwrap())
            .await
            .ok();
        let context = self.context();
        let ephemeral = ciphertext_ephemeral(device_half).unwrap();
        let partial = verify_partial(
            &reply(&answer, 4),
            &answered.server_key_share,
            &ephemeral,
            Half::Device,
            &context,
            Role::Server,
            PartialUse::DryRun,
        )
        .unwrap();
        let opened = decrypt_half(
            device_half,
            &self.share,
            &partial,
            &answered.key,
            Half::Device,
            &context,
            &self.pairing.public().device_public_share,
        )
        .unwrap();
        assert_eq!(*opened, *self.pairing.additive_share());
    }

    /// Rounds 1 and 3 with `login`, and the dry run: round 2 as the device checked it, and ct_x.
    pub async fn through_round3(&self, login: &Login) -> (Answered, BackupRound3) {
        let answered = self.run_round1(login).await;
        let round3 = self.device_half(&answered);
        self.run_round3(&answered, &round3).await;
        (answered, round3)
    }

    /// Round 5 (and its repeat): done, and GetOperation shows the DeviceBackup with the hash.
    pub async fn run_round5(&self, hash: &[u8; 32]) {
        let done: ExchangeResponse = self
            .device
            .exchange_and_repeat(&self.op, 5, hash)
            .await
            .ok();
        assert!(done.done && done.message.is_none(), "{done:?}");
        let operation = self.device.get_operation(&self.op.operation_name()).await;
        assert!(operation.done && operation.error.is_none(), "{operation:?}");
        assert_eq!(
            operation.response,
            Some(OperationResponse::DeviceBackup(DeviceBackup {
                device_group: self.op.device_group_name(),
                device: self.device.name.clone(),
                epoch: self.pairing.epoch(),
                ciphertexts_hash: hex0x(hash),
            }))
        );
    }
}

/// A whole backup with a fresh login: returns the backup's id and both ciphertexts.
pub async fn full_backup(device: &TestDevice, wallet: &Wallet) -> (String, Vec<u8>, Vec<u8>) {
    let made = made_backup(device, wallet).await;
    (made.backup, made.device_half, made.server_half)
}

/// A finished backup as the device holds it: the backup string the user keeps, the backup's id
/// and both ciphertexts.
pub struct MadeBackup {
    /// The string (`waasbackup1…`): d_dev and the facts, all from the device's own records
    /// and checks.
    pub string: String,
    /// The backup's id, `…/mpcOperations/{id}`.
    pub backup: String,
    /// ct_x.
    pub device_half: Vec<u8>,
    /// ct_s.
    pub server_half: Vec<u8>,
}

impl MadeBackup {
    /// The string as a recovering device reads it.
    pub fn read(&self) -> BackupString {
        BackupString::decode(&self.string).unwrap()
    }
}

/// A whole backup with a fresh login, and the string the device hands the user after it.
pub async fn made_backup(device: &TestDevice, wallet: &Wallet) -> MadeBackup {
    let backup = Backup::start(device, wallet).await;
    let login = device.login(&wallet.device_group, PASSCODE).await;
    let (answered, round3) = backup.through_round3(&login).await;
    let device_half = round3.device_half;
    let hash = ciphertexts_hash(&device_half, &answered.server_half);
    backup.run_round5(&hash).await;
    let public = backup.pairing.public();
    let string = BackupString::new(
        &backup.share,
        BackupFacts {
            backup: backup.backup.clone(),
            wallet: wallet.wallet.name.to_string(),
            device_group: backup.group.clone(),
            pairing_id: public.id,
            epoch: backup.pairing.epoch(),
            server_key_share: answered.server_key_share,
            root_public_key: public.root_public_key,
            chain_code: public.chain_code,
            device_public_share: public.device_public_share,
            server_public_share: public.server_public_share,
            ciphertexts_hash: hash,
        },
    );
    MadeBackup {
        string: string.encode().unwrap().to_string(),
        backup: backup.backup,
        device_half,
        server_half: answered.server_half,
    }
}
