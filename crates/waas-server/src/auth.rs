//! Who is calling: request tokens (ES256 JWTs, one per request, see docs/api.md), device
//! registration (proofs of possession) and the development API key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use waas_api::auth::{
    CLOCK_LEEWAY_SECS, MAX_JTI_LEN, MAX_TOKEN_LIFETIME_SECS, RequestToken, reason,
};
use waas_api::resources::DeviceState;
use waas_api::{DeviceName, RegistrationData, ResourceId};
use zeroize::Zeroizing;

use crate::store::{DeviceRecord, Store};
use crate::{ApiError, ServerError};

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A registered, active device.
    Device(DeviceName),
    /// An app backend, by its API key's name (`apiKeys/{id}`).
    ApiKey(String),
}

impl Principal {
    /// The token subject this principal signs as.
    pub fn subject(&self) -> String {
        match self {
            Self::Device(name) => name.to_string(),
            Self::ApiKey(name) => name.clone(),
        }
    }
}

/// The request a token must be bound to.
pub(crate) struct RequestFacts<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The path and query as received.
    pub path_and_query: &'a str,
    /// The body as received.
    pub body: &'a [u8],
}

/// Checks the request's `Authorization` header: an ES256 JWT by a registered device or API key,
/// for this server, this request and now, never seen before. Returns who signed it.
///
/// The order matters: everything that costs nothing comes first, the signature next, and the
/// token's id is recorded (a database write) only for a token that verified.
pub(crate) async fn authenticate<S: Store>(
    store: &S,
    audience: &str,
    authorization: Option<&str>,
    request: &RequestFacts<'_>,
    now_ms: i64,
) -> Result<Principal, ApiError> {
    let token = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("missing `Authorization: Bearer <token>` header")
        })?;
    let RequestToken {
        claims,
        signed,
        signature: signature_b64,
    } = RequestToken::parse(token).map_err(|error| ApiError::unauthenticated(error.to_string()))?;

    if claims.aud != audience {
        return Err(ApiError::unauthenticated(
            "the token is for another server (aud)",
        ));
    }
    if claims.htm != request.method || claims.htu != request.path_and_query {
        return Err(ApiError::unauthenticated(
            "the token is for another request (htm, htu)",
        ));
    }
    if claims.bh != URL_SAFE_NO_PAD.encode(Sha256::digest(request.body)) {
        return Err(ApiError::unauthenticated(
            "the token is for another request body (bh)",
        ));
    }
    let now = now_ms.div_euclid(1000);
    let lifetime = claims.exp.saturating_sub(claims.iat);
    if lifetime <= 0 || lifetime > MAX_TOKEN_LIFETIME_SECS {
        return Err(ApiError::unauthenticated(format!(
            "the token's lifetime must be between 1 and {MAX_TOKEN_LIFETIME_SECS} seconds"
        )));
    }
    if claims.iat > now.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(ApiError::unauthenticated(
            "the token is issued in the future: check the clock",
        )
        .with_reason(reason::CLOCK_SKEW));
    }
    if is_expired(claims.exp, now_ms) {
        return Err(
            ApiError::unauthenticated("the token has expired").with_reason(reason::TOKEN_EXPIRED)
        );
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ApiError::unauthenticated(format!(
            "the token id (jti) must have 1 to {MAX_JTI_LEN} bytes"
        )));
    }

    let (principal, public_key, active) = signer(store, &claims.sub).await?;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public_key)
        .map_err(|_| ApiError::internal("a stored P-256 key does not parse"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|bytes| p256::ecdsa::Signature::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::unauthenticated("the token's signature is malformed"))?;
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| ApiError::unauthenticated("the token's signature does not verify"))?;
    // Only after the signature: nobody but the device itself learns that it was revoked.
    if !active {
        return Err(revoked());
    }

    if !store
        .use_token(&claims.sub, &claims.jti, accepted_until_ms(claims.exp))
        .await?
    {
        return Err(ApiError::unauthenticated(
            "the token was used before: mint a new one for every request",
        )
        .with_reason(reason::TOKEN_REPLAYED));
    }
    Ok(principal)
}

