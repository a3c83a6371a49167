//! REST resource types shared by the browser SDK and the reference server.
//!
//! Everything here is plain data: resource names and their validation ([`names`]), the JSON error
//! body every failed request returns ([`error`]) and the version document ([`version`]). No I/O and
//! no cryptography: both sides depend on this crate so that they agree on the wire by construction.

pub mod error;
pub mod names;
pub mod version;

pub use error::{ErrorBody, ErrorCode};
pub use names::{
    DeviceGroupName, DeviceName, MpcKeyName, MpcWalletName, NameError, OperationName, PoolName,
    ResourceId, ResourceName,
};
pub use version::{API_VERSION, VersionInfo};
