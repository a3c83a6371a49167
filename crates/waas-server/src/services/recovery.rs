//! AddDevice (docs/protocol/recovery.md, "The server's side"): a new device takes a wallet over
//! with the backup string and the passcode, over the durable exchange of `exchange.rs`:
//!
//! 1. the device's proven partial on ct_s (it holds the backup's decryption half) and an OPAQUE
//!    login request; the server opens s_d, then counts one recovery attempt for the backup and
//!    answers (2) the login's response;
//! 3. the login's finalization and its MAC of this recovery; a right passcode clears the count
//!    and gets (4) the server's partial on ct_x;
//! 5. and 7. a complete refresh of the pairing restored from s_d; round 7 makes the new
//!    device's pairing (epoch 1), kept pending;
//! 9. the device's confirmation of the pairing it stored: the device joins the group.
//!
//! The cryptography is `waas_mpc::recovery`; this file checks, counts and stores. Between rounds
//! s_d (and the OPAQUE state, then the refresh) stay in the operation's sealed session. Every
//! refusal before round 9's commit writes nothing, and nothing is counted before the partial
//! proved the backup: a device without it cannot burn the backup's attempts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::export::AddDeviceRequest;
use waas_api::passcode::{MAX_FAILED_LOGINS, reason};
use waas_api::resources::{
    DeviceAdded, DeviceState, MpcProtocol, Operation, OperationMetadata, OperationResponse,
};
use waas_api::{DeviceGroupName, DeviceName, ErrorCode, MpcOperationName};
use waas_mpc::passcode::{PasscodeError, login_finish};
use waas_mpc::{
    BackupContext, DecryptionShare, MpcError, Pairing, RESTORED_EPOCH, RecoveryContext,
    RecoveryRound1, RecoveryRound3, Refresh, ServerBackup, restore_server, server_refresh,
};
use zeroize::Zeroizing;

use super::backup::{BACKUP_SHARE, answer};
use super::exchange::{PAIRING, pairing_sealing_id, run_blocking};
use super::operations::{new_operation_names, protocol};
use super::passcode::{check_counted, passcode_context, passcode_error};
use super::{Services, ensure_acts_for};
use crate::ApiError;
use crate::auth::Principal;
use crate::store::{
    BackupRecord, NewBackup, NewOperation, OperationKind, OperationRecord, OperationState,
    StepEffect, StepUpdate, Store,
};
use crate::time::now_ms;

/// The epoch of the new device's pairing: the restored pairing's, refreshed once.
const NEW_EPOCH: u64 = RESTORED_EPOCH + 1;

/// What a locked recovery says (the reason is `PASSCODE_LOCKED`, as for logins).
const RECOVERY_LOCKED: &str =
    "recovery of this wallet with a backup is locked until an operator unlocks it";

/// The names and facts a recovery's two contexts borrow, owned so they can move to a blocking
/// thread. Both come from the server's records, never from a message.
struct Names {
    device_group: String,
    backup: String,
    pairing_id: [u8; 32],
    epoch: u64,
    operation: String,
    device: String,
}

impl Names {
    fn new(record: &OperationRecord, backup: &MpcOperationName, pairing_id: [u8; 32]) -> Self {
        Self {
            device_group: record.device_group.to_string(),
            backup: backup.to_string(),
            pairing_id,
            epoch: record.epoch,
            operation: MpcOperationName::new(
                record.device_group.pool().clone(),
                record.device_group.device_group().clone(),
                record.name.operation().clone(),
            )
            .to_string(),
            device: record.device.to_string(),
        }
    }

    /// The backup's context: its group, id, pairing and epoch.
    fn backup(&self) -> BackupContext<'_> {
        BackupContext {
            device_group: &self.device_group,
            backup: &self.backup,
            pairing_id: &self.pairing_id,
            epoch: self.epoch,
        }
    }

    /// This recovery's: the AddDevice's MPC operation and the new device.
    fn recovery(&self) -> RecoveryContext<'_> {
        RecoveryContext {
            operation: &self.operation,
            device: &self.device,
        }
    }
}

/// What the server keeps between a recovery's rounds, sealed as the operation's session: s_d,
/// the backed-up pairing's id (for the contexts, once the backup itself may be gone) and the
/// passcode record version the login started against (every later round checks it is still
/// the group's); then after round 1 the OPAQUE login state, after round 5 the refresh.
/// Zeroized on drop.
struct RecoverySession {
    share: Zeroizing<[u8; 32]>,
    pairing_id: [u8; 32],
    record_version: u64,
    rest: Zeroizing<Vec<u8>>,
}

