// Types of waas-sdk: the generated bindings plus the hand-written loader and error class.
/// <reference lib="esnext.disposable" />

export * from './waas_sdk.js';

/**
 * Every `code` a {@link WaasError} can carry. Codes are stable: never renamed or reused, so code
 * may branch on them. New codes can appear in minor versions.
 */
export type WaasErrorCode =
  /** `initAsync()` could not fetch or instantiate the wasm module. */
  | 'INIT_FAILED'
  /** A string is not a valid resource name (`pools/p/deviceGroups/g`, ...). */
  | 'INVALID_NAME'
  /** The SDK was called before `initAsync()` resolved. */
  | 'NOT_INITIALIZED';

/** The one error class the SDK throws. Branch on `code`; `message` is for people. */
export declare class WaasError extends Error {
  constructor(code: WaasErrorCode, message: string);
  readonly name: 'WaasError';
  readonly code: WaasErrorCode;
}

/** Where `initAsync` may load the wasm module from. */
export type InitInput = URL | string | Request | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. Rejects with a `WaasError` of code `INIT_FAILED`.
 */
export declare function initAsync(source?: InitInput | Promise<InitInput>): Promise<void>;
