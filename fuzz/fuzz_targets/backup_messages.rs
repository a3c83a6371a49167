//! The messages of PrepareDeviceBackup (rounds 1 to 3) and AddDevice (rounds 1 and 3, and the
//! server's partial of round 4), and the archive a device opens: each decoded as its receiver
//! decodes it, then checked with the receiver's real checks (proofs of knowledge, proven partial
//! decryptions, the sealed share). Never a panic; a decoded message encodes to bytes that decode
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_fuzz_fixtures::{RECOVERY, backup, pairing};
use waas_mpc::{
    Archive, ArchiveContext, BackupRound1, BackupRound2, BackupRound3, Half, MpcError, PartialUse,
    RecoveryRound1, RecoveryRound3, Role, ciphertext_ephemeral, open_server_share,
    verify_device_half, verify_key_share, verify_partial,
};

/// decode → encode → decode → encode gives the same bytes twice.
fn round_trips<T>(
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, MpcError>,
    encode: fn(&T) -> Result<Vec<u8>, MpcError>,
) -> Option<T> {
    let message = decode(bytes).ok()?;
    let once = encode(&message).expect("a decoded message encodes");
    let again = decode(&once).expect("an encoded message decodes");
    assert_eq!(encode(&again).expect("a decoded message encodes"), once);
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let fixture = backup();
    let context = fixture.context();
    match selector % 8 {
        // The server reads PrepareDeviceBackup's round 1.
        0 => {
            if let Some(round) = round_trips(bytes, BackupRound1::decode, BackupRound1::encode) {
                let _ = verify_key_share(&round.key_share, &context, Role::Device);
            }
        }
        // The device reads round 2.
        1 => {
            if let Some(round) = round_trips(bytes, BackupRound2::decode, BackupRound2::encode) {
                let _ = verify_key_share(&round.key_share, &context, Role::Server);
                let _ = ciphertext_ephemeral(&round.server_half);
            }
        }
        // The server reads round 3.
        2 => {
            if let Some(round) = round_trips(bytes, BackupRound3::decode, BackupRound3::encode) {
                let _ = verify_device_half(&round, &context);
            }
        }
        // The server reads AddDevice's round 1 and checks the device's partial on ct_s.
        3 => {
            if let Some(round) = round_trips(bytes, RecoveryRound1::decode, RecoveryRound1::encode)
            {
                let ephemeral = ciphertext_ephemeral(&fixture.server_half).expect("ct_s's R");
                let _ = verify_partial(
                    &round.server_half_partial,
                    &fixture.device.public(),
                    &ephemeral,
                    Half::Server,
                    &context,
                    Role::Device,
                    PartialUse::Recovery(&RECOVERY),
                );
            }
        }
        // The server reads AddDevice's round 3.
        4 => {
            let _ = round_trips(bytes, RecoveryRound3::decode, RecoveryRound3::encode);
        }
        // The device checks the server's partial on ct_x (the dry run's, and a recovery's).
        5 => {
            let ephemeral = ciphertext_ephemeral(&fixture.device_half).expect("ct_x's R");
            for usage in [PartialUse::DryRun, PartialUse::Recovery(&RECOVERY)] {
                let _ = verify_partial(
                    bytes,
                    &fixture.server.public(),
                    &ephemeral,
                    Half::Device,
                    &context,
                    Role::Server,
                    usage,
                );
            }
        }
        // The device reads a ciphertext's R, and a stored archive.
        6 => {
            let _ = ciphertext_ephemeral(bytes);
            if let Ok(archive) = Archive::decode(bytes) {
                assert_eq!(&archive.encode()[..], bytes);
            }
        }
        // The device opens the server's sealed share (ExportDeviceArchive's answer).
        _ => {
            let device = pairing(Role::Device);
            let archive_context = ArchiveContext {
                device_group: waas_fuzz_fixtures::GROUP,
                device: "devices/d1",
                pairing_id: &device.public().id,
                epoch: device.epoch(),
            };
            let _ = open_server_share(device, &[1; 32], &[2; 32], &archive_context, bytes);
        }
    }
});
