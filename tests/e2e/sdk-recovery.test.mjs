// Recovery end to end through the SDK (docs/protocol/recovery.md): a second browser profile takes
// a wallet over with the backup string and the passcode against the real server, and a server
// whose answers are tampered with gets nothing: the device refuses before it reveals anything.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { collectPageErrors, harnessFixture, readKeyStore } from './support.mjs';

const PASSCODE = '123456';

const harness = harnessFixture({ extraArgs: ['--passcode-backoff', '10ms'] });

/**
 * A fresh profile with the SDK loaded and a registered device, bootstrapped with `passcode`
 * (and `options`); the client is `window.client`.
 * @param {string} passcode @param {object} [options]
 */
async function devicePage(passcode, options = {}) {
  const context = await harness.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(harness.server.url);
  await page.waitForFunction(() => document.title === 'ready');
  const name = await page.evaluate(async ({ passcode, options }) => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice(passcode, options);
    const client = await sdk.WaasClient.connect('');
    /** @type {any} */ (window).client = client;
    return (await client.registerDevice()).name;
  }, { passcode, options });
  return { page, context, errors, name };
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

/** Device A: a wallet and its backup string. */
async function backedUpWallet() {
  const a = await devicePage(PASSCODE);
  const created = await call(a.page, 'createWallet', { passcode: PASSCODE });
  assert.equal(created.code, undefined, created.message);
  const { wallet, address } = /** @type {any} */ (created.value);
  const made = await call(a.page, 'backup', wallet.deviceGroup, PASSCODE);
  assert.equal(made.code, undefined, made.message);
  return { a, wallet, address, backup: /** @type {string} */ (made.value) };
}

/** Counts the page's requests whose URL matches `pattern`. @param {import('playwright-core').Page} page @param {RegExp} pattern */
function countRequests(page, pattern) {
  const seen = { count: 0 };
  page.on('request', (request) => {
    if (pattern.test(request.url())) seen.count += 1;
  });
  return seen;
}

test('a new profile recovers the wallet with the string and the passcode, and signs for the same address', async () => {
  const { a, address, backup } = await backedUpWallet();
  const b = await devicePage(PASSCODE);
  const recovered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(recovered.code, undefined, recovered.message);
  const value = /** @type {any} */ (recovered.value);
  assert.equal(value.address.address, address.address);
  assert.equal(value.needsBackup, true);

  // Both devices sign for the one key, each with its own pairing.
  for (const device of [a, b]) {
    const signed = await call(device.page, 'signMessage', address.mpcKeys[0], 'hello', { passcode: PASSCODE });
    assert.equal(signed.code, undefined, signed.message);
  }
  // The first device sees the second one added, and both as active devices of the group.
  const events = /** @type {any[]} */ ((await call(a.page, 'listDeviceGroupEvents', value.deviceGroup)).value);
  assert.deepEqual(
    events.map((event) => [event.type, event.device]),
    [['DEVICE_ADDED', b.name]],
  );
  // An event type from a newer server is left out; the known ones still read.
  await a.page.route('**/events', async (route) => {
    const response = await route.fetch();
    const answer = await response.json();
    answer.events.push({ type: 'DEVICE_RENAMED', device: b.name, time: '2026-11-26T00:00:00Z' });
    await route.fulfill({ response, json: answer });
  });
  const newer = /** @type {any[]} */ ((await call(a.page, 'listDeviceGroupEvents', value.deviceGroup)).value);
  assert.deepEqual(newer.map((event) => event.type), ['DEVICE_ADDED']);
  await a.page.unroute('**/events');
  const group = /** @type {any} */ ((await call(a.page, 'getDeviceGroup', value.deviceGroup)).value);
  assert.deepEqual(
    group.deviceStates.map((/** @type {any} */ entry) => [entry.device, entry.state]).sort(),
    [[a.name, 'ACTIVE'], [b.name, 'ACTIVE']].sort(),
  );
  // Recovering again on the recovered profile is a no-op that answers the same wallet.
  const again = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(/** @type {any} */ (again.value)?.address.address, address.address, again.message);
  assert.deepEqual(b.errors, []);
  await a.context.close();
  await b.context.close();
});

test('a mistyped string is INVALID_BACKUP and nothing is sent', async () => {
  const { a, backup } = await backedUpWallet();
  const b = await devicePage(PASSCODE);
  const sent = countRequests(b.page, /addDevice|mpcOperations/);
  const typo = backup.slice(0, 20) + (backup[20] === 'x' ? 'y' : 'x') + backup.slice(21);
  assert.equal((await call(b.page, 'recover', typo, PASSCODE)).code, 'INVALID_BACKUP');
  assert.equal((await call(b.page, 'recover', backup.slice(0, -3), PASSCODE)).code, 'INVALID_BACKUP');
  assert.equal((await call(b.page, 'recover', 'not a backup', PASSCODE)).code, 'INVALID_BACKUP');
  assert.equal(sent.count, 0);
  await a.context.close();
  await b.context.close();
});

test('a profile bootstrapped with another passcode is told WRONG_PASSCODE by the server, then the right one recovers', async () => {
  const { a, address, backup } = await backedUpWallet();
  const thief = await devicePage('999999');
  assert.equal((await call(thief.page, 'recover', backup, '999999')).code, 'WRONG_PASSCODE');
  const b = await devicePage(PASSCODE);
  const recovered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(/** @type {any} */ (recovered.value)?.address.address, address.address, recovered.message);
  await a.context.close();
  await thief.context.close();
  await b.context.close();
});

