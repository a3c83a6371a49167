//! WebAuthn passkeys with the PRF extension: the browser's counterpart of a phone's secure
//! enclave. The authenticator turns a salt into 32 secret bytes only after user verification,
//! and the same credential and salt always give the same bytes, so they can wrap a key.
//!
//! The PRF output arrives as a JS `ArrayBuffer` (the browser gives nothing else); it is copied
//! into wasm memory and the JS buffer zeroed at once.

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use zeroize::Zeroizing;

use super::{call_async, describe};
use crate::SdkError;

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), SdkError> {
    Reflect::set(object, &key.into(), value)
        .map(drop)
        .map_err(|error| SdkError::Crypto(describe(&error)))
}

fn object(fields: &[(&str, &JsValue)]) -> Result<Object, SdkError> {
    let object = Object::new();
    for (key, value) in fields {
        set(&object, key, value)?;
    }
    Ok(object)
}

fn bytes(data: &[u8]) -> JsValue {
    Uint8Array::from(data).into()
}

fn credentials() -> Result<JsValue, SdkError> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into())
        .map_err(|_| SdkError::Unsupported("navigator".into()))?;
    let credentials = Reflect::get(&navigator, &"credentials".into()).unwrap_or(JsValue::UNDEFINED);
    if credentials.is_object() {
        Ok(credentials)
    } else {
        Err(SdkError::Unsupported("this browser has no WebAuthn".into()))
    }
}

/// `{ prf: { eval: { first: salt } } }`.
fn prf_extension(salt: &[u8; 32]) -> Result<Object, SdkError> {
    let eval = object(&[("first", &bytes(salt))])?;
    let prf = object(&[("eval", &eval.into())])?;
    object(&[("prf", &prf.into())])
}

/// The PRF output of a credential's client extension results, if the authenticator gave one.
fn prf_result(credential: &JsValue) -> Result<Option<Zeroizing<[u8; 32]>>, SdkError> {
    let results = call_method(credential, "getClientExtensionResults")?;
    let first = Reflect::get(&results, &"prf".into())
        .and_then(|prf| Reflect::get(&prf, &"results".into()))
        .and_then(|results| Reflect::get(&results, &"first".into()))
        .unwrap_or(JsValue::UNDEFINED);
    let Ok(buffer) = first.dyn_into::<ArrayBuffer>() else {
        return Ok(None);
    };
    let view = Uint8Array::new(&buffer);
    let output: Option<[u8; 32]> = view.to_vec().try_into().ok();
    view.fill(0, 0, view.length());
    Ok(output.map(Zeroizing::new))
}

fn call_method(object: &JsValue, method: &str) -> Result<JsValue, SdkError> {
    let function: js_sys::Function = Reflect::get(object, &method.into())
        .and_then(|value| value.dyn_into())
        .map_err(|error| SdkError::Crypto(describe(&error)))?;
    function
        .call0(object)
        .map_err(|error| SdkError::Crypto(describe(&error)))
}

fn random_challenge() -> Result<[u8; 32], SdkError> {
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge).map_err(|error| SdkError::Crypto(error.to_string()))?;
    Ok(challenge)
}

/// Creates a passkey for this origin and returns its id, with the PRF output for `salt` when
/// the authenticator supports PRF (`None`: no PRF, so the passkey cannot wrap keys).
pub(crate) async fn create(
    user_name: &str,
    salt: &[u8; 32],
) -> Result<(Vec<u8>, Option<Zeroizing<[u8; 32]>>), SdkError> {
    let mut user_id = [0u8; 16];
    getrandom::fill(&mut user_id).map_err(|error| SdkError::Crypto(error.to_string()))?;
    let algorithms: Array = [-7, -257]
        .iter()
        .map(|alg| {
            object(&[("type", &"public-key".into()), ("alg", &(*alg).into())]).map(JsValue::from)
        })
        .collect::<Result<_, _>>()?;
    let public_key = object(&[
        (
            "rp",
            &object(&[("name", &"waas-sdk wallet".into())])?.into(),
        ),
        (
            "user",
            &object(&[
                ("id", &bytes(&user_id)),
                ("name", &user_name.into()),
                ("displayName", &user_name.into()),
            ])?
            .into(),
        ),
        ("challenge", &bytes(&random_challenge()?)),
        ("pubKeyCredParams", &algorithms.into()),
        (
            "authenticatorSelection",
            &object(&[
                ("residentKey", &"preferred".into()),
                ("userVerification", &"required".into()),
            ])?
            .into(),
        ),
        ("extensions", &prf_extension(salt)?.into()),
    ])?;
    let options = object(&[("publicKey", &public_key.into())])?;
    let credential = call_async(&credentials()?, "create", &[&options])
        .await
        .map_err(|error| SdkError::PasskeyFailed(describe(&error)))?;
    let raw_id: ArrayBuffer = Reflect::get(&credential, &"rawId".into())
        .and_then(|id| id.dyn_into())
        .map_err(|error| SdkError::PasskeyFailed(describe(&error)))?;
    let id = Uint8Array::new(&raw_id).to_vec();
    match prf_result(&credential)? {
        Some(output) => Ok((id, Some(output))),
        // Some authenticators evaluate PRF only on assertions: ask once more.
        None => Ok((id.clone(), evaluate(&id, salt).await.ok().flatten())),
    }
}

/// The PRF output of the passkey `credential_id` for `salt`, after the user verifies; `None`
/// if the authenticator gives no PRF output.
pub(crate) async fn evaluate(
    credential_id: &[u8],
    salt: &[u8; 32],
) -> Result<Option<Zeroizing<[u8; 32]>>, SdkError> {
    let allow: Array = std::iter::once(
        object(&[
            ("type", &"public-key".into()),
            ("id", &bytes(credential_id)),
        ])
        .map(JsValue::from),
    )
    .collect::<Result<_, _>>()?;
    let public_key = object(&[
        ("challenge", &bytes(&random_challenge()?)),
        ("allowCredentials", &allow.into()),
        ("userVerification", &"required".into()),
        ("extensions", &prf_extension(salt)?.into()),
    ])?;
    let options = object(&[("publicKey", &public_key.into())])?;
    let credential = call_async(&credentials()?, "get", &[&options])
        .await
        .map_err(|error| SdkError::PasskeyFailed(describe(&error)))?;
    prf_result(&credential)
}
