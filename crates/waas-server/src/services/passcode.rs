//! The passcode at the server (docs/protocol/passcode.md): OPAQUE registration, resets and
//! logins, and the count of failed attempts that limits online guessing.
//!
//! Every OPRF evaluation the server gives out for a group is either counted (a login start, or
//! the start of a first registration) or is the one evaluation a fresh login of the old passcode
//! authorizes (a reset's start): with uncounted ones an attacker could test guesses against a
//! login's masked envelope offline. Each record version has its own OPRF key, so a reset's
//! evaluation (under the key of the version the reset makes) tests nothing against the record in
//! place. Counting, and marking a login's one reset start, happen in the database, committed
//! durably before the answer.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::passcode::{
    FREE_FAILED_LOGINS, LOGIN_LIFETIME_SECS, MAX_FAILED_LOGINS, PasscodeLoginFinishRequest,
    PasscodeLoginFinishResponse, PasscodeLoginStartRequest, PasscodeLoginStartResponse,
    PasscodeRegisterFinishRequest, PasscodeRegisterFinishResponse, PasscodeRegisterStartRequest,
    PasscodeRegisterStartResponse, PasscodeReset, purpose, reason,
};
use waas_api::{DeviceGroupName, DeviceName, ErrorCode, PasscodeLoginName};
use waas_mpc::passcode::{
    PasscodeContext, PasscodeError, ServerKeys, SessionSecret, login_finish, registration_record,
};

use super::Services;
use super::recovery::passcode_changed;
use super::wallets::new_id;
use crate::auth::Principal;
use crate::sealing::MasterKey;
use crate::store::{Attempts, LoginOutcome, LoginState, LoginUse, NewLogin, PasscodeRecord, Store};
use crate::time::now_ms;
use crate::{ApiError, ServerError};

/// The name of the server's OPAQUE keys among its secrets, and their sealing id.
const SERVER_KEYS: &str = "opaque";
/// Sealing kind of the server's own secrets.
const SERVER_SECRET: &str = "server-secret";
/// Sealing kind of a group's OPAQUE record (id: `{group}/{version}`).
const RECORD: &str = "passcode-record";
/// Sealing kind of the server's state between `loginStart` and `loginFinish` (id: the login).
const LOGIN_STATE: &str = "passcode-login";
/// Sealing kind of a finished login's session secret (id: the login).
const LOGIN_SESSION: &str = "passcode-session";
/// The longest OPAQUE message or authorization accepted, in base64url characters. The largest
/// message (a RegistrationUpload) has under 200 bytes; the bound keeps decoding cheap.
const MAX_FIELD_CHARS: usize = 1024;
/// How long a login may be finished after its start, and used after it finished.
pub(super) const LOGIN_LIFETIME_MS: i64 = LOGIN_LIFETIME_SECS * 1000;

/// The server's OPAQUE keys: made on the first start and stored sealed; every later start (and
/// every other process on the same database) reads the same ones back.
pub(super) async fn server_keys<S: Store>(
    store: &S,
    master_key: &MasterKey,
) -> Result<ServerKeys, ServerError> {
    let secret = |error: PasscodeError| ServerError::ServerSecret(error.to_string());
    let fresh = ServerKeys::generate().map_err(secret)?;
    let sealed = master_key.seal(SERVER_SECRET, SERVER_KEYS, &fresh.to_bytes())?;
    let stored = store.server_secret(SERVER_KEYS, &sealed).await?;
    if stored == sealed {
        tracing::info!("created the server's passcode (OPAQUE) keys");
    }
    let bytes = master_key.open(SERVER_SECRET, SERVER_KEYS, &stored)?;
    ServerKeys::from_bytes(&bytes).map_err(secret)
}

/// The refusal for a login that cannot be used (or finished): one answer for every reason, so a
/// caller learns nothing about other devices' logins.
pub(super) fn login_invalid() -> ApiError {
    ApiError::invalid(
        "the passcode login is unknown, expired, used, unfinished, or another device's or group's",
    )
    .with_reason(reason::LOGIN_INVALID)
}

fn not_registered() -> ApiError {
    ApiError::precondition("the device group has no passcode")
        .with_reason(reason::PASSCODE_NOT_REGISTERED)
}

/// A base64url field of at most [`MAX_FIELD_CHARS`].
fn decode_field(text: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    if text.len() > MAX_FIELD_CHARS {
        return Err(ApiError::invalid(format!("{what} is too long")));
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ApiError::invalid(format!("{what} must be unpadded base64url")))
}

