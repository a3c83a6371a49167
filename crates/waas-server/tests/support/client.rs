//! Signed HTTP calls: ES256 request tokens minted for each request, and raw responses that keep
//! the request with them so a failed assertion shows both.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest as _;
use waas_api::auth::{MAX_TOKEN_LIFETIME_SECS, RequestClaims};
use waas_api::{ErrorBody, ErrorCode};

use super::{AUDIENCE, Route};

/// Unpadded base64url, the encoding of tokens, registration data and protocol messages.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// `len` random bytes as lowercase hex.
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// Mints request tokens for one subject (`devices/…` or `apiKeys/…`).
pub struct Signer {
    key: p256::ecdsa::SigningKey,
    subject: String,
    /// Added to the real clock, to play a client whose clock is wrong.
    clock_offset: AtomicI64,
}

impl Signer {
    /// A signer for `subject` with `key`.
    pub fn new(key: p256::ecdsa::SigningKey, subject: impl Into<String>) -> Self {
        Self {
            key,
            subject: subject.into(),
            clock_offset: AtomicI64::new(0),
        }
    }

    /// Who signs.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Makes this signer's clock run `seconds` ahead (negative: behind).
    pub fn set_clock_offset(&self, seconds: i64) {
        self.clock_offset.store(seconds, Ordering::Relaxed);
    }

    /// The claims of an honest token for this request.
    pub fn claims(&self, method: &Method, path_and_query: &str, body: &[u8]) -> RequestClaims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .cast_signed()
            + self.clock_offset.load(Ordering::Relaxed);
        RequestClaims {
            sub: self.subject.clone(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + MAX_TOKEN_LIFETIME_SECS,
            jti: random_hex(16),
            htm: method.as_str().to_owned(),
            htu: path_and_query.to_owned(),
            bh: b64(&sha256(body)),
        }
    }

    /// A compact JWS of `claims` under the standard header, signed by this signer's key.
    pub fn token(&self, claims: &RequestClaims) -> String {
        mint(&self.key, r#"{"alg":"ES256","typ":"JWT"}"#, claims)
    }
}

/// A compact JWS with any header, signed by `key`: for tokens a real client would never make.
pub fn mint(key: &p256::ecdsa::SigningKey, header_json: &str, claims: &RequestClaims) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

/// How a call authenticates.
pub enum Auth {
    /// A fresh honest token from the client's signer (none if it has no signer).
    Default,
    /// No `Authorization` header.
    None,
    /// This `Authorization` header value as it is.
    Header(String),
    /// An honest token's claims, changed by the function, then signed by the client's signer.
    Claims(Box<dyn FnOnce(&mut RequestClaims) + Send>),
}

/// An HTTP client for one server, with an optional signer.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    route: Route,
    signer: Option<Arc<Signer>>,
}

impl Client {
    /// A client for the servers of `route` (which follows restarts).
    pub fn new(route: Route, signer: Option<Signer>) -> Self {
        let http = reqwest::Client::builder()
            // Plain HTTP to 127.0.0.1: never through a proxy from the environment.
            .no_proxy()
            // Long enough for a busy server on two cores; short enough that a hang fails the test.
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Self {
            http,
            route,
            signer: signer.map(Arc::new),
        }
    }

    /// The signer, for tests that mint their own tokens.
    pub fn signer(&self) -> &Signer {
        self.signer.as_ref().unwrap()
    }

    /// A call of `method` on `path` (with its query), e.g. `/v1/pools/default`.
    pub fn call(&self, method: Method, path: impl Into<String>) -> Call<'_> {
        Call {
            client: self,
            method,
            path: path.into(),
            body: Vec::new(),
            content_type: None,
            auth: Auth::Default,
            headers: Vec::new(),
        }
    }

    /// A GET call.
    pub fn get(&self, path: impl Into<String>) -> Call<'_> {
        self.call(Method::GET, path)
    }

    /// A POST call (add a body with [`Call::json`] or [`Call::body`]).
    pub fn post(&self, path: impl Into<String>) -> Call<'_> {
        self.call(Method::POST, path)
    }
}

/// One request being built.
pub struct Call<'a> {
    client: &'a Client,
    method: Method,
    path: String,
    body: Vec<u8>,
    content_type: Option<String>,
    auth: Auth,
    headers: Vec<(String, String)>,
}

