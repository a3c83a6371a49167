//! A `waas-server` process on a temporary folder, killed (SIGKILL) and restarted on the same files;
//! on PostgreSQL, replicas of it: more processes on the same database and keys.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock, mpsc};
use std::time::Duration;

use serde::Deserialize;
use waas_api::ErrorCode;

use super::{AUDIENCE, ApiKeyClient, Call, Client, PgDatabase, Raw, Route, TestDevice, db_dump};

/// How long the server may take to print its first line (it creates and migrates the database).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The dev API key file the server writes on first start.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevApiKey {
    /// `apiKeys/dev`.
    pub name: String,
    /// PKCS#8 PEM of its P-256 key.
    pub private_key: String,
}

/// Where a test server's data is.
#[derive(Clone)]
enum Database {
    /// `waas.db` in its folder.
    SqliteFile,
    /// A PostgreSQL database made for it on the test PostgreSQL server.
    Postgres(Arc<PgDatabase>),
    /// A PostgreSQL database the test made and owns.
    Url(String),
}

/// A running server. Dropping it kills the process; if the test is panicking, the server's stderr
/// is printed so the failure comes with the server's side of the story.
pub struct TestServer {
    /// Its keys, logs and SQLite file; shared with its replicas.
    dir: Arc<tempfile::TempDir>,
    /// Where its data is. Shared with its replicas; a database made for it is dropped after
    /// the last of them.
    database: Database,
    /// `server` for the first process on these files, `replica-N` for the others (log names).
    label: String,
    /// How many replicas were made of it (for their labels).
    replicas: usize,
    child: Option<Child>,
    /// Shared with every client made from this server: a restart picks a new port (port 0), and
    /// clients follow it without being rebuilt.
    base: Arc<RwLock<String>>,
    extra_args: Vec<String>,
    starts: usize,
}

