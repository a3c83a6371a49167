// RevokeDevice end to end (docs/protocol/revoke.md): a device revokes itself, and the app's
// backend (an API key) revokes another; from then on the device's calls fail with DEVICE_REVOKED.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createWalletIn, harnessFixture, openHarness, operatorApi, signMessageIn } from './support.mjs';

const PASSCODE = '123456';

const harness = harnessFixture();

/**
 * What the page reported as broken, but the refusals the test asks for (Chromium logs every 403).
 * @param {string[]} errors
 */
const unexpected = (errors) => errors.filter((error) => !error.includes('status of 403'));

/** A fresh profile with the SDK loaded. */
async function freshPage() {
  const context = await harness.browser.newContext();
  return { ...(await openHarness(context, harness.server.url)), context };
}

/**
 * In the page: signs `message` with `mpcKey`; the WaasError's code, or 'signed'.
 * @param {import('playwright-core').Page} page
 * @param {string} mpcKey
 * @param {string} message
 */
function signCode(page, mpcKey, message) {
  return page.evaluate(
    async ({ mpcKey, message, passcode }) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      return client.signMessage(mpcKey, message, { passcode }).then(
        () => 'signed',
        (/** @type {any} */ error) => (error instanceof sdk.WaasError ? error.code : String(error)),
      );
    },
    { mpcKey, message, passcode: PASSCODE },
  );
}

test('a device that revokes itself signs no more: DEVICE_REVOKED', async () => {
  const { page, errors, context } = await freshPage();
  const { device, created } = await createWalletIn(page, { passcode: PASSCODE });
  const mpcKey = created.address.mpcKeys[0];
  const signed = await signMessageIn(page, mpcKey, 'before', { passcode: PASSCODE });
  assert.equal(signed.mpcKey, mpcKey);

  // Revoking itself twice is fine (the second time the server says it is revoked already).
  const revoked = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    const client = await sdk.WaasClient.connect('');
    await client.revokeDevice();
    await client.revokeDevice();
    return 'revoked';
  });
  assert.equal(revoked, 'revoked');

  assert.equal(await signCode(page, mpcKey, 'after'), 'DEVICE_REVOKED');
  const api = operatorApi(harness.server);
  const stored = await api('GET', `/v1/${device.name}`);
  assert.equal(stored.state, 'REVOKED');
  assert.deepEqual(unexpected(errors), []);
  await context.close();
});

test("the app's backend revokes another device with its API key", async () => {
  const { page, errors, context } = await freshPage();
  const { device, created } = await createWalletIn(page, { passcode: PASSCODE });
  const mpcKey = created.address.mpcKeys[0];

  // A device revokes another only with a step-up; without one the SDK refuses before asking.
  const withoutStepUp = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    const client = await sdk.WaasClient.connect('');
    return client.revokeDevice('devices/00000000000000000000000000000000').then(
      () => 'revoked',
      (/** @type {any} */ error) => error.code,
    );
  });
  assert.equal(withoutStepUp, 'INVALID_ARGUMENT');
  assert.equal(await signCode(page, mpcKey, 'still mine'), 'signed');

  const api = operatorApi(harness.server);
  const revoked = await api('POST', '/v1/device:revoke', { name: device.name });
  assert.equal(revoked.name, device.name);
  assert.equal(revoked.state, 'REVOKED');

  assert.equal(await signCode(page, mpcKey, 'after'), 'DEVICE_REVOKED');
  const code = await page.evaluate(async (group) => {
    const { sdk } = /** @type {any} */ (window);
    const client = await sdk.WaasClient.connect('');
    return client.getDeviceGroup(group).then(
      () => 'read',
      (/** @type {any} */ error) => error.code,
    );
  }, created.wallet.deviceGroup);
  assert.equal(code, 'DEVICE_REVOKED');
  assert.deepEqual(unexpected(errors), []);
  await context.close();
});