impl Call<'_> {
    /// A JSON body (`application/json`).
    pub fn json(self, value: &impl Serialize) -> Self {
        self.body(serde_json::to_vec(value).unwrap(), Some("application/json"))
    }

    /// Any body, with a content type or none.
    pub fn body(mut self, body: impl Into<Vec<u8>>, content_type: Option<&str>) -> Self {
        self.body = body.into();
        self.content_type = content_type.map(str::to_owned);
        self
    }

    /// How to authenticate (default: an honest token).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// An extra header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends it; any HTTP answer is returned, only a transport failure panics.
    pub async fn send(self) -> Raw {
        let Self {
            client,
            method,
            path,
            body,
            content_type,
            auth,
            headers,
        } = self;
        // The token is minted here, just before sending: a fresh jti for every request.
        let authorization = match (auth, &client.signer) {
            (Auth::None, _) | (Auth::Default, None) => None,
            (Auth::Header(value), _) => Some(value),
            (Auth::Default, Some(signer)) => Some(format!(
                "Bearer {}",
                signer.token(&signer.claims(&method, &path, &body))
            )),
            (Auth::Claims(change), Some(signer)) => {
                let mut claims = signer.claims(&method, &path, &body);
                change(&mut claims);
                Some(format!("Bearer {}", signer.token(&claims)))
            }
            (Auth::Claims(_), None) => panic!("Auth::Claims needs a client with a signer"),
        };
        let (server, base) = client.route.pick();
        let url = format!("{base}{path}");
        let mut request = client.http.request(method.clone(), &url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = &content_type {
            request = request.header("content-type", value);
        }
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if !body.is_empty() || method == Method::POST {
            request = request.body(body.clone());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: no HTTP answer: {error:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let response_body = response.bytes().await.unwrap().to_vec();
        client.route.answered(&server, &path);
        Raw {
            request: format!("{method} {path}"),
            request_body: excerpt(&body),
            status,
            headers,
            body: response_body,
        }
    }

    /// Sends it and parses a 2xx answer as `T`; anything else panics with request and response.
    pub async fn ok<T: DeserializeOwned>(self) -> T {
        self.send().await.ok()
    }
}

/// At most 300 characters of a body, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 300 {
        format!(
            "{}… ({} bytes)",
            text.chars().take(300).collect::<String>(),
            body.len()
        )
    } else {
        text.into_owned()
    }
}

/// An HTTP answer with the request it answers.
#[derive(Clone)]
pub struct Raw {
    /// `METHOD /path`.
    pub request: String,
    /// The start of the request body.
    pub request_body: String,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request: {} {}\nresponse: {} {}",
            self.request,
            self.request_body,
            self.status,
            excerpt(&self.body)
        )
    }
}

impl Raw {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    /// The body parsed as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("cannot parse the body ({error}):\n{self:?}"))
    }

    /// A 2xx answer parsed as `T`.
    pub fn ok<T: DeserializeOwned>(self) -> T {
        assert!(
            (200..300).contains(&self.status),
            "expected success:\n{self:?}"
        );
        self.json()
    }

    /// The error body of a failed answer.
    pub fn error(&self) -> ErrorBody {
        assert!(self.status >= 400, "expected an error:\n{self:?}");
        self.json()
    }

    /// Whether the answer is the error `code` (its HTTP status, and `status` in the body too),
    /// with `reason` when given; if not, why not, with the request and the response.
    pub fn check_error(&self, code: ErrorCode, reason: Option<&str>) -> Result<(), String> {
        let wanted = code.http_status();
        let error: Option<ErrorBody> = serde_json::from_slice(&self.body).ok();
        let fits = match &error {
            Some(error) => {
                self.status == wanted
                    && error.code == code
                    && error.status == wanted
                    && reason.is_none_or(|reason| error.reason.as_deref() == Some(reason))
            }
            None => false,
        };
        if fits {
            Ok(())
        } else {
            let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
            Err(format!("expected {code:?} {wanted}{reason}, got\n{self:?}"))
        }
    }

    /// Asserts [`Self::check_error`].
    pub fn assert_error(&self, code: ErrorCode, reason: Option<&str>) {
        if let Err(why) = self.check_error(code, reason) {
            panic!("{why}");
        }
    }
}
