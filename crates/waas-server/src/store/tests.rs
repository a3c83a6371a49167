//! Store-level tests, each run against both stores: SQLite, and PostgreSQL on the server that
//! `WAAS_TEST_POSTGRES_URL` names (`scripts/postgres.sh` starts one), each test in a database of
//! its own, created here and dropped after. Tests that open two stores on one database play two
//! replicas of the server; the migration tests start from a database an older server left.

use std::future::Future;
use std::str::FromStr;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::task::JoinSet;
use waas_api::resources::DeviceState;
use waas_api::{DeviceGroupName, DeviceName, MpcOperationName, OperationName, PoolName};

use super::{
    Attempts, Committed, Created, DEFAULT_POOL, DeviceRecord, LoginState, LoginUse, NewBackup,
    NewLogin, NewOperation, NewWallet, OperationKind, OperationState, PostgresStore, Replacement,
    Revocation, SqliteStore, StepEffect, StepUpdate, Store, StoreError,
};

/// A database for one test: a SQLite file in a temporary folder, or a PostgreSQL database
/// created for it on the server of `WAAS_TEST_POSTGRES_URL` and dropped when it is dropped.
pub(super) struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// The server's URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: dir.path().join("w.db").to_str().unwrap().to_owned(),
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh database on the PostgreSQL server of `WAAS_TEST_POSTGRES_URL`, which must be
    /// named: a run without it fails rather than passing untested (`scripts/postgres.sh`
    /// starts one, as `npm test` does).
    async fn postgres() -> Self {
        let server = std::env::var("WAAS_TEST_POSTGRES_URL").expect(
            "WAAS_TEST_POSTGRES_URL is not set: run under scripts/postgres.sh (npm test does)",
        );
        let name = format!("waas_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = server.rsplit_once('/').unwrap();
        Self {
            url: format!("{base}/{name}"),
            _dir: None,
            postgres: Some((server, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async code: a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut admin = PgConnection::connect(&server).await?;
                    sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.url);
        }
    }
}

/// A store a test can open on its [`TestDb`].
pub(super) trait Backend: Store {
    fn open_db(db: &TestDb) -> impl Future<Output = Self> + Send;

    /// Migrates the empty database of `db` up to `version` only (as an older server left it)
    /// and runs `statements` on it. Blob literals are written `x'…'` and booleans `TRUE` or
    /// `FALSE`, which both dialects read (blobs rewritten for PostgreSQL).
    fn migrated_to(
        db: &TestDb,
        version: i64,
        statements: &[&str],
    ) -> impl Future<Output = ()> + Send;
}

impl Backend for SqliteStore {
    async fn open_db(db: &TestDb) -> Self {
        Self::open(&db.url).await.unwrap()
    }

    async fn migrated_to(db: &TestDb, version: i64, statements: &[&str]) {
        let old = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", db.url))
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
        for statement in statements {
            sqlx::query(AssertSqlSafe(*statement))
                .execute(&old)
                .await
                .unwrap();
        }
        old.close().await;
    }
}

impl Backend for PostgresStore {
    async fn open_db(db: &TestDb) -> Self {
        Self::open(&db.url).await.unwrap()
    }

    async fn migrated_to(db: &TestDb, version: i64, statements: &[&str]) {
        let old = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .unwrap();
        sqlx::migrate!("./migrations-postgres")
            .run_to(version, &old)
            .await
            .unwrap();
        for statement in statements {
            // x'0a' (SQLite's blob literal) is a bit string to PostgreSQL: '\x0a' is its bytea.
            let statement = statement.replace("x'", "'\\x");
            sqlx::query(AssertSqlSafe(statement))
                .execute(&old)
                .await
                .unwrap();
        }
        old.close().await;
    }
}

/// Each test named, on both stores: `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::sqlite();
                super::$name::<crate::store::SqliteStore>(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = super::TestDb::postgres().await;
                super::$name::<crate::store::PostgresStore>(&db).await;
            }
        }
    )*};
}

