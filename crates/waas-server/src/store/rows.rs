//! What the SQLite and PostgreSQL stores share: how values are written as text and read back,
//! and how a row becomes a record. The SQL itself stays in each store (placeholders, locking and
//! durability differ), the meaning of every column lives here once.

use std::str::FromStr;

use sqlx::Row;
use waas_api::PasscodeLoginName;
use waas_api::resources::{DeviceGroupEventType, DeviceState};

use super::{
    AddressRecord, Attempts, BackupRecord, DeviceRecord, GroupState, KeyRecord, LoginRecord,
    LoginState, NewBackup, OperationKind, OperationRecord, OperationState, PairingState,
    Replacement, StoreError,
};

/// A row of either database, read by column name. The stores' schemas give each column the same
/// type in both (TEXT; BLOB/BYTEA; INTEGER/BIGINT), so a record is read the same way from both.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<&str, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<&str>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;

    fn string(&self, column: &str) -> Result<String, StoreError> {
        self.text(column).map(str::to_owned)
    }

    fn opt_string(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_text(column)?.map(str::to_owned))
    }
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<&str, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<&str>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

columns!(sqlx::sqlite::SqliteRow);
columns!(sqlx::postgres::PgRow);

pub(super) fn group_state(text: &str) -> Result<GroupState, StoreError> {
    match text {
        "CREATING" => Ok(GroupState::Creating),
        "ACTIVE" => Ok(GroupState::Active),
        other => Err(StoreError::Corrupt(format!("group state {other:?}"))),
    }
}

pub(super) fn pairing_state(text: &str) -> Result<PairingState, StoreError> {
    match text {
        "PENDING" => Ok(PairingState::Pending),
        "CONFIRMED" => Ok(PairingState::Confirmed),
        "RETIRED" => Ok(PairingState::Retired),
        other => Err(StoreError::Corrupt(format!("pairing state {other:?}"))),
    }
}

/// A `passcode_logins` row (every column) of the login `name`.
pub(super) fn login_row(
    name: &PasscodeLoginName,
    row: &impl Columns,
) -> Result<LoginRecord, StoreError> {
    let state = match row.text("state")? {
        "STARTED" => LoginState::Started,
        "FINISHED" => LoginState::Finished,
        "USED" => LoginState::Used,
        "FAILED" => LoginState::Failed,
        "REVOKED" => LoginState::Revoked,
        other => return Err(StoreError::Corrupt(format!("login state {other:?}"))),
    };
    Ok(LoginRecord {
        name: name.clone(),
        device: parse(row.text("device")?)?,
        record_version: stored_u64(row.int("record_version")?, "record version")?,
        state,
        state_sealed: row.opt_bytes("state_sealed")?,
        session_sealed: row.opt_bytes("session_sealed")?,
        create_time_ms: row.int("create_time_ms")?,
        finish_time_ms: row.opt_int("finish_time_ms")?,
        reset_version: row
            .opt_int("reset_version")?
            .map(|version| stored_u64(version, "reset version"))
            .transpose()?,
    })
}

pub(super) fn parse<T: FromStr>(text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad stored name {text:?}")))
}

pub(super) fn device_state(text: &str) -> Result<DeviceState, StoreError> {
    match text {
        "ACTIVE" => Ok(DeviceState::Active),
        "REVOKED" => Ok(DeviceState::Revoked),
        other => Err(StoreError::Corrupt(format!("device state {other:?}"))),
    }
}

pub(super) fn device_state_text(state: DeviceState) -> &'static str {
    match state {
        DeviceState::Active => "ACTIVE",
        // Fail closed: a state this build does not know is not a usable device.
        _ => "REVOKED",
    }
}

pub(super) fn kind_text(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::CreateDeviceGroup => "CREATE_DEVICE_GROUP",
        OperationKind::CreateSignature => "CREATE_SIGNATURE",
        OperationKind::PrepareDeviceArchive => "PREPARE_DEVICE_ARCHIVE",
        OperationKind::PrepareDeviceBackup => "PREPARE_DEVICE_BACKUP",
        OperationKind::AddDevice => "ADD_DEVICE",
    }
}

pub(super) fn event_text(kind: DeviceGroupEventType) -> &'static str {
    match kind {
        DeviceGroupEventType::DeviceAdded => "DEVICE_ADDED",
        _ => "DEVICE_REVOKED",
    }
}

pub(super) fn event_kind(text: &str) -> Result<DeviceGroupEventType, StoreError> {
    match text {
        "DEVICE_ADDED" => Ok(DeviceGroupEventType::DeviceAdded),
        "DEVICE_REVOKED" => Ok(DeviceGroupEventType::DeviceRevoked),
        other => Err(StoreError::Corrupt(format!("event type {other:?}"))),
    }
}

pub(super) fn state_text(state: OperationState) -> &'static str {
    match state {
        OperationState::Pending => "PENDING",
        OperationState::Running => "RUNNING",
        OperationState::Done => "DONE",
        OperationState::Failed => "FAILED",
    }
}

