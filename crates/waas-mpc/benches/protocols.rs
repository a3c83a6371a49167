//! Key generation and signing: each party's compute alone and both together, with plain k256
//! signing in the same run for scale. Message sizes per round are printed first.
//!
//! `cargo bench -p waas-mpc`; docs/benchmarks.md holds the numbers and how they were made.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashSigner;
use waas_mpc::{Keygen, Pairing, SessionId, Signing, SigningRequest};

/// Time spent in each party's calls during one session.
#[derive(Default)]
struct Split {
    device: Duration,
    server: Duration,
    bytes: Vec<usize>,
}

fn timed<T>(total: &mut Duration, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = work();
    *total += start.elapsed();
    result
}

fn keygen(split: &mut Split) -> (Pairing, Pairing) {
    let context = SessionId::derive("bench keygen", &[]);
    let (mut device, round1) = timed(&mut split.device, || Keygen::start_device(context).unwrap());
    let mut server = Keygen::new_server(context);
    let round2 = timed(&mut split.server, || {
        server.handle(&round1).unwrap().reply.unwrap()
    });
    let round3 = timed(&mut split.device, || {
        device.handle(&round2).unwrap().reply.unwrap()
    });
    let step = timed(&mut split.server, || server.handle(&round3).unwrap());
    let round4 = step.reply.unwrap();
    let device_pairing = timed(&mut split.device, || {
        device.handle(&round4).unwrap().output.unwrap()
    });
    split.bytes = vec![round1.len(), round2.len(), round3.len(), round4.len()];
    (device_pairing, step.output.unwrap())
}

fn sign(device: &Pairing, server: &Pairing, split: &mut Split) {
    let request = SigningRequest {
        operation: "operations/bench",
        path: &[0, 1],
        digest: [7; 32],
    };
    let (mut device_session, round1) = timed(&mut split.device, || {
        Signing::start_device(device, &request).unwrap()
    });
    let mut server_session = Signing::new_server(server, &request).unwrap();
    let round2 = timed(&mut split.server, || {
        server_session
            .handle(server, &round1)
            .unwrap()
            .reply
            .unwrap()
    });
    let round3 = timed(&mut split.device, || {
        device_session
            .handle(device, &round2)
            .unwrap()
            .reply
            .unwrap()
    });
    let round4 = timed(&mut split.server, || {
        server_session
            .handle(server, &round3)
            .unwrap()
            .reply
            .unwrap()
    });
    timed(&mut split.device, || {
        device_session
            .handle(device, &round4)
            .unwrap()
            .output
            .unwrap()
    });
    split.bytes = vec![round1.len(), round2.len(), round3.len(), round4.len()];
}

/// Runs `session` and reports the time of one side (or both).
fn by_party(
    iters: u64,
    side: fn(&Split) -> Duration,
    mut session: impl FnMut(&mut Split),
) -> Duration {
    (0..iters)
        .map(|_| {
            let mut split = Split::default();
            session(&mut split);
            side(&split)
        })
        .sum()
}

fn print_sizes(name: &str, bytes: &[usize]) {
    let total: usize = bytes.iter().sum();
    println!("{name}: bytes per round {bytes:?}, {total} in all");
}

fn benches(c: &mut Criterion) {
    let mut split = Split::default();
    let (device, server) = keygen(&mut split);
    print_sizes("keygen", &split.bytes);
    sign(&device, &server, &mut split);
    print_sizes("sign", &split.bytes);

    let mut group = c.benchmark_group("keygen");
    group.sample_size(10);
    group.bench_function("device", |b| {
        b.iter_custom(|n| by_party(n, |s| s.device, |s| drop(keygen(s))))
    });
    group.bench_function("server", |b| {
        b.iter_custom(|n| by_party(n, |s| s.server, |s| drop(keygen(s))))
    });
    group.bench_function("both", |b| {
        b.iter_custom(|n| by_party(n, |s| s.device + s.server, |s| drop(keygen(s))))
    });
    group.finish();

    let mut group = c.benchmark_group("sign");
    group.bench_function("device", |b| {
        b.iter_custom(|n| by_party(n, |s| s.device, |s| sign(&device, &server, s)))
    });
    group.bench_function("server", |b| {
        b.iter_custom(|n| by_party(n, |s| s.server, |s| sign(&device, &server, s)))
    });
    group.bench_function("both", |b| {
        b.iter_custom(|n| by_party(n, |s| s.device + s.server, |s| sign(&device, &server, s)))
    });
    let key = SigningKey::from_slice(&[0x11; 32]).unwrap();
    group.bench_function("plain k256 sign_prehash", |b| {
        b.iter(|| {
            let signature: k256::ecdsa::Signature = key.sign_prehash(&[7; 32]).unwrap();
            signature
        })
    });
    group.finish();
}

criterion_group!(protocol_benches, benches);
criterion_main!(protocol_benches);
