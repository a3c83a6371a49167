//! A retrying forwarder: the test devices' transport to a server whose database goes away. It
//! listens on 127.0.0.1, sends each request on to the server and, while the answer is
//! `UNAVAILABLE` (503) or no answer comes, sends the same request again (same method, path and
//! body: the same round, the same request id), with a fresh request token (each token is good
//! for one request), after the `Retry-After` the server gave. So every helper of the test
//! device (signing, key generation, backup, recovery) runs unchanged over a flaky database, as
//! a client that retries would, and the forwarder counts what it met.
//!
//! Any other failure answer is passed to the device as it came (its helper then fails the test)
//! and recorded, as is a 503 that breaks the contract (no `Retry-After`, another code).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, HOST, HeaderMap, HeaderValue, RETRY_AFTER};
use waas_api::{ErrorBody, ErrorCode};

use super::{Route, Signer, TestDevice};

/// How long one request is retried before its last answer is passed on.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// The wait after a failure without an answer (the server itself unreachable).
const RECONNECT_AFTER: Duration = Duration::from_millis(250);

/// What the forwarder met.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Requests the devices sent (each retried as often as needed).
    pub requests: u64,
    /// `UNAVAILABLE` answers, each followed by a retry.
    pub unavailable: u64,
    /// The same, by route (`POST /v1/pools/*/deviceGroups/*/mpcOperations/*:exchange`).
    pub unavailable_by_route: BTreeMap<String, u64>,
    /// Attempts without an HTTP answer, each followed by a retry.
    pub no_answer: u64,
    /// Everything else that failed: `METHOD /path: what`.
    pub unexpected: Vec<String>,
    /// The longest one attempt took.
    pub slowest: Duration,
}

struct Shared {
    server: String,
    http: reqwest::Client,
    /// The devices' request keys by subject, to mint a retry's token.
    keys: Mutex<HashMap<String, p256::ecdsa::SigningKey>>,
    counts: Mutex<Counts>,
}

/// The forwarder, running until dropped.
pub struct Retrying {
    base: Arc<RwLock<String>>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Retrying {
    /// Starts forwarding to `server` (`http://127.0.0.1:PORT`).
    pub async fn start(server: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            server: server.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                // One attempt: far longer than the server may take (its database timeout).
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            keys: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: Arc::new(RwLock::new(base)),
            shared,
            task,
        }
    }

    /// The route to the forwarder, for clients ([`TestDevice::register`]).
    pub fn route(&self) -> Route {
        Route::to(self.base.clone())
    }

    /// A new device registered through the forwarder, whose requests it can sign again.
    pub async fn device(&self) -> TestDevice {
        let device = TestDevice::register(self.route()).await;
        self.shared
            .keys
            .lock()
            .unwrap()
            .insert(device.name.to_string(), device.keys.auth.clone());
        device
    }

    /// What it met so far.
    pub fn counts(&self) -> Counts {
        self.shared.counts.lock().unwrap().clone()
    }
}

impl Drop for Retrying {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn count(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.counts.lock().unwrap());
    }

    /// A fresh token for the request, from its old one's subject; `None` for an unknown one.
    fn token_again(
        &self,
        old: &str,
        method: &reqwest::Method,
        path: &str,
        body: &[u8],
    ) -> Option<String> {
        let claims = old.strip_prefix("Bearer ")?.split('.').nth(1)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
        let subject = claims["sub"].as_str()?;
        let key = self.keys.lock().unwrap().get(subject)?.clone();
        let signer = Signer::new(key, subject);
        Some(format!(
            "Bearer {}",
            signer.token(&signer.claims(method, path, body))
        ))
    }
}

/// Whether `headers` and `body` are the server's `UNAVAILABLE` as the contract has it: code
/// and status, and the same wait in `Retry-After` and `retryAfterSeconds`. The wait, if so.
fn unavailable(headers: &HeaderMap, body: &[u8]) -> Result<Duration, String> {
    let error: ErrorBody =
        serde_json::from_slice(body).map_err(|_| "a 503 without an error body".to_owned())?;
    let header = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    match (error.code, error.status, header, error.retry_after_seconds) {
        (ErrorCode::Unavailable, 503, Some(seconds), Some(same))
            if seconds == same && seconds > 0 =>
        {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(format!(
            "a 503 off the contract: Retry-After {header:?}, {error:?}"
        )),
    }
}

/// Sends one request on, again while it is answered `UNAVAILABLE` or not at all.
async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    let method = parts.method;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let what = format!("{method} {path}");
    let mut headers = parts.headers;
    headers.remove(HOST);
    shared.count(|counts| counts.requests += 1);
    let started = Instant::now();
    loop {
        let attempt = Instant::now();
        let sent = shared
            .http
            .request(method.clone(), format!("{}{path}", shared.server))
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status();
                let response_headers = response.headers().clone();
                response
                    .bytes()
                    .await
                    .map(|bytes| (status, response_headers, bytes))
            }
            Err(error) => Err(error),
        };
        let took = attempt.elapsed();
        shared.count(|counts| counts.slowest = counts.slowest.max(took));
        let late = started.elapsed() > GIVE_UP_AFTER;
        let (status, response_headers, bytes) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                shared.count(|counts| counts.no_answer += 1);
                if late {
                    let why = format!("{what}: no answer for {GIVE_UP_AFTER:?}: {error}");
                    shared.count(|counts| counts.unexpected.push(why.clone()));
                    return Response::builder()
                        .status(502)
                        .body(Body::from(why))
                        .unwrap();
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && late {
            let why = format!("{what}: still unavailable after {GIVE_UP_AFTER:?}");
            shared.count(|counts| counts.unexpected.push(why));
        } else if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            match unavailable(&response_headers, &bytes) {
                Ok(wait) => {
                    let token = headers.get(AUTHORIZATION).map(|old| {
                        old.to_str()
                            .ok()
                            .and_then(|old| shared.token_again(old, &method, &path, &body))
                    });
                    match token {
                        // Unsigned (RegisterDevice, /healthz): sent again as it was.
                        None => {}
                        Some(Some(token)) => {
                            headers.insert(AUTHORIZATION, HeaderValue::from_str(&token).unwrap());
                        }
                        Some(None) => {
                            let why = format!("{what}: no key to sign it again");
                            shared.count(|counts| counts.unexpected.push(why));
                            return respond(status, &response_headers, bytes);
                        }
                    }
                    shared.count(|counts| {
                        counts.unavailable += 1;
                        *counts
                            .unavailable_by_route
                            .entry(route(&method, &path))
                            .or_default() += 1;
                    });
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(why) => shared.count(|counts| counts.unexpected.push(format!("{what}: {why}"))),
            }
        } else if !status.is_success() {
            let why = format!(
                "{what}: {status} {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
            shared.count(|counts| counts.unexpected.push(why));
        }
        return respond(status, &response_headers, bytes);
    }
}

/// A request's route, its ids left out: `/v1/{collection}/{id}/…` with each id `*` (a verb after
/// `:` kept), no query.
fn route(method: &reqwest::Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<String> = path
        .split('/')
        .enumerate()
        .map(|(index, segment)| {
            if index >= 3 && index % 2 == 1 {
                match segment.split_once(':') {
                    Some((_, verb)) => format!("*:{verb}"),
                    None => "*".to_owned(),
                }
            } else {
                segment.to_owned()
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// The server's answer, passed on.
fn respond(status: reqwest::StatusCode, headers: &HeaderMap, body: axum::body::Bytes) -> Response {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        // The body is whole here: hyper sets its own length and framing.
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(body)).unwrap()
}
