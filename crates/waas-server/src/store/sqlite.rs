//! The embedded default: one SQLite file in WAL mode. The schema lives in `migrations/` and is
//! applied at start, so a server upgrade migrates its database by itself.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use waas_api::resources::{DeviceGroupEventType, DeviceState};
use waas_api::{
    DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName, MpcWalletName, OperationName,
    PasscodeLoginName, PoolName,
};

use super::rows::{
    address_row, attempts_row, backup_row, device_row, device_state, device_state_text,
    epoch_value, event_kind, event_text, group_state, key_row, kind_text, login_row, next_version,
    operation_row, pairing_state, parse, state_text, stored_i64, stored_u64,
};
use super::{
    AddressRecord, Attempts, BackupRecord, Committed, Created, DEFAULT_POOL, DeviceRecord,
    GroupEventRecord, GroupRecord, KeyRecord, LoginOutcome, LoginRecord, LoginUse, NewLogin,
    NewOperation, NewWallet, OperationKind, OperationRecord, OperationState, PairingRecord,
    PasscodeRecord, PoolRecord, Revocation, StepEffect, StepUpdate, Store, StoreError,
    WalletRecord,
};
use crate::ServerError;
use crate::time::now_ms;

/// The SQLite store: cheap to clone, shared by every request.
///
/// Reads go through `pool` (many connections); every write through `writer`, a pool of one
/// connection, so writers queue here without spinning in SQLite's busy handler (SQLite has one
/// writer at a time anyway). Writes are `synchronous = NORMAL` (durable across a crash of the
/// process; a power loss may lose the last commits), except those whose loss after the answer
/// left would matter, which commit `FULL` ([`Self::write_durably`]): exchange steps (a round
/// rolled back would let its phase run again) and the passcode's counted attempts, logins and
/// records (a counted attempt rolled back would be a free guess; a used login, usable again). A
/// FULL commit also makes every earlier commit durable (one log).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by `--database`, migrates it to the current
    /// schema and makes sure `pools/default` exists.
    pub async fn open(database: &str) -> Result<Self, ServerError> {
        let path = sqlite_path(database)?;
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::DatabaseDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Deleted rows are overwritten, not left in free pages: a swept backup's sealed
            // decryption half or a revoked device's sealed pairing must not come back from a
            // copy of the file (with the key file, it would open).
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let pool = SqlitePoolOptions::new().connect_with(options).await?;

        let store = Self { pool, writer };
        store.ensure_default_pool().await?;
        Ok(store)
    }

    /// Opens the database of an operator command: as [`Self::open`], but it must exist already
    /// (a mistyped `--database` must not create an empty one and report success on it).
    pub async fn open_existing(database: &str) -> Result<Self, ServerError> {
        let path = sqlite_path(database)?;
        if !Path::new(path).is_file() {
            return Err(ServerError::NoDatabase(path.to_owned()));
        }
        Self::open(database).await
    }

    async fn ensure_default_pool(&self) -> Result<(), StoreError> {
        let created = self
            .create_pool(&PoolRecord {
                name: DEFAULT_POOL
                    .parse()
                    .map_err(|_| StoreError::Corrupt("default pool name".into()))?,
                display_name: "Default pool".into(),
                create_time_ms: now_ms(),
                export_enabled: true,
            })
            .await?;
        if created {
            tracing::info!(pool = DEFAULT_POOL, "created the default pool");
        }
        Ok(())
    }

    /// Starts a write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers never both read, then fail to upgrade their lock.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Runs `write` on the writer connection switched to `synchronous = FULL`, so what it
    /// commits is on disk before the caller answers: a power loss cannot roll it back. `write`
    /// opens ([`begin_immediate`]) and commits its own transaction; returning without committing
    /// rolls it back.
    async fn write_durably<T, E: From<StoreError>>(
        &self,
        write: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut writer = self.writer.acquire().await.map_err(StoreError::from)?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *writer)
            .await
            .map_err(StoreError::from)?;
        let written = write(&mut writer).await;
        // Back to NORMAL for the other writes; should this fail, FULL stays, which is only
        // slower, and what `write` did stands.
        if let Err(error) = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *writer)
            .await
        {
            tracing::warn!(%error, "the writer stays at synchronous = FULL");
        }
        written
    }
}