on_both_stores!(
    open_migrates_and_creates_the_default_pool_once,
    server_secrets_passcode_attempts_and_old_logins,
    a_round_computed_before_a_revocation_does_not_commit_after_it,
    backups_are_replaced_kept_for_the_retention_then_swept_and_a_revocation_restores_them,
    a_token_id_is_accepted_once_and_forgotten_after_it_expires,
    two_replicas_create_one_operation_for_one_request_id,
    two_replicas_accept_a_token_id_once,
    two_replicas_count_every_passcode_attempt,
    two_replicas_commit_a_round_once,
    migrating_to_several_backups_a_group_keeps_every_backup_current,
    migrating_to_counts_per_backup_keeps_a_groups_lock_on_each_of_its_backups,
);

/// The pool `pools/p`, the device `devices/d` and its active group `pools/p/deviceGroups/g`,
/// as every migration since 0003 keeps them.
const OLD_GROUP: [&str; 3] = [
    "INSERT INTO pools (name, create_time_ms) VALUES ('pools/p', 1)",
    "INSERT INTO devices (name, auth_public_key, archive_public_key, state, create_time_ms)
     VALUES ('devices/d', x'01', x'02', 'ACTIVE', 1)",
    "INSERT INTO device_groups (name, pool, state, create_time_ms)
     VALUES ('pools/p/deviceGroups/g', 'pools/p', 'ACTIVE', 1)",
];

/// How many calls race in the tests of two replicas.
const RACERS: usize = 12;

/// Each racer waits here until all are ready, so their calls overlap.
fn start_line() -> std::sync::Arc<tokio::sync::Barrier> {
    std::sync::Arc::new(tokio::sync::Barrier::new(RACERS))
}

async fn two_replicas_create_one_operation_for_one_request_id<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (device, group) = add_wallet(&stores[0]).await;
    let mut racing = JoinSet::new();
    let start = start_line();
    for i in 0..RACERS {
        let store = stores[i % 2].clone();
        let start = start.clone();
        // Each retry of the request would mint another operation id.
        let mut operation = new_operation(
            &format!("r{i}"),
            OperationKind::CreateSignature,
            &group,
            &device,
        );
        operation.request_id = Some("request-1".into());
        racing.spawn(async move {
            start.wait().await;
            store.create_operation(&operation).await.unwrap()
        });
    }
    let created = racing.join_all().await;
    let new: Vec<_> = created
        .iter()
        .filter_map(|created| match created {
            Created::New(record) => Some(record.name.clone()),
            Created::Existing(_) => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "{created:?}");
    for created in created {
        assert_eq!(created.into_inner().name, new[0]);
    }
    for store in &stores {
        store.close().await;
    }
}

async fn two_replicas_accept_a_token_id_once<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let mut racing = JoinSet::new();
    let start = start_line();
    for i in 0..RACERS {
        let store = stores[i % 2].clone();
        let start = start.clone();
        racing.spawn(async move {
            start.wait().await;
            store.use_token("devices/d", "j1", 1_000, 0).await.unwrap()
        });
    }
    let accepted = racing.join_all().await;
    assert_eq!(accepted.iter().filter(|accepted| **accepted).count(), 1);
    for store in &stores {
        store.close().await;
    }
}

async fn two_replicas_count_every_passcode_attempt<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (device, group) = add_wallet(&stores[0]).await;
    let mut racing = JoinSet::new();
    let start = start_line();
    for i in 0..RACERS {
        let store = stores[i % 2].clone();
        let start = start.clone();
        let (device, group) = (device.clone(), group.clone());
        let at = i64::try_from(i).unwrap() + 1;
        racing.spawn(async move {
            start.wait().await;
            store
                .count_passcode_attempt(
                    &group,
                    &device,
                    at,
                    5,
                    None,
                    |_, _| Ok::<_, StoreError>(()),
                )
                .await
                .unwrap();
        });
    }
    racing.join_all().await;
    // None lost: every attempt counted on top of the one before it, and the fifth locked.
    let counted = stores[1].passcode_attempts(&group, &device).await.unwrap();
    assert_eq!(
        (counted.failures, counted.locked),
        (u32::try_from(RACERS).unwrap(), true)
    );
    for store in &stores {
        store.close().await;
    }
}

