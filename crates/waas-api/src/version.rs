//! The version document served at `GET /v1/version`.

use serde::{Deserialize, Serialize};

/// The REST API generation: the path prefix of every route (`/v1/...`).
pub const API_VERSION: &str = "v1";

/// What a component reports about itself, so a client can tell which server it talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The component's name, e.g. `waas-server`.
    pub name: String,
    /// Its semantic version (the crate version it was built from).
    pub version: String,
    /// The REST API generation it serves, [`API_VERSION`].
    pub api_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_camel_case() {
        let info = VersionInfo {
            name: "waas-server".into(),
            version: "1.2.3".into(),
            api_version: API_VERSION.into(),
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "waas-server", "version": "1.2.3", "apiVersion": "v1"})
        );
        let back: VersionInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }
}
