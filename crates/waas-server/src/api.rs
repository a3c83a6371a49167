//! The HTTP surface: `/healthz`, `/v1/...` and, optionally, the web app's static files.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, header};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use waas_api::{API_VERSION, ErrorCode, PoolName, VersionInfo};

use crate::{ApiError, Store};

/// The router with every route, over `store`; serves `static_dir` at `/` when given.
pub fn app(store: Store, static_dir: Option<&Path>) -> Router {
    let api = Router::new()
        .route("/version", get(version))
        .route("/pools/{pool}", get(get_pool))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed);

    let router = Router::new()
        .route("/healthz", get(healthz))
        .nest(&format!("/{API_VERSION}"), api);
    let router = match static_dir {
        // Unknown paths outside /v1 fall through to the files; ServeDir answers 404 itself.
        Some(dir) => {
            router.fallback_service(ServeDir::new(dir).append_index_html_on_directories(true))
        }
        None => router.fallback(unknown_route),
    };
    router
        .with_state(store)
        .layer(axum::middleware::map_response(no_sniff))
        .layer(TraceLayer::new_for_http())
}

/// Browsers must take every response for the type it says (a .wasm or JSON never runs as script).
async fn no_sniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// Liveness and readiness: 200 when the database answers, 503 otherwise.
async fn healthz(State(store): State<Store>) -> Result<Json<Health>, ApiError> {
    store.ping().await?;
    Ok(Json(Health { status: "ok" }))
}

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: env!("CARGO_PKG_NAME").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: API_VERSION.to_owned(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pool {
    name: PoolName,
    create_time: String,
}

/// GetPool: `GET /v1/pools/{pool}`.
async fn get_pool(
    State(store): State<Store>,
    UrlPath(pool): UrlPath<String>,
) -> Result<Json<Pool>, ApiError> {
    let name: PoolName = format!("pools/{pool}").parse()?;
    let record = store
        .pool(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(Json(Pool {
        name: record.name,
        create_time: rfc3339_ms(record.create_time_ms),
    }))
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Unix milliseconds as an RFC 3339 UTC timestamp, the JSON form of time in the API.
fn rfc3339_ms(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}
