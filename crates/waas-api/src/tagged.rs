//! Deserialization of the API's tagged enums (`OperationMetadata`, `OperationResponse`,
//! `MpcProtocol`) through one flat struct each: the JSON is the same as serde's internally tagged
//! form (which serialization still uses), but serde's own tagged deserializer buffers the whole
//! object first and costs the browser SDK's wasm about 10 KB per enum.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::resources::{
    DeviceAdded, DeviceArchive, DeviceBackup, MpcProtocol, MpcWallet, OperationMetadata,
    OperationResponse, Signature, SignedPayload, TypedPayloadJson,
};
use crate::{DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName, MpcWalletName};

/// A field a variant needs, or the error serde would give for its absence.
fn needed<T, E: serde::de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(field))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataWire {
    #[serde(rename = "@type")]
    kind: String,
    mpc_operation: MpcOperationName,
    device_group: Option<DeviceGroupName>,
    mpc_wallet: Option<MpcWalletName>,
    mpc_key: Option<MpcKeyName>,
    device: Option<DeviceName>,
}

impl<'de> Deserialize<'de> for OperationMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MetadataWire::deserialize(deserializer)?;
        let mpc_operation = wire.mpc_operation;
        match wire.kind.as_str() {
            "CreateMPCWalletMetadata" => Ok(Self::CreateMpcWallet {
                device_group: needed(wire.device_group, "deviceGroup")?,
                mpc_wallet: needed(wire.mpc_wallet, "mpcWallet")?,
                mpc_operation,
            }),
            "CreateSignatureMetadata" => Ok(Self::CreateSignature {
                mpc_key: needed(wire.mpc_key, "mpcKey")?,
                mpc_operation,
            }),
            "PrepareDeviceArchiveMetadata" => Ok(Self::PrepareDeviceArchive {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                mpc_operation,
            }),
            "PrepareDeviceBackupMetadata" => Ok(Self::PrepareDeviceBackup {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                mpc_operation,
            }),
            "AddDeviceMetadata" => Ok(Self::AddDevice {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                mpc_operation,
            }),
            other => Err(D::Error::unknown_variant(
                other,
                &[
                    "CreateMPCWalletMetadata",
                    "CreateSignatureMetadata",
                    "PrepareDeviceArchiveMetadata",
                    "PrepareDeviceBackupMetadata",
                    "AddDeviceMetadata",
                ],
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseWire {
    #[serde(rename = "@type")]
    kind: String,
    name: Option<MpcWalletName>,
    device_group: Option<DeviceGroupName>,
    create_time: Option<String>,
    mpc_key: Option<MpcKeyName>,
    payload: Option<String>,
    typed_payload: Option<TypedPayloadJson>,
    signed_payload: Option<SignedPayload>,
    device: Option<DeviceName>,
    epoch: Option<u64>,
    ciphertexts_hash: Option<String>,
}

impl<'de> Deserialize<'de> for OperationResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ResponseWire::deserialize(deserializer)?;
        match wire.kind.as_str() {
            "MPCWallet" => Ok(Self::MpcWallet(MpcWallet {
                name: needed(wire.name, "name")?,
                device_group: needed(wire.device_group, "deviceGroup")?,
                create_time: needed(wire.create_time, "createTime")?,
            })),
            "Signature" => Ok(Self::Signature(Signature {
                mpc_key: needed(wire.mpc_key, "mpcKey")?,
                payload: needed(wire.payload, "payload")?,
                typed_payload: wire.typed_payload,
                signed_payload: needed(wire.signed_payload, "signedPayload")?,
            })),
            "DeviceArchive" => Ok(Self::DeviceArchive(DeviceArchive {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                epoch: needed(wire.epoch, "epoch")?,
            })),
            "DeviceBackup" => Ok(Self::DeviceBackup(DeviceBackup {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                epoch: needed(wire.epoch, "epoch")?,
                ciphertexts_hash: needed(wire.ciphertexts_hash, "ciphertextsHash")?,
            })),
            "DeviceAdded" => Ok(Self::DeviceAdded(DeviceAdded {
                device_group: needed(wire.device_group, "deviceGroup")?,
                device: needed(wire.device, "device")?,
                epoch: needed(wire.epoch, "epoch")?,
            })),
            other => Err(D::Error::unknown_variant(
                other,
                &[
                    "MPCWallet",
                    "Signature",
                    "DeviceArchive",
                    "DeviceBackup",
                    "DeviceAdded",
                ],
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProtocolWire {
    #[serde(rename = "type")]
    kind: String,
    mpc_key: Option<MpcKeyName>,
    derivation_path: Option<String>,
    digest: Option<String>,
    typed_payload: Option<TypedPayloadJson>,
    pairing_id: Option<String>,
    backup: Option<MpcOperationName>,
    device_ciphertext: Option<String>,
    server_ciphertext: Option<String>,
}

impl<'de> Deserialize<'de> for MpcProtocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ProtocolWire::deserialize(deserializer)?;
        match wire.kind.as_str() {
            "CREATE_DEVICE_GROUP" => Ok(Self::CreateDeviceGroup),
            "CREATE_SIGNATURE" => Ok(Self::CreateSignature {
                mpc_key: needed(wire.mpc_key, "mpcKey")?,
                derivation_path: needed(wire.derivation_path, "derivationPath")?,
                digest: needed(wire.digest, "digest")?,
                typed_payload: wire.typed_payload,
                pairing_id: needed(wire.pairing_id, "pairingId")?,
            }),
            "PREPARE_DEVICE_ARCHIVE" => Ok(Self::PrepareDeviceArchive {
                pairing_id: needed(wire.pairing_id, "pairingId")?,
            }),
            "PREPARE_DEVICE_BACKUP" => Ok(Self::PrepareDeviceBackup {
                pairing_id: needed(wire.pairing_id, "pairingId")?,
            }),
            "ADD_DEVICE" => Ok(Self::AddDevice {
                backup: needed(wire.backup, "backup")?,
                device_ciphertext: needed(wire.device_ciphertext, "deviceCiphertext")?,
                server_ciphertext: needed(wire.server_ciphertext, "serverCiphertext")?,
            }),
            other => Err(D::Error::unknown_variant(
                other,
                &[
                    "CREATE_DEVICE_GROUP",
                    "CREATE_SIGNATURE",
                    "PREPARE_DEVICE_ARCHIVE",
                    "PREPARE_DEVICE_BACKUP",
                    "ADD_DEVICE",
                ],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    /// Serializes with serde's tagged form and reads it back through the flat form.
    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        value: T,
    ) {
        // Through text, as on the wire (a JSON tree would reorder a typed payload's keys).
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
    }

    #[test]
    fn every_variant_reads_back_what_serde_writes() {
        let group: DeviceGroupName = "pools/p/deviceGroups/g".parse().unwrap();
        let operation: MpcOperationName = "pools/p/deviceGroups/g/mpcOperations/o".parse().unwrap();
        let key: MpcKeyName = "pools/p/deviceGroups/g/mpcKeys/m-0-0".parse().unwrap();
        let device: DeviceName = "devices/d".parse().unwrap();
        round_trip(OperationMetadata::CreateMpcWallet {
            device_group: group.clone(),
            mpc_wallet: "pools/p/mpcWallets/w".parse().unwrap(),
            mpc_operation: operation.clone(),
        });
        round_trip(OperationMetadata::CreateSignature {
            mpc_key: key.clone(),
            mpc_operation: operation.clone(),
        });
        round_trip(OperationMetadata::PrepareDeviceArchive {
            device_group: group.clone(),
            device: device.clone(),
            mpc_operation: operation.clone(),
        });
        round_trip(OperationMetadata::PrepareDeviceBackup {
            device_group: group.clone(),
            device: device.clone(),
            mpc_operation: operation.clone(),
        });
        round_trip(OperationMetadata::AddDevice {
            device_group: group.clone(),
            device: device.clone(),
            mpc_operation: operation.clone(),
        });
        round_trip(OperationResponse::MpcWallet(MpcWallet {
            name: "pools/p/mpcWallets/w".parse().unwrap(),
            device_group: group.clone(),
            create_time: "2026-11-26T00:00:00Z".into(),
        }));
        round_trip(OperationResponse::Signature(Signature {
            mpc_key: key.clone(),
            payload: "0x00".into(),
            typed_payload: Some(
                TypedPayloadJson::new(&crate::resources::TypedPayload::Message {
                    message: waas_eth::Bytes(b"hi".to_vec()),
                })
                .unwrap(),
            ),
            signed_payload: SignedPayload {
                r: "0x01".into(),
                s: "0x02".into(),
                v: 27,
                signature: "0x0102".into(),
            },
        }));
        round_trip(OperationResponse::DeviceArchive(DeviceArchive {
            device_group: group.clone(),
            device: device.clone(),
            epoch: 3,
        }));
        round_trip(OperationResponse::DeviceBackup(DeviceBackup {
            device_group: group.clone(),
            device: device.clone(),
            epoch: 3,
            ciphertexts_hash: "0x22".into(),
        }));
        round_trip(OperationResponse::DeviceAdded(DeviceAdded {
            device_group: group,
            device,
            epoch: 1,
        }));
        round_trip(MpcProtocol::CreateDeviceGroup);
        round_trip(MpcProtocol::CreateSignature {
            mpc_key: key,
            derivation_path: "0/0".into(),
            digest: "0x00".into(),
            typed_payload: None,
            pairing_id: "0x11".into(),
        });
        round_trip(MpcProtocol::PrepareDeviceArchive {
            pairing_id: "0x11".into(),
        });
        round_trip(MpcProtocol::PrepareDeviceBackup {
            pairing_id: "0x11".into(),
        });
        round_trip(MpcProtocol::AddDevice {
            backup: operation,
            device_ciphertext: "AQ".into(),
            server_ciphertext: "Ag".into(),
        });
    }

    #[test]
    fn unknown_kinds_and_missing_fields_are_errors() {
        let unknown =
            json!({"@type": "Other", "mpcOperation": "pools/p/deviceGroups/g/mpcOperations/o"});
        assert!(serde_json::from_value::<OperationMetadata>(unknown).is_err());
        let missing = json!({"@type": "CreateSignatureMetadata", "mpcOperation": "pools/p/deviceGroups/g/mpcOperations/o"});
        let error = serde_json::from_value::<OperationMetadata>(missing).unwrap_err();
        assert!(error.to_string().contains("mpcKey"));
        assert!(
            serde_json::from_value::<MpcProtocol>(json!({"type": "CREATE_SIGNATURE"})).is_err()
        );
        assert!(
            serde_json::from_value::<OperationResponse>(json!({"@type": "DeviceArchive"})).is_err()
        );
    }
}
