//! The HTTP surface: `/healthz`, `/v1/...` and, optionally, the web app's static files. Handlers
//! parse names and bodies and call the services; nothing else happens here.

mod extract;

use std::path::Path;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use waas_api::export::{AddDeviceRequest, PrepareDeviceArchiveRequest, PrepareDeviceBackupRequest};
use waas_api::passcode::{
    PasscodeLoginFinishRequest, PasscodeLoginFinishResponse, PasscodeLoginStartRequest,
    PasscodeLoginStartResponse, PasscodeRegisterFinishRequest, PasscodeRegisterFinishResponse,
    PasscodeRegisterStartRequest, PasscodeRegisterStartResponse,
};
use waas_api::resources::{
    Address, CreateMpcKeyRequest, CreateMpcWalletRequest, CreatePoolRequest,
    CreateSignatureRequest, Device, DeviceGroup, ExchangeRequest, ExchangeResponse,
    GenerateAddressRequest, ListAddressesResponse, ListDeviceGroupEventsResponse,
    ListMpcOperationsResponse, MpcKey, MpcWallet, Operation, Pool, RegisterDeviceRequest,
    RevokeDeviceRequest,
};
use waas_api::{
    API_VERSION, DeviceGroupName, DeviceName, ErrorCode, MpcKeyName, MpcOperationName,
    MpcWalletName, OperationName, PoolName, ResourceId, VersionInfo,
};

use extract::{Call, PublicJson};

use crate::ApiError;
use crate::services::Services;
use crate::store::Store;

/// How long browsers may cache a CORS preflight: Chromium's ceiling, so a signing round trip is
/// not doubled by preflights.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(7200);

/// The router with every route, over `services`; serves `static_dir` at `/` when given, and
/// answers cross-origin calls as `cors` says (see [`cors`]).
pub fn app<S: Store>(
    services: Services<S>,
    static_dir: Option<&Path>,
    cors: Option<CorsLayer>,
) -> Router {
    let api = Router::new()
        .route("/version", get(version))
        .route("/device:register", post(register_device))
        .route("/device:revoke", post(revoke_device))
        .route("/devices/{device}", get(get_device))
        .route("/pools", post(create_pool))
        .route("/pools/{pool}", get(get_pool))
        .route("/pools/{pool}/mpcWallets", post(create_wallet))
        .route(
            "/pools/{pool}/mpcWallets/{wallet}",
            get(get_wallet).post(wallet_verb),
        )
        .route(
            "/pools/{pool}/mpcWallets/{wallet}/addresses",
            get(list_addresses),
        )
        .route(
            "/pools/{pool}/mpcWallets/{wallet}/addresses/{address}",
            get(get_address),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}",
            get(get_device_group).post(device_group_verb),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/mpcOperations",
            get(list_mpc_operations),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/events",
            get(list_device_group_events),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/passcode:registerStart",
            post(passcode_register_start),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/passcode:registerFinish",
            post(passcode_register_finish),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/passcode:loginStart",
            post(passcode_login_start),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/passcode:loginFinish",
            post(passcode_login_finish),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/mpcOperations/{operation}",
            post(exchange),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/mpcKeys",
            post(create_key),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/mpcKeys/{key}",
            get(get_key),
        )
        .route(
            "/pools/{pool}/deviceGroups/{group}/mpcKeys/{key}/signatures",
            post(create_signature),
        )
        .route("/operations/{operation}", get(get_operation))
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
    let mut router = router
        .with_state(services)
        .layer(axum::middleware::map_response(no_sniff));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(TraceLayer::new_for_http())
}

/// Cross-origin access for web wallets on their own origin (`--allowed-origin`; `None` without
/// any): only the listed origins, only the headers the SDK sends (no cookies: the request token
/// is the only credential), `Date` readable so the SDK can correct its clock, and preflights
/// cached.
pub fn cors(allowed_origins: &[String]) -> Result<Option<CorsLayer>, ApiError> {
    if allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = allowed_origins
        .iter()
        .map(|origin| origin_header(origin))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::DATE, HeaderName::from_static("x-request-id")])
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// An `--allowed-origin` value as the `Origin` header browsers send: `http(s)://host[:port]`,
/// nothing else. A wildcard would let every page use the API; a path never matches an origin.
fn origin_header(origin: &str) -> Result<HeaderValue, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "--allowed-origin {origin:?} must be an origin like https://wallet.example"
        ))
    };
    let origin = origin.trim_end_matches('/');
    let uri: axum::http::Uri = origin.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
    let host_ok = uri
        .host()
        .is_some_and(|host| !host.is_empty() && !host.contains('*'));
    let bare =
        uri.path_and_query().is_none_or(|path| path.as_str() == "/") && !origin.contains('@');
    if !(scheme_ok && host_ok && bare) {
        return Err(bad());
    }
    HeaderValue::from_str(origin).map_err(|_| bad())
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
async fn healthz<S: Store>(State(services): State<Services<S>>) -> Result<Json<Health>, ApiError> {
    services.store().ping().await?;
    Ok(Json(Health { status: "ok" }))
}

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: env!("CARGO_PKG_NAME").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: API_VERSION.to_owned(),
    })
}

