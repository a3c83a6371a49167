//! Recovery: AddDevice on a new browser profile, with the backup string and the passcode
//! (docs/protocol/recovery.md). The cryptography both parties share, sans-I/O.
//!
//! | exchange round | from   | carries                                                           |
//! |----------------|--------|-------------------------------------------------------------------|
//! | 1              | device | its proven partial on ct_s's R (it holds the backup); an OPAQUE login request |
//! | 2              | server | the OPAQUE login response                                         |
//! | 3              | device | the OPAQUE finalization; a MAC of the operation under the login's session key |
//! | 4              | server | its proven partial on ct_x's R                                    |
//! | 5–8            | both   | a complete refresh of the restored pairing ([`Refresh`])          |
//! | 9              | device | the confirmation of the refreshed pairing it stored               |
//!
//! The device takes every fact from the backup string (P_srv, X, X_d, S_d, the chain code, the
//! ciphertexts' hash), never from the server. The server learns s_d (its own share) and nothing
//! of x_d; the device learns x_d (the share it had) and nothing of s_d. Both then restore a
//! pairing from the bare shares and refresh it, so the new device's pairing has shares the
//! backup never held.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Role;
use crate::backup::{
    self, BackupContext, BackupString, DecryptionShare, Half, PartialUse, backup_key,
    ciphertext_ephemeral, ciphertexts_hash, decode, decrypt_half, encode, verify_partial,
};
use crate::derive::decode_point;
use crate::error::{DecodeError, MpcError};
use crate::pairing::{Pairing, PairingPublic, compressed};
use crate::passcode::{ClientLogin, ExportKey, PasscodeContext, PasscodeError, SessionSecret};
use crate::refresh::Refresh;
use crate::session::{SessionId, hash_parts};
use crate::state::Step;

/// The purpose under which the login's session secret MACs the recovery
/// ([`SessionSecret::authorize`]).
pub const ADD_DEVICE_PURPOSE: &str = "add device";

/// The epoch of a pairing restored from a backup; the refresh makes it `RESTORED_EPOCH + 1`,
/// the new device's first usable epoch.
pub const RESTORED_EPOCH: u64 = 0;

/// What a recovery is bound to: the AddDevice operation and the device it adds. Both sides build
/// it from their own records (the device: the operation it asked for and its own name; the
/// server: the operation's record), never from a message.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryContext<'a> {
    /// The AddDevice operation's MPC operation name (`pools/…/deviceGroups/…/mpcOperations/…`).
    pub operation: &'a str,
    /// The new device's resource name.
    pub device: &'a str,
}

impl RecoveryContext<'_> {
    /// What the login's session secret MACs in round 3: this operation, this device and the
    /// backup, so a login (even a successful one) authorizes this recovery and nothing else.
    pub fn authorization_message(&self, backup: &BackupContext<'_>) -> [u8; 32] {
        self.hash("recovery authorization v1", backup)
    }

    /// The restored (and refreshed) pairing's id: new for each recovery, so the new device's
    /// pairing is never confused with the one backed up (which may still be another device's),
    /// and a device tells which of its recoveries a stored pairing came from.
    pub fn pairing_id(&self, backup: &BackupContext<'_>) -> [u8; 32] {
        self.hash("recovered pairing v1", backup)
    }

    /// The refresh's context.
    fn refresh_context(&self) -> SessionId {
        SessionId::derive(
            "waas-sdk recovery refresh",
            &[self.operation.as_bytes(), self.device.as_bytes()],
        )
    }

    fn hash(&self, label: &str, backup: &BackupContext<'_>) -> [u8; 32] {
        let epoch = backup.epoch.to_be_bytes();
        hash_parts(
            label,
            &[
                self.operation.as_bytes(),
                self.device.as_bytes(),
                backup.device_group.as_bytes(),
                backup.backup.as_bytes(),
                backup.pairing_id,
                &epoch,
            ],
        )
    }
}

/// Round 1, device → server.
#[derive(Serialize, Deserialize)]
pub struct RecoveryRound1 {
    /// The device's partial decryption of ct_s, proven for P_dev: it proves the device holds the
    /// backup's decryption half before any passcode attempt is counted.
    pub server_half_partial: Vec<u8>,
    /// OPAQUE CredentialRequest for the group's passcode record.
    pub credential_request: Vec<u8>,
}

