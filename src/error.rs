//! SDK errors and their JS form, the `WaasError` class of `js/waas-error.js`.

use thiserror::Error;
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

/// Everything an SDK call can fail with. Each variant has a stable [`code`](SdkError::code) that JS
/// code branches on; the message is for people.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A string that should be a resource name is not one.
    #[error("invalid resource name: {0}")]
    InvalidName(#[from] waas_api::NameError),
    /// An argument is not acceptable (e.g. a passcode that breaks the policy).
    #[error("{0}")]
    InvalidArgument(String),
    /// The passcode does not open the key store.
    #[error("wrong passcode")]
    WrongPasscode,
    /// This browser profile has no device yet: call `bootstrapDevice` first.
    #[error("this browser profile has no device yet: call bootstrapDevice first")]
    NotBootstrapped,
    /// This browser profile has a device already.
    #[error("this browser profile has a device already")]
    AlreadyBootstrapped,
    /// IndexedDB failed (quota, private mode, a blocked upgrade).
    #[error("browser storage failed: {0}")]
    Storage(String),
    /// A stored record fails its integrity check: altered, or copied from another profile.
    #[error("stored keys are damaged: {0}")]
    Corrupt(String),
    /// WebCrypto or the random source failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// The environment lacks an API the SDK needs (IndexedDB, WebCrypto).
    #[error("unsupported environment: {0}")]
    Unsupported(String),
    /// The server could not be reached (offline, DNS, CORS, connection refused).
    #[error("the server could not be reached: {0}")]
    Network(String),
    /// The server refused the request; its own code (`NOT_FOUND`, `PERMISSION_DENIED`, …) is in
    /// the message.
    #[error("the server refused the request: {code} ({status}): {message}")]
    Server {
        /// The server's error code.
        code: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The server's finer reason, if it gave one (not part of the JS error).
        reason: Option<String>,
    },
    /// The server is there but cannot answer for now (its database is restarting or out of
    /// reach): the same call may be made again as it was, after `retry_after_seconds`. An MPC
    /// round answered so was already sent again a few times before this reached the caller.
    #[error("the server is unavailable for now, try again in {retry_after_seconds} s: {message}")]
    Unavailable {
        /// When to try again, from the server's `retryAfterSeconds` (1 if it gave none).
        retry_after_seconds: u64,
        /// The server's message.
        message: String,
    },
    /// The MPC protocol stopped: the server's message failed a check, or the server gave up.
    #[error("the MPC operation stopped: {0}")]
    ProtocolAbort(String),
    /// The server sent something the SDK refuses: an address or key that differs from the
    /// device's own derivation, an answer for another operation.
    #[error("the server's answer is not acceptable: {0}")]
    Untrusted(String),
    /// The server's messages failed a check only a cheating peer fails: this device will never
    /// sign with that pairing again (restore from a backup to go on).
    #[error("the pairing is retired: {0}")]
    PairingRetired(String),
    /// The passkey could not be used: none was enrolled, the user cancelled, or the
    /// authenticator gave no PRF output.
    #[error("the passkey could not be used: {0}")]
    PasskeyFailed(String),
    /// An operation did not finish in time, or the caller aborted the wait.
    #[error("{0}")]
    Timeout(String),
    /// Too many wrong passcodes lately at the server: wait before the next try. The thrown
    /// `WaasError` carries `retryAfterSeconds`.
    #[error("too many wrong passcodes: try again in {retry_after_seconds} s")]
    PasscodeBackoff {
        /// How long to wait.
        retry_after_seconds: u64,
    },
    /// Ten wrong passcodes: the passcode (unlocking with it, and export) is locked on this device
    /// until an operator unlocks it; a passkey still unlocks.
    #[error(
        "too many wrong passcodes: the passcode is locked on this device; ask the wallet's operator to unlock it"
    )]
    PasscodeLocked,
    /// The wallet's pool does not allow taking the key out.
    #[error("export is disabled for this wallet's pool")]
    ExportDisabled,
    /// This device holds no archive of the wallet yet (run PrepareDeviceArchive first).
    #[error("{0}")]
    NoArchive(String),
    /// This device keeps no backup string of the wallet (none made here, or the user confirmed
    /// they saved it and the device forgot it).
    #[error("{0}")]
    NoBackup(String),
    /// This device has been revoked (RevokeDevice): the server refuses its requests, and its
    /// halves of the wallets' keys sign nothing any more.
    #[error(
        "this device has been revoked: the server refuses its requests (recover the wallet on a new device)"
    )]
    DeviceRevoked,
    /// The passcode is right at the server, but another device of the wallet changed it since
    /// this device last did: the data key is not wrapped under the record now in place.
    #[error("{0}")]
    PasscodeChangedElsewhere(String),
    /// The backup string does not read: mistyped, cut, or not a waas-sdk backup. Nothing was
    /// sent and no passcode attempt counted.
    #[error("the backup is not valid: {0}")]
    InvalidBackup(String),
}