impl RecoverySession {
    /// s_d ‖ pairing id ‖ record version (8 bytes, big-endian) ‖ the rest.
    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(72 + self.rest.len()));
        bytes.extend_from_slice(&self.share[..]);
        bytes.extend_from_slice(&self.pairing_id);
        bytes.extend_from_slice(&self.record_version.to_be_bytes());
        bytes.extend_from_slice(&self.rest);
        bytes
    }

    fn from_bytes(session: Option<&[u8]>) -> Result<Self, ApiError> {
        let corrupt = || ApiError::internal("a recovery session does not parse");
        let bytes =
            session.ok_or_else(|| ApiError::internal("a running recovery without its session"))?;
        let (share, rest) = bytes.split_at_checked(32).ok_or_else(corrupt)?;
        let (pairing_id, rest) = rest.split_at_checked(32).ok_or_else(corrupt)?;
        let (version, rest) = rest.split_at_checked(8).ok_or_else(corrupt)?;
        Ok(Self {
            share: Zeroizing::new(share.try_into().map_err(|_| corrupt())?),
            pairing_id: pairing_id.try_into().map_err(|_| corrupt())?,
            record_version: u64::from_be_bytes(version.try_into().map_err(|_| corrupt())?),
            rest: Zeroizing::new(rest.to_vec()),
        })
    }

    /// The same session with another rest (the next round's).
    fn with_rest(&self, rest: Zeroizing<Vec<u8>>) -> Self {
        Self {
            share: self.share.clone(),
            pairing_id: self.pairing_id,
            record_version: self.record_version,
            rest,
        }
    }
}

/// A recovery whose group's passcode was reset after its round 1: it ends (the reset's own
/// transaction fails it too, passcode.md), and a new one must be made with the new passcode.
pub(super) fn passcode_changed() -> ApiError {
    ApiError::new(
        ErrorCode::Aborted,
        "the wallet's passcode was reset during the recovery: start a new one with the new \
         passcode",
    )
    .with_reason(reason::PASSCODE_CHANGED)
}

/// A device's message that does not hold: refused, nothing changes, and it may send it again.
fn refused(round: u8, what: &str) -> ApiError {
    ApiError::invalid(format!("recovery round {round}: {what}"))
}

/// The refusal of a backup that is not kept (any more) for the group: one answer whether it
/// never existed or is another group's, so a caller learns nothing of other groups.
fn backup_not_found(backup: &MpcOperationName) -> ApiError {
    ApiError::not_found(format!("backup {backup}"))
}

/// AddDevice for a device of the group already.
fn already_member(device: &DeviceName, group: &DeviceGroupName) -> ApiError {
    ApiError::precondition(format!("{device} is already a device of the group {group}"))
}

/// A recovery's backup that is no longer live (replaced past the retention, or swept).
fn backup_gone(backup: &MpcOperationName) -> ApiError {
    ApiError::precondition(format!(
        "the backup {backup} is no longer kept: recover with a newer one"
    ))
}

/// `update` as a step that ends the operation with `error`, told to the device now and to
/// every repeat of the round.
fn ends_with(mut update: StepUpdate, error: &ApiError) -> Result<StepUpdate, ApiError> {
    update.state = OperationState::Failed;
    update.reply = None;
    update.session_sealed = None;
    update.error = Some(serde_json::to_string(&error.body()).map_err(ApiError::internal)?);
    Ok(update)
}

