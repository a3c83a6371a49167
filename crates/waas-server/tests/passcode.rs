//! The passcode at the server (docs/protocol/passcode.md), against a real server process: OPAQUE
//! registration, login and reset; failures counted before the answer, the backoff, the lock and
//! the operator's unlock; who may use a group's passcode; logins good once, for five minutes, for
//! their own device and group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::passcode::{
    PasscodeRegisterFinishResponse, PasscodeRegisterStartResponse, purpose, reason,
};
use waas_api::{DeviceGroupName, ErrorCode, PasscodeLoginName};
use waas_mpc::passcode::{ClientLogin, PasscodeError};

use support::passcode::StartedLogin;
use support::{PASSCODE, TestDevice, TestServer, Wallet, b64, default_pool, flip};

/// A device's failed attempts in a group as stored, `failures|locked`, or `none`.
async fn attempts(server: &TestServer, group: &DeviceGroupName, device: &TestDevice) -> String {
    let rows = server
        .db_query(
            "SELECT failures || '|' || CAST(locked AS INTEGER) FROM passcode_attempts
             WHERE device_group = ? AND device = ?",
            &[&group.to_string(), &device.name.to_string()],
        )
        .await;
    rows.into_iter().next().unwrap_or_else(|| "none".into())
}

/// Lets any backoff pass, as if the device waited: its last attempt moves back a day.
async fn wait_out_backoff(server: &TestServer, group: &DeviceGroupName, device: &TestDevice) {
    server
        .db_execute(
            "UPDATE passcode_attempts SET last_attempt_ms = last_attempt_ms - 86400000
             WHERE device_group = ? AND device = ?",
            &[&group.to_string(), &device.name.to_string()],
        )
        .await;
}

/// Moves a login's times back by `ms` (its start and, if it finished, its finish).
async fn age_login(server: &TestServer, login: &PasscodeLoginName, ms: i64) {
    let changed = server
        .db_execute(
            "UPDATE passcode_logins SET create_time_ms = create_time_ms - ?,
                 finish_time_ms = finish_time_ms - ? WHERE id = ?",
            &[&ms.to_string(), &ms.to_string(), login.login().as_str()],
        )
        .await;
    assert_eq!(changed, 1);
}

/// `call` is refused as LOGIN_INVALID, and nothing changes.
async fn assert_login_invalid(server: &TestServer, call: support::Call<'_>) {
    let code = ErrorCode::InvalidArgument;
    server
        .assert_refused_unchanged_for(call, code, Some(reason::LOGIN_INVALID))
        .await;
}

/// A reset's registerStart by `device` in `group`, authorized by `login`: refused as
/// LOGIN_INVALID, and nothing changes.
async fn assert_reset_refused(
    server: &TestServer,
    device: &TestDevice,
    group: &DeviceGroupName,
    login: &support::Login,
) {
    let started = device.start_registration(b"246810");
    let reset = login.reset(purpose::RESET_START, &started.request);
    let call = device.register_start_call(group, &started.request, Some(reset));
    assert_login_invalid(server, call).await;
}

/// loginFinish of `login` with `finalization` by `device`: refused as LOGIN_INVALID, and
/// nothing changes.
async fn assert_finish_refused(
    server: &TestServer,
    device: &TestDevice,
    group: &DeviceGroupName,
    login: &PasscodeLoginName,
    finalization: &[u8],
) {
    let call = device.login_finish_call(group, login, finalization);
    assert_login_invalid(server, call).await;
}

/// loginStart by `device` in `group`: refused as `code` (with `reason`, if given), and nothing
/// changes (in particular, nothing is counted). Returns the answer.
async fn assert_login_start_refused(
    server: &TestServer,
    device: &TestDevice,
    group: &DeviceGroupName,
    code: ErrorCode,
    reason: Option<&str>,
) -> support::Raw {
    let (_, request) = ClientLogin::start(PASSCODE).unwrap();
    let call = device.login_start_call(group, &request);
    server
        .assert_refused_unchanged_for(call, code, reason)
        .await
}

/// A device with a wallet in the default pool and the group's passcode registered.
async fn wallet_with_passcode(server: &TestServer) -> (TestDevice, Wallet) {
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    assert_eq!(
        device
            .register_passcode(&wallet.device_group, PASSCODE)
            .await,
        1
    );
    (device, wallet)
}

