// Types of waas-sdk: the generated bindings plus the hand-written loader and error class.
/// <reference lib="esnext.disposable" />

export * from './waas_sdk.js';

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
  /** With `PASSCODE_BACKOFF`: how long to wait before the next passcode try. */
  readonly retryAfterSeconds?: number;
}

/** Where `initAsync` may load the wasm module from. */
export type InitInput = URL | string | Request | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. Rejects with a `WaasError` of code `INIT_FAILED`.
 */
export declare function initAsync(source?: InitInput | Promise<InitInput>): Promise<void>;
