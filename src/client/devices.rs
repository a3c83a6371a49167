//! A group's events (devices added by recovery, devices revoked). In the main module: an app may
//! show them on every visit, so the user notices a recovery they did not make. RevokeDevice is in
//! `revoke.rs` (the full module).

use waas_api::resources::{DeviceGroupEvent, DeviceGroupEventType};
use waas_api::{DeviceGroupName, DeviceName, OperationName};
use wasm_bindgen::prelude::wasm_bindgen;

use super::{WaasClient, to_js};
use crate::SdkError;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A change of a group's devices. A DEVICE_ADDED the user did not make is someone who recovered
 * the wallet with its backup and passcode: revoke that device, then change the passcode. */
export interface DeviceGroupEvent {
  type: 'DEVICE_ADDED' | 'DEVICE_REVOKED';
  device: string;
  /** The AddDevice operation, for DEVICE_ADDED. */
  operation?: string;
  /** RFC 3339. */
  time: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `DeviceGroupEvent[]`.
    #[wasm_bindgen(typescript_type = "DeviceGroupEvent[]")]
    pub type JsDeviceGroupEvents;
}

/// ListDeviceGroupEvents as read: each event's type as text, so one of a type this SDK does not
/// know yet does not fail the whole list.
#[derive(serde::Deserialize)]
struct RawEvents {
    events: Vec<RawEvent>,
}

#[derive(serde::Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    device: DeviceName,
    #[serde(default)]
    operation: Option<OperationName>,
    time: String,
}

#[wasm_bindgen]
impl WaasClient {
    /// The changes of a group's devices, oldest first: devices added by recovery, devices
    /// revoked. Show them, so the user notices a recovery they did not make.
    #[wasm_bindgen(js_name = listDeviceGroupEvents)]
    pub async fn list_device_group_events(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<JsDeviceGroupEvents, SdkError> {
        let group: DeviceGroupName = device_group.parse()?;
        let list: RawEvents = self
            .send::<(), _>("GET", &format!("/v1/{group}/events"), None, true)
            .await?;
        // A newer server may add event types: those are left out, so this call keeps working.
        let events: Vec<DeviceGroupEvent> = list
            .events
            .into_iter()
            .filter_map(|event| {
                let kind = match event.kind.as_str() {
                    "DEVICE_ADDED" => DeviceGroupEventType::DeviceAdded,
                    "DEVICE_REVOKED" => DeviceGroupEventType::DeviceRevoked,
                    _ => return None,
                };
                Some(DeviceGroupEvent {
                    kind,
                    device: event.device,
                    operation: event.operation,
                    time: event.time,
                })
            })
            .collect();
        Ok(to_js(&events)?.into())
    }
}
