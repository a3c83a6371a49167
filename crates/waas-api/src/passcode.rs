//! The passcode at the server (docs/protocol/passcode.md): OPAQUE registration and login bodies.
//! Every OPAQUE message is unpadded base64url of the bytes `waas_mpc::passcode` produces.
//!
//! Routes, all under a device group and all signed by a device of that group:
//! - `POST /v1/{deviceGroup}/passcode:registerStart` and `passcode:registerFinish`: the first
//!   registration (no record yet), or a reset authorized by a fresh login ([`PasscodeReset`]);
//! - `POST /v1/{deviceGroup}/passcode:loginStart` and `passcode:loginFinish`.

use serde::{Deserialize, Serialize};

use crate::names::PasscodeLoginName;

/// `passcode:registerStart`: the device's blinded passcode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasscodeRegisterStartRequest {
    /// OPAQUE RegistrationRequest.
    pub registration_request: String,
    /// Required when the group has a record already; MACs `registration_request` for
    /// [`purpose::RESET_START`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<PasscodeReset>,
}

/// `passcode:registerStart`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasscodeRegisterStartResponse {
    /// OPAQUE RegistrationResponse.
    pub registration_response: String,
}

/// `passcode:registerFinish`: the device's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasscodeRegisterFinishRequest {
    /// OPAQUE RegistrationUpload.
    pub registration_upload: String,
    /// Required when the group has a record already; MACs `registration_upload` for
    /// [`purpose::RESET_FINISH`]. The login is used up by a successful finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<PasscodeReset>,
}

/// A passcode reset's authorization: a login with the old passcode, finished by this device
/// within [`LOGIN_LIFETIME_SECS`], and a MAC under its session secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasscodeReset {
    /// The login.
    pub login: PasscodeLoginName,
    /// `SessionSecret::authorize(purpose, message)`, base64url.
    pub authorization: String,
}

/// `passcode:registerFinish`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasscodeRegisterFinishResponse {
    /// The record's version: 1 for the first registration, one more for each reset.
    pub version: u64,
}

/// `passcode:loginStart`: the device's blinded passcode and key-exchange share. The server
/// counts the attempt as failed until `loginFinish` succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasscodeLoginStartRequest {
    /// OPAQUE CredentialRequest.
    pub credential_request: String,
}

/// `passcode:loginStart`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasscodeLoginStartResponse {
    /// The login, to name in `loginFinish` and in what the login authorizes.
    pub login: PasscodeLoginName,
    /// OPAQUE CredentialResponse.
    pub credential_response: String,
}

/// `passcode:loginFinish`: the device's key-exchange MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasscodeLoginFinishRequest {
    /// The login `loginStart` named.
    pub login: PasscodeLoginName,
    /// OPAQUE CredentialFinalization.
    pub credential_finalization: String,
}

/// `passcode:loginFinish`'s answer: the login is good for one use within
/// [`LOGIN_LIFETIME_SECS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasscodeLoginFinishResponse {
    /// The login.
    pub login: PasscodeLoginName,
}

/// How long a finished login may be used (for one archive or one reset), and how long a
/// started one may be finished.
pub const LOGIN_LIFETIME_SECS: i64 = 300;

/// Failed logins (per device and group) after which export on that device is locked until an
/// operator unlocks it.
pub const MAX_FAILED_LOGINS: u32 = 10;

/// Failed logins that need no wait; after them each attempt waits twice as long as the last.
pub const FREE_FAILED_LOGINS: u32 = 3;

/// What a login's session secret authorizes: the `purpose` of `SessionSecret::authorize`.
pub mod purpose {
    /// A reset's `registerStart` (the message is the RegistrationRequest's bytes).
    pub const RESET_START: &str = "passcode reset start";
    /// A reset's `registerFinish` (the message is the RegistrationUpload's bytes).
    pub const RESET_FINISH: &str = "passcode reset finish";
}

/// The `reason` of passcode refusals ([`crate::ErrorBody::reason`]).
pub mod reason {
    /// The group has no passcode record (the wallet was made before, or registration failed).
    pub const PASSCODE_NOT_REGISTERED: &str = "PASSCODE_NOT_REGISTERED";
    /// Too many failed logins lately: wait `retryAfterSeconds`.
    pub const PASSCODE_BACKOFF: &str = "PASSCODE_BACKOFF";
    /// [`super::MAX_FAILED_LOGINS`] failed logins: export on this device is locked until an
    /// operator unlocks it.
    pub const PASSCODE_LOCKED: &str = "PASSCODE_LOCKED";
    /// The login's MAC did not verify: the device did not hold the passcode.
    pub const WRONG_PASSCODE: &str = "WRONG_PASSCODE";
    /// The login is unknown, expired, used, unfinished or of another device or group.
    pub const LOGIN_INVALID: &str = "LOGIN_INVALID";
    /// Export is off for the pool.
    pub const EXPORT_DISABLED: &str = "EXPORT_DISABLED";
    /// The group's passcode was reset while the operation ran (a recovery): start a new one,
    /// with the new passcode.
    pub const PASSCODE_CHANGED: &str = "PASSCODE_CHANGED";
}
