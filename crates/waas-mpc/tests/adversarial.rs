//! Messages an attacker on the network (or a misbehaving peer) could send: truncated, corrupted,
//! replayed from another session, duplicated, reordered, reflected, or with tampered protocol
//! data. Each gets its own typed error. Header and framing errors leave the session exactly as it
//! was (the genuine message still completes it); tampered OT data and a final signature that does
//! not verify are terminal for the pairing.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_mpc::{
    DecodeError, DerivationError, Envelope, Keygen, MAX_MESSAGE_BYTES, MpcError, Pairing, Protocol,
    Refresh, SessionId, Signing, SigningRequest, Step, WIRE_VERSION,
};

/// Header layout: version, protocol, session (32 bytes), round, sender, then the payload.
const HEADER_LEN: usize = 36;

/// A corruption of a genuine message, and the check that must catch it.
struct Corruption {
    name: &'static str,
    apply: fn(&[u8]) -> Vec<u8>,
    expect: fn(&MpcError) -> bool,
}

fn with_header(bytes: &[u8], edit: impl FnOnce(&mut Envelope)) -> Vec<u8> {
    let mut envelope = Envelope::decode(bytes).unwrap();
    edit(&mut envelope);
    envelope.encode()
}

fn corruptions() -> Vec<Corruption> {
    vec![
        Corruption {
            name: "empty",
            apply: |_| Vec::new(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::Truncated)),
        },
        Corruption {
            name: "header only, cut short",
            apply: |b| b[..HEADER_LEN - 1].to_vec(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::Truncated)),
        },
        Corruption {
            name: "payload cut short",
            apply: |b| b[..b.len() - 1].to_vec(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::Payload(_))),
        },
        Corruption {
            name: "payload cut in half",
            apply: |b| b[..HEADER_LEN + (b.len() - HEADER_LEN) / 2].to_vec(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::Payload(_))),
        },
        Corruption {
            name: "trailing byte",
            apply: |b| [b, &[0]].concat(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::TrailingBytes)),
        },
        Corruption {
            name: "oversize",
            apply: |b| [b, &vec![0; MAX_MESSAGE_BYTES]].concat(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::TooLarge { .. })),
        },
        Corruption {
            name: "future wire version",
            apply: |b| [&[WIRE_VERSION + 1], &b[1..]].concat(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::UnsupportedVersion(_))),
        },
        Corruption {
            name: "unknown protocol",
            apply: |b| [&b[..1], &[0xee], &b[2..]].concat(),
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::UnknownProtocol(0xee))),
        },
        Corruption {
            name: "another protocol",
            apply: |b| {
                with_header(b, |e| {
                    e.protocol = if e.protocol == Protocol::Sign {
                        Protocol::Keygen
                    } else {
                        Protocol::Sign
                    }
                })
            },
            expect: |e| matches!(e, MpcError::WrongProtocol),
        },
        Corruption {
            name: "session bit flipped",
            apply: |b| {
                let mut b = b.to_vec();
                b[2] ^= 1;
                b
            },
            expect: |e| matches!(e, MpcError::WrongSession),
        },
        Corruption {
            name: "next round",
            apply: |b| with_header(b, |e| e.round += 1),
            expect: |e| matches!(e, MpcError::WrongRound { .. }),
        },
        Corruption {
            name: "reflected (claims our own role)",
            apply: |b| with_header(b, |e| e.sender = e.sender.peer()),
            expect: |e| matches!(e, MpcError::WrongSender { .. }),
        },
        Corruption {
            name: "unknown role",
            apply: |b| {
                let mut b = b.to_vec();
                b[HEADER_LEN - 1] = 7;
                b
            },
            expect: |e| matches!(e, MpcError::Malformed(DecodeError::UnknownRole(7))),
        },
    ]
}

/// One side of a session under test: takes a message, returning its reply and, once finished,
/// a value both sides must agree on; and shows its stored state.
trait UnderTest {
    type Output: PartialEq + std::fmt::Debug;
    fn handle(&mut self, message: &[u8]) -> Result<Step<Self::Output>, MpcError>;
    fn state(&self) -> Vec<u8>;
}

impl UnderTest for Keygen {
    type Output = waas_mpc::PairingPublic;
    fn handle(&mut self, message: &[u8]) -> Result<Step<Self::Output>, MpcError> {
        let step = Keygen::handle(self, message)?;
        Ok(Step {
            reply: step.reply,
            output: step.output.map(|pairing| pairing.public().clone()),
        })
    }
    fn state(&self) -> Vec<u8> {
        self.to_bytes().unwrap().to_vec()
    }
}

