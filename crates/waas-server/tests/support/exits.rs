//! A `waas-server` run that must end by itself (a start that fails, an operator command), within
//! a bound: a hang fails the test instead of stalling the suite.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
}

/// Runs `waas-server ARGS…` to its exit, killed (and the test failed) if it runs longer than
/// `limit`.
pub fn run_server_until_exit(args: &[&str], limit: Duration) -> Exited {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args(args)
        .env("WAAS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread, so a chatty process cannot block on a full pipe.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "waas-server {args:?} still ran after {limit:?}:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exited {
        status,
        stderr: reader.join().unwrap(),
        took: started.elapsed(),
    }
}
