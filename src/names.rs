//! Resource names (`pools/p/deviceGroups/g`, …) for JS, validated by `waas_api::names`.

use wasm_bindgen::prelude::wasm_bindgen;

use crate::SdkError;

#[wasm_bindgen(typescript_custom_section)]
const RESOURCE_KIND_TYPE: &str = r#"
/** The kinds of resource name, as `ResourceName.kind` reports them. */
export type ResourceKind = "pool" | "deviceGroup" | "mpcKey" | "mpcOperation" | "mpcWallet" | "device" | "operation";
"#;

/// A parsed, valid resource name of any kind.
#[wasm_bindgen]
#[derive(Debug)]
pub struct ResourceName {
    inner: waas_api::ResourceName,
}

#[wasm_bindgen]
impl ResourceName {
    /// Parses and validates a name; throws `WaasError` with code `INVALID_NAME` if it is not one.
    pub fn parse(name: &str) -> Result<ResourceName, SdkError> {
        Ok(Self {
            inner: name.parse()?,
        })
    }

    /// `pool`, `deviceGroup`, `mpcKey`, `mpcOperation`, `mpcWallet`, `device` or `operation`.
    #[wasm_bindgen(getter, unchecked_return_type = "ResourceKind")]
    pub fn kind(&self) -> String {
        self.inner.kind().to_owned()
    }

    /// The resource's own id: the name's last segment.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The pool id, for the names under `pools/`.
    #[wasm_bindgen(getter)]
    pub fn pool(&self) -> Option<String> {
        self.inner.pool().map(ToString::to_string)
    }

    /// The device group id, for device groups and their MPC keys.
    #[wasm_bindgen(getter, js_name = deviceGroup)]
    pub fn device_group(&self) -> Option<String> {
        self.inner.device_group().map(ToString::to_string)
    }

    /// The canonical string form.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        self.inner.to_string()
    }
}
