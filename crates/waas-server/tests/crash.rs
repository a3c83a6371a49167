//! The server is killed (SIGKILL, no shutdown) between the rounds of key generation and of
//! signing, and restarted on the same database and master key: the device carries on, either with
//! its next round or by repeating its last one (and getting the stored answer), and the operation
//! completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::MpcOperationName;

use support::eth::assert_signed_by;
use support::{Raw, TestDevice, TestServer, Wallet, sha256};

/// Where the server is killed (SIGKILL) and restarted, and what the device does after.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Killed once round 1 is answered; the device sends round 3.
    AfterRound1Next,
    /// Killed once round 1 is answered; the device repeats round 1 (it lost the answer).
    AfterRound1Repeat,
    /// Killed once round 3 is answered (in signing, the server has the signature); the device
    /// repeats round 3.
    AfterRound3Repeat,
    /// Key generation only: killed once round 3 is answered and the device has its pairing: it
    /// confirms (round 5).
    BeforeRound5,
    /// Key generation only: killed after the confirmation: the operation is done after the
    /// restart.
    AfterRound5,
}

/// One exchange that must succeed. If `crash` is right after this round, the server is then killed
/// and restarted, and where `crash` says so the device repeats the exchange (it lost the answer)
/// and must get the stored answer. Returns the answer the device goes on with.
async fn exchange_with_crash(
    server: &mut TestServer,
    device: &TestDevice,
    op: &MpcOperationName,
    round: u8,
    message: &[u8],
    crash: Crash,
) -> Raw {
    let first = device.exchange(op, round, message).await;
    assert_eq!(first.status, 200, "{first:?}");
    let (kill, repeat) = match (crash, round) {
        (Crash::AfterRound1Next, 1) => (true, false),
        (Crash::AfterRound1Repeat, 1) | (Crash::AfterRound3Repeat, 3) => (true, true),
        _ => (false, false),
    };
    if kill {
        server.restart();
    }
    if !repeat {
        return first;
    }
    let why = "after the restart, the repeat gets the stored answer";
    device.assert_repeat(op, round, message, &first, why).await
}

/// Key generation with one kill and restart at `crash`; returns the finished wallet.
async fn keygen_with_crash(server: &mut TestServer, device: &TestDevice, crash: Crash) -> Wallet {
    let mut keygen = device.begin_keygen().await;
    let first = exchange_with_crash(server, device, &keygen.op, 1, &keygen.round1, crash).await;
    let round3 = keygen.round3(&first.json());
    let third = exchange_with_crash(server, device, &keygen.op, 3, &round3, crash).await;
    let pairing = keygen.pairing(&third.json());
    if matches!(crash, Crash::BeforeRound5) {
        server.restart();
    }
    let done = device
        .exchange_ok(&keygen.op, 5, &pairing.public().confirmation())
        .await;
    assert!(done.done, "{done:?}");
    if matches!(crash, Crash::AfterRound5) {
        server.restart();
    }
    device.finished_wallet(&keygen.operation, pairing).await
}

/// Key generation survives the kill, and the wallet signs afterwards (the server's half of the
/// pairing was stored before it answered).
async fn keygen_survives(crash: Crash) {
    let mut server = TestServer::start();
    let device = server.device().await;
    let wallet = keygen_with_crash(&mut server, &device, crash).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let digest = sha256(format!("after {crash:?}").as_bytes());
    let signed = device
        .sign(&wallet.pairing, &address.mpc_keys[0], &digest)
        .await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_round_1_continues_with_round_3() {
    keygen_survives(Crash::AfterRound1Next).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_round_1_answers_its_repeat() {
    keygen_survives(Crash::AfterRound1Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_round_3_answers_its_repeat() {
    keygen_survives(Crash::AfterRound3Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_before_the_confirmation_takes_it() {
    keygen_survives(Crash::BeforeRound5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_the_confirmation_is_done() {
    keygen_survives(Crash::AfterRound5).await;
}

/// Signing survives the kill, and its signature verifies.
async fn signing_survives(crash: Crash) {
    let mut server = TestServer::start();
    let device = server.device().await;
    let (wallet, address) = device.create_wallet_and_address().await;
    let pairing = &wallet.pairing;
    let digest = sha256(format!("signing {crash:?}").as_bytes());
    let mut signing = device
        .begin_signing(pairing, &address.mpc_keys[0], &digest)
        .await;
    let first =
        exchange_with_crash(&mut server, &device, &signing.op, 1, &signing.round1, crash).await;
    let round3 = signing.round3(pairing, &first.json());
    let last = exchange_with_crash(&mut server, &device, &signing.op, 3, &round3, crash).await;
    let signed = signing.finish(&device, pairing, &last.json()).await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_1_continues_with_round_3() {
    signing_survives(Crash::AfterRound1Next).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_1_answers_its_repeat() {
    signing_survives(Crash::AfterRound1Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_3_answers_its_repeat() {
    signing_survives(Crash::AfterRound3Repeat).await;
}
