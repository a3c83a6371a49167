//! Key generations and signings the test device has started but not finished, for tests that
//! take them round by round: to stop, repeat, race or tamper between two rounds.
//!
//! [`TestDevice::begin_keygen`] and [`TestDevice::begin_signing`] create the operation, find it in
//! ListMPCOperations and start the device's session (nothing is sent yet); the methods of
//! [`StartedKeygen`] and [`StartedSigning`] take it one round further.

use waas_api::resources::{ExchangeResponse, MpcOperation, Operation, OperationMetadata};
use waas_api::{ErrorBody, ErrorCode, MpcKeyName, MpcOperationName, OperationName};
use waas_mpc::{Keygen, Pairing, Signing};

use super::device::{Signed, TestDevice, reply};
use super::{Raw, default_pool};

/// The device's part (`…/mpcOperations/{id}`) of a CreateMPCWallet, CreateSignature or
/// PrepareDeviceArchive operation:
/// what ListMPCOperations lists and exchanges name.
pub fn mpc_operation_of(operation: &Operation) -> MpcOperationName {
    match &operation.metadata {
        OperationMetadata::CreateMpcWallet { mpc_operation, .. }
        | OperationMetadata::CreateSignature { mpc_operation, .. }
        | OperationMetadata::PrepareDeviceArchive { mpc_operation, .. } => mpc_operation.clone(),
        other => panic!("not an MPC operation: {other:?}"),
    }
}

/// `message` with the byte at `at` changed (XOR 0x55): a tampered message of the same length.
pub fn flip(message: &[u8], at: usize) -> Vec<u8> {
    let mut tampered = message.to_vec();
    tampered[at] ^= 0x55;
    tampered
}

/// A key generation the device has started: its round 1 is ready, nothing is sent yet.
pub struct StartedKeygen {
    /// The CreateMPCWallet operation, not done.
    pub operation: Operation,
    /// Its MPC operation, which the exchanges name.
    pub op: MpcOperationName,
    /// The operation as ListMPCOperations showed it (another session can start from it).
    pub pending: MpcOperation,
    /// The device's session, waiting for round 2.
    pub keygen: Keygen,
    /// The device's round 1.
    pub round1: Vec<u8>,
}

impl StartedKeygen {
    /// The device reads the server's round 2 and returns its round 3.
    pub fn round3(&mut self, answer: &ExchangeResponse) -> Vec<u8> {
        self.keygen
            .handle(&reply(answer, 2))
            .unwrap()
            .reply
            .unwrap()
    }

    /// The device reads the server's round 4: its pairing, to confirm in round 5.
    pub fn pairing(&mut self, answer: &ExchangeResponse) -> Pairing {
        self.keygen
            .handle(&reply(answer, 4))
            .unwrap()
            .output
            .unwrap()
    }

    /// Sends round 1, which must succeed, and returns the device's round 3 (not sent).
    pub async fn send_round1(&mut self, device: &TestDevice) -> Vec<u8> {
        let answer = device.exchange_ok(&self.op, 1, &self.round1).await;
        self.round3(&answer)
    }
}

/// A signing the device has started: its round 1 is ready, nothing is sent yet.
pub struct StartedSigning {
    /// The CreateSignature operation, not done.
    pub operation: Operation,
    /// Its MPC operation, which the exchanges name.
    pub op: MpcOperationName,
    /// The operation as ListMPCOperations showed it (another session can start from it).
    pub pending: MpcOperation,
    /// The device's session, waiting for round 2.
    pub session: Signing,
    /// The device's round 1.
    pub round1: Vec<u8>,
    /// The derivation path the server asked the device to sign under.
    pub path: Vec<u32>,
}

impl StartedSigning {
    /// The device reads the server's round 2 and returns its round 3.
    pub fn round3(&mut self, pairing: &Pairing, answer: &ExchangeResponse) -> Vec<u8> {
        self.session
            .handle(pairing, &reply(answer, 2))
            .unwrap()
            .reply
            .unwrap()
    }

    /// Sends round 1, which must succeed, and returns the device's round 3 (not sent).
    pub async fn send_round1(&mut self, device: &TestDevice, pairing: &Pairing) -> Vec<u8> {
        let answer = device.exchange_ok(&self.op, 1, &self.round1).await;
        self.round3(pairing, &answer)
    }

