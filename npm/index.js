// waas-sdk for browsers and bundlers. Generated into pkg/ by scripts/package-sdk.mjs.
import { load } from './loader.js';

export { WaasError } from './loader.js';
__EXPORTS__

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. By default the module is fetched from next to this file (bundlers such as Vite
 * emit it as an asset); pass a URL, a Response, the bytes or a compiled module to load it from
 * elsewhere.
 */
export function initAsync(source) {
  return load(() => new URL('./waas_sdk_bg.wasm', import.meta.url), source);
}
