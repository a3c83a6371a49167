//! The passcode at the server: OPAQUE (RFC 9807, the `opaque-ke` crate) with Argon2id as its
//! key-stretching function (docs/protocol/passcode.md).
//!
//! One OPAQUE record per device group. The server never sees the passcode, nor anything it could
//! test guesses against without its own OPRF key; a thief with a copied browser profile cannot
//! test guesses offline either, because every guess needs the server's OPRF evaluation, which the
//! server counts and rate-limits. A login gives both sides a [`SessionSecret`] (it authorizes an
//! archive or a passcode reset) and gives the device the record's [`ExportKey`] (it wraps the
//! device archive).
//!
//! The client identity is the device group's name and the server identity the server's audience,
//! both bound into the record's envelope and every login's key exchange.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use opaque_ke::argon2::{Algorithm, Argon2, Params, Version};
use opaque_ke::rand::{CryptoRng, RngCore};
use opaque_ke::{
    ClientLoginFinishParameters, ClientRegistrationFinishParameters, CredentialFinalization,
    CredentialRequest, CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse,
    RegistrationUpload, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The OPAQUE configuration: ristretto255 for the OPRF and the key exchange (3DH, SHA-512), and
/// Argon2id with the key store's parameters (19 MiB, t = 2, p = 1) to stretch the OPRF output.
struct Suite;

impl opaque_ke::CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2_010::Sha512>;
    type Ksf = Argon2<'static>;
}

/// Argon2id, 19 MiB, t = 2, p = 1 (OWASP's first recommendation, as the key store uses). Fixed:
/// changing it changes every record's keys, so it is part of the protocol version.
fn stretching() -> Result<Argon2<'static>, PasscodeError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| PasscodeError::Internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The key-exchange context: this protocol and its version.
const CONTEXT: &[u8] = b"waas-sdk passcode v1";

/// Why a passcode step failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PasscodeError {
    /// The passcode is wrong (or the record is not the one this passcode made). On the device
    /// this is the only sign of a wrong passcode: the server's answer does not open.
    #[error("wrong passcode")]
    WrongPasscode,
    /// A message is malformed or not for this step.
    #[error("malformed passcode message: {0}")]
    Malformed(&'static str),
    /// Stored state does not decode.
    #[error("stored passcode state is invalid")]
    InvalidState,
    /// No randomness from the OS.
    #[error("no randomness available")]
    Randomness,
    /// The OPAQUE library refused an internal step.
    #[error("passcode protocol failure")]
    Internal,
}

/// Whose record: the OPAQUE client identity. The server's identity is its OPAQUE public key
/// (opaque-ke's default), which lives with the server's OPAQUE keys: renaming the server (its
/// `--audience`) does not invalidate every record.
#[derive(Clone, Copy, Debug)]
pub struct PasscodeContext<'a> {
    /// The device group's resource name.
    pub device_group: &'a str,
}

impl PasscodeContext<'_> {
    fn identifiers(&self) -> Identifiers<'_> {
        Identifiers {
            client: Some(self.device_group.as_bytes()),
            server: None,
        }
    }

    /// The server's credential identifier, from which opaque-ke derives the record's OPRF key:
    /// the group and the record's version, so each new record (a reset) has a new OPRF key and
    /// OPRF answers collected for one record test nothing against the next.
    fn credential(&self, record_version: u64) -> Vec<u8> {
        [
            self.device_group.as_bytes(),
            b"\0",
            &record_version.to_be_bytes(),
        ]
        .concat()
    }
}

/// The record's export key: only the device learns it, at registration and at every login. It
/// wraps the device archive. Zeroized on drop; `Debug` prints `<redacted>`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ExportKey([u8; 64]);

impl ExportKey {
    /// The 256-bit key that wraps the device archive.
    pub fn archive_wrap_key(&self) -> Zeroizing<[u8; 32]> {
        expand(&self.0, b"waas-sdk archive wrap v1")
    }

    /// The 256-bit key that wraps the device's data key once the device holds a wallet: every
    /// unlock with the passcode is then a login the server counts, never a local test.
    pub fn data_key_wrap_key(&self) -> Zeroizing<[u8; 32]> {
        expand(&self.0, b"waas-sdk data key wrap v1")
    }
}

impl fmt::Debug for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportKey(<redacted>)")
    }
}

/// The login's session key, known to both sides after a successful login: it authorizes what
/// the login was for. Zeroized on drop; `Debug` prints `<redacted>`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SessionSecret([u8; 64]);

impl SessionSecret {
    /// The secret the device archive's encryption also takes ([`crate::seal_server_share`]).
    pub fn archive_binding(&self) -> Zeroizing<[u8; 32]> {
        expand(&self.0, b"waas-sdk archive binding v1")
    }

