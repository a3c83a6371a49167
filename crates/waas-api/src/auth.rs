//! Request authentication: every request but the public ones carries
//! `Authorization: Bearer <JWT>`, an ES256 JWT signed by the caller's key for this one request.
//!
//! The claims bind the token to the caller (`sub`), the server (`aud`), the request (`htm`,
//! `htu`, `bh`) and a short time window, and `jti` makes it single-use: a token copied from a log
//! or a proxy is worth one request that was already made. See docs/api.md.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The longest lifetime a token may ask for (`exp - iat`), in seconds.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 60;

/// How far the caller's clock may run ahead of or behind the server's, in seconds, before its
/// tokens are refused (with reason [`reason::CLOCK_SKEW`] or [`reason::TOKEN_EXPIRED`]). Clients
/// correct their clock from the `Date` header of every response.
pub const CLOCK_LEEWAY_SECS: i64 = 10;

/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_LEN: usize = 64;

/// The longest token accepted, in bytes: a bound on the work an unauthenticated caller causes.
pub const MAX_TOKEN_LEN: usize = 4096;

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

/// Why a request token could not be read, before any key or claim is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the token is too long")]
    TooLong,
    /// Not three dot-separated parts.
    #[error("the token is not a compact JWS")]
    NotCompact,
    /// The header or the claims are not unpadded base64url.
    #[error("the token is not base64url")]
    Encoding,
    /// The header or the claims are not the JSON of [`TokenHeader`] and [`RequestClaims`].
    #[error("the token's header or claims are malformed")]
    Malformed,
    /// The header names another algorithm or type than an ES256 JWT.
    #[error("the token must be an ES256 JWT")]
    Algorithm,
}

/// A request token split into its parts and its header and claims read: what the server does
/// before it looks at the claims' values and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestToken<'a> {
    /// The claims.
    pub claims: RequestClaims,
    /// What the signature signs: `header.claims`, as received.
    pub signed: &'a str,
    /// The signature, still base64url (the server decodes it only once it knows the signer).
    pub signature: &'a str,
}

impl<'a> RequestToken<'a> {
    /// Splits a compact JWS and reads its header (it must be an ES256 JWT) and claims.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotCompact);
        };
        let parsed: TokenHeader = decode_json(header)?;
        if parsed.alg != ALGORITHM || parsed.typ.as_deref().is_some_and(|typ| typ != "JWT") {
            return Err(TokenError::Algorithm);
        }
        let claims_parsed: RequestClaims = decode_json(claims)?;
        Ok(Self {
            claims: claims_parsed,
            signed: &token[..header.len() + 1 + claims.len()],
            signature,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Encoding)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn claims() -> String {
        part(
            r#"{"sub":"devices/d1","aud":"waas","iat":1,"exp":2,"jti":"j","htm":"GET","htu":"/v1","bh":""}"#,
        )
    }

    #[test]
    fn parses_a_token_and_keeps_the_signed_part() {
        let header = part(r#"{"alg":"ES256","typ":"JWT"}"#);
        let token = format!("{header}.{}.c2ln", claims());
        let parsed = RequestToken::parse(&token).unwrap();
        assert_eq!(parsed.claims.sub, "devices/d1");
        assert_eq!(parsed.signed, format!("{header}.{}", claims()));
        assert_eq!(parsed.signature, "c2ln");
    }

    #[test]
    fn refuses_each_malformed_part() {
        let es256 = part(r#"{"alg":"ES256"}"#);
        let parse = |token: &str| RequestToken::parse(token).unwrap_err();
        assert_eq!(parse(&"a".repeat(MAX_TOKEN_LEN + 1)), TokenError::TooLong);
        assert_eq!(parse("a.b"), TokenError::NotCompact);
        assert_eq!(parse("a.b.c.d"), TokenError::NotCompact);
        assert_eq!(parse(&format!("!.{}.s", claims())), TokenError::Encoding);
        assert_eq!(
            parse(&format!("{}.{}.s", part("[]"), claims())),
            TokenError::Malformed
        );
        let none = part(r#"{"alg":"none"}"#);
        assert_eq!(
            parse(&format!("{none}.{}.s", claims())),
            TokenError::Algorithm
        );
        let jwe = part(r#"{"alg":"ES256","typ":"JWE"}"#);
        assert_eq!(
            parse(&format!("{jwe}.{}.s", claims())),
            TokenError::Algorithm
        );
        assert_eq!(
            parse(&format!("{es256}.{}.s", part("{}"))),
            TokenError::Malformed
        );
    }
}
