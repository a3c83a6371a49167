// A device whose clock is wrong: the server refuses a token minted at the wrong time (CLOCK_SKEW
// ahead, TOKEN_EXPIRED behind), the SDK takes the server's time from the Date header and mints
// the token again, once. Every call still succeeds.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import { harnessFixture } from './support.mjs';

/** Key generation and signing against a debug build of the server: generous, never forever. */
const timeout = 180_000;

/** The server on the harness page, and the browser. */
const harness = harnessFixture();

/**
 * Runs before any script of the page: `Date.now()` and `new Date()` are `shiftMs` off.
 * @param {number} shiftMs
 */
function shiftClock(shiftMs) {
  const RealDate = Date;
  const now = () => RealDate.now() + shiftMs;
  /** @param {any[]} args */
  function ShiftedDate(...args) {
    if (!new.target) return new RealDate(now()).toString();
    return args.length === 0 ? new RealDate(now()) : new RealDate(...(/** @type {[]} */ (args)));
  }
  ShiftedDate.prototype = RealDate.prototype;
  ShiftedDate.now = now;
  ShiftedDate.parse = RealDate.parse;
  ShiftedDate.UTC = RealDate.UTC;
  globalThis.Date = /** @type {DateConstructor} */ (/** @type {unknown} */ (ShiftedDate));
}

for (const { label, shiftMs, reason } of [
  { label: '5 minutes ahead', shiftMs: 5 * 60_000, reason: 'CLOCK_SKEW' },
  { label: '5 minutes behind', shiftMs: -5 * 60_000, reason: 'TOKEN_EXPIRED' },
]) {
  test(`a page clock ${label}: every call succeeds, corrected from Date, retried once`, { timeout }, async () => {
    const context = await harness.browser.newContext();
    const page = await context.newPage();
    await page.addInitScript(shiftClock, shiftMs);
    /** @type {{ call: string, status: number, reason?: string }[]} */
    const answers = [];
    /** @type {Promise<void>[]} */
    const reading = [];
    page.on('response', (response) => {
      const url = new URL(response.url());
      if (!url.pathname.startsWith('/v1/')) return;
      /** @type {{ call: string, status: number, reason?: string }} */
      const entry = { call: `${response.request().method()} ${url.pathname}`, status: response.status() };
      answers.push(entry);
      if (entry.status === 401) {
        reading.push(response.json().then((body) => void (entry.reason = body.reason)));
      }
    });
    /** @type {string[]} */
    const errors = [];
    page.on('console', (message) => {
      // The refused first attempt is logged by Chromium as a failed resource load; nothing else may be.
      if (message.type() === 'error' && !/status of 401/.test(message.text())) {
        errors.push(message.text());
      }
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(harness.server.url);
    await page.waitForFunction(() => document.title === 'ready');

    const pageNow = await page.evaluate(() => Date.now());
    assert.ok(Math.abs(pageNow - Date.now() - shiftMs) < 10_000, 'the page clock is shifted');

    /** The refusals among the answers from `from` on, once their bodies are read. @param {number} from */
    const refusedSince = async (from) => {
      await Promise.all(reading);
      return answers.slice(from).filter((answer) => answer.status >= 400);
    };
    /** @param {string} call */
    const refusal = (call) => ({ call, status: 401, reason });

    // A client's first signed call: at most one refusal, then the same call minted again works.
    let mark = answers.length;
    const created = await page.evaluate(async () => {
      const { sdk } = /** @type {any} */ (window);
      await sdk.bootstrapDevice('123456');
      const client = await sdk.WaasClient.connect('');
      await client.registerDevice();
      return client.createWallet({ passcode: '123456' });
    });
    const first = await refusedSince(mark);
    assert.ok(first.length <= 1, JSON.stringify(answers));
    if (first.length === 1) assert.deepEqual(first, [refusal('POST /v1/pools/default/mpcWallets')]);

    // A fresh client whose first call is signed (the passcode's login, which opens the data key
    // of a device with a wallet): refused once for the clock, retried, done.
    const mpcKey = created.address.mpcKeys[0];
    mark = answers.length;
    const signature = await page.evaluate(async (mpcKey) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      /** @type {any} */ (window).fresh = client;
      return client.signMessage(mpcKey, 'skewed', { passcode: '123456' });
    }, mpcKey);
    assert.deepEqual(
      await refusedSince(mark),
      [refusal(`POST /v1/${mpcKey.split('/mpcKeys/')[0]}/passcode:loginStart`)],
      `one refusal, then the retry: ${JSON.stringify(answers.slice(mark))}`,
    );
    assert.equal(
      await recoverMessageAddress({ message: 'skewed', signature: signature.signedPayload.signature }),
      created.address.address,
      'viem recovers the wallet address',
    );

    // The same client keeps its corrected clock: no refusal any more.
    mark = answers.length;
    const address = await page.evaluate(
      (wallet) => /** @type {any} */ (window).fresh.generateAddress(wallet),
      created.wallet.name,
    );
    assert.equal(address.derivationPath, '0/1');
    assert.deepEqual(await refusedSince(mark), []);
    assert.deepEqual(errors, []);
    await context.close();
  });
}