/// An OPAQUE step's error as the API tells it: a malformed message is the caller's, a wrong
/// passcode has its reason, anything else is the server's.
pub(super) fn passcode_error(error: PasscodeError) -> ApiError {
    match error {
        PasscodeError::Malformed(what) => ApiError::invalid(format!("malformed {what}")),
        PasscodeError::WrongPasscode => {
            ApiError::denied("the login does not verify: wrong passcode")
                .with_reason(reason::WRONG_PASSCODE)
        }
        other => ApiError::internal(other),
    }
}

/// Whether another login attempt may be made now: not when locked, nor before the backoff after
/// the last one has passed.
fn check_attempts(attempts: &Attempts, now_ms: i64, base: Duration) -> Result<(), ApiError> {
    check_counted(
        attempts,
        now_ms,
        base,
        "the passcode is locked on this device until an operator unlocks it",
    )
}

/// Whether another counted attempt (a login's, or a recovery's, recovery.rs) may be made now:
/// not when locked (`locked` says what is locked), nor before the backoff after the last one
/// has passed. The same rule, reasons and `retryAfterSeconds` for both.
pub(super) fn check_counted(
    attempts: &Attempts,
    now_ms: i64,
    base: Duration,
    locked: &str,
) -> Result<(), ApiError> {
    if attempts.locked || attempts.failures >= MAX_FAILED_LOGINS {
        return Err(ApiError::precondition(format!(
            "{MAX_FAILED_LOGINS} failed passcode attempts: {locked}"
        ))
        .with_reason(reason::PASSCODE_LOCKED));
    }
    let Some(doublings) = attempts.failures.checked_sub(FREE_FAILED_LOGINS) else {
        return Ok(());
    };
    // failures < MAX_FAILED_LOGINS here, so the factor stays small.
    let wait = base.saturating_mul(1 << doublings.min(16));
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    let ready = attempts.last_attempt_ms.saturating_add(wait_ms);
    if now_ms >= ready {
        return Ok(());
    }
    let seconds = u64::try_from((ready - now_ms + 999) / 1000).unwrap_or(u64::MAX);
    Err(ApiError::new(
        ErrorCode::ResourceExhausted,
        format!(
            "{} failed passcode attempts: wait before the next one",
            attempts.failures
        ),
    )
    .with_reason(reason::PASSCODE_BACKOFF)
    .with_retry_after(seconds.max(1)))
}

/// The sealing id of a group's record at a version.
fn record_id(group: &DeviceGroupName, version: u64) -> String {
    format!("{group}/{version}")
}

/// The version a reset of a record at `version` makes.
fn next_version(version: u64) -> Result<u64, ApiError> {
    version
        .checked_add(1)
        .ok_or_else(|| ApiError::internal("the record version is out of range"))
}

/// The OPAQUE client identity: the group. (The server's identity is its OPAQUE public key, not
/// `--audience`; the OPRF key is the record version's, passed to each step.)
pub(super) fn passcode_context(group: &str) -> PasscodeContext<'_> {
    PasscodeContext {
        device_group: group,
    }
}

/// A finished login that may still be used, as read (using it up checks again at the commit).
pub(super) struct UsableLogin {
    /// What using it up checks at the commit.
    pub(super) usage: LoginUse,
    /// The record version it was made with.
    pub(super) record_version: u64,
    /// The version its reset's registerStart evaluated under, if it made one.
    pub(super) reset_version: Option<u64>,
    /// Its session secret.
    pub(super) session: SessionSecret,
}

impl<S: Store> Services<S> {
    /// `passcode:registerStart`: the OPRF evaluation of the device's blinded new passcode. The
    /// first registration's (under version 1's key) is counted as an attempt; with a record in
    /// place it needs a reset authorization (a fresh login of the old passcode), good for one
    /// registerStart, evaluated under the key of the version the reset makes.
    pub async fn passcode_register_start(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PasscodeRegisterStartRequest,
    ) -> Result<PasscodeRegisterStartResponse, ApiError> {
        let device = self.passcode_device(caller, group).await?;
        let message = decode_field(&request.registration_request, "registrationRequest")?;
        let now = now_ms();
        let record = self.store.passcode_record(group).await?;
        let group_name = group.to_string();
        let evaluate = |version| {
            self.passcode_keys
                .registration_response(&message, &passcode_context(&group_name), version)
                .map_err(passcode_error)
        };
        let response = match (&record, &request.reset) {
            (Some(current), Some(reset)) => {
                let login = self
                    .authorized_login(&device, group, reset, purpose::RESET_START, &message, now)
                    .await?;
                // One registerStart per login, for the record in place; evaluated under the
                // key of the version this reset makes, which its registerFinish must store.
                if login.record_version != current.version || login.reset_version.is_some() {
                    return Err(login_invalid());
                }
                let response = evaluate(next_version(current.version)?)?;
                // Marked before the answer leaves; a refusal above costs the login nothing.
                if !self
                    .store
                    .start_passcode_reset(&login.usage, current.version)
                    .await?
                {
                    return Err(login_invalid());
                }
                response
            }
            (Some(_), None) => return Err(already_registered()),
            (None, Some(_)) => return Err(not_registered()),
            (None, None) => {
                self.check_attempts(group, &device, now).await?;
                let response = evaluate(1)?;
                // Counted like a login start, once the message is known to be good: before a
                // record exists, an evaluation under version 1's OPRF key would otherwise be an
                // uncounted guess test against the record made next.
                self.count_attempt(group, &device, now, None, |version| match version {
                    None => Ok(()),
                    Some(_) => Err(already_registered()),
                })
                .await?;
                response
            }
        };
        Ok(PasscodeRegisterStartResponse {
            registration_response: URL_SAFE_NO_PAD.encode(response),
        })
    }

