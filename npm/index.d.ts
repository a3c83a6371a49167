// Types of waas-sdk: the generated bindings plus the hand-written loader and error class.
/// <reference lib="esnext.disposable" />

export * from './waas_sdk.js';
import type { Quantity, SignableMessage, TransactionRequest, TypedDataDefinition, Unlock, WaasClient } from './waas_sdk.js';

/**
 * Every `code` a {@link WaasError} can carry. Codes are stable: never renamed or reused, so code
 * may branch on them. New codes can appear in minor versions.
 */
export type WaasErrorCode =
  /** `bootstrapDevice` found a device already (another tab may have made it). */
  | 'ALREADY_BOOTSTRAPPED'
  /** WebCrypto or the random source failed. */
  | 'CRYPTO'
  /** This device has been revoked: the server refuses its requests (RevokeDevice). */
  | 'DEVICE_REVOKED'
  /** The wallet's pool does not allow taking the key out. */
  | 'EXPORT_DISABLED'
  /** `initAsync()` could not fetch or instantiate the wasm module. */
  | 'INIT_FAILED'
  /** An argument is not acceptable, e.g. a passcode that breaks the policy. */
  | 'INVALID_ARGUMENT'
  /** The backup string does not read (mistyped, cut, or not a waas-sdk backup): nothing was sent. */
  | 'INVALID_BACKUP'
  /** A string is not a valid resource name (`pools/p/deviceGroups/g`, ...). */
  | 'INVALID_NAME'
  /** The server could not be reached (offline, connection refused, CORS). */
  | 'NETWORK'
  /** This profile has no device yet: call `bootstrapDevice` first. */
  | 'NOT_BOOTSTRAPPED'
  /** The SDK was called before `initAsync()` resolved. */
  | 'NOT_INITIALIZED'
  /** This device holds no archive of the wallet: run its PrepareDeviceArchive operation first. */
  | 'NO_ARCHIVE'
  /** This device keeps no backup string of the wallet (none made here, or already confirmed saved). */
  | 'NO_BACKUP'
  /** The server failed a check only a cheating peer fails: this pairing never signs again. */
  | 'PAIRING_RETIRED'
  /** Too many wrong passcodes lately at the server: wait `retryAfterSeconds`. */
  | 'PASSCODE_BACKOFF'
  /** The passcode is right, but another device of the wallet changed it since this one last did. */
  | 'PASSCODE_CHANGED'
  /** Ten wrong passcodes: the passcode is locked on this device until the wallet's operator
   * unlocks it (a passkey still unlocks). */
  | 'PASSCODE_LOCKED'
  /** The passkey could not be used: none enrolled, the user cancelled, or no PRF output. */
  | 'PASSKEY_FAILED'
  /** The MPC protocol stopped: a message failed a check, or the server gave up. */
  | 'PROTOCOL_ABORT'
  /** The server refused the request (the message names its code, e.g. `NOT_FOUND`). */
  | 'SERVER'
  /** IndexedDB failed (quota, private browsing, a blocked upgrade). */
  | 'STORAGE'
  /** A stored record fails its integrity check: altered, or copied from another profile. */
  | 'STORAGE_CORRUPT'
  /** An operation did not finish in time, or the wait was aborted. */
  | 'TIMEOUT'
  /** The server cannot answer for now (its database is restarting or out of reach): make the same
   * call again after `retryAfterSeconds`. */
  | 'UNAVAILABLE'
  /** The environment lacks IndexedDB or WebCrypto. */
  | 'UNSUPPORTED'
  /** The server sent an address or key that differs from the device's own derivation. */
  | 'UNTRUSTED_SERVER'
  /** The passcode does not open this device's keys. */
  | 'WRONG_PASSCODE';

/** The one error class the SDK throws. Branch on `code`; `message` is for people. */
export declare class WaasError extends Error {
  constructor(code: WaasErrorCode, message: string, retryAfterSeconds?: number);
  readonly name: 'WaasError';
  readonly code: WaasErrorCode;
  /** With `PASSCODE_BACKOFF`: how long to wait before the next passcode try; with `UNAVAILABLE`:
   * before the call is made again. */
  readonly retryAfterSeconds?: number;
}

/** Where `initAsync` may load the wasm module from. */
export type InitInput = URL | string | Request | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. Rejects with a `WaasError` of code `INIT_FAILED`.
 */
export declare function initAsync(source?: InitInput | Promise<InitInput>): Promise<void>;

/**
 * Loads the full module, which the rare flows run in: backup, recovery, export, revoke and
 * `WaasClient.resetPasscode`. Optional: their first call loads it from next to the package (as
 * `initAsync` does the main module). Call it to load it ahead of time, or from elsewhere. Rejects
 * with a `WaasError` of code `INIT_FAILED`; a failed load is tried again on the next call.
 */
export declare function initFullAsync(source?: InitInput | Promise<InitInput>): Promise<void>;

