//! Backup and recovery's cryptography (docs/protocol/backup.md): the 2-of-2 decryption key with
//! proofs of knowledge, the two ciphertexts, proven partial decryptions, and the backup string;
//! each check with the attack it stops.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k256::ecdsa::SigningKey;
use k256::elliptic_curve::group::GroupEncoding;
use k256::elliptic_curve::sec1::ToSec1Point;
use waas_mpc::{
    BackupContext, BackupFacts, BackupRound3, BackupString, DecryptionShare, Half, MpcError,
    PartialUse, Role, backup_key, ciphertext_ephemeral, ciphertexts_hash, decrypt_half,
    encrypt_device_half, encrypt_half, verify_device_half, verify_key_share, verify_partial,
};

const GROUP: &str = "pools/default/deviceGroups/g1";
const BACKUP: &str = "pools/default/deviceGroups/g1/mpcOperations/b1";
const PAIRING: [u8; 32] = [4; 32];
/// The pairing's additive shares x_d (device) and s_d (server).
const DEVICE_SHARE: [u8; 32] = [3; 32];
const SERVER_SHARE: [u8; 32] = [5; 32];

fn public(secret: &[u8; 32]) -> [u8; 33] {
    SigningKey::from_slice(secret)
        .unwrap()
        .verifying_key()
        .as_affine()
        .to_sec1_point(true)
        .as_bytes()
        .try_into()
        .unwrap()
}

fn context() -> BackupContext<'static> {
    BackupContext {
        device_group: GROUP,
        backup: BACKUP,
        pairing_id: &PAIRING,
        epoch: 0,
    }
}

/// A backup made by both parties: their decryption halves, P, and both ciphertexts.
struct Made {
    device: DecryptionShare,
    server: DecryptionShare,
    key: [u8; 33],
    ct_x: Vec<u8>,
    ct_s: Vec<u8>,
}

fn make() -> Made {
    let context = context();
    let device = DecryptionShare::generate().unwrap();
    let server = DecryptionShare::generate().unwrap();
    // Each checks the other's half and its proof.
    let server_public = verify_key_share(
        &server.key_share_message(&context, Role::Server).unwrap(),
        &context,
        Role::Server,
    )
    .unwrap();
    let device_public = verify_key_share(
        &device.key_share_message(&context, Role::Device).unwrap(),
        &context,
        Role::Device,
    )
    .unwrap();
    assert_eq!(server_public, server.public());
    assert_eq!(device_public, device.public());
    let key = backup_key(&device_public, &server_public).unwrap();
    let ct_x = encrypt_half(&key, Half::Device, &DEVICE_SHARE, &context).unwrap();
    let ct_s = encrypt_half(&key, Half::Server, &SERVER_SHARE, &context).unwrap();
    Made {
        device,
        server,
        key,
        ct_x,
        ct_s,
    }
}

fn is_rejected<T>(result: Result<T, MpcError>) -> bool {
    matches!(result, Err(MpcError::Rejected(_)))
}

/// `share`'s partial decryption of `ciphertext` (holding `half`), made by `role` and verified as
/// the other party would: D_i.
fn proven_partial(
    share: &DecryptionShare,
    ciphertext: &[u8],
    half: Half,
    role: Role,
) -> k256::AffinePoint {
    let context = context();
    let ephemeral = ciphertext_ephemeral(ciphertext).unwrap();
    let partial = share
        .partial(&ephemeral, half, &context, role, PartialUse::DryRun)
        .unwrap();
    verify_partial(
        &partial,
        &share.public(),
        &ephemeral,
        half,
        &context,
        role,
        PartialUse::DryRun,
    )
    .unwrap()
}

#[test]
fn the_dry_run_and_a_recovery_open_both_halves() {
    let made = make();
    let context = context();
    // Backup's dry run: the server's proven partial on ct_x; the device opens its own share.
    let d_srv = proven_partial(&made.server, &made.ct_x, Half::Device, Role::Server);
    let x = decrypt_half(
        &made.ct_x,
        &made.device,
        &d_srv,
        &made.key,
        Half::Device,
        &context,
        &public(&DEVICE_SHARE),
    )
    .unwrap();
    assert_eq!(*x, DEVICE_SHARE);

    // Recovery: the device's proven partial on ct_s first (it proves the device holds the
    // backup); the server opens its share and checks it.
    let d_dev = proven_partial(&made.device, &made.ct_s, Half::Server, Role::Device);
    let s = decrypt_half(
        &made.ct_s,
        &made.server,
        &d_dev,
        &made.key,
        Half::Server,
        &context,
        &public(&SERVER_SHARE),
    )
    .unwrap();
    assert_eq!(*s, SERVER_SHARE);
}

