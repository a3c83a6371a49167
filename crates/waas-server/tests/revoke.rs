//! RevokeDevice (docs/protocol/revoke.md), against a real server process: who may revoke (the
//! device itself, an API key, another device of one of its groups with a fresh passcode login),
//! and what a revocation does (the device's requests refused, its operations failed, the server's
//! halves of its pairings deleted, its logins revoked), once or again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::auth::reason::DEVICE_REVOKED;
use waas_api::passcode::reason::LOGIN_INVALID;
use waas_api::resources::{Device, DeviceState};
use waas_api::{DeviceName, ErrorCode, PasscodeLoginName};

use support::{PASSCODE, TestDevice, TestServer, revoke_call};

/// How many of the server's pairing halves `device` has.
async fn pairings_of(server: &TestServer, device: &TestDevice) -> Vec<String> {
    server
        .db_query(
            "SELECT CAST(COUNT(*) AS TEXT) FROM pairings WHERE device = ?",
            &[&device.name.to_string()],
        )
        .await
}

/// The stored state of a login.
async fn login_state(server: &TestServer, login: &PasscodeLoginName) -> Vec<String> {
    server
        .db_query(
            "SELECT state FROM passcode_logins WHERE id = ?",
            &[login.login().as_str()],
        )
        .await
}