/// Round 3, device → server.
#[derive(Serialize, Deserialize)]
pub struct RecoveryRound3 {
    /// OPAQUE CredentialFinalization.
    pub credential_finalization: Vec<u8>,
    /// [`SessionSecret::authorize`] of [`RecoveryContext::authorization_message`] for
    /// [`ADD_DEVICE_PURPOSE`].
    pub authorization: Vec<u8>,
}

impl RecoveryRound1 {
    /// The message's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MpcError> {
        encode(self)
    }

    /// Reads a message made by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        decode(bytes)
    }
}

impl RecoveryRound3 {
    /// The message's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MpcError> {
        encode(self)
    }

    /// Reads a message made by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        decode(bytes)
    }
}

/// The device's side of a recovery, in memory from round 1 to the refreshed pairing. Holds the
/// backup string (d_dev) and, from round 4, x_d inside the restored pairing; zeroized on drop.
pub struct DeviceRecovery {
    string: BackupString,
    operation: String,
    device: String,
    device_half: Vec<u8>,
    state: DeviceState,
}

// One per recovery, never in collections: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum DeviceState {
    AwaitingLogin(ClientLogin),
    AwaitingPartial,
    Refreshing { restored: Pairing, refresh: Refresh },
    Over,
}

impl fmt::Debug for DeviceRecovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceRecovery(<redacted>)")
    }
}

impl DeviceRecovery {
    /// Round 1. `device_half` and `server_half` are ct_x and ct_s as the server gave them; they
    /// must be the ones the string commits to (in that order), so a server cannot offer ct_x as
    /// ct_s and have the device reveal d_dev·R_x (with d_srv·R_x, the server would open x_d).
    /// The partial goes out for ct_s only.
    pub fn start(
        string: BackupString,
        recovery: &RecoveryContext<'_>,
        device_half: &[u8],
        server_half: &[u8],
        passcode: &[u8],
    ) -> Result<(Self, Vec<u8>), MpcError> {
        if !recovery
            .operation
            .strip_prefix(string.device_group.as_str())
            .is_some_and(|rest| rest.starts_with("/mpcOperations/"))
        {
            return Err(MpcError::Rejected(
                "the recovery is for another group than the backup's".into(),
            ));
        }
        if ciphertexts_hash(device_half, server_half) != string.ciphertexts_hash {
            return Err(MpcError::Rejected(
                "the server's ciphertexts are not the ones the backup commits to".into(),
            ));
        }
        let server_ephemeral = ciphertext_ephemeral(server_half)?;
        if ciphertext_ephemeral(device_half)? == server_ephemeral {
            return Err(MpcError::Rejected(
                "the two ciphertexts share their R".into(),
            ));
        }
        let share = string.decryption_share()?;
        let server_half_partial = share.partial(
            &server_ephemeral,
            Half::Server,
            &string.context(),
            Role::Device,
            PartialUse::Recovery(recovery),
        )?;
        let (login, credential_request) =
            ClientLogin::start(passcode).map_err(|error| login_error(&error))?;
        let message = RecoveryRound1 {
            server_half_partial,
            credential_request,
        }
        .encode()?;
        Ok((
            Self {
                string,
                operation: recovery.operation.to_owned(),
                device: recovery.device.to_owned(),
                device_half: device_half.to_vec(),
                state: DeviceState::AwaitingLogin(login),
            },
            message,
        ))
    }