    /// `passcode:registerFinish`: stores the record, the first one (if none exists, else the
    /// loser of a race is refused) or a reset's (using up its login, which must have made this
    /// reset's registerStart for the version stored, and revoking other logins).
    pub async fn passcode_register_finish(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PasscodeRegisterFinishRequest,
    ) -> Result<PasscodeRegisterFinishResponse, ApiError> {
        let device = self.passcode_device(caller, group).await?;
        let upload = decode_field(&request.registration_upload, "registrationUpload")?;
        let record = registration_record(&upload).map_err(passcode_error)?;
        let Some(reset) = &request.reset else {
            let sealed = self.seal_secret(RECORD, &record_id(group, 1), &record)?;
            if !self.store.create_passcode_record(group, &sealed).await? {
                return Err(already_registered());
            }
            tracing::info!(%group, %device, "registered the group's passcode");
            return Ok(PasscodeRegisterFinishResponse { version: 1 });
        };
        let now = now_ms();
        let current = self
            .store
            .passcode_record(group)
            .await?
            .ok_or_else(not_registered)?;
        let login = self
            .authorized_login(&device, group, reset, purpose::RESET_FINISH, &upload, now)
            .await?;
        let next = next_version(current.version)?;
        // The record the login's registerStart evaluated the OPRF for is the one stored.
        if login.record_version != current.version || login.reset_version != Some(next) {
            return Err(login_invalid());
        }
        let sealed = self.seal_secret(RECORD, &record_id(group, next), &record)?;
        // What the group's recoveries in flight, which the reset fails, say.
        let recovery_error =
            serde_json::to_string(&passcode_changed().body()).map_err(ApiError::internal)?;
        let version = self
            .store
            .reset_passcode_record(
                group,
                current.version,
                &sealed,
                &login.usage,
                &recovery_error,
            )
            .await?
            // The login was used, or the record changed, since the checks above.
            .ok_or_else(login_invalid)?;
        tracing::info!(%group, %device, version, "reset the group's passcode");
        Ok(PasscodeRegisterFinishResponse { version })
    }