    /// The device reads the server's round 4 (the last), and GetOperation must be done with the
    /// signature the device computed too ([`TestDevice::finished_signature`]).
    pub async fn finish(
        mut self,
        device: &TestDevice,
        pairing: &Pairing,
        answer: &ExchangeResponse,
    ) -> Signed {
        let signature = self
            .session
            .handle(pairing, &reply(answer, 4))
            .unwrap()
            .output
            .unwrap();
        device
            .finished_signature(&self.operation.name, signature, self.path)
            .await
    }
}

impl TestDevice {
    /// CreateMPCWallet for this device in the default pool, and its key generation started.
    pub async fn begin_keygen(&self) -> StartedKeygen {
        let operation = self.create_wallet_operation(&default_pool(), None).await;
        self.begin_keygen_of(&operation).await
    }

    /// Starts key generation for a CreateMPCWallet operation someone created for this device.
    pub async fn begin_keygen_of(&self, operation: &Operation) -> StartedKeygen {
        let OperationMetadata::CreateMpcWallet { mpc_operation, .. } = &operation.metadata else {
            panic!("not a CreateMPCWallet operation: {operation:?}")
        };
        let pending = self.find_mpc_operation(mpc_operation).await;
        let (keygen, round1) = self.start_keygen(&pending);
        StartedKeygen {
            operation: operation.clone(),
            op: mpc_operation.clone(),
            pending,
            keygen,
            round1,
        }
    }

    /// CreateSignature of `digest` with `key`, and the signing started under `pairing`.
    pub async fn begin_signing(
        &self,
        pairing: &Pairing,
        key: &MpcKeyName,
        digest: &[u8; 32],
    ) -> StartedSigning {
        let operation = self.create_signature_operation(key, digest, None).await;
        self.begin_signing_of(pairing, &operation, digest).await
    }

    /// Starts signing for a CreateSignature operation of `digest` (created by anyone), after
    /// [`TestDevice::start_signing`]'s checks of what the server asks.
    pub async fn begin_signing_of(
        &self,
        pairing: &Pairing,
        operation: &Operation,
        digest: &[u8; 32],
    ) -> StartedSigning {
        let OperationMetadata::CreateSignature {
            mpc_key,
            mpc_operation,
        } = &operation.metadata
        else {
            panic!("not a CreateSignature operation: {operation:?}")
        };
        let pending = self.find_mpc_operation(mpc_operation).await;
        let (session, round1, path) = self.start_signing(&pending, pairing, mpc_key, digest);
        StartedSigning {
            operation: operation.clone(),
            op: mpc_operation.clone(),
            pending,
            session,
            round1,
            path,
        }
    }

    /// Sends an exchange again and asserts it gets `first`'s answer exactly (status and body):
    /// the server stores every answer, so a device that lost one can ask again.
    pub async fn assert_repeat(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
        first: &Raw,
        what: &str,
    ) -> Raw {
        let again = self.exchange(operation, round, message).await;
        assert_eq!(
            (again.status, &again.body),
            (first.status, &first.body),
            "{what}:\n{again:?}"
        );
        again
    }

    /// One exchange that must succeed (200), then its exact repeat, which must get the identical
    /// stored answer. Returns the first answer.
    pub async fn exchange_and_repeat(
        &self,
        operation: &MpcOperationName,
        round: u8,
        message: &[u8],
    ) -> Raw {
        let first = self.exchange(operation, round, message).await;
        assert_eq!(first.status, 200, "{first:?}");
        self.assert_repeat(operation, round, message, &first, "the repeat")
            .await;
        first
    }

    /// GetOperation must show `operation` done with the error `code` and no response (an
    /// operation that failed or was stopped); returns the error for closer checks.
    pub async fn assert_failed(&self, operation: &OperationName, code: ErrorCode) -> ErrorBody {
        let now = self.get_operation(operation).await;
        assert!(now.done, "the operation must be done:\n{now:?}");
        assert_eq!(now.response, None, "{now:?}");
        let error = now
            .error
            .unwrap_or_else(|| panic!("no error in {operation:?}"));
        assert_eq!(error.code, code, "{error:?}");
        error
    }
}
