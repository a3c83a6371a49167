// The wallet outlives the page and the browser: a reload, then a restart of Chromium on a
// persistent profile, and the same key signs again after each (viem checks every signature).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import {
  createWalletIn,
  harnessDir,
  launchBrowser,
  launchPersistentBrowser,
  openHarness,
  readKeyStore,
  signMessageIn,
  startServer,
} from './support.mjs';

/** Key generation and signing against a debug build of the server: generous, never forever. */
const timeout = 180_000;

/** @type {string} */
let staticDir;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;

before(async () => {
  staticDir = harnessDir();
  server = await startServer({ staticDir });
});

after(async () => {
  await server?.stop();
  rmSync(staticDir, { recursive: true, force: true });
});

/**
 * Signs `message` with `mpcKey` in the page and checks with viem that `address` signed it.
 * @param {import('playwright-core').Page} page
 * @param {string} mpcKey
 * @param {`0x${string}`} address
 * @param {string} message
 */
async function assertSigns(page, mpcKey, address, message) {
  const signature = await signMessageIn(page, mpcKey, message);
  assert.equal(
    await recoverMessageAddress({ message, signature: signature.signedPayload.signature }),
    address,
    `viem recovers the wallet address from the signature of "${message}"`,
  );
}

/**
 * Whether the page's profile has a device, and what `bootstrapDevice` answers now (`false`: a
 * no-op, the device is kept).
 * @param {import('playwright-core').Page} page
 */
function deviceState(page) {
  return page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    const device = await sdk.WaasDevice.open();
    return {
      isBootstrapped: await device.isBootstrapped(),
      bootstrapAgain: await sdk.bootstrapDevice('999999'),
    };
  });
}

test('the wallet survives a page reload: the same key signs again', { timeout }, async () => {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const { page, errors } = await openHarness(context, server.url);
    const { created } = await createWalletIn(page);
    const mpcKey = created.address.mpcKeys[0];
    await assertSigns(page, mpcKey, created.address.address, 'before the reload');
    const stored = await readKeyStore(page);

    await page.reload();
    await page.waitForFunction(() => document.title === 'ready');
    assert.deepEqual(await readKeyStore(page), stored, 'the key store is as it was');
    assert.deepEqual(await deviceState(page), { isBootstrapped: true, bootstrapAgain: false });
    await assertSigns(page, mpcKey, created.address.address, 'after the reload');
    assert.deepEqual(await readKeyStore(page), stored);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the wallet survives a browser restart on a persistent profile: the same key signs again', { timeout }, async () => {
  const userDataDir = mkdtempSync(join(tmpdir(), 'waas-profile-'));
  /** @type {import('playwright-core').BrowserContext[]} */
  const launched = [];
  try {
    const first = await launchPersistentBrowser(userDataDir);
    launched.push(first);
    const { page, errors } = await openHarness(first, server.url);
    const { created } = await createWalletIn(page);
    const mpcKey = created.address.mpcKeys[0];
    await assertSigns(page, mpcKey, created.address.address, 'before the restart');
    const stored = await readKeyStore(page);
    assert.deepEqual(errors, []);
    await first.close();

    const second = await launchPersistentBrowser(userDataDir);
    launched.push(second);
    const { page: again, errors: againErrors } = await openHarness(second, server.url);
    // Same records, and the same non-extractable keys (their identity checks match).
    assert.deepEqual(await readKeyStore(again), stored, 'the key store is as it was');
    assert.deepEqual(await deviceState(again), { isBootstrapped: true, bootstrapAgain: false });
    await assertSigns(again, mpcKey, created.address.address, 'after the restart');
    assert.deepEqual(await readKeyStore(again), stored);
    assert.deepEqual(againErrors, []);
  } finally {
    // Closing twice is harmless; a browser left open would keep this file from ever ending.
    for (const context of launched) await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
});