impl<S: Store> Services<S> {
    /// AddDevice: an operation that adds `request.device` to the active `group` with the
    /// group's backup `request.backup`. The device asks for itself, or an API key for any
    /// device. A device not in the group is told one NOT_FOUND for a group that is missing or
    /// not active yet. The device must be active and not a device of the group already; the
    /// backup must be kept for this group (else NOT_FOUND, whether missing or another group's). The
    /// device's AddDevice for the same backup that has not started yet is returned instead of a
    /// second one. Creating it proves nothing, so it costs nothing and counts nothing.
    pub async fn add_device(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: AddDeviceRequest,
    ) -> Result<Operation, ApiError> {
        let device = &request.device;
        ensure_acts_for(caller, device)?;
        let stranger =
            matches!(caller, Principal::Device(_)) && !self.store.is_member(group, device).await?;
        match self.active_group(group).await {
            Ok(_) => {}
            // A stranger learns nothing of a group it is not in: missing or not active yet, the
            // same answer.
            Err(error) if stranger && error.code() == ErrorCode::FailedPrecondition => {
                return Err(ApiError::not_found(group));
            }
            Err(error) => return Err(error),
        }
        let found = self
            .store
            .device(device)
            .await?
            .ok_or_else(|| ApiError::not_found(device))?;
        if found.state != DeviceState::Active {
            return Err(ApiError::precondition(format!("{device} is revoked")));
        }
        if self.store.is_member(group, device).await? {
            return Err(already_member(device, group));
        }
        let backup = self
            .kept_backup(group, &request.backup)
            .await?
            .ok_or_else(|| backup_not_found(&request.backup))?;
        let pending = self
            .store
            .open_operations(group, device)
            .await?
            .into_iter()
            .filter(|open| {
                open.kind == OperationKind::AddDevice && open.state == OperationState::Pending
            })
            .find(|open| {
                matches!(protocol(open), Ok(MpcProtocol::AddDevice { backup, .. })
                    if backup == request.backup)
            });
        if let Some(pending) = pending {
            return self.operation_resource(&pending);
        }
        let (name, mpc_operation) = new_operation_names(group)?;
        let metadata = OperationMetadata::AddDevice {
            device_group: group.clone(),
            device: device.clone(),
            mpc_operation,
        };
        // mpcData carries both ciphertexts (public): the device checks them against its string.
        let params = MpcProtocol::AddDevice {
            backup: request.backup.clone(),
            device_ciphertext: URL_SAFE_NO_PAD.encode(&backup.material.device_ciphertext),
            server_ciphertext: URL_SAFE_NO_PAD.encode(&backup.material.server_ciphertext),
        };
        let new = NewOperation {
            name,
            kind: OperationKind::AddDevice,
            device_group: group.clone(),
            device: device.clone(),
            epoch: backup.epoch,
            metadata: serde_json::to_string(&metadata).map_err(ApiError::internal)?,
            params: serde_json::to_string(&params).map_err(ApiError::internal)?,
            creator: caller.subject(),
            request_id: None,
            request_hash: Vec::new(),
        };
        let created = self.store.create_operation(&new).await?.into_inner();
        tracing::info!(operation = %created.name, %device, %group, "queued an AddDevice");
        self.operation_resource(&created)
    }

    /// The group's backup `backup`, if it is live (current, or replaced within the retention,
    /// backup.md): a backup of another group, or one past the retention, is `None`.
    async fn kept_backup(
        &self,
        group: &DeviceGroupName,
        backup: &MpcOperationName,
    ) -> Result<Option<BackupRecord>, ApiError> {
        let replaced_since_ms = self.replaced_since_ms(now_ms());
        Ok(self
            .store
            .live_backup(group, backup, replaced_since_ms)
            .await?)
    }

    /// The operation's backup id (from its mpcData) and the backup, if still kept.
    async fn operation_backup(
        &self,
        record: &OperationRecord,
    ) -> Result<(MpcOperationName, Option<BackupRecord>), ApiError> {
        let backup = backup_id(record)?;
        let kept = self.kept_backup(&record.device_group, &backup).await?;
        Ok((backup, kept))
    }

