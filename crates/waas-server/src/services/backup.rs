//! PrepareDeviceBackup (docs/protocol/backup.md): both additive shares of one device's pairing
//! encrypted to a fresh 2-of-2 decryption key P = P_dev + P_srv, over the durable exchange of
//! `exchange.rs`:
//!
//! 1. the device names a passcode login it finished and sends P_dev with its proof; the server
//!    checks both, makes d_srv and answers (2) P_srv with its proof and ct_s, its own share
//!    encrypted to P; the commit uses the login up;
//! 3. the device sends ct_x, its share encrypted to P; the server answers (4) its proven partial
//!    decryption of ct_x, for the device's dry run;
//! 5. the device sends H(ct_x ‖ ct_s) once its dry run passed; the backup becomes the group's
//!    current one in the commit that ends the operation, and the group's other current backups
//!    are marked replaced by it: they still recover the wallet for the retention period
//!    (`--backup-retention`), then the periodic sweep deletes them.
//!
//! Between rounds d_srv, P_dev and the ciphertexts stay in the operation's sealed session. The
//! backup's id, in every context, is the device's name for the operation, its MPC operation
//! (`pools/{p}/deviceGroups/{g}/mpcOperations/{id}`, mpcData's `mpcOperation`). A device's
//! message that is refused changes nothing: the device may send the round again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::export::PrepareDeviceBackupRequest;
use waas_api::resources::{
    DeviceBackup, ExchangeResponse, MpcProtocol, Operation, OperationResponse,
};
use waas_api::{DeviceGroupName, MpcOperationName, PasscodeLoginName};
use waas_mpc::{
    BackupContext, BackupRound1, BackupRound2, BackupRound3, DecryptionShare, Half, Pairing,
    PartialUse, Role, backup_key, ciphertexts_hash, encrypt_half, verify_device_half,
    verify_key_share,
};
use zeroize::Zeroizing;

use super::passcode::{UsableLogin, login_invalid};
use super::{Services, ensure_acts_for, hex0x};
use crate::ApiError;
use crate::auth::Principal;
use crate::store::{
    NewBackup, OperationKind, OperationRecord, OperationState, StepEffect, StepUpdate, Store,
};
use crate::time::now_ms;

/// Sealing kind of a backup's d_srv, kept once the backup is verified (id: the backup's id).
pub(super) const BACKUP_SHARE: &str = "backup-share";

/// What the server keeps between a backup's rounds, sealed as the operation's session: d_srv,
/// P_dev, ct_s and, from round 3, ct_x. Zeroized on drop.
struct BackupSession {
    share: Zeroizing<[u8; 32]>,
    device_key_share: [u8; 33],
    server_half: Vec<u8>,
    device_half: Option<Vec<u8>>,
}

impl BackupSession {
    /// d_srv ‖ P_dev ‖ ct_s's length (u16) ‖ ct_s ‖ ct_x (empty before round 3).
    fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        let len = u16::try_from(self.server_half.len()).map_err(ApiError::internal)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(256));
        bytes.extend_from_slice(&self.share[..]);
        bytes.extend_from_slice(&self.device_key_share);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&self.server_half);
        bytes.extend_from_slice(self.device_half.as_deref().unwrap_or_default());
        Ok(bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ApiError> {
        let corrupt = || ApiError::internal("a backup session does not parse");
        let (share, rest) = bytes.split_at_checked(32).ok_or_else(corrupt)?;
        let (device_key_share, rest) = rest.split_at_checked(33).ok_or_else(corrupt)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(corrupt)?;
        let len = u16::from_be_bytes(len.try_into().map_err(|_| corrupt())?);
        let (server_half, device_half) = rest.split_at_checked(len.into()).ok_or_else(corrupt)?;
        Ok(Self {
            share: Zeroizing::new(share.try_into().map_err(|_| corrupt())?),
            device_key_share: device_key_share.try_into().map_err(|_| corrupt())?,
            server_half: server_half.to_vec(),
            device_half: (!device_half.is_empty()).then(|| device_half.to_vec()),
        })
    }

    fn decryption_share(&self) -> Result<DecryptionShare, ApiError> {
        DecryptionShare::from_bytes(&self.share).map_err(ApiError::internal)
    }
}

/// The names a backup's context borrows: the group's and the backup's.
struct Names {
    device_group: String,
    backup: String,
}

impl Names {
    fn of(record: &OperationRecord) -> Self {
        Self {
            device_group: record.device_group.to_string(),
            backup: backup_id(record).to_string(),
        }
    }

    fn context<'a>(&'a self, pairing_id: &'a [u8; 32], epoch: u64) -> BackupContext<'a> {
        BackupContext {
            device_group: &self.device_group,
            backup: &self.backup,
            pairing_id,
            epoch,
        }
    }
}

