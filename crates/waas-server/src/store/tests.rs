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
    Attempts, Committed, Created, DEFAULT_POOL, DeviceRecord, KeyRecord, LoginState, LoginUse,
    NewBackup, NewLogin, NewOperation, NewWallet, OperationKind, OperationState, PostgresStore,
    Replacement, Revocation, SqliteStore, StepEffect, StepUpdate, Store, StoreError,
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
    two_replicas_forget_every_old_token_id_once,
    a_request_expires_its_own_operation_only,
    two_replicas_create_one_key_for_one_path,
    two_replicas_create_one_operation_for_one_request_id,
    two_replicas_accept_a_token_id_once,
    two_replicas_count_every_passcode_attempt,
    two_replicas_commit_a_round_once,
    a_revocation_and_a_retiring_step_race_sweeps_of_the_same_operations,
    migrating_to_several_backups_a_group_keeps_every_backup_current,
    migrating_to_counts_per_backup_keeps_a_groups_lock_on_each_of_its_backups,
);

/// Every pooled connection of the PostgreSQL store commits durably and has abandoned
/// transactions ended, whatever the database's own defaults say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_commit_durably_and_end_abandoned_transactions() {
    let db = TestDb::postgres().await;
    let (server, name) = db.postgres.clone().unwrap();
    let mut admin = PgConnection::connect(&server).await.unwrap();
    for setting in [
        "synchronous_commit = off",
        "idle_in_transaction_session_timeout = 0",
        "tcp_keepalives_idle = 0",
    ] {
        sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET {setting}"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    admin.close().await.unwrap();

    let store = PostgresStore::open_db(&db).await;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit',
             'idle_in_transaction_session_timeout', 'tcp_keepalives_idle',
             'tcp_keepalives_interval', 'tcp_keepalives_count') ORDER BY name",
    )
    .fetch_all(store.connections())
    .await
    .unwrap();
    let (tcp,): (bool,) = sqlx::query_as("SELECT inet_client_addr() IS NOT NULL")
        .fetch_one(store.connections())
        .await
        .unwrap();
    // PostgreSQL reports no keepalives on a Unix socket, where they do not apply.
    let keepalives = |value: &'static str| if tcp { value } else { "0" };
    let expected = [
        ("idle_in_transaction_session_timeout", "60000"),
        ("synchronous_commit", "on"),
        ("tcp_keepalives_count", keepalives("3")),
        ("tcp_keepalives_idle", keepalives("30")),
        ("tcp_keepalives_interval", keepalives("10")),
    ];
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(settings, expected);
    store.close().await;
}

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

/// Runs `call(store, i)` for [`RACERS`] racers `i` at once, on the two replicas in turn, each
/// waiting until all are ready so that their calls overlap; returns what each returned.
async fn race<S, F>(stores: &[S; 2], call: impl Fn(S, usize) -> F) -> Vec<F::Output>
where
    S: Store,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racing = JoinSet::new();
    for i in 0..RACERS {
        let (racer, start) = (call(stores[i % 2].clone(), i), start.clone());
        racing.spawn(async move {
            start.wait().await;
            racer.await
        });
    }
    racing.join_all().await
}

async fn two_replicas_create_one_operation_for_one_request_id<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (device, group) = add_wallet(&stores[0]).await;
    let created = race(&stores, |store, i| {
        // Each retry of the request would mint another operation id.
        let mut operation = new_operation(
            &format!("r{i}"),
            OperationKind::CreateSignature,
            &group,
            &device,
        );
        operation.request_id = Some("request-1".into());
        async move { store.create_operation(&operation).await.unwrap() }
    })
    .await;
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
    let accepted = race(&stores, |store, _| async move {
        store.use_token("devices/d", "j1", 1_000).await.unwrap()
    })
    .await;
    assert_eq!(accepted.iter().filter(|accepted| **accepted).count(), 1);
    for store in &stores {
        store.close().await;
    }
}

async fn two_replicas_count_every_passcode_attempt<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (device, group) = add_wallet(&stores[0]).await;
    race(&stores, |store, i| {
        let (device, group) = (device.clone(), group.clone());
        let at = i64::try_from(i).unwrap() + 1;
        async move {
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
        }
    })
    .await;
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
    let committed = race(&stores, |store, i| {
        let o1 = o1.clone();
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
        async move { (i, store.commit_step(&o1, 0, &step).await.unwrap()) }
    })
    .await;
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