#[test]
fn a_rogue_key_share_without_its_secret_is_refused() {
    // The server would like P to be a key it knows wholly: P_srv = Q − P_dev. It cannot prove
    // knowledge of that point's secret; a proof for another point does not carry over.
    let context = context();
    let honest = DecryptionShare::generate().unwrap();
    let message = honest.key_share_message(&context, Role::Server).unwrap();
    // The proof carries its point; changing any byte of it breaks the proof.
    for index in [1, 10, message.len() / 2, message.len() - 1] {
        let mut tampered = message.clone();
        tampered[index] ^= 1;
        assert!(
            verify_key_share(&tampered, &context, Role::Server).is_err(),
            "byte {index}"
        );
    }
}

#[test]
fn a_key_share_proof_is_bound_to_its_role_and_backup() {
    let context = context();
    let share = DecryptionShare::generate().unwrap();
    let message = share.key_share_message(&context, Role::Device).unwrap();
    // Replayed as the other party's half (a server echoing the device's P_dev to cancel it).
    assert!(is_rejected(verify_key_share(
        &message,
        &context,
        Role::Server
    )));
    // Replayed into another backup.
    let other = BackupContext {
        backup: "pools/default/deviceGroups/g1/mpcOperations/b2",
        ..context
    };
    assert!(is_rejected(verify_key_share(
        &message,
        &other,
        Role::Device
    )));
}

#[test]
fn a_backup_key_that_cancels_out_is_refused() {
    let share = DecryptionShare::generate().unwrap();
    let mut negated = share.public();
    negated[0] ^= 1; // 0x02 <-> 0x03: the same x, the other y: −P.
    assert!(is_rejected(backup_key(&share.public(), &negated)));
}

#[test]
fn a_wrong_partial_is_refused_before_any_decryption() {
    let made = make();
    let context = context();
    let r_x = ciphertext_ephemeral(&made.ct_x).unwrap();
    let r_s = ciphertext_ephemeral(&made.ct_s).unwrap();
    let partial = made
        .server
        .partial(
            &r_x,
            Half::Device,
            &context,
            Role::Server,
            PartialUse::DryRun,
        )
        .unwrap();
    // The device checks the server's partial against the server's P_srv from its own records.
    let check = |message: &[u8], ephemeral, half, context: &BackupContext<'_>, role| {
        verify_partial(
            message,
            &made.server.public(),
            ephemeral,
            half,
            context,
            role,
            PartialUse::DryRun,
        )
    };
    assert!(check(&partial, &r_x, Half::Device, &context, Role::Server).is_ok());
    // A server that offers ct_s's R as ct_x's, or a partial made for the other ciphertext.
    assert!(is_rejected(check(
        &partial,
        &r_s,
        Half::Device,
        &context,
        Role::Server
    )));
    assert!(is_rejected(check(
        &partial,
        &r_x,
        Half::Server,
        &context,
        Role::Server
    )));
    // Made with another decryption half than the P_srv the device holds.
    let forged = DecryptionShare::generate()
        .unwrap()
        .partial(
            &r_x,
            Half::Device,
            &context,
            Role::Server,
            PartialUse::DryRun,
        )
        .unwrap();
    assert!(is_rejected(check(
        &forged,
        &r_x,
        Half::Device,
        &context,
        Role::Server
    )));
    // Another role's or another backup's proof.
    assert!(is_rejected(check(
        &partial,
        &r_x,
        Half::Device,
        &context,
        Role::Device
    )));
    let elsewhere = BackupContext {
        epoch: 1,
        ..context
    };
    assert!(is_rejected(check(
        &partial,
        &r_x,
        Half::Device,
        &elsewhere,
        Role::Server
    )));
    // Any flipped byte.
    for index in [2, partial.len() / 2, partial.len() - 2] {
        let mut tampered = partial.clone();
        tampered[index] ^= 1;
        assert!(
            check(&tampered, &r_x, Half::Device, &context, Role::Server).is_err(),
            "byte {index}"
        );
    }
}

