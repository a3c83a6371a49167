//! PostgreSQL, for several replicas on one database (`--database postgres://…`). The schema
//! lives in `migrations-postgres/`, numbered as SQLite's `migrations/` (each file the same
//! change), and is applied at start under sqlx's migration lock, so replicas starting together
//! migrate once.
//!
//! SQLite has one writer at a time, so a read followed by a write in one of its transactions
//! sees nothing change in between. PostgreSQL runs transactions at once (READ COMMITTED here),
//! so every read-modify-write of this store holds the rows it decides on:
//! - compare-and-set updates (`UPDATE … WHERE round = $n`, a login `WHERE state = 'FINISHED'`)
//!   lock the row and re-check their condition on its latest version, as they did;
//! - inserts guarded by a unique key (`ON CONFLICT`, request tokens, pairings, keys) conflict
//!   with the row another transaction inserts, committed or not;
//! - a read whose answer a write depends on takes a row lock (`FOR UPDATE`, `FOR SHARE`), and
//!   where the row may not exist yet (a first passcode or recovery attempt, a first request
//!   id), a transaction-scoped advisory lock on its key ([`lock_key`]);
//! - locks are taken in one order, device, then group, then the rest, so that exchange steps,
//!   revocations and passcode resets wait for each other instead of deadlocking.
//!
//! Every connection runs with `synchronous_commit = on`, whatever the server's default: a commit
//! is on disk before the caller answers (what SQLite's `synchronous = FULL` commits give). A
//! transaction whose replica vanished (a network that drops silently) is ended by PostgreSQL
//! after a minute idle, and its connection closed by TCP keepalives, so the rows it held are
//! freed ([`SESSION_SETTINGS`]).
//!
//! The sweeps (expired operations, old token ids) lock the rows they change with `SKIP LOCKED`,
//! outside the lock order: they never wait for a row another transaction holds, so they cannot
//! deadlock with the writers that follow it (see `sql.rs`).
//!
//! PostgreSQL may go away and come back (a restart, a failover) while the server runs. The
//! server waits for it at most `--database-connect-timeout`: at start (then it exits, saying
//! why), and for a connection during a request (then the request is answered `UNAVAILABLE`, to
//! be sent again: `store::is_transient`). Idle connections are checked before use, so those a
//! restart closed are replaced, and the pool recovers by itself.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool, Row};
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

/// The PostgreSQL store: a pool of connections, cheap to clone, shared by every request. It
/// keeps nothing between calls: every answer comes from the database, so replicas agree.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// The same pool: the shared SQL writes single statements through `writer`.
    writer: PgPool,
}

/// How long the server waits for PostgreSQL unless told otherwise (`--database-connect-timeout`):
/// long enough for a restart, short enough that a client is answered before it gives up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `--database-max-connections`' default: each replica's pool. PostgreSQL's own default limit is
/// 100 connections in all, so 16 leaves room for several replicas and the operator's tools.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Whether `--database` names a PostgreSQL database.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// How the server uses its PostgreSQL database (the `--database-…` flags).
#[derive(Clone, Copy, Debug)]
pub struct PgSettings {
    /// How long to wait for PostgreSQL, at start and for each connection a request needs.
    pub connect_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: u32,
    /// Whether to start although the database streams to standbys that do not confirm commits
    /// ([`check_durability`]).
    pub allow_async_standbys: bool,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_async_standbys: false,
        }
    }
}

impl PostgresStore {
    /// Connects to the database of `--database` (a `postgres://` URL; the database must exist),
    /// checks that it keeps commits, migrates it to the current schema and makes sure
    /// `pools/default` exists. As [`Self::open_with`] with the default settings.
    pub async fn open(database: &str) -> Result<Self, ServerError> {
        Self::open_with(database, &PgSettings::default()).await
    }

