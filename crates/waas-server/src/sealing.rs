//! Encryption at rest: every secret the server stores (its shares, MPC state, in-flight protocol
//! state) is sealed under the server's master key with AES-256-GCM before it reaches the database.
//!
//! Sealed record: `version u8 (= 1) | key id [8] | nonce [12] | ciphertext and tag`. The AAD binds
//! the record to what it is and where it lives (`kind`, `id`) and to the header, so a sealed value
//! copied to another row, or another kind of row, does not open. The key id (the first bytes of
//! SHA-256 of the key) lets a rotated key set find the right key for old records.
//!
//! The key file holds 32 random bytes; the server creates it on first start with mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why the master key could not be loaded, or a record not sealed or opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error("master key file {0} must hold exactly 32 bytes")]
    KeyLength(PathBuf),
    /// The key file is readable by others.
    #[error("master key file {0} must not be readable by group or others (chmod 600)")]
    KeyPermissions(PathBuf),
    /// No randomness from the OS.
    #[error("no randomness available")]
    Randomness,
    /// A record was sealed under a key this server does not have.
    #[error("record sealed under an unknown key")]
    UnknownKey,
    /// A record is malformed, was moved to another row, or was tampered with.
    #[error("record does not open (tampered, moved or corrupted)")]
    Corrupted,
}

/// The server's master key. Never printed.
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Creates `path` (and its folder) with mode 0600 and writes `contents`; fails if it exists.
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut file = create_private(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

impl MasterKey {
    /// Loads the key from `path`, creating the file (and its folder) with a fresh random key and
    /// mode 0600 if it does not exist. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SealError> {
        let file_error = |source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                check_permissions(path)?;
                let bytes = Zeroizing::new(bytes);
                let key: &[u8; KEY_LEN] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| SealError::KeyLength(path.to_owned()))?;
                Ok((Self::from_bytes(key), false))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                getrandom::fill(key.as_mut_slice()).map_err(|_| SealError::Randomness)?;
                write_private_file(path, key.as_slice()).map_err(file_error)?;
                Ok((Self::from_bytes(&key), true))
            }
            Err(error) => Err(file_error(error)),
        }
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            cipher: Aes256Gcm::new(key.into()),
            id,
        }
    }

    /// Seals `plaintext` as a record of `kind` stored under `id`.
    pub fn seal(&self, kind: &str, id: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Randomness)?;
        let mut record = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        record.push(VERSION);
        record.extend_from_slice(&self.id);
        record.extend_from_slice(&nonce);
        let aad = aad(kind, id, &record);
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Corrupted)?;
        record.extend_from_slice(&ciphertext);
        Ok(record)
    }

    /// Opens a record sealed with [`MasterKey::seal`] for the same `kind` and `id`.
    pub fn open(
        &self,
        kind: &str,
        id: &str,
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (header, ciphertext) = record
            .split_at_checked(HEADER_LEN)
            .ok_or(SealError::Corrupted)?;
        let [version, rest @ ..] = header else {
            return Err(SealError::Corrupted);
        };
        if *version != VERSION {
            return Err(SealError::Corrupted);
        }
        let (key_id, nonce) = rest.split_at(KEY_ID_LEN);
        if key_id != self.id {
            return Err(SealError::UnknownKey);
        }
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Corrupted)?;
        let aad = aad(kind, id, header);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupted)
    }
}

/// Length-prefixed kind and id, then the record header.
fn aad(kind: &str, id: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + kind.len() + id.len() + header.len());
    for part in [kind.as_bytes(), id.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(header);
    aad
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
pub(crate) fn check_permissions(path: &Path) -> Result<(), SealError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(SealError::KeyPermissions(path.to_owned()))
    }
}

#[cfg(not(unix))]
pub(crate) fn check_permissions(_: &Path) -> Result<(), SealError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_where_they_were_sealed() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let record = key
            .seal("pairing", "pools/p/deviceGroups/g", b"share")
            .unwrap();
        assert_eq!(
            key.open("pairing", "pools/p/deviceGroups/g", &record)
                .unwrap()
                .as_slice(),
            b"share"
        );
        assert!(
            !record.windows(5).any(|w| w == b"share"),
            "the plaintext is not visible"
        );

        // Moved to another row or kind, tampered, truncated, or under another key: refused.
        assert!(matches!(
            key.open("pairing", "pools/p/deviceGroups/h", &record),
            Err(SealError::Corrupted)
        ));
        assert!(matches!(
            key.open("session", "pools/p/deviceGroups/g", &record),
            Err(SealError::Corrupted)
        ));
        for at in [0, 5, HEADER_LEN - 1, HEADER_LEN, record.len() - 1] {
            let mut tampered = record.clone();
            tampered[at] ^= 1;
            assert!(
                key.open("pairing", "pools/p/deviceGroups/g", &tampered)
                    .is_err(),
                "byte {at}"
            );
        }
        assert!(
            key.open("pairing", "pools/p/deviceGroups/g", &record[..HEADER_LEN])
                .is_err()
        );
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(matches!(
            other.open("pairing", "pools/p/deviceGroups/g", &record),
            Err(SealError::UnknownKey)
        ));
        // Two seals of the same value differ (fresh nonces).
        assert_ne!(
            record,
            key.seal("pairing", "pools/p/deviceGroups/g", b"share")
                .unwrap()
        );
        assert!(format!("{key:?}").contains("<redacted>"));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let (first, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let (second, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        let record = first.seal("k", "i", b"x").unwrap();
        assert_eq!(second.open("k", "i", &record).unwrap().as_slice(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                MasterKey::load_or_create(&path),
                Err(SealError::KeyPermissions(_))
            ));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&path, [1u8; 31]).unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(SealError::KeyLength(_))
        ));
    }
}
