//! AddDevice at the server (docs/protocol/recovery.md, "The server's side"), against a real
//! server process, with waas-mpc's `DeviceRecovery` playing the new device: a whole recovery
//! after a backup, the recovered device signing for the wallet and the revoked old one not; the
//! group's events and device states; a stranger's partial counting nothing; the group's recovery
//! count, lock and operator unlock; restarts between every two rounds; and each refusal
//! changing nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::auth::reason::DEVICE_REVOKED;
use waas_api::passcode::reason;
use waas_api::resources::{
    DeviceGroupEventType, DeviceState, GroupDeviceState, ListDeviceGroupEventsResponse, Operation,
    OperationMetadata, RevokeDeviceRequest,
};
use waas_api::{DeviceGroupName, ErrorCode};
use waas_mpc::passcode::ClientLogin;
use waas_mpc::{
    DecryptionShare, Half, PartialUse, RecoveryContext, RecoveryRound1, RecoveryRound3, Role,
    ciphertext_ephemeral,
};

use support::backup::made_backup;
use support::eth::assert_signed_by;
use support::recovery::{Owned, Recovery, add_device_call, pairing_states, recover};
use support::{Client, PASSCODE, TestDevice, TestServer, default_pool, flip, reply, sha256};

/// A passcode that is not the group's.
const WRONG: &[u8] = b"000000";

/// The recovery attempts of the group's backups: `failures|locked` each, or nothing if none
/// were counted.
async fn recovery_count(server: &TestServer, group: &DeviceGroupName) -> Vec<String> {
    server
        .db_query(
            "SELECT failures || '|' || CAST(locked AS INTEGER) FROM recovery_attempts
             WHERE device_group = ?",
            &[&group.to_string()],
        )
        .await
}

/// One backup's recovery attempts: `failures|locked`, or nothing if none were counted.
async fn backup_count(server: &TestServer, backup: &str) -> Vec<String> {
    server
        .db_query(
            "SELECT failures || '|' || CAST(locked AS INTEGER) FROM recovery_attempts
             WHERE backup = ?",
            &[backup],
        )
        .await
}

/// What replaced a backup: `current`, a backup's id or a reset's login.
async fn replaced_by(server: &TestServer, backup: &str) -> Vec<String> {
    server
        .db_query(
            "SELECT ifnull(replaced_by, 'current') FROM backups WHERE backup = ?",
            &[backup],
        )
        .await
}

/// `device` revokes `revoked` with a fresh login of `group` as its step-up.
async fn revoke_with_step_up(device: &TestDevice, group: &DeviceGroupName, revoked: &TestDevice) {
    let login = device.login(group, PASSCODE).await;
    let _: waas_api::resources::Device = device
        .client
        .post("/v1/device:revoke")
        .json(&RevokeDeviceRequest {
            name: revoked.name.clone(),
            login: Some(login.name),
        })
        .ok()
        .await;
}

/// ListDeviceGroupEvents as `client`: each event as `TYPE device operation?`.
async fn events(client: &Client, group: &DeviceGroupName) -> Vec<(DeviceGroupEventType, String)> {
    let list: ListDeviceGroupEventsResponse = client.get(format!("/v1/{group}/events")).ok().await;
    list.events
        .into_iter()
        .map(|event| {
            assert!(humantime::parse_rfc3339(&event.time).is_ok(), "{event:?}");
            let operation = event
                .operation
                .map(|operation| format!(" {operation}"))
                .unwrap_or_default();
            (event.kind, format!("{}{operation}", event.device))
        })
        .collect()
}

/// A new AddDevice of `device` whose round 1 with `passcode` (right or not) is refused as
/// locked before any OPAQUE work, changing nothing; the operation, still pending.
async fn assert_locked<'a>(
    server: &TestServer,
    device: &'a TestDevice,
    owned: &Owned,
    passcode: &[u8],
) -> Recovery<'a> {
    let recovery = Recovery::start(device, owned).await;
    let (_, round1) = recovery.begin(owned, passcode);
    server
        .assert_refused_unchanged_for(
            device.exchange_call(&recovery.op, 1, &round1),
            ErrorCode::FailedPrecondition,
            Some(reason::PASSCODE_LOCKED),
        )
        .await;
    recovery
}