impl SdkError {
    /// Every code the Rust side can produce. The JS side adds `NOT_INITIALIZED` and `INIT_FAILED`
    /// (npm/loader.js); `npm/index.d.ts` lists all of them, and a test keeps the two in step.
    pub const CODES: &[&str] = &[
        "INVALID_NAME",
        "INVALID_ARGUMENT",
        "WRONG_PASSCODE",
        "NOT_BOOTSTRAPPED",
        "ALREADY_BOOTSTRAPPED",
        "STORAGE",
        "STORAGE_CORRUPT",
        "CRYPTO",
        "UNSUPPORTED",
        "NETWORK",
        "SERVER",
        "PROTOCOL_ABORT",
        "UNTRUSTED_SERVER",
        "TIMEOUT",
        "PASSKEY_FAILED",
        "PAIRING_RETIRED",
        "PASSCODE_BACKOFF",
        "PASSCODE_LOCKED",
        "EXPORT_DISABLED",
        "NO_ARCHIVE",
        "NO_BACKUP",
        "PASSCODE_CHANGED",
        "DEVICE_REVOKED",
        "INVALID_BACKUP",
        "UNAVAILABLE",
    ];

    /// The stable code, the `code` property of the thrown `WaasError`. Codes are never reused or
    /// renamed; `pkg/index.d.ts` lists them as a union type.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "INVALID_NAME",
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::WrongPasscode => "WRONG_PASSCODE",
            Self::NotBootstrapped => "NOT_BOOTSTRAPPED",
            Self::AlreadyBootstrapped => "ALREADY_BOOTSTRAPPED",
            Self::Storage(_) => "STORAGE",
            Self::Corrupt(_) => "STORAGE_CORRUPT",
            Self::Crypto(_) => "CRYPTO",
            Self::Unsupported(_) => "UNSUPPORTED",
            Self::Network(_) => "NETWORK",
            Self::Server { .. } => "SERVER",
            Self::Unavailable { .. } => "UNAVAILABLE",
            Self::ProtocolAbort(_) => "PROTOCOL_ABORT",
            Self::Untrusted(_) => "UNTRUSTED_SERVER",
            Self::Timeout(_) => "TIMEOUT",
            Self::PasskeyFailed(_) => "PASSKEY_FAILED",
            Self::PairingRetired(_) => "PAIRING_RETIRED",
            Self::PasscodeBackoff { .. } => "PASSCODE_BACKOFF",
            Self::PasscodeLocked => "PASSCODE_LOCKED",
            Self::ExportDisabled => "EXPORT_DISABLED",
            Self::NoArchive(_) => "NO_ARCHIVE",
            Self::NoBackup(_) => "NO_BACKUP",
            Self::PasscodeChangedElsewhere(_) => "PASSCODE_CHANGED",
            Self::DeviceRevoked => "DEVICE_REVOKED",
            Self::InvalidBackup(_) => "INVALID_BACKUP",
        }
    }
}

#[wasm_bindgen(module = "/js/waas-error.js")]
extern "C" {
    /// The JS error class every SDK failure is thrown as.
    #[wasm_bindgen(js_name = WaasError)]
    pub type JsWaasError;

    #[wasm_bindgen(constructor, js_class = WaasError)]
    fn new(code: &str, message: &str, retry_after_seconds: Option<f64>) -> JsWaasError;
}

impl From<SdkError> for JsValue {
    fn from(error: SdkError) -> JsValue {
        let retry_after_seconds = match &error {
            SdkError::PasscodeBackoff {
                retry_after_seconds,
            }
            | SdkError::Unavailable {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds as f64),
            _ => None,
        };
        JsWaasError::new(error.code(), &error.to_string(), retry_after_seconds).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes of the `WaasErrorCode` union in the package's hand-written types.
    fn typescript_codes() -> Vec<String> {
        let types = include_str!("../npm/index.d.ts");
        let union = types
            .split("export type WaasErrorCode =")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap();
        union
            .lines()
            .filter_map(|line| line.trim().strip_prefix("| '"))
            .filter_map(|rest| rest.split('\'').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn typescript_lists_exactly_the_codes_there_are() {
        let mut expected: Vec<&str> = SdkError::CODES.to_vec();
        expected.extend(["NOT_INITIALIZED", "INIT_FAILED"]);
        expected.sort_unstable();
        assert_eq!(typescript_codes(), expected);
    }

    #[test]
    fn codes_are_stable() {
        let error = SdkError::from(waas_api::NameError::UnknownKind);
        assert_eq!(error.code(), "INVALID_NAME");
        assert!(SdkError::CODES.contains(&error.code()));
        assert!(error.to_string().starts_with("invalid resource name: "));
    }
}
