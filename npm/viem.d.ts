// Types of waas-sdk/viem. viem is an optional peer dependency: only this entry needs it.
import type { Address, LocalAccount } from 'viem';

import type { UnlockSource, WaasClient } from './index.js';

export interface ViemAccountOptions {
  /** The key that signs (`address.mpcKeys[0]` of `createWallet` or `generateAddress`). */
  mpcKey: string;
  /** The key's address, as the same call gave it (lower case or EIP-55). Every signature is
   * checked to recover to it before it is returned. */
  address: Address;
  /** The passcode or passkey, or a function asked once per signature (returning nothing or
   * throwing rejects it with viem's `UserRejectedRequestError`, code 4001). */
  unlock: UnlockSource;
}

/**
 * A viem account (`toAccount`) that signs with `mpcKey` of `client`: `signMessage`
 * (EIP-191), `signTypedData` (EIP-712) and `signTransaction` (EIP-1559 and legacy with EIP-155;
 * other types, blobs and authorization lists are refused). Each signature is returned only if it
 * is over the digest viem computes for the request and recovers to `address`. It has no `sign`
 * (a bare hash could be anything, a transaction too) nor `signAuthorization`, and no `publicKey`.
 * Failures are `WaasError`s (`INVALID_ARGUMENT` for what the SDK does not sign), and viem's
 * `UserRejectedRequestError` when the unlock is refused.
 */
export declare function toViemAccount(client: WaasClient, options: ViemAccountOptions): LocalAccount<'custom'>;
