//! EIP-712 typed data, from the JSON `eth_signTypedData_v4` takes.

use serde_json::{Map, Value};

use crate::{Address, EthError};

/// How much typed data is read. Far above what real protocols sign (Permit2: a handful of types;
/// Seaport's bulk orders: up to 24 array dimensions), and low enough that hashing stays bounded:
/// alloy-dyn-abi recurses once per type reference and per array dimension, and writes a struct's
/// whole type string for each instance it hashes (docs/protocol/ethereum.md).
const MAX_TYPES: usize = 64;
const MAX_FIELDS: usize = 64;
const MAX_TYPE_LEN: usize = 256;
const MAX_DIMENSIONS: usize = 32;
const MAX_DEPTH: usize = 48;
const MAX_VALUES: usize = 10_000;

/// The domain's fields, in the EIP's order, with their types: the only domain alloy-dyn-abi
/// hashes (it builds the domain type from the fields present, whatever `types.EIP712Domain` says),
/// so typed data whose `EIP712Domain` says otherwise is refused rather than hashed differently
/// from viem and ethers.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

/// JavaScript's largest exact integer: a JSON number above it reads differently in a browser.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The digest of EIP-712 typed data: Keccak-256 of `0x19 0x01 ‖ domainSeparator ‖
/// hashStruct(message)`, by alloy-dyn-abi, once [`check`] found nothing it would read otherwise
/// than viem and ethers: the domain has only the EIP's fields, typed as the EIP types them and
/// declared in its order (`types.EIP712Domain` may be left out); every key of the message is a
/// field of its type; addresses pass their EIP-55 checksum; integers are `0x` hex or decimal
/// strings, or JSON numbers JavaScript holds exactly.
pub fn typed_data_digest(typed_data: &str) -> Result<[u8; 32], EthError> {
    let value: Value = serde_json::from_str(typed_data).map_err(invalid)?;
    check(&value)?;
    let typed: alloy_dyn_abi::TypedData = serde_json::from_value(value).map_err(invalid)?;
    Ok(typed.eip712_signing_hash().map_err(invalid)?.0)
}

fn invalid(why: impl std::fmt::Display) -> EthError {
    EthError::InvalidTypedData(why.to_string())
}

