// Two tabs of one profile signing with one wallet at the same moment: both signatures are valid,
// and the stored pairing is still consistent afterwards (a third signature works).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import {
  createWalletIn,
  harnessFixture,
  openHarness,
  readKeyStore,
  signMessageIn,
} from './support.mjs';

/** Key generation and signing against a debug build of the server: generous, never forever. */
const timeout = 180_000;

/** The server on the harness page, and the browser. */
const harness = harnessFixture();

/**
 * @param {string} message
 * @param {{ signedPayload: { signature: `0x${string}` } }} signature
 */
function recover(message, signature) {
  return recoverMessageAddress({ message, signature: signature.signedPayload.signature });
}

/**
 * How many tabs of the page's origin hold, and wait for, the Web Lock `name`.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
function locks(page, name) {
  return page.evaluate(async (name) => {
    const state = await navigator.locks.query();
    const count = (/** @type {LockInfo[] | undefined} */ list) =>
      (list ?? []).filter((lock) => lock.name === name).length;
    return { held: count(state.held), pending: count(state.pending) };
  }, name);
}

test('two tabs sign with one wallet at once: both succeed, and a third signature works after', { timeout }, async () => {
  const context = await harness.browser.newContext();
  const tabA = await openHarness(context, harness.server.url);
  const tabB = await openHarness(context, harness.server.url);
  const { created } = await createWalletIn(tabA.page);
  const mpcKey = created.address.mpcKeys[0];
  const address = created.address.address;
  const stored = await readKeyStore(tabA.page);
  assert.deepEqual(await readKeyStore(tabB.page), stored, 'one profile: one key store');

  // Both start together. So that they surely collide, the first exchange round either tab sends
  // (that tab then holds the group's Web Lock, mid-protocol) is held until the other tab is queued
  // on that lock with its own signature operation.
  const lock = `waas-sdk/${created.wallet.deviceGroup}`;
  /** @type {{ first?: string, whenHeld?: unknown, whenReleased?: unknown }} */
  const collision = {};
  for (const { tab, page } of [
    { tab: 'A', page: tabA.page },
    { tab: 'B', page: tabB.page },
  ]) {
    await page.route('**/*:exchange', async (route) => {
      if (collision.first) return route.continue();
      collision.first = tab;
      collision.whenHeld = await locks(page, lock);
      // At most 30 s, then on regardless (the check below then fails, nothing hangs).
      const deadline = Date.now() + 30_000;
      while ((await locks(page, lock)).pending === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      collision.whenReleased = await locks(page, lock);
      return route.continue();
    });
  }
  const [signedA, signedB] = await Promise.all([
    signMessageIn(tabA.page, mpcKey, 'tab A'),
    signMessageIn(tabB.page, mpcKey, 'tab B'),
  ]);
  assert.equal(/** @type {any} */ (collision.whenHeld)?.held, 1, JSON.stringify(collision));
  assert.deepEqual(collision.whenReleased, { held: 1, pending: 1 }, 'the other tab was queued');
  assert.equal(await recover('tab A', signedA), address, 'viem recovers the address (tab A)');
  assert.equal(await recover('tab B', signedB), address, 'viem recovers the address (tab B)');
  assert.deepEqual(await readKeyStore(tabA.page), stored, 'signing stores nothing');

  for (const { page } of [tabA, tabB]) await page.unroute('**/*:exchange');
  const third = await signMessageIn(tabB.page, mpcKey, 'afterwards');
  assert.equal(await recover('afterwards', third), address, 'viem recovers the address (third)');
  assert.deepEqual(tabA.errors, []);
  assert.deepEqual(tabB.errors, []);
  await context.close();
});
