//! The hand-assembled transaction encodings against alloy-consensus's, byte for byte: the
//! signing hash, the signed encoding and the transaction hash, over random transactions.
#![allow(clippy::unwrap_used)]

use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip2930::{AccessList, AccessListItem as AlloyItem};
use alloy_primitives::{
    Address as AlloyAddress, B256, Bytes as AlloyBytes, Signature, TxKind, U256,
};
use proptest::prelude::*;
use waas_eth::{
    AccessListItem, Address, Bytes, Eip1559Transaction, LegacyTransaction, Quantity,
    RecoverableSignature, Transaction,
};

fn quantity(value: u128) -> Quantity {
    Quantity::from_be_bytes(&value.to_be_bytes()).unwrap()
}

fn u256(bytes: [u8; 32]) -> Quantity {
    Quantity::from_be_bytes(&bytes).unwrap()
}

/// r or s of a signature: any 32 bytes below the group order will do for encoding, including
/// ones with leading zero bytes (which RLP drops).
fn scalar() -> impl Strategy<Value = [u8; 32]> {
    (any::<[u8; 32]>(), 0usize..4).prop_map(|(mut bytes, zeros)| {
        bytes[..zeros].fill(0);
        bytes[0] &= 0x7f;
        bytes
    })
}

fn access_list() -> impl Strategy<Value = Vec<([u8; 20], Vec<[u8; 32]>)>> {
    prop::collection::vec(
        (
            any::<[u8; 20]>(),
            prop::collection::vec(any::<[u8; 32]>(), 0..3),
        ),
        0..3,
    )
}

fn recipient() -> impl Strategy<Value = Option<[u8; 20]>> {
    prop::option::of(any::<[u8; 20]>())
}

/// Values from zero to the full 256 bits, so every RLP length form comes up.
fn value() -> impl Strategy<Value = [u8; 32]> {
    (any::<[u8; 32]>(), 0usize..33).prop_map(|(mut bytes, zeros)| {
        bytes[..zeros].fill(0);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn eip1559_matches_alloy(
        chain_id in 1u64..,
        nonce in 0u64..u64::MAX,
        (tip, cap) in (any::<u128>(), any::<u128>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        gas in any::<u64>(),
        to in recipient(),
        value in value(),
        data in prop::collection::vec(any::<u8>(), 0..80),
        list in access_list(),
        r in scalar(), s in scalar(), y_parity in any::<bool>(),
    ) {
        let ours = Transaction::Eip1559(Eip1559Transaction {
            chain_id: chain_id.into(),
            nonce: nonce.into(),
            max_priority_fee_per_gas: quantity(tip),
            max_fee_per_gas: quantity(cap),
            gas: gas.into(),
            to: to.map(Address),
            value: u256(value),
            data: Bytes(data.clone()),
            access_list: list
                .iter()
                .map(|(address, keys)| AccessListItem {
                    address: Address(*address),
                    storage_keys: keys.iter().map(|key| waas_eth::StorageKey(*key)).collect(),
                })
                .collect(),
        });
        let alloy = TxEip1559 {
            chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: cap,
            max_priority_fee_per_gas: tip,
            to: to.map_or(TxKind::Create, |to| TxKind::Call(AlloyAddress::from(to))),
            value: U256::from_be_bytes(value),
            access_list: AccessList(
                list.iter()
                    .map(|(address, keys)| AlloyItem {
                        address: AlloyAddress::from(*address),
                        storage_keys: keys.iter().map(|key| B256::from(*key)).collect(),
                    })
                    .collect(),
            ),
            input: AlloyBytes::from(data),
        };
        check(&ours, alloy, r, s, y_parity)?;
    }

    #[test]
    fn legacy_eip155_matches_alloy(
        chain_id in prop_oneof![1u64..100_000, 1u64..],
        nonce in 0u64..u64::MAX,
        gas_price in any::<u128>(),
        gas in any::<u64>(),
        to in recipient(),
        value in value(),
        data in prop::collection::vec(any::<u8>(), 0..80),
        r in scalar(), s in scalar(), y_parity in any::<bool>(),
    ) {
        let ours = Transaction::Legacy(LegacyTransaction {
            chain_id: chain_id.into(),
            nonce: nonce.into(),
            gas_price: quantity(gas_price),
            gas: gas.into(),
            to: to.map(Address),
            value: u256(value),
            data: Bytes(data.clone()),
        });
        let alloy = TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price,
            gas_limit: gas,
            to: to.map_or(TxKind::Create, |to| TxKind::Call(AlloyAddress::from(to))),
            value: U256::from_be_bytes(value),
            input: AlloyBytes::from(data),
        };
        check(&ours, alloy, r, s, y_parity)?;
    }
}

fn check<T>(
    ours: &Transaction,
    alloy: T,
    r: [u8; 32],
    s: [u8; 32],
    y_parity: bool,
) -> Result<(), TestCaseError>
where
    T: SignableTransaction<Signature>,
    T: alloy_consensus::transaction::RlpEcdsaEncodableTx,
    alloy_consensus::Signed<T>: Encodable2718,
{
    prop_assert_eq!(ours.signing_hash().unwrap(), alloy.signature_hash().0);
    let signature = RecoverableSignature {
        r,
        s,
        y_parity: u8::from(y_parity),
    };
    let signed = ours.encode_signed(&signature).unwrap();
    let reference = alloy.into_signed(Signature::new(
        U256::from_be_bytes(r),
        U256::from_be_bytes(s),
        y_parity,
    ));
    prop_assert_eq!(
        hex::encode(&signed.raw),
        hex::encode(reference.encoded_2718())
    );
    prop_assert_eq!(signed.hash, reference.hash().0);
    Ok(())
}

#[test]
fn unusable_transactions_are_refused_before_signing() {
    let base = Eip1559Transaction {
        chain_id: 1u64.into(),
        nonce: 0u64.into(),
        max_priority_fee_per_gas: 1u64.into(),
        max_fee_per_gas: 2u64.into(),
        gas: 21_000u64.into(),
        to: None,
        value: Quantity::default(),
        data: Bytes::default(),
        access_list: Vec::new(),
    };
    let cases = [
        (
            "chainId",
            Eip1559Transaction {
                chain_id: 0u64.into(),
                ..base.clone()
            },
        ),
        (
            "chainId",
            Eip1559Transaction {
                chain_id: quantity(1 << 64),
                ..base.clone()
            },
        ),
        (
            "nonce",
            Eip1559Transaction {
                nonce: u64::MAX.into(),
                ..base.clone()
            },
        ),
        (
            "gas",
            Eip1559Transaction {
                gas: quantity(1 << 64),
                ..base.clone()
            },
        ),
        (
            "maxPriorityFeePerGas",
            Eip1559Transaction {
                max_priority_fee_per_gas: 3u64.into(),
                ..base.clone()
            },
        ),
    ];
    for (field, transaction) in cases {
        let error = Transaction::Eip1559(transaction)
            .signing_hash()
            .unwrap_err();
        assert!(error.to_string().starts_with(field), "{field}: {error}");
    }
    assert!(Transaction::Eip1559(base).signing_hash().is_ok());
    // A legacy transaction without a chain id would be valid on every chain (no EIP-155).
    let legacy = LegacyTransaction {
        chain_id: 0u64.into(),
        nonce: 0u64.into(),
        gas_price: 1u64.into(),
        gas: 21_000u64.into(),
        to: None,
        value: Quantity::default(),
        data: Bytes::default(),
    };
    let error = Transaction::Legacy(legacy).signing_hash().unwrap_err();
    assert!(error.to_string().starts_with("chainId"), "{error}");
}
