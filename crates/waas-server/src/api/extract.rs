//! Request extractors: [`Call`] for authenticated calls (the caller and the parsed body) and
//! [`PublicJson`] for the one public call that takes a body (RegisterDevice).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri};
use axum::http::{Method, Request, header};
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::auth::{Principal, RequestFacts, authenticate};
use crate::services::Services;
use crate::store::Store;
use crate::time::now_ms;

/// The largest request body accepted: an MPC message (at most 512 KiB) in base64url, plus JSON.
pub(super) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An authenticated call: who made it and its JSON body (`()` for calls without one).
pub(super) struct Call<T> {
    /// Who signed the request.
    pub caller: Principal,
    /// The parsed body.
    pub body: T,
}

/// A JSON body of a call that needs no authentication.
pub(super) struct PublicJson<T>(pub T);

/// Reads the body (bounded) and checks its content type: POST bodies are JSON, GETs have none.
async fn read_body(
    request: Request<Body>,
) -> Result<(axum::http::request::Parts, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::invalid(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
        })?;
    if parts.method == Method::POST {
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::invalid(
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
    } else if !bytes.is_empty() {
        return Err(ApiError::invalid("this request takes no body"));
    }
    Ok((parts, bytes))
}

/// Parses the body as `T`; a GET's empty body parses as `()`.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.is_empty() {
        b"null".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::invalid(format!("bad request body: {error}")))
}

impl<S: Store, T: DeserializeOwned> FromRequest<Services<S>> for Call<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: Request<Body>,
        services: &Services<S>,
    ) -> Result<Self, ApiError> {
        let (parts, bytes) = read_body(request).await?;
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        // The URI as the client sent it: inside the nested `/v1` router, `parts.uri` lacks the prefix.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |value| value.as_str());
        let caller = authenticate(
            services.store(),
            services.audience(),
            authorization,
            &RequestFacts {
                method: parts.method.as_str(),
                path_and_query,
                body: &bytes,
            },
            now_ms(),
        )
        .await?;
        Ok(Self {
            caller,
            body: parse(&bytes)?,
        })
    }
}

impl<S: Store, T: DeserializeOwned> FromRequest<Services<S>> for PublicJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _: &Services<S>) -> Result<Self, ApiError> {
        let (_, bytes) = read_body(request).await?;
        Ok(Self(parse(&bytes)?))
    }
}