/// A recovery attempt with the wrong passcode, abandoned after round 2 as an honest device
/// does (its OPAQUE finish fails on the device): counted at round 1.
async fn wrong_attempt(device: &TestDevice, owned: &Owned) {
    let recovery = Recovery::start(device, owned).await;
    let (mut started, round1) = recovery.begin(owned, WRONG);
    let round2 = recovery.round1(&round1).await;
    assert!(started.login(&round2, WRONG).is_err());
}

/// A recovery attempt with a forged finalization (the right login's, one bit off): the server
/// finds the passcode wrong at round 3 and ends the operation with WRONG_PASSCODE.
async fn forged_attempt(device: &TestDevice, owned: &Owned) {
    let recovery = Recovery::start(device, owned).await;
    let (mut started, round1) = recovery.begin(owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    let (round3, _) = started.login(&round2, PASSCODE).unwrap();
    let mut forged = RecoveryRound3::decode(&round3).unwrap();
    forged.credential_finalization = flip(&forged.credential_finalization, 5);
    let forged = forged.encode().unwrap();
    let refused = device.exchange(&recovery.op, 3, &forged).await;
    refused.assert_error(ErrorCode::PermissionDenied, Some(reason::WRONG_PASSCODE));
    // Told again to a repeat, and the operation is over.
    device
        .exchange(&recovery.op, 3, &forged)
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(reason::WRONG_PASSCODE));
    let error = device
        .assert_failed(&recovery.operation, ErrorCode::PermissionDenied)
        .await;
    assert_eq!(error.reason.as_deref(), Some(reason::WRONG_PASSCODE));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovered_device_signs_for_the_wallet_and_the_revoked_old_one_cannot() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let group = owned.group();
    let address = owned
        .owner
        .generate_address(&owned.wallet.wallet.name, None)
        .await;
    let new = server.device().await;
    // Not a device of the group yet: its events and the group are not its to read.
    new.client
        .get(format!("/v1/{group}/events"))
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, None);

    let pairing = recover(&new, &owned).await;
    assert_eq!(pairing.epoch(), 1);
    assert_eq!(
        pairing.public().root_public_key,
        owned.wallet.pairing.public().root_public_key
    );
    assert_ne!(pairing.public().id, owned.wallet.pairing.public().id);
    assert_eq!(recovery_count(&server, group).await, ["0|0"]);
    let stored = server
        .db_query(
            "SELECT state || '|' || epoch || '|' || hex(pairing_id) FROM pairings WHERE device = ?",
            &[&new.name.to_string()],
        )
        .await;
    assert_eq!(
        stored,
        [format!(
            "CONFIRMED|1|{}",
            hex::encode_upper(pairing.public().id)
        )]
    );
    // A member now: the group lists it, and its archive is queued (the default pool exports).
    let seen = new.get_device_group(group).await;
    assert!(seen.devices.contains(&new.name), "{seen:?}");
    new.queued_archive(group, &pairing).await;

    // It signs for the wallet's address through the ordinary signing operation.
    let key = &address.mpc_keys[0];
    let digest = sha256(b"signed by the recovered device");
    let signed = new.sign(&pairing, key, &digest).await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);

    // An API key's signature needs the group's one active device: two now, so it is refused.
    let api_signature = |digest: [u8; 32]| {
        let api = server.api_key();
        async move {
            api.client
                .post(format!("/v1/{key}/signatures"))
                .json(&waas_api::resources::CreateSignatureRequest {
                    payload: Some(format!("0x{}", hex::encode(digest))),
                    typed_payload: None,
                    request_id: None,
                })
                .send()
                .await
        }
    };
    api_signature(sha256(b"by the api key"))
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);

    // The lost device is revoked (by the new one, with a fresh login as the step-up): it signs
    // nothing any more.
    revoke_with_step_up(&new, group, &owned.owner).await;
    owned
        .owner
        .create_signature_call(key, &digest, None)
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(DEVICE_REVOKED));
    let again = new.sign(&pairing, key, &sha256(b"and again")).await;
    assert!(again.operation.done);
    // The revoked device no longer counts: an API key's signature goes to the recovered one.
    let operation: waas_api::resources::Operation =
        api_signature(sha256(b"by the api key")).await.ok();
    let listed = new.list_mpc_operations(group).await;
    assert!(
        listed.iter().any(|entry| operation.metadata
            == waas_api::resources::OperationMetadata::CreateSignature {
                mpc_key: key.clone(),
                mpc_operation: entry.name.clone(),
            }),
        "{listed:?}"
    );

    // What the wallet shows: who was added (by which operation), who was revoked, and each
    // device's state; the same for an API key.
    let expected = vec![
        (
            DeviceGroupEventType::DeviceAdded,
            format!(
                "{} {}",
                new.name,
                Recovery::operation_of(&server, &new).await
            ),
        ),
        (
            DeviceGroupEventType::DeviceRevoked,
            owned.owner.name.to_string(),
        ),
    ];
    assert_eq!(events(&new.client, group).await, expected);
    assert_eq!(events(&server.api_key().client, group).await, expected);
    let mut states = vec![
        GroupDeviceState {
            device: new.name.clone(),
            state: DeviceState::Active,
        },
        GroupDeviceState {
            device: owned.owner.name.clone(),
            state: DeviceState::Revoked,
        },
    ];
    states.sort_by_key(|a| a.device.to_string());
    assert_eq!(new.get_device_group(group).await.device_states, states);
    // A second revocation records nothing more.
    let _: waas_api::resources::Device = server
        .api_key()
        .client
        .post("/v1/device:revoke")
        .json(&RevokeDeviceRequest {
            name: owned.owner.name.clone(),
            login: None,
        })
        .ok()
        .await;
    assert_eq!(events(&new.client, group).await, expected);
}

