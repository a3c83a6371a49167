//! Recovery (docs/protocol/recovery.md): a new device takes a wallet over with the backup string
//! and the passcode, against a scripted server; each refusal is named after the attack it stops.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{keygen, sign};
use waas_mpc::passcode::{
    ClientRegistration, PasscodeContext, PasscodeError, ServerKeys, SessionSecret, login_finish,
    registration_record,
};
use waas_mpc::{
    BackupContext, BackupFacts, BackupString, DecryptionShare, DeviceRecovery, Half, MpcError,
    Pairing, PartialUse, RESTORED_EPOCH, RecoveryContext, RecoveryRound1, RecoveryRound3, Role,
    ServerBackup, backup_key, ciphertext_ephemeral, ciphertexts_hash, encrypt_half, restore_server,
    server_refresh,
};
use zeroize::Zeroizing;

const GROUP: &str = "pools/default/deviceGroups/g1";
const BACKUP: &str = "pools/default/deviceGroups/g1/mpcOperations/backup";
const RECOVERY: RecoveryContext<'static> = RecoveryContext {
    operation: "pools/default/deviceGroups/g1/mpcOperations/add",
    device: "devices/new",
};
const PASSCODE: &[u8] = b"246810";

/// What the server holds after a backup, and the string the user kept.
struct Made {
    device: Pairing,
    server: Pairing,
    d_srv: DecryptionShare,
    p_dev: [u8; 33],
    ct_x: Vec<u8>,
    ct_s: Vec<u8>,
    string: String,
    keys: ServerKeys,
    record: Vec<u8>,
}

impl Made {
    fn backup_context(&self) -> BackupContext<'_> {
        BackupContext {
            device_group: GROUP,
            backup: BACKUP,
            pairing_id: &self.device.public().id,
            epoch: self.device.epoch(),
        }
    }

    fn stored(&self) -> ServerBackup<'_> {
        ServerBackup {
            decryption_share: &self.d_srv,
            device_key_share: &self.p_dev,
            device_half: &self.ct_x,
            server_half: &self.ct_s,
        }
    }

    fn string(&self) -> BackupString {
        BackupString::decode(&self.string).unwrap()
    }
}

/// A wallet, its backup (as PrepareDeviceBackup leaves it) and the group's passcode record.
fn make() -> Made {
    let (device, server) = keygen("operations/recovery-keygen");
    let d_dev = DecryptionShare::generate().unwrap();
    let d_srv = DecryptionShare::generate().unwrap();
    let public = device.public().clone();
    let context = BackupContext {
        device_group: GROUP,
        backup: BACKUP,
        pairing_id: &public.id,
        epoch: device.epoch(),
    };
    let key = backup_key(&d_dev.public(), &d_srv.public()).unwrap();
    let ct_x = encrypt_half(&key, Half::Device, &device.additive_share(), &context).unwrap();
    let ct_s = encrypt_half(&key, Half::Server, &server.additive_share(), &context).unwrap();
    let string = BackupString::new(
        &d_dev,
        BackupFacts {
            backup: BACKUP.into(),
            wallet: "pools/default/mpcWallets/w1".into(),
            device_group: GROUP.into(),
            pairing_id: public.id,
            epoch: device.epoch(),
            server_key_share: d_srv.public(),
            root_public_key: public.root_public_key,
            chain_code: public.chain_code,
            device_public_share: public.device_public_share,
            server_public_share: public.server_public_share,
            ciphertexts_hash: ciphertexts_hash(&ct_x, &ct_s),
        },
    )
    .encode()
    .unwrap()
    .to_string();
    let keys = ServerKeys::generate().unwrap();
    let context = PasscodeContext {
        device_group: GROUP,
    };
    let (client, request) = ClientRegistration::start(PASSCODE).unwrap();
    let response = keys.registration_response(&request, &context, 1).unwrap();
    let (upload, _) = client.finish(PASSCODE, &response, &context).unwrap();
    Made {
        p_dev: d_dev.public(),
        device,
        server,
        d_srv,
        ct_x,
        ct_s,
        string,
        keys,
        record: registration_record(&upload).unwrap(),
    }
}

/// The server's side of rounds 1 and 2: the partial proves the backup, then the login starts.
fn server_round1(made: &Made, round1: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<Vec<u8>>, Vec<u8>) {
    let round1 = RecoveryRound1::decode(round1).unwrap();
    let s_d = made
        .stored()
        .open_server_half(
            &round1.server_half_partial,
            &made.backup_context(),
            &RECOVERY,
        )
        .unwrap();
    let (state, response) = made
        .keys
        .login_start(
            &made.record,
            1,
            &round1.credential_request,
            &PasscodeContext {
                device_group: GROUP,
            },
        )
        .unwrap();
    (s_d, state, response)
}

