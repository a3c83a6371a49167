//! REST resource types shared by the browser SDK and the reference server.
//!
//! Everything here is plain data: resource names and their validation ([`names`]), the JSON
//! resources and requests ([`resources`]), the device registration format ([`registration`]),
//! the claims of request tokens ([`auth`]), the JSON error body every failed request returns
//! ([`error`]) and the version document ([`version`]). No I/O and no cryptography: both sides
//! depend on this crate so that they agree on the wire by construction.

pub mod auth;
pub mod error;
pub mod export;
pub mod names;
pub mod passcode;
pub mod registration;
pub mod resources;
mod tagged;
pub mod version;

pub use error::{ErrorBody, ErrorCode};
pub use names::{
    DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName, MpcWalletName, NameError,
    OperationName, PasscodeLoginName, PoolName, ResourceId, ResourceName,
};
pub use registration::{RegistrationData, RegistrationError};
pub use version::{API_VERSION, VersionInfo};
