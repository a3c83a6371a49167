//! PostgreSQL going away under a running server (issue 9's fault checks). Each test runs its own
//! cluster (`support::cluster`: it stops and crashes it, which would break tests sharing
//! `WAAS_TEST_POSTGRES_URL`), whatever `WAAS_TEST_DATABASE` says; so this suite needs PostgreSQL
//! installed (`scripts/postgres.sh --install`, run by `scripts/setup.sh`, or by the first cluster
//! made here).
//!
//! - PostgreSQL restarted (cleanly and by a crash) and stopped for a few seconds while devices
//!   sign, create wallets, back up and recover: each request meets `UNAVAILABLE` at worst (503
//!   with `Retry-After`, never a 500, within the server's database timeout), sent again it
//!   succeeds, and afterwards every wallet signs and every backup recovers. The server process
//!   runs throughout.
//! - A start on a database that refuses the login, or does not exist: the server exits at once
//!   with one line saying which database and why, never the password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use waas_api::ErrorCode;
use waas_api::resources::Address;
use waas_mpc::Pairing;

use support::backup::{MadeBackup, made_backup};
use support::cluster::{PgCluster, Shutdown};
use support::eth::assert_signed_by;
use support::exits::run_server_until_exit;
use support::recovery::{Owned, recover};
use support::retrying::Retrying;
use support::{
    Client, PASSCODE, Route, Signer, TestDevice, TestServer, Wallet, default_pool, random_hex,
    sha256,
};

/// The servers' `--database-connect-timeout` here: while PostgreSQL is down, a request is
/// answered within about this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A wallet of `device` (CreateMPCWallet with a request id, so a retry is the same request) and
/// its first address.
async fn wallet_of(device: &TestDevice) -> (Wallet, Address) {
    let operation = device
        .create_wallet_operation(&default_pool(), Some(&random_hex(8)))
        .await;
    let wallet = device.complete_wallet(&operation).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    (wallet, address)
}

/// A signing of `what` by `device` with `pairing` (CreateSignature with a request id), checked
/// against the address.
async fn sign_checked(device: &TestDevice, pairing: &Pairing, address: &Address, what: &str) {
    let digest = sha256(what.as_bytes());
    let operation = device
        .create_signature_operation(&address.mpc_keys[0], &digest, Some(&random_hex(8)))
        .await;
    let signed = device
        .complete_signature(pairing, &operation, &digest)
        .await;
    assert_signed_by(&digest, &signed.signature.signed_payload, &address.address);
}

/// A device of the test, its wallet and address (shared by the tasks).
struct Holder {
    device: TestDevice,
    wallet: Wallet,
    address: Address,
}

impl Holder {
    async fn sign(&self, what: &str) {
        sign_checked(&self.device, &self.wallet.pairing, &self.address, what).await;
    }

    /// [`Owned`] of this wallet with `made` (the recovery driver's view of a backup).
    fn owned(&self, made: &MadeBackup) -> Owned {
        Owned {
            owner: TestDevice {
                name: self.device.name.clone(),
                keys: self.device.keys.clone(),
                client: self.device.client.clone(),
            },
            wallet: Wallet {
                wallet: self.wallet.wallet.clone(),
                device_group: self.wallet.device_group.clone(),
                operation: self.wallet.operation.clone(),
                pairing: self.wallet.pairing.clone(),
            },
            made: MadeBackup {
                string: made.string.clone(),
                backup: made.backup.clone(),
                device_half: made.device_half.clone(),
                server_half: made.server_half.clone(),
            },
            passcode: PASSCODE,
        }
    }

    /// A new device recovers the wallet with `made`, and signs for its address.
    async fn recover_and_sign(&self, via: &Retrying, made: &MadeBackup, what: &str) {
        let new = via.device().await;
        let pairing = recover(&new, &self.owned(made)).await;
        sign_checked(&new, &pairing, &self.address, what).await;
    }
}

/// A new device with a wallet, through `via`.
async fn holder(via: &Retrying) -> Holder {
    let device = via.device().await;
    let (wallet, address) = wallet_of(&device).await;
    Holder {
        device,
        wallet,
        address,
    }
}

/// Runs a blocking cluster step off the runtime's workers.
async fn on_cluster(cluster: &Arc<PgCluster>, step: impl FnOnce(&PgCluster) + Send + 'static) {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || step(&cluster))
        .await
        .unwrap();
}