/// The server's side of rounds 3 and 4.
fn server_round3(made: &Made, state: &[u8], round3: &[u8]) -> Result<Vec<u8>, MpcError> {
    let round3 = RecoveryRound3::decode(round3).unwrap();
    let session = login_finish(
        state,
        &round3.credential_finalization,
        &PasscodeContext {
            device_group: GROUP,
        },
    )
    .unwrap();
    made.stored().device_half_partial(
        &session,
        &round3.authorization,
        &made.backup_context(),
        &RECOVERY,
    )
}

/// A whole recovery: the new device's pairing and the server's. The server restores from the s_d
/// it decrypted, or from `server_share` when given (a server that restores another share).
fn recover_with(made: &Made, server_share: Option<[u8; 32]>) -> (Pairing, Pairing) {
    let (mut device, round1) =
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &made.ct_s, PASSCODE).unwrap();
    let (s_d, state, response) = server_round1(made, &round1);
    assert_eq!(*s_d, *made.server.additive_share());
    let (round3, _export_key) = device.login(&response, PASSCODE).unwrap();
    let round4 = server_round3(made, &state, &round3).unwrap();
    let round5 = device.open(&round4).unwrap();

    let public = made.server.public();
    let restored = restore_server(
        &server_share.unwrap_or(*s_d),
        &public.root_public_key,
        &public.chain_code,
        &made.backup_context(),
        &RECOVERY,
    )
    .unwrap();
    let mut refresh = server_refresh(&restored, &RECOVERY).unwrap();
    let round6 = refresh.handle(&restored, &round5).unwrap().reply.unwrap();
    let round7 = device.refresh(&round6).unwrap().reply.unwrap();
    let step = refresh.handle(&restored, &round7).unwrap();
    let server = step.output.unwrap();
    let device = device
        .refresh(&step.reply.unwrap())
        .unwrap()
        .output
        .unwrap();
    (device, server)
}

fn recover(made: &Made) -> (Pairing, Pairing) {
    recover_with(made, None)
}

#[test]
fn a_recovered_device_signs_for_the_same_key_with_shares_the_backup_never_held() {
    let made = make();
    let (device, server) = recover(&made);
    assert_eq!(device.public(), server.public());
    assert_eq!(
        device.public().confirmation(),
        server.public().confirmation()
    );
    assert_eq!(device.epoch(), RESTORED_EPOCH + 1);
    assert_eq!(
        device.public().root_public_key,
        made.device.public().root_public_key
    );
    assert_ne!(device.public().id, made.device.public().id);
    // The refresh gave new shares: the backed-up x_d no longer signs with the new pairing.
    assert_ne!(*device.additive_share(), *made.device.additive_share());
    assert!(device.can_sign() && server.can_sign());
    let digest = [7u8; 32];
    let signature = sign(&device, &server, &[0, 1], digest);
    let child = made.device.xpub().derive(&[0, 1]).unwrap();
    let child = k256::ecdsa::VerifyingKey::from_sec1_bytes(&child.public_key).unwrap();
    signature.verify(&child, &digest).unwrap();
}

#[test]
fn a_server_that_swaps_or_alters_the_ciphertexts_gets_no_partial() {
    let made = make();
    // ct_x offered as ct_s: the device's partial would be on R_x, and with d_srv·R_x the server
    // would open x_d. The string's hash commits to the order, so the device refuses.
    for (device_half, server_half) in [
        (&made.ct_s, &made.ct_x),
        (&made.ct_x, &made.ct_x),
        (&made.ct_s, &made.ct_s),
    ] {
        assert!(matches!(
            DeviceRecovery::start(made.string(), &RECOVERY, device_half, server_half, PASSCODE),
            Err(MpcError::Rejected(_))
        ));
    }
    // Another ct_s under the same key (a value of the server's choosing): not the committed one.
    let key = backup_key(&made.p_dev, &made.d_srv.public()).unwrap();
    let other = encrypt_half(&key, Half::Server, &[9; 32], &made.backup_context()).unwrap();
    assert!(matches!(
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &other, PASSCODE),
        Err(MpcError::Rejected(_))
    ));
    // A recovery of another group than the string's.
    let elsewhere = RecoveryContext {
        operation: "pools/default/deviceGroups/g2/mpcOperations/add",
        device: RECOVERY.device,
    };
    assert!(matches!(
        DeviceRecovery::start(made.string(), &elsewhere, &made.ct_x, &made.ct_s, PASSCODE),
        Err(MpcError::Rejected(_))
    ));
}