async fn two_replicas_commit_a_round_once<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (_, _) = add_wallet(&stores[0]).await;
    let o1: OperationName = "operations/o1".parse().unwrap();
    let mut racing = JoinSet::new();
    let start = start_line();
    for i in 0..RACERS {
        let store = stores[i % 2].clone();
        let start = start.clone();
        let o1 = o1.clone();
        racing.spawn(async move {
            let step = StepUpdate {
                round: 1,
                input_hash: vec![u8::try_from(i).unwrap()],
                reply: Some(format!("{{\"racer\":{i}}}")),
                session_sealed: Some(vec![7]),
                state: OperationState::Running,
                response: None,
                error: None,
                effect: StepEffect::None,
            };
            start.wait().await;
            (i, store.commit_step(&o1, 0, &step).await.unwrap())
        });
    }
    let committed = racing.join_all().await;
    let winners: Vec<usize> = committed
        .iter()
        .filter(|(_, committed)| *committed == Committed::Yes)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{committed:?}");
    assert!(
        committed
            .iter()
            .all(|(_, c)| matches!(c, Committed::Yes | Committed::RoundTaken))
    );
    // What is stored is the winner's step, whole.
    let stored = stores[1].operation(&o1).await.unwrap().unwrap();
    assert_eq!(
        (stored.round, stored.input_hash, stored.reply),
        (
            1,
            Some(vec![u8::try_from(winners[0]).unwrap()]),
            Some(format!("{{\"racer\":{}}}", winners[0]))
        )
    );
    for store in &stores {
        store.close().await;
    }
}

/// Registers an active device `name` whose auth key is `[key]`.
async fn add_device(store: &impl Store, name: &str, key: u8) -> DeviceName {
    let device: DeviceName = name.parse().unwrap();
    store
        .put_device(&DeviceRecord {
            name: device.clone(),
            auth_public_key: vec![key],
            archive_public_key: vec![2],
            state: DeviceState::Active,
            create_time_ms: 0,
        })
        .await
        .unwrap();
    device
}

/// An operation `operations/{id}` of `kind` on epoch 0, created by `device` itself.
fn new_operation(
    id: &str,
    kind: OperationKind,
    group: &DeviceGroupName,
    device: &DeviceName,
) -> NewOperation {
    NewOperation {
        name: format!("operations/{id}").parse().unwrap(),
        kind,
        device_group: group.clone(),
        device: device.clone(),
        epoch: 0,
        metadata: "{}".into(),
        params: "{}".into(),
        creator: device.to_string(),
        request_id: None,
        request_hash: Vec::new(),
    }
}

/// Registers `devices/d1` and creates its wallet: the group `g1` and its pending key
/// generation, `operations/o1`.
async fn add_wallet(store: &impl Store) -> (DeviceName, DeviceGroupName) {
    let device = add_device(store, "devices/d1", 1).await;
    let group: DeviceGroupName = "pools/default/deviceGroups/g1".parse().unwrap();
    store
        .create_wallet(&NewWallet {
            wallet: "pools/default/mpcWallets/w1".parse().unwrap(),
            operation: new_operation("o1", OperationKind::CreateDeviceGroup, &group, &device),
        })
        .await
        .unwrap();
    (device, group)
}

async fn open_migrates_and_creates_the_default_pool_once<S: Backend>(db: &TestDb) {
    let default: PoolName = DEFAULT_POOL.parse().unwrap();

    let store = S::open_db(db).await;
    let pool = store.pool(&default).await.unwrap().unwrap();
    store.close().await;

    // Reopening keeps the same pool, and the same creation time.
    let store = S::open_db(db).await;
    assert_eq!(store.pool(&default).await.unwrap().unwrap(), pool);
    let missing: PoolName = "pools/missing".parse().unwrap();
    assert_eq!(store.pool(&missing).await.unwrap(), None);
    store.close().await;
}

