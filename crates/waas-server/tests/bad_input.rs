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
use waas_api::resources::{
    CreateMpcWalletRequest, MAX_REQUEST_ID_LEN, Operation, OperationMetadata,
};
use waas_api::{ErrorCode, MpcOperationName, RegistrationData};
use waas_mpc::{Keygen, SessionId, Signing, SigningRequest};

use support::eth::hex0x;
use support::{
    Auth, Call, DeviceKeys, StartedKeygen, TestDevice, TestServer, b64, default_pool, flip, mint,
    mpc_operation_of, random_hex, reply, sha256,
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

/// Exchanges for [`Checks::exchanges_refused`]: what each one is (for the failure message), its
/// round and its message.
type Exchanges<'a> = [(&'a str, u8, &'a [u8])];

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

    /// Sends each exchange of `cases` on `op` by `device`, in order, as [`Self::refused`]: each
    /// must be refused as `expect` and change nothing.
    async fn exchanges_refused(
        &mut self,
        device: &TestDevice,
        op: &MpcOperationName,
        cases: &Exchanges<'_>,
        expect: Expect<'_>,
    ) {
        for &(what, round, message) in cases {
            let call = device.exchange_call(op, round, message);
            self.refused(what, call, expect).await;
        }
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

/// `message` with the lowest bit of its middle byte changed: another message of the same length.
fn other_message(message: &[u8]) -> Vec<u8> {
    let mut other = message.to_vec();
    let middle = other.len() / 2;
    other[middle] ^= 1;
    other
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
    let (wallet, address) = device.create_wallet_and_address().await;
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
    let mpc_operation = mpc_operation_of(&pending);
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

/// A `requestId` is 1 to 128 printable ASCII characters: any other is refused before anything is
/// stored (one of a few kilobytes would not fit PostgreSQL's unique index: INTERNAL, before).
#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_short_printable_ascii() {
    let server = TestServer::start();
    let device = server.device().await;
    let (_, address) = device.create_wallet_and_address().await;
    let key = &address.mpc_keys[0];
    let digest = sha256(b"request ids");
    let pool = default_pool();
    let over = "r".repeat(MAX_REQUEST_ID_LEN + 1);
    // Random, so that PostgreSQL cannot compress it below its index's limit.
    let kilobytes = random_hex(1500);
    let invalid = Expect::Code(ErrorCode::InvalidArgument, None);
    let mut checks = Checks::new(&server);
    for (what, id) in [
        ("an empty requestId", ""),
        ("a requestId of 129 characters", over.as_str()),
        ("a requestId of 3000 characters", kilobytes.as_str()),
        ("a requestId with a line feed", "a\nb"),
        ("a requestId with a tab", "a\tb"),
        ("a requestId with DEL", "a\u{7f}"),
        ("a requestId with non-ASCII", "r\u{e9}"),
    ] {
        let wallet = device.create_wallet_call(&pool, Some(id));
        checks
            .refused(&format!("CreateMPCWallet, {what}"), wallet, invalid)
            .await;
        let signature = device.create_signature_call(key, &digest, Some(id));
        checks
            .refused(&format!("CreateSignature, {what}"), signature, invalid)
            .await;
    }
    checks.finish();

    // The longest, of every printable character, names one operation.
    let longest: String = (b' '..=b'~')
        .map(char::from)
        .cycle()
        .take(MAX_REQUEST_ID_LEN)
        .collect();
    let first: Operation = device
        .create_signature_call(key, &digest, Some(&longest))
        .ok()
        .await;
    let again: Operation = device
        .create_signature_call(key, &digest, Some(&longest))
        .ok()
        .await;
    assert_eq!(first.name, again.name);
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
    let (wallet, address) = owner.create_wallet_and_address().await;
    let key = &address.mpc_keys[0];
    let digest = sha256(b"owner's payment");
    let signing = owner.create_signature_operation(key, &digest, None).await;
    let mpc_operation = &mpc_operation_of(&signing);
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

/// GenerateAddress and CreateMPCKey on the wallet of key generation `operation`, which is not
/// confirmed yet: both must be refused.
async fn not_yet(checks: &mut Checks<'_>, device: &TestDevice, operation: &Operation, when: &str) {
    let OperationMetadata::CreateMpcWallet {
        mpc_wallet,
        device_group,
        ..
    } = &operation.metadata
    else {
        panic!("{operation:?}")
    };
    let generate = device.generate_address_call(mpc_wallet, None);
    let code = ErrorCode::FailedPrecondition;
    checks
        .code(&format!("GenerateAddress {when}"), generate, code)
        .await;
    let create_key = device.create_mpc_key_call(device_group, "0/0");
    checks
        .code(&format!("CreateMPCKey {when}"), create_key, code)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_rounds_out_of_order_conflicting_or_late_are_refused() {
    let server = TestServer::start();
    let device = server.device().await;
    let StartedKeygen {
        operation,
        op,
        pending,
        mut keygen,
        round1,
    } = device.begin_keygen().await;
    let op = &op;
    let mut checks = Checks::new(&server);
    let failed_precondition = Expect::Code(ErrorCode::FailedPrecondition, None);
    let aborted = Expect::Code(ErrorCode::Aborted, None);
    let invalid = Expect::Code(ErrorCode::InvalidArgument, None);
    let garbage = [7u8; 200];
    // A well-formed round 1 of another session (another operation's context).
    let other_context = SessionId::derive(
        "waas-sdk keygen",
        &[b"another operation", device.name.to_string().as_bytes()],
    );
    let (_, foreign_round1) = Keygen::start_device(other_context).unwrap();

    // Before round 1: later rounds, server rounds, and a message that is no envelope.
    let later: &Exchanges = &[
        ("round 3 first", 3, &garbage),
        ("round 5 first", 5, &[0; 32]),
    ];
    checks
        .exchanges_refused(&device, op, later, failed_precondition)
        .await;
    let wrong_rounds: &Exchanges = &[
        ("round 2 (the server's)", 2, &round1),
        ("round 0", 0, &round1),
    ];
    checks
        .exchanges_refused(&device, op, wrong_rounds, Expect::Status400)
        .await;
    // The well-formed round 1 of another session changes nothing either.
    let not_ours: &Exchanges = &[
        ("a round-1 message that is no envelope", 1, &garbage),
        ("a round 1 of another session", 1, &foreign_round1),
    ];
    checks
        .exchanges_refused(&device, op, not_ours, invalid)
        .await;
    // The wallet has no key yet: no address, no key.
    not_yet(&mut checks, &device, &operation, "before round 1").await;

    // Round 1; the same message again gets the identical stored answer.
    let first = device.exchange_and_repeat(op, 1, &round1).await;
    // Another valid round 1 (a fresh device session) for the round already answered.
    let (_, other_round1) = device.start_keygen(&pending);
    let conflicting: &Exchanges = &[("a different round 1 after round 1", 1, &other_round1)];
    checks
        .exchanges_refused(&device, op, conflicting, aborted)
        .await;
    let early: &Exchanges = &[("round 5 before round 3", 5, &[0; 32])];
    checks
        .exchanges_refused(&device, op, early, failed_precondition)
        .await;

    // Round 3, its repeat, and a different round 3.
    let round3 = keygen
        .handle(&reply(&first.json(), 2))
        .unwrap()
        .reply
        .unwrap();
    let third = device.exchange_and_repeat(op, 3, &round3).await;
    let other_round3 = other_message(&round3);
    let conflicting: &Exchanges = &[("a different round 3 after round 3", 3, &other_round3)];
    checks
        .exchanges_refused(&device, op, conflicting, aborted)
        .await;

    // The server has its half now, but the device has not confirmed it: still no address.
    not_yet(&mut checks, &device, &operation, "before round 5").await;

    // The confirmation finishes it; its repeat gets the same answer.
    let step = keygen.handle(&reply(&third.json(), 4)).unwrap();
    let pairing = step.output.unwrap();
    let pairing_id = pairing.public().id;
    let id_only: &Exchanges = &[("a confirmation naming only the pairing id", 5, &pairing_id)];
    checks
        .exchanges_refused(&device, op, id_only, invalid)
        .await;
    let id = pairing.public().confirmation();
    device.exchange_and_repeat(op, 5, &id).await;

    // Anything else for the finished operation.
    let mut other_id = id;
    other_id[0] ^= 1;
    let after_the_end: &Exchanges = &[
        ("a new round 1 after the end", 1, &other_round1),
        ("a different round 3 after the end", 3, &other_round3),
        ("a different confirmation after the end", 5, &other_id),
        ("round 7 after the end", 7, &id),
    ];
    checks
        .exchanges_refused(&device, op, after_the_end, failed_precondition)
        .await;

    // Operations that do not exist.
    let unknown: MpcOperationName =
        format!("{}/mpcOperations/{}", op.device_group_name(), random_hex(8))
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
    let (wallet, address) = device.create_wallet_and_address().await;
    let (pairing, key) = (&wallet.pairing, &address.mpc_keys[0]);
    let digest = sha256(b"sign me once");
    let mut signing = device.begin_signing(pairing, key, &digest).await;
    // A copy: the session is advanced (borrowed mutably) while the checks name the operation.
    let op = &signing.op.clone();
    let (_, other_round1, _) = device.start_signing(&signing.pending, pairing, key, &digest);
    let mut checks = Checks::new(&server);
    let failed_precondition = Expect::Code(ErrorCode::FailedPrecondition, None);

    let first_round3: &Exchanges = &[("round 3 first", 3, &signing.round1)];
    checks
        .exchanges_refused(&device, op, first_round3, failed_precondition)
        .await;
    // A well-formed round 1 for another digest (another session) changes nothing.
    let name = op.to_string();
    let other = SigningRequest {
        operation: &name,
        path: &signing.path,
        digest: sha256(b"something else"),
    };
    let (_, foreign_round1) = Signing::start_device(pairing, &other).unwrap();
    let foreign: &Exchanges = &[("a round 1 of another session", 1, &foreign_round1)];
    let invalid = Expect::Code(ErrorCode::InvalidArgument, None);
    checks
        .exchanges_refused(&device, op, foreign, invalid)
        .await;
    let first = device.exchange(op, 1, &signing.round1).await;
    assert_eq!(first.status, 200, "{first:?}");
    let conflicting: &Exchanges = &[("a different round 1 after round 1", 1, &other_round1)];
    let aborted = Expect::Code(ErrorCode::Aborted, None);
    checks
        .exchanges_refused(&device, op, conflicting, aborted)
        .await;
    let round3 = signing.round3(pairing, &first.json());
    let last = device.exchange_and_repeat(op, 3, &round3).await;
    let other_round3 = other_message(&round3);
    let after_the_end: &Exchanges = &[
        ("a new round 1 after the end", 1, &other_round1),
        (
            "a different round 3 (the last round) after the end",
            3,
            &other_round3,
        ),
        ("round 5 after the end", 5, &round3),
    ];
    checks
        .exchanges_refused(&device, op, after_the_end, failed_precondition)
        .await;
    checks.finish();

    signing.finish(&device, pairing, &last.json()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_that_fails_the_protocol_checks_ends_the_operation_or_changes_nothing() {
    // A well-formed round 3 whose content is wrong (one byte changed in the middle, inside the
    // OT setup or proof data): either it does not decode (INVALID_ARGUMENT, nothing changes,
    // the honest round 3 still works) or it fails an engine check, which ends the operation
    // (ABORTED, stored: GetOperation is done with that error, later rounds are refused).
    let server = TestServer::start();
    let device = server.device().await;
    let mut keygen = device.begin_keygen().await;
    let round3 = keygen.send_round1(&device).await;
    let op = &keygen.op;
    let tampered = flip(&round3, round3.len() / 2);

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
            device
                .assert_failed(&keygen.operation.name, ErrorCode::Aborted)
                .await;
            let group = op.device_group_name();
            let why = "a failed operation is no longer pending";
            device.assert_nothing_pending(&group, why).await;
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
