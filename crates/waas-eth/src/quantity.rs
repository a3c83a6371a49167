//! The JSON forms of a transaction's fields: quantities, addresses, byte strings.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{EthError, keccak256};

/// An unsigned integer of up to 256 bits. It reads from a `0x` hex string (JSON-RPC's
/// "quantity"), a decimal string of up to 128 bits, or a JSON integer, and writes as `0x` hex.
/// It is held as its big-endian bytes without leading zeros, which is also its RLP form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quantity(Vec<u8>);

impl Quantity {
    /// The number from big-endian bytes (leading zeros allowed), at most 32 bytes after them.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, EthError> {
        let start = bytes
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(bytes.len());
        let minimal = &bytes[start..];
        if minimal.len() > 32 {
            return Err(EthError::InvalidField("a quantity above 2^256".into()));
        }
        Ok(Self(minimal.to_vec()))
    }

    /// Its big-endian bytes without leading zeros (none for zero).
    pub fn as_be_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number, if it fits 64 bits.
    pub fn to_u64(&self) -> Option<u64> {
        let bytes = self.0.as_slice();
        if bytes.len() > 8 {
            return None;
        }
        Some(
            bytes
                .iter()
                .fold(0u64, |value, byte| value << 8 | u64::from(*byte)),
        )
    }

    /// Parses the JSON string form: `0x` hex, or decimal digits.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        if let Some(digits) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(EthError::InvalidField(format!(
                    "{text:?} is not a hex quantity"
                )));
            }
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits.to_owned()
            };
            let bytes = hex::decode(padded)
                .map_err(|_| EthError::InvalidField(format!("{text:?} is not a hex quantity")))?;
            return Self::from_be_bytes(&bytes);
        }
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(EthError::InvalidField(format!(
                "{text:?} is neither a 0x hex quantity nor a decimal one"
            )));
        }
        let value: u128 = text.parse().map_err(|_| {
            EthError::InvalidField(format!("{text:?} is above 2^128: write it in 0x hex"))
        })?;
        Self::from_be_bytes(&value.to_be_bytes())
    }
}

impl From<u64> for Quantity {
    fn from(value: u64) -> Self {
        let bytes = value.to_be_bytes();
        let start = bytes
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(bytes.len());
        Self(bytes[start..].to_vec())
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// Minimal big-endian bytes: the longer is the larger, else the bytes decide.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex = hex::encode(&self.0);
        let trimmed = hex.trim_start_matches('0');
        serializer.serialize_str(&format!(
            "0x{}",
            if trimmed.is_empty() { "0" } else { trimmed }
        ))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a 0x hex quantity, a decimal string or a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Quantity, E> {
                Ok(Quantity::from(value))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Quantity, E> {
                Quantity::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// A 20-byte account address. It reads from `0x` hex in one case, or in EIP-55's mixed case with
/// a right checksum (a wrong one is most likely a typo), and writes in EIP-55's mixed case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// Parses `0x` and 40 hex digits, checking the EIP-55 checksum of a mixed-case one.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        let bad =
            || EthError::InvalidField(format!("{text:?} is not an address (0x and 40 hex digits)"));
        let digits = text.strip_prefix("0x").ok_or_else(bad)?;
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| bad())?;
        let address = Self(bytes);
        let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
            && digits.bytes().any(|b| b.is_ascii_uppercase());
        if mixed && address.to_checksummed()[2..] != *digits {
            return Err(EthError::InvalidField(format!(
                "{text:?} has a wrong EIP-55 checksum (a mistyped address?)"
            )));
        }
        Ok(address)
    }

    /// EIP-55: the hex digit at position i is upper case if nibble i of Keccak-256(lower-case
    /// hex) is 8 or more.
    pub fn to_checksummed(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mixed: String = lower
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
                if nibble >= 8 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        format!("0x{mixed}")
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_checksummed())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// A byte string, as `0x` and an even number of hex digits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Parses `0x` and an even number of hex digits.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        let bad = || EthError::InvalidField(format!("{text:?} is not 0x hex bytes"));
        let digits = text.strip_prefix("0x").ok_or_else(bad)?;
        hex::decode(digits).map(Self).map_err(|_| bad())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", hex::encode(&self.0)))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// One entry of an EIP-2930 access list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessListItem {
    /// The account.
    pub address: Address,
    /// Its storage slots, 32 bytes each.
    #[serde(default)]
    pub storage_keys: Vec<StorageKey>,
}

/// A 32-byte storage slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorageKey(pub [u8; 32]);

impl Serialize for StorageKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", hex::encode(self.0)))
    }
}

impl StorageKey {
    /// Parses `0x` and 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        let mut key = [0u8; 32];
        text.strip_prefix("0x")
            .and_then(|digits| hex::decode_to_slice(digits, &mut key).ok())
            .ok_or_else(|| {
                EthError::InvalidField(format!("{text:?} is not a 32-byte storage key"))
            })?;
        Ok(Self(key))
    }
}

impl<'de> Deserialize<'de> for StorageKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_hex_decimal_and_integers_and_write_minimal_hex() {
        for (json, hex) in [
            ("\"0x0\"", "0x0"),
            ("\"0x00\"", "0x0"),
            ("\"0x1b\"", "0x1b"),
            ("\"0x01b\"", "0x1b"),
            ("\"27\"", "0x1b"),
            ("27", "0x1b"),
            ("0", "0x0"),
            (
                "\"340282366920938463463374607431768211455\"",
                "0xffffffffffffffffffffffffffffffff",
            ),
        ] {
            let quantity: Quantity = serde_json::from_str(json).unwrap();
            assert_eq!(
                serde_json::to_string(&quantity).unwrap(),
                format!("\"{hex}\""),
                "{json}"
            );
        }
        assert_eq!(Quantity::parse("0x100").unwrap().as_be_bytes(), [1, 0]);
        assert!(Quantity::parse("0x0").unwrap().as_be_bytes().is_empty());
    }

    #[test]
    fn bad_quantities_are_refused() {
        for json in [
            "\"\"",
            "\"0x\"",
            "\"0xg\"",
            "\"-1\"",
            "-1",
            "1.5",
            "\"1e3\"",
            "null",
            "\"0x1\u{0}\"",
        ] {
            assert!(serde_json::from_str::<Quantity>(json).is_err(), "{json}");
        }
        // 2^128 as decimal must be written in hex; 2^256 does not fit at all.
        assert!(Quantity::parse("340282366920938463463374607431768211456").is_err());
        assert!(Quantity::parse(&format!("0x1{}", "0".repeat(64))).is_err());
        assert!(Quantity::parse(&format!("0x{}", "f".repeat(64))).is_ok());
    }

    #[test]
    fn quantities_order_by_value() {
        let q = |text| Quantity::parse(text).unwrap();
        assert!(q("0x100") > q("0xff"));
        assert!(q("0x0") < q("0x1"));
        assert_eq!(q("0x0001"), q("1"));
    }

    #[test]
    fn addresses_check_eip55_checksums() {
        // EIP-55's own examples.
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address = Address::parse(text).unwrap();
            assert_eq!(address.to_checksummed(), text);
            assert_eq!(Address::parse(&text.to_lowercase()).unwrap(), address);
        }
        let typo = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(Address::parse(typo).is_err(), "one letter's case changed");
        assert!(Address::parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae").is_err());
        assert!(Address::parse("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_err());
    }
}
