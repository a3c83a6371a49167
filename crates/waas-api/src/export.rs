//! The device archive and key export (docs/protocol/archive.md): PrepareDeviceArchive and the
//! export metadata GetDeviceGroup returns; PrepareDeviceBackup's request (backup.md) and
//! AddDevice's (recovery.md).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName};

/// PrepareDeviceArchive: `POST /v1/{deviceGroup}:prepareDeviceArchive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareDeviceArchiveRequest {
    /// The device that will hold the archive (a device may only ask for its own).
    pub device: DeviceName,
}

/// PrepareDeviceBackup: `POST /v1/{deviceGroup}:prepareDeviceBackup` (docs/protocol/backup.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareDeviceBackupRequest {
    /// The device that makes the backup (a device may only ask for its own).
    pub device: DeviceName,
}

/// AddDevice: `POST /v1/{deviceGroup}:addDevice` (docs/protocol/recovery.md). A new device
/// (registered, in no group yet) asks to join the group with a backup; what authorizes it is
/// proven inside the operation (the backup's decryption half, then the passcode), never the
/// request itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddDeviceRequest {
    /// The device to add (a device may only ask for itself).
    pub device: DeviceName,
    /// The backup to recover with: its id, as the backup string names it.
    pub backup: MpcOperationName,
}

/// What a device needs to check and export every key of a group: for every MPC key, its
/// derivation path, public key and address. The device checks each against its own derivation
/// before it trusts any of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportMetadata {
    /// [`ExportMetadata::VERSION`].
    pub version: u8,
    /// The group.
    pub device_group: DeviceGroupName,
    /// The root public key (compressed SEC1), `0x` hex.
    pub root_public_key: String,
    /// Every MPC key of the group, oldest first.
    pub keys: Vec<ExportKeyMetadata>,
}

/// One key in [`ExportMetadata`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportKeyMetadata {
    /// The key.
    pub mpc_key: MpcKeyName,
    /// Its derivation path below the root, e.g. `0/3`.
    pub derivation_path: String,
    /// Its public key (compressed SEC1), `0x` hex.
    pub public_key: String,
    /// Its Ethereum address (EIP-55).
    pub address: String,
}

/// Why export metadata could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("export metadata is not valid: {0}")]
pub struct ExportMetadataError(String);

impl ExportMetadata {
    /// The format version written.
    pub const VERSION: u8 = 1;

    /// The base64url form GetDeviceGroup returns as `mpcKeyExportMetadata`.
    pub fn encode(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses the base64url form.
    pub fn decode(text: &str) -> Result<Self, ExportMetadataError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| ExportMetadataError("not base64url".into()))?;
        let metadata: Self = serde_json::from_slice(&bytes)
            .map_err(|error| ExportMetadataError(error.to_string()))?;
        if metadata.version != Self::VERSION {
            return Err(ExportMetadataError(format!(
                "version {} is not supported",
                metadata.version
            )));
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let metadata = ExportMetadata {
            version: ExportMetadata::VERSION,
            device_group: "pools/default/deviceGroups/g1".parse().unwrap(),
            root_public_key: format!("0x02{}", "11".repeat(32)),
            keys: vec![ExportKeyMetadata {
                mpc_key: "pools/default/deviceGroups/g1/mpcKeys/m-0-0"
                    .parse()
                    .unwrap(),
                derivation_path: "0/0".into(),
                public_key: format!("0x03{}", "22".repeat(32)),
                address: "0x0000000000000000000000000000000000000001".into(),
            }],
        };
        assert_eq!(
            ExportMetadata::decode(&metadata.encode()).unwrap(),
            metadata
        );
        let other = ExportMetadata {
            version: 2,
            ..metadata
        };
        assert!(ExportMetadata::decode(&other.encode()).is_err());
        assert!(ExportMetadata::decode("not base64!").is_err());
    }
}
