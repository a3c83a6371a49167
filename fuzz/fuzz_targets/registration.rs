//! RegisterDevice's registration data (`RegistrationData::decode`): never a panic, and data it
//! accepts encodes back to the same text (the layout has one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_api::RegistrationData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(registration) = RegistrationData::decode(text) {
        assert_eq!(registration.encode(), text);
    }
});