/// A login start with the right passcode that the device then abandons: to the server, exactly
/// what a wrong passcode looks like (the device learns it is wrong and sends nothing more).
async fn failed_attempt(device: &TestDevice, group: &DeviceGroupName) -> StartedLogin {
    device.login_start(group, PASSCODE).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_passcode_logs_in_and_wrong_ones_are_counted() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;
    assert_eq!(attempts(&server, group, &device).await, "none");

    // The first registration's OPRF evaluation is counted like a login start.
    assert_eq!(device.register_passcode(group, PASSCODE).await, 1);
    assert_eq!(attempts(&server, group, &device).await, "1|0");
    // The record is stored sealed: the bytes the device uploaded are not in the database.
    let sealed = server
        .db_query(
            "SELECT hex(record_sealed) FROM passcode_records WHERE device_group = ?",
            &[&group.to_string()],
        )
        .await;
    assert_eq!(sealed.len(), 1);

    // A login with the right passcode: both sides get the session; the failures are cleared.
    let login = device.login(group, PASSCODE).await;
    assert_eq!(login.name.device_group_name(), *group);
    assert_eq!(attempts(&server, group, &device).await, "0|0");
    // Its state is gone, its session secret kept sealed for one use.
    let row = server
        .db_query(
            "SELECT state || '|' || quote(state_sealed) || '|' || CAST(session_sealed IS NOT NULL AS INTEGER)
             FROM passcode_logins WHERE id = ?",
            &[login.name.login().as_str()],
        )
        .await;
    assert_eq!(row, ["FINISHED|NULL|1"]);

    // A wrong passcode: the device finds out itself, sends nothing more; the start counted.
    let wrong = device.login_start(group, b"654321").await;
    assert_eq!(
        wrong.finish(group).err(),
        Some(PasscodeError::WrongPasscode)
    );
    assert_eq!(attempts(&server, group, &device).await, "1|0");

    // A forged finalization: refused as a wrong passcode, the login is over, still counted.
    let started = device.login_start(group, PASSCODE).await;
    let (finalization, login) = started.finish(group).unwrap();
    let forged = flip(&finalization, 0);
    device
        .login_finish_call(group, &login.name, &forged)
        .send()
        .await
        .assert_error(ErrorCode::PermissionDenied, Some(reason::WRONG_PASSCODE));
    assert_eq!(attempts(&server, group, &device).await, "2|0");
    assert_finish_refused(&server, &device, group, &login.name, &finalization).await;
    assert_eq!(attempts(&server, group, &device).await, "2|0");

    // A finalization that does not parse changes nothing; the honest one then finishes.
    let started = device.login_start(group, PASSCODE).await;
    let (finalization, login) = started.finish(group).unwrap();
    server
        .assert_refused_unchanged(
            device.login_finish_call(group, &login.name, &finalization[..10]),
            ErrorCode::InvalidArgument,
        )
        .await;
    device
        .login_finish_call(group, &login.name, &finalization)
        .send()
        .await
        .ok::<serde_json::Value>();
    assert_eq!(attempts(&server, group, &device).await, "0|0");
    // A finished login is not finished twice.
    assert_finish_refused(&server, &device, group, &login.name, &finalization).await;
}

