//! The device's backup string in the key store (docs/protocol/backup.md), from the dry run until
//! the user says they kept it (`confirmBackupSaved`): `records/backup/{group}`, AES-256-GCM under
//! the DEK like every record, holding `{ operation, verified, string }` sealed as one JSON text.
//! `verified` turns true once the server made the backup the group's current one (round 5), so
//! only a backup recovery can use is ever handed out.

use zeroize::Zeroizing;

use super::{KeyStore, Unlocked};
use crate::SdkError;

fn record_id(group: &str) -> String {
    format!("backup/{group}")
}

/// A stored backup string and where it stands.
pub(crate) struct StoredBackup {
    /// The PrepareDeviceBackup operation that made it.
    pub(crate) operation: String,
    /// Whether the server confirmed it (round 5).
    pub(crate) verified: bool,
    /// The string (`waasbackup1…`).
    pub(crate) string: Zeroizing<String>,
}

impl KeyStore {
    /// Keeps `string`, made by `operation`, for `group` (replacing an older one of the group).
    pub(crate) async fn store_backup(
        &self,
        unlocked: &Unlocked,
        group: &str,
        operation: &str,
        verified: bool,
        string: &str,
    ) -> Result<(), SdkError> {
        let id = record_id(group);
        let length = u16::try_from(operation.len())
            .map_err(|_| SdkError::InvalidArgument("the operation's name is too long".into()))?;
        let mut plain = Zeroizing::new(Vec::with_capacity(3 + operation.len() + string.len()));
        plain.push(u8::from(verified));
        plain.extend_from_slice(&length.to_be_bytes());
        plain.extend_from_slice(operation.as_bytes());
        plain.extend_from_slice(string.as_bytes());
        let record = unlocked.seal_record(&id, &plain)?;
        self.db.put("records", &id, &record).await
    }

    /// The backup string kept for `group`, if any.
    pub(crate) async fn backup(
        &self,
        unlocked: &Unlocked,
        group: &str,
    ) -> Result<Option<StoredBackup>, SdkError> {
        let id = record_id(group);
        let Some(record) = self.db.get("records", &id).await? else {
            return Ok(None);
        };
        let plain = unlocked.open_record(&id, &record)?;
        let corrupt = || SdkError::Corrupt(format!("the record {id} is not a backup"));
        let (&[verified, high, low], rest) = plain.split_first_chunk::<3>().ok_or_else(corrupt)?;
        let (operation, string) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([high, low])))
            .ok_or_else(corrupt)?;
        Ok(Some(StoredBackup {
            operation: String::from_utf8(operation.to_vec()).map_err(|_| corrupt())?,
            verified: verified == 1,
            string: Zeroizing::new(String::from_utf8(string.to_vec()).map_err(|_| corrupt())?),
        }))
    }

    /// Forgets the backup string of `group` (the user kept it).
    pub(crate) async fn forget_backup(&self, group: &str) -> Result<(), SdkError> {
        self.db.delete("records", &record_id(group)).await
    }

    /// The wallet this device made on `group`, if it made one.
    pub(crate) async fn group_wallet(&self, group: &str) -> Result<Option<String>, SdkError> {
        for key in self.db.keys("meta").await? {
            if let Some(wallet) = key.strip_prefix("wallet/")
                && self.wallet_group(wallet).await?.as_deref() == Some(group)
            {
                return Ok(Some(wallet.to_owned()));
            }
        }
        Ok(None)
    }
}
