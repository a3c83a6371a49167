//! Refresh, restore from a bare share, and epochs when either side stops at any step.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k256::elliptic_curve::PrimeField;
use support::{keygen, refresh, refresh_context, sign};
use waas_mpc::{EpochSet, MpcError, Pairing, Refresh, Role, Signing, SigningRequest};

fn scalar(bytes: &[u8; 32]) -> k256::Scalar {
    Option::from(k256::Scalar::from_repr((*bytes).into())).unwrap()
}

fn key_sum(device: &Pairing, server: &Pairing) -> k256::Scalar {
    scalar(&device.additive_share()) + scalar(&server.additive_share())
}

#[test]
fn refresh_changes_the_shares_not_the_key_and_old_pairs_still_work() {
    let (device0, server0) = keygen("operations/refresh-keygen");
    let (device1, server1) = refresh(&device0, &server0, "operations/refresh-1");
    assert_eq!((device1.epoch(), server1.epoch()), (1, 1));
    assert_eq!(device1.public(), server1.public());
    assert_eq!(
        device1.public().root_public_key,
        device0.public().root_public_key
    );
    assert_eq!(device1.public().id, device0.public().id);
    assert_ne!(
        device1.public().device_public_share,
        device0.public().device_public_share
    );
    assert_ne!(*device1.additive_share(), *device0.additive_share());
    // Every epoch's pair sums to the same key: archives and backups of epoch 0 stay valid.
    assert_eq!(key_sum(&device0, &server0), key_sum(&device1, &server1));

    let digest = [1u8; 32];
    let new = sign(&device1, &server1, &[0, 2], digest);
    let old = sign(&device0, &server0, &[0, 2], digest);
    let child = device0.xpub().derive(&[0, 2]).unwrap();
    let child = k256::ecdsa::VerifyingKey::from_sec1_bytes(&child.public_key).unwrap();
    new.verify(&child, &digest).unwrap();
    old.verify(&child, &digest).unwrap();

    // Mixed epochs are different sessions: they never sign together.
    let request = SigningRequest {
        operation: "operations/mixed",
        path: &[],
        digest,
    };
    let (_, round1) = Signing::start_device(&device0, &request).unwrap();
    let mut server = Signing::new_server(&server1, &request).unwrap();
    assert!(matches!(
        server.handle(&server1, &round1),
        Err(MpcError::WrongSession)
    ));

    // Refreshed pairings store and load like any other.
    let stored = Pairing::from_bytes(&device1.to_bytes().unwrap()).unwrap();
    assert_eq!(stored.epoch(), 1);
    assert_eq!(stored.public(), device1.public());
}

#[test]
fn a_bare_share_becomes_a_full_pairing_after_a_complete_refresh() {
    let (device, server) = keygen("operations/restore-keygen");
    let share = device.additive_share();
    let restore = |share: &[u8; 32]| {
        Pairing::restore(
            Role::Device,
            share,
            device.public().clone(),
            server.epoch(),
            server.engine_session().to_vec(),
        )
    };
    let restored = restore(&share).unwrap();
    assert!(!restored.can_sign());
    let request = SigningRequest {
        operation: "operations/too-early",
        path: &[],
        digest: [0; 32],
    };
    assert!(matches!(
        Signing::start_device(&restored, &request),
        Err(MpcError::InvalidState(_))
    ));
    // Someone else's share is refused.
    assert!(restore(&server.additive_share()).is_err());

    let (device1, server1) = refresh(&restored, &server, "operations/restore-refresh");
    assert!(device1.can_sign());
    assert_eq!(key_sum(&device1, &server1), key_sum(&device, &server));
    sign(&device1, &server1, &[0, 0], [8u8; 32]);
}

/// Where a refresh can stop: after each message is produced or handled, one side loses its
/// in-memory session (a crash, a closed tab, a lost response).
#[derive(Clone, Copy, Debug)]
enum StopAt {
    DeviceAfterRound1,
    ServerAfterRound2,
    DeviceAfterRound3,
    ServerAfterRound4,
    DeviceAfterDone,
}

