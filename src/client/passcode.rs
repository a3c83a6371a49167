//! The passcode at the server, the device's side (docs/protocol/passcode.md): OPAQUE
//! registration when a wallet is made, logins before an archive or an export, and the reset.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use waas_api::passcode::{
    PasscodeLoginFinishRequest, PasscodeLoginFinishResponse, PasscodeLoginStartRequest,
    PasscodeLoginStartResponse, PasscodeRegisterFinishRequest, PasscodeRegisterFinishResponse,
    PasscodeRegisterStartRequest, PasscodeRegisterStartResponse, PasscodeReset, purpose,
};
use waas_api::{DeviceGroupName, PasscodeLoginName};
use waas_mpc::passcode::{
    ClientLogin, ClientRegistration, ExportKey, LoginKeys, PasscodeContext, PasscodeError,
    SessionSecret,
};

use super::WaasClient;
use crate::SdkError;
use crate::keystore::{LoginWrap, PeeledWraps, Unlock, Unlocked};

/// A finished login: its name (what it authorizes names it) and its keys.
pub(crate) struct Login {
    pub(crate) name: PasscodeLoginName,
    pub(crate) keys: LoginKeys,
}

/// A registration whose record is made but not sent.
pub(crate) struct Registration {
    upload: Vec<u8>,
    export_key: ExportKey,
}

#[cfg(feature = "rare-flows")]
impl Registration {
    /// The new record's export key.
    pub(crate) fn export_key(&self) -> &ExportKey {
        &self.export_key
    }
}

impl WaasClient {
    /// Opens the device's data key for an operation on `group` (if any). With the passcode, on a
    /// device that holds a wallet, that is a login to a group's record (the operation's group
    /// first, then the others): the server counts a wrong passcode, and no copy of the profile
    /// can test one offline. Returns the login, which an archive or a passcode change of the
    /// same group may use. A device without a wallet yet, or a passkey, opens locally.
    pub(crate) async fn unlock(
        &self,
        unlock: &Unlock,
        group: Option<&DeviceGroupName>,
    ) -> Result<(Unlocked, Option<Login>), SdkError> {
        let Unlock::Passcode(passcode) = unlock else {
            return Ok((self.store.unlock(unlock).await?, None));
        };
        let mut wrapped = self.store.login_wrapped_groups().await?;
        if wrapped.is_empty() {
            let unlocked = self.store.unlock(unlock).await?;
            // A device whose wallets' records do not wrap the key yet (the registration failed
            // when the wallet was made): move it under one now, so the local test goes.
            let Some(first) = self.store.groups().await?.into_iter().next() else {
                return Ok((unlocked, None));
            };
            let login = match self.login_or_register(&first.parse()?, passcode).await {
                Ok(login) => login,
                // The pairing of a recovery whose round 9 never committed: not a device of that
                // group, so there is no record to move under (`recover` forgets the pairing).
                Err(SdkError::Server { code, .. }) if code == "PERMISSION_DENIED" => {
                    return Ok((unlocked, None));
                }
                Err(error) => return Err(error),
            };
            self.store
                .wrap_for_login(&unlocked, &first, &login.keys.export_key, LoginWrap::First)
                .await?;
            return Ok((unlocked, Some(login)));
        }
        if let Some(at) = group.and_then(|group| {
            let group = group.to_string();
            wrapped.iter().position(|wrapped| *wrapped == group)
        }) {
            wrapped.swap(0, at);
        }
        // Groups whose record moved on without this device (the passcode was right there):
        // rewrapped under their current record once another group opens the key.
        let mut stale: Vec<(String, Login, PeeledWraps)> = Vec::new();
        let mut changed = None;
        for name in wrapped {
            // A tampered or copied store fails here, before the server counts an attempt.
            let wraps = self.store.peel_login_wraps(&name).await?;
            let login = match self.login(&name.parse()?, passcode).await {
                Err(error) => return Err(changed.unwrap_or(error)),
                Ok(login) => login,
            };
            match wraps.open(&login.keys.export_key) {
                Ok(unlocked) => {
                    for (name, login, peeled) in &stale {
                        let when = LoginWrap::Repair(peeled);
                        self.store
                            .wrap_for_login(&unlocked, name, &login.keys.export_key, when)
                            .await?;
                    }
                    return Ok((unlocked, Some(login)));
                }
                Err(error) => {
                    changed.get_or_insert(error);
                    stale.push((name, login, wraps));
                }
            }
        }
        Err(changed.unwrap_or(SdkError::WrongPasscode))
    }