#[test]
fn a_bad_server_partial_in_recovery_is_refused_and_reveals_nothing() {
    let made = make();
    let (mut device, round1) =
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &made.ct_s, PASSCODE).unwrap();
    let (_, state, response) = server_round1(&made, &round1);
    let (round3, _) = device.login(&response, PASSCODE).unwrap();
    let context = made.backup_context();
    let r_x = ciphertext_ephemeral(&made.ct_x).unwrap();
    let r_s = ciphertext_ephemeral(&made.ct_s).unwrap();
    let wrong = [
        // Made with a decryption half other than the string's P_srv.
        DecryptionShare::generate()
            .unwrap()
            .partial(
                &r_x,
                Half::Device,
                &context,
                Role::Server,
                PartialUse::Recovery(&RECOVERY),
            )
            .unwrap(),
        // The backup's dry-run partial, replayed.
        made.d_srv
            .partial(
                &r_x,
                Half::Device,
                &context,
                Role::Server,
                PartialUse::DryRun,
            )
            .unwrap(),
        // A partial on ct_s's R offered for ct_x.
        made.d_srv
            .partial(
                &r_s,
                Half::Device,
                &context,
                Role::Server,
                PartialUse::Recovery(&RECOVERY),
            )
            .unwrap(),
        // Bytes that are no partial.
        vec![0; 40],
    ];
    for partial in wrong {
        assert!(device.open(&partial).is_err());
    }
    // The device is still waiting: the real partial completes it.
    let round4 = server_round3(&made, &state, &round3).unwrap();
    assert!(device.open(&round4).is_ok());
}

#[test]
fn the_server_counts_nothing_for_a_device_without_the_backup() {
    let made = make();
    let context = made.backup_context();
    let r_s = ciphertext_ephemeral(&made.ct_s).unwrap();
    let stored = made.stored();
    // A stranger's partial: a decryption half that is not P_dev.
    let stranger = DecryptionShare::generate()
        .unwrap()
        .partial(
            &r_s,
            Half::Server,
            &context,
            Role::Device,
            PartialUse::Recovery(&RECOVERY),
        )
        .unwrap();
    assert!(matches!(
        stored.open_server_half(&stranger, &context, &RECOVERY),
        Err(MpcError::Rejected(_))
    ));
    // The owner's partial from another recovery (a replay) proves nothing for this one.
    let (_, round1) =
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &made.ct_s, PASSCODE).unwrap();
    let partial = RecoveryRound1::decode(&round1).unwrap().server_half_partial;
    let other = RecoveryContext {
        operation: "pools/default/deviceGroups/g1/mpcOperations/another",
        device: "devices/thief",
    };
    assert!(matches!(
        stored.open_server_half(&partial, &context, &other),
        Err(MpcError::Rejected(_))
    ));
    assert!(
        stored
            .open_server_half(&partial, &context, &RECOVERY)
            .is_ok()
    );
}

#[test]
fn a_wrong_passcode_ends_the_recovery_before_any_partial_of_the_server() {
    let made = make();
    let (mut device, round1) =
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &made.ct_s, b"000000").unwrap();
    let (_, _state, response) = server_round1(&made, &round1);
    assert_eq!(
        device.login(&response, b"000000").err(),
        Some(PasscodeError::WrongPasscode)
    );
    // The recovery is over: nothing more goes out, and no partial is asked for.
    assert!(device.login(&response, PASSCODE).is_err());
    assert!(device.open(&[]).is_err());
}

#[test]
fn the_login_authorizes_only_its_own_recovery() {
    let made = make();
    let (mut device, round1) =
        DeviceRecovery::start(made.string(), &RECOVERY, &made.ct_x, &made.ct_s, PASSCODE).unwrap();
    let (_, state, response) = server_round1(&made, &round1);
    let (round3, _) = device.login(&response, PASSCODE).unwrap();
    let round3 = RecoveryRound3::decode(&round3).unwrap();
    let session: SessionSecret = login_finish(
        &state,
        &round3.credential_finalization,
        &PasscodeContext {
            device_group: GROUP,
        },
    )
    .unwrap();
    let stored = made.stored();
    let context = made.backup_context();
    // The MAC of this recovery does not authorize another operation or device.
    let other = RecoveryContext {
        operation: RECOVERY.operation,
        device: "devices/thief",
    };
    assert!(matches!(
        stored.device_half_partial(&session, &round3.authorization, &context, &other),
        Err(MpcError::Rejected(_))
    ));
    let mut forged = round3.authorization.clone();
    forged[0] ^= 1;
    assert!(matches!(
        stored.device_half_partial(&session, &forged, &context, &RECOVERY),
        Err(MpcError::Rejected(_))
    ));
    assert!(
        stored
            .device_half_partial(&session, &round3.authorization, &context, &RECOVERY)
            .is_ok()
    );
}

#[test]
fn a_server_that_restores_another_share_is_found_out_by_the_confirmation() {
    // A server that decrypted (or claims) some other s_d. The refresh itself cannot tell (each
    // side computes the peer's new public share as X minus its own), so round 9 compares the
    // pairings' confirmations, as key generation's last round does: they differ, and the server
    // stores nothing. The device's pairing would sign nothing (a denial of service, which a
    // server can always cause).
    let (device, server) = recover_with(&make(), Some([9; 32]));
    assert_ne!(
        device.public().confirmation(),
        server.public().confirmation()
    );
}