/** What a signature is asked for, as an unlock callback is told before it answers. */
export type SigningRequest =
  | { kind: 'message'; message: SignableMessage }
  | { kind: 'typedData'; typedData: TypedDataDefinition }
  | { kind: 'transaction'; transaction: TransactionRequest };

/**
 * How the adapters (`createEip1193Provider`, `toViemAccount`) unlock the key: an `Unlock` for
 * every signature, or a function asked once per signature (e.g. to prompt the user), told what is
 * signed. A function that returns nothing (`null`, `undefined`, `false`) or throws rejects the
 * request (EIP-1193 code 4001).
 */
export type UnlockSource =
  | Unlock
  | ((request: SigningRequest) => Unlock | null | undefined | false | Promise<Unlock | null | undefined | false>);

/** A `0x` hex string. */
type Hex = `0x${string}`;

/** The methods `createEip1193Provider` answers itself, with their parameters and results. */
export interface Eip1193Methods {
  eth_accounts: { params?: readonly []; result: [Hex] };
  eth_requestAccounts: { params?: readonly []; result: [Hex] };
  /** The provider's chain, `0x` hex. */
  eth_chainId: { params?: readonly []; result: Hex };
  /** `[message, address]`: `0x` hex bytes, or text (signed as UTF-8). Resolves the 65-byte signature. */
  personal_sign: { params: readonly [message: string, address: string]; result: Hex };
  /** `[address, typedData]`: the typed data as an object or its JSON text. */
  eth_signTypedData_v4: { params: readonly [address: string, typedData: TypedDataDefinition]; result: Hex };
  /** Resolves the signed raw transaction. With an `rpcUrl`, a missing nonce, gas or fees are filled as for eth_sendTransaction. */
  eth_signTransaction: { params: readonly [transaction: Eip1193Transaction]; result: Hex };
  /** Fills the missing nonce, gas and fees from `rpcUrl`, signs, sends, and resolves the transaction hash. */
  eth_sendTransaction: { params: readonly [transaction: Eip1193Transaction]; result: Hex };
}

/** A transaction as dapps send it: `from` (if given) must be the provider's account, `chainId`
 * (if given) its chain; nonce, gas and fees may be left out when the provider has an `rpcUrl`. */
export type Eip1193Transaction = Partial<TransactionRequest> & {
  from?: string;
  gasLimit?: Quantity;
  input?: Hex;
};

/** An EIP-1193 provider (the interface of `window.ethereum`). */
export interface Eip1193Provider {
  request<M extends keyof Eip1193Methods>(args: { method: M } & Omit<Eip1193Methods[M], 'result'>): Promise<Eip1193Methods[M]['result']>;
  /** Any other method goes to `rpcUrl` (never one about accounts or signing), else fails with 4200. */
  request<M extends string>(args: {
    method: M & (M extends keyof Eip1193Methods ? never : unknown);
    params?: readonly unknown[] | object;
  }): Promise<unknown>;
  /** `connect` is emitted once, on the first request. */
  on(event: 'connect', listener: (info: { chainId: Hex }) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
  removeListener(event: string, listener: (...args: any[]) => void): this;
}

export interface Eip1193ProviderOptions {
  client: WaasClient;
  /** The key that signs (`address.mpcKeys[0]` of `createWallet` or `generateAddress`). */
  mpcKey: string;
  /** The key's address, as the same call gave it. */
  address: Hex;
  /** The chain transactions are signed for (EIP-155): a number, a bigint or `0x` hex. */
  chainId: number | bigint | Hex;
  unlock: UnlockSource;
  /** A JSON-RPC endpoint of the chain: read-only methods are sent there, and eth_sendTransaction fills and sends through it. */
  rpcUrl?: string | URL;
}

/**
 * An EIP-1193 provider for one key: eth_accounts, eth_requestAccounts, eth_chainId,
 * personal_sign, eth_signTypedData_v4, eth_signTransaction and eth_sendTransaction are answered
 * and signed here; other methods go to `rpcUrl`. Throws a `WaasError` (`INVALID_ARGUMENT`) for
 * bad options.
 */
export declare function createEip1193Provider(options: Eip1193ProviderOptions): Eip1193Provider;

/**
 * The errors the provider rejects with: 4001 the unlock was refused, 4100 another account,
 * 4200 an unsupported method, 4901 `rpcUrl` serves another chain, -32602 invalid parameters (the
 * SDK's `INVALID_ARGUMENT`), -32603 anything else; the node's own errors keep their code. `data`
 * carries the SDK's `WaasError` code as `waasCode`.
 */
export declare class ProviderRpcError extends Error {
  readonly name: 'ProviderRpcError';
  readonly code: number;
  /** `{ waasCode, retryAfterSeconds? }` for the SDK's errors; the node's `data` for its own. */
  readonly data?: unknown;
}
