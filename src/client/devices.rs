//! RevokeDevice, the device's side (docs/protocol/revoke.md): this device revokes itself, or
//! another device of one of its groups after a passcode login of that group (the step-up).

use waas_api::resources::{Device, ListDeviceGroupEventsResponse, RevokeDeviceRequest};
use waas_api::{DeviceGroupName, DeviceName};
use wasm_bindgen::prelude::wasm_bindgen;

use super::{WaasClient, string_option, to_js};
use crate::SdkError;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** What revoking another device takes: a passcode login of a device group both devices are in. */
export interface StepUp { deviceGroup: string; passcode: string; }
/** A change of a device group's devices: `DEVICE_ADDED` (a recovery with a backup, which may be
 * a thief's) or `DEVICE_REVOKED`; `operation` is the AddDevice that did it; `time` is RFC 3339. */
export interface DeviceGroupEvent {
  type: 'DEVICE_ADDED' | 'DEVICE_REVOKED';
  device: string;
  operation?: string;
  time: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `StepUp`.
    #[wasm_bindgen(typescript_type = "StepUp")]
    pub type StepUp;
    /// `DeviceGroupEvent[]`.
    #[wasm_bindgen(typescript_type = "DeviceGroupEvent[]")]
    pub type JsDeviceGroupEvents;
}

#[wasm_bindgen]
impl WaasClient {
    /// RevokeDevice: the server deletes its halves of the device's pairings, fails its pending
    /// operations, and refuses its requests from then on (`DEVICE_REVOKED`). `device` defaults
    /// to this device, which needs nothing more (revoking it again is fine). Another device of
    /// one of this device's groups needs `stepUp`: a passcode login of that group, made first
    /// (counted at the server like any other). It cannot undo an export: a device that opened
    /// its archive held the whole key, and only moving the funds helps then.
    #[wasm_bindgen(js_name = revokeDevice)]
    pub async fn revoke_device(
        &self,
        device: Option<String>,
        #[wasm_bindgen(js_name = stepUp)] step_up: Option<StepUp>,
    ) -> Result<(), SdkError> {
        let own = self.identity().await?.0.clone();
        let name: DeviceName = match device {
            Some(name) => name.parse()?,
            None => own.clone(),
        };
        let itself = name == own;
        let login = match (itself, step_up) {
            (true, _) => None,
            (false, Some(step_up)) => {
                let (Some(group), Some(passcode)) = (
                    string_option(&step_up, "deviceGroup"),
                    string_option(&step_up, "passcode"),
                ) else {
                    return Err(step_up_needed());
                };
                Some(self.login(&group.parse()?, &passcode).await?.name)
            }
            (false, None) => return Err(step_up_needed()),
        };
        let body = RevokeDeviceRequest { name, login };
        match self
            .send::<_, Device>("POST", "/v1/device:revoke", Some(&body), true)
            .await
        {
            Ok(revoked) if revoked.name == body.name => Ok(()),
            Ok(_) => Err(SdkError::Untrusted(
                "RevokeDevice answered another device".into(),
            )),
            // This device, revoked already (a retry, or by another device): what was asked holds.
            Err(SdkError::DeviceRevoked) if itself => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// ListDeviceGroupEvents: what happened to the devices of `deviceGroup` (one of this
    /// device's groups), oldest first, so a wallet can tell the user that a device was added
    /// (a recovery, which may be a thief's) or revoked.
    #[wasm_bindgen(js_name = listDeviceGroupEvents)]
    pub async fn list_device_group_events(
        &self,
        #[wasm_bindgen(js_name = deviceGroup)] device_group: String,
    ) -> Result<JsDeviceGroupEvents, SdkError> {
        let name: DeviceGroupName = device_group.parse()?;
        let list: ListDeviceGroupEventsResponse = self
            .send::<(), _>("GET", &format!("/v1/{name}/events"), None, true)
            .await?;
        Ok(to_js(&list.events)?.into())
    }
}

fn step_up_needed() -> SdkError {
    SdkError::InvalidArgument(
        "revoking another device takes stepUp: { deviceGroup, passcode }".into(),
    )
}