    /// A MAC over `message` for `purpose` (e.g. a passcode reset's new record).
    pub fn authorize(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        // A key of HMAC-SHA256's block size (64 bytes), so the infallible constructor applies.
        let mut key = Zeroizing::new([0u8; 64]);
        let _ = Hkdf::<Sha256>::new(None, &self.0)
            .expand(b"waas-sdk login authorization v1", &mut key[..]);
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*key).into());
        mac.update(&(purpose.len() as u64).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is [`Self::authorize`]'s MAC over `message` for `purpose`, in constant time.
    pub fn verify(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        bool::from(self.authorize(purpose, message).as_slice().ct_eq(tag))
    }

    /// The stored form (for the server, which seals it between a login and its use).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.0)
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PasscodeError> {
        Ok(Self(
            bytes.try_into().map_err(|_| PasscodeError::InvalidState)?,
        ))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// The device's side of registering a passcode (at wallet creation, or with a new passcode in a
/// reset). Held in memory between its two messages only.
pub struct ClientRegistration(opaque_ke::ClientRegistration<Suite>);

impl ClientRegistration {
    /// Blinds the passcode: returns the state and the request for the server.
    pub fn start(passcode: &[u8]) -> Result<(Self, Vec<u8>), PasscodeError> {
        let started = opaque_ke::ClientRegistration::<Suite>::start(&mut rng()?, passcode)
            .map_err(|_| PasscodeError::Internal)?;
        Ok((Self(started.state), started.message.serialize().to_vec()))
    }

    /// Finishes with the server's response: returns the upload (the record for the server) and
    /// the record's export key.
    pub fn finish(
        self,
        passcode: &[u8],
        response: &[u8],
        context: &PasscodeContext<'_>,
    ) -> Result<(Vec<u8>, ExportKey), PasscodeError> {
        let response = RegistrationResponse::<Suite>::deserialize(response)
            .map_err(|_| PasscodeError::Malformed("registration response"))?;
        let stretching = stretching()?;
        let finished = self
            .0
            .finish(
                &mut rng()?,
                passcode,
                response,
                ClientRegistrationFinishParameters::new(context.identifiers(), Some(&stretching)),
            )
            .map_err(|_| PasscodeError::Malformed("registration response"))?;
        let export_key = ExportKey(finished.export_key.into());
        Ok((finished.message.serialize().to_vec(), export_key))
    }
}

/// The device's side of a login. Held in memory between its two messages only.
pub struct ClientLogin(opaque_ke::ClientLogin<Suite>);

/// What a successful login gives the device.
#[derive(Debug)]
pub struct LoginKeys {
    /// Shared with the server.
    pub session: SessionSecret,
    /// The record's export key: the device's alone.
    pub export_key: ExportKey,
}

impl ClientLogin {
    /// Blinds the passcode: returns the state and the request for the server.
    pub fn start(passcode: &[u8]) -> Result<(Self, Vec<u8>), PasscodeError> {
        let started = opaque_ke::ClientLogin::<Suite>::start(&mut rng()?, passcode)
            .map_err(|_| PasscodeError::Internal)?;
        Ok((Self(started.state), started.message.serialize().to_vec()))
    }

    /// Finishes with the server's response: returns the finalization for the server and the
    /// login's keys, or [`PasscodeError::WrongPasscode`] when the response does not open with
    /// this passcode (which also covers a server that is not the one the record was made with).
    pub fn finish(
        self,
        passcode: &[u8],
        response: &[u8],
        context: &PasscodeContext<'_>,
    ) -> Result<(Vec<u8>, LoginKeys), PasscodeError> {
        let response = CredentialResponse::<Suite>::deserialize(response)
            .map_err(|_| PasscodeError::Malformed("login response"))?;
        let stretching = stretching()?;
        let finished = self
            .0
            .finish(
                &mut rng()?,
                passcode,
                response,
                ClientLoginFinishParameters::new(
                    Some(CONTEXT),
                    context.identifiers(),
                    Some(&stretching),
                ),
            )
            .map_err(|error| match error {
                opaque_ke::errors::ProtocolError::InvalidLoginError => PasscodeError::WrongPasscode,
                _ => PasscodeError::Malformed("login response"),
            })?;
        let keys = LoginKeys {
            session: SessionSecret(finished.session_key.into()),
            export_key: ExportKey(finished.export_key.into()),
        };
        Ok((finished.message.serialize().to_vec(), keys))
    }
}

/// The server's OPAQUE keys: the OPRF seed (one OPRF key per record follows from it) and the
/// key-exchange key pair. Made once per server and kept sealed. Never printed.
pub struct ServerKeys(ServerSetup<Suite>);

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeys(<redacted>)")
    }
}

