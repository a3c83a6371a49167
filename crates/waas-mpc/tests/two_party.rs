//! Both parties driven in one process: key generation, then signing, each message passed on as
//! bytes exactly as the network would carry it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use waas_mpc::{Keygen, Pairing, Role, SessionId, Signing, SigningRequest};

fn keygen(name: &str) -> (Pairing, Pairing) {
    let context = SessionId::derive("keygen", &[name.as_bytes()]);
    let (mut device, round1) = Keygen::start_device(context).unwrap();
    let mut server = Keygen::new_server(context);

    let round2 = server.handle(&round1).unwrap().reply.unwrap();
    // The server is stored between requests: round-trip it through bytes as the server does.
    let mut server = Keygen::from_bytes(&server.to_bytes().unwrap()).unwrap();
    let round3 = device.handle(&round2).unwrap().reply.unwrap();
    let step = server.handle(&round3).unwrap();
    let server_pairing = step.output.unwrap();
    let device_pairing = device.handle(&step.reply.unwrap()).unwrap().output.unwrap();
    (device_pairing, server_pairing)
}

fn sign(device: &Pairing, server: &Pairing, path: &[u32], digest: [u8; 32]) -> waas_mpc::Signature {
    let request = SigningRequest {
        operation: "operations/sign-1",
        path,
        digest,
    };
    let (mut device_session, round1) = Signing::start_device(device, &request).unwrap();
    let mut server_session = Signing::new_server(server, &request).unwrap();
    let round2 = server_session
        .handle(server, &round1)
        .unwrap()
        .reply
        .unwrap();
    let mut server_session = Signing::from_bytes(&server_session.to_bytes().unwrap()).unwrap();
    let round3 = device_session
        .handle(device, &round2)
        .unwrap()
        .reply
        .unwrap();
    let step = server_session.handle(server, &round3).unwrap();
    let server_signature = step.output.unwrap();
    let device_signature = device_session
        .handle(device, &step.reply.unwrap())
        .unwrap()
        .output
        .unwrap();
    assert_eq!(device_signature, server_signature);
    device_signature
}

#[test]
fn keygen_then_sign_at_the_root() {
    let (device, server) = keygen("operations/keygen-1");
    assert_eq!(device.role(), Role::Device);
    assert_eq!(server.role(), Role::Server);
    assert_eq!(device.public(), server.public());
    assert_eq!(device.epoch(), 0);

    let digest = [7u8; 32];
    let signature = sign(&device, &server, &[], digest);
    let key = VerifyingKey::from_sec1_bytes(&device.public().root_public_key).unwrap();
    let k256_signature = k256::ecdsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    key.verify_prehash(&digest, &k256_signature).unwrap();
    signature.verify(&key, &digest).unwrap();
    assert!(format!("{device:?}").contains("<redacted>"));
}

#[test]
fn signs_under_a_child_path() {
    let (device, server) = keygen("operations/keygen-2");
    let signature = sign(&device, &server, &[0, 3], [9u8; 32]);
    let root = VerifyingKey::from_sec1_bytes(&device.public().root_public_key).unwrap();
    // Not valid under the root: the child key signed.
    assert!(signature.verify(&root, &[9u8; 32]).is_err());
}