    /// [`Self::open`] with `settings`.
    pub async fn open_with(database: &str, settings: &PgSettings) -> Result<Self, ServerError> {
        let options = connect_options(database)?;
        let mut first = first_connection(&options, settings.connect_timeout)
            .await
            .map_err(|reason| ServerError::DatabaseConnect {
                database: describe(&options),
                reason,
            })?;
        check_durability(&mut first, settings.allow_async_standbys)
            .await
            .map_err(|reason| ServerError::DatabaseNotDurable {
                database: describe(&options),
                reason,
            })?;
        // Its socket closes; the pool opens its own connections.
        drop(first);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            // While PostgreSQL is down every new connection fails: a request gives up after
            // this long, answered UNAVAILABLE, instead of waiting for sqlx's default 30 s.
            .acquire_timeout(settings.connect_timeout)
            // An idle connection is checked before a request gets it (sqlx's default, relied on
            // here): one that a restart of PostgreSQL closed is dropped and another one opened.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        let store = Self {
            writer: pool.clone(),
            pool,
        };
        store.ensure_default_pool().await?;
        Ok(store)
    }

    /// Opens the database of an operator command: as [`Self::open`] (a PostgreSQL database is
    /// never created by connecting to it, so a mistyped name fails there).
    pub async fn open_existing(database: &str, settings: &PgSettings) -> Result<Self, ServerError> {
        // One command, one connection at a time.
        let settings = PgSettings {
            max_connections: 2,
            ..*settings
        };
        Self::open_with(database, &settings).await
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

    /// The pool, for tests that look at its connections' settings.
    #[cfg(test)]
    pub(super) fn connections(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a transaction (READ COMMITTED: see the module's notes on locking).
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Runs `write` on a connection of its own (SQLite's store switches its writer to
    /// `synchronous = FULL` here; every PostgreSQL connection commits durably already).
    async fn write_durably<T, E: From<StoreError>>(
        &self,
        write: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = self.pool.acquire().await.map_err(StoreError::from)?;
        write(&mut connection).await
    }
}

/// Connects once, so that a database out of reach stops the start with why, within `timeout`.
/// Until then a transient failure (PostgreSQL refusing connections while it starts, or not
/// listening yet) is tried again; any other (a wrong password, no such database) ends it at once.
/// The reason given names no secret: sqlx's errors hold no password.
async fn first_connection(
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, PgConnection::connect_with(options)).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(error)) if super::is_transient(&error) => last = Some(error),
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => break,
        }
        let again = tokio::time::Instant::now() + Duration::from_millis(200);
        tokio::time::sleep_until(again.min(deadline)).await;
        if again >= deadline {
            break;
        }
    }
    let waited = humantime::format_duration(timeout);
    Err(match last {
        Some(error) => format!("{error} (tried for {waited}, --database-connect-timeout)"),
        None => format!("no answer within {waited} (--database-connect-timeout)"),
    })
}

/// Checks, on a connection as the pool's are set up, that a commit the server answers after is
/// kept whatever happens to PostgreSQL: the server sends an MPC round's answer only after its
/// commit, and a commit lost after the answer left lets the round run again on the session it
/// consumed, a second output of one phase (docs/protocol/operations.md). So: `fsync` and
/// `full_page_writes` on (without them a crash of PostgreSQL's machine can lose or tear
/// committed pages), `synchronous_commit` on for this connection (the connect option; a pooler
/// in between may drop it), and, if the database streams to standbys, at least one of them
/// synchronous (`synchronous_standby_names`): a failover to an asynchronous standby loses the
/// last commits. `allow_async_standbys` accepts the last for an operator who never fails over
/// to such a standby. Checked at start only: a standby attached later is the operator's
/// (docs/design-notes.md).
async fn check_durability(
    connection: &mut PgConnection,
    allow_async_standbys: bool,
) -> Result<(), String> {
    let (fsync, full_page_writes, synchronous_commit, standby_names, standbys): (
        String,
        String,
        String,
        String,
        i64,
    ) = sqlx::query_as(
        "SELECT current_setting('fsync'), current_setting('full_page_writes'),
                current_setting('synchronous_commit'), current_setting('synchronous_standby_names'),
                (SELECT count(*) FROM pg_stat_replication)",
    )
    .fetch_one(connection)
    .await
    .map_err(|error| format!("cannot read its durability settings: {error}"))?;
    if fsync != "on" {
        return Err("fsync is off: a crash of its machine can lose commits".into());
    }
    if full_page_writes != "on" {
        return Err("full_page_writes is off: a crash of its machine can tear commits".into());
    }
    if !matches!(synchronous_commit.as_str(), "on" | "remote_apply") {
        return Err(format!(
            "synchronous_commit is {synchronous_commit} on the server's connections (a pooler \
             dropping the connect option?): a commit could be answered before it is kept"
        ));
    }
    if standbys > 0 && standby_names.trim().is_empty() && !allow_async_standbys {
        return Err(format!(
            "it streams to {standbys} standby(s), none synchronous (synchronous_standby_names \
             is empty): a failover would lose the last commits; make one synchronous, or start \
             with --database-allow-async-standbys if no failover ever goes to them"
        ));
    }
    Ok(())
}

