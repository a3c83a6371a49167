//! BIP32: the published test vectors through our CKDpub and CKDpriv, and the MPC root's children
//! against an independent implementation (the `bip32` crate).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::str::FromStr;

use proptest::prelude::*;
use serde_json::Value;
use waas_mpc::{DerivationError, ExtendedPrivateKey, ExtendedPublicKey, parse_path};

fn vectors() -> Vec<Value> {
    let file: Value = serde_json::from_str(include_str!("data/bip32.json")).unwrap();
    file["vectors"].as_array().unwrap().clone()
}

#[test]
fn published_vectors_pass_through_ckd_pub_and_ckd_priv() {
    let mut edges = 0;
    for vector in vectors() {
        let chains = vector["chains"].as_array().unwrap();
        for entry in chains {
            let xpub = entry["xpub"].as_str().unwrap();
            let xprv = entry["xprv"].as_str().unwrap();
            // Every key decodes and encodes back to the same string, and the private one matches.
            let public = ExtendedPublicKey::from_str(xpub).unwrap();
            assert_eq!(public.to_string(), xpub);
            let private = ExtendedPrivateKey::from_xprv(xprv).unwrap();
            assert_eq!(*private.to_xprv(), xprv);
            assert_eq!(private.to_public(), public);
        }
        for pair in chains.windows(2) {
            let (parent, child) = (&pair[0], &pair[1]);
            let step = child["path"].as_str().unwrap().rsplit('/').next().unwrap();
            if step.ends_with('H') {
                continue;
            }
            let index: u32 = step.parse().unwrap();
            let parent_public =
                ExtendedPublicKey::from_str(parent["xpub"].as_str().unwrap()).unwrap();
            assert_eq!(
                parent_public.child(index).unwrap().to_string(),
                child["xpub"].as_str().unwrap()
            );
            let parent_private =
                ExtendedPrivateKey::from_xprv(parent["xprv"].as_str().unwrap()).unwrap();
            assert_eq!(
                *parent_private.child(index).unwrap().to_xprv(),
                child["xprv"].as_str().unwrap()
            );
            edges += 1;
        }
    }
    assert_eq!(edges, 6, "the non-hardened edges of vectors 1-3");
}

#[test]
fn malformed_extended_keys_are_rejected() {
    let xpub = vectors()[0]["chains"][0]["xpub"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut typo = xpub.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        ExtendedPublicKey::from_str(&typo),
        Err(DerivationError::InvalidKey("bad checksum"))
    );
    assert!(ExtendedPublicKey::from_str(&xpub[..xpub.len() - 2]).is_err());
    assert!(ExtendedPublicKey::from_str("xpub0OIl").is_err());
    // An xprv is not an xpub, and the reverse.
    let xprv = vectors()[0]["chains"][0]["xprv"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ExtendedPublicKey::from_str(&xprv).is_err());
    assert!(ExtendedPrivateKey::from_xprv(&xpub).is_err());
    // Hardened children cannot be derived from public data, nor by the MPC root.
    let public = ExtendedPublicKey::from_str(&xpub).unwrap();
    assert_eq!(
        public.child(1 << 31),
        Err(DerivationError::Hardened(1 << 31))
    );
}

fn independent_child(xpub: &str, path: &[u32]) -> String {
    let mut key = bip32::XPub::from_str(xpub).unwrap();
    for index in path {
        key = key
            .derive_child(bip32::ChildNumber::new(*index, false).unwrap())
            .unwrap();
    }
    key.to_string(bip32::Prefix::XPUB)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The MPC root's xpub derives the same children as an independent BIP32 implementation.
    #[test]
    fn mpc_root_children_match_the_bip32_crate(path in prop::collection::vec(0u32..(1 << 31), 1..5)) {
        let root = root_xpub();
        prop_assert_eq!(root.derive(&path).unwrap().to_string(), independent_child(&root.to_string(), &path));
    }

    /// Paths print and parse back.
    #[test]
    fn paths_parse(path in prop::collection::vec(0u32..(1 << 31), 0..6)) {
        let text: String = std::iter::once("m".to_owned()).chain(path.iter().map(u32::to_string)).collect::<Vec<_>>().join("/");
        prop_assert_eq!(parse_path(&text).unwrap(), path);
    }
}

/// One key generation, shared by the property cases.
fn root_xpub() -> ExtendedPublicKey {
    static ROOT: std::sync::OnceLock<ExtendedPublicKey> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| support::keygen("operations/bip32-root").0.xpub())
        .clone()
}
