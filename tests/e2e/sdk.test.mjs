// The browser SDK end to end: a page loads the built package, the real server runs the other
// side, and viem checks the signatures independently.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import { collectPageErrors, harnessFixture } from './support.mjs';

/** The server on the harness page, and the browser. */
const harness = harnessFixture();

/** A fresh page (a fresh profile: its own IndexedDB) with the SDK loaded. */
async function sdkPage() {
  const context = await harness.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(harness.server.url);
  await page.waitForFunction(() => document.title === 'ready');
  return { page, errors, context };
}

test('bootstrap, register, create a wallet, sign a message: viem recovers the address', async () => {
  const { page, errors, context } = await sdkPage();
  const result = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    assert(await sdk.bootstrapDevice('123456'), 'bootstrapped');
    const client = await sdk.WaasClient.connect('');
    const device = await client.registerDevice();
    const created = await client.createWallet({ passcode: '123456' });
    const signature = await client.signMessage(created.address.mpcKeys[0], 'hello waas', {
      passcode: '123456',
    });
    return { device, created, signature };
    /** @param {unknown} condition @param {string} message */
    function assert(condition, message) {
      if (!condition) throw new Error(message);
    }
  });
  assert.match(result.device.name, /^devices\/[0-9a-f]{32}$/);
  assert.equal(result.created.address.derivationPath, '0/0');
  const recovered = await recoverMessageAddress({
    message: 'hello waas',
    signature: result.signature.signedPayload.signature,
  });
  assert.equal(recovered, result.created.address.address, 'viem recovers the wallet address');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a wrong passcode and use before bootstrap get their codes', async () => {
  const { page, context } = await sdkPage();
  const codes = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    /** @param {Promise<unknown>} promise */
    const code = (promise) => promise.then(() => 'resolved', (/** @type {any} */ error) => error.code);
    const client = await sdk.WaasClient.connect('');
    const before = await code(client.registerDevice());
    await sdk.bootstrapDevice('123456');
    await client.registerDevice();
    const wrong = await code(client.createWallet({ passcode: '000000' }));
    return { before, wrong };
  });
  assert.deepEqual(codes, { before: 'NOT_BOOTSTRAPPED', wrong: 'WRONG_PASSCODE' });
  await context.close();
});