/// Walks the typed data without recursion (see [`typed_data_digest`]).
fn check(value: &Value) -> Result<(), EthError> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("it is not a JSON object"))?;
    if let Some(key) = object
        .keys()
        .find(|key| !["types", "primaryType", "domain", "message"].contains(&key.as_str()))
    {
        return Err(invalid(format!("{key} is not a field of typed data")));
    }
    let types = object
        .get("types")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("types is missing"))?;
    if types.len() > MAX_TYPES {
        return Err(invalid(format!("more than {MAX_TYPES} types")));
    }
    let mut structs: std::collections::HashMap<&str, Vec<(&str, &str)>> = Default::default();
    for (name, fields) in types {
        structs.insert(name, fields_of(name, fields)?);
    }
    let domain_value = object
        .get("domain")
        .ok_or_else(|| invalid("domain is missing"))?;
    let domain = domain_value
        .as_object()
        .ok_or_else(|| invalid("domain is not an object"))?;
    let declared: Vec<(&str, &str)> = DOMAIN_FIELDS
        .into_iter()
        .filter(|(name, _)| domain.contains_key(*name))
        .collect();
    if let Some(key) = domain
        .keys()
        .find(|key| !DOMAIN_FIELDS.iter().any(|(name, _)| name == key))
    {
        return Err(invalid(format!(
            "domain.{key} is not a field of EIP712Domain"
        )));
    }
    if structs
        .get("EIP712Domain")
        .is_some_and(|fields| *fields != declared)
    {
        return Err(invalid(
            "types.EIP712Domain is not the EIP's fields for the domain given, in its order",
        ));
    }
    let primary = object
        .get("primaryType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("primaryType is missing"))?;
    let mut pending = vec![("domain".to_owned(), "EIP712Domain", domain_value, 0)];
    if primary != "EIP712Domain" {
        if !structs.contains_key(primary) {
            return Err(invalid(format!("primaryType {primary} is not in types")));
        }
        let message = object
            .get("message")
            .ok_or_else(|| invalid("message is missing"))?;
        pending.push(("message".to_owned(), primary, message, 0));
    }
    structs.insert("EIP712Domain", declared);
    let mut seen = 0;
    while let Some((path, ty, value, depth)) = pending.pop() {
        seen += 1;
        if seen > MAX_VALUES || depth > MAX_DEPTH {
            return Err(invalid(format!(
                "the message has more than {MAX_VALUES} values or {MAX_DEPTH} levels"
            )));
        }
        if let Some((element, length)) = array_of(ty) {
            let items = value
                .as_array()
                .ok_or_else(|| invalid(format!("{path} is not an array")))?;
            if length.is_some_and(|length| length != items.len()) {
                return Err(invalid(format!(
                    "{path} does not have the length {ty} says"
                )));
            }
            for (i, item) in items.iter().enumerate() {
                pending.push((format!("{path}[{i}]"), element, item, depth + 1));
            }
        } else if let Some(fields) = structs.get(ty) {
            let object = value
                .as_object()
                .ok_or_else(|| invalid(format!("{path} is not an object")))?;
            if let Some(key) = object
                .keys()
                .find(|key| !fields.iter().any(|(name, _)| name == key))
            {
                return Err(invalid(format!("{path}.{key} is not a field of {ty}")));
            }
            for (name, field_ty) in fields {
                if let Some(field) = object.get(*name) {
                    pending.push((format!("{path}.{name}"), field_ty, field, depth + 1));
                }
            }
        } else {
            check_atomic(&path, ty, value)?;
        }
    }
    Ok(())
}

/// A struct type's fields, `[{name, type}]`, within the limits.
fn fields_of<'a>(name: &str, fields: &'a Value) -> Result<Vec<(&'a str, &'a str)>, EthError> {
    let bad = |why: &str| invalid(format!("types.{name} {why}"));
    if name.is_empty() || name.len() > MAX_TYPE_LEN {
        return Err(bad("has a name of no or too many characters"));
    }
    let fields = fields.as_array().ok_or_else(|| bad("is not an array"))?;
    if fields.len() > MAX_FIELDS {
        return Err(bad(&format!("has more than {MAX_FIELDS} fields")));
    }
    let mut read: Vec<(&str, &str)> = Vec::with_capacity(fields.len());
    for field in fields {
        let (Some(field_name), Some(ty), Some(2)) = (
            field.get("name").and_then(Value::as_str),
            field.get("type").and_then(Value::as_str),
            field.as_object().map(Map::len),
        ) else {
            return Err(bad("has a field that is not {name, type}"));
        };
        let dimensions = ty.matches('[').count();
        if ty.len() > MAX_TYPE_LEN || dimensions > MAX_DIMENSIONS {
            return Err(bad(&format!(
                "has a field type longer than {MAX_TYPE_LEN} characters or {MAX_DIMENSIONS} dimensions"
            )));
        }
        if read.iter().any(|(seen, _)| *seen == field_name) {
            return Err(bad(&format!("names {field_name} twice")));
        }
        read.push((field_name, ty));
    }
    Ok(read)
}

/// `T[]` or `T[n]`: the element type and the length, if fixed.
fn array_of(ty: &str) -> Option<(&str, Option<usize>)> {
    let open = ty.strip_suffix(']')?.rfind('[')?;
    let length = &ty[open + 1..ty.len() - 1];
    Some((
        &ty[..open],
        if length.is_empty() {
            None
        } else {
            length.parse().ok()
        },
    ))
}

