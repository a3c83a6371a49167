//! EIP-712 typed data, from the JSON `eth_signTypedData_v4` takes.

use crate::EthError;

/// The digest of EIP-712 typed data: Keccak-256 of `0x19 0x01 ‖ domainSeparator ‖
/// hashStruct(message)`. The domain's type is taken from `types.EIP712Domain` when present, else
/// from the domain fields given, in the EIP's order (as viem and ethers do). Values read from
/// JSON numbers or from decimal or `0x` hex strings.
pub fn typed_data_digest(typed_data: &str) -> Result<[u8; 32], EthError> {
    let typed: alloy_dyn_abi::TypedData = serde_json::from_str(typed_data)
        .map_err(|error| EthError::InvalidTypedData(error.to_string()))?;
    let hash = typed
        .eip712_signing_hash()
        .map_err(|error| EthError::InvalidTypedData(error.to_string()))?;
    Ok(hash.0)
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
}
