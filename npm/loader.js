// Loads the wasm modules, and guards every binding until the main one is loaded.
//
// The package has two builds of the SDK (docs/design-notes.md, "Two modules"): the main module,
// which initAsync() loads, and the full module, which adds the rare flows (backup, recovery,
// export, revoke, the passcode reset at the server). The main module's WaasClient gets those
// methods here as wrappers that load the full module on first use and call the same method on a
// client of it, connected like the main one. Both modules keep all their state in IndexedDB, so
// they agree on it.
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
        throw notInitialized();
      },
    },
  ),
);

function notInitialized() {
  return new WaasError('NOT_INITIALIZED', 'waas-sdk is not initialized: await initAsync() before calling it');
}

let loading = null;
// Where the full module comes from unless initFullAsync() is given a source; set by initAsync(),
// so a rare method (only callable on a client, so after initAsync()) finds it.
let defaultFullSource = null;

/**
 * Instantiates the main module from `source`, or from `defaultSource()` when none is given. Every
 * call returns the same promise, so concurrent callers share one instantiation; a failed load may
 * be retried. `fullSource` is where the full module is loaded from by default.
 */
export function load(defaultSource, source, fullSource) {
  defaultFullSource ??= fullSource;
  loading ??= instantiate(bindings, './waas_sdk_bg.js', source ?? defaultSource()).catch((error) => {
    loading = null;
    throw new WaasError('INIT_FAILED', `cannot load the waas-sdk module: ${error?.message ?? error}`);
  });
  return loading;
}

let fullLoading = null;

/**
 * Loads the full module (its glue code and its .wasm) from `source`, or from `defaultSource()`;
 * resolves with its bindings. Like load(): one shared promise, retried after a failure.
 */
export function loadFull(defaultSource, source) {
  fullLoading ??= (async () => {
    const full = await import('./waas_sdk_full_bg.js');
    await instantiate(full, './waas_sdk_full_bg.js', source ?? defaultSource());
    return full;
  })().catch((error) => {
    fullLoading = null;
    throw new WaasError(
      'INIT_FAILED',
      `cannot load the waas-sdk full module (backup, recovery, export, revoke): ${error?.message ?? error}`,
    );
  });
  return fullLoading;
}

async function instantiate(glue, importName, sourcePromise) {
  const source = await sourcePromise;
  const instance = await instantiateFrom(source, { [importName]: glue });
  glue.__wbg_set_wasm(instance.exports);
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

// The WaasClient methods only the full module has (scripts/package-sdk.mjs compares the builds).
const fullOnlyMethods = __FULL_ONLY_METHODS__;

const { WaasClient } = bindings;
// What each main client was connected with, and its twin in the full module once one is needed.
const connections = new WeakMap();
const fullClients = new WeakMap();

const connect = WaasClient.connect;
WaasClient.connect = function (baseUrl, options) {
  // Called as is first, so it throws NOT_INITIALIZED synchronously like every other binding.
  const connecting = connect.call(WaasClient, baseUrl, options);
  // A copy: the app may change its options object after connecting.
  const remembered = options == null ? options : { ...options };
  return connecting.then((client) => {
    connections.set(client, [baseUrl, remembered]);
    return client;
  });
};

const free = WaasClient.prototype.free;
WaasClient.prototype.free = function () {
  connections.delete(this);
  fullClients.get(this)?.then(
    (twin) => twin.free(),
    () => {},
  );
  fullClients.delete(this);
  return free.call(this);
};
if (Symbol.dispose) WaasClient.prototype[Symbol.dispose] = WaasClient.prototype.free;

/** The full module's client connected like `client`: made on first use, then the same one. */
function twinOf(client) {
  let twin = fullClients.get(client);
  if (!twin) {
    const connection = connections.get(client);
    if (!connection) {
      return Promise.reject(
        loading === null
          ? notInitialized()
          : new WaasError('INVALID_ARGUMENT', 'this WaasClient was freed, or not made by WaasClient.connect'),
      );
    }
    if (defaultFullSource === null) return Promise.reject(notInitialized());
    twin = loadFull(defaultFullSource).then((full) => full.WaasClient.connect(...connection));
    // A failed load or connect is tried again on the next call.
    twin.catch(() => fullClients.get(client) === twin && fullClients.delete(client));
    fullClients.set(client, twin);
  }
  return twin;
}

for (const name of fullOnlyMethods) {
  // Named after the method, for stack traces.
  const wrapper = {
    async [name](...args) {
      const twin = await twinOf(this);
      return twin[name](...args);
    },
  }[name];
  Object.defineProperty(WaasClient.prototype, name, { value: wrapper, writable: true, configurable: true });
}