    /// Registers `passcode` for `group` at the server; returns the record's export key. The
    /// first registration needs nothing more; replacing a record needs `reset`, a login with the
    /// old passcode.
    pub(crate) async fn register_passcode(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
        reset: Option<&Login>,
    ) -> Result<ExportKey, SdkError> {
        let registration = self.start_registration(group, passcode, reset).await?;
        self.finish_registration(group, registration, reset).await
    }

    /// Registration up to the record, which is not sent yet: its export key is known, so a
    /// reset can rewrap the archive before the server switches records.
    pub(crate) async fn start_registration(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
        reset: Option<&Login>,
    ) -> Result<Registration, SdkError> {
        let group_text = group.to_string();
        let (registration, request) =
            ClientRegistration::start(passcode.as_bytes()).map_err(passcode_error)?;
        let started: PasscodeRegisterStartResponse = self
            .send(
                "POST",
                &format!("/v1/{group}/passcode:registerStart"),
                Some(&PasscodeRegisterStartRequest {
                    registration_request: URL_SAFE_NO_PAD.encode(&request),
                    reset: reset.map(|login| authorize(login, purpose::RESET_START, &request)),
                }),
                true,
            )
            .await?;
        let response = decode(&started.registration_response)?;
        let (upload, export_key) = registration
            .finish(
                passcode.as_bytes(),
                &response,
                &PasscodeContext {
                    device_group: &group_text,
                },
            )
            .map_err(passcode_error)?;
        Ok(Registration { upload, export_key })
    }

    /// Sends the record; returns its export key.
    pub(crate) async fn finish_registration(
        &self,
        group: &DeviceGroupName,
        registration: Registration,
        reset: Option<&Login>,
    ) -> Result<ExportKey, SdkError> {
        let _: PasscodeRegisterFinishResponse = self
            .send(
                "POST",
                &format!("/v1/{group}/passcode:registerFinish"),
                Some(&PasscodeRegisterFinishRequest {
                    registration_upload: URL_SAFE_NO_PAD.encode(&registration.upload),
                    reset: reset
                        .map(|login| authorize(login, purpose::RESET_FINISH, &registration.upload)),
                }),
                true,
            )
            .await?;
        Ok(registration.export_key)
    }

    /// Logs in to `group` with `passcode`. A wrong passcode is `WRONG_PASSCODE` (the server
    /// counts it); too many are `PASSCODE_BACKOFF`, then `PASSCODE_LOCKED`.
    pub(crate) async fn login(
        &self,
        group: &DeviceGroupName,
        passcode: &str,
    ) -> Result<Login, SdkError> {
        let group_text = group.to_string();
        let (login, request) = ClientLogin::start(passcode.as_bytes()).map_err(passcode_error)?;
        let started: PasscodeLoginStartResponse = self
            .send(
                "POST",
                &format!("/v1/{group}/passcode:loginStart"),
                Some(&PasscodeLoginStartRequest {
                    credential_request: URL_SAFE_NO_PAD.encode(&request),
                }),
                true,
            )
            .await?;
        if started.login.device_group_name() != *group {
            return Err(SdkError::Untrusted(
                "the login belongs to another group".into(),
            ));
        }
        let response = decode(&started.credential_response)?;
        let (finalization, keys) = login
            .finish(
                passcode.as_bytes(),
                &response,
                &PasscodeContext {
                    device_group: &group_text,
                },
            )
            .map_err(passcode_error)?;
        let finished: PasscodeLoginFinishResponse = self
            .send(
                "POST",
                &format!("/v1/{group}/passcode:loginFinish"),
                Some(&PasscodeLoginFinishRequest {
                    login: started.login.clone(),
                    credential_finalization: URL_SAFE_NO_PAD.encode(&finalization),
                }),
                true,
            )
            .await?;
        if finished.login != started.login {
            return Err(SdkError::Untrusted(
                "loginFinish named another login".into(),
            ));
        }
        Ok(Login {
            name: started.login,
            keys,
        })
    }
}

fn authorize(login: &Login, purpose: &str, message: &[u8]) -> PasscodeReset {
    let session: &SessionSecret = &login.keys.session;
    PasscodeReset {
        login: login.name.clone(),
        authorization: URL_SAFE_NO_PAD.encode(session.authorize(purpose, message)),
    }
}

fn decode(text: &str) -> Result<Vec<u8>, SdkError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| SdkError::Untrusted("an OPAQUE message is not base64url".into()))
}

fn passcode_error(error: PasscodeError) -> SdkError {
    match error {
        PasscodeError::WrongPasscode => SdkError::WrongPasscode,
        PasscodeError::Randomness => SdkError::Crypto(error.to_string()),
        other => SdkError::Untrusted(other.to_string()),
    }
}
