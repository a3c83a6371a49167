//! A payload as the REST API carries it (`typedPayload` of CreateSignature).

use serde::{Deserialize, Serialize};

use crate::{Bytes, EthError, Transaction, personal_message_digest};

/// What a signature is for, in a form both parties compute the digest of. A raw 32-byte digest
/// has no typed payload: the request's `payload` is then all there is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
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
        /// The typed data object.
        typed_data: serde_json::Value,
    },
    /// A transaction.
    #[serde(rename = "transaction")]
    Transaction {
        /// The unsigned transaction.
        transaction: Transaction,
    },
}

impl TypedPayload {
    /// The 32-byte digest a key signs for this payload.
    pub fn digest(&self) -> Result<[u8; 32], EthError> {
        match self {
            Self::Message { message } => Ok(personal_message_digest(&message.0)),
            Self::Transaction { transaction } => transaction.signing_hash(),
            #[cfg(feature = "eip712")]
            Self::TypedData { typed_data } => crate::typed_data_digest(typed_data),
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