#[test]
fn a_ciphertext_opens_only_as_what_it_is() {
    let made = make();
    let context = context();
    let d_srv = proven_partial(&made.server, &made.ct_x, Half::Device, Role::Server);
    let open = |ciphertext: &[u8], half, context: &BackupContext<'_>, expected: &[u8; 33]| {
        decrypt_half(
            ciphertext,
            &made.device,
            &d_srv,
            &made.key,
            half,
            context,
            expected,
        )
    };
    let expected = public(&DEVICE_SHARE);
    // As the other half, in another backup or epoch, or altered: it does not open.
    assert!(is_rejected(open(
        &made.ct_x,
        Half::Server,
        &context,
        &expected
    )));
    let other = BackupContext {
        backup: "another",
        ..context
    };
    assert!(is_rejected(open(
        &made.ct_x,
        Half::Device,
        &other,
        &expected
    )));
    let mut altered = made.ct_x.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(is_rejected(open(
        &altered,
        Half::Device,
        &context,
        &expected
    )));
    // A share that opens but is not the one the records name (a server that encrypted another
    // share) is refused.
    let wrong = encrypt_half(&made.key, Half::Device, &[6; 32], &context).unwrap();
    let d_wrong = proven_partial(&made.server, &wrong, Half::Device, Role::Server);
    assert!(is_rejected(decrypt_half(
        &wrong,
        &made.device,
        &d_wrong,
        &made.key,
        Half::Device,
        &context,
        &expected
    )));
    // A truncated ciphertext, or one whose R is not a point.
    assert!(ciphertext_ephemeral(&made.ct_x[..50]).is_err());
    let mut bad_point = made.ct_x.clone();
    bad_point[1] = 0x07;
    assert!(ciphertext_ephemeral(&bad_point).is_err());
}

fn string_of(made: &Made) -> BackupString {
    BackupString::new(&made.device, facts_of(made))
}

/// The facts of `make()`'s backup; X = X_d + S_d ([3; 32] + [5; 32] = [8; 32], no carry).
fn facts_of(made: &Made) -> BackupFacts {
    BackupFacts {
        backup: BACKUP.into(),
        wallet: "pools/default/mpcWallets/w1".into(),
        device_group: GROUP.into(),
        pairing_id: PAIRING,
        epoch: 0,
        server_key_share: made.server.public(),
        root_public_key: public(&[8; 32]),
        chain_code: [9; 32],
        device_public_share: public(&DEVICE_SHARE),
        server_public_share: public(&SERVER_SHARE),
        ciphertexts_hash: ciphertexts_hash(&made.ct_x, &made.ct_s),
    }
}

#[test]
fn a_string_whose_facts_disagree_is_refused() {
    // Recovery takes every public fact from the string: one naming another root key than its
    // shares make, or a backup of another group, is refused when read.
    let made = make();
    let other_key = BackupFacts {
        root_public_key: public(&[9; 32]),
        ..facts_of(&made)
    };
    let other_group = BackupFacts {
        backup: "pools/default/deviceGroups/g2/mpcOperations/b1".into(),
        ..facts_of(&made)
    };
    for facts in [other_key, other_group] {
        let text = BackupString::new(&made.device, facts).encode().unwrap();
        assert!(BackupString::decode(&text).is_err());
    }
    assert!(BackupString::decode(&string_of(&made).encode().unwrap()).is_ok());
}

