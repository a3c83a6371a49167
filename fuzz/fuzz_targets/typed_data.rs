//! EIP-712 typed data as `eth_signTypedData_v4` and CreateSignature's `typedPayload` carry it
//! (`waas_eth::typed_data_digest`): never a panic, a stack overflow or a long run (libFuzzer's
//! `-timeout` and the sanitizer's stack checks catch those), and the same digest every time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_eth::typed_data_digest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = typed_data_digest(text) {
        assert_eq!(typed_data_digest(text), Ok(digest));
    }
});