    /// Round 2 in, round 3 out: finishes the login and MACs the recovery under its session
    /// secret. Returns round 3 and the login's export key (it wraps the device's data key for
    /// this group, as every login to a group's record does). A wrong passcode is
    /// [`PasscodeError::WrongPasscode`]; the recovery is then over (start a new one).
    pub fn login(
        &mut self,
        response: &[u8],
        passcode: &[u8],
    ) -> Result<(Vec<u8>, ExportKey), PasscodeError> {
        let DeviceState::AwaitingLogin(login) =
            std::mem::replace(&mut self.state, DeviceState::Over)
        else {
            return Err(PasscodeError::InvalidState);
        };
        let context = PasscodeContext {
            device_group: &self.string.device_group,
        };
        let (credential_finalization, keys) = login.finish(passcode, response, &context)?;
        let recovery = RecoveryContext {
            operation: &self.operation,
            device: &self.device,
        };
        let authorization = keys
            .session
            .authorize(
                ADD_DEVICE_PURPOSE,
                &recovery.authorization_message(&self.string.context()),
            )
            .to_vec();
        let message = RecoveryRound3 {
            credential_finalization,
            authorization,
        }
        .encode()
        .map_err(|_| PasscodeError::Internal)?;
        self.state = DeviceState::AwaitingPartial;
        Ok((message, keys.export_key))
    }

    /// Round 4 in, round 5 out: the server's partial on ct_x, checked against P_srv from the
    /// string and for this recovery; x_d opened and checked against X_d from the string; the
    /// pairing restored from it and its refresh started.
    pub fn open(&mut self, server_partial: &[u8]) -> Result<Vec<u8>, MpcError> {
        let DeviceState::AwaitingPartial = self.state else {
            return Err(MpcError::InvalidState(
                "the recovery is not waiting for the server's partial".into(),
            ));
        };
        let recovery = RecoveryContext {
            operation: &self.operation,
            device: &self.device,
        };
        let string = &self.string;
        let context = string.context();
        let ephemeral = ciphertext_ephemeral(&self.device_half)?;
        let partial = verify_partial(
            server_partial,
            &string.server_key_share,
            &ephemeral,
            Half::Device,
            &context,
            Role::Server,
            PartialUse::Recovery(&recovery),
        )?;
        let key = backup_key(&string.device_key_share, &string.server_key_share)?;
        let share = decrypt_half(
            &self.device_half,
            &string.decryption_share()?,
            &partial,
            &key,
            Half::Device,
            &context,
            &string.device_public_share,
        )?;
        let restored = restore(
            Role::Device,
            &share,
            &recovery,
            &context,
            Facts {
                root_public_key: string.root_public_key,
                chain_code: string.chain_code,
                device_public_share: string.device_public_share,
                server_public_share: string.server_public_share,
            },
        )?;
        let (refresh, message) = Refresh::start_device(&restored, recovery.refresh_context())?;
        self.state = DeviceState::Refreshing { restored, refresh };
        Ok(message)
    }

    /// Rounds 6 and 8: the refresh's. Round 6 gives round 7 to send; round 8 gives the new
    /// device's pairing (of epoch [`RESTORED_EPOCH`] + 1), checked to hold the string's key.
    /// Store it, then send its confirmation as round 9.
    pub fn refresh(&mut self, message: &[u8]) -> Result<Step<Pairing>, MpcError> {
        let DeviceState::Refreshing { restored, refresh } = &mut self.state else {
            return Err(MpcError::InvalidState(
                "the recovery is not refreshing".into(),
            ));
        };
        let step = refresh.handle(restored, message)?;
        if let Some(pairing) = &step.output {
            if pairing.public().root_public_key != self.string.root_public_key {
                return Err(MpcError::Rejected(
                    "the refreshed pairing is for another key".into(),
                ));
            }
            self.state = DeviceState::Over;
        }
        Ok(step)
    }

    /// The backup's facts this recovery works from.
    pub fn backup(&self) -> &BackupString {
        &self.string
    }
}

/// The public facts a restored pairing takes besides its share. The device takes them from the
/// backup string; the server from the group (X, chain code) and the share it decrypted (S_d).
struct Facts {
    root_public_key: [u8; 33],
    chain_code: [u8; 32],
    device_public_share: [u8; 33],
    server_public_share: [u8; 33],
}

/// A pairing rebuilt from a bare share, with the recovery's own pairing id and engine session:
/// it cannot sign, only refresh.
fn restore(
    role: Role,
    share: &[u8; 32],
    recovery: &RecoveryContext<'_>,
    backup: &BackupContext<'_>,
    facts: Facts,
) -> Result<Pairing, MpcError> {
    let id = recovery.pairing_id(backup);
    Pairing::restore(
        role,
        share,
        PairingPublic {
            id,
            root_public_key: facts.root_public_key,
            chain_code: facts.chain_code,
            device_public_share: facts.device_public_share,
            server_public_share: facts.server_public_share,
        },
        RESTORED_EPOCH,
        id.to_vec(),
    )
}

