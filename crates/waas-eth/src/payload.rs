//! A payload as the REST API carries it (`typedPayload` of CreateSignature).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::{Bytes, EthError, Transaction, personal_message_digest};

/// What a signature is for, in a form both parties compute the digest of. A raw 32-byte digest
/// has no typed payload: the request's `payload` is then all there is.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum TypedPayload {
    /// An EIP-191 `personal_sign` message: its bytes, `0x` hex.
    #[serde(rename = "eip191")]
    Message {
        /// The message's bytes (UTF-8 for text).
        message: Bytes,
    },
    /// EIP-712 typed data, as `eth_signTypedData_v4` takes it (`types`, `primaryType`,
    /// `domain`, `message`).
    #[serde(rename = "eip712")]
    TypedData {
        /// The typed data object, as the JSON text it came in: it is only read to hash it (by
        /// the server, and by the SDK's full module), so the browser's main module carries no
        /// JSON tree reader.
        typed_data: Box<RawValue>,
    },
    /// A transaction.
    #[serde(rename = "transaction")]
    Transaction {
        /// The unsigned transaction (boxed: it is several times the other kinds' size).
        transaction: Box<Transaction>,
    },
}

/// Every field of every kind, read flat (as for [`Transaction`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PayloadWire {
    #[serde(rename = "type")]
    kind: String,
    message: Option<Bytes>,
    typed_data: Option<Box<RawValue>>,
    transaction: Option<Box<Transaction>>,
}

impl<'de> Deserialize<'de> for TypedPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = PayloadWire::deserialize(deserializer)?;
        let (payload, extra) = match wire.kind.as_str() {
            "eip191" => (
                wire.message.map(|message| Self::Message { message }),
                wire.typed_data.is_some() || wire.transaction.is_some(),
            ),
            "eip712" => (
                wire.typed_data
                    .map(|typed_data| Self::typed_data(typed_data.get().to_owned()))
                    .transpose()
                    .map_err(D::Error::custom)?,
                wire.message.is_some() || wire.transaction.is_some(),
            ),
            "transaction" => (
                wire.transaction
                    .map(|transaction| Self::Transaction { transaction }),
                wire.message.is_some() || wire.typed_data.is_some(),
            ),
            other => {
                return Err(D::Error::unknown_variant(
                    other,
                    &["eip191", "eip712", "transaction"],
                ));
            }
        };
        if extra {
            return Err(D::Error::custom(format!(
                "a {} payload has one field",
                wire.kind
            )));
        }
        payload.ok_or_else(|| D::Error::custom(format!("a {} payload misses its field", wire.kind)))
    }
}

impl PartialEq for TypedPayload {
    /// Typed data compares by its JSON text.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Message { message: a }, Self::Message { message: b }) => a == b,
            (Self::TypedData { typed_data: a }, Self::TypedData { typed_data: b }) => {
                a.get() == b.get()
            }
            (Self::Transaction { transaction: a }, Self::Transaction { transaction: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for TypedPayload {}

impl TypedPayload {
    /// EIP-712 typed data from its JSON text, which must be an object.
    pub fn typed_data(json: String) -> Result<Self, EthError> {
        let typed_data = RawValue::from_string(json)
            .map_err(|error| EthError::InvalidTypedData(error.to_string()))?;
        if !typed_data.get().trim_start().starts_with('{') {
            return Err(EthError::InvalidTypedData("it is not a JSON object".into()));
        }
        Ok(Self::TypedData { typed_data })
    }

    /// The 32-byte digest a key signs for this payload.
    pub fn digest(&self) -> Result<[u8; 32], EthError> {
        match self {
            Self::Message { message } => Ok(personal_message_digest(&message.0)),
            Self::Transaction { transaction } => transaction.signing_hash(),
            #[cfg(feature = "eip712")]
            Self::TypedData { typed_data } => crate::typed_data_digest(typed_data.get()),
            #[cfg(not(feature = "eip712"))]
            Self::TypedData { .. } => Err(EthError::Unsupported("EIP-712 typed data")),
        }
    }

    /// A short name of the kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message { .. } => "an EIP-191 message",
            Self::TypedData { .. } => "EIP-712 typed data",
            Self::Transaction { .. } => "a transaction",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_their_documented_json() {
        let message: TypedPayload =
            serde_json::from_str(r#"{"type":"eip191","message":"0x68656c6c6f20776f726c64"}"#)
                .unwrap();
        assert_eq!(
            hex::encode(message.digest().unwrap()),
            "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"
        );
        let transaction: TypedPayload = serde_json::from_str(
            r#"{"type":"transaction","transaction":{"type":"eip1559","chainId":"0x1","nonce":"0x0",
                "maxPriorityFeePerGas":"0x1","maxFeePerGas":"0x2","gas":"0x5208"}}"#,
        )
        .unwrap();
        assert!(transaction.digest().is_ok());
        for bad in [
            r#"{"type":"eip191"}"#,
            r#"{"type":"eip191","message":"hello"}"#,
            r#"{"type":"eip191","message":"0x00","extra":1}"#,
            r#"{"type":"eip4844","transaction":{}}"#,
            r#"{"type":"transaction","transaction":{"type":"eip1559","chainId":"0x1","nonce":"0x0",
                "maxPriorityFeePerGas":"0x1","maxFeePerGas":"0x2","gasLimit":"0x5208"}}"#,
        ] {
            assert!(serde_json::from_str::<TypedPayload>(bad).is_err(), "{bad}");
        }
    }
}
