//! Persistence behind one trait, [`Store`], so a PostgreSQL backend can follow without touching
//! the services or the handlers. [`SqliteStore`] is the embedded default.
//!
//! The store holds what it is given: secrets arrive sealed (`*_sealed`, see `sealing.rs`) and
//! the store never sees a key. Every method is one transaction.

mod sqlite;

use std::future::Future;

use thiserror::Error;
use waas_api::resources::DeviceState;
use waas_api::{DeviceGroupName, DeviceName, MpcKeyName, MpcWalletName, OperationName, PoolName};

pub use sqlite::SqliteStore;

/// The pool every fresh server has, so the demo works without an operator step.
pub const DEFAULT_POOL: &str = "pools/default";

/// Why the store failed. The details go to the log, never to a client.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or the query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value does not parse: a bug or a damaged database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A pool as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRecord {
    /// `pools/{pool}`.
    pub name: PoolName,
    /// A name for people.
    pub display_name: String,
    /// When it was created, Unix milliseconds.
    pub create_time_ms: i64,
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// `devices/{id}`.
    pub name: DeviceName,
    /// P-256, uncompressed SEC1: verifies the device's request tokens.
    pub auth_public_key: Vec<u8>,
    /// secp256k1, compressed SEC1.
    pub archive_public_key: Vec<u8>,
    /// Active or revoked.
    pub state: DeviceState,
    /// Unix milliseconds.
    pub create_time_ms: i64,
}

/// Where a device group is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Key generation has not been confirmed by the device yet.
    Creating,
    /// It has a key and can sign.
    Active,
}

/// A device group as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// `pools/{pool}/deviceGroups/{id}`.
    pub name: DeviceGroupName,
    /// Creating or active.
    pub state: GroupState,
    /// X, compressed SEC1, once key generation has run.
    pub root_public_key: Option<Vec<u8>>,
    /// The chain code, sealed, once key generation has run.
    pub chain_code_sealed: Option<Vec<u8>>,
    /// Its devices.
    pub devices: Vec<DeviceName>,
}

/// An MPC wallet as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletRecord {
    /// `pools/{pool}/mpcWallets/{id}`.
    pub name: MpcWalletName,
    /// Its device group.
    pub device_group: DeviceGroupName,
    /// Unix milliseconds.
    pub create_time_ms: i64,
}

/// An MPC key: a child of its group's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// `…/mpcKeys/{id}`.
    pub name: MpcKeyName,
    /// E.g. `0/3`.
    pub derivation_path: String,
    /// Compressed SEC1.
    pub public_key: Vec<u8>,
    /// EIP-55.
    pub address: String,
}

/// An address of a wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRecord {
    /// EIP-55.
    pub address: String,
    /// `networks/{network}`.
    pub network: String,
    /// Its wallet.
    pub mpc_wallet: MpcWalletName,
    /// Its key.
    pub key: KeyRecord,
}

/// The server's half of one device's pairing at one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingRecord {
    /// Pending, confirmed or retired.
    pub state: PairingState,
    /// The pairing's public id.
    pub pairing_id: Vec<u8>,
    /// `waas_mpc::Pairing` bytes, sealed.
    pub pairing_sealed: Vec<u8>,
}

/// Whether a pairing may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairingState {
    /// The server has it; the device has not yet said it has its half.
    Pending,
    /// Both sides have it: it signs.
    Confirmed,
    /// A signing session with it failed a check: the engine forbids using it again.
    Retired,
}

/// What kind of protocol an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// Key generation for a new device group (CreateMPCWallet).
    CreateDeviceGroup,
    /// CreateSignature.
    CreateSignature,
}

/// Where an operation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationState {
    /// Created; the device has not sent its first message.
    Pending,
    /// Messages are being exchanged.
    Running,
    /// Finished with a response.
    Done,
    /// Finished with an error.
    Failed,
}

