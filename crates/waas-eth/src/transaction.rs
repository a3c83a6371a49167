//! EIP-1559 and legacy (EIP-155) transactions: the hash a key signs, and the signed encoding a
//! node accepts (`eth_sendRawTransaction`).
//!
//! The RLP fields are assembled here over alloy-rlp's encoder rather than taken from
//! alloy-consensus, which would add 4 KB of gzip to the browser module; the tests check every
//! encoding against alloy-consensus byte for byte.

use alloy_rlp::{Encodable, Header};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::quantity::{AccessListItem, Address, Bytes, Quantity};
use crate::{EthError, keccak256};

/// A transaction to sign, in the JSON form viem and JSON-RPC use (`type` names the kind).
/// Fields of another kind (`gasPrice` in an EIP-1559 one) and unknown fields are refused: a
/// mistyped field would otherwise be dropped from what is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Transaction {
    /// An EIP-1559 transaction (type 2).
    #[serde(rename = "eip1559")]
    Eip1559(Eip1559Transaction),
    /// A legacy transaction, replay-protected by its chain id (EIP-155). Pre-EIP-155 ones, valid
    /// on every chain, are not signed.
    #[serde(rename = "legacy")]
    Legacy(LegacyTransaction),
}

/// An EIP-1559 transaction's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eip1559Transaction {
    /// The chain (EIP-155), not zero.
    pub chain_id: Quantity,
    /// The sender's nonce.
    pub nonce: Quantity,
    /// The tip per gas to the block's proposer.
    pub max_priority_fee_per_gas: Quantity,
    /// The most paid per gas, base fee and tip together.
    pub max_fee_per_gas: Quantity,
    /// The gas limit.
    pub gas: Quantity,
    /// The recipient; none creates a contract.
    pub to: Option<Address>,
    /// The wei sent.
    pub value: Quantity,
    /// The call data (or the contract's init code).
    pub data: Bytes,
    /// The accounts and slots the transaction pre-declares (EIP-2930).
    pub access_list: Vec<AccessListItem>,
}

/// A legacy transaction's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyTransaction {
    /// The chain (EIP-155), not zero.
    pub chain_id: Quantity,
    /// The sender's nonce.
    pub nonce: Quantity,
    /// The price per gas.
    pub gas_price: Quantity,
    /// The gas limit.
    pub gas: Quantity,
    /// The recipient; none creates a contract.
    pub to: Option<Address>,
    /// The wei sent.
    pub value: Quantity,
    /// The call data (or the contract's init code).
    pub data: Bytes,
}

/// An ECDSA signature with the parity of R's y coordinate (0 or 1), as a transaction carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverableSignature {
    /// r, big-endian.
    pub r: [u8; 32],
    /// s, big-endian (low-S: nodes refuse a high one).
    pub s: [u8; 32],
    /// The y parity, 0 or 1.
    pub y_parity: u8,
}

/// A signed transaction: what `eth_sendRawTransaction` takes, and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The signed encoding.
    pub raw: Vec<u8>,
    /// Keccak-256 of `raw`: the transaction's id on chain.
    pub hash: [u8; 32],
}

/// Every field of every kind, as read from JSON, before [`TransactionFields::build`] sorts them
/// by `type`. Flat, because serde's own tagged deserializer buffers the whole object first and
/// costs the browser module several KB.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TransactionFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    chain_id: Option<Quantity>,
    nonce: Option<Quantity>,
    gas: Option<Quantity>,
    max_priority_fee_per_gas: Option<Quantity>,
    max_fee_per_gas: Option<Quantity>,
    gas_price: Option<Quantity>,
    to: Option<Address>,
    value: Option<Quantity>,
    data: Option<Bytes>,
    access_list: Option<Vec<AccessListItem>>,
}

