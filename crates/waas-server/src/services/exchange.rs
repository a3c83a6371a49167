//! The MPC exchange: one device message in, the server's answer out, as one durable step
//! (docs/protocol/operations.md):
//!
//! 1. take this process's lock on the operation (two copies of a request wait for each other);
//! 2. read the operation: a repeat of the last answered round gets the stored answer, a different
//!    message for it is refused (ABORTED), a round out of order is refused;
//! 3. open the sealed session, run the engine's phase, seal the new session;
//! 4. commit, if the operation is still at the round read (compare and swap): the answer, the
//!    input's hash, the new session in place of the consumed one, and any pairing or signature
//!    (or, for a device archive's or backup's round 1, the use of its passcode login, if that
//!    login still may be used: `archive.rs`, `backup.rs`; for a backup's round 5, the group's
//!    current backup in place of the one before);
//! 5. answer.
//!
//! Nothing is sent before the commit, so a crash anywhere leaves the last committed round, and
//! the device's retry either gets the stored answer or runs the next phase from the stored
//! session. A phase's output that lost the compare and swap is dropped unsent: at most one
//! output of each phase ever leaves the server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use waas_api::auth::reason;
use waas_api::resources::{
    ExchangeRequest, ExchangeResponse, MpcProtocol, OperationMetadata, OperationResponse,
    Signature as SignatureResource, SignedPayload,
};
use waas_api::{ErrorBody, ErrorCode, MpcOperationName, OperationName};
use waas_mpc::{
    Keygen, MAX_MESSAGE_BYTES, MpcError, Pairing, SessionId, Signature, Signing, SigningRequest,
    parse_path,
};
use zeroize::Zeroizing;

use super::archive::device_operation;
use super::operations::protocol;
use super::wallets::{CHAIN_CODE, wallet_resource};
use super::{Services, hex0x, parse_hex0x};
use crate::ApiError;
use crate::auth::{Principal, revoked};
use crate::store::{
    Committed, NewOperation, OperationKind, OperationRecord, OperationState, PairingState,
    StepEffect, StepUpdate, Store, StoreError,
};
use crate::time::now_ms;

/// Sealing kind of a server MPC session between rounds.
const SESSION: &str = "mpc-session";
/// Sealing kind of the server's half of a pairing.
pub(super) const PAIRING: &str = "pairing";
/// The device's last key-generation message: it has its half (see docs/protocol/operations.md).
const KEYGEN_CONFIRM_ROUND: u8 = 5;
/// How many times a pairing that failed a check is retired before the request is answered with
/// the store's error ([`Services::retire_uncommitted`]).
const RETIRE_ATTEMPTS: u32 = 5;
/// How long a session may wait for the device's next round. Rounds follow each other within
/// milliseconds; a session kept longer is only a liability (a restored backup could replay it).
const SESSION_IDLE_LIMIT_MS: i64 = 10 * 60 * 1000;
/// How long an operation may wait for the device to start it.
const OPERATION_START_LIMIT_MS: i64 = 60 * 60 * 1000;
/// What an operation that failed a check says to clients: which check failed stays in the log,
/// because telling a cheating peer more than "it failed" helps a selective-abort attack.
const FAILED_CHECK: &str = "the MPC operation failed a check and was stopped";

/// The key-generation context both sides derive from the operation and the device.
fn keygen_context(mpc_operation: &MpcOperationName, device: &str) -> SessionId {
    SessionId::derive(
        "waas-sdk keygen",
        &[mpc_operation.to_string().as_bytes(), device.as_bytes()],
    )
}

/// Why a phase produced nothing.
pub(super) enum PhaseError {
    /// The engine refused.
    Mpc(MpcError),
    /// The engine panicked: treated as a failed check, since its kept state may be half used.
    Panicked,
}

/// What running one phase produced.
struct PhaseOutput {
    reply: Option<Vec<u8>>,
    session: Option<Zeroizing<Vec<u8>>>,
    pairing: Option<Pairing>,
    signature: Option<Signature>,
}

