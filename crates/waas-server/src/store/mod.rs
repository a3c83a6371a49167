//! Persistence behind one trait, [`Store`], with two backends the services and handlers cannot
//! tell apart: [`SqliteStore`], the embedded default, and [`PostgresStore`], for replicas
//! sharing one database. They share their SQL (`sql.rs`) and their reading of rows (`rows.rs`).
//!
//! The store holds what it is given: secrets arrive sealed (`*_sealed`, see `sealing.rs`) and
//! the store never sees a key. Every method is one transaction.

mod postgres;
mod rows;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod transient;

use std::future::Future;

use thiserror::Error;
use waas_api::resources::{DeviceGroupEventType, DeviceState};
use waas_api::{
    DeviceGroupName, DeviceName, MpcKeyName, MpcOperationName, MpcWalletName, OperationName,
    PasscodeLoginName, PoolName,
};

pub use postgres::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, PgSettings, PostgresStore, is_postgres_url,
};
pub use sqlite::SqliteStore;
pub use transient::is_transient;

/// The pool every fresh server has, so the demo works without an operator step.
pub const DEFAULT_POOL: &str = "pools/default";

/// Why the store failed. The details go to the log, never to a client.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database is out of reach or refused for a while (a lost connection, a restart, a
    /// serialization failure, no free connection in time: see [`is_transient`]). The
    /// transaction did not happen as a whole, so the same request may be sent again
    /// (`UNAVAILABLE`).
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The database refused a statement or answered what this server cannot read: a bug or a
    /// damaged database, which sending again would not change.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// A stored value does not parse: a bug or a damaged database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
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
    /// Whether devices may take the whole key out (PrepareDeviceArchive). Fixed at creation.
    pub export_enabled: bool,
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
    /// PrepareDeviceArchive: the server's share sealed to one device (docs/protocol/archive.md).
    PrepareDeviceArchive,
    /// PrepareDeviceBackup: both halves of one device's pairing encrypted to a 2-of-2 decryption
    /// key (docs/protocol/backup.md).
    PrepareDeviceBackup,
    /// AddDevice: a new device joins a group with a backup and the passcode
    /// (docs/protocol/recovery.md). Its epoch is the backed-up pairing's; the new device's
    /// pairing is made at [`waas_mpc::RESTORED_EPOCH`] + 1.
    AddDevice,
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
    /// The device confirmed it holds its half: the pairing is confirmed and the group active;
    /// with export on, the device's PrepareDeviceArchive operation is queued in the same commit.
    KeygenConfirmed {
        /// The archive operation to create, if the pool has export on.
        archive: Option<NewOperation>,
    },
    /// A device archive's round 1: the passcode login it names is used up in the same commit,
    /// which then happens only if the login is still finished, unused and fresh.
    UseLogin(LoginUse),
    /// A backup's round 5: the device's dry run passed, so this backup becomes its group's
    /// current one, and the group's other current backups are marked replaced by it in the same
    /// commit (kept for the retention period, then swept: see [`Store::forget_replaced_backups`]).
    BackupVerified(NewBackup),
    /// The peer failed a check: the pairing is retired, and every other open operation on it
    /// fails in the same transaction (so no concurrent step on it can commit, or be sent, after).
    RetirePairing,
    /// AddDevice's round 1, once the device's partial proved it holds the backup: one failed
    /// recovery attempt is counted for the operation's backup (locked when that makes
    /// `max_failures`), on the condition that the backup is still stored, its attempts are still
    /// `seen` (what the lock and backoff were checked on) and the group's passcode record still
    /// at `record_version`.
    RecoveryAttempt {
        /// The backup the recovery opens: the attempts are its own (a string locks only itself).
        backup: MpcOperationName,
        /// The backup's attempts as read when the step was checked.
        seen: Attempts,
        /// The passcode record version the login was started against.
        record_version: u64,
        /// When the attempt is made, Unix milliseconds.
        now_ms: i64,
        /// The failures that lock recovery.
        max_failures: u32,
    },
    /// AddDevice's round 3 with the right passcode: the backup's recovery failures go back to 0
    /// if they are below `max_failures` and not locked (only the operator lifts a lock); on the
    /// condition that the group's passcode record is still at `record_version`.
    RecoveryLoggedIn {
        /// The backup the recovery opens.
        backup: MpcOperationName,
        /// The passcode record version the login was made with.
        record_version: u64,
        /// The failures that lock recovery.
        max_failures: u32,
    },
    /// AddDevice's round 7: the new device's pairing, stored PENDING at `epoch` until the
    /// device confirms it, marked as this operation's; on the condition that the group's
    /// passcode record is still at `record_version` and the device has no pairing at that epoch
    /// in the group yet.
    RecoveredPairing {
        /// The passcode record version the recovery logged in with.
        record_version: u64,
        /// The new pairing's epoch.
        epoch: u64,
        /// The pairing id.
        pairing_id: Vec<u8>,
        /// The pairing, sealed.
        pairing_sealed: Vec<u8>,
    },
    /// AddDevice's round 9: the pending pairing at `epoch` is confirmed, the device becomes a
    /// device of the group, a `DEVICE_ADDED` event is recorded and, with export on, the
    /// device's PrepareDeviceArchive is queued; on the condition that the group's passcode
    /// record is still at `record_version` and the pairing still pending and this operation's
    /// (its round 7 made it).
    DeviceAdded {
        /// The passcode record version the recovery logged in with.
        record_version: u64,
        /// The new pairing's epoch.
        epoch: u64,
        /// The archive operation to create, if the pool has export on.
        archive: Option<NewOperation>,
    },
}