/// The backup's id: the operation's MPC operation name, which the device has in its mpcData.
fn backup_id(record: &OperationRecord) -> MpcOperationName {
    MpcOperationName::new(
        record.device_group.pool().clone(),
        record.device_group.device_group().clone(),
        record.name.operation().clone(),
    )
}

/// A device's message that does not hold: refused, nothing changes, and it may send it again.
fn refused(round: u8, what: &str) -> ApiError {
    ApiError::invalid(format!("backup round {round}: {what}"))
}

impl<S: Store> Services<S> {
    /// PrepareDeviceBackup: a backup operation for a device of an active group. A device asks for
    /// itself only; an API key for any device of the group. Unlike the archive, not gated by the
    /// pool's export setting: a backup never hands a share to anyone (recovery opens each
    /// ciphertext only on its own side). The device's backup operation on its current epoch that
    /// has not started yet is returned instead of a second one.
    pub async fn prepare_device_backup(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PrepareDeviceBackupRequest,
    ) -> Result<Operation, ApiError> {
        ensure_acts_for(caller, &request.device)?;
        self.ensure_can_read(caller, group).await?;
        self.device_operation(
            caller,
            group,
            &request.device,
            OperationKind::PrepareDeviceBackup,
        )
        .await
    }

    /// The operation's pairing, checked to be the one its mpcData names.
    async fn backup_pairing(&self, record: &OperationRecord) -> Result<Pairing, ApiError> {
        let pairing = self.pairing(record).await?;
        let MpcProtocol::PrepareDeviceBackup { pairing_id } = super::operations::protocol(record)?
        else {
            return Err(ApiError::internal("a backup of another protocol"));
        };
        if pairing_id != hex0x(&pairing.public().id) {
            return Err(ApiError::internal(
                "the backup's pairing is not the epoch's pairing",
            ));
        }
        Ok(pairing)
    }

    /// Round 1: the login (as an archive's: finished by this device for this group, fresh,
    /// unused) and P_dev's proof of knowledge for role device in this backup are checked; then
    /// d_srv is made and s_d encrypted to P. The commit uses the login up, on the condition that
    /// it still may be; d_srv, P_dev and ct_s go into the sealed session.
    pub(super) async fn backup_round1(
        &self,
        record: &OperationRecord,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let round1 =
            BackupRound1::decode(message).map_err(|_| refused(1, "not a login and a key share"))?;
        // One refusal for every unusable login, as for an archive's or a reset's.
        let login: PasscodeLoginName = round1.login.parse().map_err(|_| login_invalid())?;
        let UsableLogin { usage, .. } = self
            .usable_login(&record.device, &record.device_group, &login, now_ms())
            .await?;
        let pairing = self.backup_pairing(record).await?;
        let names = Names::of(record);
        let epoch = record.epoch;
        // The proofs (Fischlin's transform) are a backup's heaviest work: off the async threads.
        let (session, reply) = tokio::task::spawn_blocking(move || {
            backup_round2(&pairing, &names, epoch, &round1.key_share)
        })
        .await
        .map_err(ApiError::internal)??;
        update.session_sealed = Some(self.seal_session(record, 1, &session.to_bytes()?)?);
        update.reply = Some(answer(2, reply)?);
        update.state = OperationState::Running;
        update.effect = StepEffect::UseLogin(usage);
        Ok(update)
    }

    /// Round 3: ct_x with the proof that the device knows its r (`BackupRound3`), checked for
    /// its form and the proof; the answer is the server's proven partial decryption of ct_x (for
    /// the half `Device` only), and ct_x joins the sealed session. Without the proof, a device
    /// could send ct_s's R blinded (R_s + b·G), unblind the answer to d_srv·R_s and open ct_s:
    /// the server's share.
    pub(super) async fn backup_round3(
        &self,
        record: &OperationRecord,
        session: Option<&[u8]>,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let mut kept = kept_session(session)?;
        let round = BackupRound3::decode(message)
            .map_err(|_| refused(3, "not ct_x with its proof of knowledge"))?;
        let pairing_id = self.backup_pairing(record).await?.public().id;
        let names = Names::of(record);
        let record_epoch = record.epoch;
        let share = kept.decryption_share()?;
        // The proof's check is Fischlin's transform again: off the async threads.
        let (round, partial) = tokio::task::spawn_blocking(move || {
            let context = names.context(&pairing_id, record_epoch);
            let ephemeral = verify_device_half(&round, &context)
                .map_err(|_| refused(3, "ct_x is malformed or its R has no valid proof"))?;
            let partial = share
                .partial(
                    &ephemeral,
                    Half::Device,
                    &context,
                    Role::Server,
                    PartialUse::DryRun,
                )
                .map_err(ApiError::internal)?;
            Ok::<_, ApiError>((round, partial))
        })
        .await
        .map_err(ApiError::internal)??;
        kept.device_half = Some(round.device_half);
        update.session_sealed = Some(self.seal_session(record, 3, &kept.to_bytes()?)?);
        update.reply = Some(answer(4, partial)?);
        Ok(update)
    }