impl UnderTest for (Signing, &Pairing) {
    type Output = waas_mpc::Signature;
    fn handle(&mut self, message: &[u8]) -> Result<Step<Self::Output>, MpcError> {
        self.0.handle(self.1, message)
    }
    fn state(&self) -> Vec<u8> {
        self.0.to_bytes().unwrap().to_vec()
    }
}

impl UnderTest for (Refresh, &Pairing) {
    type Output = (u64, waas_mpc::PairingPublic);
    fn handle(&mut self, message: &[u8]) -> Result<Step<Self::Output>, MpcError> {
        let step = self.0.handle(self.1, message)?;
        Ok(Step {
            reply: step.reply,
            output: step
                .output
                .map(|pairing| (pairing.epoch(), pairing.public().clone())),
        })
    }
    fn state(&self) -> Vec<u8> {
        self.0.to_bytes().unwrap().to_vec()
    }
}

/// Runs a session from the device's round-1 message to its end. Before each genuine message, its
/// receiver is offered every corruption of it: each must be rejected with its own error, never a
/// terminal one, and leave the receiver's stored state byte for byte as it was. Returns what both
/// sides finished with.
fn run_through_corruptions<T: UnderTest>(
    round1: Vec<u8>,
    device: &mut T,
    server: &mut T,
) -> T::Output {
    let (mut device_output, mut server_output) = (None, None);
    let mut message = Some(round1);
    let mut to_server = true;
    while let Some(genuine) = message.take() {
        let (receiver, output) = if to_server {
            (&mut *server, &mut server_output)
        } else {
            (&mut *device, &mut device_output)
        };
        let before = receiver.state();
        for corruption in corruptions() {
            let error = receiver
                .handle(&(corruption.apply)(&genuine))
                .expect_err(corruption.name);
            assert!(
                (corruption.expect)(&error),
                "{}: got {error:?}",
                corruption.name
            );
            assert!(!error.is_terminal(), "{}", corruption.name);
            assert_eq!(
                receiver.state(),
                before,
                "{} changed the session",
                corruption.name
            );
        }
        let step = receiver.handle(&genuine).unwrap();
        *output = step.output.or(output.take());
        message = step.reply;
        to_server = !to_server;
    }
    assert_eq!(device_output, server_output);
    device_output.unwrap()
}

#[test]
fn keygen_rejects_every_corruption_and_then_completes() {
    let context = SessionId::derive("keygen", &[b"operations/adversarial"]);
    let (mut device, round1) = Keygen::start_device(context).unwrap();
    run_through_corruptions(round1, &mut device, &mut Keygen::new_server(context));
}

#[test]
fn keygen_rejects_replays_duplicates_reordering_and_late_messages() {
    let context_a = SessionId::derive("keygen", &[b"operations/a"]);
    let context_b = SessionId::derive("keygen", &[b"operations/b"]);
    let (mut device_a, a1) = Keygen::start_device(context_a).unwrap();
    let (_, b1) = Keygen::start_device(context_b).unwrap();
    let mut server_a = Keygen::new_server(context_a);

    // Another session's message.
    assert!(matches!(server_a.handle(&b1), Err(MpcError::WrongSession)));
    let a2 = server_a.handle(&a1).unwrap().reply.unwrap();
    // The same message again (a retry or a replay).
    assert!(matches!(
        server_a.handle(&a1),
        Err(MpcError::WrongRound {
            expected: 3,
            got: 1
        })
    ));
    // A party's own message sent back to it.
    assert!(matches!(
        device_a.handle(&a1),
        Err(MpcError::WrongSender { .. })
    ));
    let a3 = device_a.handle(&a2).unwrap().reply.unwrap();
    // Reordered: round 2 again after round 3 went out.
    assert!(matches!(
        device_a.handle(&a2),
        Err(MpcError::WrongRound {
            expected: 4,
            got: 2
        })
    ));
    let a4 = server_a.handle(&a3).unwrap().reply.unwrap();
    device_a.handle(&a4).unwrap().output.unwrap();
    // Anything after the end.
    assert!(matches!(device_a.handle(&a4), Err(MpcError::SessionOver)));
    assert!(matches!(server_a.handle(&a3), Err(MpcError::SessionOver)));
}

#[test]
fn keygen_payload_tampering_ends_the_session_without_a_pairing() {
    let context = SessionId::derive("keygen", &[b"operations/tamper"]);
    // Flip one byte at several places in the device's commitments and openings (round 3).
    for eighth in 1..8 {
        let (mut device, round1) = Keygen::start_device(context).unwrap();
        let mut server = Keygen::new_server(context);
        let round2 = server.handle(&round1).unwrap().reply.unwrap();
        let mut round3 = device.handle(&round2).unwrap().reply.unwrap();
        let at = HEADER_LEN + (round3.len() - HEADER_LEN) * eighth / 8;
        round3[at] ^= 0x5a;
        match server.handle(&round3) {
            Err(MpcError::Rejected(_) | MpcError::Malformed(_)) => {}
            other => panic!(
                "byte {at}: expected a rejection, got {:?}",
                other.map(|s| s.output.is_some())
            ),
        }
    }
}

