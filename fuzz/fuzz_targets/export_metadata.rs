//! The export metadata a device reads from GetDeviceGroup (`ExportMetadata::decode`): never a
//! panic, and metadata it accepts survives encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_api::export::ExportMetadata;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(metadata) = ExportMetadata::decode(text) {
        assert_eq!(ExportMetadata::decode(&metadata.encode()), Ok(metadata));
    }
});
