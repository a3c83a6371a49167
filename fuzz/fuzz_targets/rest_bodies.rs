//! The JSON bodies of the REST API's requests, read with serde_json as the server reads them (its
//! body extractor is `serde_json::from_slice`); the first byte picks the request type. Never a
//! panic; a body it accepts survives serialize → parse unchanged; a signature request's typed
//! payload has its digest computed, as the server does (EIP-712 included: bounded in depth and
//! work, see waas-eth's typed_data.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use waas_api::export::{AddDeviceRequest, PrepareDeviceArchiveRequest, PrepareDeviceBackupRequest};
use waas_api::passcode::{
    PasscodeLoginFinishRequest, PasscodeLoginStartRequest, PasscodeRegisterFinishRequest,
    PasscodeRegisterStartRequest,
};
use waas_api::resources::{
    CreateMpcKeyRequest, CreateMpcWalletRequest, CreatePoolRequest, CreateSignatureRequest,
    ExchangeRequest, GenerateAddressRequest, RegisterDeviceRequest, RevokeDeviceRequest,
};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    body: &[u8],
) -> Option<T> {
    let request: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_vec(&request).expect("a request serializes");
    let again: T = serde_json::from_slice(&json).expect("a serialized request parses");
    assert_eq!(again, request);
    Some(request)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 15 {
        0 => {
            if let Some(request) = round_trips::<CreateSignatureRequest>(body) {
                if let Some(payload) = request.typed_payload {
                    let _ = payload.digest();
                }
            }
        }
        1 => drop(round_trips::<ExchangeRequest>(body)),
        2 => drop(round_trips::<RegisterDeviceRequest>(body)),
        3 => drop(round_trips::<RevokeDeviceRequest>(body)),
        4 => drop(round_trips::<CreatePoolRequest>(body)),
        5 => drop(round_trips::<CreateMpcWalletRequest>(body)),
        6 => drop(round_trips::<GenerateAddressRequest>(body)),
        7 => drop(round_trips::<CreateMpcKeyRequest>(body)),
        8 => drop(round_trips::<PasscodeRegisterStartRequest>(body)),
        9 => drop(round_trips::<PasscodeRegisterFinishRequest>(body)),
        10 => drop(round_trips::<PasscodeLoginStartRequest>(body)),
        11 => drop(round_trips::<PasscodeLoginFinishRequest>(body)),
        12 => drop(round_trips::<PrepareDeviceArchiveRequest>(body)),
        13 => drop(round_trips::<PrepareDeviceBackupRequest>(body)),
        _ => drop(round_trips::<AddDeviceRequest>(body)),
    }
});
