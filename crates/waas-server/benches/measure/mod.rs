//! What the benches measure with: their knobs, CPU time of processes, latency quantiles.
//!
//! Shared by the benches: each uses some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use waas_api::resources::Address;

use crate::support::{TestDevice, Wallet, default_pool, sha256};

/// `count` wallets of `device`, each with its first address, signed with once (connections,
/// caches and the pairing load happen before anything is measured).
pub(crate) async fn signed_wallets(
    device: &TestDevice,
    count: usize,
) -> Vec<Arc<(Wallet, Address)>> {
    let mut wallets = Vec::new();
    for _ in 0..count {
        let wallet = device.create_wallet(&default_pool()).await;
        let address = device.generate_address(&wallet.wallet.name, None).await;
        device
            .sign(&wallet.pairing, &address.mpc_keys[0], &sha256(b"warm-up"))
            .await;
        wallets.push(Arc::new((wallet, address)));
    }
    wallets
}

/// A knob from the environment, or its default.
pub(crate) fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|value| value.parse().unwrap_or_else(|_| panic!("{name}={value:?}")))
        .unwrap_or(default)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of a process so far, in ticks (`pid` may be `self`).
pub(crate) fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    // There, index 0 is field 3 (state), so utime (field 14) is index 11 and stime index 12.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The latency at quantile `q` (nearest rank) of sorted samples.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

/// The peak resident memory of a process so far (`VmHWM` of `/proc/<pid>/status`), in KiB.
pub(crate) fn peak_memory_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