pub(super) fn device_row(row: &impl Columns) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        name: parse(row.text("name")?)?,
        auth_public_key: row.bytes("auth_public_key")?,
        archive_public_key: row.bytes("archive_public_key")?,
        state: device_state(row.text("state")?)?,
        create_time_ms: row.int("create_time_ms")?,
    })
}

pub(super) fn key_row(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        name: parse(row.text("name")?)?,
        derivation_path: row.string("derivation_path")?,
        public_key: row.bytes("public_key")?,
        address: row.string("address")?,
    })
}

pub(super) fn address_row(row: &impl Columns) -> Result<AddressRecord, StoreError> {
    Ok(AddressRecord {
        address: row.string("address")?,
        network: row.string("network")?,
        mpc_wallet: parse(row.text("mpc_wallet")?)?,
        key: key_row(row)?,
    })
}

pub(super) fn operation_row(row: &impl Columns) -> Result<OperationRecord, StoreError> {
    let kind = match row.text("kind")? {
        "CREATE_DEVICE_GROUP" => OperationKind::CreateDeviceGroup,
        "CREATE_SIGNATURE" => OperationKind::CreateSignature,
        "PREPARE_DEVICE_ARCHIVE" => OperationKind::PrepareDeviceArchive,
        "PREPARE_DEVICE_BACKUP" => OperationKind::PrepareDeviceBackup,
        "ADD_DEVICE" => OperationKind::AddDevice,
        other => return Err(StoreError::Corrupt(format!("operation kind {other:?}"))),
    };
    let state = match row.text("state")? {
        "PENDING" => OperationState::Pending,
        "RUNNING" => OperationState::Running,
        "DONE" => OperationState::Done,
        "FAILED" => OperationState::Failed,
        other => return Err(StoreError::Corrupt(format!("operation state {other:?}"))),
    };
    let epoch = row.int("epoch")?;
    let round = row.int("round")?;
    Ok(OperationRecord {
        name: parse(&format!("operations/{}", row.text("id")?))?,
        kind,
        device_group: parse(row.text("device_group")?)?,
        device: parse(row.text("device")?)?,
        epoch: u64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?,
        state,
        round: u8::try_from(round).map_err(|_| StoreError::Corrupt("round".into()))?,
        input_hash: row.opt_bytes("input_hash")?,
        reply: row.opt_string("reply")?,
        session_sealed: row.opt_bytes("session_sealed")?,
        metadata: row.string("metadata")?,
        params: row.string("params")?,
        response: row.opt_string("response")?,
        error: row.opt_string("error")?,
        request_hash: row.opt_bytes("request_hash")?,
        create_time_ms: row.int("create_time_ms")?,
        update_time_ms: row.int("update_time_ms")?,
    })
}

pub(super) fn backup_row(row: &impl Columns) -> Result<BackupRecord, StoreError> {
    let epoch = row.int("epoch")?;
    let replaced_by = row.opt_text("replaced_by")?;
    Ok(BackupRecord {
        device_group: parse(row.text("device_group")?)?,
        device: parse(row.text("device")?)?,
        epoch: stored_u64(epoch, "epoch")?,
        material: NewBackup {
            backup: parse(row.text("backup")?)?,
            pairing_id: row.bytes("pairing_id")?,
            decryption_share_sealed: row.bytes("decryption_share_sealed")?,
            device_key_share: row.bytes("device_key_share")?,
            server_key_share: row.bytes("server_key_share")?,
            device_ciphertext: row.bytes("device_ciphertext")?,
            server_ciphertext: row.bytes("server_ciphertext")?,
        },
        create_time_ms: row.int("create_time_ms")?,
        replaced_time_ms: row.opt_int("replaced_time_ms")?,
        replaced_by: replaced_by.map(replacement).transpose()?,
    })
}

/// `backups.replaced_by`: a backup's id (`…/mpcOperations/{id}`), or the login of the passcode
/// reset that retired it (`…/passcodeLogins/{id}`).
pub(super) fn replacement(text: &str) -> Result<Replacement, StoreError> {
    match text.parse() {
        Ok(backup) => Ok(Replacement::Backup(backup)),
        Err(_) => parse(text).map(Replacement::PasscodeReset),
    }
}

pub(super) fn epoch_value(epoch: u64) -> Result<i64, StoreError> {
    i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))
}

/// Attempts as stored: failures, last attempt, locked.
pub(super) fn attempts_row(
    (failures, last_attempt_ms, locked): (i64, i64, bool),
) -> Result<Attempts, StoreError> {
    Ok(Attempts {
        failures: u32::try_from(failures)
            .map_err(|_| StoreError::Corrupt("failure count".into()))?,
        last_attempt_ms,
        locked,
    })
}

pub(super) fn stored_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range")))
}

pub(super) fn stored_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt("value out of range".into()))
}

/// The record version after `version` (a reset's).
pub(super) fn next_version(version: u64) -> Result<u64, StoreError> {
    version
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt("record version out of range".into()))
}