impl OperationState {
    /// Whether the operation has finished.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A new operation.
#[derive(Clone, Debug)]
pub struct NewOperation {
    /// `operations/{id}`.
    pub name: OperationName,
    /// Its protocol.
    pub kind: OperationKind,
    /// The group it runs on.
    pub device_group: DeviceGroupName,
    /// The device that computes the other side.
    pub device: DeviceName,
    /// The pairing epoch.
    pub epoch: u64,
    /// `waas_api::resources::OperationMetadata`, JSON.
    pub metadata: String,
    /// Protocol inputs, JSON.
    pub params: String,
    /// Who asked for it.
    pub creator: String,
    /// The caller's idempotency key.
    pub request_id: Option<String>,
    /// A hash of the request made under `request_id`, so the same id for another request is caught.
    pub request_hash: Vec<u8>,
}

/// An operation as stored.
#[derive(Clone, Debug)]
pub struct OperationRecord {
    /// `operations/{id}`.
    pub name: OperationName,
    /// Its protocol.
    pub kind: OperationKind,
    /// The group it runs on.
    pub device_group: DeviceGroupName,
    /// The device that computes the other side.
    pub device: DeviceName,
    /// The pairing epoch.
    pub epoch: u64,
    /// Its state.
    pub state: OperationState,
    /// The last device round answered (0: none yet).
    pub round: u8,
    /// The hash of that round's input.
    pub input_hash: Option<Vec<u8>>,
    /// That round's answer, JSON.
    pub reply: Option<String>,
    /// The server's MPC session, sealed, between rounds.
    pub session_sealed: Option<Vec<u8>>,
    /// `OperationMetadata`, JSON.
    pub metadata: String,
    /// Protocol inputs, JSON.
    pub params: String,
    /// `OperationResponse`, JSON, once done.
    pub response: Option<String>,
    /// `ErrorBody`, JSON, once failed.
    pub error: Option<String>,
    /// The hash of the request that created it (see [`NewOperation::request_hash`]).
    pub request_hash: Option<Vec<u8>>,
    /// Unix milliseconds.
    pub create_time_ms: i64,
    /// When it last changed (the last exchange step), Unix milliseconds.
    pub update_time_ms: i64,
}

/// What one exchange step writes, all or nothing.
#[derive(Clone, Debug)]
pub struct StepUpdate {
    /// The device round now answered.
    pub round: u8,
    /// Its input's hash.
    pub input_hash: Vec<u8>,
    /// Its answer, JSON; `None` when the step ended the operation with an error.
    pub reply: Option<String>,
    /// The session to resume from, sealed; `None` once the protocol is over (the old one is deleted).
    pub session_sealed: Option<Vec<u8>>,
    /// The operation's new state.
    pub state: OperationState,
    /// The response, when it is done.
    pub response: Option<String>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// What else the step changes.
    pub effect: StepEffect,
}

/// The side effects of an exchange step on the rest of the database.
#[derive(Clone, Debug)]
pub enum StepEffect {
    /// None.
    None,
    /// Key generation produced the server's half: store it, pending the device's confirmation.
    KeygenFinished {
        /// The pairing id.
        pairing_id: Vec<u8>,
        /// The pairing, sealed.
        pairing_sealed: Vec<u8>,
        /// X, compressed.
        root_public_key: Vec<u8>,
        /// The chain code, sealed.
        chain_code_sealed: Vec<u8>,
    },
    /// The device confirmed it holds its half: the pairing is confirmed and the group active.
    KeygenConfirmed,
    /// The peer failed a check: the pairing is retired, and every other open operation on it
    /// fails in the same transaction (so no concurrent step on it can commit, or be sent, after).
    RetirePairing,
}

/// A wallet with its new device group and key-generation operation.
#[derive(Clone, Debug)]
pub struct NewWallet {
    /// The wallet.
    pub wallet: MpcWalletName,
    /// The key-generation operation (its group and device are the new group's).
    pub operation: NewOperation,
}

/// The outcome of a create call that takes a request id.
#[derive(Clone, Debug)]
pub enum Created<T> {
    /// Created now.
    New(T),
    /// The same caller sent the same request id before: what that call created.
    Existing(T),
}

impl<T> Created<T> {
    /// The record, new or not.
    pub fn into_inner(self) -> T {
        match self {
            Self::New(value) | Self::Existing(value) => value,
        }
    }
}

/// The server's database. Cheap to clone; every method is one transaction.
pub trait Store: Clone + Send + Sync + 'static {
    /// Answers whether the database is reachable (for `/healthz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Waits for open connections and closes the database.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// A pool.
    fn pool(
        &self,
        name: &PoolName,
    ) -> impl Future<Output = Result<Option<PoolRecord>, StoreError>> + Send;
    /// Creates a pool; `false` if one of that name exists.
    fn create_pool(
        &self,
        pool: &PoolRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Registers a device, or returns the one registered with the same auth key.
    fn put_device(
        &self,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<DeviceRecord, StoreError>> + Send;
    /// A device.
    fn device(
        &self,
        name: &DeviceName,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, StoreError>> + Send;

    /// Adds or replaces an API key's public key.
    fn put_api_key(
        &self,
        name: &str,
        public_key: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes an API key (its tokens are refused from then on).
    fn remove_api_key(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An API key's public key.
    fn api_key(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Records a request token's id; `false` if it was used before. Forgets ids expired before
    /// `forget_before_ms`.
    fn use_token(
        &self,
        subject: &str,
        jti: &str,
        expires_ms: i64,
        forget_before_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a wallet, its device group (with the operation's device as its one member) and
    /// its key-generation operation; or, for a repeated request id, returns that operation.
    fn create_wallet(
        &self,
        wallet: &NewWallet,
    ) -> impl Future<Output = Result<Created<OperationRecord>, StoreError>> + Send;
    /// A wallet.
    fn wallet(
        &self,
        name: &MpcWalletName,
    ) -> impl Future<Output = Result<Option<WalletRecord>, StoreError>> + Send;
    /// A device group with its devices.
    fn device_group(
        &self,
        name: &DeviceGroupName,
    ) -> impl Future<Output = Result<Option<GroupRecord>, StoreError>> + Send;
    /// Whether `device` belongs to `group`.
    fn is_member(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The server's half of a device's pairing at an epoch.
    fn pairing(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        epoch: u64,
    ) -> impl Future<Output = Result<Option<PairingRecord>, StoreError>> + Send;
    /// The newest confirmed epoch of a device's pairing.
    fn confirmed_epoch(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Adds a key, or returns the group's key with the same derivation path.
    fn put_key(
        &self,
        group: &DeviceGroupName,
        key: &KeyRecord,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;
    /// A key.
    fn key(
        &self,
        name: &MpcKeyName,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;
    /// Adds the wallet's next address, `make(index)`, and its key if the group does not have it
    /// yet, taking the index in the same transaction (so concurrent calls get consecutive indices
    /// and a failed call leaves no gap).
    fn add_next_address<E: From<StoreError> + Send>(
        &self,
        group: &DeviceGroupName,
        wallet: &MpcWalletName,
        make: impl FnOnce(u32) -> Result<AddressRecord, E> + Send,
    ) -> impl Future<Output = Result<AddressRecord, E>> + Send;
    /// A wallet's addresses, oldest first.
    fn addresses(
        &self,
        wallet: &MpcWalletName,
    ) -> impl Future<Output = Result<Vec<AddressRecord>, StoreError>> + Send;
    /// One address of a wallet (EIP-55 form).
    fn address(
        &self,
        wallet: &MpcWalletName,
        address: &str,
    ) -> impl Future<Output = Result<Option<AddressRecord>, StoreError>> + Send;

    /// Creates an operation; or, for a repeated request id, returns that operation.
    fn create_operation(
        &self,
        operation: &NewOperation,
    ) -> impl Future<Output = Result<Created<OperationRecord>, StoreError>> + Send;
    /// An operation.
    fn operation(
        &self,
        name: &OperationName,
    ) -> impl Future<Output = Result<Option<OperationRecord>, StoreError>> + Send;
    /// A device's unfinished operations on a group, oldest first.
    fn open_operations(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> impl Future<Output = Result<Vec<OperationRecord>, StoreError>> + Send;
    /// Fails every open operation created before `created_before_ms` or idle since before
    /// `idle_before_ms`, deleting their sessions (and the unconfirmed pairing of a key generation);
    /// returns how many.
    fn expire_operations(
        &self,
        created_before_ms: i64,
        idle_before_ms: i64,
        error: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Writes one exchange step if the operation is still at `from_round` (compare and swap);
    /// `false` if another step got there first, and then nothing is written.
    fn commit_step(
        &self,
        name: &OperationName,
        from_round: u8,
        step: &StepUpdate,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
