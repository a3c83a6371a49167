//! The device, for JS: bootstrap with a passcode, reset it, read the registration data.
//! `WaasDevice` works on a named key store (several devices in one origin, tests); the
//! top-level functions use the origin's default one.

use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::SdkError;
use crate::browser::call_async;
use crate::keystore::{DEFAULT_STORE, KeyStore, PasscodePolicy, Unlock};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of `bootstrapDevice`, `resetPasscode` and `WaasDevice`. */
export interface DeviceOptions {
  /** The fewest characters a passcode may have. Default 6. */
  minPasscodeLength?: number;
  /** Whether a passcode is digits only, like a phone PIN. Default true. */
  digitsOnly?: boolean;
  /** At bootstrap, also create a passkey and let it unlock the keys where the browser supports
   * the WebAuthn PRF extension (`hasPasskey()` tells whether it did). Default false. */
  passkey?: boolean;
  /** At bootstrap: this profile is set up to recover a wallet with its backup (`recover`). The
   * passcode is checked against the policy and not kept: the server checks it during the
   * recovery, so a copy of this profile cannot test passcodes offline. Default false. */
  recovery?: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `DeviceOptions`, as JS passes it.
    #[wasm_bindgen(typescript_type = "DeviceOptions")]
    pub type DeviceOptions;
}

/// What `DeviceOptions` asks for.
#[derive(Clone, Copy, Default)]
pub(crate) struct Settings {
    pub(crate) policy: PasscodePolicy,
    /// Enrol a passkey at bootstrap.
    pub(crate) passkey: bool,
    /// Bootstrap to recover a wallet: keep no passcode wrap.
    pub(crate) recovery: bool,
}

/// The passcode policy and the bootstrap's choices, from `DeviceOptions`.
pub(crate) fn parse_options(options: Option<DeviceOptions>) -> Result<Settings, SdkError> {
    let mut policy = PasscodePolicy::default();
    let Some(options) = options else {
        return Ok(Settings::default());
    };
    let options = JsValue::from(options);
    if options.is_undefined() || options.is_null() {
        return Ok(Settings::default());
    }
    let get = |key: &str| Reflect::get(&options, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let min = get("minPasscodeLength");
    if !min.is_undefined() {
        policy.min_length = min
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (6.0..=256.0).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| {
                SdkError::InvalidArgument(
                    "minPasscodeLength must be a whole number from 6 to 256".into(),
                )
            })?;
    }
    let digits = get("digitsOnly");
    if !digits.is_undefined() {
        policy.digits_only = digits
            .as_bool()
            .ok_or_else(|| SdkError::InvalidArgument("digitsOnly must be a boolean".into()))?;
    }
    let flag = |key: &str| {
        let value = get(key);
        if value.is_undefined() {
            Ok(false)
        } else {
            value
                .as_bool()
                .ok_or_else(|| SdkError::InvalidArgument(format!("{key} must be a boolean")))
        }
    };
    Ok(Settings {
        policy,
        passkey: flag("passkey")?,
        recovery: flag("recovery")?,
    })
}

/// Asks the browser to keep this origin's storage (best effort: browsers may still decide).
async fn request_persistence() {
    let navigator =
        Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    let storage = Reflect::get(&navigator, &"storage".into()).unwrap_or(JsValue::UNDEFINED);
    if storage.is_object() {
        let _ = call_async(&storage, "persist", &[]).await;
    }
}

/// This browser profile as a device: its key store and passcode policy.
#[wasm_bindgen]
pub struct WaasDevice {
    store: KeyStore,
    settings: Settings,
}

#[wasm_bindgen]
impl WaasDevice {
    /// Opens the device of the key store `storeName` (default: the origin's `waas-sdk`).
    pub async fn open(
        #[wasm_bindgen(js_name = storeName)] store_name: Option<String>,
        options: Option<DeviceOptions>,
    ) -> Result<WaasDevice, SdkError> {
        let settings = parse_options(options)?;
        let store = KeyStore::open(store_name.as_deref().unwrap_or(DEFAULT_STORE)).await?;
        Ok(Self { store, settings })
    }

