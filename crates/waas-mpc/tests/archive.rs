//! The device archive (docs/protocol/archive.md): the server's share sealed to the device's
//! archive key and a login secret, opened and checked by the device, and the whole key rebuilt
//! from it; each check with the attack it stops.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::str::FromStr;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{SigningKey, VerifyingKey};
use k256::elliptic_curve::sec1::ToSec1Point;
use waas_mpc::{
    Archive, ArchiveContext, MpcError, Pairing, ethereum_address, open_server_share,
    seal_server_share,
};

const GROUP: &str = "pools/default/deviceGroups/g1";
const DEVICE: &str = "devices/d1";
const ARCHIVE_SECRET: [u8; 32] = [7; 32];
const LOGIN: [u8; 32] = [9; 32];

fn archive_key(secret: &[u8; 32]) -> [u8; 33] {
    let key = SigningKey::from_slice(secret).unwrap();
    key.verifying_key()
        .as_affine()
        .to_sec1_point(true)
        .as_bytes()
        .try_into()
        .unwrap()
}

fn context<'a>(pairing: &'a Pairing, device: &'a str) -> ArchiveContext<'a> {
    ArchiveContext {
        device_group: GROUP,
        device,
        pairing_id: &pairing.public().id,
        epoch: pairing.epoch(),
    }
}

fn sealed(server: &Pairing) -> Vec<u8> {
    seal_server_share(
        server,
        &archive_key(&ARCHIVE_SECRET),
        &LOGIN,
        &context(server, DEVICE),
    )
    .unwrap()
}

/// The device opens with the right key, login and context.
fn open(device: &Pairing, sealed: &[u8]) -> Result<Archive, MpcError> {
    open_server_share(
        device,
        &ARCHIVE_SECRET,
        &LOGIN,
        &context(device, DEVICE),
        sealed,
    )
}

#[test]
fn the_archive_rebuilds_the_wallet_key_and_every_address() {
    let (device, server) = support::keygen("archive");
    let archive = open(&device, &sealed(&server)).unwrap();
    let root = archive.root_key().unwrap();
    assert_eq!(root.to_public(), device.xpub());

    let paths: Vec<Vec<u32>> = (0..5).map(|i| vec![0, i]).collect();
    let keys = archive.derive(&paths).unwrap();
    let xprv = bip32::XPrv::from_str(&root.to_xprv()).unwrap();
    for (key, path) in keys.iter().zip(&paths) {
        let expected = device.xpub().derive(path).unwrap().public_key;
        assert_eq!(key.public_key, expected);
        assert_eq!(key.address, ethereum_address(&expected).unwrap());
        // The exported secret signs for that key ...
        let signing = SigningKey::from_slice(&key.secret[..]).unwrap();
        let digest = [0x42; 32];
        let (signature, _) = signing.sign_prehash_recoverable(&digest);
        VerifyingKey::from_sec1_bytes(&expected)
            .unwrap()
            .verify_prehash(&digest, &signature)
            .unwrap();
        // ... and an independent BIP32 library reaches the same key from the xprv.
        let child = path.iter().fold(xprv.clone(), |key, index| {
            key.derive_child(bip32::ChildNumber::new(*index, false).unwrap())
                .unwrap()
        });
        assert_eq!(child.private_key().to_bytes().as_slice(), &key.secret[..]);
    }
    // The MPC wallet signs for the same address the exported key signs for.
    let signature = support::sign(&device, &server, &[0, 3], [0x42; 32]);
    let signature = k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    VerifyingKey::from_sec1_bytes(&keys[3].public_key)
        .unwrap()
        .verify_prehash(&[0x42; 32], &signature)
        .unwrap();
}

#[test]
fn an_archive_made_before_a_refresh_still_exports_the_key_that_signs_after_it() {
    let (device, server) = support::keygen("archive-refresh");
    let before = open(&device, &sealed(&server)).unwrap();
    let (device, server) = support::refresh(&device, &server, "archive-refresh");
    assert_eq!(device.epoch(), 1);
    // New shares, same key: the old archive and one made now export the same keys.
    let after = open(&device, &sealed(&server)).unwrap();
    assert_ne!(*before.encode(), *after.encode());
    let paths = [vec![0, 1]];
    let old_key = &before.derive(&paths).unwrap()[0];
    assert_eq!(old_key.secret, after.derive(&paths).unwrap()[0].secret);
    // And it is the key the refreshed pairing signs with.
    let signature = support::sign(&device, &server, &[0, 1], [7; 32]);
    let signature = k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    VerifyingKey::from_sec1_bytes(&old_key.public_key)
        .unwrap()
        .verify_prehash(&[7; 32], &signature)
        .unwrap();
}