/// What the server keeps of a backup, as recovery reads it.
pub struct ServerBackup<'a> {
    /// d_srv, opened from its sealed form.
    pub decryption_share: &'a DecryptionShare,
    /// P_dev.
    pub device_key_share: &'a [u8; 33],
    /// ct_x.
    pub device_half: &'a [u8],
    /// ct_s.
    pub server_half: &'a [u8],
}

impl ServerBackup<'_> {
    /// Round 1 at the server: the device's partial on ct_s must verify against the stored P_dev
    /// for this recovery (the device holds d_dev: only now may a passcode attempt be counted);
    /// then the server opens its own share s_d. Returns s_d.
    pub fn open_server_half(
        &self,
        server_half_partial: &[u8],
        backup: &BackupContext<'_>,
        recovery: &RecoveryContext<'_>,
    ) -> Result<Zeroizing<[u8; 32]>, MpcError> {
        let ephemeral = ciphertext_ephemeral(self.server_half)?;
        let partial = verify_partial(
            server_half_partial,
            self.device_key_share,
            &ephemeral,
            Half::Server,
            backup,
            Role::Device,
            PartialUse::Recovery(recovery),
        )?;
        let key = backup_key(self.device_key_share, &self.decryption_share.public())?;
        backup::open(
            self.server_half,
            self.decryption_share,
            &partial,
            &key,
            Half::Server,
            backup,
        )
    }

    /// Round 3 at the server, once the login's finalization verified: the device's MAC under the
    /// login's session secret must be for this recovery. Then the server's partial on ct_x
    /// (round 4).
    pub fn device_half_partial(
        &self,
        session: &SessionSecret,
        authorization: &[u8],
        backup: &BackupContext<'_>,
        recovery: &RecoveryContext<'_>,
    ) -> Result<Vec<u8>, MpcError> {
        let expected =
            session.authorize(ADD_DEVICE_PURPOSE, &recovery.authorization_message(backup));
        if !bool::from(expected.as_slice().ct_eq(authorization)) {
            return Err(MpcError::Rejected(
                "the login does not authorize this recovery".into(),
            ));
        }
        self.decryption_share.partial(
            &ciphertext_ephemeral(self.device_half)?,
            Half::Device,
            backup,
            Role::Server,
            PartialUse::Recovery(recovery),
        )
    }
}

/// The server's restored pairing, from s_d (decrypted in round 1) and the group's root key and
/// chain code: S_d = s_d·G, X_d = X − S_d. Its refresh starts with the device's round 5
/// ([`server_refresh`]).
pub fn restore_server(
    server_share: &[u8; 32],
    root_public_key: &[u8; 33],
    chain_code: &[u8; 32],
    backup: &BackupContext<'_>,
    recovery: &RecoveryContext<'_>,
) -> Result<Pairing, MpcError> {
    let server_public_share = crate::derive::public_of(server_share)?;
    let root = k256::ProjectivePoint::from(decode_point(root_public_key)?);
    let server_point = k256::ProjectivePoint::from(decode_point(&server_public_share)?);
    let device_point = (root - server_point).to_affine();
    if device_point == k256::AffinePoint::IDENTITY {
        return Err(DecodeError::InvalidPoint("the device's public share").into());
    }
    restore(
        Role::Server,
        server_share,
        recovery,
        backup,
        Facts {
            root_public_key: *root_public_key,
            chain_code: *chain_code,
            device_public_share: compressed(&device_point),
            server_public_share,
        },
    )
}

/// The server's refresh session for a restored pairing ([`restore_server`]).
pub fn server_refresh(
    restored: &Pairing,
    recovery: &RecoveryContext<'_>,
) -> Result<Refresh, MpcError> {
    Refresh::new_server(restored, recovery.refresh_context())
}

fn login_error(error: &PasscodeError) -> MpcError {
    match error {
        PasscodeError::Randomness => MpcError::Randomness("passcode login".into()),
        other => MpcError::InvalidState(other.to_string()),
    }
}
