//! The device archive and key export at the server (docs/protocol/archive.md), against a real
//! server process: the archive CreateMPCWallet queues, PrepareDeviceArchive, the exchange bound
//! to a passcode login used once, pools with export off, and the export metadata.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k256::elliptic_curve::sec1::ToSec1Point;
use waas_api::export::ExportMetadata;
use waas_api::passcode::{purpose, reason};
use waas_api::resources::OperationMetadata;
use waas_api::{DeviceGroupName, ErrorCode, MpcOperationName, PasscodeLoginName};

use support::eth::{address_at, hex0x, public_key_at};
use support::{PASSCODE, TestDevice, TestServer, Wallet, archive_op_of, default_pool, sha256};

/// A device with a wallet in the default pool, the group's passcode registered, and the archive
/// operation CreateMPCWallet queued for it.
async fn wallet_with_passcode(server: &TestServer) -> (TestDevice, Wallet, MpcOperationName) {
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let op = device
        .queued_archive(&wallet.device_group, &wallet.pairing)
        .await;
    device
        .register_passcode(&wallet.device_group, PASSCODE)
        .await;
    (device, wallet, op)
}

/// Moves a finished login's finish back by more than its five minutes.
async fn expire_login(server: &TestServer, login: &PasscodeLoginName) {
    let changed = server
        .db_execute(
            "UPDATE passcode_logins SET finish_time_ms = finish_time_ms - 301000 WHERE id = ?",
            &[login.login().as_str()],
        )
        .await;
    assert_eq!(changed, 1);
}