    /// Round 5: H(ct_x ‖ ct_s) from the device, once its dry run passed, must be that of the
    /// ciphertexts the server holds; then the operation is done and, in the same commit, this
    /// backup becomes current and marks the group's other current ones replaced (deleting
    /// nothing). Another hash is refused and changes nothing.
    pub(super) async fn backup_round5(
        &self,
        record: &OperationRecord,
        session: Option<&[u8]>,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let kept = kept_session(session)?;
        let device_half = kept
            .device_half
            .as_deref()
            .ok_or_else(|| ApiError::internal("a backup at round 5 without ct_x"))?;
        let hash = ciphertexts_hash(device_half, &kept.server_half);
        // Public values: an ordinary comparison is fine.
        if message != hash {
            return Err(refused(
                5,
                "not the hash of the ciphertexts the server holds",
            ));
        }
        let share = kept.decryption_share()?;
        // Still the epoch's confirmed pairing: a retired one is not worth a backup.
        let pairing_id = self.backup_pairing(record).await?.public().id;
        let backup = backup_id(record);
        update.effect = StepEffect::BackupVerified(NewBackup {
            backup: backup.clone(),
            pairing_id: pairing_id.to_vec(),
            decryption_share_sealed: self
                .master_key
                .seal(BACKUP_SHARE, &backup.to_string(), &kept.share[..])
                .map_err(ApiError::internal)?,
            device_key_share: kept.device_key_share.to_vec(),
            server_key_share: share.public().to_vec(),
            device_ciphertext: device_half.to_vec(),
            server_ciphertext: kept.server_half.clone(),
        });
        update.response = Some(
            serde_json::to_string(&OperationResponse::DeviceBackup(DeviceBackup {
                device_group: record.device_group.clone(),
                device: record.device.clone(),
                epoch: record.epoch,
                ciphertexts_hash: hex0x(&hash),
            }))
            .map_err(ApiError::internal)?,
        );
        Ok(update)
    }

    /// Deletes the backups replaced for longer than the retention (the periodic sweep): rows and
    /// sealed d_srv, never a current backup.
    pub(crate) async fn forget_replaced_backups(&self) -> Result<u64, ApiError> {
        let deleted = self
            .store
            .forget_replaced_backups(self.replaced_since_ms(now_ms()))
            .await?;
        if deleted > 0 {
            tracing::info!(
                deleted,
                "deleted backups replaced for longer than the retention"
            );
        }
        Ok(deleted)
    }

    /// The oldest replacement time of a backup still live at `now_ms`: one replaced earlier is
    /// past the retention (recovery must not use it, the sweep deletes it).
    pub(super) fn replaced_since_ms(&self, now_ms: i64) -> i64 {
        let retention = i64::try_from(self.backup_retention.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(retention)
    }
}

/// Round 1's checks and work on P_dev (`key_share`, with its proof): d_srv made, s_d encrypted
/// to P; the session to keep and round 2.
fn backup_round2(
    pairing: &Pairing,
    names: &Names,
    epoch: u64,
    key_share: &[u8],
) -> Result<(BackupSession, Vec<u8>), ApiError> {
    let context = names.context(&pairing.public().id, epoch);
    // A rogue P_dev (one chosen without its secret, to steer P) has no proof.
    let device_key_share = verify_key_share(key_share, &context, Role::Device)
        .map_err(|_| refused(1, "the key share's proof of knowledge does not verify"))?;
    let share = DecryptionShare::generate().map_err(ApiError::internal)?;
    let key = backup_key(&device_key_share, &share.public())
        .map_err(|_| refused(1, "the key shares cancel out"))?;
    let server_half = encrypt_half(&key, Half::Server, &pairing.additive_share(), &context)
        .map_err(ApiError::internal)?;
    let reply = BackupRound2 {
        key_share: share
            .key_share_message(&context, Role::Server)
            .map_err(ApiError::internal)?,
        server_half: server_half.clone(),
    }
    .encode()
    .map_err(ApiError::internal)?;
    let session = BackupSession {
        share: share.to_bytes(),
        device_key_share,
        server_half,
        device_half: None,
    };
    Ok((session, reply))
}

fn kept_session(session: Option<&[u8]>) -> Result<BackupSession, ApiError> {
    BackupSession::from_bytes(
        session.ok_or_else(|| ApiError::internal("a running backup without its session"))?,
    )
}

/// The answer of round `round`, JSON, carrying `message` (unpadded base64url).
pub(super) fn answer(round: u8, message: Vec<u8>) -> Result<String, ApiError> {
    serde_json::to_string(&ExchangeResponse {
        round: Some(round),
        message: Some(URL_SAFE_NO_PAD.encode(message)),
        done: false,
    })
    .map_err(ApiError::internal)
}
