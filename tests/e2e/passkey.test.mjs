// Passkeys with the WebAuthn PRF extension, through a CDP virtual authenticator: with PRF the
// passkey unlocks the keys; without it the device works with its passcode alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import { addVirtualAuthenticator, collectPageErrors, harnessFixture } from './support.mjs';

/** The server on the harness page, and the browser. */
const harness = harnessFixture();

/**
 * A fresh profile whose browser has a platform authenticator, with or without PRF.
 * @param {boolean} hasPrf
 */
async function pageWithAuthenticator(hasPrf) {
  const context = await harness.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await addVirtualAuthenticator(context, page, hasPrf);
  await page.goto(harness.server.url);
  await page.waitForFunction(() => document.title === 'ready');
  return { page, errors, context };
}

test('with PRF, the passkey unlocks: sign without the passcode', async () => {
  const { page, errors, context } = await pageWithAuthenticator(true);
  const result = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice('123456', { passkey: true });
    const device = await sdk.WaasDevice.open();
    const hasPasskey = await device.hasPasskey();
    const client = await sdk.WaasClient.connect('');
    await client.registerDevice();
    // Creating a wallet registers the passcode at the server (export), so it takes the passcode.
    const created = await client.createWallet({ passcode: '123456' });
    const key = created.address.mpcKeys[0];
    const byPasskey = await client.signMessage(key, 'by passkey', { passkey: true });
    const byPasscode = await client.signMessage(key, 'by passcode', { passcode: '123456' });
    return { hasPasskey, address: created.address.address, byPasskey, byPasscode };
  });
  assert.equal(result.hasPasskey, true);
  for (const [message, signature] of [
    ['by passkey', result.byPasskey],
    ['by passcode', result.byPasscode],
  ]) {
    const recovered = await recoverMessageAddress({
      message,
      signature: signature.signedPayload.signature,
    });
    assert.equal(recovered, result.address, message);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('without PRF, the device works with the passcode alone', async () => {
  const { page, errors, context } = await pageWithAuthenticator(false);
  const result = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice('123456', { passkey: true });
    const device = await sdk.WaasDevice.open();
    const hasPasskey = await device.hasPasskey();
    const client = await sdk.WaasClient.connect('');
    await client.registerDevice();
    const created = await client.createWallet({ passcode: '123456' });
    const passkeyCode = await client
      .signMessage(created.address.mpcKeys[0], 'x', { passkey: true })
      .then(() => 'resolved', (/** @type {any} */ error) => error.code);
    return { hasPasskey, passkeyCode, address: created.address.address };
  });
  assert.equal(result.hasPasskey, false);
  assert.equal(result.passkeyCode, 'PASSKEY_FAILED');
  assert.match(result.address, /^0x[0-9a-fA-F]{40}$/);
  assert.deepEqual(errors, []);
  await context.close();
});