/// A server with a long backoff base (30 s, so a refusal is certain; tests play for time with
/// [`wait_out_backoff`]) and a device whose group has its passcode, with no failure counted.
async fn counting_server() -> (TestServer, TestDevice, Wallet) {
    let server = TestServer::start_with(&["--passcode-backoff", "30"]);
    let (device, wallet) = wallet_with_passcode(&server).await;
    device.login(&wallet.device_group, PASSCODE).await;
    (server, device, wallet)
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_after_three_failures_then_the_lock_until_an_operator_unlocks() {
    let (server, device, wallet) = counting_server().await;
    let group = &wallet.device_group;

    for _ in 0..3 {
        failed_attempt(&device, group).await;
    }
    assert_eq!(attempts(&server, group, &device).await, "3|0");
    // The 4th must wait 30 s: refused, with when to come back, and not counted.
    let refused = assert_login_start_refused(
        &server,
        &device,
        group,
        ErrorCode::ResourceExhausted,
        Some(reason::PASSCODE_BACKOFF),
    )
    .await;
    let body = refused.error();
    let retry = body.retry_after_seconds.unwrap();
    assert!((1..=30).contains(&retry), "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some(retry.to_string()));
    // Nor is a registration start a way around it: with a record it needs a reset.
    let started = device.start_registration(PASSCODE);
    device
        .register_start_call(group, &started.request, None)
        .send()
        .await
        .assert_error(ErrorCode::AlreadyExists, None);

    // Waited: the 4th is made; the 5th must wait twice as long.
    wait_out_backoff(&server, group, &device).await;
    failed_attempt(&device, group).await;
    let refused = device.try_login_start(group, PASSCODE).await.0;
    refused.assert_error(ErrorCode::ResourceExhausted, Some(reason::PASSCODE_BACKOFF));
    assert!(
        refused.error().retry_after_seconds.unwrap() > 30,
        "{refused:?}"
    );
    assert_eq!(attempts(&server, group, &device).await, "4|0");

    // Up to the 10th attempt, which is still made (it may be the right passcode)...
    for _ in 4..10 {
        wait_out_backoff(&server, group, &device).await;
        failed_attempt(&device, group).await;
    }
    // ...then locked, whatever the wait and the passcode, and not counted further.
    assert_locked(&server, &device, group).await;

    // The lock is per (group, device): the same device's other wallet is not locked.
    let other = device.create_wallet(&default_pool()).await;
    device
        .register_passcode(&other.device_group, PASSCODE)
        .await;
    device.login(&other.device_group, PASSCODE).await;

    // The operator unlocks it (from another process, while the server runs).
    unlock_and_log_in(&server, &device, group).await;
    let (ok, said) = server.unlock_passcode(&group.to_string(), "devices/nobody");
    assert!(ok && said.contains("nothing to unlock"), "{said}");
}

/// A login's row as stored: `state|reset_version` (`-` for none).
async fn login_row(server: &TestServer, login: &PasscodeLoginName) -> String {
    let rows = server
        .db_query(
            "SELECT state || '|' || ifnull(reset_version, '-') FROM passcode_logins WHERE id = ?",
            &[login.login().as_str()],
        )
        .await;
    rows.into_iter().next().unwrap_or_else(|| "none".into())
}

/// Finishes `started` (the right passcode) with loginFinish, which must succeed.
async fn finish_login(
    device: &TestDevice,
    group: &DeviceGroupName,
    started: StartedLogin,
) -> support::Login {
    let (finalization, login) = started.finish(group).unwrap();
    device
        .login_finish_call(group, &login.name, &finalization)
        .send()
        .await
        .ok::<serde_json::Value>();
    login
}

/// `device` is locked in `group` (10 failures): even after any backoff, its loginStart is
/// refused as `PASSCODE_LOCKED` and not counted.
async fn assert_locked(server: &TestServer, device: &TestDevice, group: &DeviceGroupName) {
    assert_eq!(attempts(server, group, device).await, "10|1");
    wait_out_backoff(server, group, device).await;
    assert_login_start_refused(
        server,
        device,
        group,
        ErrorCode::FailedPrecondition,
        Some(reason::PASSCODE_LOCKED),
    )
    .await;
}

/// The operator unlocks `device` in `group`; the count and the lock are gone, and the right
/// passcode logs in again.
async fn unlock_and_log_in(server: &TestServer, device: &TestDevice, group: &DeviceGroupName) {
    let (ok, said) = server.unlock_passcode(&group.to_string(), &device.name.to_string());
    assert!(ok, "{said}");
    assert!(
        said.contains("10 failed attempt(s) cleared, lock lifted"),
        "{said}"
    );
    assert_eq!(attempts(server, group, device).await, "0|0");
    device.login(group, PASSCODE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tenth_attempt_is_answered_but_its_success_does_not_lift_the_lock() {
    let (server, device, wallet) = counting_server().await;
    let group = &wallet.device_group;
    for _ in 0..9 {
        wait_out_backoff(&server, group, &device).await;
        failed_attempt(&device, group).await;
    }
    wait_out_backoff(&server, group, &device).await;
    // Two attempts at once at the edge: the counting transaction decides, so only one is made;
    // the other finds the lock its twin set.
    let (a, b) = tokio::join!(
        device.try_login_start(group, PASSCODE),
        device.try_login_start(group, PASSCODE)
    );
    assert_eq!(attempts(&server, group, &device).await, "10|1");
    let (tenth, refused) = match (a, b) {
        ((_, Some(tenth)), (refused, None)) | ((refused, None), (_, Some(tenth))) => {
            (tenth, refused)
        }
        (a, b) => panic!("exactly one attempt must be made:\n{:?}\n{:?}", a.0, b.0),
    };
    refused.assert_error(ErrorCode::FailedPrecondition, Some(reason::PASSCODE_LOCKED));
    // The 10th finishes well (its login may be used: it proved the passcode), but its own start
    // made the lock: a success clears the count only below the lock.
    let login = finish_login(&device, group, tenth).await;
    assert_eq!(login_row(&server, &login.name).await, "FINISHED|-");
    assert_locked(&server, &device, group).await;
    unlock_and_log_in(&server, &device, group).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_started_before_the_lock_does_not_lift_it_when_it_finishes_well() {
    let (server, device, wallet) = counting_server().await;
    let group = &wallet.device_group;
    // A login with the right passcode, started at count 1 and held back...
    let early = device.login_start(group, PASSCODE).await;
    assert_eq!(attempts(&server, group, &device).await, "1|0");
    // ...while 9 more attempts lock the device.
    for _ in 1..10 {
        wait_out_backoff(&server, group, &device).await;
        failed_attempt(&device, group).await;
    }
    assert_eq!(attempts(&server, group, &device).await, "10|1");
    // The early login finishes well, within its 5 minutes: the lock stays, the count too.
    finish_login(&device, group, early).await;
    assert_locked(&server, &device, group).await;
    // Only the operator lifts it.
    unlock_and_log_in(&server, &device, group).await;
    // Below the lock, a success still resets the count.
    failed_attempt(&device, group).await;
    let held = device.login_start(group, PASSCODE).await;
    assert_eq!(attempts(&server, group, &device).await, "2|0");
    finish_login(&device, group, held).await;
    assert_eq!(attempts(&server, group, &device).await, "0|0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_backoff_flag_and_refusals_that_are_never_counted() {
    // `--passcode-backoff 5ms`: the waits double from 5 ms; the device simply retries when
    // told to wait. However many refusals it gets, exactly ten attempts are counted.
    let server = TestServer::start_with(&["--passcode-backoff", "5ms"]);
    let (device, wallet) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;
    let mut refusals = 0;
    let mut made = 1; // the registration
    while made < 10 {
        let (raw, started) = device.try_login_start(group, PASSCODE).await;
        if started.is_some() {
            made += 1;
        } else {
            raw.assert_error(ErrorCode::ResourceExhausted, Some(reason::PASSCODE_BACKOFF));
            refusals += 1;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    assert_eq!(attempts(&server, group, &device).await, "10|1");
    // Locked at once: the lock does not wait for the backoff to pass.
    device
        .try_login_start(group, PASSCODE)
        .await
        .0
        .assert_error(ErrorCode::FailedPrecondition, Some(reason::PASSCODE_LOCKED));
    assert_eq!(attempts(&server, group, &device).await, "10|1");
    println!("{refusals} backoff refusals on the way to the lock");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_passcode_needs_a_reset_with_a_fresh_login_of_the_old_one() {
    let server = TestServer::start();
    let (device, wallet) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;

    // registerStart with a record and no reset would be an uncounted OPRF oracle: refused,
    // before any evaluation, and nothing changes.
    let started = device.start_registration(b"999999");
    server
        .assert_refused_unchanged(
            device.register_start_call(group, &started.request, None),
            ErrorCode::AlreadyExists,
        )
        .await;

    // A reset's authorization must be a MAC of this exact message for this step.
    let login = device.login(group, PASSCODE).await;
    for (what, tag) in [
        (
            "another message",
            login.keys.session.authorize(purpose::RESET_START, b"other"),
        ),
        (
            "the finish step's purpose",
            login
                .keys
                .session
                .authorize(purpose::RESET_FINISH, &started.request),
        ),
    ] {
        let reset = waas_api::passcode::PasscodeReset {
            login: login.name.clone(),
            authorization: b64(&tag),
        };
        let refused = server
            .assert_refused_unchanged(
                device.register_start_call(group, &started.request, Some(reset)),
                ErrorCode::PermissionDenied,
            )
            .await;
        assert!(
            refused.text().contains("authorization"),
            "{what}: {refused:?}"
        );
    }

    // Another login finished meanwhile: the reset revokes it.
    let other = device.login(group, PASSCODE).await;

    // The reset: version 2; the new passcode logs in, the old one no longer does.
    assert_eq!(device.reset_passcode(group, &login, b"999999").await, 2);
    device.login(group, b"999999").await;
    let old = device.login_start(group, PASSCODE).await;
    assert_eq!(old.finish(group).err(), Some(PasscodeError::WrongPasscode));

    // The login is used up; the others were revoked; none authorizes another reset.
    for used in [&login, &other] {
        assert_reset_refused(&server, &device, group, used).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_authorizes_one_reset_start_whose_version_its_finish_stores() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;
    // A first registration's start, whose blinded request is sent again below; then the first
    // registration.
    let request = device.start_registration(PASSCODE).request;
    let first_answer = device
        .register_start_call(group, &request, None)
        .ok::<PasscodeRegisterStartResponse>()
        .await;
    assert_eq!(
        device
            .finish_registration(group, device.start_registration(PASSCODE), None)
            .await,
        1
    );

    // A reset's registerStart is answered under the OPRF key of the version it makes (2): the
    // same blinded passcode gets another evaluation than under version 1.
    let login = device.login(group, PASSCODE).await;
    assert_eq!(login_row(&server, &login.name).await, "FINISHED|-");
    let reset = login.reset(purpose::RESET_START, &request);
    let answer = device
        .register_start_call(group, &request, Some(reset.clone()))
        .ok::<PasscodeRegisterStartResponse>()
        .await;
    assert_ne!(
        answer.registration_response,
        first_answer.registration_response
    );
    assert_eq!(login_row(&server, &login.name).await, "FINISHED|2");
    // A second registerStart with the same login, the same request or another, is refused and
    // changes nothing: a login is one OPRF evaluation, not an oracle.
    assert_login_invalid(
        &server,
        device.register_start_call(group, &request, Some(reset)),
    )
    .await;
    assert_reset_refused(&server, &device, group, &login).await;

    // A registerFinish must use a login that made this reset's registerStart: another fresh
    // login, which made none, is refused and changes nothing (and stays usable)...
    let resetting = device.login(group, PASSCODE).await;
    let (_, upload) = device
        .registration_upload(
            group,
            device.start_registration(b"135790"),
            Some(&resetting),
        )
        .await;
    assert_eq!(login_row(&server, &resetting.name).await, "FINISHED|2");
    let other = device.login(group, PASSCODE).await;
    let finish = |login: &support::Login| {
        device.register_finish_call(
            group,
            &upload,
            Some(login.reset(purpose::RESET_FINISH, &upload)),
        )
    };
    assert_login_invalid(&server, finish(&other)).await;
    assert_eq!(login_row(&server, &other.name).await, "FINISHED|-");
    // ...and the one that did stores the version its registerStart was evaluated under: the
    // new passcode logs in under version 2's key.
    let done = finish(&resetting)
        .ok::<PasscodeRegisterFinishResponse>()
        .await;
    assert_eq!(done.version, 2);
    assert_eq!(login_row(&server, &resetting.name).await, "USED|2");
    device.login(group, b"135790").await;
    // The first login's start was made for version 2 too, but the record moved on: revoked.
    assert_eq!(login_row(&server, &login.name).await, "REVOKED|2");
    assert_eq!(login_row(&server, &other.name).await, "REVOKED|-");

    // Two registerStarts with one login at once: the marking transaction decides, one is
    // answered (for version 3), the other refused.
    let login = device.login(group, b"135790").await;
    let (a, b) = (
        device.start_registration(b"111111"),
        device.start_registration(b"222222"),
    );
    let (a, b) = tokio::join!(
        device
            .register_start_call(
                group,
                &a.request,
                Some(login.reset(purpose::RESET_START, &a.request))
            )
            .send(),
        device
            .register_start_call(
                group,
                &b.request,
                Some(login.reset(purpose::RESET_START, &b.request))
            )
            .send(),
    );
    let refused = match (a.status, b.status) {
        (200, _) => b,
        (_, 200) => a,
        _ => panic!("one must be answered:\n{a:?}\n{b:?}"),
    };
    refused.assert_error(ErrorCode::InvalidArgument, Some(reason::LOGIN_INVALID));
    assert_eq!(login_row(&server, &login.name).await, "FINISHED|3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_revokes_unfinished_logins_and_refuses_expired_ones() {
    let server = TestServer::start();
    let (device, wallet) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;

    // Started with the old record: after a reset it cannot be finished, even with the old
    // passcode the device knows.
    let unfinished = device.login_start(group, PASSCODE).await;
    let login = device.login(group, PASSCODE).await;
    assert_eq!(device.reset_passcode(group, &login, b"222222").await, 2);
    let (finalization, revoked) = unfinished.finish(group).unwrap();
    assert_finish_refused(&server, &device, group, &revoked.name, &finalization).await;

    // A login finished more than five minutes ago authorizes nothing.
    let stale = device.login(group, b"222222").await;
    age_login(&server, &stale.name, 301_000).await;
    assert_reset_refused(&server, &device, group, &stale).await;
    // Nor does a login started more than five minutes ago finish.
    let slow = device.login_start(group, b"222222").await;
    age_login(&server, &slow.response.login, 301_000).await;
    let (finalization, slow) = slow.finish(group).unwrap();
    assert_finish_refused(&server, &device, group, &slow.name, &finalization).await;
    // A reset of a group that has no record has nothing to reset.
    let fresh = device.create_wallet(&default_pool()).await;
    let started = device.start_registration(PASSCODE);
    let reset = stale.reset(purpose::RESET_START, &started.request);
    device
        .register_start_call(&fresh.device_group, &started.request, Some(reset))
        .send()
        .await
        .assert_error(
            ErrorCode::FailedPrecondition,
            Some(reason::PASSCODE_NOT_REGISTERED),
        );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_registration_has_one_winner() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;

    // Two registrations at once: both starts are answered (and counted), one finish wins.
    let first = device
        .registration_upload(group, device.start_registration(b"111111"), None)
        .await;
    let second = device
        .registration_upload(group, device.start_registration(b"222222"), None)
        .await;
    assert_eq!(attempts(&server, group, &device).await, "2|0");
    let (a, b) = tokio::join!(
        device.register_finish_call(group, &first.1, None).send(),
        device.register_finish_call(group, &second.1, None).send(),
    );
    let (winner, loser) = match (a.status, b.status) {
        (200, _) => (&first.0, (&second.0, b)),
        (_, 200) => (&second.0, (&first.0, a)),
        _ => panic!("one must win:\n{a:?}\n{b:?}"),
    };
    loser.1.assert_error(ErrorCode::AlreadyExists, None);
    device.login(group, winner).await;
    let wrong = device.login_start(group, loser.0).await;
    assert_eq!(
        wrong.finish(group).err(),
        Some(PasscodeError::WrongPasscode)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_groups_devices_use_its_passcode_and_each_login_is_its_devices() {
    let server = TestServer::start();
    let (alice, wallet) = wallet_with_passcode(&server).await;
    let group = &wallet.device_group;
    let bob = server.device().await;
    let bobs = bob.create_wallet(&default_pool()).await;

    // Bob is no device of Alice's group: he can neither guess nor burn her attempts.
    assert_login_start_refused(&server, &bob, group, ErrorCode::PermissionDenied, None).await;
    let started = bob.start_registration(PASSCODE);
    server
        .assert_refused_unchanged(
            bob.register_start_call(group, &started.request, None),
            ErrorCode::PermissionDenied,
        )
        .await;
    // Nor may an API key.
    let api = server.api_key();
    server
        .assert_refused_unchanged(
            api.client
                .post(format!("/v1/{group}/passcode:loginStart"))
                .json(&serde_json::json!({ "credentialRequest": b64(&[0; 96]) })),
            ErrorCode::PermissionDenied,
        )
        .await;

    // A login of Alice's group named on Bob's group is refused there.
    let login = alice.login(group, PASSCODE).await;
    bob.register_passcode(&bobs.device_group, PASSCODE).await;
    assert_reset_refused(&server, &bob, &bobs.device_group, &login).await;

    // Bob joins Alice's group (as AddDevice will do): now he may log in, counted for himself,
    // but Alice's logins stay hers.
    server
        .db_execute(
            "INSERT INTO device_group_devices (device_group, device) VALUES (?, ?)",
            &[&group.to_string(), &bob.name.to_string()],
        )
        .await;
    let bobs_attempt = bob.login_start(group, PASSCODE).await;
    assert_eq!(attempts(&server, group, &bob).await, "1|0");
    assert_eq!(attempts(&server, group, &alice).await, "0|0");
    // Alice's finished login does not authorize Bob's reset...
    assert_reset_refused(&server, &bob, group, &login).await;
    // ...nor may Bob finish Alice's started login, nor Alice Bob's.
    let (alices_finalization, alices) = alice
        .login_start(group, PASSCODE)
        .await
        .finish(group)
        .unwrap();
    assert_finish_refused(&server, &bob, group, &alices.name, &alices_finalization).await;
    let (bobs_finalization, bobs) = bobs_attempt.finish(group).unwrap();
    assert_finish_refused(&server, &alice, group, &bobs.name, &bobs_finalization).await;
    // Each finishes their own.
    for (device, login, finalization) in [
        (&alice, &alices, &alices_finalization),
        (&bob, &bobs, &bobs_finalization),
    ] {
        device
            .login_finish_call(group, &login.name, finalization)
            .send()
            .await
            .ok::<serde_json::Value>();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_passcode_requests_change_nothing_and_are_not_counted() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let group = &wallet.device_group;
    let path = |verb: &str| format!("/v1/{group}/passcode:{verb}");

    // Without a record there is nothing to log in to.
    assert_login_start_refused(
        &server,
        &device,
        group,
        ErrorCode::FailedPrecondition,
        Some(reason::PASSCODE_NOT_REGISTERED),
    )
    .await;

    let long = "A".repeat(5000);
    let cases: Vec<(&str, String, serde_json::Value)> = vec![
        (
            "registerStart, not base64url",
            path("registerStart"),
            serde_json::json!({"registrationRequest": "%%%"}),
        ),
        (
            "registerStart, too long",
            path("registerStart"),
            serde_json::json!({"registrationRequest": long}),
        ),
        (
            "registerStart, wrong length",
            path("registerStart"),
            serde_json::json!({"registrationRequest": b64(&[1; 31])}),
        ),
        (
            "registerStart, unknown field",
            path("registerStart"),
            serde_json::json!({"registrationRequest": b64(&[1; 32]), "extra": 1}),
        ),
        (
            "registerFinish, garbage",
            path("registerFinish"),
            serde_json::json!({"registrationUpload": b64(&[7; 40])}),
        ),
        (
            "loginFinish, a login name of another kind",
            path("loginFinish"),
            serde_json::json!({"login": "devices/x", "credentialFinalization": b64(&[0; 64])}),
        ),
        (
            "loginFinish, an unknown login",
            path("loginFinish"),
            serde_json::json!({"login": format!("{group}/passcodeLogins/nope"), "credentialFinalization": b64(&[0; 64])}),
        ),
    ];
    for (what, path, body) in cases {
        let refused = server
            .assert_refused_unchanged(
                device.client.post(path).json(&body),
                ErrorCode::InvalidArgument,
            )
            .await;
        println!("{what}: {}", refused.error().message);
    }
    // A registration with a good request is then counted once, and works.
    device.register_passcode(group, PASSCODE).await;
    assert_eq!(attempts(&server, group, &device).await, "1|0");
    // With a record, a garbage loginStart is refused before it is counted.
    server
        .assert_refused_unchanged(
            device.login_start_call(group, &[7; 12]),
            ErrorCode::InvalidArgument,
        )
        .await;
    device.login(group, PASSCODE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_keeps_its_opaque_keys_across_restarts() {
    let mut server = TestServer::start();
    let (device, wallet) = wallet_with_passcode(&server).await;
    let keys = server
        .db_query(
            "SELECT name || '|' || length(secret_sealed) FROM server_secrets",
            &[],
        )
        .await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("opaque|"), "{keys:?}");
    server.restart();
    device.login(&wallet.device_group, PASSCODE).await;
    let after = server
        .db_query(
            "SELECT name || '|' || length(secret_sealed) FROM server_secrets",
            &[],
        )
        .await;
    assert_eq!(after, keys, "the same keys, not new ones");
}

#[test]
fn unlock_passcode_needs_an_existing_database_and_valid_names() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args([
            "unlock-passcode",
            "--device-group",
            "pools/default/deviceGroups/g",
            "--device",
            "devices/d",
            "--database",
        ])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(!missing.exists(), "a mistyped database is not created");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waas-server"))
        .args([
            "unlock-passcode",
            "--device-group",
            "g",
            "--device",
            "devices/d",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--device-group"), "{stderr}");
}