fn id(segment: &str) -> Result<ResourceId, ApiError> {
    Ok(ResourceId::new(segment)?)
}

/// Splits a `{id}:{verb}` segment.
fn verb(segment: &str) -> Result<(ResourceId, &str), ApiError> {
    let (name, verb) = segment
        .split_once(':')
        .ok_or_else(|| ApiError::not_found("route"))?;
    Ok((id(name)?, verb))
}

async fn register_device<S: Store>(
    State(services): State<Services<S>>,
    PublicJson(request): PublicJson<RegisterDeviceRequest>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(
        services.register_device(&request.registration_data).await?,
    ))
}

async fn revoke_device<S: Store>(
    State(services): State<Services<S>>,
    call: Call<RevokeDeviceRequest>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(services.revoke_device(&call.caller, call.body).await?))
}

async fn get_device<S: Store>(
    State(services): State<Services<S>>,
    UrlPath(device): UrlPath<String>,
    call: Call<()>,
) -> Result<Json<Device>, ApiError> {
    let name = DeviceName::new(id(&device)?);
    Ok(Json(services.get_device(&call.caller, &name).await?))
}

async fn create_pool<S: Store>(
    State(services): State<Services<S>>,
    call: Call<CreatePoolRequest>,
) -> Result<Json<Pool>, ApiError> {
    Ok(Json(services.create_pool(&call.caller, call.body).await?))
}

async fn get_pool<S: Store>(
    State(services): State<Services<S>>,
    UrlPath(pool): UrlPath<String>,
    _call: Call<()>,
) -> Result<Json<Pool>, ApiError> {
    Ok(Json(services.get_pool(&PoolName::new(id(&pool)?)).await?))
}

async fn create_wallet<S: Store>(
    State(services): State<Services<S>>,
    UrlPath(pool): UrlPath<String>,
    call: Call<CreateMpcWalletRequest>,
) -> Result<Json<Operation>, ApiError> {
    let pool = PoolName::new(id(&pool)?);
    Ok(Json(
        services
            .create_wallet(&call.caller, &pool, call.body)
            .await?,
    ))
}

async fn get_wallet<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, wallet)): UrlPath<(String, String)>,
    call: Call<()>,
) -> Result<Json<MpcWallet>, ApiError> {
    let name = MpcWalletName::new(id(&pool)?, id(&wallet)?);
    Ok(Json(services.get_wallet(&call.caller, &name).await?))
}

/// `POST …/mpcWallets/{wallet}:generateAddress`.
async fn wallet_verb<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, segment)): UrlPath<(String, String)>,
    call: Call<GenerateAddressRequest>,
) -> Result<Json<Address>, ApiError> {
    let (wallet, verb) = verb(&segment)?;
    if verb != "generateAddress" {
        return Err(ApiError::not_found("route"));
    }
    let name = MpcWalletName::new(id(&pool)?, wallet);
    Ok(Json(
        services
            .generate_address(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn list_addresses<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, wallet)): UrlPath<(String, String)>,
    call: Call<()>,
) -> Result<Json<ListAddressesResponse>, ApiError> {
    let name = MpcWalletName::new(id(&pool)?, id(&wallet)?);
    Ok(Json(services.list_addresses(&call.caller, &name).await?))
}

async fn get_address<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, wallet, address)): UrlPath<(String, String, String)>,
    call: Call<()>,
) -> Result<Json<Address>, ApiError> {
    let name = MpcWalletName::new(id(&pool)?, id(&wallet)?);
    Ok(Json(
        services.get_address(&call.caller, &name, &address).await?,
    ))
}

async fn get_device_group<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<()>,
) -> Result<Json<DeviceGroup>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(services.get_device_group(&call.caller, &name).await?))
}