/// How far apart the clocks of the server's replicas may be, in seconds: the margin kept on top
/// of a token's expiry before its id is forgotten. Each replica checks `exp` by its own clock,
/// and the sweep that forgets ids runs on any of them: a replica whose clock ran ahead by more
/// than this could forget an id that a replica behind it still accepts the token of, once more.
/// Replicas are assumed to keep their clocks within this of each other (NTP keeps them within
/// far less); it costs only rows kept a little longer (ids live a lifetime of at most a minute,
/// plus the leeway, plus this).
pub(crate) const REPLICA_CLOCK_MARGIN_SECS: i64 = 5 * 60;

/// Whether a token with this `exp` (Unix seconds) is refused as expired at `now_ms`, allowing for
/// the caller's clock to be behind by [`CLOCK_LEEWAY_SECS`].
fn is_expired(exp: i64, now_ms: i64) -> bool {
    exp.saturating_add(CLOCK_LEEWAY_SECS) < now_ms.div_euclid(1000)
}

/// When (Unix milliseconds) a token with this `exp` stops being accepted, by a clock that agrees
/// with the checking replica's ([`is_expired`] compares whole seconds): its id is stored with it.
fn accepted_until_ms(exp: i64) -> i64 {
    exp.saturating_add(CLOCK_LEEWAY_SECS)
        .saturating_add(1)
        .saturating_mul(1000)
}

/// Forgets the ids of the tokens that no replica accepts any more at `now_ms` (this replica's
/// clock), allowing for the replicas' clocks to differ by [`REPLICA_CLOCK_MARGIN_SECS`]: run by
/// the periodic sweep, never by an authentication, so requests do not wait for the deletions.
pub(crate) async fn forget_token_ids<S: Store>(store: &S, now_ms: i64) -> Result<u64, ApiError> {
    let horizon_ms = now_ms.saturating_sub(REPLICA_CLOCK_MARGIN_SECS.saturating_mul(1000));
    Ok(store.forget_token_ids(horizon_ms).await?)
}

/// The refusal of a revoked device's requests, with a reason the SDK reports as DEVICE_REVOKED.
pub(crate) fn revoked() -> ApiError {
    ApiError::denied("the device has been revoked").with_reason(reason::DEVICE_REVOKED)
}

/// The principal a token subject names, with its public key and whether it may still act.
async fn signer<S: Store>(
    store: &S,
    subject: &str,
) -> Result<(Principal, Vec<u8>, bool), ApiError> {
    let unknown = || ApiError::unauthenticated("the token's subject is not a registered key");
    if subject.starts_with("apiKeys/") {
        let key = store.api_key(subject).await?.ok_or_else(unknown)?;
        return Ok((Principal::ApiKey(subject.to_owned()), key, true));
    }
    let name: DeviceName = subject.parse().map_err(|_| unknown())?;
    let device = store.device(&name).await?.ok_or_else(unknown)?;
    let active = device.state == DeviceState::Active;
    Ok((Principal::Device(name), device.auth_public_key, active))
}

