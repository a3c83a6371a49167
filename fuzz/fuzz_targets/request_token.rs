//! The request token (device JWT) every authenticated request carries, read as the server reads
//! it before it looks up the signer (`RequestToken::parse`): never a panic; a token it accepts is
//! exactly its signed part, a dot and its signature, and its claims survive a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_api::auth::{MAX_TOKEN_LEN, RequestClaims, RequestToken};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = RequestToken::parse(text) {
        assert!(text.len() <= MAX_TOKEN_LEN);
        assert_eq!(format!("{}.{}", token.signed, token.signature), text);
        assert_eq!(token.signed.matches('.').count(), 1);
        let json = serde_json::to_vec(&token.claims).expect("claims serialize");
        let again: RequestClaims = serde_json::from_slice(&json).expect("claims read back");
        assert_eq!(again, token.claims);
    }
});
