//! Resource names, as in the WaaS REST API: `pools/{pool}/deviceGroups/{device_group}` and so on.
//!
//! A name is a path of `collection/id` pairs. Each kind of resource has its own type, so a function
//! that wants a device group cannot be handed an operation. Parsing checks the whole shape and every
//! id; a name that parsed is safe to put in a URL path or a database key as it is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a string is not a valid resource name.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The collections or the number of segments do not match the expected form.
    #[error("expected a resource name of the form {expected}")]
    Pattern {
        /// The form that was expected, e.g. `pools/{pool}`.
        expected: &'static str,
    },
    /// The string is not any kind of resource name this API knows.
    #[error("not a known kind of resource name (pools/…, devices/…, operations/…)")]
    UnknownKind,
    /// An id segment is empty (`pools//deviceGroups/g`).
    #[error("a resource id is empty")]
    EmptyId,
    /// An id segment is longer than [`ResourceId::MAX_LEN`].
    #[error("a resource id is longer than {max} characters")]
    IdTooLong {
        /// The limit, [`ResourceId::MAX_LEN`].
        max: usize,
    },
    /// An id has a character other than `a-z`, `0-9` and `-`.
    #[error("resource id {id:?} may only contain a-z, 0-9 and '-'")]
    IdCharacter {
        /// The offending id.
        id: String,
    },
    /// An id starts or ends with `-`.
    #[error("resource id {id:?} must not start or end with '-'")]
    IdHyphen {
        /// The offending id.
        id: String,
    },
}