/// Starts a write transaction on `connection` that takes SQLite's write lock at once.
async fn begin_immediate(
    connection: &mut SqliteConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
    Ok(sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE").await?)
}

async fn operation_by_request(
    connection: &mut sqlx::SqliteConnection,
    operation: &NewOperation,
) -> Result<Option<OperationRecord>, StoreError> {
    let Some(request_id) = &operation.request_id else {
        return Ok(None);
    };
    sqlx::query("SELECT * FROM operations WHERE creator = ? AND kind = ? AND request_id = ?")
        .bind(&operation.creator)
        .bind(kind_text(operation.kind))
        .bind(request_id)
        .fetch_optional(connection)
        .await?
        .as_ref()
        .map(operation_row)
        .transpose()
}

async fn insert_operation(
    connection: &mut sqlx::SqliteConnection,
    operation: &NewOperation,
) -> Result<OperationRecord, StoreError> {
    let now = now_ms();
    let row = sqlx::query(
        "INSERT INTO operations (id, kind, device_group, device, epoch, state, metadata, params,
             creator, request_id, request_hash, create_time_ms, update_time_ms)
         VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(operation.name.operation().as_str())
    .bind(kind_text(operation.kind))
    .bind(operation.device_group.to_string())
    .bind(operation.device.to_string())
    .bind(epoch_value(operation.epoch)?)
    .bind(&operation.metadata)
    .bind(&operation.params)
    .bind(&operation.creator)
    .bind(&operation.request_id)
    .bind(&operation.request_hash)
    .bind(now)
    .bind(now)
    .fetch_one(connection)
    .await?;
    operation_row(&row)
}

impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    async fn pool(&self, name: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "SELECT display_name, create_time_ms, export_enabled FROM pools WHERE name = ?",
        )
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(display_name, create_time_ms, export_enabled)| PoolRecord {
                name: name.clone(),
                display_name,
                create_time_ms,
                export_enabled,
            },
        ))
    }

    async fn create_pool(&self, pool: &PoolRecord) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO pools (name, display_name, create_time_ms, export_enabled)
             VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(pool.name.to_string())
        .bind(&pool.display_name)
        .bind(pool.create_time_ms)
        .bind(pool.export_enabled)
        .execute(&self.writer)
        .await?;
        Ok(inserted.rows_affected() > 0)
    }

    async fn put_device(&self, device: &DeviceRecord) -> Result<DeviceRecord, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO devices (name, auth_public_key, archive_public_key, state, create_time_ms)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(device.name.to_string())
        .bind(&device.auth_public_key)
        .bind(&device.archive_public_key)
        .bind(device_state_text(device.state))
        .bind(device.create_time_ms)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM devices WHERE auth_public_key = ?")
            .bind(&device.auth_public_key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        device_row(&row)
    }

    async fn device(&self, name: &DeviceName) -> Result<Option<DeviceRecord>, StoreError> {
        sqlx::query("SELECT * FROM devices WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(device_row)
            .transpose()
    }

    async fn revoke_device(
        &self,
        device: &DeviceName,
        step_up: Option<&LoginUse>,
        error: &str,
    ) -> Result<Revocation, StoreError> {
        self.write_durably(async |writer| revoke_device(writer, device, step_up, error).await)
            .await
    }

    async fn put_api_key(&self, name: &str, public_key: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (name, public_key, create_time_ms) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key",
        )
        .bind(name)
        .bind(public_key)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn remove_api_key(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM api_keys WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn api_key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT public_key FROM api_keys WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(key,)| key))
    }

    async fn use_token(
        &self,
        subject: &str,
        jti: &str,
        expires_ms: i64,
        forget_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM request_tokens WHERE expires_ms < ?")
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO request_tokens (subject, jti, expires_ms) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(subject)
        .bind(jti)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() > 0)
    }

    async fn create_wallet(
        &self,
        wallet: &NewWallet,
    ) -> Result<Created<OperationRecord>, StoreError> {
        let operation = &wallet.operation;
        let mut tx = self.write().await?;
        if let Some(existing) = operation_by_request(&mut tx, operation).await? {
            return Ok(Created::Existing(existing));
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO device_groups (name, pool, state, create_time_ms) VALUES (?, ?, 'CREATING', ?)",
        )
        .bind(operation.device_group.to_string())
        .bind(operation.device_group.pool_name().to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO device_group_devices (device_group, device) VALUES (?, ?)")
            .bind(operation.device_group.to_string())
            .bind(operation.device.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO mpc_wallets (name, pool, device_group, create_time_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(wallet.wallet.to_string())
        .bind(wallet.wallet.pool_name().to_string())
        .bind(operation.device_group.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let record = insert_operation(&mut tx, operation).await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn wallet(&self, name: &MpcWalletName) -> Result<Option<WalletRecord>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT device_group, create_time_ms FROM mpc_wallets WHERE name = ?")
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(group, create_time_ms)| {
            Ok(WalletRecord {
                name: name.clone(),
                device_group: parse(&group)?,
                create_time_ms,
            })
        })
        .transpose()
    }

    async fn device_group(
        &self,
        name: &DeviceGroupName,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let Some(row) = sqlx::query("SELECT * FROM device_groups WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&mut *connection)
            .await?
        else {
            return Ok(None);
        };
        let devices: Vec<(String,)> = sqlx::query_as(
            "SELECT device FROM device_group_devices WHERE device_group = ? ORDER BY device",
        )
        .bind(name.to_string())
        .fetch_all(&mut *connection)
        .await?;
        let state = group_state(row.try_get("state")?)?;
        Ok(Some(GroupRecord {
            name: name.clone(),
            state,
            root_public_key: row.try_get("root_public_key")?,
            chain_code_sealed: row.try_get("chain_code_sealed")?,
            devices: devices
                .iter()
                .map(|(device,)| parse(device))
                .collect::<Result<_, _>>()?,
        }))
    }

    async fn is_member(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM device_group_devices WHERE device_group = ? AND device = ?",
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn pairing(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        epoch: u64,
    ) -> Result<Option<PairingRecord>, StoreError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT state, pairing_id, pairing_sealed FROM pairings
             WHERE device_group = ? AND device = ? AND epoch = ?",
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .bind(epoch_value(epoch)?)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(state, pairing_id, pairing_sealed)| {
            Ok(PairingRecord {
                state: pairing_state(&state)?,
                pairing_id,
                pairing_sealed,
            })
        })
        .transpose()
    }

    async fn device_states(
        &self,
        group: &DeviceGroupName,
    ) -> Result<Vec<(DeviceName, DeviceState)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.device, d.state FROM device_group_devices m
             JOIN devices d ON d.name = m.device WHERE m.device_group = ? ORDER BY m.device",
        )
        .bind(group.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|(device, state)| Ok((parse(device)?, device_state(state)?)))
            .collect()
    }

    async fn device_group_events(
        &self,
        group: &DeviceGroupName,
    ) -> Result<Vec<GroupEventRecord>, StoreError> {
        let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT type, device, operation, time_ms FROM device_group_events
             WHERE device_group = ? ORDER BY rowid",
        )
        .bind(group.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|(kind, device, operation, time_ms)| {
                Ok(GroupEventRecord {
                    kind: event_kind(kind)?,
                    device: parse(device)?,
                    operation: operation.as_deref().map(parse).transpose()?,
                    time_ms: *time_ms,
                })
            })
            .collect()
    }

    async fn confirmed_epoch(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> Result<Option<u64>, StoreError> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT MAX(epoch) FROM pairings
             WHERE device_group = ? AND device = ? AND state = 'CONFIRMED'",
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.and_then(|(epoch,)| epoch)
            .map(|epoch| u64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into())))
            .transpose()
    }

    async fn put_key(
        &self,
        group: &DeviceGroupName,
        key: &KeyRecord,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.write().await?;
        let record = insert_key(&mut tx, group, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn key(&self, name: &MpcKeyName) -> Result<Option<KeyRecord>, StoreError> {
        sqlx::query("SELECT * FROM mpc_keys WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(key_row)
            .transpose()
    }

    async fn add_next_address<E: From<StoreError> + Send>(
        &self,
        group: &DeviceGroupName,
        wallet: &MpcWalletName,
        make: impl FnOnce(u32) -> Result<AddressRecord, E> + Send,
    ) -> Result<AddressRecord, E> {
        let mut tx = self.write().await?;
        let (index,): (i64,) = sqlx::query_as(
            "UPDATE mpc_wallets SET next_index = next_index + 1 WHERE name = ?
             RETURNING next_index - 1",
        )
        .bind(wallet.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let index =
            u32::try_from(index).map_err(|_| StoreError::Corrupt("address index".into()))?;
        let address = make(index)?;
        let key = insert_key(&mut tx, group, &address.key).await?;
        sqlx::query(
            "INSERT INTO addresses (mpc_wallet, address, network, mpc_key, create_time_ms)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(address.mpc_wallet.to_string())
        .bind(&address.address)
        .bind(&address.network)
        .bind(key.name.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(AddressRecord { key, ..address })
    }

    async fn addresses(&self, wallet: &MpcWalletName) -> Result<Vec<AddressRecord>, StoreError> {
        sqlx::query(
            "SELECT a.address, a.network, a.mpc_wallet, k.* FROM addresses a
             JOIN mpc_keys k ON k.name = a.mpc_key WHERE a.mpc_wallet = ? ORDER BY a.rowid",
        )
        .bind(wallet.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(address_row)
        .collect()
    }

    async fn address(
        &self,
        wallet: &MpcWalletName,
        address: &str,
    ) -> Result<Option<AddressRecord>, StoreError> {
        sqlx::query(
            "SELECT a.address, a.network, a.mpc_wallet, k.* FROM addresses a
             JOIN mpc_keys k ON k.name = a.mpc_key WHERE a.mpc_wallet = ? AND lower(a.address) = lower(?)",
        )
        .bind(wallet.to_string())
        .bind(address)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(address_row)
        .transpose()
    }

    async fn create_operation(
        &self,
        operation: &NewOperation,
    ) -> Result<Created<OperationRecord>, StoreError> {
        let mut tx = self.write().await?;
        if let Some(existing) = operation_by_request(&mut tx, operation).await? {
            return Ok(Created::Existing(existing));
        }
        let record = insert_operation(&mut tx, operation).await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn operation(&self, name: &OperationName) -> Result<Option<OperationRecord>, StoreError> {
        sqlx::query("SELECT * FROM operations WHERE id = ?")
            .bind(name.operation().as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(operation_row)
            .transpose()
    }

    async fn open_operations(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM operations WHERE device_group = ? AND device = ?
             AND state IN ('PENDING', 'RUNNING') ORDER BY create_time_ms, id",
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(operation_row)
        .collect()
    }

    async fn expire_operations(
        &self,
        created_before_ms: i64,
        idle_before_ms: i64,
        error: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let expired: Vec<(String, String, String, i64, String)> = sqlx::query_as(
            "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = ?,
                 update_time_ms = ?
             WHERE (state = 'PENDING' AND create_time_ms < ?)
                OR (state = 'RUNNING' AND update_time_ms < ?)
             RETURNING id, device_group, device, epoch, kind",
        )
        .bind(error)
        .bind(now_ms())
        .bind(created_before_ms)
        .bind(idle_before_ms)
        .fetch_all(&mut *tx)
        .await?;
        for (id, group, device, epoch, kind) in &expired {
            if kind == kind_text(OperationKind::CreateDeviceGroup) {
                // The device never confirmed: the server's half of that key is deleted.
                sqlx::query(
                    "DELETE FROM pairings WHERE device_group = ? AND device = ? AND epoch = ?
                     AND state = 'PENDING'",
                )
                .bind(group)
                .bind(device)
                .bind(epoch)
                .execute(&mut *tx)
                .await?;
            } else if kind == kind_text(OperationKind::AddDevice) {
                // Only the pending pairing this recovery made (round 7 names it): another
                // AddDevice of the same device may have made the pending one, and still be live.
                delete_recovered_pairing(&mut tx, id).await?;
            }
        }
        tx.commit().await?;
        Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
    }

    async fn commit_step(
        &self,
        name: &OperationName,
        from_round: u8,
        step: &StepUpdate,
    ) -> Result<Committed, StoreError> {
        self.write_durably(async |writer| commit_step(writer, name, from_round, step).await)
            .await
    }

    async fn live_backup(
        &self,
        group: &DeviceGroupName,
        backup: &MpcOperationName,
        replaced_since_ms: i64,
    ) -> Result<Option<BackupRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM backups WHERE device_group = ? AND backup = ?
                 AND (replaced_time_ms IS NULL OR replaced_time_ms >= ?)",
        )
        .bind(group.to_string())
        .bind(backup.to_string())
        .bind(replaced_since_ms)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(backup_row)
        .transpose()
    }

    async fn forget_replaced_backups(&self, replaced_before_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM backups
             WHERE replaced_time_ms IS NOT NULL AND replaced_time_ms < ?",
        )
        .bind(replaced_before_ms)
        .execute(&self.writer)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn server_secret(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO server_secrets (name, secret_sealed, create_time_ms) VALUES (?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let (stored,): (Vec<u8>,) =
            sqlx::query_as("SELECT secret_sealed FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn keys(&self, group: &DeviceGroupName) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query("SELECT * FROM mpc_keys WHERE device_group = ? ORDER BY rowid")
            .bind(group.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_row)
            .collect()
    }

    async fn passcode_record(
        &self,
        group: &DeviceGroupName,
    ) -> Result<Option<PasscodeRecord>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT version, record_sealed FROM passcode_records WHERE device_group = ?",
        )
        .bind(group.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(version, record_sealed)| {
            Ok(PasscodeRecord {
                version: stored_u64(version, "record version")?,
                record_sealed,
            })
        })
        .transpose()
    }

    async fn create_passcode_record(
        &self,
        group: &DeviceGroupName,
        record_sealed: &[u8],
    ) -> Result<bool, StoreError> {
        self.write_durably(async |writer| {
            let inserted = sqlx::query(
                "INSERT INTO passcode_records (device_group, version, record_sealed,
                     update_time_ms) VALUES (?, 1, ?, ?) ON CONFLICT (device_group) DO NOTHING",
            )
            .bind(group.to_string())
            .bind(record_sealed)
            .bind(now_ms())
            .execute(writer)
            .await?;
            Ok(inserted.rows_affected() == 1)
        })
        .await
    }

    async fn reset_passcode_record(
        &self,
        group: &DeviceGroupName,
        from_version: u64,
        record_sealed: &[u8],
        login: &LoginUse,
        recovery_error: &str,
    ) -> Result<Option<u64>, StoreError> {
        let version = next_version(from_version)?;
        self.write_durably(async |writer| {
            let mut tx = begin_immediate(writer).await?;
            let updated = sqlx::query(
                "UPDATE passcode_records SET version = ?, record_sealed = ?, update_time_ms = ?
                 WHERE device_group = ? AND version = ?",
            )
            .bind(stored_i64(version)?)
            .bind(record_sealed)
            .bind(now_ms())
            .bind(group.to_string())
            .bind(stored_i64(from_version)?)
            .execute(&mut *tx)
            .await?;
            // Dropping the transaction rolls back whatever was written.
            if updated.rows_affected() != 1 || !use_login(&mut tx, login, Some(version)).await? {
                return Ok(None);
            }
            // Logins started or finished with the old record authorize nothing from now on.
            sqlx::query(
                "UPDATE passcode_logins SET state = 'REVOKED', state_sealed = NULL,
                     session_sealed = NULL
                 WHERE device_group = ? AND state IN ('STARTED', 'FINISHED')",
            )
            .bind(group.to_string())
            .execute(&mut *tx)
            .await?;
            // The current backups made by a revoked device of the group (a thief's strings,
            // which the revocation kept current) are retired by the reset: replaced by it (its
            // login's name), kept for the retention like any replaced backup, then swept. A
            // revocation never brings them back: no backup has that id.
            sqlx::query(
                "UPDATE backups SET replaced_time_ms = ?, replaced_by = ?
                 WHERE device_group = ? AND replaced_time_ms IS NULL
                     AND device IN (SELECT name FROM devices WHERE state = 'REVOKED')",
            )
            .bind(now_ms())
            .bind(login.name.to_string())
            .bind(group.to_string())
            .execute(&mut *tx)
            .await?;
            // Recoveries in flight logged in with the old record: they end here, with the
            // pending pairings they made (a later round of theirs finds them failed).
            let failed: Vec<(String,)> = sqlx::query_as(
                "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = ?,
                     update_time_ms = ?
                 WHERE device_group = ? AND kind = ? AND state IN ('PENDING', 'RUNNING')
                 RETURNING id",
            )
            .bind(recovery_error)
            .bind(now_ms())
            .bind(group.to_string())
            .bind(kind_text(OperationKind::AddDevice))
            .fetch_all(&mut *tx)
            .await?;
            for (id,) in &failed {
                delete_recovered_pairing(&mut tx, id).await?;
            }
            tx.commit().await?;
            Ok(Some(version))
        })
        .await
    }

    async fn start_passcode_reset(
        &self,
        login: &LoginUse,
        from_version: u64,
    ) -> Result<bool, StoreError> {
        let version = next_version(from_version)?;
        let group = login.name.device_group_name().to_string();
        self.write_durably(async |writer| {
            let marked = sqlx::query(
                "UPDATE passcode_logins SET reset_version = ?
                 WHERE id = ? AND device_group = ? AND device = ? AND state = 'FINISHED'
                     AND finish_time_ms >= ? AND record_version = ? AND reset_version IS NULL
                     AND EXISTS (SELECT 1 FROM passcode_records
                                 WHERE device_group = ? AND version = ?)",
            )
            .bind(stored_i64(version)?)
            .bind(login.name.login().as_str())
            .bind(&group)
            .bind(login.device.to_string())
            .bind(login.finished_after_ms)
            .bind(stored_i64(from_version)?)
            .bind(&group)
            .bind(stored_i64(from_version)?)
            .execute(writer)
            .await?;
            Ok(marked.rows_affected() == 1)
        })
        .await
    }

    async fn passcode_attempts(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> Result<Attempts, StoreError> {
        Ok(attempts(&mut *self.pool.acquire().await?, group, device)
            .await?
            .unwrap_or_default())
    }

    async fn count_passcode_attempt<E: From<StoreError> + Send>(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        now_ms: i64,
        max_failures: u32,
        login: Option<&NewLogin>,
        check: impl FnOnce(&Attempts, Option<u64>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        self.write_durably(async |writer| {
            let mut tx = begin_immediate(writer).await?;
            let before = attempts(&mut tx, group, device).await?.unwrap_or_default();
            let version: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM passcode_records WHERE device_group = ?")
                    .bind(group.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            let version = version
                .map(|(version,)| stored_u64(version, "record version"))
                .transpose()?;
            check(&before, version)?;
            let failures = before.failures.saturating_add(1);
            sqlx::query(
                "INSERT INTO passcode_attempts (device_group, device, failures, last_attempt_ms,
                     locked) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (device_group, device) DO UPDATE SET failures = excluded.failures,
                     last_attempt_ms = excluded.last_attempt_ms, locked = excluded.locked",
            )
            .bind(group.to_string())
            .bind(device.to_string())
            .bind(i64::from(failures))
            .bind(now_ms)
            .bind(before.locked || failures >= max_failures)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if let Some(login) = login {
                sqlx::query(
                    "INSERT INTO passcode_logins (id, device_group, device, record_version, state,
                         state_sealed, create_time_ms) VALUES (?, ?, ?, ?, 'STARTED', ?, ?)",
                )
                .bind(login.name.login().as_str())
                .bind(group.to_string())
                .bind(login.device.to_string())
                .bind(stored_i64(login.record_version)?)
                .bind(&login.state_sealed)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok(())
        })
        .await
    }

    async fn passcode_login(
        &self,
        name: &PasscodeLoginName,
    ) -> Result<Option<LoginRecord>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT * FROM passcode_logins WHERE id = ? AND device_group = ?")
                .bind(name.login().as_str())
                .bind(name.device_group_name().to_string())
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        login_row(name, &row).map(Some)
    }

    async fn finish_passcode_login(
        &self,
        name: &PasscodeLoginName,
        outcome: &LoginOutcome,
        started_after_ms: i64,
        max_failures: u32,
    ) -> Result<bool, StoreError> {
        self.write_durably(async |writer| {
            let (state, session_sealed) = match outcome {
                LoginOutcome::Finished { session_sealed } => ("FINISHED", Some(session_sealed)),
                LoginOutcome::Failed => ("FAILED", None),
            };
            let mut tx = begin_immediate(writer).await?;
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE passcode_logins SET state = ?, state_sealed = NULL, session_sealed = ?,
                     finish_time_ms = ?
                 WHERE id = ? AND device_group = ? AND state = 'STARTED' AND create_time_ms >= ?
                 RETURNING device",
            )
            .bind(state)
            .bind(session_sealed)
            .bind(now_ms())
            .bind(name.login().as_str())
            .bind(name.device_group_name().to_string())
            .bind(started_after_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((device,)) = row else {
                return Ok(false);
            };
            if matches!(outcome, LoginOutcome::Finished { .. }) {
                // Below the lock only: once locked (by attempts made after this login started,
                // or by its own start), only the operator's unlock clears the count.
                sqlx::query(
                    "UPDATE passcode_attempts SET failures = 0
                     WHERE device_group = ? AND device = ? AND failures < ? AND NOT locked",
                )
                .bind(name.device_group_name().to_string())
                .bind(device)
                .bind(i64::from(max_failures))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn unlock_passcode(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> Result<Option<Attempts>, StoreError> {
        let mut tx = self.write().await?;
        let before = attempts(&mut tx, group, device).await?;
        sqlx::query(
            "UPDATE passcode_attempts SET failures = 0, locked = 0
             WHERE device_group = ? AND device = ?",
        )
        .bind(group.to_string())
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    async fn recovery_attempts(&self, backup: &MpcOperationName) -> Result<Attempts, StoreError> {
        Ok(recovery_attempts(&mut *self.pool.acquire().await?, backup)
            .await?
            .unwrap_or_default())
    }

    async fn unlock_recovery(
        &self,
        group: &DeviceGroupName,
        backup: Option<&MpcOperationName>,
    ) -> Result<Vec<(MpcOperationName, Attempts)>, StoreError> {
        let mut tx = self.write().await?;
        let backup = backup.map(ToString::to_string);
        let before: Vec<(String, i64, i64, bool)> = sqlx::query_as(
            "SELECT backup, failures, last_attempt_ms, locked FROM recovery_attempts
             WHERE device_group = ? AND (? IS NULL OR backup = ?) ORDER BY last_attempt_ms, backup",
        )
        .bind(group.to_string())
        .bind(&backup)
        .bind(&backup)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE recovery_attempts SET failures = 0, locked = 0
             WHERE device_group = ? AND (? IS NULL OR backup = ?)",
        )
        .bind(group.to_string())
        .bind(&backup)
        .bind(&backup)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        before
            .into_iter()
            .map(|(backup, failures, last_attempt_ms, locked)| {
                Ok((
                    parse(&backup)?,
                    attempts_row((failures, last_attempt_ms, locked))?,
                ))
            })
            .collect()
    }

    async fn forget_passcode_logins(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM passcode_logins WHERE create_time_ms < ?")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// A device's failed attempts in a group, if any were recorded.
async fn attempts(
    connection: &mut sqlx::SqliteConnection,
    group: &DeviceGroupName,
    device: &DeviceName,
) -> Result<Option<Attempts>, StoreError> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(
        "SELECT failures, last_attempt_ms, locked FROM passcode_attempts
         WHERE device_group = ? AND device = ?",
    )
    .bind(group.to_string())
    .bind(device.to_string())
    .fetch_optional(connection)
    .await?;
    row.map(attempts_row).transpose()
}

/// A backup's failed recovery attempts, if any were recorded.
async fn recovery_attempts(
    connection: &mut sqlx::SqliteConnection,
    backup: &MpcOperationName,
) -> Result<Option<Attempts>, StoreError> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(
        "SELECT failures, last_attempt_ms, locked FROM recovery_attempts WHERE backup = ?",
    )
    .bind(backup.to_string())
    .fetch_optional(connection)
    .await?;
    row.map(attempts_row).transpose()
}

/// Whether the group's passcode record is at `version`.
async fn record_at(
    connection: &mut sqlx::SqliteConnection,
    group: &str,
    version: u64,
) -> Result<bool, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM passcode_records WHERE device_group = ? AND version = ?")
            .bind(group)
            .bind(stored_i64(version)?)
            .fetch_optional(connection)
            .await?;
    Ok(row.is_some())
}

/// [`Store::commit_step`] on the writer connection, in one transaction.
async fn commit_step(
    connection: &mut SqliteConnection,
    name: &OperationName,
    from_round: u8,
    step: &StepUpdate,
) -> Result<Committed, StoreError> {
    let mut tx = begin_immediate(connection).await?;
    let row: Option<(String, String, i64, String)> = sqlx::query_as(
        "UPDATE operations SET round = ?, input_hash = ?, reply = ?, session_sealed = ?,
                 state = ?, response = ?, error = ?, update_time_ms = ?
             WHERE id = ? AND round = ? AND state IN ('PENDING', 'RUNNING')
                 AND EXISTS (SELECT 1 FROM devices
                             WHERE devices.name = operations.device AND state = 'ACTIVE')
             RETURNING device_group, device, epoch, kind",
    )
    .bind(i64::from(step.round))
    .bind(&step.input_hash)
    .bind(&step.reply)
    .bind(&step.session_sealed)
    .bind(state_text(step.state))
    .bind(&step.response)
    .bind(&step.error)
    .bind(now_ms())
    .bind(name.operation().as_str())
    .bind(i64::from(from_round))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((group, device, epoch, kind)) = row else {
        // Which condition failed: a revocation (which also failed the operation) is told as such.
        let revoked: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM operations JOIN devices ON devices.name = operations.device
             WHERE operations.id = ? AND devices.state <> 'ACTIVE'",
        )
        .bind(name.operation().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        return Ok(match revoked {
            Some(_) => Committed::DeviceRevoked,
            None => Committed::RoundTaken,
        });
    };
    // A recovery that ends failed takes the pending pairing it made with it.
    if step.state == OperationState::Failed && kind == kind_text(OperationKind::AddDevice) {
        delete_recovered_pairing(&mut tx, name.operation().as_str()).await?;
    }
    match &step.effect {
        StepEffect::None => {}
        StepEffect::KeygenFinished {
            pairing_id,
            pairing_sealed,
            root_public_key,
            chain_code_sealed,
        } => {
            sqlx::query(
                "INSERT INTO pairings (device_group, device, epoch, state, pairing_id,
                         pairing_sealed, create_time_ms) VALUES (?, ?, ?, 'PENDING', ?, ?, ?)",
            )
            .bind(&group)
            .bind(&device)
            .bind(epoch)
            .bind(pairing_id)
            .bind(pairing_sealed)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                    "UPDATE device_groups SET root_public_key = ?, chain_code_sealed = ? WHERE name = ?",
                )
                .bind(root_public_key)
                .bind(chain_code_sealed)
                .bind(&group)
                .execute(&mut *tx)
                .await?;
        }
        StepEffect::KeygenConfirmed { archive } => {
            sqlx::query(
                "UPDATE pairings SET state = 'CONFIRMED'
                     WHERE device_group = ? AND device = ? AND epoch = ? AND state = 'PENDING'",
            )
            .bind(&group)
            .bind(&device)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE device_groups SET state = 'ACTIVE' WHERE name = ?")
                .bind(&group)
                .execute(&mut *tx)
                .await?;
            if let Some(archive) = archive {
                insert_operation(&mut tx, archive).await?;
            }
        }
        StepEffect::UseLogin(login) => {
            // Dropping the transaction rolls the step back: nothing of it is written.
            if !use_login(&mut tx, login, None).await? {
                return Ok(Committed::ConditionFailed);
            }
        }
        StepEffect::BackupVerified(backup) => {
            // The group's current backups are marked replaced by this one, not deleted: the
            // user may not have saved the new string yet, and a thief's backup must not take
            // the owner's with it (RevokeDevice brings the owner's back). The sweep deletes
            // them once the retention ran out. Only here, in round 5's commit: a backup that
            // does not get here replaces nothing.
            let id = backup.backup.to_string();
            let now = now_ms();
            sqlx::query(
                "UPDATE backups SET replaced_time_ms = ?, replaced_by = ?
                     WHERE device_group = ? AND replaced_time_ms IS NULL",
            )
            .bind(now)
            .bind(&id)
            .bind(&group)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO backups (device_group, backup, device, epoch, pairing_id,
                         decryption_share_sealed, device_key_share, server_key_share,
                         device_ciphertext, server_ciphertext, create_time_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&group)
            .bind(&id)
            .bind(&device)
            .bind(epoch)
            .bind(&backup.pairing_id)
            .bind(&backup.decryption_share_sealed)
            .bind(&backup.device_key_share)
            .bind(&backup.server_key_share)
            .bind(&backup.device_ciphertext)
            .bind(&backup.server_ciphertext)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        StepEffect::RetirePairing => {
            sqlx::query(
                "UPDATE pairings SET state = 'RETIRED'
                     WHERE device_group = ? AND device = ? AND epoch = ?",
            )
            .bind(&group)
            .bind(&device)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = ?,
                         update_time_ms = ?
                     WHERE device_group = ? AND device = ? AND epoch = ?
                         AND state IN ('PENDING', 'RUNNING')",
            )
            .bind(&step.error)
            .bind(now_ms())
            .bind(&group)
            .bind(&device)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        }
        StepEffect::RecoveryAttempt {
            backup,
            seen,
            record_version,
            now_ms: at_ms,
            max_failures,
        } => {
            // The lock and backoff were checked on `seen`: another attempt counted since, or a
            // reset of the passcode, voids that check, and nothing of the step is written.
            let before = recovery_attempts(&mut tx, backup)
                .await?
                .unwrap_or_default();
            if before != *seen || !record_at(&mut tx, &group, *record_version).await? {
                return Ok(Committed::ConditionFailed);
            }
            let failures = before.failures.saturating_add(1);
            // Counted against the backup's row, of the operation's group; a backup swept since
            // it was read counts nothing (and the round is refused).
            let counted = sqlx::query(
                "INSERT INTO recovery_attempts (backup, device_group, failures, last_attempt_ms,
                         locked)
                     SELECT backup, device_group, ?, ?, ? FROM backups
                     WHERE backup = ? AND device_group = ?
                 ON CONFLICT (backup) DO UPDATE SET failures = excluded.failures,
                     last_attempt_ms = excluded.last_attempt_ms, locked = excluded.locked",
            )
            .bind(i64::from(failures))
            .bind(*at_ms)
            .bind(before.locked || failures >= *max_failures)
            .bind(backup.to_string())
            .bind(&group)
            .execute(&mut *tx)
            .await?;
            if counted.rows_affected() != 1 {
                return Ok(Committed::ConditionFailed);
            }
        }
        StepEffect::RecoveryLoggedIn {
            backup,
            record_version,
            max_failures,
        } => {
            if !record_at(&mut tx, &group, *record_version).await? {
                return Ok(Committed::ConditionFailed);
            }
            // Below the lock only: once locked, only the operator's unlock clears the count.
            sqlx::query(
                "UPDATE recovery_attempts SET failures = 0
                 WHERE backup = ? AND failures < ? AND NOT locked",
            )
            .bind(backup.to_string())
            .bind(i64::from(*max_failures))
            .execute(&mut *tx)
            .await?;
        }
        StepEffect::RecoveredPairing {
            record_version,
            epoch,
            pairing_id,
            pairing_sealed,
        } => {
            if !record_at(&mut tx, &group, *record_version).await? {
                return Ok(Committed::ConditionFailed);
            }
            let inserted = sqlx::query(
                "INSERT INTO pairings (device_group, device, epoch, state, pairing_id,
                         pairing_sealed, create_time_ms, operation)
                     VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?)
                     ON CONFLICT DO NOTHING",
            )
            .bind(&group)
            .bind(&device)
            .bind(epoch_value(*epoch)?)
            .bind(pairing_id)
            .bind(pairing_sealed)
            .bind(now_ms())
            .bind(name.operation().as_str())
            .execute(&mut *tx)
            .await?;
            // Another recovery of this device in this group got there first.
            if inserted.rows_affected() != 1 {
                return Ok(Committed::ConditionFailed);
            }
        }
        StepEffect::DeviceAdded {
            record_version,
            epoch,
            archive,
        } => {
            if !record_at(&mut tx, &group, *record_version).await? {
                return Ok(Committed::ConditionFailed);
            }
            // This recovery's own pending pairing only.
            let confirmed = sqlx::query(
                "UPDATE pairings SET state = 'CONFIRMED'
                     WHERE device_group = ? AND device = ? AND epoch = ? AND state = 'PENDING'
                         AND operation = ?",
            )
            .bind(&group)
            .bind(&device)
            .bind(epoch_value(*epoch)?)
            .bind(name.operation().as_str())
            .execute(&mut *tx)
            .await?;
            if confirmed.rows_affected() != 1 {
                return Ok(Committed::ConditionFailed);
            }
            sqlx::query(
                "INSERT INTO device_group_devices (device_group, device) VALUES (?, ?)
                     ON CONFLICT DO NOTHING",
            )
            .bind(&group)
            .bind(&device)
            .execute(&mut *tx)
            .await?;
            if let Some(archive) = archive {
                insert_operation(&mut tx, archive).await?;
            }
            insert_event(
                &mut tx,
                &group,
                DeviceGroupEventType::DeviceAdded,
                &device,
                Some(name),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Committed::Yes)
}

/// Deletes the pending pairing that the AddDevice `operation` (its id) made at round 7, if any:
/// never one another operation made.
async fn delete_recovered_pairing(
    connection: &mut SqliteConnection,
    operation: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM pairings WHERE operation = ? AND state = 'PENDING'")
        .bind(operation)
        .execute(connection)
        .await?;
    Ok(())
}

/// Records one change of a group's devices, now.
async fn insert_event(
    connection: &mut SqliteConnection,
    group: &str,
    kind: DeviceGroupEventType,
    device: &str,
    operation: Option<&OperationName>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO device_group_events (device_group, type, device, operation, time_ms)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(group)
    .bind(event_text(kind))
    .bind(device)
    .bind(operation.map(ToString::to_string))
    .bind(now_ms())
    .execute(connection)
    .await?;
    Ok(())
}

/// [`Store::revoke_device`] on the writer connection, in one transaction. It takes SQLite's write
/// lock, which every exchange step's commit takes too: a step commits either before it (and its
/// round completed before the revocation) or after it, and then finds its device revoked.
async fn revoke_device(
    connection: &mut SqliteConnection,
    device: &DeviceName,
    step_up: Option<&LoginUse>,
    error: &str,
) -> Result<Revocation, StoreError> {
    let mut tx = begin_immediate(connection).await?;
    let name = device.to_string();
    let was: Option<(String,)> = sqlx::query_as("SELECT state FROM devices WHERE name = ?")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = sqlx::query("UPDATE devices SET state = 'REVOKED' WHERE name = ? RETURNING *")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(Revocation::NotFound);
    };
    // Dropping the transaction rolls back the state change above.
    if let Some(login) = step_up
        && !use_login(&mut tx, login, None).await?
    {
        return Ok(Revocation::StepUpRefused);
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = ?,
             update_time_ms = ?
         WHERE device = ? AND state IN ('PENDING', 'RUNNING')",
    )
    .bind(error)
    .bind(now)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    // Every pairing of the device is between it and the server alone: without the server's
    // half, the device's half signs nothing, with anyone.
    sqlx::query("DELETE FROM pairings WHERE device = ?")
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE passcode_logins SET state = 'REVOKED', state_sealed = NULL, session_sealed = NULL
         WHERE device = ? AND state IN ('STARTED', 'FINISHED')",
    )
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    // The group's other devices are told, once: a second revocation changes nothing.
    if was.is_some_and(|(state,)| state == "ACTIVE") {
        let groups: Vec<(String,)> =
            sqlx::query_as("SELECT device_group FROM device_group_devices WHERE device = ?")
                .bind(&name)
                .fetch_all(&mut *tx)
                .await?;
        for (group,) in &groups {
            insert_event(
                &mut tx,
                group,
                DeviceGroupEventType::DeviceRevoked,
                &name,
                None,
            )
            .await?;
        }
    }
    // A backup made by this device (a thief's, perhaps) no longer pushes out the backups it
    // replaced: they are current again, so the sweep never deletes them. The device's own
    // backups stay: one of them may be the owner's only backup, and recovery opens them only
    // with the group's current passcode. Nothing replaced is ever swept before what replaced
    // it (it was replaced first), so every row `replaced_by` names is still here to be found.
    sqlx::query(
        "UPDATE backups SET replaced_time_ms = NULL, replaced_by = NULL
         WHERE replaced_by IN (SELECT backup FROM backups WHERE device = ?)",
    )
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Revocation::Revoked(device_row(&row)?))
}

/// Uses up a finished login, if it is still finished, of `login.device` and fresh; with
/// `reset_version`, only if its reset's `registerStart` was evaluated under that version.
async fn use_login(
    connection: &mut SqliteConnection,
    login: &LoginUse,
    reset_version: Option<u64>,
) -> Result<bool, StoreError> {
    let reset_version = reset_version.map(stored_i64).transpose()?;
    let used = sqlx::query(
        "UPDATE passcode_logins SET state = 'USED', session_sealed = NULL, use_time_ms = ?
         WHERE id = ? AND device_group = ? AND device = ? AND state = 'FINISHED'
             AND finish_time_ms >= ? AND (? IS NULL OR reset_version = ?)",
    )
    .bind(now_ms())
    .bind(login.name.login().as_str())
    .bind(login.name.device_group_name().to_string())
    .bind(login.device.to_string())
    .bind(login.finished_after_ms)
    .bind(reset_version)
    .bind(reset_version)
    .execute(&mut *connection)
    .await?;
    Ok(used.rows_affected() == 1)
}

async fn insert_key(
    connection: &mut sqlx::SqliteConnection,
    group: &DeviceGroupName,
    key: &KeyRecord,
) -> Result<KeyRecord, StoreError> {
    sqlx::query(
        "INSERT INTO mpc_keys (name, device_group, derivation_path, public_key, address, create_time_ms)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_group, derivation_path) DO NOTHING",
    )
    .bind(key.name.to_string())
    .bind(group.to_string())
    .bind(&key.derivation_path)
    .bind(&key.public_key)
    .bind(&key.address)
    .bind(now_ms())
    .execute(&mut *connection)
    .await?;
    let row = sqlx::query("SELECT * FROM mpc_keys WHERE device_group = ? AND derivation_path = ?")
        .bind(group.to_string())
        .bind(&key.derivation_path)
        .fetch_one(&mut *connection)
        .await?;
    key_row(&row)
}

/// The file path of a `--database` value: a plain path or a `sqlite:` URL.
fn sqlite_path(database: &str) -> Result<&str, ServerError> {
    let path = match database.split_once(':') {
        Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
        // A scheme we don't serve (yet): say so instead of creating a file called "postgres:…".
        Some((scheme, _))
            if scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            return Err(ServerError::UnsupportedDatabase(database.to_owned()));
        }
        _ => database,
    };
    if path.is_empty() {
        return Err(ServerError::UnsupportedDatabase(database.to_owned()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database at `database`, migrated up to `version` only (as an older server left
    /// it), with the pool `pools/p`, the device `devices/d`, its active group
    /// `pools/p/deviceGroups/g`, then `rows`.
    async fn migrated_to(database: &str, version: i64, rows: &[&'static str]) {
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{database}"))
                    .unwrap()
                    .create_if_missing(true)
                    .foreign_keys(true),
            )
            .await
            .unwrap();
        sqlx::migrate!("./migrations")
            .run_to(version, &old)
            .await
            .unwrap();
        let group = [
            "INSERT INTO pools (name, create_time_ms) VALUES ('pools/p', 1)",
            "INSERT INTO devices (name, auth_public_key, archive_public_key, state, create_time_ms)
             VALUES ('devices/d', x'01', x'02', 'ACTIVE', 1)",
            "INSERT INTO device_groups (name, pool, state, create_time_ms)
             VALUES ('pools/p/deviceGroups/g', 'pools/p', 'ACTIVE', 1)",
        ];
        for statement in group.iter().chain(rows) {
            sqlx::query(*statement).execute(&old).await.unwrap();
        }
        old.close().await;
    }

    #[test]
    fn database_values() {
        assert_eq!(sqlite_path("./data/waas.db").unwrap(), "./data/waas.db");
        assert_eq!(sqlite_path("sqlite://data/w.db").unwrap(), "data/w.db");
        assert_eq!(sqlite_path("sqlite:w.db").unwrap(), "w.db");
        assert!(matches!(
            sqlite_path("postgres://u@h/db"),
            Err(ServerError::UnsupportedDatabase(_))
        ));
        assert!(matches!(
            sqlite_path(""),
            Err(ServerError::UnsupportedDatabase(_))
        ));
        // A Windows drive letter is a path, not a scheme.
        assert_eq!(sqlite_path("C:/w.db").unwrap(), "C:/w.db");
    }

    #[tokio::test]
    async fn durable_writes_run_at_synchronous_full_then_the_writer_is_back_at_normal() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        let mode = async |connection: &mut SqliteConnection| {
            let (mode,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(connection)
                .await?;
            Ok::<_, StoreError>(mode)
        };
        // SQLite's numbers: 1 NORMAL, 2 FULL.
        assert_eq!(store.write_durably(mode).await.unwrap(), 2);
        assert_eq!(
            mode(&mut *store.writer.acquire().await.unwrap())
                .await
                .unwrap(),
            1
        );
        // A write that fails leaves the writer at NORMAL too.
        let failed: Result<(), StoreError> = store
            .write_durably(async |_| Err(StoreError::Corrupt("refused".into())))
            .await;
        assert!(failed.is_err());
        assert_eq!(
            mode(&mut *store.writer.acquire().await.unwrap())
                .await
                .unwrap(),
            1
        );
        store.close().await;
    }

    #[tokio::test]
    async fn migrating_to_several_backups_a_group_keeps_every_backup_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let database = path.to_str().unwrap();
        // A database as 0006 left it: one backup per group.
        migrated_to(
            database,
            6,
            &[
            "INSERT INTO backups (device_group, backup, device, epoch, pairing_id,
                 decryption_share_sealed, device_key_share, server_key_share, device_ciphertext,
                 server_ciphertext, create_time_ms)
             VALUES ('pools/p/deviceGroups/g', 'pools/p/deviceGroups/g/mpcOperations/b', 'devices/d',
                 2, x'03', x'04', x'05', x'06', x'07', x'08', 9)",
            ],
        )
        .await;

        let store = SqliteStore::open(database).await.unwrap();
        let group: DeviceGroupName = "pools/p/deviceGroups/g".parse().unwrap();
        let backup: MpcOperationName = "pools/p/deviceGroups/g/mpcOperations/b".parse().unwrap();
        let kept = store
            .live_backup(&group, &backup, i64::MAX)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                kept.device.to_string(),
                kept.epoch,
                kept.material.pairing_id,
                kept.material.decryption_share_sealed,
                kept.material.server_ciphertext,
                kept.create_time_ms,
                kept.replaced_time_ms,
                kept.replaced_by,
            ),
            (
                "devices/d".into(),
                2,
                vec![3],
                vec![4],
                vec![8],
                9,
                None,
                None
            )
        );
        store.close().await;
    }

    #[tokio::test]
    async fn migrating_to_counts_per_backup_keeps_a_groups_lock_on_each_of_its_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let database = path.to_str().unwrap();
        // A database as 0008 left it: a group's recovery count, locked, and two backups.
        migrated_to(
            database,
            8,
            &[
                "INSERT INTO recovery_attempts (device_group, failures, last_attempt_ms, locked)
             VALUES ('pools/p/deviceGroups/g', 10, 7, 1)",
                "INSERT INTO backups (device_group, backup, device, epoch, pairing_id,
                 decryption_share_sealed, device_key_share, server_key_share, device_ciphertext,
                 server_ciphertext, create_time_ms)
             VALUES ('pools/p/deviceGroups/g', 'pools/p/deviceGroups/g/mpcOperations/b1',
                 'devices/d', 0, x'03', x'04', x'05', x'06', x'07', x'08', 9),
                 ('pools/p/deviceGroups/g', 'pools/p/deviceGroups/g/mpcOperations/b2',
                 'devices/d', 0, x'03', x'04', x'05', x'06', x'07', x'08', 9)",
            ],
        )
        .await;

        let store = SqliteStore::open(database).await.unwrap();
        let locked = Attempts {
            failures: 10,
            last_attempt_ms: 7,
            locked: true,
        };
        let group: DeviceGroupName = "pools/p/deviceGroups/g".parse().unwrap();
        let b1: MpcOperationName = "pools/p/deviceGroups/g/mpcOperations/b1".parse().unwrap();
        let b2: MpcOperationName = "pools/p/deviceGroups/g/mpcOperations/b2".parse().unwrap();
        for backup in [&b1, &b2] {
            assert_eq!(store.recovery_attempts(backup).await.unwrap(), locked);
        }
        // The operator unlocks one backup, then the group's others.
        assert_eq!(
            store.unlock_recovery(&group, Some(&b1)).await.unwrap(),
            [(b1.clone(), locked)]
        );
        assert_eq!(
            store.recovery_attempts(&b1).await.unwrap(),
            Attempts {
                last_attempt_ms: 7,
                ..Attempts::default()
            }
        );
        assert_eq!(store.recovery_attempts(&b2).await.unwrap(), locked);
        let all = store.unlock_recovery(&group, None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(!store.recovery_attempts(&b2).await.unwrap().locked);
        store.close().await;
    }
}
