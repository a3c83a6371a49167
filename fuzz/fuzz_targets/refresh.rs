//! Refresh's rounds (1 to 4) handed to the receiving party's real session with its real pairing,
//! as the server runs it (a fresh server session for round 1, a stored one after it) and as the
//! SDK's device does: never a panic, and a refused message leaves the session as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_fuzz_fixtures::{handle_hostile, pairing, refresh, refresh_context};
use waas_mpc::{Protocol, Refresh, Role};

fuzz_target!(|data: &[u8]| {
    handle_hostile(
        data,
        Protocol::Refresh,
        refresh(),
        || Refresh::new_server(pairing(Role::Server), refresh_context()),
        Refresh::from_bytes,
        |session, role, message| session.handle(pairing(role), message),
        Refresh::to_bytes,
    );
});