/// While PostgreSQL is stopped, a request straight to the server (no retry) is answered
/// `UNAVAILABLE` with `Retry-After: 1`, within the server's database timeout.
async fn assert_unavailable_now(server: &str, device: &TestDevice) {
    let base = Route::to(Arc::new(RwLock::new(server.to_owned())));
    let signer = Signer::new(device.keys.auth.clone(), device.name.to_string());
    let calls = [
        (Client::new(base.clone(), None), "/healthz".to_owned()),
        (
            Client::new(base, Some(signer)),
            format!("/v1/{}", device.name),
        ),
    ];
    for (client, path) in calls {
        let asked = Instant::now();
        let answer = client.get(path).send().await;
        let took = asked.elapsed();
        answer.assert_error(ErrorCode::Unavailable, None);
        assert_eq!(
            answer.header("retry-after").as_deref(),
            Some("1"),
            "{answer:?}"
        );
        assert_eq!(answer.error().retry_after_seconds, Some(1), "{answer:?}");
        assert!(
            took < CONNECT_TIMEOUT + Duration::from_secs(3),
            "answered after {took:?}: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_and_stopped_under_load_costs_retries_only() {
    let started = Instant::now();
    let cluster = Arc::new(PgCluster::start());
    let database = cluster.create_database("faults");
    let timeout = format!("{}s", CONNECT_TIMEOUT.as_secs());
    let mut server = TestServer::on_database(&database, &["--database-connect-timeout", &timeout]);
    let via = Arc::new(Retrying::start(&server.url()).await);

    // Before the faults: four wallets, the first two with the passcode (to back up), the first
    // with a backup.
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(holder(&via).await);
    }
    for holder in &holders[..2] {
        holder
            .device
            .register_passcode(&holder.wallet.device_group, PASSCODE)
            .await;
    }
    let before = made_backup(&holders[0].device, &holders[0].wallet).await;
    let holders = Arc::new(holders);
    let before = Arc::new(before);
    let setup = started.elapsed();

    // The load: each wallet signs, over and over; one task creates a wallet for a new device,
    // backs up the first wallet and recovers it (with the backup made before) on a new device,
    // over and over. All of it through the retrying forwarder, until the faults are over. (One
    // device's backups run one at a time: a second PrepareDeviceBackup gets the first's
    // operation while it has not started.)
    let over = Arc::new(AtomicBool::new(false));
    let mut signers: Vec<JoinHandle<usize>> = Vec::new();
    for index in 0..holders.len() {
        let (holders, over) = (holders.clone(), over.clone());
        signers.push(tokio::spawn(async move {
            let mut signed = 0;
            while !over.load(Ordering::SeqCst) || signed < 2 {
                holders[index]
                    .sign(&format!("wallet {index}, signing {signed}"))
                    .await;
                signed += 1;
            }
            signed
        }));
    }
    let flows = {
        let (holders, before, via, over) =
            (holders.clone(), before.clone(), via.clone(), over.clone());
        tokio::spawn(async move {
            let (mut created, mut made) = (Vec::new(), Vec::new());
            while !over.load(Ordering::SeqCst) || created.is_empty() {
                created.push(holder(&via).await);
                let first = &holders[0];
                made.push((0, made_backup(&first.device, &first.wallet).await));
                first
                    .recover_and_sign(&via, &before, "recovered during the faults")
                    .await;
            }
            (created, made)
        })
    };

    // The faults: a clean restart, a crash, and a stop of three seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    on_cluster(&cluster, |cluster| cluster.restart(Shutdown::Fast)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    on_cluster(&cluster, |cluster| cluster.restart(Shutdown::Immediate)).await;
    // Two devices registered now, to create a wallet and to recover one during the stop.
    let (spare, newcomer) = (via.device().await, via.device().await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    on_cluster(&cluster, |cluster| cluster.stop(Shutdown::Fast)).await;
    let stopped = Instant::now();
    // A key generation, a backup (of the second wallet) and a recovery whose first requests meet
    // the stop, so each of them waits it out whatever the timing of the flows above.
    let across_the_stop = {
        let (holders, before) = (holders.clone(), before.clone());
        tokio::spawn(async move {
            let (first, second) = (&holders[0], &holders[1]);
            let (created, made, ()) = tokio::join!(
                async {
                    let (wallet, address) = wallet_of(&spare).await;
                    let created = Holder {
                        device: spare,
                        wallet,
                        address,
                    };
                    created.sign("a wallet made across the stop").await;
                    created
                },
                made_backup(&second.device, &second.wallet),
                async {
                    let pairing = recover(&newcomer, &first.owned(&before)).await;
                    let what = "recovered across the stop";
                    sign_checked(&newcomer, &pairing, &first.address, what).await;
                },
            );
            (created, (1, made))
        })
    };
    assert_unavailable_now(&server.url(), &holders[1].device).await;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed())).await;
    on_cluster(&cluster, PgCluster::start_again).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    over.store(true, Ordering::SeqCst);

    let mut signings = Vec::new();
    for signer in signers {
        signings.push(signer.await.unwrap());
    }
    let (mut created, mut made) = flows.await.unwrap();
    let (wallet, backup) = across_the_stop.await.unwrap();
    created.push(wallet);
    made.push(backup);
    let during = via.counts();
    let faults = started.elapsed() - setup;

    // Nothing lost: every wallet signs, every backup recovers (on a new device, which signs).
    for (index, holder) in holders.iter().chain(&created).enumerate() {
        holder
            .sign(&format!("after the faults, wallet {index}"))
            .await;
    }
    for (index, (of, made)) in std::iter::once((0, &*before))
        .chain(made.iter().map(|(of, made)| (*of, made)))
        .enumerate()
    {
        holders[of]
            .recover_and_sign(&via, made, &format!("after the faults, backup {index}"))
            .await;
    }
    assert!(server.running(), "the server exited");

    let counts = via.counts();
    eprintln!(
        "setup {setup:?}, faults {faults:?}, checks after {:?}; signings {signings:?}, \
         {} wallets and {} backups made during the faults; {during:?}; at the end {counts:?}",
        started.elapsed() - setup - faults,
        created.len(),
        made.len(),
    );
    assert!(
        counts.unexpected.is_empty(),
        "failures other than UNAVAILABLE:\n{}",
        counts.unexpected.join("\n")
    );
    assert_eq!(counts.no_answer, 0, "the server always answered");
    assert!(
        during.unavailable >= 1,
        "no request met the faults: {during:?}"
    );
    assert!(
        counts.slowest < CONNECT_TIMEOUT + Duration::from_secs(6),
        "an attempt took {:?}",
        counts.slowest
    );
}

