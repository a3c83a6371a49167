//! What the server does, apart from HTTP: each public method is one API call, given the caller
//! and its parsed request, returning the API resource. Handlers only parse and call.

mod archive;
mod backup;
mod devices;
mod exchange;
mod operations;
mod passcode;
mod recovery;
mod wallets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use waas_api::{DeviceGroupName, DeviceName};
use waas_mpc::passcode::ServerKeys;

use crate::auth::Principal;
use crate::sealing::MasterKey;
use crate::store::{Created, OperationRecord, Store};
use crate::{ApiError, ServerError};

/// What the services take from the flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The audience request tokens must name (`--audience`). Not the OPAQUE server identity (that
    /// is the server's OPAQUE public key), so changing it leaves passcode records valid.
    pub audience: String,
    /// The base of the passcode backoff (`--passcode-backoff`).
    pub passcode_backoff: Duration,
    /// How long a replaced backup still recovers the wallet before the sweep deletes it
    /// (`--backup-retention`).
    pub backup_retention: Duration,
}

/// `--backup-retention`'s default: a week for a user to notice a stolen device and revoke it
/// (which brings back the backup a thief's replaced), and to save a new backup string.
pub(crate) const DEFAULT_BACKUP_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for Settings {
    fn default() -> Self {
        Self {
            audience: "waas-server".into(),
            passcode_backoff: Duration::from_secs(1),
            backup_retention: DEFAULT_BACKUP_RETENTION,
        }
    }
}

/// The server's state, shared by every request: the store, the master key and the settings.
#[derive(Clone)]
pub struct Services<S> {
    store: S,
    master_key: Arc<MasterKey>,
    audience: Arc<str>,
    passcode_keys: Arc<ServerKeys>,
    passcode_backoff: Duration,
    backup_retention: Duration,
    operation_locks: OperationLocks,
}

impl<S: Store> Services<S> {
    /// Services over `store`, sealing secrets with `master_key`. Loads the server's OPAQUE keys,
    /// making and storing them (sealed) on the first start.
    pub async fn open(
        store: S,
        master_key: MasterKey,
        settings: Settings,
    ) -> Result<Self, ServerError> {
        let passcode_keys = passcode::server_keys(&store, &master_key).await?;
        Ok(Self {
            store,
            master_key: Arc::new(master_key),
            audience: settings.audience.into(),
            passcode_keys: Arc::new(passcode_keys),
            passcode_backoff: settings.passcode_backoff,
            backup_retention: settings.backup_retention,
            operation_locks: OperationLocks::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The audience request tokens must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Refuses unless the caller is an API key or a device of `group`.
    async fn ensure_can_read(
        &self,
        caller: &Principal,
        group: &DeviceGroupName,
    ) -> Result<(), ApiError> {
        match caller {
            Principal::ApiKey(_) => Ok(()),
            Principal::Device(device) => {
                if self.store.is_member(group, device).await? {
                    Ok(())
                } else {
                    Err(ApiError::denied(format!(
                        "{device} is not a device of {group}"
                    )))
                }
            }
        }
    }
}

/// Refuses unless the caller is `device` itself or an API key.
fn ensure_acts_for(caller: &Principal, device: &DeviceName) -> Result<(), ApiError> {
    match caller {
        Principal::ApiKey(_) => Ok(()),
        Principal::Device(caller) if caller == device => Ok(()),
        Principal::Device(caller) => Err(ApiError::denied(format!(
            "{caller} may not act for {device}"
        ))),
    }
}

/// Refuses a `requestId` outside [`waas_api::resources::is_valid_request_id`], before anything
/// is read or stored: PostgreSQL's unique index on the id takes no more than about 2.7 KB, and
/// a body may hold a megabyte.
fn check_request_id(request_id: Option<&str>) -> Result<(), ApiError> {
    match request_id {
        Some(id) if !waas_api::resources::is_valid_request_id(id) => {
            Err(ApiError::invalid(format!(
                "requestId must be 1 to {} printable ASCII characters",
                waas_api::resources::MAX_REQUEST_ID_LEN
            )))
        }
        _ => Ok(()),
    }
}

/// What a create call asked for, hashed: stored with its request id, so that the same id sent
/// with another request is refused instead of answered with the first request's operation.
fn request_hash(parts: &[&str]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"waas-sdk request\0");
    for part in parts {
        hash.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().to_vec()
}

/// The operation a create call made, or the one an earlier call with the same request id made,
/// if that call asked for the same thing.
fn same_request(
    created: Created<OperationRecord>,
    request_hash: &[u8],
) -> Result<OperationRecord, ApiError> {
    match created {
        Created::New(record) => Ok(record),
        Created::Existing(record) if record.request_hash.as_deref() == Some(request_hash) => {
            Ok(record)
        }
        Created::Existing(_) => Err(ApiError::invalid(
            "this requestId was used before for another request",
        )),
    }
}

/// `0x`-prefixed lower-case hex.
fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Parses `0x`-prefixed hex of exactly `N` bytes.
fn parse_hex0x<const N: usize>(text: &str, what: &str) -> Result<[u8; N], ApiError> {
    let bad = || ApiError::invalid(format!("{what} must be 0x and {} hex digits", 2 * N));
    let digits = text.strip_prefix("0x").ok_or_else(bad)?;
    let mut bytes = [0u8; N];
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| bad())?;
    Ok(bytes)
}

/// One async mutex per operation being exchanged in this process, so two copies of one request
/// wait for each other and the second gets the first one's stored answer. Across processes the
/// store's compare-and-swap on (operation, round) is what keeps a round from being answered twice.
#[derive(Clone, Default)]
struct OperationLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl OperationLocks {
    async fn lock(&self, key: &str) -> OperationGuard {
        let lock = match self.locks.lock() {
            Ok(mut locks) => locks.entry(key.to_owned()).or_default().clone(),
            // A panic elsewhere poisoned the map: go on without this process's lock; the store's
            // compare-and-swap still keeps each round single.
            Err(_) => Arc::default(),
        };
        let guard = lock.clone().lock_owned().await;
        OperationGuard {
            locks: self.locks.clone(),
            key: key.to_owned(),
            lock,
            _guard: guard,
        }
    }
}

struct OperationGuard {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        // Forget the lock when nobody else holds or waits for it (the map, this guard's two
        // handles: the entry, `lock` and the one inside the owned guard).
        if let Ok(mut locks) = self.locks.lock()
            && Arc::strong_count(&self.lock) <= 3
        {
            locks.remove(&self.key);
        }
    }
}
