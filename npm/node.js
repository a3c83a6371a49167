// waas-sdk for Node.js (20 and later). Generated into pkg/ by scripts/package-sdk.mjs.
import { readFile } from 'node:fs/promises';

import { load, loadFull } from './loader.js';

export { WaasError } from './loader.js';
export { createEip1193Provider, ProviderRpcError } from './eip1193.js';
__EXPORTS__

const mainModule = () => readFile(new URL('./waas_sdk_bg.wasm', import.meta.url));
const fullModule = () => readFile(new URL('./waas_sdk_full_bg.wasm', import.meta.url));

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. By default the module is read from next to this file.
 */
export function initAsync(source) {
  return load(mainModule, source, fullModule);
}

/**
 * Loads the full module, which backup, recovery, export, revoke and `WaasClient.resetPasscode`
 * run in. Optional: their first call reads it from next to this file.
 */
export function initFullAsync(source) {
  return loadFull(fullModule, source).then(() => {});
}
