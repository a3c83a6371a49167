//! The whole happy path against a real server process: register, key generation, addresses,
//! signing, idempotent creation, pools of the API key, and the routes not implemented yet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use waas_api::PoolName;
use waas_api::resources::{DEFAULT_NETWORK, DeviceState, OperationMetadata, OperationResponse};

use support::eth::{address_at, assert_signed_by, eip55, hex0x, public_key_at};
use support::{TestServer, default_pool, sha256};

#[tokio::test(flavor = "multi_thread")]
async fn register_generate_keys_addresses_and_sign() {
    let server = TestServer::start();
    let device = server.device().await;

    // Registration: a device named after its auth key, active, with its archive key.
    let registered = device.get_device().await;
    assert_eq!(registered.name, device.name);
    assert_eq!(registered.state, DeviceState::Active);
    let archive = device.keys.archive.verifying_key().to_sec1_point(true);
    assert_eq!(registered.archive_public_key, hex0x(archive.as_bytes()));
    // Registering again names the same device.
    let again: waas_api::resources::Device = device.register_again().await.ok();
    assert_eq!(again.name, device.name);

    // Key generation: the wallet and its device group, which holds this device alone.
    let wallet = device.create_wallet(&default_pool()).await;
    assert_eq!(
        device.get_wallet(&wallet.wallet.name).await,
        wallet.wallet,
        "GetMPCWallet and the operation's response agree"
    );
    assert_eq!(wallet.wallet.name.pool_name(), default_pool());
    let group = device.get_device_group(&wallet.device_group).await;
    assert_eq!(group.name, wallet.device_group);
    assert_eq!(group.devices, vec![device.name.clone()]);
    // The one thing left for the device is its archive, queued with the wallet (archive.rs).
    device
        .assert_only_archive_pending(&wallet.device_group, "no other work is left for the device")
        .await;

    // Three addresses at 0/0, 0/1, 0/2, each the one the device derives from its own xpub.
    let mut addresses = Vec::new();
    for index in 0..3u32 {
        let address = device.generate_address(&wallet.wallet.name, None).await;
        assert_eq!(address.derivation_path, format!("0/{index}"), "{address:?}");
        assert_eq!(
            address.address,
            address_at(&wallet.pairing, &[0, index]),
            "EIP-55 address"
        );
        assert_eq!(address.network, DEFAULT_NETWORK);
        assert_eq!(address.mpc_wallet, wallet.wallet.name);
        assert_eq!(address.mpc_keys.len(), 1, "{address:?}");
        addresses.push(address);
    }
    assert_eq!(device.list_addresses(&wallet.wallet.name).await, addresses);
    for address in &addresses {
        assert_eq!(
            &device
                .get_address(&wallet.wallet.name, &address.address)
                .await,
            address
        );
    }

    // Sign with the key of 0/1; the signature recovers that address.
    let digest = sha256(b"hello from the test device");
    let key = &addresses[1].mpc_keys[0];
    let signed = device.sign(&wallet.pairing, key, &digest).await;
    assert_eq!(signed.derivation_path, vec![0, 1]);
    assert_eq!(&signed.signature.mpc_key, key);
    assert_eq!(signed.signature.payload, hex0x(&digest));
    assert_signed_by(
        &digest,
        &signed.signature.signed_payload,
        &addresses[1].address,
    );
    let OperationMetadata::CreateSignature { mpc_key, .. } = &signed.operation.metadata else {
        panic!("{:?}", signed.operation)
    };
    assert_eq!(mpc_key, key);

    // A key at a path of the caller's choosing: the public key and address the device derives.
    let key = device.create_mpc_key(&wallet.device_group, "7/3").await;
    assert_eq!(key.derivation_path, "7/3");
    assert_eq!(
        key.public_key,
        hex0x(&public_key_at(&wallet.pairing, &[7, 3]))
    );
    assert_eq!(key.address, address_at(&wallet.pairing, &[7, 3]));
    // Keys are named after their path (docs/api.md), and GetMPCKey reads them back.
    assert!(key.name.to_string().ends_with("/mpcKeys/m-7-3"), "{key:?}");
    assert!(
        addresses[1].mpc_keys[0]
            .to_string()
            .ends_with("/mpcKeys/m-0-1"),
        "{:?}",
        addresses[1]
    );
    assert_eq!(device.get_mpc_key(&key.name).await, key);
    let digest = sha256(b"another message");
    let signed = device.sign(&wallet.pairing, &key.name, &digest).await;
    assert_eq!(signed.derivation_path, vec![7, 3]);
    assert_signed_by(&digest, &signed.signature.signed_payload, &key.address);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_make_creation_idempotent() {
    let server = TestServer::start();
    let device = server.device().await;

    let first = device
        .create_wallet_operation(&default_pool(), Some("wallet-1"))
        .await;
    let repeat = device
        .create_wallet_operation(&default_pool(), Some("wallet-1"))
        .await;
    assert_eq!(first.name, repeat.name, "same requestId, same operation");
    assert_eq!(first.metadata, repeat.metadata);
    let other = device
        .create_wallet_operation(&default_pool(), Some("wallet-2"))
        .await;
    assert_ne!(
        first.name, other.name,
        "another requestId, another operation"
    );

    let wallet = device.complete_wallet(&first).await;
    // After it finished, the same requestId still names the same (now done) operation.
    let after = device
        .create_wallet_operation(&default_pool(), Some("wallet-1"))
        .await;
    assert_eq!(after.name, first.name);
    assert!(after.done, "{after:?}");

    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    let digest = sha256(b"pay once");
    let first = device
        .create_signature_operation(key, &digest, Some("sign-1"))
        .await;
    let repeat = device
        .create_signature_operation(key, &digest, Some("sign-1"))
        .await;
    assert_eq!(
        first.name, repeat.name,
        "same requestId, same signature operation"
    );
    let signed = device
        .complete_signature(&wallet.pairing, &first, &digest)
        .await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
    // Only the one signing was pending: the repeat made no second one.
    device
        .assert_only_archive_pending(&wallet.device_group, "the repeat made no second signing")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_creates_a_pool_and_a_wallet_for_a_device() {
    let server = TestServer::start();
    let api = server.api_key();
    assert_eq!(api.name, "apiKeys/dev");
    let device = server.device().await;

    let pool = api.create_pool("acme", "Acme Inc.").await;
    let acme: PoolName = "pools/acme".parse().unwrap();
    assert_eq!(pool.name, acme);
    assert_eq!(pool.display_name, "Acme Inc.");
    assert!(
        pool.export_enabled,
        "export is on unless the pool turns it off"
    );
    assert_eq!(api.get_pool(&acme).await, pool);
    // The server's own pool is there too.
    assert_eq!(api.get_pool(&default_pool()).await.name, default_pool());

    let operation = api.create_wallet_operation(&acme, &device.name, None).await;
    assert!(!operation.done);
    let OperationMetadata::CreateMpcWallet { mpc_wallet, .. } = &operation.metadata else {
        panic!("{operation:?}")
    };
    assert_eq!(mpc_wallet.pool_name(), acme);
    let wallet = device.complete_wallet(&operation).await;
    // The API key sees the finished operation as the device does.
    let seen = api.get_operation(&operation.name).await;
    assert!(seen.done, "{seen:?}");
    assert_eq!(
        seen.response,
        Some(OperationResponse::MpcWallet(wallet.wallet.clone()))
    );
    let address = device.generate_address(&wallet.wallet.name, None).await;
    assert_eq!(address.address, address_at(&wallet.pairing, &[0, 0]));

    // API keys read any resource.
    let read = |path: String| api.client.get(path).send();
    let device_seen: waas_api::resources::Device = read(format!("/v1/{}", device.name)).await.ok();
    assert_eq!(device_seen, device.get_device().await);
    let wallet_seen: waas_api::resources::MpcWallet =
        read(format!("/v1/{}", wallet.wallet.name)).await.ok();
    assert_eq!(wallet_seen, wallet.wallet);
    let group_seen: waas_api::resources::DeviceGroup =
        read(format!("/v1/{}", wallet.device_group)).await.ok();
    assert_eq!(group_seen.devices, vec![device.name.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_has_a_date_header() {
    // Clients correct their token clock from `Date`, so errors need it as much as successes.
    let server = TestServer::start();
    let device = server.device().await;
    let anonymous = server.anonymous();
    let responses = [
        anonymous.get("/healthz").send().await,
        anonymous.get("/v1/version").send().await,
        anonymous.get("/v1/pools/default").send().await,
        device.client.get("/v1/pools/default").send().await,
        device.client.get("/v1/operations/nope").send().await,
    ];
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 200, 401, 200, 404],
        "{responses:#?}"
    );
    for response in &responses {
        let date = response
            .header("date")
            .unwrap_or_else(|| panic!("no Date header:\n{response:?}"));
        assert!(date.ends_with(" GMT"), "an HTTP date: {date:?}");
    }
}

#[test]
fn eip55_matches_the_published_examples() {
    // From the EIP-55 specification: the check the tests apply to every address shown.
    for expected in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ] {
        let bytes: [u8; 20] = hex::decode(expected[2..].to_lowercase())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(eip55(&bytes), expected);
    }
}