/// The atomic values alloy-dyn-abi would read otherwise than viem and ethers: addresses (a
/// mixed-case one must pass its EIP-55 checksum) and integers (JSON numbers only while exact in
/// JavaScript; strings only as decimal digits or `0x` hex). The rest alloy checks itself.
fn check_atomic(path: &str, ty: &str, value: &Value) -> Result<(), EthError> {
    let bad = |why: String| invalid(format!("{path}: {why}"));
    if ty == "address" {
        let text = value
            .as_str()
            .ok_or_else(|| bad("an address is a 0x string".into()))?;
        Address::parse(text).map_err(|error| bad(error.to_string()))?;
    } else if ty.starts_with("uint") || ty.starts_with("int") {
        match value {
            Value::Number(number) => {
                let exact = number.as_u64().is_some_and(|n| n <= MAX_SAFE_INTEGER)
                    || number
                        .as_i64()
                        .is_some_and(|n| n.unsigned_abs() <= MAX_SAFE_INTEGER);
                if !exact {
                    return Err(bad(format!(
                        "{number} is not an integer JavaScript holds exactly: write it as a string"
                    )));
                }
            }
            Value::String(text) => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                let well_formed = match digits.strip_prefix("0x") {
                    Some(hex) => !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                    None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                };
                if !well_formed {
                    return Err(bad(format!("{text:?} is not a decimal or 0x hex integer")));
                }
            }
            _ => return Err(bad("an integer is a number or a string".into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of EIP-712 itself ("Mail", the file `Example.js` of the EIP's assets).
    pub(crate) fn mail() -> serde_json::Value {
        serde_json::json!({
            "types": {
                "EIP712Domain": [
                    { "name": "name", "type": "string" },
                    { "name": "version", "type": "string" },
                    { "name": "chainId", "type": "uint256" },
                    { "name": "verifyingContract", "type": "address" }
                ],
                "Person": [
                    { "name": "name", "type": "string" },
                    { "name": "wallet", "type": "address" }
                ],
                "Mail": [
                    { "name": "from", "type": "Person" },
                    { "name": "to", "type": "Person" },
                    { "name": "contents", "type": "string" }
                ]
            },
            "primaryType": "Mail",
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
            },
            "message": {
                "from": { "name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
                "to": { "name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
                "contents": "Hello, Bob!"
            }
        })
    }

    #[test]
    fn the_eips_mail_example_has_the_digest_the_eip_states() {
        // The EIP's Example.js: signHash() = be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2.
        assert_eq!(
            hex::encode(typed_data_digest(&mail().to_string()).unwrap()),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
    }

    #[test]
    fn the_domain_type_may_be_left_out() {
        let mut mail = mail();
        mail["types"]
            .as_object_mut()
            .unwrap()
            .remove("EIP712Domain");
        assert_eq!(
            hex::encode(typed_data_digest(&mail.to_string()).unwrap()),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
    }

    #[test]
    fn a_message_that_does_not_fit_its_types_is_refused() {
        let mut wrong_type = mail();
        wrong_type["message"]["from"]["wallet"] = "not an address".into();
        let mut missing_field = mail();
        missing_field["message"]
            .as_object_mut()
            .unwrap()
            .remove("contents");
        let mut unknown_primary = mail();
        unknown_primary["primaryType"] = "Letter".into();
        for bad in [
            wrong_type,
            missing_field,
            unknown_primary,
            serde_json::json!({}),
        ] {
            assert!(
                matches!(
                    typed_data_digest(&bad.to_string()),
                    Err(EthError::InvalidTypedData(_))
                ),
                "{bad}"
            );
        }
    }

    fn refused(typed: &Value, why: &str) {
        match typed_data_digest(&typed.to_string()) {
            Err(EthError::InvalidTypedData(error)) => {
                assert!(error.contains(why), "{why}: {error}")
            }
            other => panic!("{why}: {other:?}"),
        }
    }

    #[test]
    fn shapes_that_would_make_hashing_unbounded_are_refused_before_it() {
        // A chain of 1,600 types (alloy-dyn-abi recurses once per link: a stack overflow on a
        // 2 MiB thread), 40,000 array dimensions (the same), and 10,001 values.
        let mut chain = mail();
        for i in 0..1600 {
            chain["types"][format!("T{i}")] =
                serde_json::json!([{ "name": "x", "type": format!("T{}[]", i + 1) }]);
        }
        refused(&chain, "more than 64 types");
        let mut deep = mail();
        deep["types"]["Mail"][2]["type"] = format!("uint256{}", "[]".repeat(40_000)).into();
        refused(&deep, "dimensions");
        let mut many = mail();
        many["types"]["Mail"][2]["type"] = "uint8[]".into();
        many["message"]["contents"] = vec![1; 10_001].into();
        refused(&many, "more than 10000 values");
        let mut nested = mail();
        nested["types"]["Mail"][2]["type"] = format!("uint8{}", "[]".repeat(30)).into();
        let mut value = serde_json::json!([]);
        for _ in 0..29 {
            value = serde_json::json!([value]);
        }
        nested["message"]["contents"] = value;
        assert!(
            typed_data_digest(&nested.to_string()).is_ok(),
            "30 levels are fine"
        );
    }

    #[test]
    fn a_domain_alloy_would_hash_otherwise_than_viem_is_refused() {
        // alloy-dyn-abi hashes the EIP's domain fields whatever types.EIP712Domain says; viem and
        // ethers follow types.EIP712Domain. Each of these got one digest from alloy, another from viem.
        let mut custom = mail();
        custom["types"]["EIP712Domain"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "name": "foo", "type": "string" }));
        custom["domain"]["foo"] = "bar".into();
        refused(&custom, "domain.foo is not a field of EIP712Domain");
        let mut salted = mail();
        salted["domain"]["salt"] = format!("0x{}", "11".repeat(32)).into();
        refused(&salted, "types.EIP712Domain is not the EIP's fields");
        let mut reordered = mail();
        reordered["types"]["EIP712Domain"]
            .as_array_mut()
            .unwrap()
            .swap(0, 1);
        refused(&reordered, "types.EIP712Domain is not the EIP's fields");
        let mut narrow = mail();
        narrow["types"]["EIP712Domain"][2]["type"] = "uint64".into();
        refused(&narrow, "types.EIP712Domain is not the EIP's fields");
        // Without types.EIP712Domain, a salt is declared as the EIP orders it, as viem does.
        salted["types"]
            .as_object_mut()
            .unwrap()
            .remove("EIP712Domain");
        assert!(typed_data_digest(&salted.to_string()).is_ok());
    }

    #[test]
    fn what_is_not_signed_or_reads_differently_in_javascript_is_refused() {
        let mut extra = mail();
        extra["message"]["note"] = "pay 1 USDC".into();
        refused(&extra, "message.note is not a field of Mail");
        let mut top = mail();
        top["note"] = "pay 1 USDC".into();
        refused(&top, "note is not a field of typed data");
        let mut checksum = mail();
        checksum["message"]["to"]["wallet"] = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb".into();
        refused(&checksum, "message.to.wallet");
        let with_amount = |amount: Value| {
            let mut typed = mail();
            typed["types"]["Mail"][2] =
                serde_json::json!({ "name": "contents", "type": "uint256" });
            typed["message"]["contents"] = amount;
            typed
        };
        refused(
            &with_amount("1_000".into()),
            "not a decimal or 0x hex integer",
        );
        refused(&with_amount("0x".into()), "not a decimal or 0x hex integer");
        refused(
            &with_amount(9_007_199_254_740_993u64.into()),
            "write it as a string",
        );
        refused(&with_amount(1.5.into()), "write it as a string");
        for fine in [
            Value::from(9_007_199_254_740_991u64),
            "9007199254740993".into(),
            "0x2a".into(),
        ] {
            assert!(
                typed_data_digest(&with_amount(fine.clone()).to_string()).is_ok(),
                "{fine}"
            );
        }
        refused(&serde_json::json!("a string"), "not a JSON object");
    }
}
