//! The MPC wire envelope (`Envelope::decode`): never panics, and whatever it accepts encodes back
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_mpc::{Envelope, MAX_MESSAGE_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        assert!(data.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(envelope.encode(), data);
    }
});
