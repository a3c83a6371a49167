// The same first steps in Node.js, where the package's "node" export loads the .wasm from disk.
// Prints one JSON line for tests/e2e/consumer.test.mjs to check.
import { ResourceName, WaasClient, WaasError, initAsync, initFullAsync, version } from 'waas-sdk';

/** @param {() => unknown} call */
function codeOf(call) {
  try {
    call();
    return 'no error';
  } catch (error) {
    return error instanceof WaasError ? error.code : 'not a WaasError';
  }
}

const beforeInit = codeOf(version);
const badModule = await initAsync(new Uint8Array([0, 97, 115, 109])).then(
  () => 'no error',
  (error) => (error instanceof WaasError ? error.code : 'not a WaasError'),
);
await initAsync();
// The full module (backup, recovery, export, revoke) loads in Node too; a failed load is retried.
/** @param {Promise<unknown>} promise */
const outcome = (promise) =>
  promise.then(
    () => 'loaded',
    (error) => (error instanceof WaasError ? error.code : 'not a WaasError'),
  );
const badFullModule = await outcome(initFullAsync(new Uint8Array([0, 97, 115, 109])));
const fullModule = await outcome(initFullAsync());
console.log(
  JSON.stringify({
    beforeInit,
    badModule,
    version: version(),
    kind: ResourceName.parse('devices/d-1').kind,
    badName: codeOf(() => ResourceName.parse('devices/')),
    badFullModule,
    fullModule,
    rareMethod: typeof WaasClient.prototype.exportPrivateKeys,
  }),
);