/// One change of a group's devices, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEventRecord {
    /// What happened.
    pub kind: DeviceGroupEventType,
    /// The device it happened to.
    pub device: DeviceName,
    /// The operation that did it, if any.
    pub operation: Option<OperationName>,
    /// When, Unix milliseconds.
    pub time_ms: i64,
}

/// A verified backup, as stored (its group, device and epoch are its operation's).
#[derive(Clone)]
pub struct NewBackup {
    /// The backup's id: its PrepareDeviceBackup's MPC operation name.
    pub backup: MpcOperationName,
    /// The pairing backed up.
    pub pairing_id: Vec<u8>,
    /// d_srv, sealed.
    pub decryption_share_sealed: Vec<u8>,
    /// P_dev, compressed.
    pub device_key_share: Vec<u8>,
    /// P_srv, compressed.
    pub server_key_share: Vec<u8>,
    /// ct_x.
    pub device_ciphertext: Vec<u8>,
    /// ct_s.
    pub server_ciphertext: Vec<u8>,
}

impl std::fmt::Debug for NewBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only sealed or public bytes, but a log has no use for them.
        f.debug_struct("NewBackup")
            .field("backup", &self.backup)
            .finish_non_exhaustive()
    }
}

/// A backup as stored: what round 5 made, whose it is, and whether a newer one replaced it.
#[derive(Clone)]
pub struct BackupRecord {
    /// Its group.
    pub device_group: DeviceGroupName,
    /// The device that made it.
    pub device: DeviceName,
    /// The epoch of the pairing backed up.
    pub epoch: u64,
    /// Its id and what it holds (d_srv still sealed).
    pub material: NewBackup,
    /// When round 5 stored it, Unix milliseconds.
    pub create_time_ms: i64,
    /// When a newer backup of the group replaced it (`None`: it is current), Unix milliseconds.
    pub replaced_time_ms: Option<i64>,
    /// What replaced it (`None`: it is current).
    pub replaced_by: Option<Replacement>,
}

/// What replaced a backup (`backups.replaced_by`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// A newer backup of the group (its id), made current by its round 5.
    Backup(MpcOperationName),
    /// A passcode reset (the login that authorized it: `…/passcodeLogins/{id}`), which retired
    /// the backups made by revoked devices of the group (a thief's strings).
    PasscodeReset(PasscodeLoginName),
}

impl std::fmt::Display for Replacement {
    /// As stored: the backup's id, or the reset's login.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Backup(backup) => backup.fmt(f),
            Self::PasscodeReset(login) => login.fmt(f),
        }
    }
}

