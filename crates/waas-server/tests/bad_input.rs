//! Every kind of bad request gets its own error code, and leaves the database as it was (all but
//! `request_tokens`, where used token ids are recorded by design).
//!
//! Each test collects every mismatch before failing, so one run lists all of them, each with its
//! request and response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use serde_json::json;
use waas_api::auth::RequestClaims;
use waas_api::resources::{CreateMpcWalletRequest, OperationMetadata};
use waas_api::{DeviceGroupName, ErrorCode, MpcOperationName, MpcWalletName, RegistrationData};
use waas_mpc::{Keygen, SessionId, Signing, SigningRequest};

use support::eth::hex0x;
use support::{
    Auth, Call, Client, DeviceKeys, TestServer, b64, default_pool, mint, random_hex, reply, sha256,
};
use waas_api::auth::reason;

/// What a test expects of a refused request.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// This code, and this reason when given.
    Code(ErrorCode, Option<&'a str>),
    /// Status 400, whether INVALID_ARGUMENT or FAILED_PRECONDITION: for inputs the contract
    /// does not pin to one of the two.
    Status400,
}

/// Collects the failures of one test.
struct Checks<'a> {
    server: &'a TestServer,
    failures: Vec<String>,
}

impl<'a> Checks<'a> {
    fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            failures: Vec::new(),
        }
    }

    /// Sends `call` between two database dumps: it must be refused as `expect` and change nothing.
    async fn refused(&mut self, what: &str, call: Call<'_>, expect: Expect<'_>) {
        let before = self.server.db_dump().await;
        let response = call.send().await;
        let after = self.server.db_dump().await;
        let verdict = match expect {
            Expect::Code(code, reason) => response.check_error(code, reason),
            Expect::Status400 if response.status == 400 => Ok(()),
            Expect::Status400 => Err(format!("expected status 400, got\n{response:?}")),
        };
        if let Err(why) = verdict {
            self.failures.push(format!("{what}: {why}"));
        }
        if before != after {
            self.failures.push(format!(
                "{what}: the database changed\n{}\nafter:\n{response:?}",
                diff(&before, &after)
            ));
        }
    }

    async fn code(&mut self, what: &str, call: Call<'_>, code: ErrorCode) {
        self.refused(what, call, Expect::Code(code, None)).await;
    }

    /// Panics with every failure at once.
    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} failure(s):\n\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }
}