async fn a_request_expires_its_own_operation_only<S: Backend>(db: &TestDb) {
    let store = S::open_db(db).await;
    let (device, group) = add_wallet(&store).await;
    let o1: OperationName = "operations/o1".parse().unwrap();
    let o2 = new_operation("o2", OperationKind::CreateSignature, &group, &device);
    store.create_operation(&o2).await.unwrap();
    let state = async |name: &OperationName| store.operation(name).await.unwrap().unwrap();

    // Not stale by the limits given: nothing happens.
    assert!(!store.expire_operation(&o2.name, 0, 0, "e").await.unwrap());
    assert!(
        store
            .expire_operation(&o2.name, i64::MAX, i64::MAX, "e")
            .await
            .unwrap()
    );
    let failed = state(&o2.name).await;
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (OperationState::Failed, Some("e"))
    );
    assert_eq!(state(&o1).await.state, OperationState::Pending);
    // Failed already: not again.
    assert!(
        !store
            .expire_operation(&o2.name, i64::MAX, i64::MAX, "f")
            .await
            .unwrap()
    );

    // A key generation with the server's half pending: expired with it.
    let finished = running_step(
        3,
        StepEffect::KeygenFinished {
            pairing_id: vec![3],
            pairing_sealed: vec![4],
            root_public_key: vec![5],
            chain_code_sealed: vec![6],
        },
    );
    assert_eq!(
        store.commit_step(&o1, 0, &finished).await.unwrap(),
        Committed::Yes
    );
    assert!(store.pairing(&group, &device, 0).await.unwrap().is_some());
    assert!(
        store
            .expire_operation(&o1, i64::MAX, i64::MAX, "e")
            .await
            .unwrap()
    );
    assert_eq!(state(&o1).await.state, OperationState::Failed);
    assert_eq!(store.pairing(&group, &device, 0).await.unwrap(), None);

    // The sweep takes more than a batch, in batches.
    let many = usize::from(super::sql::SWEEP_BATCH) + 3;
    for i in 0..many {
        let operation = new_operation(
            &format!("m{i}"),
            OperationKind::CreateSignature,
            &group,
            &device,
        );
        store.create_operation(&operation).await.unwrap();
    }
    assert_eq!(
        store
            .expire_operations(i64::MAX, i64::MAX, "e")
            .await
            .unwrap(),
        u64::try_from(many).unwrap()
    );
    assert_eq!(
        store
            .expire_operations(i64::MAX, i64::MAX, "e")
            .await
            .unwrap(),
        0
    );
    store.close().await;
}

async fn two_replicas_create_one_key_for_one_path<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (_, group) = add_wallet(&stores[0]).await;
    // Several paths: each race is short.
    for index in 0..10_u8 {
        let key = KeyRecord {
            name: format!("{group}/mpcKeys/m-0-{index}").parse().unwrap(),
            derivation_path: format!("0/{index}"),
            public_key: vec![2, index],
            address: format!("0x{index:040x}"),
        };
        let stored = race(&stores, |store, _| {
            let (group, key) = (group.clone(), key.clone());
            async move { store.put_key(&group, &key).await }
        })
        .await;
        for stored in stored {
            assert_eq!(stored.unwrap(), key, "path 0/{index}");
        }
    }
    assert_eq!(stores[1].keys(&group).await.unwrap().len(), 10);
    for store in &stores {
        store.close().await;
    }
}

/// How many rounds of [`a_revocation_and_a_retiring_step_race_sweeps_of_the_same_operations`].
const SWEEP_RACES: u8 = 30;
/// How many open operations each of its devices has.
const SWEPT_OPERATIONS: usize = 16;