impl<S: Store> Services<S> {
    /// The exchange endpoint: see the module documentation.
    pub async fn exchange(
        &self,
        caller: &Principal,
        name: &MpcOperationName,
        request: ExchangeRequest,
    ) -> Result<ExchangeResponse, ApiError> {
        let Principal::Device(device) = caller else {
            return Err(ApiError::denied(
                "only the operation's device exchanges messages",
            ));
        };
        if request.message.len() > MAX_MESSAGE_BYTES.div_ceil(3) * 4 {
            return Err(ApiError::invalid(format!(
                "a message has at most {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        let message = URL_SAFE_NO_PAD
            .decode(&request.message)
            .map_err(|_| ApiError::invalid("message must be unpadded base64url"))?;
        let input_hash = input_hash(request.round, &message);

        let operation = name.operation_name();
        let _guard = self.operation_locks.lock(&operation.to_string()).await;
        let record = self
            .store
            .operation(&operation)
            .await?
            .filter(|record| record.device_group == name.device_group_name())
            .ok_or_else(|| ApiError::not_found(name))?;
        if record.device != *device {
            return Err(ApiError::denied(format!(
                "{name} is computed by another device"
            )));
        }
        // Revoked after this request was authenticated: the revocation failed the operation.
        if record.state == OperationState::Failed && failed_by_revocation(&record) {
            return Err(revoked());
        }
        if let Some(answer) = stored_answer(&record, request.round, &input_hash) {
            return answer;
        }
        if is_stale(&record, now_ms()) {
            // This operation only: the periodic sweep (lib.rs) does the others, so a client
            // sending rounds for stale operations cannot make the server sweep at will.
            self.expire_operation(&operation).await?;
            return Err(ApiError::new(
                ErrorCode::Aborted,
                "the operation expired: start a new one",
            ));
        }
        let step = match self
            .run_round(name, &record, request.round, message, input_hash.clone())
            .await
        {
            Ok(step) => step,
            Err(error) => return Err(self.unless_revoked(&operation, error).await),
        };
        let committed = self
            .store
            .commit_step(&operation, record.round, &step)
            .await;
        if matches!(step.effect, StepEffect::RetirePairing)
            && !matches!(committed, Ok(Committed::Yes))
        {
            return Err(self.retire_uncommitted(&record, &step).await);
        }
        match committed? {
            Committed::Yes => {}
            // Revoked while this round ran: nothing was written, nothing is sent.
            Committed::DeviceRevoked => return Err(revoked()),
            // A recovery's condition (recovery.rs): nothing was written; why is told.
            Committed::ConditionFailed if record.kind == OperationKind::AddDevice => {
                return Err(self.recovery_condition_failed(&record, &step).await);
            }
            // The login an archive named was used (or revoked) meanwhile: nothing was written,
            // and the device may send round 1 again with another login.
            Committed::ConditionFailed => {
                return Err(ApiError::invalid(
                    "the passcode login was used or revoked meanwhile: log in again",
                )
                .with_reason(waas_api::passcode::reason::LOGIN_INVALID));
            }
            Committed::RoundTaken => {
                // Another server answered this round first: its answer stands, ours is dropped
                // unsent.
                let now = self
                    .store
                    .operation(&operation)
                    .await?
                    .ok_or_else(|| ApiError::not_found(name))?;
                return stored_answer(&now, request.round, &input_hash).unwrap_or_else(|| {
                    Err(ApiError::new(
                        ErrorCode::Aborted,
                        "the operation moved on concurrently",
                    ))
                });
            }
        }
        tracing::info!(operation = %operation, round = request.round, state = ?step.state, "exchange step");
        answer(&step)
    }

    /// The engine found the device's message failing a terminal check, but the step that retires
    /// the pairing did not commit: another replica answered the round first (from a read before
    /// this one's commit), or the commit failed. The check did run on the pairing's kept state,
    /// so the pairing is retired all the same, in a transaction of its own (tried again on a
    /// transient error): otherwise a device could race a cheating message against an honest one
    /// on two replicas and learn whether the check failed without losing the pairing, one
    /// selective-abort probe per signing (sign.md). Returns the answer: the failed check, or
    /// the store's error if the pairing could not be retired. `step` is the failed check's
    /// (see [`Self::failed_round`]): its error is what the other operations fail with.
    async fn retire_uncommitted(&self, record: &OperationRecord, step: &StepUpdate) -> ApiError {
        let failed = ApiError::new(ErrorCode::Aborted, FAILED_CHECK);
        let Some(error) = step.error.as_deref() else {
            return ApiError::internal("a failed check without its error");
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .store
                .retire_pairing(&record.device_group, &record.device, record.epoch, error)
                .await
            {
                Ok(()) => {
                    tracing::warn!(operation = %record.name, "the pairing is retired after a failed check that another step overtook");
                    return failed;
                }
                Err(StoreError::Unavailable(_)) if attempt < RETIRE_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::error!(operation = %record.name, %error, "a pairing that failed a check could not be retired");
                    return error.into();
                }
            }
        }
    }

    /// `error`, or the refusal of a revoked device if the operation's device was revoked since
    /// the operation was read: the revocation deletes the pairing a round may be about to read.
    async fn unless_revoked(&self, operation: &OperationName, error: ApiError) -> ApiError {
        match self.store.operation(operation).await {
            Ok(Some(now)) if failed_by_revocation(&now) => revoked(),
            _ => error,
        }
    }

    /// Checks that `round` is the next one and runs it; an error here stores nothing, except a
    /// failed check, which ends the operation (returned as a step in state Failed).
    async fn run_round(
        &self,
        name: &MpcOperationName,
        record: &OperationRecord,
        round: u8,
        message: Vec<u8>,
        input_hash: Vec<u8>,
    ) -> Result<StepUpdate, ApiError> {
        let expected = match (record.kind, record.round) {
            (_, 0) => 1,
            (_, 1) => 3,
            (OperationKind::CreateDeviceGroup, 3) => KEYGEN_CONFIRM_ROUND,
            (OperationKind::PrepareDeviceBackup | OperationKind::AddDevice, 3) => 5,
            (OperationKind::AddDevice, 5) => 7,
            (OperationKind::AddDevice, 7) => 9,
            _ => {
                return Err(ApiError::internal(
                    "an unfinished operation past its last round",
                ));
            }
        };
        if round != expected {
            return Err(ApiError::precondition(format!(
                "expected the message of round {expected}, got round {round}"
            )));
        }
        let step = |state, reply: Option<ExchangeResponse>| -> Result<StepUpdate, ApiError> {
            Ok(StepUpdate {
                round,
                input_hash: input_hash.clone(),
                reply: reply
                    .map(|reply| serde_json::to_string(&reply))
                    .transpose()
                    .map_err(ApiError::internal)?,
                session_sealed: None,
                state,
                response: None,
                error: None,
                effect: StepEffect::None,
            })
        };
        let session_id = |round: u8| format!("{}/{round}", record.name);
        let session = record
            .session_sealed
            .as_ref()
            .map(|sealed| {
                self.master_key
                    .open(SESSION, &session_id(record.round), sealed)
            })
            .transpose()
            .map_err(ApiError::internal)?;

        if record.kind == OperationKind::CreateDeviceGroup && round == KEYGEN_CONFIRM_ROUND {
            return self
                .confirm_keygen(record, &message, step(OperationState::Done, Some(done()))?)
                .await;
        }
        if record.kind == OperationKind::PrepareDeviceArchive {
            // No MPC session: the archive's rounds are the server's own steps.
            return match round {
                1 => {
                    self.archive_round1(record, &message, step(OperationState::Running, None)?)
                        .await
                }
                _ => {
                    self.archive_round3(record, &message, step(OperationState::Done, Some(done()))?)
                }
            };
        }
        if record.kind == OperationKind::PrepareDeviceBackup {
            // No MPC engine: the backup's rounds are the server's own steps (backup.rs), its
            // kept values in the sealed session.
            let session = session.as_deref().map(Vec::as_slice);
            return match round {
                1 => {
                    self.backup_round1(record, &message, step(OperationState::Running, None)?)
                        .await
                }
                3 => {
                    let update = step(OperationState::Running, None)?;
                    self.backup_round3(record, session, &message, update).await
                }
                _ => {
                    let update = step(OperationState::Done, Some(done()))?;
                    self.backup_round5(record, session, &message, update).await
                }
            };
        }
        if record.kind == OperationKind::AddDevice {
            // The recovery's rounds (recovery.rs): the server's own steps, then a refresh.
            let session = session.as_deref().map(Vec::as_slice);
            let update = step(OperationState::Running, None)?;
            return match round {
                1 => self.recovery_round1(record, &message, update).await,
                3 => {
                    self.recovery_round3(record, session, &message, update)
                        .await
                }
                5 | 7 => {
                    self.recovery_refresh(record, session, &message, update)
                        .await
                }
                _ => {
                    let update = step(OperationState::Done, Some(done()))?;
                    self.recovery_round9(record, session, &message, update)
                        .await
                }
            };
        }
        let output = match protocol(record)? {
            MpcProtocol::CreateDeviceGroup => {
                let context = keygen_context(name, &record.device.to_string());
                run_blocking(move || run_keygen(context, session, &message)).await
            }
            MpcProtocol::CreateSignature {
                derivation_path,
                digest,
                ..
            } => {
                let pairing = self.pairing(record).await?;
                let path = parse_path(&derivation_path).map_err(ApiError::internal)?;
                let digest = parse_hex0x::<32>(&digest, "digest").map_err(ApiError::internal)?;
                let operation = name.to_string();
                run_blocking(move || {
                    let request = SigningRequest {
                        operation: &operation,
                        path: &path,
                        digest,
                    };
                    run_signing(&pairing, &request, session, &message)
                })
                .await
            }
            _ => return Err(ApiError::internal("an operation of an unknown protocol")),
        };
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                return self.failed_round(record, error, step(OperationState::Failed, None)?);
            }
        };

        let reply = output.reply.map(|message| ExchangeResponse {
            round: Some(round + 1),
            message: Some(URL_SAFE_NO_PAD.encode(message)),
            done: output.signature.is_some(),
        });
        let mut update = step(
            if output.signature.is_some() {
                OperationState::Done
            } else {
                OperationState::Running
            },
            reply,
        )?;
        update.session_sealed = output
            .session
            .map(|session| self.seal_session(record, round, &session))
            .transpose()?;
        if let Some(pairing) = output.pairing {
            update.effect = self.keygen_finished(record, &pairing)?;
        }
        if let Some(signature) = output.signature {
            update.response = Some(signature_response(record, &signature)?);
        }
        Ok(update)
    }

    /// `session` sealed as the operation's session after `round` (the exchange opens it for the
    /// next round with the same kind and id).
    pub(super) fn seal_session(
        &self,
        record: &OperationRecord,
        round: u8,
        session: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        self.master_key
            .seal(SESSION, &format!("{}/{round}", record.name), session)
            .map_err(ApiError::internal)
    }

    /// Round 5 of key generation: the device sends the confirmation of the pairing it stored
    /// (a hash of all its public facts); the wallet is done.
    async fn confirm_keygen(
        &self,
        record: &OperationRecord,
        message: &[u8],
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let archive = self
            .confirmed_pairing(record, record.epoch, message)
            .await?;
        let OperationMetadata::CreateMpcWallet { mpc_wallet, .. } =
            serde_json::from_str(&record.metadata).map_err(ApiError::internal)?
        else {
            return Err(ApiError::internal("key generation without a wallet"));
        };
        let wallet = self
            .store
            .wallet(&mpc_wallet)
            .await?
            .ok_or_else(|| ApiError::internal("key generation for a missing wallet"))?;
        update.response = Some(
            serde_json::to_string(&OperationResponse::MpcWallet(wallet_resource(&wallet)))
                .map_err(ApiError::internal)?,
        );
        update.effect = StepEffect::KeygenConfirmed { archive };
        Ok(update)
    }

    /// The last round of key generation and of a recovery: `confirmation` must be that of the
    /// server's pending half at `epoch` for the operation's group and device (a hash of all its
    /// public facts), the pairing the device says it stored; another is refused and changes
    /// nothing. Returns the device's archive operation to queue with the confirmation, if any.
    pub(super) async fn confirmed_pairing(
        &self,
        record: &OperationRecord,
        epoch: u64,
        confirmation: &[u8],
    ) -> Result<Option<NewOperation>, ApiError> {
        let stored = self
            .store
            .pairing(&record.device_group, &record.device, epoch)
            .await?
            .filter(|stored| stored.state == PairingState::Pending)
            .ok_or_else(|| ApiError::internal("a confirmation without a pending pairing"))?;
        let pairing = self.open_pairing_at(record, epoch, &stored.pairing_sealed)?;
        // Public values: an ordinary comparison is fine.
        if pairing.public().confirmation() != confirmation {
            return Err(ApiError::invalid(
                "the confirmation does not match the pairing the server made",
            ));
        }
        self.queued_archive(record, epoch, &stored.pairing_id).await
    }

    /// The device's PrepareDeviceArchive on its new pairing (`epoch`, `pairing_id`), if the pool
    /// has export on: queued in the commit that confirms the pairing, so it is listed for the
    /// device as soon as the pairing is (pools' export setting never changes).
    async fn queued_archive(
        &self,
        record: &OperationRecord,
        epoch: u64,
        pairing_id: &[u8],
    ) -> Result<Option<NewOperation>, ApiError> {
        let export = self
            .store
            .pool(&record.device_group.pool_name())
            .await?
            .ok_or_else(|| ApiError::internal("an operation in a missing pool"))?
            .export_enabled;
        export
            .then(|| {
                device_operation(
                    OperationKind::PrepareDeviceArchive,
                    &record.device_group,
                    &record.device,
                    epoch,
                    pairing_id,
                    record.device.to_string(),
                )
            })
            .transpose()
    }

    /// The effect of key generation's last server phase: the server's half, sealed, pending the
    /// device's confirmation, and the group's root key and sealed chain code.
    fn keygen_finished(
        &self,
        record: &OperationRecord,
        pairing: &Pairing,
    ) -> Result<StepEffect, ApiError> {
        let public = pairing.public();
        let bytes = pairing.to_bytes().map_err(ApiError::internal)?;
        Ok(StepEffect::KeygenFinished {
            pairing_id: public.id.to_vec(),
            pairing_sealed: self
                .master_key
                .seal(PAIRING, &pairing_aad_id(record), &bytes)
                .map_err(ApiError::internal)?,
            root_public_key: public.root_public_key.to_vec(),
            chain_code_sealed: self
                .master_key
                .seal(
                    CHAIN_CODE,
                    &record.device_group.to_string(),
                    &public.chain_code,
                )
                .map_err(ApiError::internal)?,
        })
    }

    /// The server's half of the operation's pairing, which must be confirmed.
    pub(super) async fn pairing(&self, record: &OperationRecord) -> Result<Pairing, ApiError> {
        let stored = self
            .store
            .pairing(&record.device_group, &record.device, record.epoch)
            .await?
            .ok_or_else(|| ApiError::precondition("the operation's pairing epoch is gone"))?;
        if stored.state != PairingState::Confirmed {
            return Err(ApiError::precondition(
                "the pairing is retired: a signing session with it failed a check",
            ));
        }
        self.open_pairing(record, &stored.pairing_sealed)
    }

    fn open_pairing(&self, record: &OperationRecord, sealed: &[u8]) -> Result<Pairing, ApiError> {
        self.open_pairing_at(record, record.epoch, sealed)
    }

    /// The pairing of the operation's group and device at `epoch`, opened from its sealed form.
    fn open_pairing_at(
        &self,
        record: &OperationRecord,
        epoch: u64,
        sealed: &[u8],
    ) -> Result<Pairing, ApiError> {
        let bytes = self
            .master_key
            .open(PAIRING, &pairing_sealing_id(record, epoch), sealed)
            .map_err(ApiError::internal)?;
        Pairing::from_bytes(&bytes).map_err(ApiError::internal)
    }

    /// Fails every operation that waited too long (see the limits above).
    pub(crate) async fn expire_operations(&self) -> Result<u64, ApiError> {
        let now = now_ms();
        let expired = self
            .store
            .expire_operations(
                now - OPERATION_START_LIMIT_MS,
                now - SESSION_IDLE_LIMIT_MS,
                &expiry_error()?,
            )
            .await?;
        if expired > 0 {
            tracing::info!(expired, "expired operations");
        }
        Ok(expired)
    }

    /// Fails `operation` if it waited too long (see the limits above).
    async fn expire_operation(&self, operation: &OperationName) -> Result<(), ApiError> {
        let now = now_ms();
        let expired = self
            .store
            .expire_operation(
                operation,
                now - OPERATION_START_LIMIT_MS,
                now - SESSION_IDLE_LIMIT_MS,
                &expiry_error()?,
            )
            .await?;
        if expired {
            tracing::info!(%operation, "expired an operation");
        }
        Ok(())
    }

    /// An engine error: a message that could not be read leaves everything as it was; anything
    /// else ends the operation (and a cheating peer, or a panic, retires the pairing).
    pub(super) fn failed_round(
        &self,
        record: &OperationRecord,
        error: PhaseError,
        mut update: StepUpdate,
    ) -> Result<StepUpdate, ApiError> {
        let retire = match error {
            PhaseError::Panicked => {
                tracing::error!(operation = %record.name, "the engine panicked: the operation fails");
                true
            }
            PhaseError::Mpc(error) => match error {
                // Refused before the engine touched its kept state: nothing changes.
                MpcError::Malformed(_)
                | MpcError::WrongSession
                | MpcError::WrongProtocol
                | MpcError::WrongSender { .. }
                | MpcError::WrongRound { .. } => return Err(ApiError::invalid(error.to_string())),
                // Anything else may have used the kept state: the operation ends, so that no
                // phase runs twice on it.
                error => {
                    tracing::warn!(operation = %record.name, %error, "the device's message failed a check");
                    error.is_terminal()
                }
            },
        };
        if retire && record.kind == OperationKind::CreateSignature {
            update.effect = StepEffect::RetirePairing;
        }
        update.error = Some(
            serde_json::to_string(&ErrorBody::new(ErrorCode::Aborted, FAILED_CHECK))
                .map_err(ApiError::internal)?,
        );
        Ok(update)
    }
}

/// Whether a failed operation was failed by its device's revocation.
fn failed_by_revocation(record: &OperationRecord) -> bool {
    record
        .error
        .as_deref()
        .and_then(|json| serde_json::from_str::<ErrorBody>(json).ok())
        .is_some_and(|error| error.reason.as_deref() == Some(reason::DEVICE_REVOKED))
}

/// What an expired operation says to clients (its stored error body).
fn expiry_error() -> Result<String, ApiError> {
    serde_json::to_string(&ErrorBody::new(
        ErrorCode::Aborted,
        "the operation expired before the device finished it",
    ))
    .map_err(ApiError::internal)
}

/// Whether an open operation waited too long for the device (see the limits above).
fn is_stale(record: &OperationRecord, now: i64) -> bool {
    match record.state {
        OperationState::Pending => now - record.create_time_ms > OPERATION_START_LIMIT_MS,
        OperationState::Running => now - record.update_time_ms > SESSION_IDLE_LIMIT_MS,
        OperationState::Done | OperationState::Failed => false,
    }
}

/// The sealing id of the operation's pairing: its group, device and epoch.
fn pairing_aad_id(record: &OperationRecord) -> String {
    pairing_sealing_id(record, record.epoch)
}

/// The sealing id of the pairing of the operation's group and device at `epoch`.
pub(super) fn pairing_sealing_id(record: &OperationRecord, epoch: u64) -> String {
    format!("{}/{}/{epoch}", record.device_group, record.device)
}

fn input_hash(round: u8, message: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"waas-sdk exchange input\0");
    hash.update([round]);
    hash.update(message);
    hash.finalize().to_vec()
}