    /// `passcode:loginStart`: refused while locked or backing off; otherwise counted as a
    /// failure, with the server's login state stored, before the answer leaves.
    pub async fn passcode_login_start(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PasscodeLoginStartRequest,
    ) -> Result<PasscodeLoginStartResponse, ApiError> {
        let device = self.passcode_device(caller, group).await?;
        let message = decode_field(&request.credential_request, "credentialRequest")?;
        let now = now_ms();
        // First, and again in the counting transaction: a refusal costs no OPAQUE work.
        self.check_attempts(group, &device, now).await?;
        let (version, state, response) = self.start_login(group, &message).await?;
        let name = PasscodeLoginName::new(
            group.pool().clone(),
            group.device_group().clone(),
            new_id()?,
        );
        let login = NewLogin {
            state_sealed: self.seal_secret(LOGIN_STATE, &name.to_string(), &state)?,
            name,
            device: device.clone(),
            record_version: version,
        };
        self.count_attempt(group, &device, now, Some(&login), |current| {
            if current == Some(version) {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::Aborted,
                    "the passcode changed meanwhile: start the login again",
                ))
            }
        })
        .await?;
        Ok(PasscodeLoginStartResponse {
            login: login.name,
            credential_response: URL_SAFE_NO_PAD.encode(response),
        })
    }

    /// OPAQUE's login start against the group's current record, for a login or a recovery
    /// (recovery.rs): the record's version, the server's state (secret: seal it) and the
    /// response for the device. Counting it is the caller's.
    pub(super) async fn start_login(
        &self,
        group: &DeviceGroupName,
        request: &[u8],
    ) -> Result<(u64, zeroize::Zeroizing<Vec<u8>>, Vec<u8>), ApiError> {
        let PasscodeRecord {
            version,
            record_sealed,
        } = self
            .store
            .passcode_record(group)
            .await?
            .ok_or_else(not_registered)?;
        let record = self.open_sealed(RECORD, &record_id(group, version), &record_sealed)?;
        let group_name = group.to_string();
        let (state, response) = self
            .passcode_keys
            .login_start(&record, version, request, &passcode_context(&group_name))
            .map_err(passcode_error)?;
        Ok((version, state, response))
    }

    /// `passcode:loginFinish`: checks the device's key-exchange MAC. Verified, the login is
    /// finished (its session secret kept for one use) and the failures reset to 0 if they are
    /// below the lock (once locked, only the operator's unlock clears them, whenever this login
    /// started); not verified, the login is over and its failure stays counted.
    pub async fn passcode_login_finish(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
        request: PasscodeLoginFinishRequest,
    ) -> Result<PasscodeLoginFinishResponse, ApiError> {
        let device = self.passcode_device(caller, group).await?;
        let finalization =
            decode_field(&request.credential_finalization, "credentialFinalization")?;
        let name = request.login;
        if name.device_group_name() != *group {
            return Err(login_invalid());
        }
        let login = self
            .store
            .passcode_login(&name)
            .await?
            .filter(|login| login.device == device && login.state == LoginState::Started)
            .ok_or_else(login_invalid)?;
        let started_after = now_ms().saturating_sub(LOGIN_LIFETIME_MS);
        if login.create_time_ms < started_after {
            return Err(login_invalid());
        }
        let sealed = login
            .state_sealed
            .as_deref()
            .ok_or_else(|| ApiError::internal("a started login without its state"))?;
        let state = self.open_sealed(LOGIN_STATE, &name.to_string(), sealed)?;
        let group_name = group.to_string();
        let outcome = match login_finish(&state, &finalization, &passcode_context(&group_name)) {
            Ok(session) => LoginOutcome::Finished {
                session_sealed: self.seal_secret(
                    LOGIN_SESSION,
                    &name.to_string(),
                    &*session.to_bytes(),
                )?,
            },
            Err(PasscodeError::WrongPasscode) => LoginOutcome::Failed,
            // A finalization that does not even parse changes nothing.
            Err(error) => return Err(passcode_error(error)),
        };
        let ended = self
            .store
            .finish_passcode_login(&name, &outcome, started_after, MAX_FAILED_LOGINS)
            .await?;
        match outcome {
            LoginOutcome::Finished { .. } if ended => {
                Ok(PasscodeLoginFinishResponse { login: name })
            }
            LoginOutcome::Finished { .. } => Err(login_invalid()),
            LoginOutcome::Failed => {
                tracing::info!(%group, %device, "a passcode login did not verify");
                Err(passcode_error(PasscodeError::WrongPasscode))
            }
        }
    }

    /// A finished login of `device` in `group` that may still be used.
    pub(super) async fn usable_login(
        &self,
        device: &DeviceName,
        group: &DeviceGroupName,
        name: &PasscodeLoginName,
        now_ms: i64,
    ) -> Result<UsableLogin, ApiError> {
        if name.device_group_name() != *group {
            return Err(login_invalid());
        }
        let finished_after_ms = now_ms.saturating_sub(LOGIN_LIFETIME_MS);
        let login = self
            .store
            .passcode_login(name)
            .await?
            .filter(|login| {
                login.device == *device
                    && login.state == LoginState::Finished
                    && login
                        .finish_time_ms
                        .is_some_and(|finished| finished >= finished_after_ms)
            })
            .ok_or_else(login_invalid)?;
        let sealed = login
            .session_sealed
            .as_deref()
            .ok_or_else(|| ApiError::internal("a finished login without its session"))?;
        let bytes = self.open_sealed(LOGIN_SESSION, &name.to_string(), sealed)?;
        let session = SessionSecret::from_bytes(&bytes).map_err(ApiError::internal)?;
        Ok(UsableLogin {
            usage: LoginUse {
                name: name.clone(),
                device: device.clone(),
                finished_after_ms,
            },
            record_version: login.record_version,
            reset_version: login.reset_version,
            session,
        })
    }

    /// Forgets logins that can no longer be finished or used, with any secret they still hold.
    pub(crate) async fn forget_passcode_logins(&self) -> Result<u64, ApiError> {
        // A login can be finished up to a lifetime after its start and used up to a lifetime
        // after it finished.
        let before = now_ms().saturating_sub(2 * LOGIN_LIFETIME_MS);
        Ok(self.store.forget_passcode_logins(before).await?)
    }

    /// A reset's login, checked: usable, and its MAC over `message` for `purpose` verifies.
    async fn authorized_login(
        &self,
        device: &DeviceName,
        group: &DeviceGroupName,
        reset: &PasscodeReset,
        purpose: &str,
        message: &[u8],
        now_ms: i64,
    ) -> Result<UsableLogin, ApiError> {
        let tag = decode_field(&reset.authorization, "authorization")?;
        let login = self
            .usable_login(device, group, &reset.login, now_ms)
            .await?;
        if !login.session.verify(purpose, message, &tag) {
            return Err(ApiError::denied(
                "the reset authorization does not verify for this message",
            ));
        }
        Ok(login)
    }

    /// The calling device, if it is a device of `group`: only they may use the group's
    /// passcode, so nobody else can make (or burn) its attempts.
    async fn passcode_device(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
    ) -> Result<DeviceName, ApiError> {
        let Principal::Device(device) = caller else {
            return Err(ApiError::denied(
                "only a device of the group uses its passcode",
            ));
        };
        // Authentication already refused a revoked device.
        self.ensure_can_read(caller, group).await?;
        Ok(device.clone())
    }

    /// Refuses an attempt now if the device is locked or backing off (read outside any
    /// transaction: the counting transaction checks again).
    async fn check_attempts(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let attempts = self.store.passcode_attempts(group, device).await?;
        check_attempts(&attempts, now_ms, self.passcode_backoff)
    }

    /// Counts one attempt, with `login` if any, once `check_record(the group's record version)`
    /// and the lock and backoff allow it; committed before the caller answers.
    async fn count_attempt(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        now_ms: i64,
        login: Option<&NewLogin>,
        check_record: impl FnOnce(Option<u64>) -> Result<(), ApiError> + Send,
    ) -> Result<(), ApiError> {
        let base = self.passcode_backoff;
        self.store
            .count_passcode_attempt(
                group,
                device,
                now_ms,
                MAX_FAILED_LOGINS,
                login,
                |attempts, version| {
                    check_attempts(attempts, now_ms, base)?;
                    check_record(version)
                },
            )
            .await
    }

    fn seal_secret(&self, kind: &str, id: &str, plaintext: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.master_key
            .seal(kind, id, plaintext)
            .map_err(ApiError::internal)
    }

    fn open_sealed(
        &self,
        kind: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError> {
        self.master_key
            .open(kind, id, sealed)
            .map_err(ApiError::internal)
    }
}

