// waas-sdk for browsers and bundlers. Generated into pkg/ by scripts/package-sdk.mjs.
import { load, loadFull } from './loader.js';

export { WaasError } from './loader.js';
export { createEip1193Provider, ProviderRpcError } from './eip1193.js';
__EXPORTS__

// Literal `new URL(..., import.meta.url)` expressions, so bundlers such as Vite emit both .wasm
// files as assets and rewrite these URLs to them.
const mainModule = () => new URL('./waas_sdk_bg.wasm', import.meta.url);
const fullModule = () => new URL('./waas_sdk_full_bg.wasm', import.meta.url);

/**
 * Loads the SDK's wasm module. Await it once before calling anything else; later calls return the
 * same promise. By default the module is fetched from next to this file (bundlers such as Vite
 * emit it as an asset); pass a URL, a Response, the bytes or a compiled module to load it from
 * elsewhere.
 */
export function initAsync(source) {
  return load(mainModule, source, fullModule);
}

/**
 * Loads the full module, which backup, recovery, export, revoke and `WaasClient.resetPasscode`
 * run in. Optional: their first call loads it from next to this file. Call it to load it ahead of
 * time, or from elsewhere (a URL, a Response, the bytes or a compiled module).
 */
export function initFullAsync(source) {
  return loadFull(fullModule, source).then(() => {});
}
