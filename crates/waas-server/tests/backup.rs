//! PrepareDeviceBackup at the server (docs/protocol/backup.md), against a real server process,
//! with the waas-mpc backup steps playing the device: the operation, the three device rounds
//! over the durable exchange, the dry run the device can do with the server's partial, the
//! group's current backup (replaced only by a verified one, and kept for the retention after),
//! the sweep of replaced backups, each refusal changing nothing, a revocation leaving the backup
//! in place, and a revocation undoing a thief's backup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::passcode::reason;
use waas_api::resources::{Operation, OperationMetadata, RevokeDeviceRequest};
use waas_api::{DeviceGroupName, ErrorCode, MpcOperationName};
use waas_mpc::{BackupContext, BackupRound1, BackupRound3, Role, ciphertexts_hash};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use waas_server::store::{BackupRecord, Store};
use waas_server::{PostgresStore, SqliteStore};

use support::backup::{Backup, backup_op_of, full_backup, prepare_backup_call};
use support::{PASSCODE, TestDevice, TestServer, default_pool, flip, revoke_call};

/// The group's backups rows, oldest first: the backup's id, device, epoch, and (hex) ct_x, ct_s.
async fn backup_rows(server: &TestServer, group: &DeviceGroupName) -> Vec<String> {
    server
        .db_query(
            "SELECT backup || '|' || device || '|' || epoch || '|' || hex(device_ciphertext)
                 || '|' || hex(server_ciphertext) FROM backups WHERE device_group = ?
                 ORDER BY create_time_ms, backup",
            &[&group.to_string()],
        )
        .await
}

/// The group's backups, oldest first, each as `{id} current` or `{id} replaced by {id}`.
async fn replacements(server: &TestServer, group: &DeviceGroupName) -> Vec<String> {
    server
        .db_query(
            "SELECT backup || ' ' || ifnull('replaced by ' || replaced_by, 'current')
                 FROM backups WHERE device_group = ?
                 ORDER BY create_time_ms, backup",
            &[&group.to_string()],
        )
        .await
}

fn current(backup: &str) -> String {
    format!("{backup} current")
}

fn replaced(backup: &str, by: &str) -> String {
    format!("{backup} replaced by {by}")
}

/// What the store method recovery will use returns for `backup` (live within `retention`):
/// read through the server's own store, on its database, while it runs.
async fn live_backup(
    server: &TestServer,
    backup: &str,
    retention: Duration,
) -> Option<BackupRecord> {
    let backup: MpcOperationName = backup.parse().unwrap();
    match server.postgres_url() {
        Some(url) => live_in(&PostgresStore::open(url).await.unwrap(), &backup, retention).await,
        None => {
            let database = server.database();
            let store = SqliteStore::open(database.to_str().unwrap()).await.unwrap();
            live_in(&store, &backup, retention).await
        }
    }
}

/// [`live_backup`] on an open store, which it closes.
async fn live_in(
    store: &impl Store,
    backup: &MpcOperationName,
    retention: Duration,
) -> Option<BackupRecord> {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let retention = i64::try_from(retention.as_millis()).unwrap();
    let live = store
        .live_backup(&backup.device_group_name(), backup, now - retention)
        .await
        .unwrap();
    store.close().await;
    live
}

/// The default `--backup-retention`.
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Restarts the server (its first sweep runs at start) and waits until that sweep has run: a
/// stand-in row of `group` replaced at the start of 1970, past any retention, is gone.
async fn sweep(server: &mut TestServer, group: &DeviceGroupName, device: &TestDevice) {
    static SENTINELS: AtomicU32 = AtomicU32::new(0);
    let sentinel = format!(
        "{group}/mpcOperations/sentinel{}",
        SENTINELS.fetch_add(1, Ordering::Relaxed)
    );
    let inserted = server
        .db_execute(
            "INSERT INTO backups (backup, device_group, device, epoch, pairing_id,
                 decryption_share_sealed, device_key_share, server_key_share, device_ciphertext,
                 server_ciphertext, create_time_ms, replaced_time_ms, replaced_by)
             VALUES (?, ?, ?, 0, x'', x'', x'', x'', x'', x'', 1, 1, ?)",
            &[
                &sentinel,
                &group.to_string(),
                &device.name.to_string(),
                &format!("{group}/mpcOperations/none"),
            ],
        )
        .await;
    assert_eq!(inserted, 1);
    server.restart();
    for _ in 0..300 {
        let left = server
            .db_query("SELECT backup FROM backups WHERE backup = ?", &[&sentinel])
            .await;
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sweep did not run within 30 seconds of the start");
}