fn request(digest: [u8; 32]) -> SigningRequest<'static> {
    SigningRequest {
        operation: "operations/sign-adversarial",
        path: &[0, 7],
        digest,
    }
}

fn pairings() -> (Pairing, Pairing) {
    support::keygen("operations/keygen-for-signing")
}

#[test]
fn signing_rejects_every_corruption_and_then_completes() {
    let (device_pairing, server_pairing) = pairings();
    let request = request([3; 32]);
    let (device, round1) = Signing::start_device(&device_pairing, &request).unwrap();
    let server = Signing::new_server(&server_pairing, &request).unwrap();
    run_through_corruptions(
        round1,
        &mut (device, &device_pairing),
        &mut (server, &server_pairing),
    );
}

#[test]
fn signing_rejects_other_sessions_and_other_pairings() {
    let (device_pairing, server_pairing) = pairings();
    let (_, other_round1) = Signing::start_device(&device_pairing, &request([1; 32])).unwrap();
    let mut server = Signing::new_server(&server_pairing, &request([2; 32])).unwrap();
    // A message signing another digest is another session.
    assert!(matches!(
        server.handle(&server_pairing, &other_round1),
        Err(MpcError::WrongSession)
    ));

    // A session runs only with the pairing it started with.
    let (_, stranger) = pairings();
    assert!(matches!(
        server.handle(&stranger, &other_round1),
        Err(MpcError::InvalidState(_))
    ));
    // And each side only with its own half.
    assert!(Signing::new_server(&device_pairing, &request([2; 32])).is_err());
    // Hardened derivation would need the private key inside MPC.
    let hardened = SigningRequest {
        path: &[0x8000_0000],
        ..request([2; 32])
    };
    assert!(matches!(
        Signing::start_device(&device_pairing, &hardened),
        Err(MpcError::Derivation(_))
    ));
}

/// Flips one byte in the middle of a message: inside the bulk OT-extension data.
fn flip_middle(message: &mut [u8]) {
    let middle = HEADER_LEN + (message.len() - HEADER_LEN) / 2;
    message[middle] ^= 0x01;
}

#[test]
fn tampered_ot_data_from_the_device_is_terminal() {
    let (device_pairing, server_pairing) = pairings();
    let request = request([4; 32]);
    let (_, mut round1) = Signing::start_device(&device_pairing, &request).unwrap();
    flip_middle(&mut round1);
    let mut server = Signing::new_server(&server_pairing, &request).unwrap();
    let error = server.handle(&server_pairing, &round1).unwrap_err();
    assert!(error.is_terminal(), "got {error:?}");
    assert!(
        error
            .to_string()
            .contains("multiplication verification failed"),
        "{error}"
    );
    assert!(matches!(
        server.handle(&server_pairing, &round1),
        Err(MpcError::SessionOver)
    ));
}

#[test]
fn tampered_ot_data_from_the_server_is_terminal() {
    let (device_pairing, server_pairing) = pairings();
    let request = request([5; 32]);
    let (mut device, round1) = Signing::start_device(&device_pairing, &request).unwrap();
    let mut server = Signing::new_server(&server_pairing, &request).unwrap();
    let mut round2 = server
        .handle(&server_pairing, &round1)
        .unwrap()
        .reply
        .unwrap();
    // Round 2 carries phase 1 (~27 KB) then phase 2 (~54 KB): three quarters in is phase 2's OT data.
    let at = HEADER_LEN + (round2.len() - HEADER_LEN) * 3 / 4;
    round2[at] ^= 0x01;
    let error = device.handle(&device_pairing, &round2).unwrap_err();
    assert!(error.is_terminal(), "got {error:?}");
    assert!(
        error
            .to_string()
            .contains("multiplication verification failed"),
        "{error}"
    );
}

#[test]
fn a_final_signature_that_does_not_verify_is_terminal() {
    let (device_pairing, server_pairing) = pairings();
    let request = request([6; 32]);
    let (mut device, round1) = Signing::start_device(&device_pairing, &request).unwrap();
    let mut server = Signing::new_server(&server_pairing, &request).unwrap();
    let round2 = server
        .handle(&server_pairing, &round1)
        .unwrap()
        .reply
        .unwrap();
    let round3 = device
        .handle(&device_pairing, &round2)
        .unwrap()
        .reply
        .unwrap();
    let mut round4 = server
        .handle(&server_pairing, &round3)
        .unwrap()
        .reply
        .unwrap();
    // The last byte is the low byte of the server's share of the signature's numerator.
    let last = round4.len() - 1;
    round4[last] ^= 0x01;
    let error = device.handle(&device_pairing, &round4).unwrap_err();
    assert!(error.is_terminal(), "got {error:?}");
    assert!(
        error.to_string().contains("signature verification failed"),
        "{error}"
    );
}

