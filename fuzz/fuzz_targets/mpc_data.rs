//! An operation's `mpcData` as the SDK reads it (`MpcData::decode`): never a panic, and data it
//! accepts survives encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_api::resources::MpcData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mpc_data) = MpcData::decode(text) {
        assert_eq!(MpcData::decode(&mpc_data.encode()), Ok(mpc_data));
    }
});