/// The archive's root key and the key at `0/0`, checked against what the device derives from
/// its own pairing (public facts) and against k256 on its own.
fn assert_rebuilds_the_wallet(archive: &waas_mpc::Archive, wallet: &Wallet) {
    let root = archive.root_key().unwrap().to_public();
    assert_eq!(root.public_key, wallet.pairing.public().root_public_key);
    assert_eq!(root.chain_code, wallet.pairing.public().chain_code);
    let keys = archive.derive(&[vec![0, 0], vec![7, 3]]).unwrap();
    for key in &keys {
        let secret = k256::SecretKey::from_slice(&key.secret[..]).unwrap();
        let public = secret.public_key().to_sec1_point(true);
        assert_eq!(public.as_bytes(), public_key_at(&wallet.pairing, &key.path));
        assert_eq!(key.address, address_at(&wallet.pairing, &key.path));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queued_archive_rebuilds_the_wallet_key_once_per_login() {
    let mut server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;

    // Right after key generation the device finds its archive, on its pairing and epoch.
    let op = device.queued_archive(group, &wallet.pairing).await;
    let operation = device.get_operation(&op.operation_name()).await;
    assert!(!operation.done, "{operation:?}");
    assert_eq!(
        operation.metadata,
        OperationMetadata::PrepareDeviceArchive {
            device_group: group.clone(),
            device: device.name.clone(),
            mpc_operation: op.clone(),
        }
    );

    device.register_passcode(group, PASSCODE).await;
    let login = device.login(group, PASSCODE).await;
    // Round 1: the login's name; the answer is the sealed share (94 bytes), stored, so a retry
    // gets the very same bytes, even from a restarted server.
    let opened = device.open_archive(&op, &wallet.pairing, &login).await;
    assert_eq!(opened.sealed.len(), 94);
    assert_rebuilds_the_wallet(&opened.archive, &wallet);
    let message = login.name.to_string();
    device
        .assert_repeat(
            &op,
            1,
            message.as_bytes(),
            &opened.answer,
            "a retry of round 1",
        )
        .await;
    server.restart();
    device
        .assert_repeat(
            &op,
            1,
            message.as_bytes(),
            &opened.answer,
            "after a restart",
        )
        .await;
    // The login is used up by the commit, and its session secret deleted.
    let row = server
        .db_query(
            "SELECT state || '|' || quote(session_sealed) FROM passcode_logins WHERE id = ?",
            &[login.name.login().as_str()],
        )
        .await;
    assert_eq!(row, ["USED|NULL"]);

    // Round 3: the hash of the stored sealed share; done, with the DeviceArchive.
    device
        .exchange_and_repeat(&op, 3, &sha256(&opened.sealed))
        .await;
    device
        .assert_archived(&op.operation_name(), &op, &wallet.pairing)
        .await;
    device
        .assert_nothing_pending(group, "the archive is done")
        .await;

    // The used login authorizes nothing more: neither a reset nor another archive.
    let started = device.start_registration(b"999999");
    let reset = login.reset(purpose::RESET_START, &started.request);
    device
        .register_start_call(group, &started.request, Some(reset))
        .send()
        .await
        .assert_error(ErrorCode::InvalidArgument, Some(reason::LOGIN_INVALID));
    let again = device.prepare_archive(group).await;
    let again_op = archive_op_of(&again);
    assert_ne!(again_op, op);
    let refused = server
        .assert_refused_unchanged(
            device.exchange_call(&again_op, 1, message.as_bytes()),
            ErrorCode::InvalidArgument,
        )
        .await;
    assert_eq!(
        refused.error().reason.as_deref(),
        Some(reason::LOGIN_INVALID)
    );

    // A fresh login: another sealing (fresh randomness), the same key.
    let fresh = device.login(group, PASSCODE).await;
    let archive = device
        .run_archive(&again.name, &again_op, &wallet.pairing, &fresh)
        .await;
    assert_rebuilds_the_wallet(&archive, &wallet);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_changes_nothing_and_the_device_may_log_in_again() {
    let server = TestServer::start();
    let (device, wallet, op) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;

    // Logins that may not be used, each refused with LOGIN_INVALID and nothing changed: the
    // operation is not failed, the login not used. First one used by a reset (the passcode is
    // then 777777), then the others, made after the reset (which revokes open logins).
    let used = device.login(group, PASSCODE).await;
    let started = device.start_registration(b"777777");
    let version = device
        .finish_registration(group, started, Some(&used))
        .await;
    assert_eq!(version, 2);
    let expired = device.login(group, b"777777").await;
    expire_login(&server, &expired.name).await;
    let unfinished = device.login_start(group, b"777777").await;
    let failed = device.login_start(group, b"777777").await;
    let failed_name = failed.response.login.clone();
    let (finalization, _) = failed.finish(group).unwrap();
    device
        .login_finish_call(group, &failed_name, &support::flip(&finalization, 3))
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(reason::WRONG_PASSCODE));
    // Another group's login (the same device's other wallet).
    let other = device.create_wallet(&default_pool()).await;
    device
        .register_passcode(&other.device_group, PASSCODE)
        .await;
    let elsewhere = device.login(&other.device_group, PASSCODE).await;
    // Another device's login in this group (a second device, joined as AddDevice will).
    let bob = server.device().await;
    server.join_group(group, &bob).await;
    let bobs = bob.login(group, b"777777").await;

    // Each is what its case says (and not, say, revoked by the reset).
    for (login, state) in [
        (&expired.name, "FINISHED"),
        (&unfinished.response.login, "STARTED"),
        (&failed_name, "FAILED"),
        (&used.name, "USED"),
    ] {
        let stored = server
            .db_query(
                "SELECT state FROM passcode_logins WHERE id = ?",
                &[login.login().as_str()],
            )
            .await;
        assert_eq!(stored, [state], "{login}");
    }
    let unknown = format!("{group}/passcodeLogins/no-such-login");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", vec![0xff, 0xfe]),
        ("not a login name", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("an unknown login", unknown.into_bytes()),
        ("an expired login", expired.name.to_string().into_bytes()),
        (
            "an unfinished login",
            unfinished.response.login.to_string().into_bytes(),
        ),
        ("a failed login", failed_name.to_string().into_bytes()),
        (
            "a login used by a reset",
            used.name.to_string().into_bytes(),
        ),
        (
            "another group's login",
            elsewhere.name.to_string().into_bytes(),
        ),
        ("another device's login", bobs.name.to_string().into_bytes()),
    ];
    for (what, message) in &cases {
        let refused = server
            .assert_refused_unchanged(
                device.exchange_call(&op, 1, message),
                ErrorCode::InvalidArgument,
            )
            .await;
        assert_eq!(
            refused.error().reason.as_deref(),
            Some(reason::LOGIN_INVALID),
            "{what}: {refused:?}"
        );
    }

    // The device logs in again: round 1 goes through.
    let login = device.login(group, b"777777").await;
    let opened = device.open_archive(&op, &wallet.pairing, &login).await;
    assert_rebuilds_the_wallet(&opened.archive, &wallet);
    // Once answered, round 1 with another login is another input for an answered round.
    let second = device.login(group, b"777777").await;
    device
        .exchange(&op, 1, second.name.to_string().as_bytes())
        .await
        .assert_error(ErrorCode::Aborted, None);
    // Opened with another login's secret, the share does not open (the login is in the key).
    assert!(
        device
            .open_sealed_share(&op, &wallet.pairing, &second, &opened.sealed)
            .is_err()
    );
    // Round 3 must be the hash of what was sent: another hash, or no hash, changes nothing.
    for wrong in [sha256(b"something else").to_vec(), vec![0; 31], Vec::new()] {
        server
            .assert_refused_unchanged(
                device.exchange_call(&op, 3, &wrong),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    device.exchange_ok(&op, 3, &sha256(&opened.sealed)).await;
    device
        .assert_archived(&op.operation_name(), &op, &wallet.pairing)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_login_serves_one_use_even_when_two_race_for_it() {
    let server = TestServer::start();
    let (device, wallet, op) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;
    let login = device.login(group, PASSCODE).await;

    // A reset and an archive with the same login at once: exactly one gets it (registerStart
    // checks the login without using it up).
    let started = device.start_registration(b"888888");
    let (_, upload) = device
        .registration_upload(group, started, Some(&login))
        .await;
    let finish_reset = login.reset(purpose::RESET_FINISH, &upload);
    let message = login.name.to_string();
    let (reset, archive) = tokio::join!(
        device
            .register_finish_call(group, &upload, Some(finish_reset))
            .send(),
        device.exchange(&op, 1, message.as_bytes()),
    );
    let winners = [reset.status, archive.status]
        .iter()
        .filter(|status| **status == 200)
        .count();
    assert_eq!(winners, 1, "{reset:?}\n{archive:?}");
    for loser in [&reset, &archive].into_iter().filter(|r| r.status != 200) {
        loser.assert_error(ErrorCode::InvalidArgument, Some(reason::LOGIN_INVALID));
    }
    println!(
        "the {} won",
        if reset.status == 200 {
            "reset"
        } else {
            "archive"
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_with_export_off_queue_no_archive_and_refuse_one() {
    let server = TestServer::start();
    let api = server.api_key();
    let device = server.device().await;

    let default = api.get_pool(&default_pool()).await;
    assert!(default.export_enabled, "the default pool has export on");
    let vault = api.create_pool_with("vault", "Vault", false).await;
    assert!(!vault.export_enabled);
    assert_eq!(api.get_pool(&vault.name).await, vault);
    assert!(!device.get_pool(&vault.name).await.export_enabled);

    let wallet = device.create_wallet(&vault.name).await;
    let group = &wallet.device_group;
    device
        .assert_nothing_pending(group, "no archive is queued with export off")
        .await;
    for call in [
        device.prepare_archive_call(group),
        api.prepare_archive_call(group, &device),
    ] {
        server
            .assert_refused_unchanged(call, ErrorCode::FailedPrecondition)
            .await
            .assert_error(ErrorCode::FailedPrecondition, Some(reason::EXPORT_DISABLED));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prepare_device_archive_checks_who_asks_and_for_what() {
    let server = TestServer::start();
    let api = server.api_key();
    let alice = server.device().await;
    let wallet = alice.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;
    let queued = alice.queued_archive(group, &wallet.pairing).await;
    let bob = server.device().await;
    bob.create_wallet(&default_pool()).await;

    // A device asks for itself only, and only in its groups.
    server
        .assert_refused_unchanged(
            alice
                .client
                .post(format!("/v1/{group}:prepareDeviceArchive"))
                .json(&serde_json::json!({ "device": bob.name })),
            ErrorCode::PermissionDenied,
        )
        .await;
    server
        .assert_refused_unchanged(bob.prepare_archive_call(group), ErrorCode::PermissionDenied)
        .await;
    // An API key asks for any device of the group, and no other.
    server
        .assert_refused_unchanged(
            api.prepare_archive_call(group, &bob),
            ErrorCode::FailedPrecondition,
        )
        .await;
    // A bad body.
    server
        .assert_refused_unchanged(
            alice
                .client
                .post(format!("/v1/{group}:prepareDeviceArchive"))
                .json(&serde_json::json!({ "device": alice.name, "extra": true })),
            ErrorCode::InvalidArgument,
        )
        .await;

    // While the queued one has not started, asking again returns it (by the device or the
    // API key) instead of piling up another.
    let by_device = alice.prepare_archive(group).await;
    let by_key: waas_api::resources::Operation = api.prepare_archive_call(group, &alice).ok().await;
    assert_eq!(archive_op_of(&by_device), queued);
    assert_eq!(archive_op_of(&by_key), queued);
    alice.queued_archive(group, &wallet.pairing).await;

    // Once it started, a new request makes a new one.
    alice.register_passcode(group, PASSCODE).await;
    let login = alice.login(group, PASSCODE).await;
    alice.open_archive(&queued, &wallet.pairing, &login).await;
    let next = alice.prepare_archive(group).await;
    assert_ne!(archive_op_of(&next), queued);
    assert_eq!(
        alice.archive_operations(group, &wallet.pairing).await.len(),
        2
    );

    // A group whose key generation is not confirmed has nothing to archive.
    let mut keygen = alice.begin_keygen().await;
    let round3 = keygen.send_round1(&alice).await;
    alice.exchange_ok(&keygen.op, 3, &round3).await;
    let unconfirmed = keygen.op.device_group_name();
    server
        .assert_refused_unchanged(
            alice.prepare_archive_call(&unconfirmed),
            ErrorCode::FailedPrecondition,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_metadata_lists_every_key_of_the_group() {
    let server = TestServer::start();
    let device = server.device().await;

    // Before the confirmation there is no metadata (the group has a key, not yet an active one).
    let mut keygen = device.begin_keygen().await;
    let group: DeviceGroupName = keygen.op.device_group_name();
    assert_eq!(device.export_metadata(&group).await, None);
    let round3 = keygen.send_round1(&device).await;
    let answer = device.exchange_ok(&keygen.op, 3, &round3).await;
    let pairing = keygen.pairing(&answer);
    assert_eq!(device.export_metadata(&group).await, None);
    device
        .exchange_ok(&keygen.op, 5, &pairing.public().confirmation())
        .await;
    let wallet = device.finished_wallet(&keygen.operation, pairing).await;

    let metadata = device.export_metadata(&group).await.unwrap();
    assert_eq!(
        metadata,
        ExportMetadata {
            version: ExportMetadata::VERSION,
            device_group: group.clone(),
            root_public_key: hex0x(&wallet.pairing.public().root_public_key),
            keys: Vec::new(),
        }
    );

    // Every key, oldest first, including those made after the archive.
    let name = &wallet.wallet.name;
    let first = device.generate_address(name, None).await;
    let second = device.generate_address(name, None).await;
    let custom = device.create_mpc_key(&group, "7/3").await;
    let third = device.generate_address(name, None).await;
    let metadata = device.export_metadata(&group).await.unwrap();
    let listed: Vec<(String, String, String, String)> = metadata
        .keys
        .iter()
        .map(|key| {
            (
                key.mpc_key.to_string(),
                key.derivation_path.clone(),
                key.public_key.clone(),
                key.address.clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        (&first.mpc_keys[0], "0/0", [0, 0], &first.address),
        (&second.mpc_keys[0], "0/1", [0, 1], &second.address),
        (&custom.name, "7/3", [7, 3], &custom.address),
        (&third.mpc_keys[0], "0/2", [0, 2], &third.address),
    ]
    .into_iter()
    .map(|(key, path, indices, address)| {
        assert_eq!(address, &address_at(&wallet.pairing, &indices));
        (
            key.to_string(),
            path.to_owned(),
            hex0x(&public_key_at(&wallet.pairing, &indices)),
            address.clone(),
        )
    })
    .collect();
    assert_eq!(listed, expected);
    // The API key reads the same.
    let api = server.api_key();
    let seen: waas_api::resources::DeviceGroup = api.client.get(format!("/v1/{group}")).ok().await;
    assert_eq!(
        seen.mpc_key_export_metadata
            .map(|m| ExportMetadata::decode(&m).unwrap()),
        Some(metadata)
    );
}
