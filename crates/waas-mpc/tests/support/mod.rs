//! Drives both parties in one process, passing each message on as bytes exactly as the network
//! would carry it. Shared by the native and the wasm test suites.
#![allow(dead_code)]

use waas_mpc::{Keygen, Pairing, Refresh, SessionId, Signature, Signing, SigningRequest};

/// A complete key generation; the server's session goes through its stored form between rounds.
pub(crate) fn keygen(name: &str) -> (Pairing, Pairing) {
    let context = SessionId::derive("keygen", &[name.as_bytes()]);
    let (mut device, round1) = Keygen::start_device(context).unwrap();
    let mut server = Keygen::new_server(context);

    let round2 = server.handle(&round1).unwrap().reply.unwrap();
    let mut server = Keygen::from_bytes(&server.to_bytes().unwrap()).unwrap();
    let round3 = device.handle(&round2).unwrap().reply.unwrap();
    let step = server.handle(&round3).unwrap();
    let server_pairing = step.output.unwrap();
    let step = device.handle(&step.reply.unwrap()).unwrap();
    assert!(step.reply.is_none());
    (step.output.unwrap(), server_pairing)
}

/// A complete signing session; both parties must produce the same signature.
pub(crate) fn sign(
    device: &Pairing,
    server: &Pairing,
    path: &[u32],
    digest: [u8; 32],
) -> Signature {
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

pub(crate) fn refresh_context(name: &str) -> SessionId {
    SessionId::derive("refresh", &[name.as_bytes()])
}

/// A complete refresh of both pairings, the server's session stored between its rounds.
pub(crate) fn refresh(device: &Pairing, server: &Pairing, name: &str) -> (Pairing, Pairing) {
    let (mut device_session, round1) =
        Refresh::start_device(device, refresh_context(name)).unwrap();
    let mut server_session = Refresh::new_server(server, refresh_context(name)).unwrap();
    let round2 = server_session
        .handle(server, &round1)
        .unwrap()
        .reply
        .unwrap();
    let mut server_session = Refresh::from_bytes(&server_session.to_bytes().unwrap()).unwrap();
    let round3 = device_session
        .handle(device, &round2)
        .unwrap()
        .reply
        .unwrap();
    let step = server_session.handle(server, &round3).unwrap();
    let next_server = step.output.unwrap();
    let next_device = device_session
        .handle(device, &step.reply.unwrap())
        .unwrap()
        .output
        .unwrap();
    (next_device, next_server)
}
