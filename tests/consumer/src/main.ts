// What a web wallet does first with the SDK, with the types a wallet developer sees.
import { ResourceName, WaasError, initAsync, version, type ResourceKind, type WaasErrorCode } from 'waas-sdk';

function codeOf(call: () => unknown): WaasErrorCode | 'no error' | 'not a WaasError' {
  try {
    call();
    return 'no error';
  } catch (error) {
    return error instanceof WaasError ? error.code : 'not a WaasError';
  }
}

const beforeInit = codeOf(version);
await Promise.all([initAsync(), initAsync()]);
const kind: ResourceKind = ResourceName.parse('pools/default/deviceGroups/g').kind;
const result = {
  beforeInit,
  version: version(),
  kind,
  badName: codeOf(() => ResourceName.parse('pools/Not_Valid')),
};
const output = document.getElementById('result');
if (output) output.textContent = JSON.stringify(result);
