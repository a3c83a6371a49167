//! The fixes of the security review, each proven against a real server process:
//!
//! 1. a terminal failed check (the device cheated in signing) retires the pairing and fails every
//!    other open operation on it, in the same transaction;
//! 2. a failed check's stored error is generic (the engine's detail stays in the server log);
//! 3. a requestId names one request: reusing it for another request is refused;
//! 4. registering an auth key again with another archive key is refused;
//! 5. a revoked device is told so only when its own key signed the token;
//! 6. operations expire: idle for 10 minutes after a round, or never started for an hour;
//! 7. GenerateAddress hands out consecutive indices under concurrency;
//! 8. `--allowed-origin` must be an origin (scheme and host): `*` stops the server.
//!
//! Time is played by moving timestamps back in the SQLite file while the server runs, and a
//! revocation by setting the device's state there (RevokeDevice is not implemented yet).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use waas_api::resources::{Device, Operation, OperationMetadata};
use waas_api::{DeviceGroupName, ErrorBody, ErrorCode, MpcKeyName, MpcOperationName};
use waas_mpc::Pairing;

use support::eth::{address_at, hex0x};
use support::{
    Auth, DeviceKeys, StartedSigning, TestDevice, TestServer, Wallet, default_pool, flip, mint,
    mpc_operation_of, sha256,
};

/// What the server stores, and answers, for an operation that failed a check.
const FAILED_CHECK: &str = "the MPC operation failed a check and was stopped";

/// Eleven minutes, in milliseconds: past the 10-minute limit on a session waiting for a round.
const ELEVEN_MINUTES_MS: &str = "660000";

/// The id of an MPC operation's row in `operations` (`operations/{id}` without the collection).
fn row_id(operation: &MpcOperationName) -> String {
    operation.operation_name().operation().as_str().to_owned()
}

/// CreateSignature of `digest` with `key`, and round 1 sent: the signing, and the device's honest
/// round 3 (not sent yet).
async fn start_signing(
    device: &TestDevice,
    pairing: &Pairing,
    key: &MpcKeyName,
    digest: &[u8; 32],
) -> (StartedSigning, Vec<u8>) {
    let mut signing = device.begin_signing(pairing, key, digest).await;
    let round3 = signing.send_round1(device, pairing).await;
    (signing, round3)
}

/// A wallet of `device` with its first address's key.
async fn wallet_and_key(device: &TestDevice) -> (Wallet, MpcKeyName) {
    let (wallet, address) = device.create_wallet_and_address().await;
    (wallet, address.mpc_keys[0].clone())
}

/// The database's view of one operation: `state|quote(session_sealed)`.
async fn stored_state(server: &TestServer, op: &MpcOperationName) -> String {
    let rows = server
        .db_query(
            "SELECT state || '|' || quote(session_sealed) FROM operations WHERE id = ?",
            &[&row_id(op)],
        )
        .await;
    assert_eq!(rows.len(), 1, "one row for {op}: {rows:?}");
    rows[0].clone()
}

/// The states of the pairings of a group, by epoch.
async fn pairing_states(server: &TestServer, group: &DeviceGroupName) -> Vec<String> {
    server
        .db_query(
            "SELECT state FROM pairings WHERE device_group = ? ORDER BY epoch",
            &[&group.to_string()],
        )
        .await
}

/// The signing round 3 (device → server) as bytes: a 36-byte envelope header (version, protocol,
/// session, round, sender), then the postcard payload `{phase2, phase3}`. `phase2` starts with
/// its sender and receiver (one byte each) and the 32-byte session binding, and ends with the
/// OT-based multiplication data (`mul_transmit`, almost all of the message); `phase3` is the
/// broadcast `{u, w}`, two 32-byte scalars, the last 64 bytes.
mod round3 {
    /// A byte of the session binding (offsets 38..70): checked before anything runs on the kept
    /// OT state, and its failure is recoverable (`Rejected`: this session ends, the pairing stays).
    pub(crate) const SESSION_BINDING_BYTE: usize = 36 + 2 + 12;

