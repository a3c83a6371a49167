//! WebCrypto, for the keys that must stay out of reach of page scripts: the non-extractable
//! AES key that wraps the data key, and the non-extractable P-256 key that signs requests.
//!
//! Bytes given to WebCrypto are copied into a JS buffer that is zeroed right after the call, and
//! secret results are copied out and their JS buffer zeroed, so no secret lingers in JS memory
//! longer than the call that needs it.

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Crypto, CryptoKey, CryptoKeyPair};
use zeroize::Zeroizing;

use super::{call_async, describe, global};
use crate::SdkError;

fn subtle() -> Result<JsValue, SdkError> {
    let crypto: Crypto = global("crypto")?;
    Ok(crypto.subtle().into())
}

fn crypto_error(error: JsValue) -> SdkError {
    SdkError::Crypto(describe(&error))
}

/// `{ name, ...fields }` as a JS object.
fn algorithm(name: &str, fields: &[(&str, &JsValue)]) -> Result<Object, SdkError> {
    let object = Object::new();
    Reflect::set(&object, &"name".into(), &name.into()).map_err(crypto_error)?;
    for (key, value) in fields {
        Reflect::set(&object, &(*key).into(), value).map_err(crypto_error)?;
    }
    Ok(object)
}

/// A JS copy of `bytes`, to be [`wipe`]d after use when secret.
fn js_bytes(bytes: &[u8]) -> Uint8Array {
    Uint8Array::from(bytes)
}

fn wipe(bytes: &Uint8Array) {
    bytes.fill(0, 0, bytes.length());
}

/// Copies an `ArrayBuffer` result out, then zeroes the JS copy.
fn take_buffer(value: JsValue) -> Result<Zeroizing<Vec<u8>>, SdkError> {
    let buffer: ArrayBuffer = value.dyn_into().map_err(crypto_error)?;
    let view = Uint8Array::new(&buffer);
    let bytes = Zeroizing::new(view.to_vec());
    wipe(&view);
    Ok(bytes)
}

fn usages(list: &[&str]) -> Array {
    list.iter().map(|usage| JsValue::from_str(usage)).collect()
}

/// A fresh non-extractable AES-256-GCM key: scripts can use it through WebCrypto, never read it.
pub(crate) async fn generate_wrapping_key() -> Result<CryptoKey, SdkError> {
    let params = algorithm("AES-GCM", &[("length", &256.into())])?;
    call_async(
        &subtle()?,
        "generateKey",
        &[&params, &JsValue::FALSE, &usages(&["encrypt", "decrypt"])],
    )
    .await
    .map_err(crypto_error)?
    .dyn_into()
    .map_err(crypto_error)
}

/// AES-256-GCM encryption under a WebCrypto key.
pub(crate) async fn encrypt(
    key: &CryptoKey,
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SdkError> {
    let params = algorithm(
        "AES-GCM",
        &[("iv", &js_bytes(nonce)), ("additionalData", &js_bytes(aad))],
    )?;
    let data = js_bytes(plaintext);
    let result = call_async(&subtle()?, "encrypt", &[&params, key, &data]).await;
    wipe(&data);
    let buffer: ArrayBuffer = result
        .map_err(crypto_error)?
        .dyn_into()
        .map_err(crypto_error)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// AES-256-GCM decryption under a WebCrypto key; fails if the ciphertext, nonce or AAD changed.
pub(crate) async fn decrypt(
    key: &CryptoKey,
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SdkError> {
    let params = algorithm(
        "AES-GCM",
        &[("iv", &js_bytes(nonce)), ("additionalData", &js_bytes(aad))],
    )?;
    let result = call_async(
        &subtle()?,
        "decrypt",
        &[&params, key, &js_bytes(ciphertext)],
    )
    .await
    .map_err(|_| SdkError::Corrupt("a record does not decrypt under this profile's key".into()))?;
    take_buffer(result)
}

/// A fresh P-256 signing key whose private half is non-extractable; returns it with the public
/// key (uncompressed SEC1).
pub(crate) async fn generate_signing_key() -> Result<(CryptoKey, [u8; 65]), SdkError> {
    let params = algorithm("ECDSA", &[("namedCurve", &"P-256".into())])?;
    let pair: CryptoKeyPair = call_async(
        &subtle()?,
        "generateKey",
        &[&params, &JsValue::FALSE, &usages(&["sign", "verify"])],
    )
    .await
    .map_err(crypto_error)?
    .unchecked_into();
    let private = pair.get_private_key();
    let public = call_async(
        &subtle()?,
        "exportKey",
        &[&"raw".into(), &pair.get_public_key()],
    )
    .await
    .map_err(crypto_error)?;
    let public: ArrayBuffer = public.dyn_into().map_err(crypto_error)?;
    let public: [u8; 65] = Uint8Array::new(&public)
        .to_vec()
        .try_into()
        .map_err(|_| SdkError::Crypto("the public key is not uncompressed P-256".into()))?;
    Ok((private, public))
}

/// An ES256 signature (r ‖ s, 64 bytes) of `data` by a WebCrypto P-256 key.
pub(crate) async fn sign_es256(key: &CryptoKey, data: &[u8]) -> Result<[u8; 64], SdkError> {
    let params = algorithm("ECDSA", &[("hash", &"SHA-256".into())])?;
    let signature = call_async(&subtle()?, "sign", &[&params, key, &js_bytes(data)])
        .await
        .map_err(crypto_error)?;
    let signature: ArrayBuffer = signature.dyn_into().map_err(crypto_error)?;
    Uint8Array::new(&signature)
        .to_vec()
        .try_into()
        .map_err(|_| SdkError::Crypto("an ES256 signature is not 64 bytes".into()))
}