impl TestServer {
    /// Starts a server on fresh files.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server on fresh files with extra flags (e.g. `--allowed-origin`).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_on(super::on_postgres(), extra_args)
    }

    /// Starts a server on a fresh PostgreSQL database, whatever the suite runs on (replicas
    /// need one): the test PostgreSQL server must be there (`scripts/postgres.sh`).
    pub fn on_postgres() -> Self {
        Self::on_postgres_with(&[])
    }

    /// [`Self::on_postgres`] with extra flags.
    pub fn on_postgres_with(extra_args: &[&str]) -> Self {
        Self::start_on(true, extra_args)
    }

    /// Starts a server with extra flags on the PostgreSQL database at `url`, which the test
    /// owns (say, on a cluster it stops and starts).
    pub fn on_database(url: &str, extra_args: &[&str]) -> Self {
        Self::start_with_database(Database::Url(url.to_owned()), extra_args)
    }

    fn start_on(postgres: bool, extra_args: &[&str]) -> Self {
        let database = if postgres {
            Database::Postgres(Arc::new(PgDatabase::create()))
        } else {
            Database::SqliteFile
        };
        Self::start_with_database(database, extra_args)
    }

    fn start_with_database(database: Database, extra_args: &[&str]) -> Self {
        let mut server = Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            database,
            label: "server".to_owned(),
            replicas: 0,
            child: None,
            base: Arc::new(RwLock::new(String::new())),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            starts: 0,
        };
        server.spawn();
        server
    }

    /// Starts another process on this server's database, master key and flags: a replica,
    /// stateless as the first one. PostgreSQL only (a SQLite file has one server).
    pub fn replica(&mut self) -> Self {
        assert!(
            self.postgres_url().is_some(),
            "replicas share a PostgreSQL database: start with TestServer::on_postgres"
        );
        self.replicas += 1;
        let mut replica = Self {
            dir: self.dir.clone(),
            database: self.database.clone(),
            label: format!("replica-{}", self.replicas),
            replicas: 0,
            child: None,
            base: Arc::new(RwLock::new(String::new())),
            extra_args: self.extra_args.clone(),
            starts: 0,
        };
        replica.spawn();
        replica
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The SQLite file (not on PostgreSQL: see [`Self::postgres_url`]).
    pub fn database(&self) -> PathBuf {
        assert!(
            self.postgres_url().is_none(),
            "the suite runs on PostgreSQL: there is no SQLite file"
        );
        self.path("waas.db")
    }

    /// The PostgreSQL database's URL, when the suite runs on PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.database {
            Database::SqliteFile => None,
            Database::Postgres(database) => Some(&database.url),
            Database::Url(url) => Some(url),
        }
    }

    /// `--database`: the SQLite file, or the PostgreSQL database's URL.
    fn database_arg(&self) -> std::ffi::OsString {
        match self.postgres_url() {
            Some(url) => url.into(),
            None => self.path("waas.db").into(),
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        // One stderr file per start, so a crash test shows each run's logs apart.
        let log = File::create(self.log_path(self.starts)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_waas-server"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--database")
            .arg(self.database_arg())
            .arg("--master-key-file")
            .arg(self.path("master.key"))
            .arg("--dev-api-key-file")
            .arg(self.path("dev-api-key.json"))
            .args(["--audience", AUDIENCE])
            .args(&self.extra_args)
            .env("WAAS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();

        // Read stdout on a thread: the first line is the address; the rest is drained so the server
        // never writes into a closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (first_line, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let line = receive.recv_timeout(START_TIMEOUT).ok().flatten();
        let addr = line
            .as_deref()
            .and_then(|line| line.trim().strip_prefix("waas-server listening on http://"))
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "waas-server did not start: first line {line:?}\n{}",
                self.logs()
            );
        };
        *self.base.write().unwrap() = format!("http://{addr}");
        self.child = Some(child);
    }

    /// Kills the process with SIGKILL (no graceful shutdown, as a crash or `kill -9`) and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process (if it runs) and starts it again on the same database, master key and
    /// dev API key. Clients made before follow it to its new port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether its process still runs (it has not exited, nor been killed).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.base.read().unwrap().clone()
    }

    /// Where clients of this server send: to it alone.
    pub fn route(&self) -> Route {
        Route::to(self.base.clone())
    }

    /// Where clients of these replicas send: to each in turn.
    pub fn route_across(servers: &[&TestServer]) -> Route {
        Route::across(servers.iter().map(|server| server.base.clone()).collect())
    }

    /// Its address, as a [`Route`] holds it.
    pub fn address(&self) -> super::Address {
        self.base.clone()
    }

    /// The process id (for `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap()
    }

    /// Every start's stderr, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|start| {
                let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
                format!("--- {} stderr, start {start} ---\n{text}", self.label)
            })
            .collect()
    }

    /// The stderr file of one start.
    fn log_path(&self, start: usize) -> PathBuf {
        self.path(&format!("{}-{start}.log", self.label))
    }

    /// The dev API key the server created on first start.
    pub fn dev_api_key(&self) -> DevApiKey {
        let text = std::fs::read_to_string(self.path("dev-api-key.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A client without credentials (public routes, and negative tests that add their own).
    pub fn anonymous(&self) -> Client {
        Client::new(self.route(), None)
    }

    /// A client that signs with the dev API key.
    pub fn api_key(&self) -> ApiKeyClient {
        ApiKeyClient::new(self.route(), &self.dev_api_key())
    }

    /// A new device (fresh keys), registered.
    pub async fn device(&self) -> TestDevice {
        TestDevice::register(self.route()).await
    }

    /// [`db_dump`] of this server's database.
    pub async fn db_dump(&self) -> String {
        match self.postgres_url() {
            Some(url) => super::postgres::pg_dump(url, super::db::SKIPPED).await,
            None => db_dump(&self.database()).await,
        }
    }

    /// Sends `call` between two [`db_dump`]s: it must be refused as `code`, and change nothing.
    /// Returns the answer for closer checks.
    pub async fn assert_refused_unchanged(&self, call: Call<'_>, code: ErrorCode) -> Raw {
        self.assert_refused_unchanged_for(call, code, None).await
    }

    /// [`Self::assert_refused_unchanged`], with this `reason` too when given.
    pub async fn assert_refused_unchanged_for(
        &self,
        call: Call<'_>,
        code: ErrorCode,
        reason: Option<&str>,
    ) -> Raw {
        let before = self.db_dump().await;
        let response = call.send().await;
        response.assert_error(code, reason);
        assert_eq!(
            before,
            self.db_dump().await,
            "the refused request changed the database:\n{response:?}"
        );
        response
    }

    /// `waas-server unlock-passcode` on this server's database (while it runs, as an operator
    /// would): the exit status and stdout, or stderr when it failed.
    pub fn unlock_passcode(&self, group: &str, device: &str) -> (bool, String) {
        self.operator(&[
            "unlock-passcode",
            "--device-group",
            group,
            "--device",
            device,
        ])
    }

    /// `waas-server unlock-recovery` on this server's database (while it runs): the exit status
    /// and stdout, or stderr when it failed.
    pub fn unlock_recovery(&self, group: &str) -> (bool, String) {
        self.operator(&["unlock-recovery", "--device-group", group])
    }

    /// `waas-server unlock-recovery --device-group G --backup B`: one backup of the group only.
    pub fn unlock_recovery_backup(&self, group: &str, backup: &str) -> (bool, String) {
        self.operator(&[
            "unlock-recovery",
            "--device-group",
            group,
            "--backup",
            backup,
        ])
    }

    /// An operator command (`args`) on this server's data, as an operator would run it.
    fn operator(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_waas-server"))
            .args(args)
            // The server's own data flags, as an operator would pass them.
            .arg("--database")
            .arg(self.database_arg())
            .arg("--master-key-file")
            .arg(self.path("master.key"))
            .env("WAAS_LOG", "warn")
            .output()
            .unwrap();
        let text = if output.status.success() {
            &output.stdout
        } else {
            &output.stderr
        };
        (
            output.status.success(),
            String::from_utf8_lossy(text).into_owned(),
        )
    }

    /// [`db_execute`](super::db_execute) on this server's database, while it runs.
    pub async fn db_execute(&self, sql: &str, params: &[&str]) -> u64 {
        match self.postgres_url() {
            Some(url) => super::postgres::pg_execute(url, sql, params).await,
            None => super::db_execute(&self.database(), sql, params).await,
        }
    }

    /// Adds `device` to `group` in the database, as AddDevice will: a second device of a group.
    pub async fn join_group(&self, group: &waas_api::DeviceGroupName, device: &TestDevice) {
        let added = self
            .db_execute(
                "INSERT INTO device_group_devices (device_group, device) VALUES (?, ?)",
                &[&group.to_string(), &device.name.to_string()],
            )
            .await;
        assert_eq!(added, 1);
    }

    /// [`db_query`](super::db_query) on this server's database, while it runs.
    pub async fn db_query(&self, sql: &str, params: &[&str]) -> Vec<String> {
        match self.postgres_url() {
            Some(url) => super::postgres::pg_query(url, sql, params).await,
            None => super::db_query(&self.database(), sql, params).await,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The process first; its database (a field) is dropped after this body.
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