impl ServerKeys {
    /// New random keys.
    pub fn generate() -> Result<Self, PasscodeError> {
        Ok(Self(ServerSetup::<Suite>::new(&mut rng()?)))
    }

    /// The stored form: secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PasscodeError> {
        ServerSetup::<Suite>::deserialize(bytes)
            .map(Self)
            .map_err(|_| PasscodeError::InvalidState)
    }

    /// Registration, first step: evaluates the OPRF on the device's blinded passcode under the
    /// OPRF key of the record version being made (1 for the first record, one more per reset).
    pub fn registration_response(
        &self,
        request: &[u8],
        context: &PasscodeContext<'_>,
        record_version: u64,
    ) -> Result<Vec<u8>, PasscodeError> {
        let request = RegistrationRequest::<Suite>::deserialize(request)
            .map_err(|_| PasscodeError::Malformed("registration request"))?;
        let started = ServerRegistration::<Suite>::start(
            &self.0,
            request,
            &context.credential(record_version),
        )
        .map_err(|_| PasscodeError::Malformed("registration request"))?;
        Ok(started.message.serialize().to_vec())
    }

    /// Login, first step: returns the state to keep (secret; seal it) and the response for the
    /// device. `record` is the group's stored record, of version `record_version`.
    pub fn login_start(
        &self,
        record: &[u8],
        record_version: u64,
        request: &[u8],
        context: &PasscodeContext<'_>,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), PasscodeError> {
        let record = ServerRegistration::<Suite>::deserialize(record)
            .map_err(|_| PasscodeError::InvalidState)?;
        let request = CredentialRequest::<Suite>::deserialize(request)
            .map_err(|_| PasscodeError::Malformed("login request"))?;
        let started = opaque_ke::ServerLogin::start(
            &mut rng()?,
            &self.0,
            Some(record),
            request,
            &context.credential(record_version),
            ServerLoginParameters {
                context: Some(CONTEXT),
                identifiers: context.identifiers(),
            },
        )
        .map_err(|_| PasscodeError::Malformed("login request"))?;
        Ok((
            Zeroizing::new(started.state.serialize().to_vec()),
            started.message.serialize().to_vec(),
        ))
    }
}

/// Registration, last step (server): checks the device's upload and returns the record to store.
pub fn registration_record(upload: &[u8]) -> Result<Vec<u8>, PasscodeError> {
    let upload = RegistrationUpload::<Suite>::deserialize(upload)
        .map_err(|_| PasscodeError::Malformed("registration upload"))?;
    Ok(ServerRegistration::<Suite>::finish(upload)
        .serialize()
        .to_vec())
}

/// Login, last step (server): checks the device's finalization against the kept state. A wrong
/// MAC means the device did not hold the passcode: [`PasscodeError::WrongPasscode`].
pub fn login_finish(
    state: &[u8],
    finalization: &[u8],
    context: &PasscodeContext<'_>,
) -> Result<SessionSecret, PasscodeError> {
    let state = opaque_ke::ServerLogin::<Suite>::deserialize(state)
        .map_err(|_| PasscodeError::InvalidState)?;
    let finalization = CredentialFinalization::<Suite>::deserialize(finalization)
        .map_err(|_| PasscodeError::Malformed("login finalization"))?;
    let finished = state
        .finish(
            finalization,
            ServerLoginParameters {
                context: Some(CONTEXT),
                identifiers: context.identifiers(),
            },
        )
        .map_err(|_| PasscodeError::WrongPasscode)?;
    Ok(SessionSecret(finished.session_key.into()))
}

/// HKDF-SHA256 of a 64-byte OPAQUE key to a 256-bit key for one use.
fn expand(key: &[u8; 64], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit; this cannot fail.
    let _ = Hkdf::<Sha256>::new(None, key).expand(info, &mut out[..]);
    out
}

