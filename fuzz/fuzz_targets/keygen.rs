//! Key generation's rounds (1 to 4) handed to the receiving party's real session, as the server's
//! exchange runs it (a fresh server session for round 1, a stored one after it) and as the SDK's
//! device does: never a panic, and a refused message leaves the session as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_fuzz_fixtures::{handle_hostile, keygen, keygen_context};
use waas_mpc::{Keygen, Protocol};

fuzz_target!(|data: &[u8]| {
    handle_hostile(
        data,
        Protocol::Keygen,
        &keygen().transcript,
        || Ok(Keygen::new_server(keygen_context())),
        Keygen::from_bytes,
        |session, _, message| session.handle(message),
        Keygen::to_bytes,
    );
});
