//! End-to-end signing over loopback HTTP against a real `waas-server` process: the test device
//! (this process) and the server run every round of every signature as in production, database
//! writes included.
//!
//! `cargo bench -p waas-server --bench loopback` builds the server with the bench (release)
//! profile and prints a Markdown table for docs/benchmarks.md. Knobs (environment):
//! `WAAS_BENCH_SIGNATURES` (200), `WAAS_BENCH_CONCURRENCY` (16), `WAAS_BENCH_WALLETS` (4).
//! Run without `--bench` (as `cargo test --benches` does) it only signs a few times, as a smoke
//! test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use measure::{clock_ticks, cpu_ticks, ms, quantile, setting, signed_wallets};
use support::eth::assert_signed_by;
use support::{TestServer, sha256};

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let signatures = setting("WAAS_BENCH_SIGNATURES", if bench { 200 } else { 4 });
    let concurrency = setting("WAAS_BENCH_CONCURRENCY", if bench { 16 } else { 2 });
    let wallets = setting("WAAS_BENCH_WALLETS", if bench { 4 } else { 1 });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(signatures, concurrency, wallets));
}

async fn run(signatures: usize, concurrency: usize, wallet_count: usize) {
    let server = TestServer::start();
    let device = Arc::new(server.device().await);
    let wallets = signed_wallets(&device, wallet_count).await;

    let pid = server.pid().to_string();
    let (server_before, device_before) = (cpu_ticks(&pid), cpu_ticks("self"));
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(signatures)));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (device, wallets, next, latencies) = (
            device.clone(),
            wallets.clone(),
            next.clone(),
            latencies.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= signatures {
                    break;
                }
                let (wallet, address) = &*wallets[n % wallets.len()];
                let digest = sha256(format!("loopback {n}").as_bytes());
                let began = Instant::now();
                // CreateSignature, ListMPCOperations, two exchanges, GetOperation.
                let signed = device
                    .sign(&wallet.pairing, &address.mpc_keys[0], &digest)
                    .await;
                latencies.lock().unwrap().push(began.elapsed());
                assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = start.elapsed();
    let ticks = clock_ticks();
    let per_signature = |before: u64, after: u64| {
        Duration::from_secs_f64((after - before) as f64 / ticks / signatures as f64)
    };
    let server_cpu = per_signature(server_before, cpu_ticks(&pid));
    let device_cpu = per_signature(device_before, cpu_ticks("self"));

    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!();
    println!("## End to end over loopback (`cargo bench -p waas-server --bench loopback`)");
    println!();
    println!(
        "{signatures} signatures, {concurrency} at a time, over {wallet_count} wallet(s) of one \
         device; server and device on the same {cores}-core machine, {profile} build, SQLite in a \
         temporary folder. Latency: CreateSignature to a done GetOperation, both rounds included."
    );
    println!();
    println!("| what | value |");
    println!("|---|---|");
    println!(
        "| throughput | {:.1} signatures/s |",
        signatures as f64 / elapsed.as_secs_f64()
    );
    println!("| latency p50 | {} |", ms(quantile(&latencies, 0.50)));
    println!("| latency p99 | {} |", ms(quantile(&latencies, 0.99)));
    println!("| server CPU per signature | {} |", ms(server_cpu));
    println!(
        "| device CPU per signature (this process: HTTP client, device party, checks) | {} |",
        ms(device_cpu)
    );
    println!("| wall time | {:.2} s |", elapsed.as_secs_f64());
}