impl TransactionFields {
    /// The transaction `kind` names, refusing a field it lacks or one of another kind.
    fn build(self) -> Result<Transaction, EthError> {
        let needed = |value: Option<Quantity>, field: &str| {
            value.ok_or_else(|| EthError::field(field, "missing"))
        };
        let refused = |field: &str, kind: &str| {
            EthError::field(field, format!("not a field of {kind} transactions"))
        };
        let kind = self
            .kind
            .ok_or_else(|| EthError::field("type", "missing"))?;
        match kind.as_str() {
            "eip1559" => {
                if self.gas_price.is_some() {
                    return Err(refused("gasPrice", "EIP-1559"));
                }
                Ok(Transaction::Eip1559(Eip1559Transaction {
                    chain_id: needed(self.chain_id, "chainId")?,
                    nonce: needed(self.nonce, "nonce")?,
                    max_priority_fee_per_gas: needed(
                        self.max_priority_fee_per_gas,
                        "maxPriorityFeePerGas",
                    )?,
                    max_fee_per_gas: needed(self.max_fee_per_gas, "maxFeePerGas")?,
                    gas: needed(self.gas, "gas")?,
                    to: self.to,
                    value: self.value.unwrap_or_default(),
                    data: self.data.unwrap_or_default(),
                    access_list: self.access_list.unwrap_or_default(),
                }))
            }
            "legacy" => {
                for (field, present) in [
                    ("maxFeePerGas", self.max_fee_per_gas.is_some()),
                    (
                        "maxPriorityFeePerGas",
                        self.max_priority_fee_per_gas.is_some(),
                    ),
                    ("accessList", self.access_list.is_some()),
                ] {
                    if present {
                        return Err(refused(field, "legacy"));
                    }
                }
                Ok(Transaction::Legacy(LegacyTransaction {
                    chain_id: needed(self.chain_id, "chainId")?,
                    nonce: needed(self.nonce, "nonce")?,
                    gas_price: needed(self.gas_price, "gasPrice")?,
                    gas: needed(self.gas, "gas")?,
                    to: self.to,
                    value: self.value.unwrap_or_default(),
                    data: self.data.unwrap_or_default(),
                }))
            }
            other => Err(EthError::field(
                "type",
                format!("{other:?} is not signed here: eip1559 or legacy"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TransactionFields::deserialize(deserializer)?
            .build()
            .map_err(D::Error::custom)
    }
}

/// EIP-1559's transaction type byte.
const EIP1559_TYPE: u8 = 2;

impl Transaction {
    /// The chain id, checked: non-zero and within 64 bits.
    pub fn chain_id(&self) -> Result<u64, EthError> {
        let chain_id = match self {
            Self::Eip1559(tx) => &tx.chain_id,
            Self::Legacy(tx) => &tx.chain_id,
        };
        match chain_id.to_u64() {
            Some(0) => Err(EthError::field(
                "chainId",
                "0 would let the transaction replay on every chain",
            )),
            Some(id) => Ok(id),
            None => Err(EthError::field("chainId", "above 2^64")),
        }
    }

    /// Checks what a node would refuse anyway, so nothing unusable is signed: a chain id, a
    /// nonce and a gas limit within 64 bits (EIP-2681 keeps the nonce below 2^64 - 1), and a tip
    /// no higher than the fee cap.
    pub fn validate(&self) -> Result<(), EthError> {
        self.chain_id()?;
        let (nonce, gas) = match self {
            Self::Eip1559(tx) => (&tx.nonce, &tx.gas),
            Self::Legacy(tx) => (&tx.nonce, &tx.gas),
        };
        if nonce.to_u64().is_none_or(|nonce| nonce == u64::MAX) {
            return Err(EthError::field("nonce", "at or above 2^64 - 1 (EIP-2681)"));
        }
        if gas.to_u64().is_none() {
            return Err(EthError::field("gas", "above 2^64"));
        }
        if let Self::Eip1559(tx) = self
            && tx.max_priority_fee_per_gas > tx.max_fee_per_gas
        {
            return Err(EthError::field(
                "maxPriorityFeePerGas",
                "higher than maxFeePerGas, which a node refuses",
            ));
        }
        Ok(())
    }

    /// The digest a key signs: Keccak-256 of the unsigned encoding (for EIP-1559, the type byte
    /// and the fields; for legacy, the fields followed by chain id, 0, 0 per EIP-155).
    pub fn signing_hash(&self) -> Result<[u8; 32], EthError> {
        self.validate()?;
        let mut encoded = Vec::new();
        match self {
            Self::Eip1559(tx) => {
                encoded.push(EIP1559_TYPE);
                rlp_list(&mut encoded, &tx.fields());
            }
            Self::Legacy(tx) => {
                let mut fields = tx.fields();
                let chain_id = self.chain_id()?;
                fields.extend([Field::U64(chain_id), Field::U64(0), Field::U64(0)]);
                rlp_list(&mut encoded, &fields);
            }
        }
        Ok(keccak256(&encoded))
    }

    /// The signed encoding and its hash: for EIP-1559 the fields and `yParity, r, s`; for legacy
    /// the fields and `v = 35 + 2·chainId + yParity, r, s` (EIP-155).
    pub fn encode_signed(
        &self,
        signature: &RecoverableSignature,
    ) -> Result<SignedTransaction, EthError> {
        self.validate()?;
        if signature.y_parity > 1 {
            return Err(EthError::field("signature", "y parity is 0 or 1"));
        }
        let r = Field::Quantity(Quantity::from_be_bytes(&signature.r)?);
        let s = Field::Quantity(Quantity::from_be_bytes(&signature.s)?);
        let mut raw = Vec::new();
        match self {
            Self::Eip1559(tx) => {
                let mut fields = tx.fields();
                fields.extend([Field::U64(u64::from(signature.y_parity)), r, s]);
                raw.push(EIP1559_TYPE);
                rlp_list(&mut raw, &fields);
            }
            Self::Legacy(tx) => {
                let v = u128::from(self.chain_id()?) * 2 + 35 + u128::from(signature.y_parity);
                let v = Quantity::from_be_bytes(&v.to_be_bytes())?;
                let mut fields = tx.fields();
                fields.extend([Field::Quantity(v), r, s]);
                rlp_list(&mut raw, &fields);
            }
        }
        let hash = keccak256(&raw);
        Ok(SignedTransaction { raw, hash })
    }
}

impl Eip1559Transaction {
    fn fields(&self) -> Vec<Field<'_>> {
        vec![
            Field::Quantity(self.chain_id.clone()),
            Field::Quantity(self.nonce.clone()),
            Field::Quantity(self.max_priority_fee_per_gas.clone()),
            Field::Quantity(self.max_fee_per_gas.clone()),
            Field::Quantity(self.gas.clone()),
            Field::Bytes(self.to.as_ref().map_or(&[], |to| &to.0)),
            Field::Quantity(self.value.clone()),
            Field::Bytes(&self.data.0),
            Field::AccessList(&self.access_list),
        ]
    }
}

impl LegacyTransaction {
    fn fields(&self) -> Vec<Field<'_>> {
        vec![
            Field::Quantity(self.nonce.clone()),
            Field::Quantity(self.gas_price.clone()),
            Field::Quantity(self.gas.clone()),
            Field::Bytes(self.to.as_ref().map_or(&[], |to| &to.0)),
            Field::Quantity(self.value.clone()),
            Field::Bytes(&self.data.0),
        ]
    }
}

/// One RLP item of a transaction. An integer's RLP form is the byte string of its big-endian
/// bytes without leading zeros, so quantities encode as byte strings.
enum Field<'a> {
    Quantity(Quantity),
    U64(u64),
    Bytes(&'a [u8]),
    AccessList(&'a [AccessListItem]),
}

impl Field<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Quantity(quantity) => quantity.as_be_bytes().encode(out),
            Self::U64(value) => value.encode(out),
            Self::Bytes(bytes) => bytes.encode(out),
            Self::AccessList(items) => {
                let mut list = Vec::new();
                for item in *items {
                    let mut keys = Vec::new();
                    for key in &item.storage_keys {
                        key.0.as_slice().encode(&mut keys);
                    }
                    let mut entry = Vec::new();
                    item.address.0.as_slice().encode(&mut entry);
                    wrap_list(&mut entry, &keys);
                    wrap_list(&mut list, &entry);
                }
                wrap_list(out, &list);
            }
        }
    }
}