impl Recovery<'_> {
    /// The AddDevice operation that added `device` (the only one it has).
    async fn operation_of(server: &TestServer, device: &TestDevice) -> String {
        let ids = server
            .db_query(
                "SELECT id FROM operations WHERE device = ? AND kind = 'ADD_DEVICE'",
                &[&device.name.to_string()],
            )
            .await;
        assert_eq!(ids.len(), 1, "{ids:?}");
        format!("operations/{}", ids[0])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strangers_partial_is_refused_and_counts_nothing() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let thief = server.device().await;
    let recovery = Recovery::start(&thief, &owned).await;
    let string = owned.made.read();
    let context = string.context();
    let r_s = ciphertext_ephemeral(&recovery.server_half).unwrap();
    let (_, credential_request) = ClientLogin::start(PASSCODE).unwrap();
    let with = |partial: Vec<u8>| {
        RecoveryRound1 {
            server_half_partial: partial,
            credential_request: credential_request.clone(),
        }
        .encode()
        .unwrap()
    };
    let partial = |share: &DecryptionShare, r: &[u8; 33], used: PartialUse<'_>| {
        share
            .partial(r, Half::Server, &context, Role::Device, used)
            .unwrap()
    };
    let ours = recovery.context();
    let backup_half = string.decryption_share().unwrap();
    // A decryption half that is not the backup's (a string made up, or another wallet's).
    let stranger = partial(
        &DecryptionShare::generate().unwrap(),
        &r_s,
        PartialUse::Recovery(&ours),
    );
    // The backup's own half, but for another recovery (a replay of someone else's round 1).
    let elsewhere = RecoveryContext {
        operation: &format!("{}/mpcOperations/another", owned.group()),
        device: &recovery.names.1,
    };
    let replayed = partial(&backup_half, &r_s, PartialUse::Recovery(&elsewhere));
    // The backup's half on ct_x's R, or its dry-run partial.
    let r_x = ciphertext_ephemeral(&recovery.device_half).unwrap();
    let on_ct_x = partial(&backup_half, &r_x, PartialUse::Recovery(&ours));
    let dry_run = partial(&backup_half, &r_s, PartialUse::DryRun);
    for message in [
        with(stranger),
        with(replayed),
        with(on_ct_x),
        with(dry_run),
        with(vec![0; 40]),
        b"not a round 1".to_vec(),
    ] {
        server
            .assert_refused_unchanged(
                thief.exchange_call(&recovery.op, 1, &message),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    assert!(recovery_count(&server, owned.group()).await.is_empty());
    // The honest round 1 is counted (once), and the operation goes on from there.
    let (started, round1) = recovery.begin(&owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    assert_eq!(recovery_count(&server, owned.group()).await, ["1|0"]);
    recovery.finish(started, &round2).await;
    assert_eq!(recovery_count(&server, owned.group()).await, ["0|0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_failed_recoveries_lock_it_until_the_operator_unlocks_it() {
    let server = TestServer::start_with(&["--passcode-backoff", "0"]);
    let owned = Owned::new(&server).await;
    let group = owned.group();
    let thief = server.device().await;
    for attempt in 1..=10 {
        if attempt % 3 == 0 {
            forged_attempt(&thief, &owned).await;
        } else {
            wrong_attempt(&thief, &owned).await;
        }
        let locked = u8::from(attempt == 10);
        assert_eq!(
            recovery_count(&server, group).await,
            [format!("{attempt}|{locked}")]
        );
    }
    // The 11th is refused before any OPAQUE work, even with the right passcode, and changes
    // nothing; making the operation is free, and still allowed.
    let recovery = assert_locked(&server, &thief, &owned, PASSCODE).await;
    // The group's devices are not locked out of their own logins by it.
    owned.owner.login(group, PASSCODE).await;

    let (unlocked, said) = server.unlock_recovery(&group.to_string());
    assert!(unlocked, "{said}");
    assert!(
        said.contains("10 failed attempt(s) cleared, lock lifted"),
        "{said}"
    );
    let (_, said) = server.unlock_recovery(&group.to_string());
    assert!(said.contains("0 failed attempt(s) cleared"), "{said}");
    // The same round 1 is now answered, and the recovery completes.
    let (started, round1) = recovery.begin(&owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    recovery.finish(started, &round2).await;
    recovery.assert_added(group).await;
    assert_eq!(recovery_count(&server, group).await, ["0|0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_after_three_failures_and_a_right_passcode_resets_the_count() {
    // The default backoff: 1 s after the third failure.
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let group = owned.group();
    let new = server.device().await;
    for _ in 0..3 {
        wrong_attempt(&new, &owned).await;
    }
    assert_eq!(recovery_count(&server, group).await, ["3|0"]);
    let recovery = Recovery::start(&new, &owned).await;
    let (_, round1) = recovery.begin(&owned, PASSCODE);
    let refused = server
        .assert_refused_unchanged_for(
            new.exchange_call(&recovery.op, 1, &round1),
            ErrorCode::ResourceExhausted,
            Some(reason::PASSCODE_BACKOFF),
        )
        .await;
    assert_eq!(refused.error().retry_after_seconds, Some(1));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // A right passcode whose login MAC is not for this recovery ends the operation and
    // clears nothing.
    let (mut started, round1) = recovery.begin(&owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    assert_eq!(recovery_count(&server, group).await, ["4|0"]);
    let (round3, _) = started.login(&round2, PASSCODE).unwrap();
    let mut forged = RecoveryRound3::decode(&round3).unwrap();
    forged.authorization = flip(&forged.authorization, 0);
    new.exchange(&recovery.op, 3, &forged.encode().unwrap())
        .await
        .assert_error(ErrorCode::Aborted, None);
    new.assert_failed(&recovery.operation, ErrorCode::Aborted)
        .await;
    assert_eq!(recovery_count(&server, group).await, ["4|0"]);

    // A right passcode clears the count at round 3 (before the recovery is even done).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let recovery = Recovery::start(&new, &owned).await;
    let (mut started, round1) = recovery.begin(&owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    assert_eq!(recovery_count(&server, group).await, ["5|0"]);
    let (round3, _) = started.login(&round2, PASSCODE).unwrap();
    new.exchange_ok(&recovery.op, 3, &round3).await;
    assert_eq!(recovery_count(&server, group).await, ["0|0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_survives_a_restart_between_every_two_rounds() {
    let mut server = TestServer::start();
    let owned = Owned::new(&server).await;
    let new = server.device().await;
    let recovery = Recovery::start(&new, &owned).await;
    server.restart();
    let (mut device, round1) = recovery.begin(&owned, PASSCODE);

    // Each round: sent, the server killed, the same round sent again (the stored answer), then
    // the next. No answer is computed twice, nothing is lost.
    let mut send = async |round: u8, message: &[u8]| {
        let first = new.exchange(&recovery.op, round, message).await;
        assert_eq!(first.status, 200, "{first:?}");
        server.restart();
        new.assert_repeat(&recovery.op, round, message, &first, "after a restart")
            .await;
        first.json::<waas_api::resources::ExchangeResponse>()
    };
    let round2 = reply(&send(1, &round1).await, 2);
    let (round3, _) = device.login(&round2, PASSCODE).unwrap();
    let round4 = reply(&send(3, &round3).await, 4);
    let round5 = device.open(&round4).unwrap();
    let round6 = reply(&send(5, &round5).await, 6);
    let round7 = device.refresh(&round6).unwrap().reply.unwrap();
    let round8 = reply(&send(7, &round7).await, 8);
    let pairing = device.refresh(&round8).unwrap().output.unwrap();
    assert!(send(9, &pairing.public().confirmation()).await.done);
    recovery.assert_added(owned.group()).await;

    // The pairing the server kept through all that signs with the device's.
    let address = new.generate_address(&owned.wallet.wallet.name, None).await;
    let digest = sha256(b"after the restarts");
    let signed = new.sign(&pairing, &address.mpc_keys[0], &digest).await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
}

#[tokio::test(flavor = "multi_thread")]
async fn add_device_is_refused_for_members_other_groups_backups_and_other_callers() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let group = owned.group();
    let backup = owned.made.backup.as_str();
    let new = server.device().await;
    let api = server.api_key();

    // A device of the group already.
    let refused = server
        .assert_refused_unchanged(
            add_device_call(&owned.owner.client, group, &owned.owner, backup),
            ErrorCode::FailedPrecondition,
        )
        .await;
    assert!(
        refused
            .error()
            .message
            .contains("already a device of the group"),
        "{refused:?}"
    );
    // Another group's backup, and no backup at all: the same NOT_FOUND.
    let other = owned.owner.create_wallet(&default_pool()).await;
    for backup in [
        backup.to_owned(),
        format!("{group}/mpcOperations/none"),
        format!("{}/mpcOperations/none", other.device_group),
    ] {
        server
            .assert_refused_unchanged(
                add_device_call(&new.client, &other.device_group, &new, &backup),
                ErrorCode::NotFound,
            )
            .await;
    }
    server
        .assert_refused_unchanged(
            add_device_call(
                &new.client,
                group,
                &new,
                &format!("{group}/mpcOperations/none"),
            ),
            ErrorCode::NotFound,
        )
        .await;
    // A group that does not exist and one whose key generation has not finished: one
    // NOT_FOUND for a device not in them.
    let creating = match owned
        .owner
        .create_wallet_operation(&default_pool(), None)
        .await
        .metadata
    {
        OperationMetadata::CreateMpcWallet { device_group, .. } => device_group,
        other => panic!("not a wallet: {other:?}"),
    };
    let missing: DeviceGroupName = format!("{}/deviceGroups/none", default_pool())
        .parse()
        .unwrap();
    let mut said = Vec::new();
    for group in [&missing, &creating] {
        let refused = server
            .assert_refused_unchanged(
                add_device_call(&new.client, group, &new, backup),
                ErrorCode::NotFound,
            )
            .await;
        said.push(refused.error().message.replace(&group.to_string(), "G"));
    }
    assert_eq!(said[0], said[1]);
    // Another device may not ask for it; a body that is not a request is refused.
    let stranger = server.device().await;
    server
        .assert_refused_unchanged(
            add_device_call(&stranger.client, group, &new, backup),
            ErrorCode::PermissionDenied,
        )
        .await;
    server
        .assert_refused_unchanged(
            new.client
                .post(format!("/v1/{group}:addDevice"))
                .json(&serde_json::json!({"device": new.name})),
            ErrorCode::InvalidArgument,
        )
        .await;
    // A revoked device, asked for by an API key.
    let revoked = server.device().await;
    let _: waas_api::resources::Device = api
        .client
        .post("/v1/device:revoke")
        .json(&RevokeDeviceRequest {
            name: revoked.name.clone(),
            login: None,
        })
        .ok()
        .await;
    server
        .assert_refused_unchanged(
            add_device_call(&api.client, group, &revoked, backup),
            ErrorCode::FailedPrecondition,
        )
        .await;

    // An API key may ask for any device; the device's pending one is returned again.
    let by_key: Operation = add_device_call(&api.client, group, &new, backup).ok().await;
    let again: Operation = add_device_call(&new.client, group, &new, backup).ok().await;
    assert_eq!(by_key.name, again.name);
    // Its own device reads it, though it is no device of the group.
    assert_eq!(new.get_operation(&by_key.name).await.name, by_key.name);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_confirmation_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let new = server.device().await;
    let (recovery, pairing) = Recovery::pending(&server, &new, &owned).await;
    let confirmation = pairing.public().confirmation();
    for message in [
        flip(&confirmation, 0),
        owned.wallet.pairing.public().confirmation().to_vec(),
        confirmation[..31].to_vec(),
        Vec::new(),
    ] {
        server
            .assert_refused_unchanged(
                new.exchange_call(&recovery.op, 9, &message),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    assert!(!owned.has_device(&new).await);
    assert!(new.exchange_ok(&recovery.op, 9, &confirmation).await.done);
    recovery.assert_added(owned.group()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_recovery_expires_and_leaves_no_pairing() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let new = server.device().await;
    let (recovery, pairing) = Recovery::pending(&server, &new, &owned).await;
    // Idle past the session limit: the operation fails, and the pending pairing goes with it
    // (its epoch is 1, not the operation's, which is the backup's).
    server
        .db_execute(
            "UPDATE operations SET update_time_ms = update_time_ms - 700000 WHERE id = ?",
            &[recovery.operation.operation().as_str()],
        )
        .await;
    new.exchange(&recovery.op, 9, &pairing.public().confirmation())
        .await
        .assert_error(ErrorCode::Aborted, None);
    assert!(pairing_states(&server, &new).await.is_empty());
    assert!(!owned.has_device(&new).await);
    // A new recovery of the same device starts over and completes.
    recover(&new, &owned).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_thiefs_string_locks_only_itself_and_a_reset_retires_it() {
    let server = TestServer::start_with(&["--passcode-backoff", "0"]);
    let mut owned = Owned::new(&server).await;
    let group = owned.group().clone();
    let owners = owned.made.backup.clone();
    // The owner's second device, recovered with the owner's backup.
    let second = server.device().await;
    recover(&second, &owned).await;
    // A thief steals the first device, knows the passcode, and makes a backup of his own.
    let thiefs = made_backup(&owned.owner, &owned.wallet).await;
    assert_eq!(
        replaced_by(&server, &owners).await,
        [thiefs.backup.as_str()]
    );
    // The owner revokes the stolen device (which brings the owner's backup back), then resets
    // the passcode from the second device: the reset retires every current backup the revoked
    // device made, replaced by the reset's login. The thief's string, and the owner's too (it
    // was made on the stolen device: the server cannot tell them apart), are kept for the
    // retention only; the owner makes a new backup on a device of the group.
    revoke_with_step_up(&second, &group, &owned.owner).await;
    assert_eq!(replaced_by(&server, &owners).await, ["current"]);
    assert_eq!(replaced_by(&server, &thiefs.backup).await, ["current"]);
    const NEW: &[u8] = b"654321";
    let login = second.login(&group, PASSCODE).await;
    assert_eq!(second.reset_passcode(&group, &login, NEW).await, 2);
    owned.passcode = NEW;
    for backup in [&thiefs.backup, &owners] {
        assert_eq!(replaced_by(&server, backup).await, [login.name.to_string()]);
    }

    // Within the retention the thief's string still opens an AddDevice: ten guesses of the new
    // passcode, counted on his backup only, then it is locked.
    let owners_made = std::mem::replace(&mut owned.made, thiefs);
    let thief = server.device().await;
    for attempt in 1..=10 {
        wrong_attempt(&thief, &owned).await;
        let locked = u8::from(attempt == 10);
        assert_eq!(
            backup_count(&server, &owned.made.backup).await,
            [format!("{attempt}|{locked}")]
        );
    }
    assert_locked(&server, &thief, &owned, NEW).await;
    // The owner's backup is not locked by it: within the retention it recovers a third device
    // with the new passcode.
    let thiefs = std::mem::replace(&mut owned.made, owners_made);
    // (Its count is the one the second device's recovery left: cleared by the right passcode.)
    assert_eq!(backup_count(&server, &owners).await, ["0|0"]);
    let third = server.device().await;
    recover(&third, &owned).await;
    assert_eq!(backup_count(&server, &owners).await, ["0|0"]);
    assert_eq!(backup_count(&server, &thiefs.backup).await, ["10|1"]);

    // The operator unlocks one backup only.
    let (unlocked, said) = server.unlock_recovery_backup(&group.to_string(), &thiefs.backup);
    assert!(unlocked, "{said}");
    let cleared = format!(
        "{}: 10 failed attempt(s) cleared, lock lifted",
        thiefs.backup
    );
    assert!(said.contains(&cleared), "{said}");
    assert_eq!(backup_count(&server, &thiefs.backup).await, ["0|0"]);
    // Past the retention the thief's string opens nothing.
    server
        .db_execute(
            "UPDATE backups SET replaced_time_ms = replaced_time_ms - 8 * 86400000 WHERE backup = ?",
            &[thiefs.backup.as_str()],
        )
        .await;
    let late = server.device().await;
    server
        .assert_refused_unchanged(
            add_device_call(&late.client, &group, &late, &thiefs.backup),
            ErrorCode::NotFound,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_recovery_deletes_only_its_own_pending_pairing() {
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let new = server.device().await;
    // A first AddDevice of the device, abandoned after round 1.
    let first = Recovery::start(&new, &owned).await;
    let (_, round1) = first.begin(&owned, PASSCODE);
    first.round1(&round1).await;
    // A second one (the first is running: a new operation) reaches round 8.
    let (second, pairing) = Recovery::pending(&server, &new, &owned).await;
    assert_ne!(first.operation, second.operation);
    // The first expires (idle past the session limit; a request on it runs the expiry).
    server
        .db_execute(
            "UPDATE operations SET update_time_ms = update_time_ms - 700000 WHERE id = ?",
            &[first.operation.operation().as_str()],
        )
        .await;
    new.exchange(&first.op, 3, b"late")
        .await
        .assert_error(ErrorCode::Aborted, None);
    new.assert_failed(&first.operation, ErrorCode::Aborted)
        .await;
    // The second's pending pairing is its own: kept, and its round 9 adds the device.
    assert_eq!(pairing_states(&server, &new).await, ["PENDING"]);
    assert!(
        new.exchange_ok(&second.op, 9, &pairing.public().confirmation())
            .await
            .done
    );
    second.assert_added(owned.group()).await;
}

/// A recovery of `device` run up to and including round `last` (1, 3, 5 or 7) with the group's
/// passcode; returns it and the device's message for the next round.
async fn recovery_through<'a>(
    device: &'a TestDevice,
    owned: &Owned,
    last: u8,
) -> (Recovery<'a>, Vec<u8>) {
    let recovery = Recovery::start(device, owned).await;
    let (mut started, round1) = recovery.begin(owned, owned.passcode);
    let round2 = recovery.round1(&round1).await;
    let (mut next, _) = started.login(&round2, owned.passcode).unwrap();
    if last >= 3 {
        let round4 = reply(&device.exchange_ok(&recovery.op, 3, &next).await, 4);
        next = started.open(&round4).unwrap();
    }
    if last >= 5 {
        let round6 = reply(&device.exchange_ok(&recovery.op, 5, &next).await, 6);
        next = started.refresh(&round6).unwrap().reply.unwrap();
    }
    if last >= 7 {
        let round8 = reply(&device.exchange_ok(&recovery.op, 7, &next).await, 8);
        let pairing = started.refresh(&round8).unwrap().output.unwrap();
        next = pairing.public().confirmation().to_vec();
    }
    (recovery, next)
}

/// The recovery's operation failed with ABORTED, PASSCODE_CHANGED; the device has no pairing
/// in the group and is no device of it.
async fn assert_ended_by_the_reset(server: &TestServer, owned: &Owned, recovery: &Recovery<'_>) {
    let error = recovery
        .device
        .assert_failed(&recovery.operation, ErrorCode::Aborted)
        .await;
    assert_eq!(error.reason.as_deref(), Some(reason::PASSCODE_CHANGED));
    assert!(pairing_states(server, recovery.device).await.is_empty());
    assert!(!owned.has_device(recovery.device).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passcode_reset_ends_the_recoveries_in_flight() {
    let server = TestServer::start();
    let mut owned = Owned::new(&server).await;
    let group = owned.group().clone();
    let new = server.device().await;
    for (last, passcode) in [(1, b"111111"), (3, b"333333"), (7, b"777777")] {
        let (recovery, next) = recovery_through(&new, &owned, last).await;
        if last == 7 {
            assert_eq!(pairing_states(&server, &new).await, ["PENDING"]);
        }
        // The owner resets the passcode: the reset's own transaction ends the recovery, with
        // the pending pairing it made.
        let login = owned.owner.login(&group, owned.passcode).await;
        owned.owner.reset_passcode(&group, &login, passcode).await;
        owned.passcode = passcode;
        assert_ended_by_the_reset(&server, &owned, &recovery).await;
        // Its next round is refused and changes nothing.
        server
            .assert_refused_unchanged(
                new.exchange_call(&recovery.op, last + 2, &next),
                ErrorCode::FailedPrecondition,
            )
            .await;
    }
    // A new recovery with the new passcode completes.
    recover(&new, &owned).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_changed_behind_a_recovery_ends_it_at_its_next_round() {
    // The record's version moves without the reset's transaction (as if its failing of the
    // recoveries had been skipped): rounds 3, 5 and 9 each check the version themselves.
    let server = TestServer::start();
    let owned = Owned::new(&server).await;
    let group = owned.group().to_string();
    let new = server.device().await;
    for last in [1, 3, 7] {
        let (recovery, next) = recovery_through(&new, &owned, last).await;
        let counted = backup_count(&server, &owned.made.backup).await;
        server
            .db_execute(
                "UPDATE passcode_records SET version = version + 1 WHERE device_group = ?",
                &[&group],
            )
            .await;
        new.exchange(&recovery.op, last + 2, &next)
            .await
            .assert_error(ErrorCode::Aborted, Some(reason::PASSCODE_CHANGED));
        assert_ended_by_the_reset(&server, &owned, &recovery).await;
        // A round 3 refused so clears nothing: the count stays as round 1 left it.
        assert_eq!(backup_count(&server, &owned.made.backup).await, counted);
        server
            .db_execute(
                "UPDATE passcode_records SET version = version - 1 WHERE device_group = ?",
                &[&group],
            )
            .await;
    }
}

/// Nine failed recoveries of the owned backup (the server runs without backoff).
async fn nine_failures(server: &TestServer, owned: &Owned) {
    let thief = server.device().await;
    for _ in 0..9 {
        wrong_attempt(&thief, owned).await;
    }
    assert_eq!(backup_count(server, &owned.made.backup).await, ["9|0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_tenth_attempts_are_counted_once_and_only_one_is_answered() {
    let server = TestServer::start_with(&["--passcode-backoff", "0"]);
    let owned = Owned::new(&server).await;
    nine_failures(&server, &owned).await;
    // Five round 1s at once, of five devices: each passes the check on 9 failures; the commit
    // re-checks that the attempts are still the ones checked, so one is counted and answered.
    let mut devices = Vec::new();
    for _ in 0..5 {
        devices.push(server.device().await);
    }
    let mut sent = Vec::new();
    for device in &devices {
        let recovery = Recovery::start(device, &owned).await;
        let (_, round1) = recovery.begin(&owned, WRONG);
        sent.push((recovery, round1));
    }
    let call = |i: usize| sent[i].0.device.exchange(&sent[i].0.op, 1, &sent[i].1);
    let (a, b, c, d, e) = tokio::join!(call(0), call(1), call(2), call(3), call(4));
    let answers = [a, b, c, d, e];
    let answered = answers.iter().filter(|raw| raw.status == 200).count();
    assert_eq!(answered, 1, "{answers:#?}");
    for raw in answers.iter().filter(|raw| raw.status != 200) {
        raw.assert_error(ErrorCode::FailedPrecondition, Some(reason::PASSCODE_LOCKED));
    }
    assert_eq!(backup_count(&server, &owned.made.backup).await, ["10|1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_right_passcode_at_the_tenth_attempt_recovers_but_leaves_the_lock() {
    let server = TestServer::start_with(&["--passcode-backoff", "0"]);
    let owned = Owned::new(&server).await;
    nine_failures(&server, &owned).await;
    // The 10th attempt is answered (9 < 10) and counted: the backup is locked.
    let new = server.device().await;
    let recovery = Recovery::start(&new, &owned).await;
    let (started, round1) = recovery.begin(&owned, PASSCODE);
    let round2 = recovery.round1(&round1).await;
    assert_eq!(backup_count(&server, &owned.made.backup).await, ["10|1"]);
    // Its right passcode recovers the device, but clears nothing at the lock: only the
    // operator lifts it.
    recovery.finish(started, &round2).await;
    recovery.assert_added(owned.group()).await;
    assert_eq!(backup_count(&server, &owned.made.backup).await, ["10|1"]);
    let other = server.device().await;
    assert_locked(&server, &other, &owned, PASSCODE).await;
}
