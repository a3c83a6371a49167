// What a web wallet does first with the SDK, with the types a wallet developer sees.
import {
  ResourceName,
  WaasError,
  initAsync,
  initFullAsync,
  version,
  type ExportedKeys,
  type RecoveredWallet,
  type ResourceKind,
  type WaasClient,
  type WaasErrorCode,
} from 'waas-sdk';

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
// The rare flows run in the full module, loaded on first use; their types are the client's own.
async function rareFlows(client: WaasClient, metadata: string): Promise<[ExportedKeys, RecoveredWallet, string]> {
  const keys = await client.exportPrivateKeys(metadata, { passkey: true });
  const recovered = await client.recover('waasbackup1...', '123456');
  await client.revokeDevice(undefined, { deviceGroup: recovered.deviceGroup, passcode: '123456' });
  return [keys, recovered, await client.backup(recovered.deviceGroup, '123456')];
}
void rareFlows;
const full = await initFullAsync().then(
  () => 'loaded',
  (error: unknown) => (error instanceof WaasError ? error.code : 'not a WaasError'),
);
const result = {
  beforeInit,
  version: version(),
  kind,
  badName: codeOf(() => ResourceName.parse('pools/Not_Valid')),
  full,
};
const output = document.getElementById('result');
if (output) output.textContent = JSON.stringify(result);