impl std::fmt::Debug for BackupRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As for `NewBackup`: the names and times only.
        f.debug_struct("BackupRecord")
            .field("backup", &self.material.backup)
            .field("device", &self.device)
            .field("epoch", &self.epoch)
            .field("create_time_ms", &self.create_time_ms)
            .field("replaced_time_ms", &self.replaced_time_ms)
            .field("replaced_by", &self.replaced_by)
            .finish_non_exhaustive()
    }
}

/// What [`Store::commit_step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The step is written.
    Yes,
    /// Another step got there first (the operation is no longer at the round read): nothing
    /// is written.
    RoundTaken,
    /// The step's condition no longer holds (its login was used, revoked or expired meanwhile;
    /// for AddDevice, see each [`StepEffect`]'s condition): nothing is written.
    ConditionFailed,
    /// The operation's device was revoked: nothing is written.
    DeviceRevoked,
}

/// What [`Store::revoke_device`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The device is revoked (now, or it was already), as stored.
    Revoked(DeviceRecord),
    /// No such device: nothing is written.
    NotFound,
    /// The step-up login may not be used (unknown, unfinished, used, revoked, expired, another
    /// device's): nothing is written.
    StepUpRefused,
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

/// A device group's OPAQUE record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasscodeRecord {
    /// 1 for the first registration, one more for each reset.
    pub version: u64,
    /// The opaque-ke `ServerRegistration`, sealed.
    pub record_sealed: Vec<u8>,
}

/// Where a passcode login is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginState {
    /// `loginStart` answered; the server's login state is kept for `loginFinish`.
    Started,
    /// `loginFinish` verified; the session secret is kept for one use.
    Finished,
    /// Used by one archive or one reset.
    Used,
    /// `loginFinish` did not verify (a wrong passcode).
    Failed,
    /// The group's record changed (a reset) before the login was used.
    Revoked,
}

/// A passcode login as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRecord {
    /// `…/passcodeLogins/{id}`.
    pub name: PasscodeLoginName,
    /// The device that made it.
    pub device: DeviceName,
    /// The record version it was started against.
    pub record_version: u64,
    /// Its state.
    pub state: LoginState,
    /// The server's OPAQUE login state, sealed, while started.
    pub state_sealed: Option<Vec<u8>>,
    /// The session secret, sealed, while finished.
    pub session_sealed: Option<Vec<u8>>,
    /// Unix milliseconds.
    pub create_time_ms: i64,
    /// When `loginFinish` verified, Unix milliseconds.
    pub finish_time_ms: Option<i64>,
    /// The record version a reset's `registerStart` with this login evaluated the OPRF under
    /// (its `record_version` + 1), once it did: a login authorizes one `registerStart`, and its
    /// `registerFinish` must store that version.
    pub reset_version: Option<u64>,
}

/// A new login, stored by [`Store::start_passcode_login`].
#[derive(Clone, Debug)]
pub struct NewLogin {
    /// Its name (the group is its group).
    pub name: PasscodeLoginName,
    /// The device.
    pub device: DeviceName,
    /// The record version it answers for.
    pub record_version: u64,
    /// The server's login state, sealed.
    pub state_sealed: Vec<u8>,
}

/// A finished login being used up, on the condition that it still may be.
#[derive(Clone, Debug)]
pub struct LoginUse {
    /// The login.
    pub name: PasscodeLoginName,
    /// The device that must have made it.
    pub device: DeviceName,
    /// It must have finished at or after this time (Unix milliseconds): not expired.
    pub finished_after_ms: i64,
}

/// How a `loginFinish` ended.
#[derive(Clone, Debug)]
pub enum LoginOutcome {
    /// Verified: the session secret, sealed, kept for one use; the failures are cleared if they
    /// are below the lock (see [`Store::finish_passcode_login`]).
    Finished {
        /// The session secret, sealed.
        session_sealed: Vec<u8>,
    },
    /// A wrong finalization: the login is over, its failure stays counted.
    Failed,
}