test('a server that swaps the two ciphertexts gets no partial: UNTRUSTED_SERVER before any exchange', async () => {
  const { a, backup } = await backedUpWallet();
  const b = await devicePage(PASSCODE);
  const exchanged = countRequests(b.page, /:exchange/);
  await b.page.route('**/mpcOperations', async (route) => {
    const response = await route.fetch();
    const answer = await response.json();
    for (const entry of answer.mpcOperations ?? []) {
      const data = JSON.parse(Buffer.from(entry.mpcData, 'base64url').toString());
      if (data.protocol?.type === 'ADD_DEVICE') {
        const { deviceCiphertext, serverCiphertext } = data.protocol;
        data.protocol.deviceCiphertext = serverCiphertext;
        data.protocol.serverCiphertext = deviceCiphertext;
        entry.mpcData = Buffer.from(JSON.stringify(data)).toString('base64url');
      }
    }
    await route.fulfill({ response, json: answer });
  });
  const swapped = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(swapped.code, 'UNTRUSTED_SERVER', swapped.message);
  assert.equal(exchanged.count, 0, 'the device sent no partial');
  await a.context.close();
  await b.context.close();
});

test("a server that alters its partial decryption: UNTRUSTED_SERVER, and the device keeps nothing", async () => {
  const { a, address, backup } = await backedUpWallet();
  const b = await devicePage(PASSCODE);
  await b.page.route('**/mpcOperations/*:exchange', async (route) => {
    const body = JSON.parse(route.request().postData() ?? '{}');
    const response = await route.fetch();
    const answer = await response.json();
    if (body.round === 3 && typeof answer.message === 'string') {
      const bytes = Buffer.from(answer.message, 'base64url');
      bytes[Math.floor(bytes.length / 2)] ^= 1;
      answer.message = bytes.toString('base64url');
    }
    await route.fulfill({ response, json: answer });
  });
  const altered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(altered.code, 'UNTRUSTED_SERVER', altered.message);
  await b.page.unroute('**/mpcOperations/*:exchange');
  // Nothing was kept: the same profile recovers from the start once the server behaves.
  const recovered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(/** @type {any} */ (recovered.value)?.address.address, address.address, recovered.message);
  await a.context.close();
  await b.context.close();
});

test("round 9's answer lost: recovering again finishes the same operation", async () => {
  const { a, address, backup } = await backedUpWallet();
  const b = await devicePage(PASSCODE);
  await b.page.route('**/mpcOperations/*:exchange', async (route) => {
    const body = JSON.parse(route.request().postData() ?? '{}');
    if (body.round === 9) {
      await route.fetch();
      await route.abort('connectionreset');
    } else {
      await route.continue();
    }
  });
  assert.equal((await call(b.page, 'recover', backup, PASSCODE)).code, 'NETWORK');
  await b.page.unroute('**/mpcOperations/*:exchange');
  const recovered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(/** @type {any} */ (recovered.value)?.address.address, address.address, recovered.message);
  const signed = await call(b.page, 'signMessage', address.mpcKeys[0], 'after', { passcode: PASSCODE });
  assert.equal(signed.code, undefined, signed.message);
  await a.context.close();
  await b.context.close();
});

test('a profile set up for recovery keeps no passcode wrap: the server checks the passcode, and a cut-off recovery starts over', async () => {
  const { a, address, backup } = await backedUpWallet();
  const b = await devicePage('000000', { recovery: true });
  /** @param {any} store */
  const deviceRecord = (store) => store.meta.device;
  const before = deviceRecord(await readKeyStore(b.page));
  assert.equal(before.passcode, undefined, 'no Argon2 wrap: nothing here tests a passcode offline');
  assert.equal(typeof before.awaitingRecovery, 'object');
  // The passcode given at setup is not kept: only the server's answer says it is wrong.
  assert.equal((await call(b.page, 'recover', backup, '000000')).code, 'WRONG_PASSCODE');

  // Round 9 never reaches the server (every resend dropped): the device keeps its setup wrap, so
  // it can still unlock; recovering again matches the stored pairing to its open operation.
  await b.page.route('**/mpcOperations/*:exchange', async (route) => {
    const body = JSON.parse(route.request().postData() ?? '{}');
    if (body.round === 9) await route.abort('connectionreset');
    else await route.continue();
  });
  assert.equal((await call(b.page, 'recover', backup, PASSCODE)).code, 'NETWORK');
  const cut = deviceRecord(await readKeyStore(b.page));
  assert.equal(typeof cut.awaitingRecovery, 'object', 'the device can still unlock and start over');
  assert.equal(cut.loginWraps, undefined);
  await b.page.unroute('**/mpcOperations/*:exchange');
  const recovered = await call(b.page, 'recover', backup, PASSCODE);
  assert.equal(/** @type {any} */ (recovered.value)?.address.address, address.address, recovered.message);
  const after = deviceRecord(await readKeyStore(b.page));
  assert.equal(after.awaitingRecovery, undefined, 'the setup wrap went with the first login wrap');
  assert.equal(typeof after.loginWraps, 'object');
  const signed = await call(b.page, 'signMessage', address.mpcKeys[0], 'recovered', { passcode: PASSCODE });
  assert.equal(signed.code, undefined, signed.message);
  await a.context.close();
  await b.context.close();
});