/// The lines only in `before` (-) and only in `after` (+).
fn diff(before: &str, after: &str) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let removed = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"));
    let added = new
        .iter()
        .filter(|l| !old.contains(l))
        .map(|l| format!("+ {l}"));
    removed.chain(added).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_argument() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    let wallets = "/v1/pools/default/mpcWallets";
    let valid = serde_json::to_string(&CreateMpcWalletRequest {
        device: device.name.clone(),
        request_id: None,
    })
    .unwrap();
    let json = Some("application/json");
    let invalid = Expect::Code(ErrorCode::InvalidArgument, None);
    let mut checks = Checks::new(&server);
    let c = &device.client;

    // Valid JSON over 1 MiB (a long requestId); the token covers the whole body.
    let oversize = format!(
        r#"{{"device":"{}","requestId":"{}"}}"#,
        device.name,
        "a".repeat((1 << 20) + 1)
    );
    let unknown_field = format!(r#"{{"device":"{}","color":"red"}}"#, device.name);
    let mut cases = vec![
        // Bodies.
        (
            "malformed JSON",
            c.post(wallets).body(r#"{"device":"#, json),
        ),
        (
            "JSON that is not an object",
            c.post(wallets).body("[]", json),
        ),
        ("an empty body", c.post(wallets).body("", json)),
        (
            "text/plain",
            c.post(wallets).body(valid.clone(), Some("text/plain")),
        ),
        ("no content type", c.post(wallets).body(valid.clone(), None)),
        (
            "an unknown field",
            c.post(wallets).body(unknown_field, json),
        ),
        ("a body over 1 MiB", c.post(wallets).body(oversize, json)),
        // Resource names, in the path and in the body.
        (
            "an upper-case pool id",
            c.post("/v1/pools/Default/mpcWallets")
                .body(valid.clone(), json),
        ),
        (
            "a bad device name",
            c.post(wallets)
                .body(r#"{"device":"devices/Not_Valid"}"#, json),
        ),
        (
            "a pool for a device",
            c.post(wallets).body(r#"{"device":"pools/default"}"#, json),
        ),
        ("a bad operation id", c.get("/v1/operations/Op_1")),
        (
            "an id starting with '-'",
            c.get("/v1/pools/default/mpcWallets/-w"),
        ),
        (
            "an id of 64 characters",
            c.get(format!("/v1/operations/{}", "a".repeat(64))),
        ),
    ];
    // Values: derivation paths (hardened, malformed, out of range), payloads (not 32 bytes).
    let keys_path = format!("/v1/{}/mpcKeys", wallet.device_group);
    for path in ["0'/1", "m/x", "0//1", "4294967295"] {
        let body = serde_json::json!({ "derivationPath": path });
        cases.push(("a bad derivation path", c.post(&keys_path).json(&body)));
    }
    let signatures = format!("/v1/{key}/signatures");
    let digest = hex0x(&sha256(b"x"));
    for payload in ["0x1234", &digest[2..], "0xzz", &format!("{digest}00")] {
        let body = serde_json::json!({ "payload": payload });
        cases.push(("a bad payload", c.post(&signatures).json(&body)));
    }
    for (what, call) in cases {
        checks.refused(what, call, invalid).await;
    }

    // Registration data: garbage, and proofs that do not verify.
    let anonymous = server.anonymous();
    let register = |data: &RegistrationData| {
        anonymous
            .post("/v1/device:register")
            .json(&serde_json::json!({ "registrationData": data.encode() }))
    };
    let keys = DeviceKeys::random();
    let other = DeviceKeys::random().registration_data();
    let (mut wrong_auth, mut wrong_archive, mut by_others) = (
        keys.registration_data(),
        keys.registration_data(),
        keys.registration_data(),
    );
    wrong_auth.auth_proof[10] ^= 1;
    wrong_archive.archive_proof[10] ^= 1;
    (by_others.auth_proof, by_others.archive_proof) = (other.auth_proof, other.archive_proof);
    let raw = |data: String| {
        anonymous
            .post("/v1/device:register")
            .json(&serde_json::json!({ "registrationData": data }))
    };
    let cases = [
        ("registration data that is not base64url", raw("%%%".into())),
        ("registration data of 10 bytes", raw(b64(&[1; 10]))),
        ("a wrong auth proof", register(&wrong_auth)),
        ("a wrong archive proof", register(&wrong_archive)),
        ("proofs by other keys", register(&by_others)),
    ];
    for (what, call) in cases {
        checks.refused(what, call, invalid).await;
    }

    // A message that is not base64url.
    let pending = device.create_wallet_operation(&default_pool(), None).await;
    let OperationMetadata::CreateMpcWallet { mpc_operation, .. } = &pending.metadata else {
        panic!("{pending:?}")
    };
    let body = serde_json::json!({ "round": 1, "message": "not base64!" });
    checks
        .refused(
            "an exchange message that is not base64url",
            c.post(format!("/v1/{mpc_operation}:exchange")).json(&body),
            invalid,
        )
        .await;
    checks.finish();

    // None of it got in the way of the pending key generation.
    device.complete_wallet(&pending).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_unauthenticated() {
    let server = TestServer::start();
    let device = server.device().await;
    let path = "/v1/pools/default/mpcWallets";
    let body = serde_json::to_vec(&CreateMpcWalletRequest {
        device: device.name.clone(),
        request_id: None,
    })
    .unwrap();
    // Each case: a CreateMPCWallet that would add an operation if it were let in.
    let call = |auth: Auth| {
        device
            .client
            .post(path)
            .body(body.clone(), Some("application/json"))
            .auth(auth)
    };
    let claims = |change: fn(&mut RequestClaims)| call(Auth::Claims(Box::new(change)));
    let bearer = |token: &str| call(Auth::Header(format!("Bearer {token}")));
    let signer = device.client.signer();
    let honest = || signer.claims(&Method::POST, path, &body);
    // Signatures: by another key, tampered with, or of another kind.
    let es256 = r#"{"alg":"ES256","typ":"JWT"}"#;
    let by_stranger = mint(&DeviceKeys::random().auth, es256, &honest());
    let mut tampered = signer.token(&honest()).into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let token = signer.token(&honest());
    let claims_part = token.split('.').nth(1).unwrap();
    let alg_none = format!("{}.{claims_part}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let hs256 = mint(
        &device.keys.auth,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &honest(),
    );

    let cases = [
        ("no token", call(Auth::None)),
        (
            "not a bearer token",
            call(Auth::Header("Basic dXNlcjpwYXNz".into())),
        ),
        ("garbage", bearer("a.b.c")),
        (
            "another audience",
            claims(|c| c.aud = "other-server".into()),
        ),
        ("a lifetime over 60 s", claims(|c| c.exp = c.iat + 3600)),
        ("exp before iat", claims(|c| c.exp = c.iat - 1)),
        ("exp equal to iat", claims(|c| c.exp = c.iat)),
        ("an empty jti", claims(|c| c.jti = String::new())),
        ("a jti of 65 characters", claims(|c| c.jti = "j".repeat(65))),
        ("another method", claims(|c| c.htm = "GET".into())),
        (
            "another path",
            claims(|c| c.htu = "/v1/pools/other/mpcWallets".into()),
        ),
        ("another body hash", claims(|c| c.bh = b64(&sha256(b"{}")))),
        (
            "an unknown device",
            claims(|c| c.sub = "devices/unknown".into()),
        ),
        (
            "the API key's name",
            claims(|c| c.sub = "apiKeys/dev".into()),
        ),
        ("signed by another key", bearer(&by_stranger)),
        ("a tampered signature", bearer(&tampered)),
        ("alg none", bearer(&alg_none)),
        ("alg HS256", bearer(&hs256)),
    ];
    let mut checks = Checks::new(&server);
    for (what, call) in cases {
        let expect = Expect::Code(ErrorCode::Unauthenticated, None);
        checks.refused(what, call, expect).await;
    }
    // The clock cases carry a reason, so the client knows to resync or to mint again.
    let expired = claims(|c| {
        c.iat -= 200;
        c.exp -= 200;
    });
    let expect = Expect::Code(ErrorCode::Unauthenticated, Some(reason::TOKEN_EXPIRED));
    checks.refused("expired", expired, expect).await;
    let future = claims(|c| {
        c.iat += 300;
        c.exp += 300;
    });
    let expect = Expect::Code(ErrorCode::Unauthenticated, Some(reason::CLOCK_SKEW));
    checks.refused("issued in the future", future, expect).await;

    // A token is good once: its replay is refused, even for the request it was made for.
    let token = signer.token(&honest());
    bearer(&token).ok::<serde_json::Value>().await;
    let expect = Expect::Code(ErrorCode::Unauthenticated, Some(reason::TOKEN_REPLAYED));
    checks
        .refused("a replayed token", bearer(&token), expect)
        .await;
    checks.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_within_the_leeway_is_accepted() {
    let server = TestServer::start();
    let device = server.device().await;
    // CLOCK_LEEWAY_SECS is 10: five seconds either way must pass.
    for offset in [5, -5] {
        device.client.signer().set_clock_offset(offset);
        device.get_pool(&default_pool()).await;
    }
    device.client.signer().set_clock_offset(0);
    // A token that expired 2 s ago (the server's clock may be ahead by that much).
    device
        .client
        .get("/v1/pools/default")
        .auth(Auth::Claims(Box::new(|c| {
            c.iat -= 62;
            c.exp -= 62;
        })))
        .ok::<serde_json::Value>()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_devices_resources_are_permission_denied() {
    let server = TestServer::start();
    let owner = server.device().await;
    let intruder = server.device().await;
    let wallet = owner.create_wallet(&default_pool()).await;
    let address = owner.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    let digest = sha256(b"owner's payment");
    let signing = owner.create_signature_operation(key, &digest, None).await;
    let OperationMetadata::CreateSignature { mpc_operation, .. } = &signing.metadata else {
        panic!("{signing:?}")
    };
    let group = format!("/v1/{}", wallet.device_group);
    let wallet_path = format!("/v1/{}", wallet.wallet.name);
    let c = &intruder.client;
    let mut checks = Checks::new(&server);

    let api = server.api_key();
    let exchange = json!({"round": 1, "message": b64(b"x")});
    let theft = json!({"payload": hex0x(&sha256(b"theft"))});
    let cases = [
        (
            "GetOperation of another device's operation",
            c.get(format!("/v1/{}", signing.name)),
        ),
        (
            "ListMPCOperations of another device's group",
            c.get(format!("{group}/mpcOperations")),
        ),
        (
            "an exchange on another device's operation",
            intruder.exchange_call(mpc_operation, 1, b"x"),
        ),
        ("GetDeviceGroup of another device's group", c.get(&group)),
        (
            "CreateMPCKey in another device's group",
            c.post(format!("{group}/mpcKeys"))
                .json(&json!({"derivationPath": "0/9"})),
        ),
        (
            "CreateSignature with another device's key",
            c.post(format!("/v1/{key}/signatures")).json(&theft),
        ),
        (
            "CreateMPCWallet for another device",
            c.post("/v1/pools/default/mpcWallets")
                .json(&json!({"device": owner.name})),
        ),
        (
            "GetDevice of another device",
            c.get(format!("/v1/{}", owner.name)),
        ),
        (
            "CreatePool as a device (API keys only)",
            c.post("/v1/pools").json(&json!({"poolId": "mine"})),
        ),
        // A wallet is its device group's: the group's rule holds for its routes.
        (
            "GetMPCWallet of another device's wallet",
            c.get(&wallet_path),
        ),
        (
            "GenerateAddress on another device's wallet",
            c.post(format!("{wallet_path}:generateAddress"))
                .json(&json!({})),
        ),
        (
            "ListAddresses of another device's wallet",
            c.get(format!("{wallet_path}/addresses")),
        ),
        // API keys read anything but compute nothing: the MPC routes are the device's alone.
        (
            "ListMPCOperations by an API key",
            api.client.get(format!("{group}/mpcOperations")),
        ),
        (
            "an exchange by an API key",
            api.client
                .post(format!("/v1/{mpc_operation}:exchange"))
                .json(&exchange),
        ),
    ];
    for (what, call) in cases {
        checks.code(what, call, ErrorCode::PermissionDenied).await;
    }
    let again = json!({"poolId": "default", "displayName": "again"});
    let call = api.client.post("/v1/pools").json(&again);
    checks
        .code(
            "CreatePool of an existing pool",
            call,
            ErrorCode::AlreadyExists,
        )
        .await;
    checks.finish();

    // The owner's signing was not disturbed.
    owner
        .complete_signature(&wallet.pairing, &signing, &digest)
        .await;
}

/// GenerateAddress and CreateMPCKey on a wallet whose key generation is not confirmed yet.
async fn not_yet(
    checks: &mut Checks<'_>,
    client: &Client,
    wallet: &MpcWalletName,
    group: &DeviceGroupName,
    when: &str,
) {
    checks
        .code(
            &format!("GenerateAddress {when}"),
            client
                .post(format!("/v1/{wallet}:generateAddress"))
                .json(&serde_json::json!({})),
            ErrorCode::FailedPrecondition,
        )
        .await;
    checks
        .code(
            &format!("CreateMPCKey {when}"),
            client
                .post(format!("/v1/{group}/mpcKeys"))
                .json(&serde_json::json!({"derivationPath": "0/0"})),
            ErrorCode::FailedPrecondition,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_rounds_out_of_order_conflicting_or_late_are_refused() {
    let server = TestServer::start();
    let device = server.device().await;
    let operation = device.create_wallet_operation(&default_pool(), None).await;
    let OperationMetadata::CreateMpcWallet {
        mpc_operation,
        device_group,
        mpc_wallet,
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let op = mpc_operation;
    let mut checks = Checks::new(&server);
    let failed_precondition = Expect::Code(ErrorCode::FailedPrecondition, None);
    let aborted = Expect::Code(ErrorCode::Aborted, None);
    let invalid = Expect::Code(ErrorCode::InvalidArgument, None);

    let pending = device.find_mpc_operation(op).await;
    let (mut keygen, round1) = device.start_keygen(&pending);
    let garbage = [7u8; 200];

    // Before round 1: later rounds, server rounds, and a message that is no envelope.
    checks
        .refused(
            "round 3 first",
            device.exchange_call(op, 3, &garbage),
            failed_precondition,
        )
        .await;
    checks
        .refused(
            "round 5 first",
            device.exchange_call(op, 5, &[0; 32]),
            failed_precondition,
        )
        .await;
    checks
        .refused(
            "round 2 (the server's)",
            device.exchange_call(op, 2, &round1),
            Expect::Status400,
        )
        .await;
    checks
        .refused(
            "round 0",
            device.exchange_call(op, 0, &round1),
            Expect::Status400,
        )
        .await;
    checks
        .refused(
            "a round-1 message that is no envelope",
            device.exchange_call(op, 1, &garbage),
            invalid,
        )
        .await;
    // A well-formed round 1 of another session (another operation's context) changes nothing.
    let other_context = SessionId::derive(
        "waas-sdk keygen",
        &[b"another operation", device.name.to_string().as_bytes()],
    );
    let (_, foreign_round1) = Keygen::start_device(other_context).unwrap();
    checks
        .refused(
            "a round 1 of another session",
            device.exchange_call(op, 1, &foreign_round1),
            invalid,
        )
        .await;
    // The wallet has no key yet: no address, no key.
    not_yet(
        &mut checks,
        &device.client,
        mpc_wallet,
        device_group,
        "before round 1",
    )
    .await;

    // Round 1; the same message again gets the identical stored answer.
    let first = device.exchange(op, 1, &round1).await;
    let again = device.exchange(op, 1, &round1).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        (again.status, &again.body),
        (200, &first.body),
        "the repeat:\n{again:?}"
    );
    // Another valid round 1 (a fresh device session) for the round already answered.
    let (_, other_round1) = device.start_keygen(&pending);
    checks
        .refused(
            "a different round 1 after round 1",
            device.exchange_call(op, 1, &other_round1),
            aborted,
        )
        .await;
    checks
        .refused(
            "round 5 before round 3",
            device.exchange_call(op, 5, &[0; 32]),
            failed_precondition,
        )
        .await;

    // Round 3, its repeat, and a different round 3.
    let round3 = keygen
        .handle(&reply(&first.json(), 2))
        .unwrap()
        .reply
        .unwrap();
    let third = device.exchange(op, 3, &round3).await;
    assert_eq!(third.status, 200, "{third:?}");
    let again = device.exchange(op, 3, &round3).await;
    assert_eq!(
        (again.status, &again.body),
        (200, &third.body),
        "the repeat:\n{again:?}"
    );
    let mut other_round3 = round3.clone();
    let middle = other_round3.len() / 2;
    other_round3[middle] ^= 1;
    checks
        .refused(
            "a different round 3 after round 3",
            device.exchange_call(op, 3, &other_round3),
            aborted,
        )
        .await;

    // The server has its half now, but the device has not confirmed it: still no address.
    not_yet(
        &mut checks,
        &device.client,
        mpc_wallet,
        device_group,
        "before round 5",
    )
    .await;

    // The confirmation finishes it; its repeat gets the same answer.
    let step = keygen.handle(&reply(&third.json(), 4)).unwrap();
    let pairing = step.output.unwrap();
    checks
        .refused(
            "a confirmation naming only the pairing id",
            device.exchange_call(op, 5, &pairing.public().id),
            invalid,
        )
        .await;
    let id = pairing.public().confirmation();
    let done = device.exchange(op, 5, &id).await;
    assert_eq!(done.status, 200, "{done:?}");
    let again = device.exchange(op, 5, &id).await;
    assert_eq!(
        (again.status, &again.body),
        (200, &done.body),
        "the repeat:\n{again:?}"
    );

    // Anything else for the finished operation.
    checks
        .refused(
            "a new round 1 after the end",
            device.exchange_call(op, 1, &other_round1),
            failed_precondition,
        )
        .await;
    checks
        .refused(
            "a different round 3 after the end",
            device.exchange_call(op, 3, &other_round3),
            failed_precondition,
        )
        .await;
    let mut other_id = id;
    other_id[0] ^= 1;
    checks
        .refused(
            "a different confirmation after the end",
            device.exchange_call(op, 5, &other_id),
            failed_precondition,
        )
        .await;
    checks
        .refused(
            "round 7 after the end",
            device.exchange_call(op, 7, &id),
            failed_precondition,
        )
        .await;

    // Operations that do not exist.
    let unknown: MpcOperationName = format!("{device_group}/mpcOperations/{}", random_hex(8))
        .parse()
        .unwrap();
    checks
        .code(
            "an exchange on an unknown operation",
            device.exchange_call(&unknown, 1, &round1),
            ErrorCode::NotFound,
        )
        .await;
    checks
        .code(
            "GetOperation of an unknown operation",
            device
                .client
                .get(format!("/v1/operations/{}", random_hex(8))),
            ErrorCode::NotFound,
        )
        .await;
    checks.finish();

    // The wallet is usable: the refused requests did not damage it.
    let wallet = device.finished_wallet(&operation, pairing).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    device
        .sign(
            &wallet.pairing,
            &address.mpc_keys[0],
            &sha256(b"still works"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_rounds_out_of_order_conflicting_or_late_are_refused() {
    let server = TestServer::start();
    let device = server.device().await;
    let wallet = device.create_wallet(&default_pool()).await;
    let address = device.generate_address(&wallet.wallet.name, None).await;
    let key = &address.mpc_keys[0];
    let digest = sha256(b"sign me once");
    let operation = device.create_signature_operation(key, &digest, None).await;
    let OperationMetadata::CreateSignature {
        mpc_operation: op, ..
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let pending = device.find_mpc_operation(op).await;
    let (mut session, round1, path) = device.start_signing(&pending, &wallet.pairing, key, &digest);
    let (_, other_round1, _) = device.start_signing(&pending, &wallet.pairing, key, &digest);
    let mut checks = Checks::new(&server);
    let failed_precondition = Expect::Code(ErrorCode::FailedPrecondition, None);

    checks
        .refused(
            "round 3 first",
            device.exchange_call(op, 3, &round1),
            failed_precondition,
        )
        .await;
    // A well-formed round 1 for another digest (another session) changes nothing.
    let name = op.to_string();
    let other = SigningRequest {
        operation: &name,
        path: &path,
        digest: sha256(b"something else"),
    };
    let (_, foreign_round1) = Signing::start_device(&wallet.pairing, &other).unwrap();
    checks
        .refused(
            "a round 1 of another session",
            device.exchange_call(op, 1, &foreign_round1),
            Expect::Code(ErrorCode::InvalidArgument, None),
        )
        .await;
    let first = device.exchange(op, 1, &round1).await;
    assert_eq!(first.status, 200, "{first:?}");
    checks
        .refused(
            "a different round 1 after round 1",
            device.exchange_call(op, 1, &other_round1),
            Expect::Code(ErrorCode::Aborted, None),
        )
        .await;
    let round3 = session
        .handle(&wallet.pairing, &reply(&first.json(), 2))
        .unwrap()
        .reply
        .unwrap();
    let last = device.exchange(op, 3, &round3).await;
    assert_eq!(last.status, 200, "{last:?}");
    let again = device.exchange(op, 3, &round3).await;
    assert_eq!(
        (again.status, &again.body),
        (200, &last.body),
        "the repeat:\n{again:?}"
    );
    checks
        .refused(
            "a new round 1 after the end",
            device.exchange_call(op, 1, &other_round1),
            failed_precondition,
        )
        .await;
    let mut other_round3 = round3.clone();
    let middle = other_round3.len() / 2;
    other_round3[middle] ^= 1;
    checks
        .refused(
            "a different round 3 (the last round) after the end",
            device.exchange_call(op, 3, &other_round3),
            failed_precondition,
        )
        .await;
    checks
        .refused(
            "round 5 after the end",
            device.exchange_call(op, 5, &round3),
            failed_precondition,
        )
        .await;
    checks.finish();

    let signature = session
        .handle(&wallet.pairing, &reply(&last.json(), 4))
        .unwrap()
        .output
        .unwrap();
    device
        .finished_signature(&operation.name, signature, path)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_that_fails_the_protocol_checks_ends_the_operation_or_changes_nothing() {
    // A well-formed round 3 whose content is wrong (one byte changed in the middle, inside the
    // OT setup or proof data): either it does not decode (INVALID_ARGUMENT, nothing changes,
    // the honest round 3 still works) or it fails an engine check, which ends the operation
    // (ABORTED, stored: GetOperation is done with that error, later rounds are refused).
    let server = TestServer::start();
    let device = server.device().await;
    let operation = device.create_wallet_operation(&default_pool(), None).await;
    let OperationMetadata::CreateMpcWallet {
        mpc_operation: op, ..
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let pending = device.find_mpc_operation(op).await;
    let (mut keygen, round1) = device.start_keygen(&pending);
    let round2 = reply(&device.exchange_ok(op, 1, &round1).await, 2);
    let round3 = keygen.handle(&round2).unwrap().reply.unwrap();
    let mut tampered = round3.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x55;

    let before = server.db_dump().await;
    let response = device.exchange(op, 3, &tampered).await;
    match response.status {
        400 => {
            response.assert_error(ErrorCode::InvalidArgument, None);
            assert_eq!(before, server.db_dump().await, "{response:?}");
            device.exchange_ok(op, 3, &round3).await;
        }
        409 => {
            response.assert_error(ErrorCode::Aborted, None);
            let failed = device.get_operation(&operation.name).await;
            assert!(failed.done, "{failed:?}");
            assert_eq!(
                failed.error.as_ref().map(|e| e.code),
                Some(ErrorCode::Aborted),
                "{failed:?}"
            );
            assert_eq!(failed.response, None, "{failed:?}");
            assert!(
                device
                    .list_mpc_operations(&op.device_group_name())
                    .await
                    .is_empty(),
                "a failed operation is no longer pending"
            );
            // Its exact repeat gets the same (stored) refusal.
            let again = device.exchange(op, 3, &tampered).await;
            assert_eq!(
                (again.status, &again.error().code),
                (409, &ErrorCode::Aborted),
                "{again:?}"
            );
            // The operation has finished (failed): the honest round 3 is not an exact repeat.
            device
                .exchange(op, 3, &round3)
                .await
                .assert_error(ErrorCode::FailedPrecondition, None);
        }
        _ => panic!("expected INVALID_ARGUMENT or ABORTED:\n{response:?}"),
    }
    println!("a tampered round 3 got {}", response.status);
}
