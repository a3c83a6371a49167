// waas-sdk/viem: a viem account whose signatures come from the wallet's MPC key, for
// createWalletClient and everything built on it. viem is an optional peer dependency of the package:
// only this entry imports it. Generated into pkg/ by scripts/package-sdk.mjs.
import {
  UserRejectedRequestError,
  getAddress,
  hashMessage,
  hashTypedData,
  isAddress,
  isAddressEqual,
  keccak256,
  recoverAddress,
  serializeTransaction,
} from 'viem';
import { toAccount } from 'viem/accounts';

import { WaasError } from '__WAAS_ERROR_MODULE__';
import { UnlockRefused, checkUnlockOption, resolveUnlock } from './eip1193.js';

// A transaction's fields as viem passes them to an account: the ones that are signed, the ones
// that only say who signs or where (checked or dropped), and the ones of transaction types the SDK
// does not sign.
const signedFields = ['type', 'chainId', 'nonce', 'gas', 'gasPrice', 'maxFeePerGas', 'maxPriorityFeePerGas', 'to', 'value', 'data', 'accessList'];
const contextFields = ['account', 'chain', 'from', 'nonceManager'];
/** @type {Record<string, string>} */
const fieldTypes = {
  authorizationList: 'eip7702',
  blobs: 'eip4844',
  blobVersionedHashes: 'eip4844',
  sidecars: 'eip4844',
  maxFeePerBlobGas: 'eip4844',
  kzg: 'eip4844',
};

/**
 * A viem `LocalAccount` that signs with `mpcKey` of `client`. `address` is the key's address, as
 * `createWallet` or `generateAddress` gave it with the key; every signature is checked to recover
 * to it, over the digest viem itself computes for the request, before it is returned. `unlock` is
 * an Unlock, or a function giving one for each signature (it is told what is signed; returning
 * nothing or throwing rejects the request: viem's UserRejectedRequestError, code 4001).
 * @param {any} client
 * @param {{ mpcKey: string, address: string, unlock: unknown }} options
 */
