//! Request authentication: every request but the public ones carries
//! `Authorization: Bearer <JWT>`, an ES256 JWT signed by the caller's key for this one request.
//!
//! The claims bind the token to the caller (`sub`), the server (`aud`), the request (`htm`,
//! `htu`, `bh`) and a short time window, and `jti` makes it single-use: a token copied from a log
//! or a proxy is worth one request that was already made. See docs/api.md.

use serde::{Deserialize, Serialize};

/// The longest lifetime a token may ask for (`exp - iat`), in seconds.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 60;

/// How far the caller's clock may run ahead of or behind the server's, in seconds, before its
/// tokens are refused (with reason [`reason::CLOCK_SKEW`] or [`reason::TOKEN_EXPIRED`]). Clients
/// correct their clock from the `Date` header of every response.
pub const CLOCK_LEEWAY_SECS: i64 = 10;

/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_LEN: usize = 64;

/// The `alg` of every token.
pub const ALGORITHM: &str = "ES256";

/// The JOSE header of a request token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHeader {
    /// Always [`ALGORITHM`].
    pub alg: String,
    /// `JWT`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// The claims of a request token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestClaims {
    /// Who signs: `devices/{device}` or `apiKeys/{key}`.
    pub sub: String,
    /// The server the token is for (the server's `--audience`).
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds; at most [`MAX_TOKEN_LIFETIME_SECS`] after `iat`.
    pub exp: i64,
    /// A random id, accepted once.
    pub jti: String,
    /// The HTTP method, upper case: `GET`, `POST`.
    pub htm: String,
    /// The request path with its query, as sent: `/v1/pools/default/mpcWallets`.
    pub htu: String,
    /// The SHA-256 of the request body (empty for GET), unpadded base64url.
    pub bh: String,
}

/// The `reason` values of authentication errors, so a client can tell what to fix.
pub mod reason {
    /// The token was issued in the future: the client's clock runs ahead. Resync from `Date`.
    pub const CLOCK_SKEW: &str = "CLOCK_SKEW";
    /// The token has expired (or the client's clock runs behind). Mint a new one.
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    /// The token's `jti` was used before. Mint a new token for every request, retries too.
    pub const TOKEN_REPLAYED: &str = "TOKEN_REPLAYED";
    /// The calling device has been revoked (RevokeDevice): none of its requests will be served
    /// again. Told only to a caller whose token the device's own key signed.
    pub const DEVICE_REVOKED: &str = "DEVICE_REVOKED";
}