fn rlp_list(out: &mut Vec<u8>, fields: &[Field<'_>]) {
    let mut payload = Vec::new();
    for field in fields {
        field.encode(&mut payload);
    }
    wrap_list(out, &payload);
}

/// Appends a list header for `payload`, then the payload.
fn wrap_list(out: &mut Vec<u8>, payload: &[u8]) {
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EIP1559: &str = r#"{"type":"eip1559","chainId":"0x1","nonce":7,"maxPriorityFeePerGas":"0x3b9aca00",
        "maxFeePerGas":"20000000000","gas":"0x5208","to":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "value":"0xde0b6b3a7640000","data":"0x","accessList":[]}"#;

    #[test]
    fn transactions_round_trip_through_their_json() {
        let transaction: Transaction = serde_json::from_str(EIP1559).unwrap();
        let json = serde_json::to_string(&transaction).unwrap();
        assert_eq!(
            serde_json::from_str::<Transaction>(&json).unwrap(),
            transaction
        );
        assert!(
            json.contains(r#""to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8""#),
            "{json}"
        );
        let legacy =
            r#"{"type":"legacy","chainId":1,"nonce":0,"gasPrice":"0x1","gas":21000,"to":null}"#;
        let legacy: Transaction = serde_json::from_str(legacy).unwrap();
        assert!(
            matches!(&legacy, Transaction::Legacy(tx) if tx.to.is_none() && tx.value == Quantity::default())
        );
    }

    #[test]
    fn fields_of_another_kind_or_none_are_refused() {
        let with = |field: &str| EIP1559.replacen("\"type\"", &format!("{field},\"type\""), 1);
        for (bad, why) in [
            (
                with(r#""gasPrice":"0x1""#),
                "gasPrice: not a field of EIP-1559",
            ),
            (with(r#""gasLimit":"0x1""#), "unknown field `gasLimit`"),
            (
                with(r#""from":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8""#),
                "unknown field `from`",
            ),
            (
                EIP1559.replace(r#""maxFeePerGas":"20000000000","#, ""),
                "maxFeePerGas: missing",
            ),
            (
                EIP1559.replace("eip1559", "eip4844"),
                "type: \"eip4844\" is not signed here",
            ),
            (
                EIP1559
                    .replace("eip1559", "legacy")
                    .replace("maxPriorityFeePerGas", "gasPrice"),
                "maxFeePerGas: not a field of legacy",
            ),
        ] {
            let error = serde_json::from_str::<Transaction>(&bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