export function toViemAccount(client, options) {
  const { mpcKey, address, unlock } = options ?? {};
  if (typeof client?.signTransaction !== 'function') throw new WaasError('INVALID_ARGUMENT', 'client is a WaasClient');
  if (typeof mpcKey !== 'string' || !mpcKey) throw new WaasError('INVALID_ARGUMENT', 'mpcKey is the key name');
  if (typeof address !== 'string' || !isAddress(address, { strict: true })) {
    throw new WaasError('INVALID_ARGUMENT', `address ${String(address)} is not 0x and 40 hex digits, in lower case or EIP-55`);
  }
  checkUnlockOption(unlock);
  const account = getAddress(address);

  /** Runs the SDK call `sign` with the unlock for `request`; a refused unlock is viem's 4001. */
  async function signWith(/** @type {object} */ request, /** @type {(unlock: any) => Promise<any>} */ sign) {
    let resolved;
    try {
      resolved = await resolveUnlock(unlock, request);
    } catch (error) {
      if (!(error instanceof UnlockRefused)) throw error;
      throw new UserRejectedRequestError(error.cause instanceof Error ? error.cause : error);
    }
    return sign(resolved);
  }

  /**
   * Checks a Signature before it is returned: it signs `digest` (viem's own hash of what was
   * asked), and recovers to the account's address.
   * @param {{ payload: `0x${string}`, signedPayload: { signature: `0x${string}` } }} signature
   * @param {`0x${string}`} digest
   * @param {string} what
   */
  async function check(signature, digest, what) {
    if (signature.payload.toLowerCase() !== digest.toLowerCase()) {
      throw new WaasError(
        'INVALID_ARGUMENT',
        `viem hashes this ${what} to ${digest}, the SDK signed ${signature.payload}: they read it differently, so the signature is not returned`,
      );
    }
    const signer = await recoverAddress({ hash: signature.payload, signature: signature.signedPayload.signature });
    if (!isAddressEqual(signer, account)) {
      throw new WaasError('INVALID_ARGUMENT', `${mpcKey} signs for ${signer}, not for ${account}: pass the address that came with this mpcKey`);
    }
  }

  return toAccount({
    address: account,

    /** @param {{ message: any }} parameters */
    async signMessage({ message }) {
      // viem's SignableMessage; bare bytes too, as the SDK takes them.
      const signable = message instanceof Uint8Array ? { raw: message } : message;
      // viem's digest first: what viem cannot hash is not signed.
      const digest = hashMessage(signable);
      const signature = await signWith({ kind: 'message', message: signable }, (u) => client.signMessage(mpcKey, signable, u));
      await check(signature, digest, 'message');
      return signature.signedPayload.signature;
    },

    /** @param {any} typedData */
    async signTypedData(typedData) {
      const digest = hashTypedData(typedData);
      const signature = await signWith({ kind: 'typedData', typedData }, (u) => client.signTypedData(mpcKey, typedData, u));
      await check(signature, digest, 'typed data');
      return signature.signedPayload.signature;
    },

    /**
     * Signs an EIP-1559 or legacy (EIP-155) transaction; returns the signed encoding. A chain's
     * own serializer (OP stack chains pass one) is used only if it encodes the transaction as
     * viem's standard one does: the SDK signs that encoding and no other.
     * @param {any} transaction
     * @param {{ serializer?: (transaction: any, signature?: any) => any }} [options]
     */
    async signTransaction(transaction, options) {
      const fields = transactionFields(transaction, account);
      // viem's encoding first (and its checks): what viem cannot encode is not signed.
      const unsigned = serializeTransaction(fields);
      const serializer = options?.serializer;
      if (serializer && (await serializer(fields)) !== unsigned) {
        throw new WaasError(
          'INVALID_ARGUMENT',
          "this chain's transaction serializer encodes the transaction otherwise than a standard EIP-1559 or legacy one, the only encodings waas-sdk signs",
        );
      }
      const signed = await signWith({ kind: 'transaction', transaction: fields }, (u) => client.signTransaction(mpcKey, fields, u));
      const { signature } = signed;
      await check(signature, keccak256(unsigned), 'transaction');
      const { r, s, v } = signature.signedPayload;
      const viemSignature = { r, s, v: BigInt(v), yParity: v - 27 };
      const raw = await (serializer ?? serializeTransaction)(fields, viemSignature);
      if (raw.toLowerCase() !== signed.rawTransaction.toLowerCase()) {
        throw new WaasError('INVALID_ARGUMENT', 'viem encodes the signed transaction otherwise than the SDK: it is not returned');
      }
      return signed.rawTransaction;
    },
  });
}

/**
 * The fields of `transaction` that are signed (unset ones left out), after checking that it is a
 * kind the SDK signs and that its `from`/`account` is this account.
 * @param {any} transaction
 * @param {`0x${string}`} account
 */
function transactionFields(transaction, account) {
  if (transaction === null || typeof transaction !== 'object') throw new WaasError('INVALID_ARGUMENT', 'the transaction is an object');
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const [name, value] of Object.entries(transaction)) {
    if (value === undefined || (value === null && name !== 'to')) continue;
    if (fieldTypes[name]) throw unsigned(fieldTypes[name], name);
    if (signedFields.includes(name)) {
      fields[name] = value;
    } else if (!contextFields.includes(name)) {
      throw new WaasError('INVALID_ARGUMENT', `the transaction field ${name} is not one waas-sdk signs (a chain-specific field?): it would be left out of the signature`);
    }
  }
  if (fields.type !== undefined && fields.type !== 'eip1559' && fields.type !== 'legacy') throw unsigned(String(fields.type));
  for (const [name, value] of [
    ['from', transaction.from],
    ['account', typeof transaction.account === 'object' ? transaction.account?.address : transaction.account],
  ]) {
    if (value != null && (typeof value !== 'string' || !isAddress(value, { strict: false }) || !isAddressEqual(value, account))) {
      throw new WaasError('INVALID_ARGUMENT', `the transaction's ${name} ${String(value)} is not this account (${account})`);
    }
  }
  return fields;
}

/** @param {string} type @param {string} [field] */
function unsigned(type, field) {
  return new WaasError(
    'INVALID_ARGUMENT',
    `waas-sdk signs EIP-1559 and legacy transactions only, not ${type}${field ? ` (the transaction has ${field})` : ''}`,
  );
}