#[test]
fn keygen_refuses_a_result_when_the_server_saw_another_transcript() {
    let context = SessionId::derive("keygen", &[b"operations/transcript"]);
    let (mut device, round1) = Keygen::start_device(context).unwrap();
    let mut server = Keygen::new_server(context);
    let round2 = server.handle(&round1).unwrap().reply.unwrap();
    let round3 = device.handle(&round2).unwrap().reply.unwrap();
    let mut round4 = server.handle(&round3).unwrap().reply.unwrap();
    // The transcript hash is round 4's last field.
    let last = round4.len() - 1;
    round4[last] ^= 1;
    let error = device.handle(&round4).unwrap_err();
    assert!(
        error.to_string().contains("different transcript"),
        "{error}"
    );
    assert!(!error.is_terminal());
}

#[test]
fn refresh_rejects_every_corruption_and_then_completes() {
    let (device_pairing, server_pairing) = pairings();
    let context = SessionId::derive("refresh", &[b"operations/refresh-adversarial"]);
    let (device, round1) = Refresh::start_device(&device_pairing, context).unwrap();
    let server = Refresh::new_server(&server_pairing, context).unwrap();
    let (epoch, _) = run_through_corruptions(
        round1,
        &mut (device, &device_pairing),
        &mut (server, &server_pairing),
    );
    assert_eq!(epoch, 1);
}

/// Copies of `genuine` with one payload byte that holds a party index (1 or 2) swapped for the
/// other index: this is how a misrouted engine message looks.
fn party_byte_swaps(genuine: &[u8]) -> Vec<Vec<u8>> {
    let envelope = Envelope::decode(genuine).unwrap();
    (0..envelope.payload.len())
        .filter(|at| matches!(envelope.payload[*at], 1 | 2))
        .map(|at| {
            let mut copy = envelope.clone();
            copy.payload[at] = 3 - copy.payload[at];
            copy.encode()
        })
        .collect()
}

/// Every misrouting (and anything else malformed) found by swapping party bytes in the small
/// round-2 messages is rejected before the session's state changes: the same session then takes
/// the genuine message.
#[test]
fn misrouted_engine_messages_leave_the_session_usable() {
    let (device_pairing, server_pairing) = pairings();
    let mut misrouted = 0;

    let context = SessionId::derive("keygen", &[b"operations/misrouted"]);
    let (device, round1) = Keygen::start_device(context).unwrap();
    let round2 = Keygen::new_server(context)
        .handle(&round1)
        .unwrap()
        .reply
        .unwrap();
    let stored = device.to_bytes().unwrap();
    for bad in party_byte_swaps(&round2) {
        let mut device = Keygen::from_bytes(&stored).unwrap();
        if let Err(error) = device.handle(&bad)
            && matches!(error, MpcError::Malformed(_))
        {
            misrouted += usize::from(matches!(
                error,
                MpcError::Malformed(DecodeError::WrongParty(_))
            ));
            device.handle(&round2).unwrap().reply.unwrap();
        }
    }

    let context = SessionId::derive("refresh", &[b"operations/misrouted"]);
    let (device, round1) = Refresh::start_device(&device_pairing, context).unwrap();
    let mut server = Refresh::new_server(&server_pairing, context).unwrap();
    let round2 = server
        .handle(&server_pairing, &round1)
        .unwrap()
        .reply
        .unwrap();
    let stored = device.to_bytes().unwrap();
    for bad in party_byte_swaps(&round2) {
        let mut device = Refresh::from_bytes(&stored).unwrap();
        if let Err(error) = device.handle(&device_pairing, &bad)
            && matches!(error, MpcError::Malformed(_))
        {
            misrouted += usize::from(matches!(
                error,
                MpcError::Malformed(DecodeError::WrongParty(_))
            ));
            device
                .handle(&device_pairing, &round2)
                .unwrap()
                .reply
                .unwrap();
        }
    }
    assert!(
        misrouted >= 3,
        "the routing fields were exercised ({misrouted} misroutings)"
    );
}

#[test]
fn signing_refuses_paths_deeper_than_bip32_allows() {
    let (device_pairing, _) = pairings();
    let deep = vec![0u32; 256];
    let request = SigningRequest {
        path: &deep,
        ..request([9; 32])
    };
    assert!(matches!(
        Signing::start_device(&device_pairing, &request),
        Err(MpcError::Derivation(DerivationError::TooDeep))
    ));
}