    /// d_srv, opened from its sealed form (kind `backup-share`, id the backup's).
    fn backup_share(&self, backup: &BackupRecord) -> Result<DecryptionShare, ApiError> {
        let bytes = self
            .master_key
            .open(
                BACKUP_SHARE,
                &backup.material.backup.to_string(),
                &backup.material.decryption_share_sealed,
            )
            .map_err(ApiError::internal)?;
        let bytes: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal("a stored d_srv has the wrong length"))?;
        DecryptionShare::from_bytes(bytes).map_err(ApiError::internal)
    }

    /// `work` on the backup as recovery reads it (d_srv opened) with the recovery's contexts, off
    /// the async threads (it checks or makes proofs).
    async fn on_backup<T: Send + 'static>(
        &self,
        backup: BackupRecord,
        names: Names,
        work: impl FnOnce(
            &ServerBackup<'_>,
            &BackupContext<'_>,
            &RecoveryContext<'_>,
        ) -> Result<T, MpcError>
        + Send
        + 'static,
    ) -> Result<Result<T, MpcError>, ApiError> {
        let share = self.backup_share(&backup)?;
        let material = backup.material;
        tokio::task::spawn_blocking(move || {
            let device_key_share = key_share(&material.device_key_share)?;
            let stored = ServerBackup {
                decryption_share: &share,
                device_key_share: &device_key_share,
                device_half: &material.device_ciphertext,
                server_half: &material.server_ciphertext,
            };
            work(&stored, &names.backup(), &names.recovery())
        })
        .await
        .map_err(ApiError::internal)
    }

    /// Round 1: the partial must prove the backup (checked against the stored P_dev, for this
    /// recovery) before anything is counted; then the backup's recovery attempts must allow one
    /// (lock, backoff) and the group's passcode record exists; the OPAQUE login starts. The commit
    /// counts one failure for the backup, on the condition that its attempts and the record are
    /// still what was checked; s_d, the record version and the login state go into the sealed
    /// session.
    pub(super) async fn recovery_round1(
        &self,
        record: &OperationRecord,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let round1 = RecoveryRound1::decode(message)
            .map_err(|_| refused(1, "not a partial decryption and a login request"))?;
        let group = &record.device_group;
        if self.store.is_member(group, &record.device).await? {
            return Err(already_member(&record.device, group));
        }
        let (backup_id, backup) = self.operation_backup(record).await?;
        let backup = backup.ok_or_else(|| backup_gone(&backup_id))?;
        let pairing_id = pairing_id(&backup.material)?;
        let names = Names::new(record, &backup_id, pairing_id);
        let partial = round1.server_half_partial;
        let opened = self
            .on_backup(backup, names, move |stored, backup, recovery| {
                stored.open_server_half(&partial, backup, recovery)
            })
            .await?;
        // No proof of the backup: refused before anything is counted or stored.
        let s_d = opened.map_err(|error| {
            tracing::info!(operation = %record.name, %error, "a recovery's partial did not prove the backup");
            refused(1, "the partial decryption does not prove the backup")
        })?;

        let now = now_ms();
        // First, and again in the commit: a refusal costs no OPAQUE work.
        let attempts = self.store.recovery_attempts(&backup_id).await?;
        check_counted(&attempts, now, self.passcode_backoff, RECOVERY_LOCKED)?;
        let (version, state, response) =
            self.start_login(group, &round1.credential_request).await?;
        let session = RecoverySession {
            share: s_d,
            pairing_id,
            record_version: version,
            rest: Zeroizing::new(state.to_vec()),
        };
        update.session_sealed = Some(self.seal_session(record, 1, &session.to_bytes())?);
        update.reply = Some(answer(2, response)?);
        update.effect = StepEffect::RecoveryAttempt {
            backup: backup_id,
            seen: attempts,
            record_version: version,
            now_ms: now,
            max_failures: MAX_FAILED_LOGINS,
        };
        Ok(update)
    }

    /// Round 3: the login's finalization. Wrong, the operation ends (WRONG_PASSCODE) and the
    /// failure stays counted. Right, the login's MAC must authorize this recovery (else the
    /// operation ends), and the answer is the server's partial on ct_x; the commit clears the
    /// backup's count unless it is locked, on the condition that the record is still the login's.
    pub(super) async fn recovery_round3(
        &self,
        record: &OperationRecord,
        session: Option<&[u8]>,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let kept = RecoverySession::from_bytes(session)?;
        let round3 = RecoveryRound3::decode(message)
            .map_err(|_| refused(3, "not a login finalization and an authorization"))?;
        let version = kept.record_version;
        let group = &record.device_group;
        let group_name = group.to_string();
        let login = match login_finish(
            &kept.rest,
            &round3.credential_finalization,
            &passcode_context(&group_name),
        ) {
            Ok(login) => login,
            Err(PasscodeError::WrongPasscode) => {
                tracing::info!(operation = %record.name, %group, "a recovery's passcode did not verify");
                return ends_with(update, &passcode_error(PasscodeError::WrongPasscode));
            }
            // A finalization that does not parse changes nothing.
            Err(error) => return Err(passcode_error(error)),
        };
        let logged_in = StepEffect::RecoveryLoggedIn {
            backup: backup_id(record)?,
            record_version: version,
            max_failures: MAX_FAILED_LOGINS,
        };
        if !self.passcode_unchanged(record, version).await? {
            return ends_with(update, &passcode_changed());
        }
        let (backup_id, backup) = self.operation_backup(record).await?;
        let Some(backup) = backup else {
            // The passcode was right: the count is cleared, but nothing is left to open.
            update.effect = logged_in;
            return ends_with(update, &backup_gone(&backup_id));
        };
        let names = Names::new(record, &backup_id, kept.pairing_id);
        let authorization = round3.authorization;
        let partial = self
            .on_backup(backup, names, move |stored, backup, recovery| {
                stored.device_half_partial(&login, &authorization, backup, recovery)
            })
            .await?;
        let partial = match partial {
            Ok(partial) => partial,
            Err(MpcError::Rejected(_)) => {
                tracing::warn!(operation = %record.name, "a recovery's login MAC does not authorize it");
                let error = ApiError::new(
                    ErrorCode::Aborted,
                    "the login does not authorize this recovery",
                );
                return ends_with(update, &error);
            }
            Err(error) => return Err(ApiError::internal(error)),
        };
        let session = kept.with_rest(Zeroizing::new(Vec::new()));
        update.session_sealed = Some(self.seal_session(record, 3, &session.to_bytes())?);
        update.reply = Some(answer(4, partial)?);
        update.effect = logged_in;
        Ok(update)
    }

    /// Rounds 5 and 7: the complete refresh of the pairing restored from s_d and the group's
    /// root key and chain code (rebuilt each round; the refresh's state is kept sealed between
    /// them). Round 7 yields the new device's pairing (epoch 1), stored pending until round 9.
    pub(super) async fn recovery_refresh(
        &self,
        record: &OperationRecord,
        session: Option<&[u8]>,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let round = update.round;
        let kept = RecoverySession::from_bytes(session)?;
        if !self.passcode_unchanged(record, kept.record_version).await? {
            return ends_with(update, &passcode_changed());
        }
        let group = self.active_group(&record.device_group).await?;
        let (root, chain_code) = self.group_root(&group)?;
        // The backup itself is not needed any more (it may even be gone): its id and the
        // pairing id kept in the session make the contexts.
        let names = Names::new(record, &backup_id(record)?, kept.pairing_id);
        let share = kept.share.clone();
        let refresh = (round == 7).then(|| kept.rest.clone());
        let message = message.to_vec();
        let output = run_blocking(move || {
            let recovery = names.recovery();
            let restored = restore_server(&share, &root, &chain_code, &names.backup(), &recovery)?;
            let mut refresh = match refresh {
                Some(bytes) => Refresh::from_bytes(&bytes)?,
                None => server_refresh(&restored, &recovery)?,
            };
            let step = refresh.handle(&restored, &message)?;
            let kept = match step.output {
                Some(_) => None,
                None => Some(refresh.to_bytes()?),
            };
            Ok((step, kept))
        })
        .await;
        let (step, refreshed) = match output {
            Ok(output) => output,
            Err(error) => {
                update.state = OperationState::Failed;
                return self.failed_round(record, error, update);
            }
        };
        let reply = step
            .reply
            .ok_or_else(|| ApiError::internal("a recovery's refresh step without a reply"))?;
        update.reply = Some(answer(round + 1, reply)?);
        match (round, step.output, refreshed) {
            (5, None, Some(refresh)) => {
                let session = kept.with_rest(refresh);
                update.session_sealed = Some(self.seal_session(record, 5, &session.to_bytes())?);
            }
            (7, Some(pairing), None) => {
                // Round 9 still checks the record version.
                let session = kept.with_rest(Zeroizing::new(Vec::new()));
                update.session_sealed = Some(self.seal_session(record, 7, &session.to_bytes())?);
                update.effect =
                    self.recovered_pairing(record, &pairing, &root, kept.record_version)?;
            }
            _ => return Err(ApiError::internal("a recovery's refresh out of step")),
        }
        Ok(update)
    }

    /// Round 7's effect: the new device's pairing, sealed like key generation's (kind
    /// `pairing`, id `{group}/{device}/{epoch}`), pending its confirmation.
    fn recovered_pairing(
        &self,
        record: &OperationRecord,
        pairing: &Pairing,
        root: &[u8; 33],
        record_version: u64,
    ) -> Result<StepEffect, ApiError> {
        let public = pairing.public();
        if pairing.epoch() != NEW_EPOCH || public.root_public_key != *root {
            return Err(ApiError::internal(
                "a recovery refreshed into another epoch or key",
            ));
        }
        let bytes = pairing.to_bytes().map_err(ApiError::internal)?;
        Ok(StepEffect::RecoveredPairing {
            record_version,
            epoch: NEW_EPOCH,
            pairing_id: public.id.to_vec(),
            pairing_sealed: self
                .master_key
                .seal(PAIRING, &pairing_sealing_id(record, NEW_EPOCH), &bytes)
                .map_err(ApiError::internal)?,
        })
    }

    /// Round 9: the group's passcode must still be the one the recovery logged in with (else
    /// the operation ends), and the device's confirmation that of the pending pairing (a hash of
    /// all its public facts), else nothing changes. The commit, on the same two conditions,
    /// confirms the pairing, makes the device a device of the group, records DEVICE_ADDED,
    /// queues the device's archive when the pool has export on, and ends the operation, all at
    /// once.
    pub(super) async fn recovery_round9(
        &self,
        record: &OperationRecord,
        session: Option<&[u8]>,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let kept = RecoverySession::from_bytes(session)?;
        if !self.passcode_unchanged(record, kept.record_version).await? {
            return ends_with(update, &passcode_changed());
        }
        let archive = self.confirmed_pairing(record, NEW_EPOCH, message).await?;
        update.response = Some(
            serde_json::to_string(&OperationResponse::DeviceAdded(DeviceAdded {
                device_group: record.device_group.clone(),
                device: record.device.clone(),
                epoch: NEW_EPOCH,
            }))
            .map_err(ApiError::internal)?,
        );
        update.effect = StepEffect::DeviceAdded {
            record_version: kept.record_version,
            epoch: NEW_EPOCH,
            archive,
        };
        Ok(update)
    }

    /// Whether the group's passcode record is still at `version` (the recovery's login's).
    async fn passcode_unchanged(
        &self,
        record: &OperationRecord,
        version: u64,
    ) -> Result<bool, ApiError> {
        let current = self.store.passcode_record(&record.device_group).await?;
        Ok(current.is_some_and(|current| current.version == version))
    }

    /// Why a recovery step's commit found its condition gone (nothing was written): a lock or
    /// backoff reached meanwhile is told as such; anything else is ABORTED.
    pub(super) async fn recovery_condition_failed(
        &self,
        record: &OperationRecord,
        step: &StepUpdate,
    ) -> ApiError {
        let aborted = |message: &str| ApiError::new(ErrorCode::Aborted, message);
        match &step.effect {
            StepEffect::RecoveryAttempt {
                backup,
                record_version,
                ..
            } => {
                let group = &record.device_group;
                let attempts = match self.store.recovery_attempts(backup).await {
                    Ok(attempts) => attempts,
                    Err(error) => return error.into(),
                };
                if let Err(refusal) =
                    check_counted(&attempts, now_ms(), self.passcode_backoff, RECOVERY_LOCKED)
                {
                    return refusal;
                }
                match self.store.passcode_record(group).await {
                    Ok(Some(current)) if current.version == *record_version => aborted(
                        "another recovery attempt of this wallet was counted at the same time: \
                         send round 1 again",
                    ),
                    Ok(_) => aborted("the passcode changed meanwhile: send round 1 again"),
                    Err(error) => error.into(),
                }
            }
            StepEffect::RecoveryLoggedIn { .. } => passcode_changed(),
            StepEffect::RecoveredPairing { record_version, .. }
            | StepEffect::DeviceAdded { record_version, .. } => {
                match self.passcode_unchanged(record, *record_version).await {
                    Ok(false) => passcode_changed(),
                    Ok(true) if matches!(step.effect, StepEffect::RecoveredPairing { .. }) => {
                        aborted(
                            "the device has a pairing in this group already (another \
                             recovery): start again only if it is not a device of the group",
                        )
                    }
                    Ok(true) => aborted("the recovered pairing is no longer pending"),
                    Err(error) => error,
                }
            }
            _ => ApiError::internal("a recovery step with another effect"),
        }
    }
}

/// The operation's backup id, from its mpcData.
fn backup_id(record: &OperationRecord) -> Result<MpcOperationName, ApiError> {
    match protocol(record)? {
        MpcProtocol::AddDevice { backup, .. } => Ok(backup),
        _ => Err(ApiError::internal("an AddDevice of another protocol")),
    }
}

/// The backed-up pairing's id, as stored.
fn pairing_id(backup: &NewBackup) -> Result<[u8; 32], ApiError> {
    backup
        .pairing_id
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("a stored pairing id has the wrong length"))
}

/// P_dev, as stored.
fn key_share(stored: &[u8]) -> Result<[u8; 33], MpcError> {
    stored
        .try_into()
        .map_err(|_| MpcError::InvalidState("a stored P_dev has the wrong length".into()))
}