    /// A byte in the middle of the message: inside the multiplication data, whose check failing
    /// is the engine's `BanCounterparty`, `CounterpartyCheated` here (terminal).
    pub(crate) fn multiplication_byte(message: &[u8]) -> usize {
        message.len() / 2
    }

    /// The last byte, of the broadcast's `w`: the final signature then does not verify, which
    /// signing's last step also treats as `CounterpartyCheated` (terminal).
    pub(crate) fn final_broadcast_byte(message: &[u8]) -> usize {
        message.len() - 1
    }
}

/// Sends a tampered round 3 and checks the answer: ABORTED with the generic message only, and
/// GetOperation done with exactly that error (fix 2).
async fn send_failing_round3(device: &TestDevice, started: &StartedSigning, tampered: &[u8]) {
    let response = device.exchange(&started.op, 3, tampered).await;
    response.assert_error(ErrorCode::Aborted, None);
    assert_eq!(
        response.error().message,
        FAILED_CHECK,
        "the exchange's answer names no engine detail:\n{response:?}"
    );
    let error = device
        .assert_failed(&started.operation.name, ErrorCode::Aborted)
        .await;
    assert_eq!(
        error,
        ErrorBody::new(ErrorCode::Aborted, FAILED_CHECK),
        "GetOperation's error is the generic one"
    );
    // Its exact repeat gets the same stored answer.
    device
        .assert_repeat(&started.op, 3, tampered, &response, "the repeat")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cheating_round_3_retires_the_pairing_and_fails_every_other_operation_on_it() {
    let server = TestServer::start();
    let device = server.device().await;
    let (wallet, key) = wallet_and_key(&device).await;
    let pairing = &wallet.pairing;
    // Another wallet of the same device: another pairing, which must not be touched.
    let (other_wallet, other_key) = wallet_and_key(&device).await;

    // On the first pairing: the signing that will cheat, one at round 1, one not started.
    let (cheating, honest) = start_signing(&device, pairing, &key, &sha256(b"cheat")).await;
    let bystander = sha256(b"bystander");
    let (at_round1, at_round1_round3) = start_signing(&device, pairing, &key, &bystander).await;
    // The device starts its session for the one not started now, while it is listed (it is
    // listed only while it is open), but sends nothing.
    let not_started = device
        .begin_signing(pairing, &key, &sha256(b"not started"))
        .await;
    // On the other pairing: a signing at round 1.
    let other_digest = sha256(b"other pairing");
    let (elsewhere, elsewhere_round3) =
        start_signing(&device, &other_wallet.pairing, &other_key, &other_digest).await;
    assert_eq!(
        device.list_mpc_operations(&wallet.device_group).await.len(),
        4,
        "four open operations on the first pairing: three signings and the archive queued with \
         the wallet"
    );

    // The cheat: round 3 with its multiplication (OT) data changed.
    let tampered = flip(&honest, round3::multiplication_byte(&honest));
    send_failing_round3(&device, &cheating, &tampered).await;
    // The server classified it as terminal: its log says so (the API does not).
    let logs = server.logs();
    assert!(
        logs.contains("the counterparty cheated"),
        "the server log must name the terminal check that failed:\n{logs}"
    );

    // (a) The signing at round 1 is over: its honest round 3 is refused, and it failed with the
    // same generic error.
    device
        .exchange(&at_round1.op, 3, &at_round1_round3)
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);
    let error = device
        .assert_failed(&at_round1.operation.name, ErrorCode::Aborted)
        .await;
    assert_eq!(error.message, FAILED_CHECK, "{error:?}");
    // So is the one never started.
    device
        .assert_failed(&not_started.operation.name, ErrorCode::Aborted)
        .await;
    device
        .exchange(&not_started.op, 1, &not_started.round1)
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);
    // Their sessions are gone, and the pairing is retired.
    for op in [&at_round1.op, &not_started.op, &cheating.op] {
        assert_eq!(stored_state(&server, op).await, "FAILED|NULL", "{op}");
    }
    assert_eq!(
        pairing_states(&server, &wallet.device_group).await,
        ["RETIRED"]
    );

    // (b) Nothing is left for the device to compute on that group.
    device
        .assert_nothing_pending(
            &wallet.device_group,
            "nothing to compute on a retired pairing",
        )
        .await;

    // (c) No new signing on that group, by the device or by the API key.
    let body = serde_json::json!({ "payload": hex0x(&sha256(b"after the cheat")) });
    let signatures = format!("/v1/{key}/signatures");
    let by_device = device.client.post(&signatures).json(&body).send().await;
    by_device.assert_error(ErrorCode::FailedPrecondition, None);
    assert!(
        by_device.error().message.contains("no pairing"),
        "{by_device:?}"
    );
    server
        .api_key()
        .client
        .post(&signatures)
        .json(&body)
        .send()
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);

    // The other pairing is untouched: its signing goes on and finishes.
    assert_eq!(
        pairing_states(&server, &other_wallet.device_group).await,
        ["CONFIRMED"]
    );
    let last = device
        .exchange_ok(&elsewhere.op, 3, &elsewhere_round3)
        .await;
    assert!(last.done, "{last:?}");
    elsewhere
        .finish(&device, &other_wallet.pairing, &last)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_final_broadcast_also_retires_the_pairing() {
    let server = TestServer::start();
    let device = server.device().await;
    let (wallet, key) = wallet_and_key(&device).await;
    let (cheating, honest) = start_signing(&device, &wallet.pairing, &key, &sha256(b"w")).await;
    let tampered = flip(&honest, round3::final_broadcast_byte(&honest));
    send_failing_round3(&device, &cheating, &tampered).await;
    assert_eq!(
        pairing_states(&server, &wallet.device_group).await,
        ["RETIRED"]
    );
    device
        .create_signature_call(&key, &sha256(b"again"), None)
        .send()
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_racing_the_cheat_either_finishes_before_it_or_not_at_all() {
    // The cheat and another signing's round 3 on the same pairing, sent at the same moment: the
    // retirement and the failing of open operations are one transaction, so the other signing
    // either committed (and got its signature) before it, or is refused and stored as failed:
    // never a signature sent for an operation stored as failed, or the reverse.
    let server = TestServer::start();
    let device = server.device().await;
    let (mut finished, mut refused) = (0, 0);
    for attempt in 0..6 {
        let (wallet, key) = wallet_and_key(&device).await;
        let pairing = &wallet.pairing;
        let digest = sha256(format!("race {attempt}").as_bytes());
        let (cheating, honest) = start_signing(&device, pairing, &key, &sha256(b"cheat")).await;
        let (racing, racing_round3) = start_signing(&device, pairing, &key, &digest).await;
        let tampered = flip(&honest, round3::multiplication_byte(&honest));
        // The cheat leaves a little later each time (a round 3 takes some 50 ms), so that both
        // orders happen; which one wins is up to the scheduler.
        let (cheat, race) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(attempt * 5)).await;
                device.exchange(&cheating.op, 3, &tampered).await
            },
            device.exchange(&racing.op, 3, &racing_round3)
        );
        cheat.assert_error(ErrorCode::Aborted, None);
        let stored = device.get_operation(&racing.operation.name).await;
        assert!(stored.done, "{stored:?}");
        if race.status == 200 {
            finished += 1;
            racing.finish(&device, pairing, &race.json()).await;
        } else {
            refused += 1;
            race.assert_error(ErrorCode::FailedPrecondition, None);
            assert_eq!(
                stored.error,
                Some(ErrorBody::new(ErrorCode::Aborted, FAILED_CHECK)),
                "{stored:?}"
            );
            assert_eq!(stored_state(&server, &racing.op).await, "FAILED|NULL");
        }
        assert_eq!(
            pairing_states(&server, &wallet.device_group).await,
            ["RETIRED"]
        );
    }
    println!("the racing signing finished first {finished} times, was refused {refused} times");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recoverable_failed_check_ends_only_its_own_operation() {
    let server = TestServer::start();
    let device = server.device().await;
    let (wallet, key) = wallet_and_key(&device).await;
    let pairing = &wallet.pairing;
    let (failing, honest) = start_signing(&device, pairing, &key, &sha256(b"fails")).await;
    let goes_on = sha256(b"goes on");
    let (bystander, bystander_round3) = start_signing(&device, pairing, &key, &goes_on).await;

    // Round 3 with its session binding changed: the engine rejects it before it uses its kept
    // OT state (recoverable, not a cheat), but the operation still ends with the generic error.
    let tampered = flip(&honest, round3::SESSION_BINDING_BYTE);
    send_failing_round3(&device, &failing, &tampered).await;
    assert_eq!(stored_state(&server, &failing.op).await, "FAILED|NULL");
    let logs = server.logs();
    assert!(
        logs.contains("failed a check") && !logs.contains("the counterparty cheated"),
        "the server log must show a non-terminal failed check:\n{logs}"
    );

    // The pairing stays: the other signing finishes, and a new one can start.
    assert_eq!(
        pairing_states(&server, &wallet.device_group).await,
        ["CONFIRMED"]
    );
    let last = device
        .exchange_ok(&bystander.op, 3, &bystander_round3)
        .await;
    bystander.finish(&device, pairing, &last).await;
    device.sign(pairing, &key, &sha256(b"a new one")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_names_one_request() {
    let server = TestServer::start();
    let device = server.device().await;
    let (_, key) = wallet_and_key(&device).await;
    let (digest, other_digest) = (sha256(b"one"), sha256(b"two"));
    let id = Some("pay-1");

    // CreateSignature: the same id and digest is the same operation; another digest is refused
    // and changes nothing.
    let first = device.create_signature_operation(&key, &digest, id).await;
    let again = device.create_signature_operation(&key, &digest, id).await;
    assert_eq!(
        again.name, first.name,
        "the same request, the same operation"
    );
    let reuse = device.create_signature_call(&key, &other_digest, id);
    server
        .assert_refused_unchanged(reuse, ErrorCode::InvalidArgument)
        .await;
    // With another key (0/1) the same id is another request too.
    let other_key = device
        .create_mpc_key(&key.device_group_name(), "0/1")
        .await
        .name;
    device
        .create_signature_call(&other_key, &digest, id)
        .send()
        .await
        .assert_error(ErrorCode::InvalidArgument, None);

    // CreateMPCWallet by the API key: one id for two devices is refused.
    let api = server.api_key();
    let (alice, bob) = (server.device().await, server.device().await);
    let pool = default_pool();
    let for_alice = api
        .create_wallet_operation(&pool, &alice.name, Some("onboard-1"))
        .await;
    let again = api
        .create_wallet_operation(&pool, &alice.name, Some("onboard-1"))
        .await;
    assert_eq!(
        again.name, for_alice.name,
        "the same request, the same operation"
    );
    let reuse = api.create_wallet_call(&pool, &bob.name, Some("onboard-1"));
    server
        .assert_refused_unchanged(reuse, ErrorCode::InvalidArgument)
        .await;
    // The id is the caller's: Bob's own request under the same id is his own operation.
    let own = bob.create_wallet_operation(&pool, Some("onboard-1")).await;
    assert_ne!(own.name, for_alice.name);
    // Both wallets can still be made.
    alice.complete_wallet(&for_alice).await;
    bob.complete_wallet(&own).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_an_auth_key_again_with_another_archive_key_is_refused() {
    let server = TestServer::start();
    let device = server.device().await;
    let first = device.get_device().await;
    let changed = DeviceKeys {
        auth: device.keys.auth.clone(),
        archive: DeviceKeys::random().archive,
    };
    let anonymous = server.anonymous();
    let register = anonymous
        .post("/v1/device:register")
        .json(&changed.register_request());
    let response = server
        .assert_refused_unchanged(register, ErrorCode::AlreadyExists)
        .await;
    assert_eq!(response.status, 409);
    assert_eq!(
        device.get_device().await,
        first,
        "the device is as registered first"
    );
    let archive = device.keys.archive.verifying_key().to_sec1_point(true);
    assert_eq!(first.archive_public_key, hex0x(archive.as_bytes()));
    // The same data again is still fine (and names the same device).
    let again: Device = device.register_again().await.ok();
    assert_eq!(again, first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_device_is_told_so_only_when_it_signed_the_token() {
    let server = TestServer::start();
    let device = server.device().await;
    let path = format!("/v1/{}", device.name);
    let es256 = r#"{"alg":"ES256","typ":"JWT"}"#;
    let stranger = DeviceKeys::random().auth;
    // A token with the device as subject, signed by a key that is not the device's.
    let forged = || {
        let claims = device.client.signer().claims(&Method::GET, &path, b"");
        Auth::Header(format!("Bearer {}", mint(&stranger, es256, &claims)))
    };

    // While it is active, for comparison.
    let active_forged = device.client.get(&path).auth(forged()).send().await;
    active_forged.assert_error(ErrorCode::Unauthenticated, None);

    let revoked = server
        .db_execute(
            "UPDATE devices SET state = 'REVOKED' WHERE name = ?",
            &[&device.name.to_string()],
        )
        .await;
    assert_eq!(revoked, 1);

    // A stranger learns nothing: the same 401 as for an active device.
    let revoked_forged = device.client.get(&path).auth(forged()).send().await;
    revoked_forged.assert_error(ErrorCode::Unauthenticated, None);
    assert_eq!(
        revoked_forged.error(),
        active_forged.error(),
        "the answer to a forged token must not depend on the device's state"
    );
    assert!(
        !revoked_forged.text().contains("revoked"),
        "{revoked_forged:?}"
    );

    // The device itself is told.
    let own = device.client.get(&path).send().await;
    own.assert_error(ErrorCode::PermissionDenied, None);
    assert_eq!(own.status, 403);
    device
        .create_wallet_call(&default_pool(), None)
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, None);
}

/// Moves an operation's last change back by `ms` milliseconds: it has been idle that long.
async fn age_update(server: &TestServer, op: &MpcOperationName, ms: &str) {
    move_back(server, op, &["update_time_ms"], ms).await;
}

/// Moves an operation's creation (and last change) back by `ms` milliseconds: it was created
/// that long ago and not touched since.
async fn age_creation(server: &TestServer, op: &MpcOperationName, ms: &str) {
    move_back(server, op, &["create_time_ms", "update_time_ms"], ms).await;
}

/// Subtracts `ms` milliseconds from the timestamp `columns` of an operation's row, in one
/// statement (the server may read the row at any moment).
async fn move_back(server: &TestServer, op: &MpcOperationName, columns: &[&str], ms: &str) {
    let set: Vec<String> = columns
        .iter()
        .map(|column| format!("{column} = {column} - CAST(? AS INTEGER)"))
        .collect();
    let sql = format!("UPDATE operations SET {} WHERE id = ?", set.join(", "));
    let id = row_id(op);
    let mut params = vec![ms; columns.len()];
    params.push(&id);
    let changed = server.db_execute(&sql, &params).await;
    assert_eq!(changed, 1, "no row for {op}");
}

/// An exchange refused because the operation expired, and the operation failed for it.
///
/// Called right after the operation's timestamps were moved back: the exchange finds it stale and
/// expires it. Had the server's 30-second sweep run in the few milliseconds between, the sweep
/// would have failed it first, and the exchange would get FAILED_PRECONDITION ("the operation has
/// finished") instead of ABORTED: a window too short to matter, but not zero.
async fn assert_expired(
    server: &TestServer,
    device: &TestDevice,
    operation: &Operation,
    round: u8,
    message: &[u8],
) {
    let op = mpc_operation_of(operation);
    let response = device.exchange(&op, round, message).await;
    response.assert_error(ErrorCode::Aborted, None);
    assert!(response.error().message.contains("expired"), "{response:?}");
    let error = device
        .assert_failed(&operation.name, ErrorCode::Aborted)
        .await;
    assert!(error.message.contains("expired"), "{error:?}");
    assert_eq!(stored_state(server, &op).await, "FAILED|NULL");
    let open = device.list_mpc_operations(&op.device_group_name()).await;
    assert!(
        open.iter().all(|entry| entry.name != op),
        "an expired operation is still listed: {open:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_idle_for_ten_minutes_expires() {
    let server = TestServer::start();
    let device = server.device().await;
    let (wallet, key) = wallet_and_key(&device).await;
    let pairing = &wallet.pairing;

    // Idle for 9 minutes: still within the limit, it goes on.
    let (slow, round3) = start_signing(&device, pairing, &key, &sha256(b"slow")).await;
    age_update(&server, &slow.op, "540000").await;
    assert!(device.exchange_ok(&slow.op, 3, &round3).await.done);

    // Idle for 11 minutes: the next round is refused, the operation failed, its session deleted.
    let (idle, round3) = start_signing(&device, pairing, &key, &sha256(b"idle")).await;
    let running = stored_state(&server, &idle.op).await;
    assert!(
        running.starts_with("RUNNING|X'"),
        "a sealed session: {running}"
    );
    age_update(&server, &idle.op, ELEVEN_MINUTES_MS).await;
    assert_expired(&server, &device, &idle.operation, 3, &round3).await;

    // An expired signing is no cheat: the pairing still signs.
    assert_eq!(
        pairing_states(&server, &wallet.device_group).await,
        ["CONFIRMED"]
    );
    device.sign(pairing, &key, &sha256(b"after")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfirmed_key_generation_expires_and_the_servers_half_is_deleted() {
    let server = TestServer::start();
    let device = server.device().await;
    let mut keygen = device.begin_keygen().await;
    let OperationMetadata::CreateMpcWallet {
        device_group,
        mpc_wallet,
        ..
    } = keygen.operation.metadata.clone()
    else {
        panic!("{:?}", keygen.operation)
    };

    // Rounds 1 and 3: the server has its half, pending the device's confirmation.
    let round3 = keygen.send_round1(&device).await;
    let round4 = device.exchange_ok(&keygen.op, 3, &round3).await;
    let pairing = keygen.pairing(&round4);
    assert_eq!(pairing_states(&server, &device_group).await, ["PENDING"]);

    // Eleven minutes without the confirmation: it is refused, and the server's half deleted.
    age_update(&server, &keygen.op, ELEVEN_MINUTES_MS).await;
    let confirmation = pairing.public().confirmation();
    assert_expired(&server, &device, &keygen.operation, 5, &confirmation).await;
    assert!(
        pairing_states(&server, &device_group).await.is_empty(),
        "the unconfirmed pairing must be deleted"
    );

    // The wallet never became usable.
    device
        .generate_address_call(&mpc_wallet, None)
        .send()
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_not_started_within_an_hour_expires() {
    let server = TestServer::start();
    let device = server.device().await;
    let (wallet, key) = wallet_and_key(&device).await;
    let pairing = &wallet.pairing;
    let sixty_one_minutes = "3660000";

    // A key generation created 61 minutes ago and never started.
    let keygen = device.begin_keygen().await;
    age_creation(&server, &keygen.op, sixty_one_minutes).await;
    assert_expired(&server, &device, &keygen.operation, 1, &keygen.round1).await;

    // A signing created 61 minutes ago and never started.
    let late = device.begin_signing(pairing, &key, &sha256(b"late")).await;
    age_creation(&server, &late.op, sixty_one_minutes).await;
    assert_expired(&server, &device, &late.operation, 1, &late.round1).await;

    // Not started for 11 minutes: the idle limit is for sessions, so it still runs.
    let digest = sha256(b"waited");
    let waited = device.create_signature_operation(&key, &digest, None).await;
    age_creation(&server, &mpc_operation_of(&waited), ELEVEN_MINUTES_MS).await;
    device.complete_signature(pairing, &waited, &digest).await;

    // Expiry retired nothing.
    assert_eq!(
        pairing_states(&server, &wallet.device_group).await,
        ["CONFIRMED"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_generate_address_calls_get_consecutive_paths() {
    const CALLS: u32 = 40;
    let server = TestServer::start();
    let device = Arc::new(server.device().await);
    let wallet = Arc::new(device.create_wallet(&default_pool()).await);

    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let (device, wallet) = (device.clone(), wallet.clone());
            tokio::spawn(async move {
                device
                    .generate_address_call(&wallet.wallet.name, None)
                    .send()
                    .await
            })
        })
        .collect();
    let mut addresses = Vec::new();
    let mut failures = Vec::new();
    for call in calls {
        let response = call.await.unwrap();
        if response.status == 200 {
            addresses.push(response.json::<waas_api::resources::Address>());
        } else {
            failures.push(format!("{response:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {CALLS} concurrent calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Paths 0/0 … 0/11, each once, each the address the device derives itself.
    addresses.sort_by_key(|address| {
        let index = address.derivation_path.strip_prefix("0/");
        index.and_then(|index| index.parse::<u32>().ok())
    });
    let paths: Vec<&str> = addresses
        .iter()
        .map(|address| address.derivation_path.as_str())
        .collect();
    let expected: Vec<String> = (0..CALLS).map(|index| format!("0/{index}")).collect();
    assert_eq!(paths, expected, "one address per index, no gap");
    for (index, address) in (0..CALLS).zip(&addresses) {
        assert_eq!(address.address, address_at(&wallet.pairing, &[0, index]));
    }
    let distinct: BTreeSet<&str> = addresses.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(distinct.len(), addresses.len(), "distinct addresses");

    // ListAddresses has exactly them, oldest first, which is index order (index i + 1 can only
    // be taken once index i is stored); the next one follows them.
    let listed = device.list_addresses(&wallet.wallet.name).await;
    assert_eq!(listed, addresses);
    let next = device.generate_address(&wallet.wallet.name, None).await;
    assert_eq!(next.derivation_path, format!("0/{CALLS}"));
}

/// Reads a child's pipe to its end on a thread, into a string the caller can look at meanwhile.
fn drain(
    pipe: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    (text, reader)
}

/// Runs the binary with `args` (on a fresh folder) and waits for it to exit: its exit status,
/// stdout and stderr. A server that starts listening instead (or still runs after a minute) is
/// killed and reported.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = |file: &str| dir.path().join(file).to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args(["--listen", "127.0.0.1:0", "--database", &path("waas.db")])
        .args(["--master-key-file", &path("master.key")])
        .args(["--dev-api-key-file", &path("dev-api-key.json")])
        .args(args)
        .env("WAAS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stdout_reader) = drain(child.stdout.take().unwrap());
    let (stderr, stderr_reader) = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let started = stdout.lock().unwrap().contains("listening");
        if started || Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "waas-server {args:?} {} instead of exiting\nstdout: {}\nstderr: {}",
                if started {
                    "started"
                } else {
                    "still runs after a minute"
                },
                stdout.lock().unwrap(),
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stdout_reader.join().unwrap();
    stderr_reader.join().unwrap();
    let (stdout, stderr) = (stdout.lock().unwrap(), stderr.lock().unwrap());
    (status, stdout.clone(), stderr.clone())
}

#[test]
fn an_allowed_origin_that_is_not_an_origin_stops_the_server() {
    for (args, named) in [
        (&["--allowed-origin", "*"][..], "\"*\""),
        (
            &["--allowed-origin", "wallet.example"][..],
            "\"wallet.example\"",
        ),
        // One bad origin among good ones is enough.
        (
            &[
                "--allowed-origin",
                "https://wallet.example",
                "--allowed-origin",
                "*",
            ][..],
            "\"*\"",
        ),
    ] {
        let (status, stdout, stderr) = run_to_exit(args);
        assert!(
            !status.success(),
            "{args:?}: exit status {status}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(
            !stdout.contains("listening"),
            "{args:?}: it must not start listening: {stdout}"
        );
        assert!(
            stderr.contains("--allowed-origin") && stderr.contains(named),
            "{args:?}: stderr must name the flag and the value {named}:\n{stderr}"
        );
        assert!(
            stderr.contains("https://wallet.example"),
            "{args:?}: stderr must show what an origin looks like:\n{stderr}"
        );
    }
}