/// Checks registration data (both keys valid points, both proofs of possession) and returns the
/// device it describes. Its name derives from the auth key, so the same data names the same device.
pub(crate) fn verify_registration(text: &str, now_ms: i64) -> Result<DeviceRecord, ApiError> {
    let data =
        RegistrationData::decode(text).map_err(|error| ApiError::invalid(error.to_string()))?;
    let signed = RegistrationData::signed_bytes(&data.auth_public_key, &data.archive_public_key);

    // SEC1 parsing checks that the point is on the curve and not the identity.
    let auth_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&data.auth_public_key)
        .map_err(|_| ApiError::invalid("the auth key is not a P-256 point"))?;
    let auth_proof = p256::ecdsa::Signature::from_slice(&data.auth_proof)
        .map_err(|_| ApiError::invalid("the auth key's proof is malformed"))?;
    auth_key
        .verify(&signed, &auth_proof)
        .map_err(|_| ApiError::invalid("the auth key's proof of possession does not verify"))?;

    let archive_key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&data.archive_public_key)
        .map_err(|_| ApiError::invalid("the archive key is not a secp256k1 point"))?;
    let archive_proof = k256::ecdsa::Signature::from_slice(&data.archive_proof)
        .map_err(|_| ApiError::invalid("the archive key's proof is malformed"))?;
    archive_key
        .verify(&signed, &archive_proof)
        .map_err(|_| ApiError::invalid("the archive key's proof of possession does not verify"))?;

    let hash = Sha256::digest(data.auth_public_key);
    let id = ResourceId::new(hex::encode(&hash[..16]))?;
    Ok(DeviceRecord {
        name: DeviceName::new(id),
        auth_public_key: data.auth_public_key.to_vec(),
        archive_public_key: data.archive_public_key.to_vec(),
        state: DeviceState::Active,
        create_time_ms: now_ms,
    })
}

/// The name of the development API key.
pub(crate) const DEV_API_KEY_NAME: &str = "apiKeys/dev";

/// The development API key file: the same shape as a CDP API key file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyFile {
    name: String,
    private_key: String,
}

/// Makes sure the development API key exists: creates its file (mode 0600) on first start, and
/// registers its public key. Returns whether the file was created.
pub(crate) async fn ensure_dev_api_key<S: Store>(
    store: &S,
    path: &Path,
) -> Result<bool, ServerError> {
    let fail = |message: String| ServerError::DevApiKey {
        path: path.display().to_string(),
        message,
    };
    let (key, created) = match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            crate::sealing::check_permissions(path).map_err(|error| fail(error.to_string()))?;
            let file: ApiKeyFile =
                serde_json::from_str(&text).map_err(|error| fail(error.to_string()))?;
            let pem = Zeroizing::new(file.private_key);
            let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
                .map_err(|error| fail(error.to_string()))?;
            (key, false)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = random_p256_key().map_err(fail)?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|error| fail(error.to_string()))?;
            let file = ApiKeyFile {
                name: DEV_API_KEY_NAME.to_owned(),
                private_key: pem.to_string(),
            };
            let json = Zeroizing::new(
                serde_json::to_string_pretty(&file).map_err(|error| fail(error.to_string()))?,
            );
            crate::sealing::write_private_file(path, json.as_bytes())
                .map_err(|error| fail(error.to_string()))?;
            (key, true)
        }
        Err(error) => return Err(fail(error.to_string())),
    };
    let public_key = key.verifying_key().to_sec1_point(false);
    store
        .put_api_key(DEV_API_KEY_NAME, public_key.as_bytes())
        .await?;
    Ok(created)
}

