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
use super::sql::Lock;
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

/// SQLite has one writer at a time, which holds every row a transaction reads until it ends:
/// the PostgreSQL store's locks have nothing to add here.
#[allow(clippy::unused_async)]
async fn lock_key(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
    Ok(())
}

/// See [`lock_key`].
#[allow(clippy::unused_async)]
async fn lock_group(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
    Ok(())
}

/// See [`lock_key`].
#[allow(clippy::unused_async)]
async fn lock_group_devices(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
    Ok(())
}

super::sql::sql_store!(
    store: SqliteStore,
    database: sqlx::Sqlite,
    connection: SqliteConnection,
    order: "rowid",
    for_update: "",
    for_share: "",
    for_share_of_device: "",
    for_no_key_update: "",
    skip_locked: "",
);

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
            return Err(ServerError::unsupported_database(database));
        }
        _ => database,
    };
    if path.is_empty() {
        return Err(ServerError::unsupported_database(database));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
