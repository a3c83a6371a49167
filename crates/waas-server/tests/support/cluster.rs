//! A PostgreSQL cluster of a test's own, which the test may stop, crash and start again (the
//! shared one of `WAAS_TEST_POSTGRES_URL` serves other tests, and must not). Made and driven by
//! `scripts/postgres.sh --cluster`, the one place that knows how to run a throwaway cluster
//! (where the binaries are, installing them if missing, the `waas-pg` user when root, the
//! server's options); deleted when dropped.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How PostgreSQL stops (`pg_ctl -m`).
#[derive(Clone, Copy, Debug)]
pub enum Shutdown {
    /// Sessions are ended (each gets an error), then a clean shutdown.
    Fast,
    /// Every process is killed: a crash, recovered from the log at the next start.
    Immediate,
}

impl Shutdown {
    fn mode(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A running cluster on 127.0.0.1, on one port for its whole life.
#[derive(Debug)]
pub struct PgCluster {
    dir: String,
    url: String,
}

/// `scripts/postgres.sh --cluster ARGS…`, not started.
fn script(args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/postgres.sh"
        ))
        .arg("--cluster")
        .args(args)
        .stdin(Stdio::null());
    command
}

/// `scripts/postgres.sh --cluster ARGS…`: its stdout, trimmed; panics with its stderr if it
/// failed.
fn cluster(args: &[&str]) -> String {
    let output = script(args).output().unwrap();
    assert!(
        output.status.success(),
        "postgres.sh --cluster {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl PgCluster {
    /// A new cluster, started. Blocking (a second or two).
    pub fn start() -> Self {
        let dir = cluster(&["init"]);
        // Deleted by `drop` from here on, even if the start fails.
        let mut made = Self {
            dir,
            url: String::new(),
        };
        made.url = cluster(&["start", &made.dir]);
        made
    }

    /// The superuser's URL, `postgres://postgres:…@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `statement` as the superuser (e.g. `ALTER SYSTEM …`).
    pub fn execute(&self, statement: &str) {
        super::postgres::admin(&self.url, statement.to_owned());
    }

    /// Sets a setting that a reload applies (`ALTER SYSTEM`) and waits until new connections
    /// see it: the postmaster reads the file again on its own time.
    pub fn set_and_reload(&self, setting: &str, value: &str) {
        self.execute(&format!("ALTER SYSTEM SET {setting} = {value}"));
        self.execute("SELECT pg_reload_conf()");
        // Fails while the setting still differs.
        let check = format!(
            "DO $$ BEGIN IF current_setting('{setting}') <> '{value}' THEN \
             RAISE EXCEPTION 'not yet'; END IF; END $$"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while super::postgres::try_admin(&self.url, check.clone()).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{setting} not reloaded"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Creates the database `name` (a plain identifier); its superuser URL.
    pub fn create_database(&self, name: &str) -> String {
        super::postgres::admin(&self.url, format!("CREATE DATABASE {name}"));
        let (server, _) = self.url.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }

    /// Stops it (it is down until [`Self::start_again`]).
    pub fn stop(&self, how: Shutdown) {
        cluster(&["stop", &self.dir, how.mode()]);
    }

    /// Starts it again after [`Self::stop`], on the same port.
    pub fn start_again(&self) {
        cluster(&["start", &self.dir]);
    }

    /// Stops and starts it in one (`pg_ctl restart`).
    pub fn restart(&self, how: Shutdown) {
        cluster(&["restart", &self.dir, how.mode()]);
    }

    /// PostgreSQL's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(PathBuf::from(&self.dir).join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL log ---\n{}", self.log());
        }
        // No panic in a drop: a cluster left behind is only a folder in the temporary one.
        if !script(&["delete", &self.dir])
            .status()
            .is_ok_and(|status| status.success())
        {
            eprintln!("could not delete the PostgreSQL cluster in {}", self.dir);
        }
    }
}