#[test]
fn a_refresh_stopped_at_any_step_leaves_a_usable_pairing() {
    let (device0, server0) = keygen("operations/epochs-keygen");
    let digest = [2u8; 32];
    for stop in [
        StopAt::DeviceAfterRound1,
        StopAt::ServerAfterRound2,
        StopAt::DeviceAfterRound3,
        StopAt::ServerAfterRound4,
        StopAt::DeviceAfterDone,
    ] {
        let name = format!("operations/refresh-{stop:?}");
        let mut server_epochs =
            EpochSet::new(Pairing::from_bytes(&server0.to_bytes().unwrap()).unwrap());
        let mut device_pairing = Pairing::from_bytes(&device0.to_bytes().unwrap()).unwrap();

        let (mut device_session, round1) =
            Refresh::start_device(&device_pairing, refresh_context(&name)).unwrap();
        if !matches!(stop, StopAt::DeviceAfterRound1) {
            let base = server_epochs.get(0).unwrap();
            let mut server_session = Refresh::new_server(base, refresh_context(&name)).unwrap();
            let round2 = server_session.handle(base, &round1).unwrap().reply.unwrap();
            if !matches!(stop, StopAt::ServerAfterRound2) {
                let round3 = device_session
                    .handle(&device_pairing, &round2)
                    .unwrap()
                    .reply
                    .unwrap();
                if !matches!(stop, StopAt::DeviceAfterRound3) {
                    let step = server_session
                        .handle(server_epochs.get(0).unwrap(), &round3)
                        .unwrap();
                    server_epochs.add_refreshed(step.output.unwrap()).unwrap();
                    if matches!(stop, StopAt::DeviceAfterDone) {
                        let next = device_session
                            .handle(&device_pairing, &step.reply.unwrap())
                            .unwrap();
                        device_pairing = next.output.unwrap();
                    }
                }
            }
        }

        // Whatever the device holds now, the server still has its counterpart and they sign.
        let epoch = device_pairing.epoch();
        let server_pairing = server_epochs
            .get(epoch)
            .unwrap_or_else(|| panic!("{stop:?}: no epoch {epoch}"));
        sign(&device_pairing, server_pairing, &[0, 1], digest);
        server_epochs.used(epoch);
        // The server keeps epoch 1 it made while the device may still fetch the last message.
        let held = if matches!(stop, StopAt::ServerAfterRound4) {
            vec![0, 1]
        } else {
            vec![epoch]
        };
        assert_eq!(server_epochs.epochs(), held, "{stop:?}");
        let expected_epoch = if matches!(stop, StopAt::DeviceAfterDone) {
            1
        } else {
            0
        };
        assert_eq!(epoch, expected_epoch, "{stop:?}");
    }
}

#[test]
fn an_orphaned_epoch_is_replaced_by_the_next_refresh() {
    let (device0, server0) = keygen("operations/orphan-keygen");
    let mut server_epochs = EpochSet::new(server0);
    // A refresh whose last message the device never got: the server holds an orphan epoch 1.
    let (_, orphan) = refresh(
        &device0,
        server_epochs.get(0).unwrap(),
        "operations/orphan-1",
    );
    server_epochs.add_refreshed(orphan).unwrap();
    assert_eq!(server_epochs.epochs(), vec![0, 1]);
    // The device refreshes epoch 0 again; its epoch 1 replaces the orphan.
    let (device1, server1) = refresh(
        &device0,
        server_epochs.get(0).unwrap(),
        "operations/orphan-2",
    );
    server_epochs.add_refreshed(server1).unwrap();
    sign(&device1, server_epochs.get(1).unwrap(), &[], [3u8; 32]);
    server_epochs.used(1);
    assert_eq!(server_epochs.epochs(), vec![1]);
    // Only the next epoch of the confirmed one may be added.
    let (_, stale) = keygen("operations/other-wallet");
    assert!(server_epochs.add_refreshed(stale).is_err());
}

#[test]
fn a_refresh_of_the_pending_epoch_confirms_it() {
    let (device0, server0) = keygen("operations/pending-keygen");
    let mut server_epochs = EpochSet::new(server0);
    let (device1, server1) = refresh(
        &device0,
        server_epochs.get(0).unwrap(),
        "operations/pending-1",
    );
    server_epochs.add_refreshed(server1).unwrap();
    // The device refreshes again before it ever signs with epoch 1: that proves it holds epoch 1.
    let (device2, server2) = refresh(
        &device1,
        server_epochs.get(1).unwrap(),
        "operations/pending-2",
    );
    server_epochs.add_refreshed(server2).unwrap();
    assert_eq!(server_epochs.epochs(), vec![1, 2]);
    sign(&device2, server_epochs.get(2).unwrap(), &[], [4u8; 32]);
    server_epochs.used(2);
    assert_eq!(server_epochs.epochs(), vec![2]);
}