#[test]
fn the_archive_opens_only_with_its_key_login_and_context() {
    let (device, server) = support::keygen("archive-context");
    let sealed = sealed(&server);
    let attempts: [(&str, [u8; 32], [u8; 32], ArchiveContext<'_>); 5] = [
        // A thief who has the archive key but no login (guessed the passcode offline).
        (
            "another login",
            ARCHIVE_SECRET,
            [8; 32],
            context(&device, DEVICE),
        ),
        (
            "another archive key",
            [6; 32],
            LOGIN,
            context(&device, DEVICE),
        ),
        // A ciphertext made for one device is not taken by another.
        (
            "another device",
            ARCHIVE_SECRET,
            LOGIN,
            context(&device, "devices/d2"),
        ),
        (
            "another group",
            ARCHIVE_SECRET,
            LOGIN,
            ArchiveContext {
                device_group: "pools/default/deviceGroups/g2",
                ..context(&device, DEVICE)
            },
        ),
        (
            "another epoch",
            ARCHIVE_SECRET,
            LOGIN,
            ArchiveContext {
                epoch: 1,
                ..context(&device, DEVICE)
            },
        ),
    ];
    for (what, secret, login, context) in attempts {
        let error = open_server_share(&device, &secret, &login, &context, &sealed).unwrap_err();
        assert!(
            matches!(error, MpcError::Rejected(_) | MpcError::InvalidState(_)),
            "{what}: {error:?}"
        );
    }
}

#[test]
fn a_tampered_or_malformed_sealed_share_is_refused() {
    let (device, server) = support::keygen("archive-tamper");
    let sealed = sealed(&server);
    for index in [0, 1, 20, 40, 60, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[index] ^= 1;
        assert!(open(&device, &tampered).is_err(), "byte {index}");
    }
    for bad in [
        &sealed[..sealed.len() - 1],
        &[],
        &[sealed.as_slice(), &[0]].concat()[..],
    ] {
        assert!(open(&device, bad).is_err());
    }
    // The identity as the ephemeral key (a small-subgroup style probe) is refused before ECDH.
    let mut identity = sealed.clone();
    identity[1..34].fill(0);
    assert!(matches!(
        open(&device, &identity),
        Err(MpcError::Malformed(_))
    ));
}

#[test]
fn the_stored_form_round_trips_and_is_checked_whole() {
    let (device, server) = support::keygen("archive-stored");
    let archive = open(&device, &sealed(&server)).unwrap();
    let stored = archive.encode();
    let again = Archive::decode(&stored).unwrap();
    assert_eq!(again.public(), archive.public());
    assert_eq!(again.epoch(), 0);
    assert_eq!(
        *again.root_key().unwrap().to_xprv(),
        *archive.root_key().unwrap().to_xprv()
    );

    // A flipped bit in a share, a public share or the root key is caught: a share that does not
    // match its public point, or shares that do not make the root key. (The chain code has
    // nothing to be checked against here; the key store's AEAD covers the whole record, and the
    // export checks every derived key against the device's own records.)
    let len = stored.len();
    for index in [41, 73, 106, 139, 172, 204, len - 1] {
        let mut tampered = stored.to_vec();
        tampered[index] ^= 1;
        assert!(Archive::decode(&tampered).is_err(), "byte {index}");
    }
    let mut version = stored.to_vec();
    version[0] = 2;
    assert!(Archive::decode(&version).is_err());
    assert!(Archive::decode(&stored[..len - 1]).is_err());
    assert_eq!(format!("{archive:?}"), "Archive(<redacted>)");
}

#[test]
fn only_the_server_seals_and_only_the_device_opens() {
    let (device, server) = support::keygen("archive-roles");
    assert!(
        seal_server_share(
            &device,
            &archive_key(&ARCHIVE_SECRET),
            &LOGIN,
            &context(&device, DEVICE)
        )
        .is_err()
    );
    let sealed = sealed(&server);
    assert!(
        open_server_share(
            &server,
            &ARCHIVE_SECRET,
            &LOGIN,
            &context(&server, DEVICE),
            &sealed
        )
        .is_err()
    );
    // An invalid archive key (not on the curve) is refused before any work.
    assert!(seal_server_share(&server, &[5; 33], &LOGIN, &context(&server, DEVICE)).is_err());
}