fn done() -> ExchangeResponse {
    ExchangeResponse {
        round: None,
        message: None,
        done: true,
    }
}

/// The answer for a round already committed, or the refusal for a round that cannot run;
/// `None` if `round` may run now.
fn stored_answer(
    record: &OperationRecord,
    round: u8,
    input_hash: &[u8],
) -> Option<Result<ExchangeResponse, ApiError>> {
    let answered = record.round > 0 && round == record.round;
    if answered && record.input_hash.as_deref() == Some(input_hash) {
        return Some(match (&record.reply, &record.error) {
            (Some(reply), _) => serde_json::from_str(reply).map_err(ApiError::internal),
            (None, Some(error)) => Err(stored_error(error)),
            (None, None) => Err(ApiError::internal("a committed round without an answer")),
        });
    }
    if record.state.is_finished() {
        return Some(Err(ApiError::precondition("the operation has finished")));
    }
    if answered {
        return Some(Err(ApiError::new(
            ErrorCode::Aborted,
            format!("round {round} was answered for another message"),
        )));
    }
    if round < record.round {
        return Some(Err(ApiError::new(
            ErrorCode::Aborted,
            format!("round {round} is over"),
        )));
    }
    None
}

fn stored_error(json: &str) -> ApiError {
    match serde_json::from_str::<ErrorBody>(json) {
        // With its reason: a recovery's wrong passcode is told as WRONG_PASSCODE again.
        Ok(body) => ApiError::from_body(body),
        Err(error) => ApiError::internal(error),
    }
}

