//! The router in-process: every route's status, headers and JSON body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use waas_server::sealing::MasterKey;
use waas_server::{Services, Settings, SqliteStore, app};

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn new() -> Self {
        Self::with_static(false).await
    }

    async fn with_static(serve_files: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("waas.db").to_str().unwrap())
            .await
            .unwrap();
        let services = Services::open(store, MasterKey::from_bytes(&[7; 32]), Settings::default())
            .await
            .unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir_all(web.join("assets")).unwrap();
        std::fs::write(web.join("index.html"), "<!doctype html><title>demo</title>").unwrap();
        std::fs::write(web.join("assets/sdk.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let router = app(services, serve_files.then_some(web.as_path()), None);
        Self { router, _dir: dir }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn json(&self, method: Method, uri: &str) -> (StatusCode, Value) {
        let (status, headers, body) = self.call(method, uri).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        (status, serde_json::from_slice(&body).unwrap())
    }
}

#[tokio::test]
async fn healthz_checks_the_database() {
    let app = TestApp::new().await;
    assert_eq!(
        app.json(Method::GET, "/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn version_names_the_server_and_api() {
    let app = TestApp::new().await;
    let (status, body) = app.json(Method::GET, "/v1/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"name": "waas-server", "version": env!("CARGO_PKG_VERSION"), "apiVersion": "v1"})
    );
}

#[tokio::test]
async fn resources_need_a_request_token() {
    let app = TestApp::new().await;
    let (status, body) = app.json(Method::GET, "/v1/pools/default").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn errors_are_json_with_code_message_and_status() {
    let app = TestApp::new().await;
    let cases = [
        (
            Method::GET,
            "/v1/operations/nope",
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        ),
        (
            Method::POST,
            "/v1/device:register",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/v1/no-such-route",
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/elsewhere",
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            Method::DELETE,
            "/v1/version",
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (method, uri, status, code) in cases {
        let (got_status, body) = app.json(method, uri).await;
        assert_eq!(got_status, status, "{uri}");
        assert_eq!(body["code"], code, "{uri}");
        assert_eq!(body["status"], got_status.as_u16(), "{uri}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{uri}");
    }
}

#[tokio::test]
async fn serves_the_web_app_when_asked() {
    let app = TestApp::with_static(true).await;
    let (status, headers, body) = app.call(Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("<title>demo</title>")
    );

    let (status, headers, _) = app.call(Method::GET, "/assets/sdk.wasm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

    let (status, _, _) = app.call(Method::GET, "/missing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API still wins over the files.
    assert_eq!(app.json(Method::GET, "/v1/version").await.0, StatusCode::OK);

    let without = TestApp::new().await;
    assert_eq!(
        without.json(Method::GET, "/").await.0,
        StatusCode::NOT_FOUND
    );
}