#[test]
fn a_start_on_a_database_that_refuses_the_login_or_does_not_exist_fails_at_once() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    // postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres
    let (user_info, place) = url
        .strip_prefix("postgres://")
        .unwrap()
        .split_once('@')
        .unwrap();
    let (_, password) = user_info.split_once(':').unwrap();
    let (host, _) = place.split_once('/').unwrap();
    let wrong = "wrong-password-never-printed";
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    let cases = [
        (
            format!("postgres://postgres:{wrong}@{place}"),
            format!("postgres://postgres@{host}/postgres"),
            "password authentication failed",
        ),
        (
            format!("postgres://postgres:{password}@{host}/nothing_here"),
            format!("postgres://postgres@{host}/nothing_here"),
            "does not exist",
        ),
    ];
    for (database, named, why) in cases {
        let exited = run_server_until_exit(
            &[
                "--listen",
                "127.0.0.1:0",
                "--database",
                &database,
                "--master-key-file",
                key.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
        let stderr = &exited.stderr;
        assert!(!exited.status.success(), "{stderr}");
        // Refused at once: not retried until the timeout.
        assert!(exited.took < Duration::from_secs(4), "{exited:?}");
        let line = format!("waas-server: cannot connect to the database {named}: ");
        assert!(
            stderr
                .lines()
                .any(|text| text.starts_with(&line) && text.contains(why)),
            "no line {line}…{why}… in\n{stderr}"
        );
        assert!(
            !stderr.contains(wrong) && !stderr.contains(password),
            "{stderr}"
        );
    }
}

/// A database that would lose a commit after the server answered (fsync or full_page_writes off:
/// a crash of its machine) is refused at start, with the setting named: a lost commit would let
/// an answered MPC round run again (operations.md). Set right again, the server starts on it.
#[test]
fn a_database_that_could_lose_commits_is_refused_at_start() {
    let cluster = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    // Its files in the test's folder, should the server start after all.
    let api_key = dir.path().join("dev-api-key.json");
    let (_, place) = cluster.url().rsplit_once('@').unwrap();
    let named = format!("postgres://postgres@{place}");
    for setting in ["fsync", "full_page_writes"] {
        cluster.set_and_reload(setting, "off");
        let exited = run_server_until_exit(
            &[
                "--listen",
                "127.0.0.1:0",
                "--database",
                cluster.url(),
                "--master-key-file",
                key.to_str().unwrap(),
                "--dev-api-key-file",
                api_key.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
        let stderr = &exited.stderr;
        assert!(!exited.status.success(), "{stderr}");
        let line = format!(
            "waas-server: the database {named} does not keep commits safely: {setting} is off"
        );
        assert!(
            stderr.lines().any(|text| text.starts_with(&line)),
            "no line {line}… in\n{stderr}"
        );
        cluster.set_and_reload(setting, "on");
    }
    let mut server = TestServer::on_database(cluster.url(), &[]);
    assert!(server.running());
}