/// Moves every backup's times `by` into the past, as if that much time had gone by.
async fn age_backups(server: &TestServer, by: Duration) {
    let by = by.as_millis().to_string();
    server
        .db_execute(
            "UPDATE backups SET create_time_ms = create_time_ms - ?,
                 replaced_time_ms = replaced_time_ms - ?",
            &[&by, &by],
        )
        .await;
}

fn row(backup: &str, device: &TestDevice, device_half: &[u8], server_half: &[u8]) -> String {
    format!(
        "{backup}|{}|0|{}|{}",
        device.name,
        hex::encode_upper(device_half),
        hex::encode_upper(server_half)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_passes_the_dry_run_and_the_next_one_replaces_it_but_keeps_it() {
    let mut server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;

    let (first, ct_x, ct_s) = full_backup(&device, &wallet).await;
    assert!(
        first.starts_with(&format!("{group}/mpcOperations/")),
        "{first}"
    );
    assert_eq!(
        backup_rows(&server, group).await,
        [row(&first, &device, &ct_x, &ct_s)]
    );
    // d_srv is stored sealed (version, key id, nonce, 32 bytes, tag), P_srv is the public point.
    let stored = server
        .db_query(
            "SELECT length(decryption_share_sealed) || '|' || length(server_key_share)
                 || '|' || length(device_key_share) FROM backups",
            &[],
        )
        .await;
    assert_eq!(stored, ["69|33|33"]);
    // The operation's session (d_srv in it) is gone once it is done.
    let session = server
        .db_query(
            "SELECT quote(session_sealed) FROM operations WHERE id = ?",
            &[first.rsplit('/').next().unwrap()],
        )
        .await;
    assert_eq!(session, ["NULL"]);

    assert_eq!(replacements(&server, group).await, [current(&first)]);

    // Survives a restart; a second backup replaces the first, which is kept whole (its
    // ciphertexts and sealed d_srv), marked replaced by the second, and still live.
    server.restart();
    let (second, ct_x2, ct_s2) = full_backup(&device, &wallet).await;
    assert_ne!(second, first);
    assert_eq!(
        backup_rows(&server, group).await,
        [
            row(&first, &device, &ct_x, &ct_s),
            row(&second, &device, &ct_x2, &ct_s2)
        ]
    );
    assert_eq!(
        replacements(&server, group).await,
        [replaced(&first, &second), current(&second)]
    );
    let older = live_backup(&server, &first, WEEK).await.unwrap();
    assert_eq!(older.replaced_by.unwrap().to_string(), second);
    assert!(older.replaced_time_ms.unwrap() >= older.create_time_ms);
    assert_eq!(
        (
            older.material.device_ciphertext,
            older.material.server_ciphertext,
            older.material.decryption_share_sealed.len(),
        ),
        (ct_x, ct_s, 69)
    );
    let newer = live_backup(&server, &second, WEEK).await.unwrap();
    assert_eq!(
        (newer.replaced_by, newer.replaced_time_ms, newer.device),
        (None, None, device.name.clone())
    );
    assert_eq!(
        (
            newer.material.device_ciphertext,
            newer.material.server_ciphertext
        ),
        (ct_x2, ct_s2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_deletes_a_replaced_backup_after_the_retention_and_never_a_current_one() {
    // Retention 0: a replaced backup goes at the first sweep after it was replaced.
    let mut server = TestServer::start_with(&["--backup-retention", "0"]);
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    let (first, ..) = full_backup(&device, &wallet).await;
    // A sweep leaves the only backup, current.
    sweep(&mut server, group, &device).await;
    assert_eq!(replacements(&server, group).await, [current(&first)]);

    let (second, ct_x, ct_s) = full_backup(&device, &wallet).await;
    sweep(&mut server, group, &device).await;
    assert_eq!(
        backup_rows(&server, group).await,
        [row(&second, &device, &ct_x, &ct_s)]
    );
    assert_eq!(replacements(&server, group).await, [current(&second)]);
    assert!(live_backup(&server, &first, Duration::ZERO).await.is_none());
    assert!(
        live_backup(&server, &second, Duration::ZERO)
            .await
            .is_some()
    );
}

/// The owner makes two backups (the second replaces the first); a thief with the passcode makes
/// a third, replacing the owner's: on the owner's device, or on `another` device of the group.
/// The owner then revokes the device the thief's backup was made on.
async fn a_thiefs_backup_is_undone_by_revoking_its_device(another: bool) {
    let mut server = TestServer::start();
    let (owner, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    let (older, ..) = full_backup(&owner, &wallet).await;
    let (owners, ct_x, ct_s) = full_backup(&owner, &wallet).await;
    let (thiefs, ..) = full_backup(&owner, &wallet).await;
    let stranger = server.device().await;
    let thief = if another {
        // AddDevice is not built, so a second device of the group has no pairing to back up:
        // the thief's backup is made through the owner's pairing and its row then names the
        // second device as its maker (as `join_group` adds the device as AddDevice will).
        server.join_group(group, &stranger).await;
        let moved = server
            .db_execute(
                "UPDATE backups SET device = ? WHERE backup = ?",
                &[&stranger.name.to_string(), &thiefs],
            )
            .await;
        assert_eq!(moved, 1);
        &stranger
    } else {
        &owner
    };
    assert_eq!(
        replacements(&server, group).await,
        [
            replaced(&older, &owners),
            replaced(&owners, &thiefs),
            current(&thiefs)
        ]
    );
    // Within the retention the sweep keeps the owner's backup.
    sweep(&mut server, group, &owner).await;
    assert!(live_backup(&server, &owners, WEEK).await.is_some());

    let revoked: waas_api::resources::Device = server
        .api_key()
        .client
        .post("/v1/device:revoke")
        .json(&RevokeDeviceRequest {
            name: thief.name.clone(),
            login: None,
        })
        .ok()
        .await;
    assert_eq!(revoked.state, waas_api::resources::DeviceState::Revoked);
    // The owner's backup is current again; the thief's stays (it may be the owner's, and opens
    // only with the group's current passcode). The older one was replaced by the owner's:
    // brought back only if the revoked device made the owner's (the owner's own device).
    let older_now = if another {
        replaced(&older, &owners)
    } else {
        current(&older)
    };
    let after = [older_now, current(&owners), current(&thiefs)];
    assert_eq!(replacements(&server, group).await, after);

    // Long past the retention, the sweep deletes only what is still replaced.
    age_backups(&server, WEEK + WEEK).await;
    sweep(&mut server, group, &owner).await;
    let left: Vec<String> = after
        .into_iter()
        .filter(|row| row.ends_with(" current"))
        .collect();
    assert_eq!(replacements(&server, group).await, left);
    assert_eq!(left.len(), if another { 2 } else { 3 });
    let kept = live_backup(&server, &owners, WEEK).await.unwrap();
    assert_eq!(
        (
            kept.device,
            kept.material.device_ciphertext,
            kept.material.server_ciphertext
        ),
        (owner.name.clone(), ct_x, ct_s)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_device_a_thiefs_backup_was_made_on_brings_the_owners_back() {
    a_thiefs_backup_is_undone_by_revoking_its_device(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_another_device_that_made_a_thiefs_backup_brings_the_owners_back() {
    a_thiefs_backup_is_undone_by_revoking_its_device(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_are_asked_for_like_archives_but_not_gated_by_export() {
    let server = TestServer::start();
    let api_key = server.api_key();
    api_key.create_pool_with("closed", "No export", false).await;
    let device = server.device().await;
    let wallet = device.create_wallet(&"pools/closed".parse().unwrap()).await;
    let group = &wallet.device_group;

    // An API key may ask for any device of the group; a second ask gets the pending one.
    let by_key: Operation = prepare_backup_call(&api_key.client, group, &device)
        .ok()
        .await;
    let again: Operation = prepare_backup_call(&device.client, group, &device)
        .ok()
        .await;
    assert_eq!(by_key.name, again.name);
    assert_eq!(
        by_key.metadata,
        OperationMetadata::PrepareDeviceBackup {
            device_group: group.clone(),
            device: device.name.clone(),
            mpc_operation: backup_op_of(&by_key),
        }
    );
    // Another device may not ask for this one.
    let stranger = server.device().await;
    server.join_group(group, &stranger).await;
    server
        .assert_refused_unchanged(
            prepare_backup_call(&stranger.client, group, &device),
            ErrorCode::PermissionDenied,
        )
        .await;
    // A backup runs in a pool with export off.
    device.register_passcode(group, PASSCODE).await;
    full_backup(&device, &wallet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_share_without_its_proof_is_refused_and_uses_nothing_up() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let backup = Backup::start(&device, &wallet).await;
    let login = device.login(&wallet.device_group, PASSCODE).await;
    let name = login.name.to_string();

    // A proof made for the server's role, for another backup, or tampered with.
    let for_server = BackupRound1 {
        login: name.clone(),
        key_share: backup
            .share
            .key_share_message(&backup.context(), Role::Server)
            .unwrap(),
    };
    let other_context = BackupContext {
        backup: "pools/default/deviceGroups/g/mpcOperations/another",
        ..backup.context()
    };
    let for_another = BackupRound1 {
        login: name.clone(),
        key_share: backup
            .share
            .key_share_message(&other_context, Role::Device)
            .unwrap(),
    };
    let honest = backup.round1(&name);
    for message in [
        for_server.encode().unwrap(),
        for_another.encode().unwrap(),
        flip(&honest, honest.len() - 3),
        b"garbage".to_vec(),
    ] {
        server
            .assert_refused_unchanged(
                device.exchange_call(&backup.op, 1, &message),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    // The login is still good: the honest round 1 runs with it.
    backup.through_round3(&login).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_used_login_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    // A login used by another backup's round 1 buys no second one.
    let used = device.login(group, PASSCODE).await;
    let backup = Backup::start(&device, &wallet).await;
    backup.run_round1(&used).await;
    let next = Backup::start(&device, &wallet).await;
    assert_ne!(next.op, backup.op, "the first one is running");

    // That one; no login at all; a name that is not a login; a started login never finished.
    let unfinished = device.login_start(group, PASSCODE).await;
    for login in [
        used.name.to_string(),
        format!("{group}/passcodeLogins/none"),
        "not a name".to_owned(),
        unfinished.response.login.to_string(),
    ] {
        let refused = server
            .assert_refused_unchanged(
                device.exchange_call(&next.op, 1, &next.round1(&login)),
                ErrorCode::InvalidArgument,
            )
            .await;
        assert_eq!(
            refused.error().reason.as_deref(),
            Some(reason::LOGIN_INVALID),
            "{login}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_device_ciphertext_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let backup = Backup::start(&device, &wallet).await;
    let login = device.login(&wallet.device_group, PASSCODE).await;
    let answered = backup.run_round1(&login).await;
    let honest = backup.device_half(&answered);
    let device_half = honest.device_half.clone();

    let mut wrong_version = device_half.clone();
    wrong_version[0] = 2;
    let mut not_a_point = device_half.clone();
    not_a_point[2..34].fill(0xff);
    // ct_s's R in ct_x, as it is, negated (the other y), in SEC1's compact encoding (tag 5, which
    // k256 reads as a point too), and blinded (R_s + G): a partial on any would help the device
    // open ct_s. The device knows none of their discrete logs, so none has a proof.
    let mut server_r = device_half.clone();
    server_r[1..34].copy_from_slice(&answered.server_half[1..34]);
    let mut negated_r = server_r.clone();
    negated_r[1] ^= 1;
    let mut compact_r = server_r.clone();
    compact_r[1] = 0x05;
    let r_s = k256::PublicKey::from_sec1_bytes(&answered.server_half[1..34]).unwrap();
    let blinded = (r_s.to_projective() + k256::ProjectivePoint::GENERATOR).to_affine();
    let mut blinded_r = device_half.clone();
    blinded_r[1..34].copy_from_slice(
        k256::PublicKey::from_affine(blinded)
            .unwrap()
            .to_sec1_bytes()
            .as_ref(),
    );
    let with_proof = |ciphertext: Vec<u8>| {
        BackupRound3 {
            device_half: ciphertext,
            ephemeral_proof: honest.ephemeral_proof.clone(),
        }
        .encode()
        .unwrap()
    };
    let mut messages: Vec<Vec<u8>> = [
        device_half[..device_half.len() - 1].to_vec(),
        [device_half.as_slice(), &[0]].concat(),
        wrong_version,
        not_a_point,
        answered.server_half.clone(),
        server_r,
        negated_r,
        compact_r,
        blinded_r,
    ]
    .into_iter()
    .map(with_proof)
    .collect();
    // Without the proof, or not a round 3 message at all.
    messages.push(device_half.clone());
    messages.push(Vec::new());
    for message in messages {
        server
            .assert_refused_unchanged(
                device.exchange_call(&backup.op, 3, &message),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    // The well-formed one still runs.
    backup.run_round3(&answered, &honest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_hash_stores_no_backup_and_an_unfinished_backup_replaces_nothing() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    let (first, ct_x, ct_s) = full_backup(&device, &wallet).await;
    let stored = [row(&first, &device, &ct_x, &ct_s)];

    // A second backup through round 3, then hashes that are not H(ct_x ‖ ct_s): refused, and
    // the first backup stays the group's.
    let backup = Backup::start(&device, &wallet).await;
    let login = device.login(group, PASSCODE).await;
    let (answered, round3) = backup.through_round3(&login).await;
    let device_half = round3.device_half;
    let hash = ciphertexts_hash(&device_half, &answered.server_half);
    for message in [
        flip(&hash, 0),
        ciphertexts_hash(&answered.server_half, &device_half).to_vec(),
        hash[..31].to_vec(),
        Vec::new(),
    ] {
        server
            .assert_refused_unchanged(
                device.exchange_call(&backup.op, 5, &message),
                ErrorCode::InvalidArgument,
            )
            .await;
    }
    assert_eq!(backup_rows(&server, group).await, stored);

    // Stopped here, it replaces nothing, also once it expired. In a fresh group, no row at all.
    server
        .db_execute(
            "UPDATE operations SET update_time_ms = update_time_ms - 700000 WHERE id = ?",
            &[backup.backup.rsplit('/').next().unwrap()],
        )
        .await;
    device
        .exchange(&backup.op, 5, &hash)
        .await
        .assert_error(ErrorCode::Aborted, None);
    assert_eq!(backup_rows(&server, group).await, stored);
    assert_eq!(replacements(&server, group).await, [current(&first)]);

    let other = device.create_wallet(&default_pool()).await;
    device
        .register_passcode(&other.device_group, PASSCODE)
        .await;
    let fresh = Backup::start(&device, &other).await;
    let login = device.login(&other.device_group, PASSCODE).await;
    fresh.through_round3(&login).await;
    assert!(backup_rows(&server, &other.device_group).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_leaves_the_backup() {
    let server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let group = &wallet.device_group;
    let (backup, ct_x, ct_s) = full_backup(&device, &wallet).await;

    let revoked: waas_api::resources::Device =
        revoke_call(&device.client, &device.name, None).ok().await;
    assert_eq!(revoked.state, waas_api::resources::DeviceState::Revoked);
    // The server's halves of the pairings are gone; the backup (what recovery needs) stays.
    let pairings = server
        .db_query(
            "SELECT CAST(COUNT(*) AS TEXT) FROM pairings WHERE device = ?",
            &[&device.name.to_string()],
        )
        .await;
    assert_eq!(pairings, ["0"]);
    assert_eq!(
        backup_rows(&server, group).await,
        [row(&backup, &device, &ct_x, &ct_s)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_resumes_after_a_restart_from_its_sealed_session() {
    let mut server = TestServer::start();
    let (device, wallet) = server.device_with_passcode().await;
    let backup = Backup::start(&device, &wallet).await;
    let login = device.login(&wallet.device_group, PASSCODE).await;
    let (answered, round3) = backup.through_round3(&login).await;
    let device_half = round3.device_half.clone();
    let round3 = round3.encode().unwrap();

    // Between rounds the kept values are sealed: neither ciphertext is in the clear in the
    // session (and so neither is d_srv, kept with them).
    let id = backup.backup.rsplit('/').next().unwrap();
    let session = server
        .db_query(
            "SELECT hex(session_sealed) FROM operations WHERE id = ?",
            &[id],
        )
        .await;
    assert_eq!(session.len(), 1);
    for clear in [&answered.server_half, &device_half] {
        assert!(!session[0].contains(&hex::encode_upper(&clear[34..])));
    }

    // Killed between rounds 3 and 5: round 3's answer is stored, round 5 runs from the session.
    let first = device.exchange(&backup.op, 3, &round3).await;
    server.restart();
    device
        .assert_repeat(&backup.op, 3, &round3, &first, "after a restart")
        .await;
    backup
        .run_round5(&ciphertexts_hash(&device_half, &answered.server_half))
        .await;
    assert_eq!(
        backup_rows(&server, &wallet.device_group).await,
        [row(
            &backup.backup,
            &device,
            &device_half,
            &answered.server_half
        )]
    );
}
