//! Load: many signing sessions at once, for a fixed time, against a real `waas-server` process
//! over loopback (issue 9): every signing must succeed.
//!
//! `cargo bench -p waas-server --bench load` builds the server with the bench (release) profile
//! and prints a Markdown table for docs/benchmarks.md. Knobs (environment): `WAAS_LOAD_SESSIONS`
//! (200 signing sessions in flight at every moment), `WAAS_LOAD_SECONDS` (60),
//! `WAAS_LOAD_WALLETS` (8), `WAAS_LOAD_DATABASE` (`sqlite`: one server on a SQLite file;
//! `postgres`: two replicas on one PostgreSQL database, each request to the next replica in
//! turn, under `scripts/postgres.sh`). Bounded: no session starts after the time is up, and each waits at
//! most `WAAS_LOAD_TIMEOUT_SECONDS` (120). Run without `--bench` (as `cargo test --benches`
//! does) it runs 4 sessions for 2 seconds, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use measure::{clock_ticks, cpu_ticks, ms, peak_memory_kib, quantile, setting, signed_wallets};
use support::eth::assert_signed_by;
use support::{TestDevice, TestServer, sha256};

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let sessions = setting("WAAS_LOAD_SESSIONS", if bench { 200 } else { 4 });
    let seconds = setting("WAAS_LOAD_SECONDS", if bench { 60 } else { 2 });
    let wallets = setting("WAAS_LOAD_WALLETS", if bench { 8 } else { 1 });
    let timeout = setting("WAAS_LOAD_TIMEOUT_SECONDS", 120);
    let replicas = match std::env::var("WAAS_LOAD_DATABASE").as_deref() {
        Ok("sqlite") | Err(_) => 1,
        Ok("postgres") => 2,
        Ok(other) => panic!("WAAS_LOAD_DATABASE={other}: sqlite or postgres"),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(
            replicas,
            sessions,
            Duration::from_secs(seconds as u64),
            wallets,
            timeout,
        ));
}

async fn run(
    replicas: usize,
    sessions: usize,
    duration: Duration,
    wallet_count: usize,
    timeout: usize,
) {
    // One server on SQLite, or replicas on one PostgreSQL database behind a round-robin route.
    let mut servers = vec![if replicas > 1 {
        TestServer::on_postgres()
    } else {
        TestServer::start()
    }];
    for _ in 1..replicas {
        let replica = servers[0].replica();
        servers.push(replica);
    }
    let route = TestServer::route_across(&servers.iter().collect::<Vec<_>>());
    let device = Arc::new(TestDevice::register(route).await);
    let wallets = signed_wallets(&device, wallet_count).await;

    let pids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
    let servers_cpu = || pids.iter().map(|pid| cpu_ticks(pid)).sum::<u64>();
    let (server_before, device_before) = (servers_cpu(), cpu_ticks("self"));
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..sessions {
        let (device, wallets, next, latencies, failures) = (
            device.clone(),
            wallets.clone(),
            next.clone(),
            latencies.clone(),
            failures.clone(),
        );
        workers.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let wallet = wallets[n % wallets.len()].clone();
                let device = device.clone();
                let began = Instant::now();
                // Each signing in a task of its own: the test device panics on any refusal or
                // wrong answer, which is a failed operation here, not the end of the run.
                let signing = tokio::spawn(async move {
                    let (wallet, address) = &*wallet;
                    let digest = sha256(format!("load {n}").as_bytes());
                    let signed = device
                        .sign(&wallet.pairing, &address.mpc_keys[0], &digest)
                        .await;
                    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
                });
                match tokio::time::timeout(Duration::from_secs(timeout as u64), signing).await {
                    Ok(Ok(())) => latencies.lock().unwrap().push(began.elapsed()),
                    Ok(Err(error)) => failures
                        .lock()
                        .unwrap()
                        .push(format!("signing {n}: {error}")),
                    Err(_) => failures
                        .lock()
                        .unwrap()
                        .push(format!("signing {n}: over {timeout} s")),
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let failures = failures.lock().unwrap().clone();
    let done = latencies.len();
    let ticks = clock_ticks();
    let per_signature = |before: u64, after: u64| {
        Duration::from_secs_f64((after - before) as f64 / ticks / done.max(1) as f64)
    };
    let server_cpu = per_signature(server_before, servers_cpu());
    let device_cpu = per_signature(device_before, cpu_ticks("self"));
    let server_peaks: Vec<String> = pids
        .iter()
        .map(|pid| format!("{:.1} MiB", peak_memory_kib(pid) as f64 / 1024.0))
        .collect();
    let setup = if replicas > 1 {
        format!("{replicas} replicas on one PostgreSQL database, each request to the next in turn")
    } else {
        "one server on SQLite in a temporary folder".to_owned()
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };

    println!();
    println!("## Load (`cargo bench -p waas-server --bench load`)");
    println!();
    println!(
        "{sessions} signing sessions in flight for {} s, over {wallet_count} wallet(s) of one \
         device; {setup}; servers and device on the same {cores}-core machine, {profile} build. \
         Latency: CreateSignature to a done GetOperation, both rounds included.",
        duration.as_secs()
    );
    println!();
    println!("| what | value |");
    println!("|---|---|");
    println!("| signatures | {done} |");
    println!("| failed operations | {} |", failures.len());
    println!(
        "| throughput | {:.1} signatures/s |",
        done as f64 / elapsed.as_secs_f64()
    );
    if done > 0 {
        println!("| latency p50 | {} |", ms(quantile(&latencies, 0.50)));
        println!("| latency p99 | {} |", ms(quantile(&latencies, 0.99)));
    }
    println!(
        "| server peak memory (VmHWM, each) | {} |",
        server_peaks.join(", ")
    );
    println!("| server CPU per signature (all) | {} |", ms(server_cpu));
    println!(
        "| device CPU per signature (this process) | {} |",
        ms(device_cpu)
    );
    println!("| wall time | {:.2} s |", elapsed.as_secs_f64());
    for failure in failures.iter().take(10) {
        eprintln!("{failure}");
    }
    assert!(failures.is_empty(), "{} signings failed", failures.len());
}