    /// Whether this profile has a device.
    #[wasm_bindgen(js_name = isBootstrapped)]
    pub async fn is_bootstrapped(&self) -> Result<bool, SdkError> {
        self.store.is_bootstrapped().await
    }

    /// Creates the device's keys, locked by `passcode`. Resolves `true` when it created them and
    /// `false` when the profile had a device already (then nothing changes: a no-op).
    pub async fn bootstrap(&self, passcode: String) -> Result<bool, SdkError> {
        match self
            .store
            .bootstrap(
                &passcode,
                self.settings.policy,
                self.settings.passkey,
                self.settings.recovery,
            )
            .await
        {
            Ok(_) => {
                request_persistence().await;
                Ok(true)
            }
            Err(SdkError::AlreadyBootstrapped) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Changes the passcode; rejects with `WRONG_PASSCODE` (and changes nothing) if `oldPasscode`
    /// is wrong.
    #[wasm_bindgen(js_name = resetPasscode)]
    pub async fn reset_passcode(
        &self,
        #[wasm_bindgen(js_name = oldPasscode)] old_passcode: String,
        #[wasm_bindgen(js_name = newPasscode)] new_passcode: String,
    ) -> Result<(), SdkError> {
        self.store
            .reset_passcode(&old_passcode, &new_passcode, self.settings.policy)
            .await
    }

    /// Checks a passcode without doing anything else, on a device without a wallet yet. Once the
    /// device holds a wallet its passcode is checked at the server only: use
    /// `WaasClient.checkPasscode` (this refuses with `INVALID_ARGUMENT`).
    #[wasm_bindgen(js_name = checkPasscode)]
    pub async fn check_passcode(&self, passcode: String) -> Result<(), SdkError> {
        if self.store.awaiting_recovery().await? {
            return Err(SdkError::InvalidArgument(
                "this device was set up to recover a wallet: the server checks the passcode during the recovery".into(),
            ));
        }
        self.store
            .unlock(&Unlock::Passcode(passcode))
            .await
            .map(drop)
    }

    /// Whether a passkey can unlock this device's keys.
    #[wasm_bindgen(js_name = hasPasskey)]
    pub async fn has_passkey(&self) -> Result<bool, SdkError> {
        self.store.has_passkey().await
    }

    /// The registration data RegisterDevice takes: the device's public keys and its proofs of
    /// possession, base64url.
    #[wasm_bindgen(js_name = registrationData)]
    pub async fn registration_data(&self) -> Result<String, SdkError> {
        Ok(self.store.public().await?.registration_data)
    }
}

/// Creates this profile's device (keys locked by `passcode`); `false` if it exists already.
#[wasm_bindgen(js_name = bootstrapDevice)]
pub async fn bootstrap_device(
    passcode: String,
    options: Option<DeviceOptions>,
) -> Result<bool, SdkError> {
    WaasDevice::open(None, options)
        .await?
        .bootstrap(passcode)
        .await
}

/// Changes this profile's passcode.
#[wasm_bindgen(js_name = resetPasscode)]
pub async fn reset_passcode(
    #[wasm_bindgen(js_name = oldPasscode)] old_passcode: String,
    #[wasm_bindgen(js_name = newPasscode)] new_passcode: String,
    options: Option<DeviceOptions>,
) -> Result<(), SdkError> {
    WaasDevice::open(None, options)
        .await?
        .reset_passcode(old_passcode, new_passcode)
        .await
}

/// This profile's registration data (see [`WaasDevice::registration_data`]).
#[wasm_bindgen(js_name = getRegistrationData)]
pub async fn get_registration_data() -> Result<String, SdkError> {
    WaasDevice::open(None, None)
        .await?
        .registration_data()
        .await
}