/// One id segment of a resource name: 1 to 63 characters of `a-z`, `0-9` and `-`, not starting or
/// ending with `-` (so UUIDs fit, and so does anything safe in a URL path without escaping).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 63;

    /// Validates `id` as a resource id.
    pub fn new(id: impl Into<String>) -> Result<Self, NameError> {
        let id = id.into();
        // Length first, so no error message ever echoes an unbounded input.
        if id.is_empty() {
            return Err(NameError::EmptyId);
        }
        if id.len() > Self::MAX_LEN {
            return Err(NameError::IdTooLong { max: Self::MAX_LEN });
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NameError::IdCharacter { id });
        }
        if id.starts_with('-') || id.ends_with('-') {
            return Err(NameError::IdHyphen { id });
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ResourceId {
    type Err = NameError;

    fn from_str(id: &str) -> Result<Self, NameError> {
        Self::new(id)
    }
}

/// Splits `name` into its ids, checking that its collections are exactly `collections`.
fn parse_ids(
    name: &str,
    collections: &[&str],
    expected: &'static str,
) -> Result<Vec<ResourceId>, NameError> {
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() != collections.len() * 2 {
        return Err(NameError::Pattern { expected });
    }
    segments
        .chunks_exact(2)
        .zip(collections)
        .map(|(pair, collection)| match pair {
            [found, id] if found == collection => ResourceId::new(*id),
            _ => Err(NameError::Pattern { expected }),
        })
        .collect()
}

/// Defines a typed resource name from its `collection => id field` pairs.
macro_rules! resource_name {
    (
        $(#[$meta:meta])*
        $Name:ident = $pattern:literal { $($collection:literal => $field:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $Name {
            $($field: ResourceId),+
        }

        impl $Name {
            /// The form of this kind of name, each id shown as `{placeholder}`.
            pub const PATTERN: &'static str = $pattern;
            const COLLECTIONS: &'static [&'static str] = &[$($collection),+];

            /// A name made of ids that are valid already.
            pub fn new($($field: ResourceId),+) -> Self {
                Self { $($field),+ }
            }

            $(
                #[doc = concat!("The id after `", $collection, "/`.")]
                pub fn $field(&self) -> &ResourceId {
                    &self.$field
                }
            )+
        }

        impl FromStr for $Name {
            type Err = NameError;

            fn from_str(name: &str) -> Result<Self, NameError> {
                match parse_ids(name, Self::COLLECTIONS, Self::PATTERN)?.as_slice() {
                    [$($field),+] => Ok(Self { $($field: $field.clone()),+ }),
                    _ => Err(NameError::Pattern { expected: Self::PATTERN }),
                }
            }
        }

        impl fmt::Display for $Name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let pairs = [$([$collection, self.$field.as_str()].join("/")),+];
                f.write_str(&pairs.join("/"))
            }
        }

        impl Serialize for $Name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $Name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

resource_name! {
    /// A pool, the tenant that owns device groups: `pools/{pool}`.
    PoolName = "pools/{pool}" { "pools" => pool }
}

resource_name! {
    /// A device group, one wallet's set of devices: `pools/{pool}/deviceGroups/{device_group}`.
    DeviceGroupName = "pools/{pool}/deviceGroups/{device_group}" {
        "pools" => pool,
        "deviceGroups" => device_group,
    }
}

resource_name! {
    /// An MPC key of a device group: `pools/{pool}/deviceGroups/{device_group}/mpcKeys/{mpc_key}`.
    MpcKeyName = "pools/{pool}/deviceGroups/{device_group}/mpcKeys/{mpc_key}" {
        "pools" => pool,
        "deviceGroups" => device_group,
        "mpcKeys" => mpc_key,
    }
}

resource_name! {
    /// The device's part of an operation, listed by ListMPCOperations:
    /// `pools/{pool}/deviceGroups/{device_group}/mpcOperations/{mpc_operation}`. Its id is the
    /// id of the long-running operation it belongs to.
    MpcOperationName = "pools/{pool}/deviceGroups/{device_group}/mpcOperations/{mpc_operation}" {
        "pools" => pool,
        "deviceGroups" => device_group,
        "mpcOperations" => mpc_operation,
    }
}

resource_name! {
    /// A passcode login of a device group (OPAQUE), good for one use:
    /// `pools/{pool}/deviceGroups/{device_group}/passcodeLogins/{login}`.
    PasscodeLoginName = "pools/{pool}/deviceGroups/{device_group}/passcodeLogins/{login}" {
        "pools" => pool,
        "deviceGroups" => device_group,
        "passcodeLogins" => login,
    }
}

resource_name! {
    /// An MPC wallet, whose addresses derive from one MPC key: `pools/{pool}/mpcWallets/{mpc_wallet}`.
    MpcWalletName = "pools/{pool}/mpcWallets/{mpc_wallet}" {
        "pools" => pool,
        "mpcWallets" => mpc_wallet,
    }
}

resource_name! {
    /// A registered device (one browser profile): `devices/{device}`.
    DeviceName = "devices/{device}" { "devices" => device }
}

resource_name! {
    /// A long-running operation: `operations/{operation}`.
    OperationName = "operations/{operation}" { "operations" => operation }
}

impl DeviceGroupName {
    /// The pool this device group belongs to.
    pub fn pool_name(&self) -> PoolName {
        PoolName::new(self.pool.clone())
    }
}

impl PasscodeLoginName {
    /// The device group the login is of.
    pub fn device_group_name(&self) -> DeviceGroupName {
        DeviceGroupName::new(self.pool.clone(), self.device_group.clone())
    }
}

impl MpcKeyName {
    /// The device group this key belongs to.
    pub fn device_group_name(&self) -> DeviceGroupName {
        DeviceGroupName::new(self.pool.clone(), self.device_group.clone())
    }
}

impl MpcOperationName {
    /// The device group this operation runs on.
    pub fn device_group_name(&self) -> DeviceGroupName {
        DeviceGroupName::new(self.pool.clone(), self.device_group.clone())
    }

    /// The long-running operation this is the device's part of.
    pub fn operation_name(&self) -> OperationName {
        OperationName::new(self.mpc_operation.clone())
    }
}

impl MpcWalletName {
    /// The pool this wallet belongs to.
    pub fn pool_name(&self) -> PoolName {
        PoolName::new(self.pool.clone())
    }
}

/// Any resource name, when the kind is not known in advance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceName {
    /// `pools/{pool}`
    Pool(PoolName),
    /// `pools/{pool}/deviceGroups/{device_group}`
    DeviceGroup(DeviceGroupName),
    /// `pools/{pool}/deviceGroups/{device_group}/mpcKeys/{mpc_key}`
    MpcKey(MpcKeyName),
    /// `pools/{pool}/deviceGroups/{device_group}/mpcOperations/{mpc_operation}`
    MpcOperation(MpcOperationName),
    /// `pools/{pool}/mpcWallets/{mpc_wallet}`
    MpcWallet(MpcWalletName),
    /// `devices/{device}`
    Device(DeviceName),
    /// `operations/{operation}`
    Operation(OperationName),
}

impl ResourceName {
    /// The kind of resource, in the API's camelCase: `pool`, `deviceGroup`, `mpcKey`,
    /// `mpcOperation`, `mpcWallet`, `device` or `operation`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pool(_) => "pool",
            Self::DeviceGroup(_) => "deviceGroup",
            Self::MpcKey(_) => "mpcKey",
            Self::MpcOperation(_) => "mpcOperation",
            Self::MpcWallet(_) => "mpcWallet",
            Self::Device(_) => "device",
            Self::Operation(_) => "operation",
        }
    }

    /// The resource's own id: the name's last segment.
    pub fn id(&self) -> &ResourceId {
        match self {
            Self::Pool(name) => name.pool(),
            Self::DeviceGroup(name) => name.device_group(),
            Self::MpcKey(name) => name.mpc_key(),
            Self::MpcOperation(name) => name.mpc_operation(),
            Self::MpcWallet(name) => name.mpc_wallet(),
            Self::Device(name) => name.device(),
            Self::Operation(name) => name.operation(),
        }
    }

    /// The pool id, for the names under `pools/`.
    pub fn pool(&self) -> Option<&ResourceId> {
        match self {
            Self::Pool(name) => Some(name.pool()),
            Self::DeviceGroup(name) => Some(name.pool()),
            Self::MpcKey(name) => Some(name.pool()),
            Self::MpcOperation(name) => Some(name.pool()),
            Self::MpcWallet(name) => Some(name.pool()),
            Self::Device(_) | Self::Operation(_) => None,
        }
    }

    /// The device group id, for device groups and their MPC keys.
    pub fn device_group(&self) -> Option<&ResourceId> {
        match self {
            Self::DeviceGroup(name) => Some(name.device_group()),
            Self::MpcKey(name) => Some(name.device_group()),
            Self::MpcOperation(name) => Some(name.device_group()),
            _ => None,
        }
    }
}