/// Every request of a revoked device is refused with DEVICE_REVOKED.
async fn assert_refused_as_revoked(device: &TestDevice) {
    device
        .client
        .get(format!("/v1/{}", device.name))
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(DEVICE_REVOKED));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_revokes_itself_and_everything_it_had_at_the_server_goes() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    // Before: a signing in flight (round 1 answered), another one pending, an unused login.
    let mut in_flight = device.begin_signing(&wallet.pairing, key, &[1; 32]).await;
    let round3 = in_flight.send_round1(&device, &wallet.pairing).await;
    let pending = device.create_signature_operation(key, &[2; 32], None).await;
    let login = device.login(group, PASSCODE).await;
    assert_eq!(pairings_of(&server, &device).await, ["1"]);

    let revoked: Device = revoke_call(&device.client, &device.name, None).ok().await;
    assert_eq!(revoked.name, device.name);
    assert_eq!(revoked.state, DeviceState::Revoked);

    // Its requests are refused, the round in flight too; and it cannot revoke itself again
    // (it is told it is revoked).
    assert_refused_as_revoked(&device).await;
    device
        .exchange(&in_flight.op, 3, &round3)
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(DEVICE_REVOKED));
    revoke_call(&device.client, &device.name, None)
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(DEVICE_REVOKED));

    // Its operations failed (the app sees why), the server's half of its pairing is gone, its
    // login is revoked, and no signing can be created on that pairing any more.
    let api = server.api_key();
    for operation in [&in_flight.operation.name, &pending.name] {
        let failed = api.get_operation(operation).await;
        assert!(failed.done && failed.response.is_none(), "{failed:?}");
        let error = failed.error.unwrap();
        assert_eq!(error.code, ErrorCode::Aborted, "{error:?}");
        assert_eq!(error.reason.as_deref(), Some(DEVICE_REVOKED), "{error:?}");
    }
    assert_eq!(pairings_of(&server, &device).await, ["0"]);
    assert_eq!(login_state(&server, &login.name).await, ["REVOKED"]);
    api.client
        .post(format!("/v1/{key}/signatures"))
        .json(&serde_json::json!({"payload": format!("0x{}", "03".repeat(32))}))
        .send()
        .await
        .assert_error(ErrorCode::FailedPrecondition, None);

    // Revoking it again answers the same device and changes nothing.
    let again = server.db_dump().await;
    let twice: Device = revoke_call(&api.client, &device.name, None).ok().await;
    assert_eq!(twice, revoked);
    assert_eq!(again, server.db_dump().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_revokes_any_device_and_is_told_of_unknown_ones() {
    let server = TestServer::start();
    let api = server.api_key();
    let (device, wallet) = server.device_with_passcode().await;

    // A login is a device's step-up: an API key sends none.
    let login = device.login(&wallet.device_group, PASSCODE).await;
    server
        .assert_refused_unchanged(
            revoke_call(&api.client, &device.name, Some(&login.name)),
            ErrorCode::InvalidArgument,
        )
        .await;
    let unknown: DeviceName = "devices/00000000000000000000000000000000".parse().unwrap();
    server
        .assert_refused_unchanged(
            revoke_call(&api.client, &unknown, None),
            ErrorCode::NotFound,
        )
        .await;

    let revoked: Device = revoke_call(&api.client, &device.name, None).ok().await;
    assert_eq!(revoked.state, DeviceState::Revoked);
    assert_refused_as_revoked(&device).await;
    assert_eq!(pairings_of(&server, &device).await, ["0"]);
    // The device's archive operation (queued at key generation) failed with it.
    let pending = server
        .db_query(
            "SELECT state FROM operations WHERE device = ? AND state IN ('PENDING', 'RUNNING')",
            &[&device.name.to_string()],
        )
        .await;
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_device_needs_a_fresh_login_of_a_group_they_share() {
    let server = TestServer::start();
    let (alice, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    // Bob joins alice's group, as AddDevice will.
    let bob = server.device().await;
    server.join_group(group, &bob).await;
    // Carol has a wallet of her own, and a good login of it.
    let (carol, carols_wallet) = server.device_with_passcode().await;
    let carols = carol.login(&carols_wallet.device_group, PASSCODE).await;
    let unknown: DeviceName = "devices/00000000000000000000000000000000".parse().unwrap();

    // Without a step-up, or with a login of a group alice is not in, or for a device that does
    // not exist: one refusal, the same message, and nothing changes (carol's login stays unused).
    let mut messages = Vec::new();
    for call in [
        revoke_call(&bob.client, &alice.name, None),
        revoke_call(&carol.client, &alice.name, None),
        revoke_call(&carol.client, &alice.name, Some(&carols.name)),
        revoke_call(&carol.client, &unknown, Some(&carols.name)),
        revoke_call(&bob.client, &unknown, None),
    ] {
        let refused = server
            .assert_refused_unchanged(call, ErrorCode::PermissionDenied)
            .await;
        messages.push(refused.error().message);
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(login_state(&server, &carols.name).await, ["FINISHED"]);

    // Someone else's login is no step-up: alice's, used by bob.
    let alices = alice.login(group, PASSCODE).await;
    server
        .assert_refused_unchanged_for(
            revoke_call(&bob.client, &alice.name, Some(&alices.name)),
            ErrorCode::InvalidArgument,
            Some(LOGIN_INVALID),
        )
        .await;

    // Bob's own fresh login of the group: alice is revoked, the login used up.
    let bobs = bob.login(group, PASSCODE).await;
    let revoked: Device = revoke_call(&bob.client, &alice.name, Some(&bobs.name))
        .ok()
        .await;
    assert_eq!(revoked.state, DeviceState::Revoked);
    assert_eq!(login_state(&server, &bobs.name).await, ["USED"]);
    assert_eq!(login_state(&server, &alices.name).await, ["REVOKED"]);
    assert_refused_as_revoked(&alice).await;
    assert_eq!(pairings_of(&server, &alice).await, ["0"]);

    // The login bought one revocation: used again, even for the same device, it is refused.
    server
        .assert_refused_unchanged_for(
            revoke_call(&bob.client, &alice.name, Some(&bobs.name)),
            ErrorCode::InvalidArgument,
            Some(LOGIN_INVALID),
        )
        .await;
    // Bob is unharmed.
    assert_eq!(bob.get_device().await.state, DeviceState::Active);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_racing_the_revocation_either_completes_before_it_or_is_refused() {
    let server = TestServer::start();
    let api = server.api_key();
    for attempt in 0..4 {
        let device = server.device().await;
        let (wallet, address) = device.create_wallet_and_address().await;
        let key = &address.mpc_keys[0];
        let mut signing = device.begin_signing(&wallet.pairing, key, &[7; 32]).await;
        let round3 = signing.send_round1(&device, &wallet.pairing).await;

        // Round 3 (the one that makes the signature) and the revocation, sent at once.
        let (exchanged, revoked) = tokio::join!(
            device.exchange(&signing.op, 3, &round3),
            revoke_call(&api.client, &device.name, None).send(),
        );
        assert_eq!(revoked.ok::<Device>().state, DeviceState::Revoked);
        let operation = api.get_operation(&signing.operation.name).await;
        assert!(operation.done, "{operation:?}");
        if exchanged.status == 200 {
            // Completed before the revocation: the signature stands.
            assert!(
                operation.response.is_some(),
                "attempt {attempt}: {operation:?}"
            );
        } else {
            // After it: refused, nothing of the round written.
            exchanged.assert_error(ErrorCode::PermissionDenied, Some(DEVICE_REVOKED));
            assert!(
                operation.response.is_none(),
                "attempt {attempt}: {operation:?}"
            );
            let error = operation.error.unwrap();
            assert_eq!(error.reason.as_deref(), Some(DEVICE_REVOKED), "{error:?}");
        }
        assert_eq!(pairings_of(&server, &device).await, ["0"]);
    }
}