fn random_p256_key() -> Result<p256::ecdsa::SigningKey, String> {
    // A random 32-byte string is a valid scalar but with negligible probability; retry then.
    for _ in 0..8 {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|error| error.to_string())?;
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_slice()) {
            return Ok(key);
        }
    }
    Err("no valid key from the OS random source".into())
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer;
    use serde_json::{Value, json};

    use super::*;
    use crate::store::SqliteStore;

    const NOW_MS: i64 = 1_800_000_000_000;
    const NOW: i64 = NOW_MS / 1000;
    const PATH: &str = "/v1/pools/default/mpcWallets";
    const BODY: &[u8] = br#"{"device":"devices/d"}"#;

    struct Fixture {
        store: SqliteStore,
        key: p256::ecdsa::SigningKey,
        device: String,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        let (key, data) = registration(3);
        let device = verify_registration(&data.encode(), NOW_MS).unwrap();
        store.put_device(&device).await.unwrap();
        Fixture {
            store,
            key,
            device: device.name.to_string(),
            _dir: dir,
        }
    }

    /// A device's auth key and its registration data (archive key from `archive_seed`).
    fn registration(archive_seed: u8) -> (p256::ecdsa::SigningKey, RegistrationData) {
        let key = random_p256_key().unwrap();
        let auth_public_key: [u8; 65] = key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .try_into()
            .unwrap();
        let archive = k256::ecdsa::SigningKey::from_slice(&[archive_seed; 32]).unwrap();
        let archive_public_key: [u8; 33] = archive
            .verifying_key()
            .to_sec1_point(true)
            .as_bytes()
            .try_into()
            .unwrap();
        let signed = RegistrationData::signed_bytes(&auth_public_key, &archive_public_key);
        let auth_proof: p256::ecdsa::Signature = key.sign(&signed);
        let archive_proof: k256::ecdsa::Signature = archive.sign(&signed);
        let data = RegistrationData {
            auth_public_key,
            archive_public_key,
            auth_proof: auth_proof.to_bytes().into(),
            archive_proof: archive_proof.to_bytes().into(),
        };
        (key, data)
    }

    fn claims(fixture: &Fixture) -> Value {
        json!({
            "sub": fixture.device,
            "aud": "waas-server",
            "iat": NOW,
            "exp": NOW + 30,
            "jti": "j-1",
            "htm": "POST",
            "htu": PATH,
            "bh": URL_SAFE_NO_PAD.encode(Sha256::digest(BODY)),
        })
    }

    fn token(key: &p256::ecdsa::SigningKey, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    async fn check(fixture: &Fixture, token: &str) -> Result<Principal, ApiError> {
        let authorization = format!("Bearer {token}");
        authenticate(
            &fixture.store,
            "waas-server",
            Some(&authorization),
            &RequestFacts {
                method: "POST",
                path_and_query: PATH,
                body: BODY,
            },
            NOW_MS,
        )
        .await
    }

    fn es256() -> Value {
        json!({"alg": "ES256", "typ": "JWT"})
    }

    #[tokio::test]
    async fn a_good_token_is_accepted_once() {
        let fixture = fixture().await;
        let good = token(&fixture.key, &es256(), &claims(&fixture));
        assert_eq!(
            check(&fixture, &good).await.unwrap(),
            Principal::Device(fixture.device.parse().unwrap())
        );
        let replay = check(&fixture, &good).await.unwrap_err();
        assert_eq!(
            replay.body().reason.as_deref(),
            Some(reason::TOKEN_REPLAYED)
        );
    }

    #[tokio::test]
    async fn no_replica_forgets_a_token_id_that_another_still_accepts() {
        let fixture = fixture().await;
        // Expired 5 s ago by this replica's clock (NOW): still accepted, within the leeway.
        let mut late = claims(&fixture);
        late["iat"] = json!(NOW - 35);
        late["exp"] = json!(NOW - 5);
        let late = token(&fixture.key, &es256(), &late);
        check(&fixture, &late).await.unwrap();

        // Another replica, whose clock runs a minute ahead, sweeps: the id stays, and the
        // token sent again to the first replica is a replay.
        assert_eq!(
            forget_token_ids(&fixture.store, NOW_MS + 60_000)
                .await
                .unwrap(),
            0
        );
        let replay = check(&fixture, &late).await.unwrap_err();
        assert_eq!(
            replay.body().reason.as_deref(),
            Some(reason::TOKEN_REPLAYED)
        );

        // Forgotten once no replica within the margin accepts it: from NOW + 6 s (the leeway and
        // the second `exp` counts in) plus the margin.
        let last_kept_ms = (NOW + 6 + REPLICA_CLOCK_MARGIN_SECS) * 1000;
        assert_eq!(
            forget_token_ids(&fixture.store, last_kept_ms)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            forget_token_ids(&fixture.store, last_kept_ms + 1)
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn every_binding_and_limit_is_enforced() {
        let fixture = fixture().await;
        let other_key = random_p256_key().unwrap();
        let with = |field: &str, value: Value| {
            let mut claims = claims(&fixture);
            claims[field] = value;
            claims
        };
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            (
                "alg none",
                token(&fixture.key, &json!({"alg": "none"}), &claims(&fixture)),
                None,
            ),
            (
                "alg HS256",
                token(&fixture.key, &json!({"alg": "HS256"}), &claims(&fixture)),
                None,
            ),
            (
                "typ",
                token(
                    &fixture.key,
                    &json!({"alg": "ES256", "typ": "dpop+jwt"}),
                    &claims(&fixture),
                ),
                None,
            ),
            (
                "another key",
                token(&other_key, &es256(), &claims(&fixture)),
                None,
            ),
            (
                "aud",
                token(&fixture.key, &es256(), &with("aud", json!("elsewhere"))),
                None,
            ),
            (
                "htm",
                token(&fixture.key, &es256(), &with("htm", json!("GET"))),
                None,
            ),
            (
                "htu",
                token(
                    &fixture.key,
                    &es256(),
                    &with("htu", json!("/v1/pools/other/mpcWallets")),
                ),
                None,
            ),
            (
                "htu query",
                token(
                    &fixture.key,
                    &es256(),
                    &with("htu", json!(format!("{PATH}?x=1"))),
                ),
                None,
            ),
            (
                "bh",
                token(
                    &fixture.key,
                    &es256(),
                    &with("bh", json!(URL_SAFE_NO_PAD.encode(Sha256::digest(b"{}")))),
                ),
                None,
            ),
            (
                "lifetime",
                token(&fixture.key, &es256(), &with("exp", json!(NOW + 61))),
                None,
            ),
            (
                "exp before iat",
                token(&fixture.key, &es256(), &with("exp", json!(NOW - 1))),
                None,
            ),
            (
                "future",
                token(&fixture.key, &es256(), &{
                    let mut claims = with("iat", json!(NOW + 60));
                    claims["exp"] = json!(NOW + 90);
                    claims
                }),
                Some(reason::CLOCK_SKEW),
            ),
            (
                "expired",
                token(&fixture.key, &es256(), &{
                    let mut claims = with("iat", json!(NOW - 100));
                    claims["exp"] = json!(NOW - 50);
                    claims
                }),
                Some(reason::TOKEN_EXPIRED),
            ),
            (
                "empty jti",
                token(&fixture.key, &es256(), &with("jti", json!(""))),
                None,
            ),
            (
                "long jti",
                token(&fixture.key, &es256(), &with("jti", json!("j".repeat(65)))),
                None,
            ),
            (
                "unknown subject",
                token(
                    &fixture.key,
                    &es256(),
                    &with("sub", json!("devices/nobody")),
                ),
                None,
            ),
            (
                "api key subject",
                token(&fixture.key, &es256(), &with("sub", json!("apiKeys/dev"))),
                None,
            ),
            ("two parts", "a.b".into(), None),
            ("not base64", "!!.!!.!!".into(), None),
        ];
        for (case, token, reason) in cases {
            let error = check(&fixture, &token).await.unwrap_err();
            assert_eq!(error.code(), waas_api::ErrorCode::Unauthenticated, "{case}");
            assert_eq!(error.body().reason.as_deref(), reason, "{case}");
        }
        // None of them used up the good token's id.
        let good = token(&fixture.key, &es256(), &claims(&fixture));
        assert!(check(&fixture, &good).await.is_ok());
    }

    #[test]
    fn registration_needs_both_proofs() {
        let (_, good) = registration(5);
        let first = verify_registration(&good.encode(), NOW_MS).unwrap();
        let again = verify_registration(&good.encode(), NOW_MS + 5).unwrap();
        assert_eq!(first.name, again.name, "the name follows from the key");

        let mut swapped = good.clone();
        swapped.archive_proof = good.auth_proof;
        let mut foreign = good.clone();
        foreign.archive_public_key = [2; 33];
        let mut not_a_point = good.clone();
        not_a_point.auth_public_key = [4; 65];
        for bad in [swapped, foreign, not_a_point] {
            assert_eq!(
                verify_registration(&bad.encode(), NOW_MS)
                    .unwrap_err()
                    .code(),
                waas_api::ErrorCode::InvalidArgument
            );
        }
    }
}