/// The database as an operator recognizes it, without the password:
/// `postgres://user@host:port/database`.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

/// The settings every connection of the store runs with, whatever the server's defaults (sent
/// at connection start, so a pooled connection never runs without them):
/// - `synchronous_commit = on`: a commit is on disk before the caller answers;
/// - `idle_in_transaction_session_timeout`: PostgreSQL ends a session left idle inside a
///   transaction, which frees the rows it held. No transaction of this store waits between its
///   statements for anything but the next statement (the MPC work runs before it begins), so a
///   minute is far beyond any of ours: it only ends transactions whose replica vanished
///   without closing its connection (a network that silently drops, a frozen host), which would
///   otherwise keep blocking revocations, resets and exchange steps until TCP gave up (hours);
/// - TCP keepalives on PostgreSQL's side (probe after 30 s idle, every 10 s, give up after 3):
///   a connection whose replica vanished is closed within about a minute instead of the
///   system's default of over two hours. PostgreSQL ignores them on a Unix socket.
const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("synchronous_commit", "on"),
    ("idle_in_transaction_session_timeout", "60s"),
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

/// The connection options of a `postgres://` URL, with [`SESSION_SETTINGS`].
fn connect_options(database: &str) -> Result<PgConnectOptions, ServerError> {
    if !is_postgres_url(database) {
        return Err(ServerError::unsupported_database(database));
    }
    Ok(PgConnectOptions::from_str(database)?
        .options(SESSION_SETTINGS)
        .application_name("waas-server"))
}

/// Starts a transaction on `connection`.
async fn begin_immediate(
    connection: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
    Ok(connection.begin().await?)
}

/// Locks a group's row until the transaction ends (`FOR NO KEY UPDATE`): exchange steps with an
/// effect on the group, and passcode resets, take it before they write, so they run one at a
/// time per group, as SQLite's single writer ran them.
async fn lock_group(connection: &mut PgConnection, group: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT name FROM device_groups WHERE name = $1 FOR NO KEY UPDATE")
        .bind(group)
        .execute(connection)
        .await?;
    Ok(())
}

/// Share-locks, in name order, the devices a passcode reset of `group` reads or changes the
/// rows of: its members, and the devices with open operations or logins in it. A revocation
/// (which locks its device first, `FOR UPDATE`) either finishes before or waits.
async fn lock_group_devices(connection: &mut PgConnection, group: &str) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT name FROM devices WHERE name IN (
             SELECT device FROM device_group_devices WHERE device_group = $1
             UNION SELECT device FROM operations
                 WHERE device_group = $1 AND state IN ('PENDING', 'RUNNING')
             UNION SELECT device FROM passcode_logins
                 WHERE device_group = $1 AND state IN ('STARTED', 'FINISHED'))
         ORDER BY name FOR SHARE",
    )
    .bind(group)
    .execute(connection)
    .await?;
    Ok(())
}

/// Takes a transaction-scoped advisory lock on `key` (released at commit or rollback): it guards
/// a row that may not exist yet, which `FOR UPDATE` cannot lock. The key is hashed to 64 bits;
/// a collision only makes two unrelated writers wait for each other.
async fn lock_key(connection: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(connection)
        .await?;
    Ok(())
}

super::sql::sql_store!(
    store: PostgresStore,
    database: sqlx::Postgres,
    connection: PgConnection,
    order: "seq",
    for_update: " FOR UPDATE",
    for_share: " FOR SHARE",
    for_share_of_device: " FOR SHARE OF d",
    for_no_key_update: " FOR NO KEY UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
);
