//! Ethereum signing: EIP-191 messages, EIP-712 typed data and transactions. The device computes
//! each digest itself (waas-eth) and sends the payload with it; the server computes its own and
//! refuses a request where they differ, and keeps the payload with the signature
//! (docs/protocol/ethereum.md). Typed data is in the full module only: its encoder is large.

use js_sys::{BigInt, JSON, Object, Reflect, Uint8Array};
use waas_api::resources::{Signature, TypedPayload};
use waas_eth::{Bytes, RecoverableSignature, Transaction};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use super::{JsSignature, Unlock, WaasClient, to_js};
use crate::SdkError;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A message for `signMessage`: text (signed as UTF-8), bytes, or `{ raw }` bytes as viem
 * passes them. */
export type SignableMessage = string | Uint8Array | { raw: `0x${string}` | Uint8Array };
/** An integer field: a bigint, a safe integer, or a `0x` hex or decimal string. */
export type Quantity = bigint | number | string;
/** A transaction for `signTransaction`, in viem's and JSON-RPC's field names. `type` is
 * `'eip1559'` (the default, also `'0x2'`) or `'legacy'` (also `'0x0'`; the default when only
 * `gasPrice` is given); legacy ones are signed with their chain id (EIP-155). No `to` creates a
 * contract. `gasLimit` and `input` are read as `gas` and `data`; `from` is ignored (the key
 * signs). Other fields are refused. */
export interface TransactionRequest {
  type?: 'eip1559' | 'legacy' | '0x2' | '0x0';
  chainId: Quantity;
  nonce: Quantity;
  /** The gas limit (or `gasLimit`, ethers' name). */
  gas?: Quantity;
  gasLimit?: Quantity;
  maxFeePerGas?: Quantity;
  maxPriorityFeePerGas?: Quantity;
  gasPrice?: Quantity;
  to?: `0x${string}` | null;
  value?: Quantity;
  data?: `0x${string}`;
  /** `data` under JSON-RPC's newer name. */
  input?: `0x${string}`;
  accessList?: { address: `0x${string}`; storageKeys: `0x${string}`[] }[];
}
/** A signed transaction: `rawTransaction` is what `eth_sendRawTransaction` takes, `hash` its
 * id on chain. */
export interface SignedTransaction {
  rawTransaction: `0x${string}`;
  hash: `0x${string}`;
  signature: Signature;
}
/** EIP-712 typed data as `eth_signTypedData_v4` takes it, or its JSON text. `types` may leave
 * out `EIP712Domain` (it is then taken from the domain's fields); bigints are allowed. */
export type TypedDataDefinition =
  | string
  | { types: Record<string, { name: string; type: string }[]>; primaryType: string; domain: Record<string, unknown>; message: Record<string, unknown> };
"#;

#[wasm_bindgen]
extern "C" {
    /// `SignableMessage`.
    #[wasm_bindgen(typescript_type = "SignableMessage")]
    pub type JsSignableMessage;
    /// `TransactionRequest`.
    #[wasm_bindgen(typescript_type = "TransactionRequest")]
    pub type JsTransactionRequest;
    /// `SignedTransaction`.
    #[wasm_bindgen(typescript_type = "SignedTransaction")]
    pub type JsSignedTransaction;
    /// `TypedDataDefinition`.
    #[wasm_bindgen(typescript_type = "TypedDataDefinition")]
    pub type JsTypedData;
}

/// `SignedTransaction`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedTransactionJs {
    raw_transaction: String,
    hash: String,
    signature: Signature,
}

#[wasm_bindgen]
impl WaasClient {
    /// EIP-191 `personal_sign`: signs Keccak-256("\x19Ethereum Signed Message:\n" ‖ length ‖
    /// message) with the key. The server computes the same digest from the message.
    #[wasm_bindgen(js_name = signMessage)]
    pub async fn sign_message(
        &self,
        #[wasm_bindgen(js_name = mpcKey)] mpc_key: String,
        message: JsSignableMessage,
        unlock: Unlock,
    ) -> Result<JsSignature, SdkError> {
        let message = message_bytes(&message)?;
        let typed = TypedPayload::Message { message };
        let (_, signature) = self.sign_typed(mpc_key, typed, &unlock).await?;
        Ok(to_js(&signature)?.into())
    }