fn already_registered() -> ApiError {
    ApiError::new(
        ErrorCode::AlreadyExists,
        "the device group has a passcode: a new one needs a reset authorized by a login",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(failures: u32, last_attempt_ms: i64) -> Attempts {
        Attempts {
            failures,
            last_attempt_ms,
            locked: false,
        }
    }

    #[test]
    fn three_free_attempts_then_doubling_waits_then_the_lock() {
        let base = Duration::from_secs(1);
        for failures in 0..3 {
            assert!(check_attempts(&attempts(failures, 1_000), 1_000, base).is_ok());
        }
        for (failures, wait_ms) in [(3, 1_000), (4, 2_000), (5, 4_000), (9, 64_000)] {
            let early = check_attempts(&attempts(failures, 10_000), 10_000 + wait_ms - 1, base)
                .unwrap_err();
            let body = early.body();
            assert_eq!(body.code, ErrorCode::ResourceExhausted);
            assert_eq!(body.reason.as_deref(), Some(reason::PASSCODE_BACKOFF));
            assert_eq!(body.retry_after_seconds, Some(1), "{failures}");
            assert!(
                check_attempts(&attempts(failures, 10_000), 10_000 + wait_ms, base).is_ok(),
                "{failures}"
            );
        }
        let far = check_attempts(&attempts(9, 0), 1, base).unwrap_err().body();
        assert_eq!(far.retry_after_seconds, Some(64));
        for locked in [
            attempts(MAX_FAILED_LOGINS, 0),
            Attempts {
                locked: true,
                ..attempts(0, 0)
            },
        ] {
            let body = check_attempts(&locked, i64::MAX, base).unwrap_err().body();
            assert_eq!(body.code, ErrorCode::FailedPrecondition);
            assert_eq!(body.reason.as_deref(), Some(reason::PASSCODE_LOCKED));
        }
    }
}