#[test]
fn the_backup_string_round_trips_and_refuses_typos() {
    let made = make();
    let string = string_of(&made);
    let text = string.encode().unwrap();
    assert!(text.starts_with("waasbackup1"));
    let read = BackupString::decode(&text).unwrap();
    assert_eq!(read.backup, BACKUP);
    assert_eq!(read.wallet, "pools/default/mpcWallets/w1");
    assert_eq!(read.server_key_share, made.server.public());
    assert_eq!(
        read.ciphertexts_hash,
        ciphertexts_hash(&made.ct_x, &made.ct_s)
    );
    assert_eq!(
        read.decryption_share().unwrap().public(),
        made.device.public()
    );
    // The half read back makes the partials of the original, in the original's context.
    assert_eq!(read.context().backup, context().backup);
    let share = read.decryption_share().unwrap();
    assert_eq!(
        proven_partial(&share, &made.ct_s, Half::Server, Role::Device),
        proven_partial(&made.device, &made.ct_s, Half::Server, Role::Device)
    );

    // One character changed, dropped or the prefix missing: refused.
    let mut typo = text.to_string();
    let middle = typo.len() / 2;
    let replacement = if &typo[middle..=middle] == "x" {
        "y"
    } else {
        "x"
    };
    typo.replace_range(middle..=middle, replacement);
    assert!(BackupString::decode(&typo).is_err());
    assert!(BackupString::decode(&text[..text.len() - 1]).is_err());
    assert!(BackupString::decode(&text["waasbackup1".len()..]).is_err());
    // Surrounding whitespace from a copy and paste is fine.
    assert!(BackupString::decode(&format!("  {}\n", text.as_str())).is_ok());
}

/// `text_of` (the fuzz target's way past the checksum) makes the strings `encode` makes, and a
/// content whose checksum holds is still read field by field: another version, a cut body or a
/// byte too many is refused.
#[test]
fn a_string_with_a_valid_checksum_is_still_checked_whole() {
    let made = make();
    let text = string_of(&made).encode().unwrap();
    let encoded = text.strip_prefix("waasbackup1").unwrap();
    let bytes = bs58::decode(encoded).into_vec().unwrap();
    let content = &bytes[..bytes.len() - 4];
    assert_eq!(*BackupString::text_of(content), *text);
    let mut other_version = content.to_vec();
    other_version[0] = 2;
    let longer = [content, &[0]].concat();
    for bad in [
        &other_version[..],
        &content[..content.len() - 1],
        &longer,
        &[],
    ] {
        assert!(BackupString::decode(&BackupString::text_of(bad)).is_err());
    }
}

#[test]
fn secrets_are_redacted() {
    let made = make();
    assert_eq!(format!("{:?}", made.device), "DecryptionShare(<redacted>)");
    assert_eq!(
        format!("{:?}", string_of(&made)),
        "BackupString(<redacted>)"
    );
}

#[test]
fn the_server_answers_only_for_an_r_the_device_provably_chose() {
    // The attack: a device sends ct_x whose R is ct_s's R blinded (R_s + G). The server's
    // partial d_srv·(R_s + G) minus P_srv is d_srv·R_s, its half of opening ct_s: with d_dev the
    // device would read s_d, the server's share. The proof of knowledge of r stops it: the
    // device cannot know the discrete log of R_s + G.
    let made = make();
    let context = context();
    let honest = encrypt_device_half(&made.key, &DEVICE_SHARE, &context).unwrap();
    assert_eq!(
        verify_device_half(&honest, &context).unwrap(),
        ciphertext_ephemeral(&honest.device_half).unwrap()
    );
    let r_s =
        k256::AffinePoint::from_bytes(&<[u8; 33]>::try_from(&made.ct_s[1..34]).unwrap().into())
            .unwrap();
    let blinded = (k256::ProjectivePoint::from(r_s) + k256::ProjectivePoint::GENERATOR)
        .to_affine()
        .to_sec1_point(true);
    let mut device_half = honest.device_half.clone();
    device_half[1..34].copy_from_slice(blinded.as_bytes());
    let attack = BackupRound3 {
        device_half,
        ephemeral_proof: honest.ephemeral_proof.clone(),
    };
    assert!(is_rejected(verify_device_half(&attack, &context)));
    // ct_s itself, or R_s unblinded, with any proof the device can make: refused the same way.
    let replayed = BackupRound3 {
        device_half: made.ct_s.clone(),
        ephemeral_proof: honest.ephemeral_proof.clone(),
    };
    assert!(is_rejected(verify_device_half(&replayed, &context)));
    // A proof made in another backup does not carry over.
    let other = BackupContext {
        backup: "another",
        ..context
    };
    assert!(is_rejected(verify_device_half(&honest, &other)));
}

#[test]
fn a_second_encoding_of_a_point_is_refused() {
    // SEC1's compact form (tag 0x05) names the same point as the compressed one: R is hashed as
    // bytes into the transcripts, so only the compressed form is accepted.
    let made = make();
    let mut compact = made.ct_x.clone();
    compact[1] = 0x05;
    assert!(ciphertext_ephemeral(&compact).is_err());
}