impl FromStr for ResourceName {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, NameError> {
        // The collections sit at the even positions; they alone decide the kind.
        let collections: Vec<&str> = name.split('/').step_by(2).collect();
        Ok(match collections.as_slice() {
            ["pools"] => Self::Pool(name.parse()?),
            ["pools", "deviceGroups"] => Self::DeviceGroup(name.parse()?),
            ["pools", "deviceGroups", "mpcKeys"] => Self::MpcKey(name.parse()?),
            ["pools", "deviceGroups", "mpcOperations"] => Self::MpcOperation(name.parse()?),
            ["pools", "mpcWallets"] => Self::MpcWallet(name.parse()?),
            ["devices"] => Self::Device(name.parse()?),
            ["operations"] => Self::Operation(name.parse()?),
            _ => return Err(NameError::UnknownKind),
        })
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pool(name) => name.fmt(f),
            Self::DeviceGroup(name) => name.fmt(f),
            Self::MpcKey(name) => name.fmt(f),
            Self::MpcOperation(name) => name.fmt(f),
            Self::MpcWallet(name) => name.fmt(f),
            Self::Device(name) => name.fmt(f),
            Self::Operation(name) => name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> ResourceId {
        ResourceId::new(s).unwrap()
    }

    #[test]
    fn good_names_parse_and_print_back() {
        let group: DeviceGroupName = "pools/default/deviceGroups/3f2a-9c".parse().unwrap();
        assert_eq!(group.pool(), &id("default"));
        assert_eq!(group.device_group(), &id("3f2a-9c"));
        assert_eq!(group.to_string(), "pools/default/deviceGroups/3f2a-9c");
        assert_eq!(group.pool_name().to_string(), "pools/default");

        let key: MpcKeyName = "pools/p/deviceGroups/g/mpcKeys/k1".parse().unwrap();
        assert_eq!(key.mpc_key(), &id("k1"));
        assert_eq!(
            key.device_group_name().to_string(),
            "pools/p/deviceGroups/g"
        );

        let uuid = "devices/0b0e9d7e-5c1f-4c4e-8a51-1f1f4b7c2a90";
        assert_eq!(uuid.parse::<DeviceName>().unwrap().to_string(), uuid);
        assert_eq!(
            "operations/op-1"
                .parse::<OperationName>()
                .unwrap()
                .operation(),
            &id("op-1")
        );
        let wallet: MpcWalletName = "pools/p/mpcWallets/w".parse().unwrap();
        assert_eq!(wallet.pool_name(), PoolName::new(id("p")));
    }

