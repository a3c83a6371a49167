//! CORS for a web app on another origin (`--allowed-origin`): preflights, the headers a wallet
//! page may read, and nothing for origins not allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;

use support::{Raw, TestServer};

const APP: &str = "http://app.example";

fn server() -> TestServer {
    TestServer::start_with(&["--allowed-origin", APP])
}

/// A browser's preflight for a signed JSON POST from `origin`.
async fn preflight(server: &TestServer, origin: &str) -> Raw {
    server
        .anonymous()
        .call(Method::OPTIONS, "/v1/pools/default/mpcWallets")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
}

/// A GET of `path` without credentials, from a page on `origin`.
async fn get_from(server: &TestServer, path: &str, origin: &str) -> Raw {
    server
        .anonymous()
        .get(path)
        .header("origin", origin)
        .send()
        .await
}

/// The comma-separated values of a header, lower case.
fn values(response: &Raw, name: &str) -> Vec<String> {
    response
        .header(name)
        .unwrap_or_default()
        .split(',')
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_from_the_allowed_origin_is_answered() {
    let server = server();
    let response = preflight(&server, APP).await;
    assert!((200..300).contains(&response.status), "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some(APP),
        "{response:?}"
    );
    let max_age = response
        .header("access-control-max-age")
        .unwrap_or_else(|| panic!("no max-age, so every request is preflighted:\n{response:?}"));
    assert!(max_age.parse::<u64>().unwrap() > 0, "{max_age}");
    let headers = values(&response, "access-control-allow-headers");
    for needed in ["authorization", "content-type"] {
        assert!(
            headers.iter().any(|h| h == needed),
            "{needed} is not allowed: {headers:?}"
        );
    }
    let methods = values(&response, "access-control-allow-methods");
    assert!(
        methods.iter().any(|m| m == "post"),
        "POST is not allowed: {methods:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_to_the_allowed_origin_expose_date() {
    // The SDK corrects its token clock from `Date`, which a page can read only if it is exposed.
    let server = server();
    let response = get_from(&server, "/v1/version", APP).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = values(&response, "access-control-expose-headers");
    assert!(
        exposed.iter().any(|h| h == "date"),
        "Date is not exposed: {exposed:?}"
    );
    // Errors too: a 401 the page must read to resync its clock.
    let response = get_from(&server, "/v1/pools/default", APP).await;
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some(APP),
        "{response:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_origins_get_no_cors_headers() {
    let server = server();
    let evil = "http://evil.example";
    let response = preflight(&server, evil).await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        None,
        "{response:?}"
    );
    let response = get_from(&server, "/v1/version", evil).await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        None,
        "{response:?}"
    );
}
