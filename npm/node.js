// waas-sdk for Node.js (20 and later). Generated into pkg/ by scripts/package-sdk.mjs.
import { readFile } from 'node:fs/promises';

import { load } from './loader.js';

export { WaasError } from './loader.js';
__EXPORTS__

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. By default the module is read from next to this file.
 */
export function initAsync(source) {
  return load(() => readFile(new URL('./waas_sdk_bg.wasm', import.meta.url)), source);
}
