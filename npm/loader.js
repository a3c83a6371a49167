// Loads the wasm module once, and guards every binding until it is loaded.
//
// Shared by the browser entry (index.js) and the Node entry (node.js); they differ only in where
// the .wasm bytes come from by default. Generated into pkg/ by scripts/package-sdk.mjs.
import * as bindings from './waas_sdk_bg.js';
import { WaasError } from '__WAAS_ERROR_MODULE__';

export { WaasError };

// Until initAsync() resolves, every call into the SDK throws this clear error instead of a
// TypeError from deep inside the generated glue code.
bindings.__wbg_set_wasm(
  new Proxy(
    {},
    {
      get() {
        throw new WaasError(
          'NOT_INITIALIZED',
          'waas-sdk is not initialized: await initAsync() before calling it',
        );
      },
    },
  ),
);

let loading = null;

/**
 * Instantiates the module from `source`, or from `defaultSource()` when none is given. Every call
 * returns the same promise, so concurrent callers share one instantiation; a failed load may be
 * retried.
 */
export function load(defaultSource, source) {
  loading ??= instantiate(source ?? defaultSource()).catch((error) => {
    loading = null;
    throw new WaasError('INIT_FAILED', `cannot load the waas-sdk module: ${error?.message ?? error}`);
  });
  return loading;
}

async function instantiate(sourcePromise) {
  const source = await sourcePromise;
  const imports = { './waas_sdk_bg.js': bindings };
  const instance = await instantiateFrom(source, imports);
  bindings.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start();
}

async function instantiateFrom(source, imports) {
  if (source instanceof WebAssembly.Module) {
    return WebAssembly.instantiate(source, imports);
  }
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    return (await WebAssembly.instantiate(source, imports)).instance;
  }
  const response = source instanceof Response ? source : await fetch(source);
  if (!response.ok) {
    throw new Error(`HTTP ${response.status} fetching ${response.url}`);
  }
  // Streaming compilation needs the right MIME type; fall back to bytes for servers without it.
  if (response.headers.get('Content-Type')?.startsWith('application/wasm')) {
    return (await WebAssembly.instantiateStreaming(response, imports)).instance;
  }
  return (await WebAssembly.instantiate(await response.arrayBuffer(), imports)).instance;
}