    /// Signs an EIP-1559 or legacy (EIP-155) transaction with the key; resolves with the signed
    /// encoding and its hash. Nothing is sent to a chain.
    #[wasm_bindgen(js_name = signTransaction)]
    pub async fn sign_transaction(
        &self,
        #[wasm_bindgen(js_name = mpcKey)] mpc_key: String,
        transaction: JsTransactionRequest,
        unlock: Unlock,
    ) -> Result<JsSignedTransaction, SdkError> {
        let transaction = read_transaction(&transaction)?;
        let typed = TypedPayload::Transaction {
            transaction: Box::new(transaction.clone()),
        };
        let (signature, resource) = self.sign_typed(mpc_key, typed, &unlock).await?;
        let signed = transaction
            .encode_signed(&RecoverableSignature {
                r: signature.r,
                s: signature.s,
                y_parity: signature.recovery_id & 1,
            })
            .map_err(invalid)?;
        let result = SignedTransactionJs {
            raw_transaction: format!("0x{}", hex::encode(&signed.raw)),
            hash: format!("0x{}", hex::encode(signed.hash)),
            signature: resource,
        };
        Ok(to_js(&result)?.into())
    }
}

#[cfg(feature = "rare-flows")]
#[wasm_bindgen]
impl WaasClient {
    /// EIP-712 `eth_signTypedData_v4`: signs Keccak-256(0x1901 ‖ domainSeparator ‖
    /// hashStruct(message)) with the key. In the full module: the npm package loads it on the
    /// first call.
    #[wasm_bindgen(js_name = signTypedData)]
    pub async fn sign_typed_data(
        &self,
        #[wasm_bindgen(js_name = mpcKey)] mpc_key: String,
        #[wasm_bindgen(js_name = typedData)] typed_data: JsTypedData,
        unlock: Unlock,
    ) -> Result<JsSignature, SdkError> {
        let text = match typed_data.as_string() {
            Some(text) => text,
            None => json_of(&typed_data, 10, "typedData")?,
        };
        let typed = TypedPayload::typed_data(text).map_err(invalid)?;
        let (_, signature) = self.sign_typed(mpc_key, typed, &unlock).await?;
        Ok(to_js(&signature)?.into())
    }
}

impl WaasClient {
    /// Computes the payload's digest here, then signs it with the payload attached.
    async fn sign_typed(
        &self,
        mpc_key: String,
        typed: TypedPayload,
        unlock: &Unlock,
    ) -> Result<(waas_mpc::Signature, Signature), SdkError> {
        let key = mpc_key.parse()?;
        let digest = typed.digest().map_err(invalid)?;
        self.sign_digest(key, digest, Some(typed), unlock).await
    }
}

fn invalid(error: waas_eth::EthError) -> SdkError {
    SdkError::InvalidArgument(error.to_string())
}

/// The bytes of a `SignableMessage`.
fn message_bytes(message: &JsValue) -> Result<Bytes, SdkError> {
    if let Some(text) = message.as_string() {
        return Ok(Bytes(text.into_bytes()));
    }
    if message.is_instance_of::<Uint8Array>() {
        return Ok(Bytes(Uint8Array::new(message).to_vec()));
    }
    if message.is_object() {
        let raw = Reflect::get(message, &"raw".into()).unwrap_or(JsValue::UNDEFINED);
        if let Some(text) = raw.as_string() {
            return Bytes::parse(&text)
                .map_err(|error| SdkError::InvalidArgument(format!("message.raw: {error}")));
        }
        if raw.is_instance_of::<Uint8Array>() {
            return Ok(Bytes(Uint8Array::new(&raw).to_vec()));
        }
    }
    Err(SdkError::InvalidArgument(
        "message is a string, a Uint8Array or { raw: 0x hex | Uint8Array }".into(),
    ))
}

