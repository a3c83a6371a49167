// Backup end to end (docs/protocol/backup.md): PrepareDeviceBackup with its dry run against the
// real server, the backup string, forgetting it once saved, and a server whose answers are
// tampered with: the device refuses and keeps nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { collectPageErrors, harnessFixture } from './support.mjs';

const PASSCODE = '123456';

const harness = harnessFixture({ extraArgs: ['--passcode-backoff', '10ms'] });

/** A fresh profile with the SDK loaded, a device and a wallet; the client is `window.client`. */
async function walletPage() {
  const context = await harness.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(harness.server.url);
  await page.waitForFunction(() => document.title === 'ready');
  const created = await page.evaluate(async (passcode) => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice(passcode);
    const client = await sdk.WaasClient.connect('');
    /** @type {any} */ (window).client = client;
    await client.registerDevice();
    return client.createWallet({ passcode });
  }, PASSCODE);
  return { page, context, errors, group: created.wallet.deviceGroup };
}

/**
 * What `client[method](...args)` ends with: its value, or the WaasError's code.
 * @param {import('playwright-core').Page} page @param {string} method @param {unknown[]} args
 */
function call(page, method, ...args) {
  return page.evaluate(
    ({ method, args }) =>
      /** @type {any} */ (window).client[method](...args).then(
        (/** @type {unknown} */ value) => ({ value }),
        (/** @type {any} */ error) => ({ code: error.code, message: error.message }),
      ),
    { method, args },
  );
}

test('a backup: the string after the dry run, the same string again until it is confirmed saved', async () => {
  const { page, context, errors, group } = await walletPage();
  const made = await call(page, 'backup', group, PASSCODE);
  assert.equal(made.code, undefined, made.message);
  const backup = /** @type {string} */ (made.value);
  assert.match(backup, /^waasbackup1[1-9A-HJ-NP-Za-km-z]+$/);
  assert.deepEqual(await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE }), { value: backup });

  // The server finished the operation with the group's current backup.
  const operations = await page.evaluate(async (group) => {
    const { client } = /** @type {any} */ (window);
    return (await client.listMPCOperations(group)).length;
  }, group);
  assert.equal(operations, 0, 'nothing left for the device to compute');

  // A second backup replaces the first; the device keeps the new string.
  const again = await call(page, 'backup', group, PASSCODE);
  assert.notEqual(again.value, backup);
  assert.deepEqual(await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE }), { value: again.value });

  // Saved by the user: the device forgets it.
  assert.deepEqual(await call(page, 'confirmBackupSaved', group), { value: undefined });
  const gone = await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE });
  assert.equal(gone.code, 'NO_BACKUP');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a wrong passcode makes no backup', async () => {
  const { page, context, group } = await walletPage();
  assert.equal((await call(page, 'backup', group, '000000')).code, 'WRONG_PASSCODE');
  assert.equal((await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE })).code, 'NO_BACKUP');
  await context.close();
});

for (const { round, what } of [
  { round: 1, what: "the server's decryption half (its proof no longer holds)" },
  { round: 3, what: "the server's partial decryption (the dry run fails)" },
]) {
  test(`a server that alters ${what}: UNTRUSTED_SERVER, nothing kept`, async () => {
    const { page, context, group } = await walletPage();
    await page.route('**/mpcOperations/*:exchange', async (route) => {
      const body = JSON.parse(route.request().postData() ?? '{}');
      const response = await route.fetch();
      const answer = await response.json();
      if (body.round === round && typeof answer.message === 'string') {
        // Flip one bit in the middle of the answer's bytes.
        const bytes = Buffer.from(answer.message, 'base64url');
        bytes[Math.floor(bytes.length / 2)] ^= 1;
        answer.message = bytes.toString('base64url');
      }
      await route.fulfill({ response, json: answer });
    });
    const made = await call(page, 'backup', group, PASSCODE);
    assert.equal(made.code, 'UNTRUSTED_SERVER', made.message);
    await page.unroute('**/mpcOperations/*:exchange');
    assert.equal((await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE })).code, 'NO_BACKUP');
    await context.close();
  });
}

test("round 5's answer lost: the backup is the server's, and exportDeviceBackup asks again and hands it out", async () => {
  const { page, context, group } = await walletPage();
  // The server commits round 5, but its answer never arrives.
  await page.route('**/mpcOperations/*:exchange', async (route) => {
    const body = JSON.parse(route.request().postData() ?? '{}');
    if (body.round === 5) {
      await route.fetch();
      await route.abort('connectionreset');
    } else {
      await route.continue();
    }
  });
  assert.equal((await call(page, 'backup', group, PASSCODE)).code, 'NETWORK');
  await page.unroute('**/mpcOperations/*:exchange');
  const again = await call(page, 'exportDeviceBackup', group, { passcode: PASSCODE });
  assert.equal(again.code, undefined, again.message);
  assert.match(/** @type {string} */ (again.value), /^waasbackup1/);
  await context.close();
});