async fn a_revocation_and_a_retiring_step_race_sweeps_of_the_same_operations<S: Backend>(
    db: &TestDb,
) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    let (_, group) = add_wallet(&stores[0]).await;
    let error = "{}";
    for race in 0..SWEEP_RACES {
        // A device with stale operations, pending and running in turn, so that the sweep (by
        // state) and the revocation (by device) would reach them in different orders.
        let device = add_device(&stores[0], &format!("devices/r{race}"), race + 10).await;
        let mut names = Vec::new();
        for i in 0..SWEPT_OPERATIONS {
            let operation = new_operation(
                &format!("r{race}-{i}"),
                OperationKind::CreateSignature,
                &group,
                &device,
            );
            stores[0].create_operation(&operation).await.unwrap();
            if i % 2 == 1 {
                let running = running_step(1, StepEffect::None);
                let committed = stores[0].commit_step(&operation.name, 0, &running).await;
                assert_eq!(committed.unwrap(), Committed::Yes);
            }
            names.push(operation.name);
        }
        // A step failing a check holds its own operation, then fails the pairing's others; the
        // revocation fails all of the device's; two sweeps (one per replica) fail every stale
        // one. None of them may fail (a deadlock would: 40P01).
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
        let mut racing = JoinSet::new();
        for store in &stores {
            let (store, start) = (store.clone(), start.clone());
            racing.spawn(async move {
                start.wait().await;
                store
                    .expire_operations(i64::MAX, i64::MAX, error)
                    .await
                    .map(|_| ())
            });
        }
        let (store, ready, revoked) = (stores[0].clone(), start.clone(), device.clone());
        racing.spawn(async move {
            ready.wait().await;
            store.revoke_device(&revoked, None, error).await.map(|_| ())
        });
        let (store, start, retiring) = (stores[1].clone(), start.clone(), names[4].clone());
        racing.spawn(async move {
            let retire = StepUpdate {
                round: 1,
                input_hash: vec![1],
                reply: None,
                session_sealed: None,
                state: OperationState::Failed,
                response: None,
                error: Some(error.into()),
                effect: StepEffect::RetirePairing,
            };
            start.wait().await;
            store.commit_step(&retiring, 0, &retire).await.map(|_| ())
        });
        for outcome in racing.join_all().await {
            if let Err(error) = outcome {
                panic!("race {race}: {error:?}");
            }
        }
        for name in &names {
            let state = stores[1].operation(name).await.unwrap().unwrap().state;
            assert_eq!(state, OperationState::Failed, "race {race}: {name}");
        }
    }
    for store in &stores {
        store.close().await;
    }
}

/// A round that leaves its operation running, with `effect`.
fn running_step(round: u8, effect: StepEffect) -> StepUpdate {
    StepUpdate {
        round,
        input_hash: vec![round],
        reply: Some("{}".into()),
        session_sealed: Some(vec![7]),
        state: OperationState::Running,
        response: None,
        error: None,
        effect,
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
    let step = running_step;
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
    assert!(store.use_token("devices/d", "j1", 1_000).await.unwrap());
    assert!(!store.use_token("devices/d", "j1", 1_000).await.unwrap());
    // Another subject may pick the same id.
    assert!(store.use_token("devices/e", "j1", 1_000).await.unwrap());
    // Kept until the sweep forgets it, and only once it expired before the sweep's horizon.
    assert!(!store.use_token("devices/d", "j1", 5_000).await.unwrap());
    assert_eq!(store.forget_token_ids(1_000).await.unwrap(), 0);
    assert_eq!(store.forget_token_ids(1_001).await.unwrap(), 2);
    assert!(store.use_token("devices/d", "j1", 5_000).await.unwrap());
    store.close().await;
}

async fn two_replicas_forget_every_old_token_id_once<S: Backend>(db: &TestDb) {
    let stores = [S::open_db(db).await, S::open_db(db).await];
    // More than a batch each, and some not old enough.
    let old = 3 * usize::from(super::sql::SWEEP_BATCH) + 7;
    for i in 0..old {
        let expires = i64::try_from(i % 100).unwrap();
        assert!(
            stores[0]
                .use_token("devices/d", &format!("o{i}"), expires)
                .await
                .unwrap()
        );
    }
    for i in 0..5 {
        assert!(
            stores[0]
                .use_token("devices/d", &format!("n{i}"), 100)
                .await
                .unwrap()
        );
    }
    let forgotten: u64 = race(&stores, |store, _| async move {
        store.forget_token_ids(100).await.unwrap()
    })
    .await
    .into_iter()
    .sum();
    assert_eq!(forgotten, u64::try_from(old).unwrap());
    assert!(!stores[1].use_token("devices/d", "n0", 100).await.unwrap());
    assert!(stores[1].use_token("devices/d", "o0", 100).await.unwrap());
    for store in &stores {
        store.close().await;
    }
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