/// A JS value as JSON text, bigints written as strings in `radix` (16: `0x` hex, else decimal):
/// JSON has no bigint, and viem's quantities are bigints.
fn json_of(value: &JsValue, radix: u8, what: &str) -> Result<String, SdkError> {
    let replacer =
        Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(move |_key, value: JsValue| {
            if !value.is_bigint() {
                return value;
            }
            let digits = BigInt::from(value)
                .to_string(radix)
                .ok()
                .and_then(|digits| digits.as_string())
                .unwrap_or_default();
            JsValue::from_str(&if radix == 16 {
                format!("0x{digits}")
            } else {
                digits
            })
        });
    JSON::stringify_with_replacer(value, replacer.as_ref())
        .ok()
        .and_then(|text| text.as_string())
        .ok_or_else(|| SdkError::InvalidArgument(format!("{what} is not a JSON-like object")))
}

/// The integer fields of a transaction.
const QUANTITY_FIELDS: [&str; 7] = [
    "chainId",
    "nonce",
    "gas",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "gasPrice",
    "value",
];

/// 2^53 - 1, JavaScript's `Number.MAX_SAFE_INTEGER`.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A `TransactionRequest` as waas-eth reads it, from a shallow copy: the type named as waas-eth
/// names it (or inferred: `legacy` when only `gasPrice` is given, else `eip1559`), `gasLimit` and
/// `input` under their JSON-RPC names `gas` and `data`, `from` dropped (the key signs).
fn read_transaction(transaction: &JsValue) -> Result<Transaction, SdkError> {
    if !transaction.is_object() {
        return Err(SdkError::InvalidArgument("transaction is an object".into()));
    }
    let failed = |_| SdkError::InvalidArgument("transaction: a field cannot be read".into());
    // try_assign: a throwing getter (or Proxy) becomes an error here, not a throw through wasm.
    let fields = Object::try_assign(&Object::new(), transaction.unchecked_ref()).map_err(failed)?;
    let get = |name: &str| Reflect::get(&fields, &name.into()).unwrap_or(JsValue::UNDEFINED);
    let set = |name: &str, value: &JsValue| Reflect::set(&fields, &name.into(), value).map(drop);
    let delete = |name: &str| Reflect::delete_property(&fields, &name.into()).map(drop);
    delete("from").map_err(failed)?;
    for (alias, name) in [("gasLimit", "gas"), ("input", "data")] {
        let value = get(alias);
        if value.is_undefined() {
            continue;
        }
        if !get(name).is_undefined() {
            return Err(SdkError::InvalidArgument(format!(
                "transaction: both {alias} and {name}"
            )));
        }
        set(name, &value).map_err(failed)?;
        delete(alias).map_err(failed)?;
    }
    let kind = get("type");
    let kind = match (kind.as_string().as_deref(), kind.as_f64()) {
        _ if kind.is_undefined() && get("gasPrice").is_undefined() => "eip1559".into(),
        _ if kind.is_undefined() => "legacy".into(),
        (Some("0x2" | "0x02"), _) | (None, Some(2.0)) => "eip1559".into(),
        (Some("0x0" | "0x00"), _) | (None, Some(0.0)) => "legacy".into(),
        _ => kind,
    };
    set("type", &kind).map_err(failed)?;
    // A number above 2^53 lost digits before it got here: JSON would carry the rounded value.
    for name in QUANTITY_FIELDS {
        if let Some(number) = get(name).as_f64()
            && !(number >= 0.0 && number.fract() == 0.0 && number <= MAX_SAFE_INTEGER)
        {
            return Err(SdkError::InvalidArgument(format!(
                "transaction.{name}: {number} is not a safe non-negative integer: pass a bigint or a string"
            )));
        }
    }
    serde_json::from_str(&json_of(&fields, 16, "transaction")?)
        .map_err(|error| SdkError::InvalidArgument(format!("transaction: {error}")))
}
