//! Many operations at once, and the same request twice at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use waas_api::MpcOperationName;
use waas_api::resources::Address;

use support::eth::assert_signed_by;
use support::{Raw, TestDevice, TestServer, default_pool, on_postgres, sha256};

#[tokio::test(flavor = "multi_thread")]
async fn fifty_signings_at_once_all_complete_and_verify() {
    let server = TestServer::start();
    // Six devices with a wallet each, their key generations run at once too.
    let mut setups = Vec::new();
    for _ in 0..6 {
        let device = Arc::new(server.device().await);
        setups.push(tokio::spawn(async move {
            let wallet = device.create_wallet(&default_pool()).await;
            (device, Arc::new(wallet))
        }));
    }
    let mut wallets = Vec::new();
    for setup in setups {
        wallets.push(setup.await.unwrap());
    }

    // 25 signings on the first wallet (over three of its addresses), 5 on each of the others.
    let mut jobs: Vec<(usize, Address)> = Vec::new();
    let mut first_addresses = Vec::new();
    for _ in 0..3 {
        let (device, wallet) = &wallets[0];
        first_addresses.push(device.generate_address(&wallet.wallet.name, None).await);
    }
    for i in 0..25 {
        jobs.push((0, first_addresses[i % 3].clone()));
    }
    for (index, (device, wallet)) in wallets.iter().enumerate().skip(1) {
        let address = device.generate_address(&wallet.wallet.name, None).await;
        jobs.extend((0..5).map(|_| (index, address.clone())));
    }
    assert_eq!(jobs.len(), 50);

    let mut tasks = Vec::new();
    for (n, (index, address)) in jobs.into_iter().enumerate() {
        let (device, wallet) = wallets[index].clone();
        tasks.push(tokio::spawn(async move {
            let digest = sha256(format!("concurrent signing {n}").as_bytes());
            let signed = device
                .sign(&wallet.pairing, &address.mpc_keys[0], &digest)
                .await;
            assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
            signed.operation.name
        }));
    }
    let mut names = Vec::new();
    let mut failures = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(name) => names.push(name.to_string()),
            Err(error) => failures.push(format!("signing {n}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 50 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50, "every signing is its own operation");
    for (device, wallet) in &wallets {
        device
            .assert_only_archive_pending(&wallet.device_group, "no signing is left pending")
            .await;
    }
}

/// Sends the same exchange twice at once: both must succeed with the identical answer.
async fn twice_at_once(
    device: &TestDevice,
    operation: &MpcOperationName,
    round: u8,
    message: &[u8],
) -> Raw {
    let (a, b) = tokio::join!(
        device.exchange(operation, round, message),
        device.exchange(operation, round, message)
    );
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "round {round} twice at once:\n{a:?}\n{b:?}"
    );
    assert_eq!(
        a.body, b.body,
        "round {round}: two different answers:\n{a:?}\n{b:?}"
    );
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_exchange_twice_at_once_gets_one_answer() {
    let mut server = TestServer::start();
    // On PostgreSQL the two copies go to two replicas of one database, one each (the route
    // takes them in turn): at most one output of a phase leaves the servers, whichever runs it.
    let replica = on_postgres().then(|| server.replica());
    let route = match &replica {
        Some(replica) => TestServer::route_across(&[&server, replica]),
        None => server.route(),
    };
    let device = TestDevice::register(route.clone()).await;

    // Key generation, every round sent twice at once.
    let mut keygen = device.begin_keygen().await;
    let round2 = twice_at_once(&device, &keygen.op, 1, &keygen.round1).await;
    let round3 = keygen.round3(&round2.json());
    let round4 = twice_at_once(&device, &keygen.op, 3, &round3).await;
    let pairing = keygen.pairing(&round4.json());
    twice_at_once(&device, &keygen.op, 5, &pairing.public().confirmation()).await;
    let wallet = device.finished_wallet(&keygen.operation, pairing).await;

    // Signings, every round sent twice at once.
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    for n in 0..5 {
        let digest = sha256(format!("twice {n}").as_bytes());
        let mut signing = device.begin_signing(&wallet.pairing, key, &digest).await;
        let round2 = twice_at_once(&device, &signing.op, 1, &signing.round1).await;
        let round3 = signing.round3(&wallet.pairing, &round2.json());
        let round4 = twice_at_once(&device, &signing.op, 3, &round3).await;
        let signed = signing
            .finish(&device, &wallet.pairing, &round4.json())
            .await;
        assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
    }
    if let Some(replica) = &replica {
        let copies = route.served_where(":exchange");
        let on_replica = copies
            .iter()
            .filter(|by| std::sync::Arc::ptr_eq(by, &replica.address()))
            .count();
        assert_eq!(
            on_replica * 2,
            copies.len(),
            "each pair split over the replicas"
        );
    }
}
