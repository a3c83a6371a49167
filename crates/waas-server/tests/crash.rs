//! The server is killed (SIGKILL, no shutdown) between the rounds of key generation and of
//! signing, and restarted on the same database and master key: the device carries on, either with
//! its next round or by repeating its last one (and getting the stored answer), and the operation
//! completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::resources::OperationMetadata;

use support::eth::assert_signed_by;
use support::{TestDevice, TestServer, Wallet, default_pool, reply, sha256};

/// Where key generation is interrupted, and what the device does after the restart.
#[derive(Clone, Copy, Debug)]
enum KeygenCrash {
    /// Killed once round 1 is answered; the device sends round 3.
    AfterRound1Next,
    /// Killed once round 1 is answered; the device repeats round 1 (it lost the answer).
    AfterRound1Repeat,
    /// Killed once round 3 is answered; the device repeats round 3.
    AfterRound3Repeat,
    /// Killed once round 3 is answered and the device has its pairing: it confirms (round 5).
    BeforeRound5,
    /// Killed after the confirmation: the operation is done after the restart.
    AfterRound5,
}

/// Key generation with one kill and restart at `crash`; returns the finished wallet.
async fn keygen_with_crash(
    server: &mut TestServer,
    device: &TestDevice,
    crash: KeygenCrash,
) -> Wallet {
    use KeygenCrash::*;
    let operation = device.create_wallet_operation(&default_pool(), None).await;
    let OperationMetadata::CreateMpcWallet {
        mpc_operation: op, ..
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let pending = device.find_mpc_operation(op).await;
    let (mut keygen, round1) = device.start_keygen(&pending);

    let first = device.exchange(op, 1, &round1).await;
    assert_eq!(first.status, 200, "{first:?}");
    let mut round2 = first.body.clone();
    if matches!(crash, AfterRound1Next | AfterRound1Repeat) {
        server.restart();
    }
    if matches!(crash, AfterRound1Repeat) {
        let again = device.exchange(op, 1, &round1).await;
        assert_eq!(
            (again.status, &again.body),
            (200, &first.body),
            "after the restart, the repeat gets the stored answer:\n{again:?}"
        );
        round2 = again.body;
    }
    let round2 = reply(&serde_json::from_slice(&round2).unwrap(), 2);

    let round3 = keygen.handle(&round2).unwrap().reply.unwrap();
    let third = device.exchange(op, 3, &round3).await;
    assert_eq!(third.status, 200, "{third:?}");
    if matches!(crash, AfterRound3Repeat) {
        server.restart();
        let again = device.exchange(op, 3, &round3).await;
        assert_eq!(
            (again.status, &again.body),
            (200, &third.body),
            "after the restart, the repeat gets the stored answer:\n{again:?}"
        );
    }
    let step = keygen.handle(&reply(&third.json(), 4)).unwrap();
    let pairing = step.output.unwrap();
    if matches!(crash, BeforeRound5) {
        server.restart();
    }
    let done = device
        .exchange_ok(op, 5, &pairing.public().confirmation())
        .await;
    assert!(done.done, "{done:?}");
    if matches!(crash, AfterRound5) {
        server.restart();
    }
    device.finished_wallet(&operation, pairing).await
}

/// Key generation survives the kill, and the wallet signs afterwards (the server's half of the
/// pairing was stored before it answered).
async fn keygen_survives(crash: KeygenCrash) {
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
    keygen_survives(KeygenCrash::AfterRound1Next).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_round_1_answers_its_repeat() {
    keygen_survives(KeygenCrash::AfterRound1Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_round_3_answers_its_repeat() {
    keygen_survives(KeygenCrash::AfterRound3Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_before_the_confirmation_takes_it() {
    keygen_survives(KeygenCrash::BeforeRound5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keygen_killed_after_the_confirmation_is_done() {
    keygen_survives(KeygenCrash::AfterRound5).await;
}

/// Where signing is interrupted.
#[derive(Clone, Copy, Debug)]
enum SigningCrash {
    /// Killed once round 1 is answered; the device sends round 3.
    AfterRound1Next,
    /// Killed once round 1 is answered; the device repeats round 1.
    AfterRound1Repeat,
    /// Killed once round 3 is answered (the server has the signature); the device repeats round 3.
    AfterRound3Repeat,
}

async fn signing_survives(crash: SigningCrash) {
    use SigningCrash::*;
    let mut server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    let digest = sha256(format!("signing {crash:?}").as_bytes());
    let operation = device.create_signature_operation(key, &digest, None).await;
    let OperationMetadata::CreateSignature {
        mpc_operation: op, ..
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let pending = device.find_mpc_operation(op).await;
    let (mut session, round1, path) = device.start_signing(&pending, &wallet.pairing, key, &digest);

    let first = device.exchange(op, 1, &round1).await;
    assert_eq!(first.status, 200, "{first:?}");
    let mut round2 = first.body.clone();
    if matches!(crash, AfterRound1Next | AfterRound1Repeat) {
        server.restart();
    }
    if matches!(crash, AfterRound1Repeat) {
        let again = device.exchange(op, 1, &round1).await;
        assert_eq!(
            (again.status, &again.body),
            (200, &first.body),
            "after the restart, the repeat gets the stored answer:\n{again:?}"
        );
        round2 = again.body;
    }
    let round2 = reply(&serde_json::from_slice(&round2).unwrap(), 2);
    let round3 = session
        .handle(&wallet.pairing, &round2)
        .unwrap()
        .reply
        .unwrap();
    let last = device.exchange(op, 3, &round3).await;
    assert_eq!(last.status, 200, "{last:?}");
    if matches!(crash, AfterRound3Repeat) {
        server.restart();
        let again = device.exchange(op, 3, &round3).await;
        assert_eq!(
            (again.status, &again.body),
            (200, &last.body),
            "after the restart, the repeat gets the stored answer:\n{again:?}"
        );
    }
    let signature = session
        .handle(&wallet.pairing, &reply(&last.json(), 4))
        .unwrap()
        .output
        .unwrap();
    let signed = device
        .finished_signature(&operation.name, signature, path)
        .await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_1_continues_with_round_3() {
    signing_survives(SigningCrash::AfterRound1Next).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_1_answers_its_repeat() {
    signing_survives(SigningCrash::AfterRound1Repeat).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_killed_after_round_3_answers_its_repeat() {
    signing_survives(SigningCrash::AfterRound3Repeat).await;
}