/// What a just-committed step answers.
fn answer(step: &StepUpdate) -> Result<ExchangeResponse, ApiError> {
    match (&step.reply, &step.error) {
        (Some(reply), _) => serde_json::from_str(reply).map_err(ApiError::internal),
        (None, Some(error)) => Err(stored_error(error)),
        (None, None) => Err(ApiError::internal("a step without an answer")),
    }
}

fn signature_response(record: &OperationRecord, signature: &Signature) -> Result<String, ApiError> {
    let MpcProtocol::CreateSignature {
        mpc_key,
        digest,
        typed_payload,
        ..
    } = protocol(record)?
    else {
        return Err(ApiError::internal("a signature from another protocol"));
    };
    let bytes = signature.to_ethereum_bytes();
    let resource = SignatureResource {
        mpc_key,
        payload: digest,
        typed_payload,
        signed_payload: SignedPayload {
            r: hex0x(&signature.r),
            s: hex0x(&signature.s),
            v: bytes[64],
            signature: hex0x(&bytes),
        },
    };
    serde_json::to_string(&OperationResponse::Signature(resource)).map_err(ApiError::internal)
}

/// Runs CPU-heavy engine work off the async threads.
pub(super) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MpcError> + Send + 'static,
) -> Result<T, PhaseError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(PhaseError::Mpc),
        Err(_) => Err(PhaseError::Panicked),
    }
}

fn run_keygen(
    context: SessionId,
    session: Option<Zeroizing<Vec<u8>>>,
    message: &[u8],
) -> Result<PhaseOutput, MpcError> {
    let mut keygen = match session {
        Some(bytes) => Keygen::from_bytes(&bytes)?,
        None => Keygen::new_server(context),
    };
    let step = keygen.handle(message)?;
    let session = match step.output {
        Some(_) => None,
        None => Some(keygen.to_bytes()?),
    };
    Ok(PhaseOutput {
        reply: step.reply,
        session,
        pairing: step.output,
        signature: None,
    })
}

fn run_signing(
    pairing: &Pairing,
    request: &SigningRequest<'_>,
    session: Option<Zeroizing<Vec<u8>>>,
    message: &[u8],
) -> Result<PhaseOutput, MpcError> {
    let mut signing = match session {
        Some(bytes) => Signing::from_bytes(&bytes)?,
        None => Signing::new_server(pairing, request)?,
    };
    let step = signing.handle(pairing, message)?;
    let session = match step.output {
        Some(_) => None,
        None => Some(signing.to_bytes()?),
    };
    Ok(PhaseOutput {
        reply: step.reply,
        session,
        pairing: None,
        signature: step.output,
    })
}