async fn server_secrets_passcode_attempts_and_old_logins<S: Backend>(db: &TestDb) {
    let store = S::open_db(db).await;
    // The first secret stored stays: a second process starting at once reads it back.
    assert_eq!(
        store.server_secret("opaque", b"first").await.unwrap(),
        b"first"
    );
    assert_eq!(
        store.server_secret("opaque", b"second").await.unwrap(),
        b"first"
    );

    let (device, group) = add_wallet(&store).await;

    // A refused attempt writes nothing; an allowed one counts, with its login.
    let refused: Result<(), StoreError> = store
        .count_passcode_attempt(&group, &device, 5, 3, None, |_, _| {
            Err(StoreError::Corrupt("refused".into()))
        })
        .await;
    assert!(refused.is_err());
    assert_eq!(
        store.passcode_attempts(&group, &device).await.unwrap(),
        Attempts::default()
    );
    let login = NewLogin {
        name: "pools/default/deviceGroups/g1/passcodeLogins/l1"
            .parse()
            .unwrap(),
        device: device.clone(),
        record_version: 1,
        state_sealed: vec![9],
    };
    for at in [10, 20, 30] {
        let login = (at == 10).then_some(&login);
        store
            .count_passcode_attempt(&group, &device, at, 3, login, |_, version| {
                assert_eq!(version, None);
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
    let locked = Attempts {
        failures: 3,
        last_attempt_ms: 30,
        locked: true,
    };
    assert_eq!(
        store.passcode_attempts(&group, &device).await.unwrap(),
        locked
    );
    let stored = store.passcode_login(&login.name).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.state_sealed, stored.create_time_ms),
        (LoginState::Started, Some(vec![9]), 10)
    );

    // Unlocked by the operator: the count and the lock go, the time stays.
    assert_eq!(
        store.unlock_passcode(&group, &device).await.unwrap(),
        Some(locked)
    );
    assert_eq!(
        store.passcode_attempts(&group, &device).await.unwrap(),
        Attempts {
            failures: 0,
            last_attempt_ms: 30,
            locked: false
        }
    );

    // Logins are forgotten once created before the cut.
    assert_eq!(store.forget_passcode_logins(10).await.unwrap(), 0);
    assert_eq!(store.forget_passcode_logins(11).await.unwrap(), 1);
    assert_eq!(store.passcode_login(&login.name).await.unwrap(), None);
    store.close().await;
}

async fn a_round_computed_before_a_revocation_does_not_commit_after_it<S: Backend>(db: &TestDb) {
    let store = S::open_db(db).await;
    let (device, group) = add_wallet(&store).await;
    let step = |round, effect| StepUpdate {
        round,
        input_hash: vec![round],
        reply: Some("{}".into()),
        session_sealed: Some(vec![7]),
        state: OperationState::Running,
        response: None,
        error: None,
        effect,
    };
    let o1: OperationName = "operations/o1".parse().unwrap();
    assert_eq!(
        store
            .commit_step(&o1, 0, &step(1, StepEffect::None))
            .await
            .unwrap(),
        Committed::Yes
    );
    let finished = StepEffect::KeygenFinished {
        pairing_id: vec![3],
        pairing_sealed: vec![4],
        root_public_key: vec![5],
        chain_code_sealed: vec![6],
    };
    assert_eq!(
        store.commit_step(&o1, 1, &step(3, finished)).await.unwrap(),
        Committed::Yes
    );
    assert!(store.pairing(&group, &device, 0).await.unwrap().is_some());

    // A step-up that cannot be used changes nothing.
    let stranger = LoginUse {
        name: "pools/default/deviceGroups/g1/passcodeLogins/none"
            .parse()
            .unwrap(),
        device: device.clone(),
        finished_after_ms: 0,
    };
    assert_eq!(
        store
            .revoke_device(&device, Some(&stranger), "{}")
            .await
            .unwrap(),
        Revocation::StepUpRefused
    );
    assert_eq!(
        store.device(&device).await.unwrap().unwrap().state,
        DeviceState::Active
    );

    // Revoked while o1's round 5 ran: that round's commit is refused and writes nothing.
    let Revocation::Revoked(revoked) = store.revoke_device(&device, None, "revoked").await.unwrap()
    else {
        panic!("not revoked")
    };
    assert_eq!(revoked.state, DeviceState::Revoked);
    assert_eq!(
        store
            .commit_step(&o1, 3, &step(5, StepEffect::None))
            .await
            .unwrap(),
        Committed::DeviceRevoked
    );
    let failed = store.operation(&o1).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.round, failed.session_sealed),
        (OperationState::Failed, 3, None)
    );
    assert_eq!(failed.error.as_deref(), Some("revoked"));
    assert_eq!(store.pairing(&group, &device, 0).await.unwrap(), None);

    // Again: the same device, nothing else changes; an unknown device is not found.
    assert_eq!(
        store.revoke_device(&device, None, "again").await.unwrap(),
        Revocation::Revoked(revoked)
    );
    assert_eq!(
        store
            .operation(&o1)
            .await
            .unwrap()
            .unwrap()
            .error
            .as_deref(),
        Some("revoked")
    );
    let unknown: DeviceName = "devices/nobody".parse().unwrap();
    assert_eq!(
        store.revoke_device(&unknown, None, "{}").await.unwrap(),
        Revocation::NotFound
    );
    store.close().await;
}

