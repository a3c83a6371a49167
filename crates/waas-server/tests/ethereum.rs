//! CreateSignature of typed payloads (docs/protocol/ethereum.md): the server computes the digest
//! of an EIP-191 message, EIP-712 typed data or a transaction itself, refuses a caller's digest
//! that differs, and keeps what was signed with the signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::resources::reason::DIGEST_MISMATCH;
use waas_api::resources::{MpcData, MpcProtocol, Operation, OperationResponse, TypedPayload};
use waas_api::{ErrorCode, MpcKeyName};
use waas_eth::{Bytes, RecoverableSignature, Transaction};

use support::eth::{assert_signed_by, hex0x, hex32};
use support::{TestDevice, TestServer, Wallet, default_pool, mpc_operation_of, sha256};

fn message(text: &str) -> TypedPayload {
    TypedPayload::Message {
        message: Bytes(text.as_bytes().to_vec()),
    }
}

fn transfer(nonce: u64) -> Transaction {
    serde_json::from_value(serde_json::json!({
        "type": "eip1559", "chainId": 1, "nonce": nonce, "maxPriorityFeePerGas": "0x3b9aca00",
        "maxFeePerGas": "0x4a817c800", "gas": "0x5208",
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": "0xde0b6b3a7640000",
    }))
    .unwrap()
}

/// The EIP's own example; its digest is the one EIP-712 states.
fn mail() -> serde_json::Value {
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" }, { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" }, { "name": "verifyingContract", "type": "address" }
            ],
            "Person": [{ "name": "name", "type": "string" }, { "name": "wallet", "type": "address" }],
            "Mail": [
                { "name": "from", "type": "Person" }, { "name": "to", "type": "Person" },
                { "name": "contents", "type": "string" }
            ]
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail", "version": "1", "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
        },
        "message": {
            "from": { "name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
            "to": { "name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
            "contents": "Hello, Bob!"
        }
    })
}

/// A server, a device with a wallet, and the key of its first address.
async fn signer() -> (TestServer, TestDevice, Wallet, MpcKeyName) {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = address.mpc_keys[0].clone();
    (server, device, wallet, key)
}