/// opaque-ke takes a `rand_core` 0.6 generator: ChaCha20 seeded from the OS (WebCrypto in
/// browsers), fresh for each step, so every random value still comes from the OS's seed.
fn rng() -> Result<impl RngCore + CryptoRng, PasscodeError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..]).map_err(|_| PasscodeError::Randomness)?;
    Ok(ChaCha20Rng::from_seed(*seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: PasscodeContext<'static> = PasscodeContext {
        device_group: "pools/default/deviceGroups/g1",
    };

    fn register(keys: &ServerKeys, passcode: &[u8]) -> (Vec<u8>, ExportKey) {
        let (client, request) = ClientRegistration::start(passcode).unwrap();
        let response = keys.registration_response(&request, &CONTEXT, 1).unwrap();
        let (upload, export_key) = client.finish(passcode, &response, &CONTEXT).unwrap();
        (registration_record(&upload).unwrap(), export_key)
    }

    fn login(
        keys: &ServerKeys,
        record: &[u8],
        passcode: &[u8],
        context: &PasscodeContext<'_>,
    ) -> Result<(LoginKeys, SessionSecret), PasscodeError> {
        let (client, request) = ClientLogin::start(passcode)?;
        let (state, response) = keys.login_start(record, 1, &request, context)?;
        let (finalization, keys) = client.finish(passcode, &response, context)?;
        let server = login_finish(&state, &finalization, context)?;
        Ok((keys, server))
    }

    #[test]
    fn login_gives_both_sides_the_session_and_the_device_the_export_key() {
        let keys = ServerKeys::generate().unwrap();
        let (record, export_key) = register(&keys, b"123456");
        let (device, server) = login(&keys, &record, b"123456", &CONTEXT).unwrap();
        assert_eq!(*device.session.to_bytes(), *server.to_bytes());
        assert_eq!(
            *device.export_key.archive_wrap_key(),
            *export_key.archive_wrap_key()
        );
        assert_eq!(*device.session.archive_binding(), *server.archive_binding());
        assert_ne!(
            *export_key.archive_wrap_key(),
            *export_key.data_key_wrap_key()
        );
        let tag = device.session.authorize("reset", b"new record");
        assert!(server.verify("reset", b"new record", &tag));
        assert!(!server.verify("reset", b"another record", &tag));
        assert!(!server.verify("archive", b"new record", &tag));
    }

    #[test]
    fn each_record_version_has_its_own_oprf_key() {
        // OPRF answers for one record (e.g. collected through a reset's registerStart) must test
        // nothing against the next one.
        let keys = ServerKeys::generate().unwrap();
        let (_, request) = ClientRegistration::start(b"123456").unwrap();
        let first = keys.registration_response(&request, &CONTEXT, 1).unwrap();
        let again = keys.registration_response(&request, &CONTEXT, 1).unwrap();
        let second = keys.registration_response(&request, &CONTEXT, 2).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, second);
        // A login against the record under another version's key fails.
        let (record, _) = register(&keys, b"123456");
        let (client, request) = ClientLogin::start(b"123456").unwrap();
        let (_, response) = keys.login_start(&record, 2, &request, &CONTEXT).unwrap();
        assert_eq!(
            client.finish(b"123456", &response, &CONTEXT).unwrap_err(),
            PasscodeError::WrongPasscode
        );
    }

    #[test]
    fn a_wrong_passcode_is_told_on_the_device() {
        let keys = ServerKeys::generate().unwrap();
        let (record, _) = register(&keys, b"123456");
        assert_eq!(
            login(&keys, &record, b"123457", &CONTEXT).unwrap_err(),
            PasscodeError::WrongPasscode
        );
    }

    #[test]
    fn another_group_or_server_does_not_log_in() {
        let keys = ServerKeys::generate().unwrap();
        let (record, _) = register(&keys, b"123456");
        let other_group = PasscodeContext {
            device_group: "pools/default/deviceGroups/g2",
        };
        assert_eq!(
            login(&keys, &record, b"123456", &other_group).unwrap_err(),
            PasscodeError::WrongPasscode
        );
        // Other server keys (a server that lost or replaced them) do not open the record either.
        let other_keys = ServerKeys::generate().unwrap();
        assert!(login(&other_keys, &record, b"123456", &CONTEXT).is_err());
    }

    #[test]
    fn server_keys_survive_storage_and_a_new_registration_changes_the_export_key() {
        let keys = ServerKeys::generate().unwrap();
        let stored = ServerKeys::from_bytes(&keys.to_bytes()).unwrap();
        let (record, first) = register(&keys, b"123456");
        assert!(login(&stored, &record, b"123456", &CONTEXT).is_ok());
        let (_, second) = register(&keys, b"123456");
        assert_ne!(*first.archive_wrap_key(), *second.archive_wrap_key());
    }

    #[test]
    fn a_forged_finalization_counts_as_a_wrong_passcode() {
        let keys = ServerKeys::generate().unwrap();
        let (record, _) = register(&keys, b"123456");
        let (client, request) = ClientLogin::start(b"123456").unwrap();
        let (state, response) = keys.login_start(&record, 1, &request, &CONTEXT).unwrap();
        let (mut finalization, _) = client.finish(b"123456", &response, &CONTEXT).unwrap();
        finalization[0] ^= 1;
        assert_eq!(
            login_finish(&state, &finalization, &CONTEXT).unwrap_err(),
            PasscodeError::WrongPasscode
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let keys = ServerKeys::generate().unwrap();
        let (_, export_key) = register(&keys, b"123456");
        assert_eq!(format!("{export_key:?}"), "ExportKey(<redacted>)");
        assert_eq!(format!("{keys:?}"), "ServerKeys(<redacted>)");
    }
}