/// Stores the backup `{group}/mpcOperations/{id}` made by `device`, through round 5's commit
/// of a backup operation `operations/{id}`; its sealed d_srv is `id`'s bytes.
async fn add_backup(
    store: &impl Store,
    group: &DeviceGroupName,
    device: &DeviceName,
    id: &str,
) -> MpcOperationName {
    let operation = new_operation(id, OperationKind::PrepareDeviceBackup, group, device);
    store.create_operation(&operation).await.unwrap();
    let backup: MpcOperationName = format!("{group}/mpcOperations/{id}").parse().unwrap();
    let step = StepUpdate {
        round: 5,
        input_hash: vec![5],
        reply: None,
        session_sealed: None,
        state: OperationState::Done,
        response: Some("{}".into()),
        error: None,
        effect: StepEffect::BackupVerified(NewBackup {
            backup: backup.clone(),
            pairing_id: vec![1],
            decryption_share_sealed: id.as_bytes().to_vec(),
            device_key_share: vec![2],
            server_key_share: vec![3],
            device_ciphertext: vec![4],
            server_ciphertext: vec![5],
        }),
    };
    assert_eq!(
        store.commit_step(&operation.name, 0, &step).await.unwrap(),
        Committed::Yes
    );
    backup
}

async fn backups_are_replaced_kept_for_the_retention_then_swept_and_a_revocation_restores_them<
    S: Backend,