/// The digest and typed payload the mpcData of a CreateSignature gives the device.
async fn asked(device: &TestDevice, operation: &Operation) -> ([u8; 32], Option<TypedPayload>) {
    let mpc_operation = mpc_operation_of(operation);
    let group = mpc_operation.device_group_name();
    let entry = device
        .list_mpc_operations(&group)
        .await
        .into_iter()
        .find(|entry| entry.name == mpc_operation)
        .unwrap();
    let data = MpcData::decode(&entry.mpc_data).unwrap();
    let MpcProtocol::CreateSignature {
        digest,
        typed_payload,
        ..
    } = data.protocol
    else {
        panic!("not a signing: {data:?}");
    };
    (
        hex32(&digest),
        typed_payload.map(|typed| typed.parse().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_payloads_are_signed_on_the_servers_own_digest_and_kept() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];

    let cases = [
        (
            message("hello waas"),
            waas_eth::personal_message_digest(b"hello waas"),
        ),
        (
            TypedPayload::typed_data(mail().to_string()).unwrap(),
            hex32("0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"),
        ),
        (
            TypedPayload::Transaction {
                transaction: Box::new(transfer(0)),
            },
            transfer(0).signing_hash().unwrap(),
        ),
    ];
    for (typed, digest) in cases {
        // No digest from the caller: the server's own is what the device is asked to sign.
        let operation: Operation = device
            .create_typed_signature_call(key, &typed, None, None)
            .ok()
            .await;
        assert_eq!(
            asked(&device, &operation).await,
            (digest, Some(typed.clone()))
        );
        let signed = device
            .complete_signature(&wallet.pairing, &operation, &digest)
            .await;
        assert_eq!(signed.signature.payload, hex0x(&digest));
        assert_eq!(
            signed
                .signature
                .typed_payload
                .map(|kept| kept.parse().unwrap())
                .as_ref(),
            Some(&typed),
            "kept with the signature"
        );
        assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
        // GetOperation gives it later too.
        let again = device.get_operation(&operation.name).await;
        let Some(OperationResponse::Signature(stored)) = again.response else {
            panic!("{again:?}");
        };
        assert_eq!(
            stored.typed_payload.map(|kept| kept.parse().unwrap()),
            Some(typed.clone())
        );

        if let TypedPayload::Transaction { transaction } = &typed {
            // The signed transaction that comes of it recovers the address (the SDK's
            // encoding; viem and ethers check it in tests/e2e/sdk-ethereum.test.mjs).
            let bytes = signed.device.to_ethereum_bytes();
            let raw = transaction
                .encode_signed(&RecoverableSignature {
                    r: bytes[..32].try_into().unwrap(),
                    s: bytes[32..64].try_into().unwrap(),
                    y_parity: bytes[64] - 27,
                })
                .unwrap();
            assert_eq!(raw.raw[0], 2, "an EIP-1559 envelope");
            assert_eq!(raw.hash, waas_eth::keccak256(&raw.raw));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_that_is_not_the_payloads_is_refused_and_nothing_is_created() {
    let (_server, device, wallet, key) = signer().await;
    let key = &key;

    let hello = message("hello");
    let transaction = TypedPayload::Transaction {
        transaction: Box::new(transfer(1)),
    };
    for (typed, wrong) in [
        // A raw digest passed off as a message.
        (&hello, sha256(b"hello")),
        // Another message's digest.
        (&hello, waas_eth::personal_message_digest(b"hellO")),
        // The digest of the same transfer with another nonce.
        (&transaction, transfer(2).signing_hash().unwrap()),
    ] {
        device
            .create_typed_signature_call(key, typed, Some(&wrong), None)
            .send()
            .await
            .assert_error(ErrorCode::InvalidArgument, Some(DIGEST_MISMATCH));
    }
    device
        .assert_only_archive_pending(
            &wallet.device_group,
            "a refused signature leaves no operation",
        )
        .await;
    // With the right digest it goes through.
    let right = waas_eth::personal_message_digest(b"hello");
    let operation: Operation = device
        .create_typed_signature_call(key, &hello, Some(&right), None)
        .ok()
        .await;
    assert_eq!(asked(&device, &operation).await.0, right);
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_that_cannot_be_signed_are_refused() {
    let (_server, device, wallet, key) = signer().await;
    let key = &key;
    let path = format!("/v1/{key}/signatures");

    let mut not_mail = mail();
    not_mail["message"]["to"]["wallet"] = "Bob".into();
    let mut tip_above_cap = transfer(0);
    if let Transaction::Eip1559(tx) = &mut tip_above_cap {
        tx.max_priority_fee_per_gas = waas_eth::Quantity::parse("0x4a817c801").unwrap();
    }
    let mut no_chain = transfer(0);
    if let Transaction::Eip1559(tx) = &mut no_chain {
        tx.chain_id = waas_eth::Quantity::default();
    }
    // A chain of 1,600 types overflowed a worker's stack inside the EIP-712 encoder, aborting the
    // whole server: refused before it now (docs/protocol/ethereum.md).
    let mut chain = mail();
    for i in 0..1600 {
        chain["types"][format!("T{i}")] =
            serde_json::json!([{ "name": "x", "type": format!("T{}[]", i + 1) }]);
    }
    chain["primaryType"] = "T0".into();
    chain["message"] = serde_json::json!({ "x": [] });
    for typed in [
        TypedPayload::typed_data(chain.to_string()).unwrap(),
        TypedPayload::typed_data(not_mail.to_string()).unwrap(),
        TypedPayload::Transaction {
            transaction: Box::new(tip_above_cap),
        },
        TypedPayload::Transaction {
            transaction: Box::new(no_chain),
        },
    ] {
        device
            .create_typed_signature_call(key, &typed, None, None)
            .send()
            .await
            .assert_error(ErrorCode::InvalidArgument, None);
    }
    for body in [
        // Neither a digest nor a payload.
        r#"{}"#,
        // A misspelt field is refused rather than dropped from what is signed.
        r#"{"typedPayload":{"type":"transaction","transaction":{"type":"eip1559","chainId":"0x1",
            "nonce":"0x0","maxPriorityFeePerGas":"0x1","maxFeePerGas":"0x2","gasLimit":"0x5208"}}}"#,
        r#"{"typedPayload":{"type":"eip191","message":"not hex"}}"#,
        r#"{"typedPayload":{"type":"eip4844","transaction":{}}}"#,
        // Typed data is an object, not JSON text in a string.
        r#"{"typedPayload":{"type":"eip712","typedData":"{\"types\":{}}"}}"#,
    ] {
        device
            .client
            .post(path.clone())
            .body(body, Some("application/json"))
            .send()
            .await
            .assert_error(ErrorCode::InvalidArgument, None);
    }
    device
        .assert_only_archive_pending(&wallet.device_group, "nothing refused left an operation")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_names_one_payload() {
    let (_server, device, _, key) = signer().await;
    let key = &key;

    let first: Operation = device
        .create_typed_signature_call(key, &message("pay 1"), None, Some("request-1"))
        .ok()
        .await;
    let again: Operation = device
        .create_typed_signature_call(key, &message("pay 1"), None, Some("request-1"))
        .ok()
        .await;
    assert_eq!(
        again.name, first.name,
        "the same request gets the same operation"
    );
    device
        .create_typed_signature_call(key, &message("pay 100"), None, Some("request-1"))
        .send()
        .await
        .assert_error(ErrorCode::InvalidArgument, None);
    // The same digest is not the same request: a raw digest first, then the message it is of.
    let digest = waas_eth::personal_message_digest(b"pay 2");
    let raw: Operation = device
        .create_signature_call(key, &digest, Some("request-2"))
        .ok()
        .await;
    assert_ne!(raw.name, first.name);
    device
        .create_typed_signature_call(key, &message("pay 2"), Some(&digest), Some("request-2"))
        .send()
        .await
        .assert_error(ErrorCode::InvalidArgument, None);
}