    #[test]
    fn wrong_shapes_are_rejected_with_the_expected_form() {
        let pattern = Err(NameError::Pattern {
            expected: DeviceGroupName::PATTERN,
        });
        for bad in [
            "",
            "pools/p",
            "pools/p/deviceGroups",
            "pools/p/deviceGroups/g/",
            "/pools/p/deviceGroups/g",
            "pools/p/devicegroups/g",
            "pools/p/mpcWallets/g",
            "pools/p/deviceGroups/g/mpcKeys/k",
        ] {
            assert_eq!(bad.parse::<DeviceGroupName>(), pattern, "{bad:?}");
        }
    }

    #[test]
    fn bad_ids_are_rejected_with_the_reason() {
        assert_eq!("pools/".parse::<PoolName>(), Err(NameError::EmptyId));
        assert_eq!(
            "pools/Default".parse::<PoolName>(),
            Err(NameError::IdCharacter {
                id: "Default".into()
            })
        );
        assert_eq!(
            "pools/a_b".parse::<PoolName>(),
            Err(NameError::IdCharacter { id: "a_b".into() })
        );
        assert_eq!(
            "pools/%2e%2e".parse::<PoolName>(),
            Err(NameError::IdCharacter {
                id: "%2e%2e".into()
            })
        );
        assert_eq!(
            "pools/-p".parse::<PoolName>(),
            Err(NameError::IdHyphen { id: "-p".into() })
        );
        assert_eq!(
            format!("pools/{}", "a".repeat(64)).parse::<PoolName>(),
            Err(NameError::IdTooLong { max: 63 })
        );
        assert!(
            format!("pools/{}", "a".repeat(63))
                .parse::<PoolName>()
                .is_ok()
        );
        assert_eq!(
            "pools/ü".parse::<PoolName>(),
            Err(NameError::IdCharacter { id: "ü".into() })
        );
    }

    #[test]
    fn any_name_parses_to_its_kind() {
        for (name, kind) in [
            ("pools/p", "pool"),
            ("pools/p/deviceGroups/g", "deviceGroup"),
            ("pools/p/deviceGroups/g/mpcKeys/k", "mpcKey"),
            ("pools/p/deviceGroups/g/mpcOperations/o", "mpcOperation"),
            ("pools/p/mpcWallets/w", "mpcWallet"),
            ("devices/d", "device"),
            ("operations/o", "operation"),
        ] {
            let parsed: ResourceName = name.parse().unwrap();
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.id().as_str(), name.rsplit('/').next().unwrap());
            assert_eq!(parsed.pool().is_some(), name.starts_with("pools/"));
            assert_eq!(
                parsed.device_group().is_some(),
                name.contains("/deviceGroups/")
            );
            assert_eq!(parsed.to_string(), name);
        }
        for bad in ["", "wallets/w", "pools/p/keys/k", "devices/d/extra"] {
            assert_eq!(
                bad.parse::<ResourceName>(),
                Err(NameError::UnknownKind),
                "{bad:?}"
            );
        }
        assert_eq!(
            "devices/D".parse::<ResourceName>(),
            Err(NameError::IdCharacter { id: "D".into() })
        );
    }

    #[test]
    fn names_are_json_strings() {
        let name: MpcKeyName = "pools/p/deviceGroups/g/mpcKeys/k".parse().unwrap();
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""pools/p/deviceGroups/g/mpcKeys/k""#);
        assert_eq!(serde_json::from_str::<MpcKeyName>(&json).unwrap(), name);
        let err = serde_json::from_str::<MpcKeyName>(r#""pools/p""#).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a resource name of the form")
        );
    }

    const ID: &str = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";

    proptest! {
        #[test]
        fn valid_names_round_trip(pool in ID, group in ID, key in ID) {
            let name = format!("pools/{pool}/deviceGroups/{group}/mpcKeys/{key}");
            let parsed: MpcKeyName = name.parse().unwrap();
            prop_assert_eq!(parsed.to_string(), name.clone());
            prop_assert_eq!(name.parse::<ResourceName>().unwrap(), ResourceName::MpcKey(parsed));
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,200}") {
            let _ = input.parse::<ResourceName>();
            let _ = input.parse::<DeviceGroupName>();
        }

        #[test]
        fn ids_with_a_foreign_character_are_rejected(
            prefix in "[a-z0-9]{1,10}",
            bad in "[^a-z0-9/-]",
        ) {
            let name = format!("devices/{prefix}{bad}");
            let is_id_character_error =
                matches!(name.parse::<DeviceName>(), Err(NameError::IdCharacter { .. }));
            let too_long = prefix.len() + bad.len() > ResourceId::MAX_LEN;
            prop_assert!(is_id_character_error || too_long);
        }
    }
}