>(
    db: &TestDb,
) {
    let store = S::open_db(db).await;
    let (owner, group) = add_wallet(&store).await;
    let thief = add_device(&store, "devices/d2", 3).await;
    let live = async |backup: &MpcOperationName, since: i64| {
        store.live_backup(&group, backup, since).await.unwrap()
    };

    // The owner's backup, current: every column comes back.
    let owners = add_backup(&store, &group, &owner, "b1").await;
    let stored = live(&owners, i64::MAX).await.unwrap();
    assert_eq!(
        (
            &stored.device_group,
            &stored.device,
            stored.epoch,
            &stored.material.backup,
            &stored.material.pairing_id,
            &stored.material.decryption_share_sealed,
            &stored.material.device_key_share,
            &stored.material.server_key_share,
            &stored.material.device_ciphertext,
            &stored.material.server_ciphertext,
            stored.replaced_time_ms,
            &stored.replaced_by,
        ),
        (
            &group,
            &owner,
            0,
            &owners,
            &vec![1],
            &b"b1".to_vec(),
            &vec![2],
            &vec![3],
            &vec![4],
            &vec![5],
            None,
            &None
        )
    );
    assert!(stored.create_time_ms > 0);
    // Only in its own group.
    let other: DeviceGroupName = "pools/default/deviceGroups/g2".parse().unwrap();
    assert!(
        store
            .live_backup(&other, &owners, i64::MAX)
            .await
            .unwrap()
            .is_none()
    );

    // Another device's backup replaces it: kept, marked, live until the retention runs out
    // (whether the sweep ran or not), and not swept before.
    let thiefs = add_backup(&store, &group, &thief, "b2").await;
    let replaced = live(&owners, 0).await.unwrap();
    assert_eq!(
        replaced.replaced_by,
        Some(Replacement::Backup(thiefs.clone()))
    );
    let at = replaced.replaced_time_ms.unwrap();
    assert!(at >= stored.create_time_ms);
    assert!(live(&owners, at).await.is_some());
    assert!(live(&owners, at + 1).await.is_none());
    assert!(live(&thiefs, i64::MAX).await.unwrap().replaced_by.is_none());
    assert_eq!(store.forget_replaced_backups(at).await.unwrap(), 0);
    assert!(live(&owners, 0).await.is_some());

    // Revoking the thief's device makes the owner's current again; the thief's stays.
    assert!(matches!(
        store.revoke_device(&thief, None, "{}").await.unwrap(),
        Revocation::Revoked(_)
    ));
    let restored = live(&owners, i64::MAX).await.unwrap();
    assert_eq!(
        (restored.replaced_time_ms, restored.replaced_by),
        (None, None)
    );
    assert!(live(&thiefs, i64::MAX).await.is_some());
    assert_eq!(store.forget_replaced_backups(i64::MAX).await.unwrap(), 0);

    // A newer one replaces both current ones; the sweep deletes those two, never it.
    let newest = add_backup(&store, &group, &owner, "b3").await;
    for old in [&owners, &thiefs] {
        assert_eq!(
            live(old, 0).await.unwrap().replaced_by,
            Some(Replacement::Backup(newest.clone()))
        );
    }
    assert_eq!(store.forget_replaced_backups(i64::MAX).await.unwrap(), 2);
    assert!(live(&owners, 0).await.is_none());
    assert!(live(&thiefs, 0).await.is_none());
    assert!(live(&newest, i64::MAX).await.is_some());
    store.close().await;
}

async fn a_token_id_is_accepted_once_and_forgotten_after_it_expires<S: Backend>(db: &TestDb) {
    let store = S::open_db(db).await;
    assert!(store.use_token("devices/d", "j1", 1_000, 0).await.unwrap());
    assert!(!store.use_token("devices/d", "j1", 1_000, 0).await.unwrap());
    // Another subject may pick the same id.
    assert!(store.use_token("devices/e", "j1", 1_000, 0).await.unwrap());
    // Once expired it is forgotten (the token itself is refused by its exp by then).
    assert!(
        store
            .use_token("devices/d", "j1", 5_000, 2_000)
            .await
            .unwrap()
    );
    store.close().await;
}

async fn migrating_to_several_backups_a_group_keeps_every_backup_current<S: Backend>(db: &TestDb) {
    // A database as 0006 left it: one backup per group.
    S::migrated_to(
        db,
        6,
        &[
            OLD_GROUP[0],
            OLD_GROUP[1],
            OLD_GROUP[2],
            "INSERT INTO backups (device_group, backup, device, epoch, pairing_id,
             decryption_share_sealed, device_key_share, server_key_share, device_ciphertext,
             server_ciphertext, create_time_ms)
         VALUES ('pools/p/deviceGroups/g', 'pools/p/deviceGroups/g/mpcOperations/b', 'devices/d',
             2, x'03', x'04', x'05', x'06', x'07', x'08', 9)",
        ],
    )
    .await;

    let store = S::open_db(db).await;
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

async fn migrating_to_counts_per_backup_keeps_a_groups_lock_on_each_of_its_backups<S: Backend>(
    db: &TestDb,
) {
    // A database as 0008 left it: a group's recovery count, locked, and two backups.
    S::migrated_to(
        db,
        8,
        &[
            OLD_GROUP[0],
            OLD_GROUP[1],
            OLD_GROUP[2],
            "INSERT INTO recovery_attempts (device_group, failures, last_attempt_ms, locked)
         VALUES ('pools/p/deviceGroups/g', 10, 7, TRUE)",
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

    let store = S::open_db(db).await;
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