/// A device's failed passcode attempts in one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts counted as failed (logins started and not finished well).
    pub failures: u32,
    /// When the last counted attempt was made, Unix milliseconds (0: never).
    pub last_attempt_ms: i64,
    /// Locked until an operator unlocks it.
    pub locked: bool,
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

    /// Revokes a device, in one transaction committed durably (`synchronous = FULL`): marks it
    /// revoked, fails its open operations with `error` (deleting their sessions), deletes the
    /// server's halves of all its pairings, revokes its open passcode logins and makes current
    /// again every backup that a backup made by the device replaced (the device's own backups
    /// stay). With `step_up`, only if that login is still usable, and using it up in the same
    /// transaction. Revoking a revoked device changes nothing more but the step-up's use.
    ///
    /// A revocation also records a `DEVICE_REVOKED` event in each group of the device, in the
    /// same transaction, the first time only.
    fn revoke_device(
        &self,
        device: &DeviceName,
        step_up: Option<&LoginUse>,
        error: &str,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send;

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

    /// Records a request token's id, which the token is accepted until `expires_ms`; `false` if
    /// it was used before. Kept until [`Self::forget_token_ids`] forgets it.
    fn use_token(
        &self,
        subject: &str,
        jti: &str,
        expires_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Forgets the token ids accepted until before `expired_before_ms`; returns how many. Ids
    /// another replica's sweep is forgetting at the same time are left to it, not waited for.
    fn forget_token_ids(
        &self,
        expired_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

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
    /// A group's devices and their states, in the order of [`GroupRecord::devices`].
    fn device_states(
        &self,
        group: &DeviceGroupName,
    ) -> impl Future<Output = Result<Vec<(DeviceName, DeviceState)>, StoreError>> + Send;
    /// What happened to a group's devices, oldest first.
    fn device_group_events(
        &self,
        group: &DeviceGroupName,
    ) -> impl Future<Output = Result<Vec<GroupEventRecord>, StoreError>> + Send;

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
    /// `idle_before_ms`, deleting their sessions (and the unconfirmed pairing of a key generation,
    /// or the pending pairing an AddDevice made, that one only); returns how many. An operation
    /// that another transaction holds (a step, a revocation, another replica's sweep) is skipped,
    /// not waited for: that transaction ends it or moves it on, or the next sweep expires it.
    fn expire_operations(
        &self,
        created_before_ms: i64,
        idle_before_ms: i64,
        error: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// [`Self::expire_operations`] for the operation `name` alone: whether it expired it.
    fn expire_operation(
        &self,
        name: &OperationName,
        created_before_ms: i64,
        idle_before_ms: i64,
        error: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Writes one exchange step if the operation is still at `from_round` (compare and swap), its
    /// device is still active and the step's effect still may happen; otherwise nothing is
    /// written (see [`Committed`]).
    fn commit_step(
        &self,
        name: &OperationName,
        from_round: u8,
        step: &StepUpdate,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Retires the pairing (`group`, `device`, `epoch`) and fails every open operation on it with
    /// `error` (an [`ErrorBody`](waas_api::ErrorBody) as JSON), in a transaction of its own: what
    /// [`StepEffect::RetirePairing`] does, for a failed check whose step could not commit (another
    /// replica answered the round first, or the commit failed). Idempotent.
    fn retire_pairing(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        epoch: u64,
        error: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A live backup of `group`: current, or replaced at or after `replaced_since_ms` (within the
    /// retention, whether or not the sweep has run since it ran out). `None` otherwise.
    fn live_backup(
        &self,
        group: &DeviceGroupName,
        backup: &MpcOperationName,
        replaced_since_ms: i64,
    ) -> impl Future<Output = Result<Option<BackupRecord>, StoreError>> + Send;
    /// Deletes the backups replaced before `replaced_before_ms` (rows and sealed d_srv), never a
    /// current one; returns how many.
    fn forget_replaced_backups(
        &self,
        replaced_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The secret stored under `name`, storing `sealed` first if there is none, so that two
    /// processes starting on one database agree on one.
    fn server_secret(
        &self,
        name: &str,
        sealed: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// A group's keys, oldest first.
    fn keys(
        &self,
        group: &DeviceGroupName,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// A group's passcode record.
    fn passcode_record(
        &self,
        group: &DeviceGroupName,
    ) -> impl Future<Output = Result<Option<PasscodeRecord>, StoreError>> + Send;
    /// Stores a group's first record (version 1); `false` if it has one already (nothing written).
    /// Committed durably (`synchronous = FULL`).
    fn create_passcode_record(
        &self,
        group: &DeviceGroupName,
        record_sealed: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Marks `login` as having authorized a reset's `registerStart` evaluated under record
    /// version `from_version + 1`, if it still may: usable (see [`LoginUse`]), made with record
    /// `from_version`, not marked before, and the group's record still at `from_version`. One
    /// transaction, committed durably (`synchronous = FULL`) before the caller answers; `false`
    /// if a condition failed (nothing written).
    fn start_passcode_reset(
        &self,
        login: &LoginUse,
        from_version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces the group's record, if it is still at `from_version`, by `record_sealed` (one
    /// version more), using up `login` (which must still be usable and have started this reset:
    /// marked by [`Self::start_passcode_reset`] for that version) and revoking every other open
    /// login of the group, all in one transaction, committed durably. The same transaction
    /// retires the group's current backups made by revoked devices (replaced by the reset:
    /// [`Replacement::PasscodeReset`] with `login`'s name), so a thief's string kept past the
    /// revocation is swept after the retention. The new version, or `None` if a condition
    /// failed (then nothing is written). It also fails the group's open AddDevice operations
    /// with `recovery_error` (an `ErrorBody`, JSON), deleting their sessions and the pending
    /// pairings they made: a recovery in flight logged in with the old passcode.
    fn reset_passcode_record(
        &self,
        group: &DeviceGroupName,
        from_version: u64,
        record_sealed: &[u8],
        login: &LoginUse,
        recovery_error: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// A device's failed passcode attempts in a group (all zero when none were made).
    fn passcode_attempts(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> impl Future<Output = Result<Attempts, StoreError>> + Send;
    /// Counts one passcode attempt, in one transaction that commits before the caller answers:
    /// `check(attempts so far, the group's record version)` decides whether it may be made; if
    /// so, it is counted as failed (one more failure at `now_ms`, locked when that makes
    /// `max_failures`) and `login` is stored with it, committed durably (`synchronous = FULL`).
    /// A refusal by `check` writes nothing.
    fn count_passcode_attempt<E: From<StoreError> + Send>(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
        now_ms: i64,
        max_failures: u32,
        login: Option<&NewLogin>,
        check: impl FnOnce(&Attempts, Option<u64>) -> Result<(), E> + Send,
    ) -> impl Future<Output = Result<(), E>> + Send;
    /// A passcode login.
    fn passcode_login(
        &self,
        name: &PasscodeLoginName,
    ) -> impl Future<Output = Result<Option<LoginRecord>, StoreError>> + Send;
    /// Ends a login that is still started and was created at or after `started_after_ms`, as
    /// `outcome`, committed durably; `false` if it was not (nothing written). A finish also resets
    /// the device's failures in the group to 0, but only while they are below `max_failures` and
    /// not locked: once locked, only [`Self::unlock_passcode`] clears them, whenever the login
    /// finishing was started.
    fn finish_passcode_login(
        &self,
        name: &PasscodeLoginName,
        outcome: &LoginOutcome,
        started_after_ms: i64,
        max_failures: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Clears a device's failures and lock in a group (the operator's `unlock-passcode`);
    /// returns what was recorded before, `None` if nothing was.
    fn unlock_passcode(
        &self,
        group: &DeviceGroupName,
        device: &DeviceName,
    ) -> impl Future<Output = Result<Option<Attempts>, StoreError>> + Send;
    /// A backup's failed recovery attempts (all zero when none were made).
    fn recovery_attempts(
        &self,
        backup: &MpcOperationName,
    ) -> impl Future<Output = Result<Attempts, StoreError>> + Send;
    /// Clears the recovery failures and locks of `group`'s backups, or of its one backup
    /// `backup` (the operator's `unlock-recovery`); returns each backup's record before, oldest
    /// count first (none if nothing was recorded).
    fn unlock_recovery(
        &self,
        group: &DeviceGroupName,
        backup: Option<&MpcOperationName>,
    ) -> impl Future<Output = Result<Vec<(MpcOperationName, Attempts)>, StoreError>> + Send;
    /// Deletes the logins created before `before_ms`, with any secret they still hold; how many.
    fn forget_passcode_logins(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
