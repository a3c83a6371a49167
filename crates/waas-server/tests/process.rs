//! The `waas-server` binary as an operator runs it: flags, the printed URL, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::exits::run_server_until_exit;

/// Starts the binary with `args` and `envs`; returns it and the address from its first line.
fn start(args: &[&str], envs: &[(&str, &OsStr)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args(args)
        .envs(envs.iter().copied())
        .env("WAAS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("waas-server listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn starts_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("data/waas.db");
    let (mut child, addr) = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            database.to_str().unwrap(),
            "--master-key-file",
            dir.path().join("master.key").to_str().unwrap(),
            "--no-dev-api-key",
        ],
        &[],
    );

    let response = get(&addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        database.exists(),
        "the database file is created with its folder"
    );
    assert!(
        dir.path().join("master.key").exists(),
        "the master key is created"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn refuses_a_database_it_cannot_serve() {
    let output = Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database",
            "mysql://localhost/waas",
            "--master-key-file",
            "/nonexistent/never-created.key",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database"), "{stderr}");
}

#[test]
fn flags_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("env.db");
    let key_file = dir.path().join("env.key");
    let api_key_file = dir.path().join("env-api-key.json");
    let (mut child, addr) = start(
        &[],
        &[
            ("WAAS_LISTEN", OsStr::new("127.0.0.1:0")),
            ("WAAS_DATABASE", database.as_os_str()),
            ("WAAS_MASTER_KEY_FILE", key_file.as_os_str()),
            ("WAAS_DEV_API_KEY_FILE", api_key_file.as_os_str()),
        ],
    );
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(database.exists());
    assert!(key_file.exists());
    // The development API key is created where the flag says, readable by the owner only.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&api_key_file.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The password of the PostgreSQL URLs below: it must never be printed.
const SECRET: &str = "never-printed-s3cret";

/// `postgres://waas:SECRET@127.0.0.1:PORT/waas`.
fn postgres_url(port: u16) -> String {
    format!("postgres://waas:{SECRET}@127.0.0.1:{port}/waas")
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The run failed within `limit` with one stderr line starting `prefix` and holding `why`, and
/// the password nowhere.
fn assert_failed_saying(exited: &support::exits::Exited, prefix: &str, why: &str, limit: Duration) {
    let stderr = &exited.stderr;
    assert!(!exited.status.success(), "{stderr}");
    assert!(exited.took < limit, "took {:?}: {stderr}", exited.took);
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with(prefix) && line.contains(why)),
        "no line {prefix}…{why}… in:\n{stderr}"
    );
    assert!(
        !stderr.contains(SECRET),
        "the password was printed:\n{stderr}"
    );
}

#[test]
fn a_database_out_of_reach_stops_the_start_within_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    let api_key = dir.path().join("dev-api-key.json");
    // Accepts connections into its backlog and never answers them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let cases = [
        // Refused, and tried again until the timeout.
        (closed_port(), "Connection refused"),
        (silent.local_addr().unwrap().port(), "no answer within 2s"),
    ];
    for (port, why) in cases {
        let url = postgres_url(port);
        let exited = run_server_until_exit(
            &[
                "--listen",
                "127.0.0.1:0",
                "--database",
                &url,
                "--database-connect-timeout",
                "2s",
                "--master-key-file",
                key.to_str().unwrap(),
                "--dev-api-key-file",
                api_key.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
        let prefix = format!(
            "waas-server: cannot connect to the database postgres://waas@127.0.0.1:{port}/waas: "
        );
        assert_failed_saying(&exited, &prefix, why, Duration::from_secs(8));
        assert!(exited.took >= Duration::from_millis(1900), "{exited:?}");
    }
    assert!(
        !key.exists(),
        "nothing is created before the database answers"
    );
}

#[test]
fn an_operator_command_on_a_database_out_of_reach_fails_within_the_connect_timeout() {
    let port = closed_port();
    let url = postgres_url(port);
    let group = "pools/default/deviceGroups/g1";
    let passcode = [
        "unlock-passcode",
        "--device-group",
        group,
        "--device",
        "devices/d1",
        "--database",
        &url,
        "--database-connect-timeout",
        "1s",
    ];
    // Without the flag: the default, 5 s, not sqlx's 30 s.
    let recovery = [
        "unlock-recovery",
        "--device-group",
        group,
        "--database",
        &url,
    ];
    for (args, limit) in [
        (&passcode[..], Duration::from_secs(6)),
        (&recovery[..], Duration::from_secs(10)),
    ] {
        let exited = run_server_until_exit(args, Duration::from_secs(30));
        let prefix = format!(
            "waas-server {}: cannot connect to the database postgres://waas@127.0.0.1:{port}/waas: ",
            args[0]
        );
        assert_failed_saying(&exited, &prefix, "Connection refused", limit);
    }
}

#[test]
fn help_never_shows_the_database_url_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .arg("--help")
        .env("WAAS_DATABASE", "postgres://waas:help-s3cret@db/waas")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("WAAS_DATABASE"), "{help}");
    assert!(!help.contains("help-s3cret"), "{help}");
}