/// `POST …/deviceGroups/{group}:prepareDeviceArchive`, `:prepareDeviceBackup` and `:addDevice`.
async fn device_group_verb<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, segment)): UrlPath<(String, String)>,
    call: Call<serde_json::Value>,
) -> Result<Json<Operation>, ApiError> {
    let (group, verb) = verb(&segment)?;
    match verb {
        "prepareDeviceArchive" => {
            let request: PrepareDeviceArchiveRequest = serde_json::from_value(call.body)
                .map_err(|error| ApiError::invalid(format!("bad request body: {error}")))?;
            let name = DeviceGroupName::new(id(&pool)?, group);
            Ok(Json(
                services
                    .prepare_device_archive(&call.caller, &name, request)
                    .await?,
            ))
        }
        "prepareDeviceBackup" => {
            let request: PrepareDeviceBackupRequest = serde_json::from_value(call.body)
                .map_err(|error| ApiError::invalid(format!("bad request body: {error}")))?;
            let name = DeviceGroupName::new(id(&pool)?, group);
            Ok(Json(
                services
                    .prepare_device_backup(&call.caller, &name, request)
                    .await?,
            ))
        }
        "addDevice" => {
            let request: AddDeviceRequest = serde_json::from_value(call.body)
                .map_err(|error| ApiError::invalid(format!("bad request body: {error}")))?;
            let name = DeviceGroupName::new(id(&pool)?, group);
            Ok(Json(
                services.add_device(&call.caller, &name, request).await?,
            ))
        }
        _ => Err(ApiError::not_found("route")),
    }
}

async fn passcode_register_start<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<PasscodeRegisterStartRequest>,
) -> Result<Json<PasscodeRegisterStartResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services
            .passcode_register_start(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn passcode_register_finish<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<PasscodeRegisterFinishRequest>,
) -> Result<Json<PasscodeRegisterFinishResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services
            .passcode_register_finish(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn passcode_login_start<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<PasscodeLoginStartRequest>,
) -> Result<Json<PasscodeLoginStartResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services
            .passcode_login_start(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn passcode_login_finish<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<PasscodeLoginFinishRequest>,
) -> Result<Json<PasscodeLoginFinishResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services
            .passcode_login_finish(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn list_mpc_operations<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<()>,
) -> Result<Json<ListMpcOperationsResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services.list_mpc_operations(&call.caller, &name).await?,
    ))
}

async fn list_device_group_events<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<()>,
) -> Result<Json<ListDeviceGroupEventsResponse>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services
            .list_device_group_events(&call.caller, &name)
            .await?,
    ))
}

/// `POST …/mpcOperations/{operation}:exchange`.
async fn exchange<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group, segment)): UrlPath<(String, String, String)>,
    call: Call<ExchangeRequest>,
) -> Result<Json<ExchangeResponse>, ApiError> {
    let (operation, verb) = verb(&segment)?;
    if verb != "exchange" {
        return Err(ApiError::not_found("route"));
    }
    let name = MpcOperationName::new(id(&pool)?, id(&group)?, operation);
    Ok(Json(
        services.exchange(&call.caller, &name, call.body).await?,
    ))
}

async fn create_key<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group)): UrlPath<(String, String)>,
    call: Call<CreateMpcKeyRequest>,
) -> Result<Json<MpcKey>, ApiError> {
    let name = DeviceGroupName::new(id(&pool)?, id(&group)?);
    Ok(Json(
        services.create_key(&call.caller, &name, call.body).await?,
    ))
}

async fn get_key<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group, key)): UrlPath<(String, String, String)>,
    call: Call<()>,
) -> Result<Json<MpcKey>, ApiError> {
    let name = MpcKeyName::new(id(&pool)?, id(&group)?, id(&key)?);
    Ok(Json(services.get_key(&call.caller, &name).await?))
}

async fn create_signature<S: Store>(
    State(services): State<Services<S>>,
    UrlPath((pool, group, key)): UrlPath<(String, String, String)>,
    call: Call<CreateSignatureRequest>,
) -> Result<Json<Operation>, ApiError> {
    let name = MpcKeyName::new(id(&pool)?, id(&group)?, id(&key)?);
    Ok(Json(
        services
            .create_signature(&call.caller, &name, call.body)
            .await?,
    ))
}

async fn get_operation<S: Store>(
    State(services): State<Services<S>>,
    UrlPath(operation): UrlPath<String>,
    call: Call<()>,
) -> Result<Json<Operation>, ApiError> {
    let name = OperationName::new(id(&operation)?);
    Ok(Json(services.get_operation(&call.caller, &name).await?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_origins_are_allowed() {
        for good in [
            "https://wallet.example",
            "https://wallet.example/",
            "http://127.0.0.1:5173",
        ] {
            assert!(origin_header(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "wallet.example",
            "https://*",
            "https://*.wallet.example",
            "https://wallet.example/app",
            "https://wallet.example?x=1",
            "https://user@wallet.example",
            "ftp://wallet.example",
            "",
        ] {
            assert!(origin_header(bad).is_err(), "{bad}");
        }
    }
}
