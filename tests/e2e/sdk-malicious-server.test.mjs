// The browser SDK against a malicious server: the security review's attacks (a server that
// rewrites its answers, played by Playwright routes over the real server's, with the operator's
// dev API key to queue work of its own), each kept as a regression test of the refusal that
// stops it. See docs/threat-model.md, "A malicious or compromised server".
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { hashMessage, recoverAddress, recoverMessageAddress, recoverTransactionAddress } from 'viem';

import { harnessDir, launchBrowser, openHarness, operatorApi, startServer } from './support.mjs';

const PASSCODE = '123456';

/** @type {string} */
let staticDir;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  staticDir = harnessDir();
  server = await startServer({ staticDir });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(staticDir, { recursive: true, force: true });
});

/**
 * One API call as the operator (the dev API key), from Node.
 * @param {'GET' | 'POST'} method
 * @param {string} path
 * @param {unknown} [json]
 */
const api = (method, path, json) => operatorApi(server)(method, path, json);

/**
 * @typedef {{ wallet: { name: string, deviceGroup: string }, address: { address: `0x${string}`, mpcKeys: string[], derivationPath: string, mpcWallet: string } }} Created
 * @typedef {{ ok?: any, code?: string, message?: string }} Outcome
 */

/**
 * A fresh profile (its own IndexedDB) with the SDK loaded, bootstrapped and registered, its client
 * in `window.client`; with `wallet`, its first wallet made honestly.
 * @param {{ wallet?: boolean }} [options]
 */
async function victim({ wallet = true } = {}) {
  const context = await browser.newContext();
  const { page, errors } = await openHarness(context, server.url);
  /** @type {Created | null} */
  const created = await page.evaluate(
    async ({ passcode, wallet }) => {
      const w = /** @type {any} */ (window);
      if (!(await w.sdk.bootstrapDevice(passcode))) throw new Error('the profile had a device');
      w.client = await w.sdk.WaasClient.connect('');
      await w.client.registerDevice();
      return wallet ? w.client.createWallet({ passcode }) : null;
    },
    { passcode: PASSCODE, wallet },
  );
  return { context, page, errors, created };
}

/**
 * Every MPC exchange the page sends (aborted ones too): the operation and the round.
 * @param {import('playwright-core').Page} page
 */
function trackExchanges(page) {
  /** @type {{ operation: string, round: number }[]} */
  const sent = [];
  page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (request.method() !== 'POST' || !pathname.endsWith(':exchange')) return;
    sent.push({
      operation: pathname.slice('/v1/'.length, -':exchange'.length),
      round: JSON.parse(request.postData() ?? '{}').round,
    });
  });
  return sent;
}

/**
 * `mpcData` (base64url JSON) decoded, changed by `edit`, encoded again.
 * @param {string} mpcData
 * @param {(data: any) => void} edit
 */
function rewriteMpcData(mpcData, edit) {
  const data = JSON.parse(Buffer.from(mpcData, 'base64url').toString());
  edit(data);
  return Buffer.from(JSON.stringify(data)).toString('base64url');
}

/** @param {string[]} errors */
const uncaught = (errors) => errors.filter((error) => error.startsWith('uncaught'));

test('createWallet pointed at a signing queued on an existing wallet: UNTRUSTED_SERVER, nothing computed', async () => {
  const { context, page, errors, created } = await victim();
  try {
    assert.ok(created);
    const key = created.address.mpcKeys[0];
    const group = created.wallet.deviceGroup;
    // The attacker queues a signing of its own digest by the victim's first wallet...
    const evilDigest = `0x${'ee'.repeat(32)}`;
    const evil = await api('POST', `/v1/${key}/signatures`, { payload: evilDigest });
    // ...and answers the next CreateMPCWallet with that operation in a key generation's clothes.
    await page.route('**/v1/pools/default/mpcWallets', async (route) => {
      const real = await route.fetch();
      const operation = await real.json();
      operation.name = evil.name;
      operation.metadata.deviceGroup = group;
      operation.metadata.mpcOperation = evil.metadata.mpcOperation;
      await route.fulfill({ response: real, json: operation });
    });
    const exchanges = trackExchanges(page);
    /** @type {Outcome} */
    const outcome = await page.evaluate(
      (passcode) =>
        /** @type {any} */ (window).client.createWallet({ passcode }).then(
          (/** @type {any} */ ok) => ({ ok }),
          (/** @type {any} */ error) => ({ code: error.code, message: error.message }),
        ),
      PASSCODE,
    );
    assert.equal(outcome.code, 'UNTRUSTED_SERVER', JSON.stringify(outcome));
    assert.deepEqual(exchanges, [], 'not one MPC round was sent');
    // The queued signing never ran: not done, no signature for viem to recover anything from.
    const queued = await api('GET', `/v1/${evil.name}`);
    assert.equal(queued.done, false, JSON.stringify(queued));
    assert.equal(queued.response, undefined);
    const pending = await page.evaluate(
      (group) => /** @type {any} */ (window).client.listMPCOperations(group),
      group,
    );
    assert.ok(
      pending.some((/** @type {any} */ entry) => entry.name === evil.metadata.mpcOperation),
      'the signing is still pending for the device',
    );
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('path swap: signMessage with the 0/0 key refuses an operation at 0/5 (UNTRUSTED_SERVER, no signature)', async () => {
  const { context, page, errors, created } = await victim();
  try {
    assert.ok(created);
    const key = created.address.mpcKeys[0];
    assert.match(key, /\/mpcKeys\/m-0-0$/);
    const group = created.wallet.deviceGroup;
    const message = 'hello waas';
    const digest = hashMessage(message);

    // (a) The review's attack: the operator makes the 0/5 key and queues the same digest on it,
    // then answers signMessage(m-0-0) with that operation, its mpcData renamed to m-0-0.
    const other = await api('POST', `/v1/${group}/mpcKeys`, { derivationPath: '0/5' });
    const evil = await api('POST', `/v1/${other.name}/signatures`, { payload: digest });
    await page.route(`**/v1/${key}/signatures`, (route) =>
      route.fulfill({ json: { ...evil, metadata: { ...evil.metadata, mpcKey: key } } }),
    );
    await page.route(`**/v1/${group}/mpcOperations`, async (route) => {
      const real = await route.fetch();
      const list = await real.json();
      for (const entry of list.mpcOperations) {
        entry.mpcData = rewriteMpcData(entry.mpcData, (data) => {
          if (data.protocol.mpcKey === other.name) data.protocol.mpcKey = key;
        });
      }
      await route.fulfill({ response: real, json: list });
    });
    const exchanges = trackExchanges(page);
    /** @param {string} mpcKey @returns {Promise<Outcome>} */
    const signIn = (mpcKey) =>
      page.evaluate(
        ({ mpcKey, message, passcode }) =>
          /** @type {any} */ (window).client.signMessage(mpcKey, message, { passcode }).then(
            (/** @type {any} */ ok) => ({ ok }),
            (/** @type {any} */ error) => ({ code: error.code, message: error.message }),
          ),
        { mpcKey, message, passcode: PASSCODE },
      );
    const swapped = await signIn(key);
    assert.equal(swapped.code, 'UNTRUSTED_SERVER', JSON.stringify(swapped));
    assert.match(swapped.message ?? '', /0\/5/);
    assert.deepEqual(exchanges, [], 'not one MPC round was sent');
    const evilAfter = await api('GET', `/v1/${evil.name}`);
    assert.equal(evilAfter.done, false, JSON.stringify(evilAfter));
    assert.equal(evilAfter.response, undefined);

    // (b) The plain rewrite: the real operation of m-0-0, its mpcData saying 0/5.
    await page.unrouteAll({ behavior: 'wait' });
    /** @type {any} */
    let real;
    await page.route(`**/v1/${key}/signatures`, async (route) => {
      const response = await route.fetch();
      real = await response.json();
      await route.fulfill({ response, json: real });
    });
    await page.route(`**/v1/${group}/mpcOperations`, async (route) => {
      const response = await route.fetch();
      const list = await response.json();
      for (const entry of list.mpcOperations) {
        entry.mpcData = rewriteMpcData(entry.mpcData, (data) => {
          if (data.protocol.mpcKey === key) data.protocol.derivationPath = '0/5';
        });
      }
      await route.fulfill({ response, json: list });
    });
    const rewritten = await signIn(key);
    assert.equal(rewritten.code, 'UNTRUSTED_SERVER', JSON.stringify(rewritten));
    assert.deepEqual(exchanges, [], 'not one MPC round was sent');
    assert.ok(real?.name, 'the real CreateSignature was made');
    const realAfter = await api('GET', `/v1/${real.name}`);
    assert.equal(realAfter.done, false, JSON.stringify(realAfter));
    assert.equal(realAfter.response, undefined);

    // The refusals retired nothing: an honest signing with the same key still works.
    await page.unrouteAll({ behavior: 'wait' });
    const honest = await signIn(key);
    assert.ok(honest.ok, JSON.stringify(honest));
    assert.equal(
      await recoverMessageAddress({ message, signature: honest.ok.signedPayload.signature }),
      created.address.address,
    );
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('a swapped transaction: signTransaction refuses an operation of another transaction (UNTRUSTED_SERVER, no round sent)', async () => {
  const { context, page, errors, created } = await victim();
  try {
    assert.ok(created);
    const key = created.address.mpcKeys[0];
    const transfer = {
      type: 'eip1559', chainId: '0x1', nonce: '0x0', maxPriorityFeePerGas: '0x3b9aca00',
      maxFeePerGas: '0x4a817c800', gas: '0x5208', value: '0x1',
      to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    };
    // The operator queues the same key's signing of a transfer of everything to itself, and
    // answers the device's CreateSignature with that operation.
    const evil = await api('POST', `/v1/${key}/signatures`, {
      typedPayload: {
        type: 'transaction',
        transaction: { ...transfer, value: '0xde0b6b3a76400000', to: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC' },
      },
    });
    await page.route(`**/v1/${key}/signatures`, (route) => route.fulfill({ json: evil }));
    const exchanges = trackExchanges(page);
    /** @type {Outcome} */
    const outcome = await page.evaluate(
      ({ key, transfer, passcode }) =>
        /** @type {any} */ (window).client.signTransaction(key, transfer, { passcode }).then(
          (/** @type {any} */ ok) => ({ ok }),
          (/** @type {any} */ error) => ({ code: error.code, message: error.message }),
        ),
      { key, transfer, passcode: PASSCODE },
    );
    assert.equal(outcome.code, 'UNTRUSTED_SERVER', JSON.stringify(outcome));
    assert.deepEqual(exchanges, [], 'not one MPC round was sent');
    const evilAfter = await api('GET', `/v1/${evil.name}`);
    assert.equal(evilAfter.done, false, JSON.stringify(evilAfter));
    // Unrouted, the same transaction signs.
    await page.unrouteAll({ behavior: 'wait' });
    const honest = await page.evaluate(
      ({ key, transfer, passcode }) =>
        /** @type {any} */ (window).client.signTransaction(key, transfer, { passcode }),
      { key, transfer, passcode: PASSCODE },
    );
    assert.equal(
      await recoverTransactionAddress({ serializedTransaction: honest.rawTransaction }),
      created.address.address,
    );
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('a forged GetOperation signature: signPayload and signMessage return the device\'s own, viem recovers the address', async () => {
  const { context, page, errors, created } = await victim();
  try {
    assert.ok(created);
    const key = created.address.mpcKeys[0];
    const forged = {
      r: `0x${'11'.repeat(32)}`,
      s: `0x${'22'.repeat(32)}`,
      v: 27,
      signature: `0x${'11'.repeat(32)}${'22'.repeat(32)}1b`,
    };
    await page.route('**/v1/operations/*', async (route) => {
      const real = await route.fetch();
      const operation = await real.json();
      if (operation.done && operation.response) {
        operation.response.signedPayload = forged;
      }
      await route.fulfill({ response: real, json: operation });
    });
    const digest = hashMessage('a digest');
    const message = 'hi';
    const { payload, personal } = await page.evaluate(
      async ({ key, digest, message, passcode }) => {
        const { client } = /** @type {any} */ (window);
        return {
          payload: await client.signPayload(key, digest, { passcode }),
          personal: await client.signMessage(key, message, { passcode }),
        };
      },
      { key, digest, message, passcode: PASSCODE },
    );
    for (const result of [payload, personal]) {
      assert.notEqual(result.signedPayload.signature, forged.signature);
      assert.equal(result.mpcKey, key);
    }
    assert.equal(payload.payload, digest);
    assert.equal(
      await recoverAddress({ hash: digest, signature: payload.signedPayload.signature }),
      created.address.address,
      'viem recovers the wallet address from signPayload',
    );
    assert.equal(
      await recoverMessageAddress({ message, signature: personal.signedPayload.signature }),
      created.address.address,
      'viem recovers the wallet address from signMessage',
    );
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('key generation round 5 lost, resends too: the retry of computeMPCOperation with the same mpcData completes the wallet', async () => {
  const { context, page, errors } = await victim({ wallet: false });
  try {
    /** @type {any} */
    let walletOperation;
    /** @type {any} */
    let listed;
    page.on('response', async (response) => {
      const { pathname } = new URL(response.url());
      const method = response.request().method();
      if (method === 'POST' && pathname === '/v1/pools/default/mpcWallets') {
        walletOperation = await response.json();
      } else if (method === 'GET' && pathname.endsWith('/mpcOperations') && listed === undefined) {
        listed = await response.json();
      }
    });
    // Round 5 is lost, and so are the SDK's resends of it (a network down for a few seconds).
    let dropped = 0;
    let dropping = true;
    await page.route('**/mpcOperations/*:exchange', async (route) => {
      const body = JSON.parse(route.request().postData() ?? '{}');
      if (body.round === 5 && dropping) {
        dropped += 1;
        return route.abort('connectionreset');
      }
      return route.continue();
    });
    const exchanges = trackExchanges(page);
    /** @type {Outcome} */
    const first = await page.evaluate(
      (passcode) =>
        /** @type {any} */ (window).client.createWallet({ passcode }).then(
          (/** @type {any} */ ok) => ({ ok }),
          (/** @type {any} */ error) => ({ code: error.code, message: error.message }),
        ),
      PASSCODE,
    );
    dropping = false;
    assert.equal(dropped, 4, 'round 5 and its three resends were sent and lost');
    assert.equal(first.code, 'NETWORK', JSON.stringify(first));
    assert.ok(walletOperation, 'CreateMPCWallet answered');
    assert.ok(listed, 'the device listed its operations');
    const { deviceGroup, mpcOperation, mpcWallet } = walletOperation.metadata;
    const entry = listed.mpcOperations.find((/** @type {any} */ e) => e.name === mpcOperation);
    assert.ok(entry, 'the key generation was listed');
    assert.equal((await api('GET', `/v1/${walletOperation.name}`)).done, false, 'not done without round 5');

    // The retry: the same mpcData the first attempt ran.
    const retry = await page.evaluate(
      async ({ deviceGroup, mpcData, name, passcode }) => {
        const { client } = /** @type {any} */ (window);
        const pending = (await client.listMPCOperations(deviceGroup)).map((/** @type {any} */ e) => e.name);
        const outcome = await client.computeMPCOperation(mpcData, { passcode }).then(
          () => 'ok',
          (/** @type {any} */ error) => `${error.code}: ${error.message}`,
        );
        const operation = await client.getOperation(name);
        return { pending, outcome, operation };
      },
      { deviceGroup, mpcData: entry.mpcData, name: walletOperation.name, passcode: PASSCODE },
    );
    assert.ok(retry.pending.includes(mpcOperation), 'still pending before the retry');
    assert.equal(retry.outcome, 'ok');
    assert.equal(retry.operation.done, true, JSON.stringify(retry.operation));
    assert.equal(retry.operation.error, undefined);
    assert.equal(retry.operation.response.name, mpcWallet);
    assert.equal(retry.operation.response.deviceGroup, deviceGroup);
    assert.deepEqual(
      exchanges.filter((e) => e.operation === mpcOperation).map((e) => e.round),
      [1, 3, 5, 5, 5, 5, 5],
      'the stored pairing is confirmed again (four lost sends, then the retry), not generated again',
    );

    // The wallet works: an address of the device's own derivation, and a signature by it.
    await page.unrouteAll({ behavior: 'wait' });
    const used = await page.evaluate(
      async ({ mpcWallet, passcode }) => {
        const { client } = /** @type {any} */ (window);
        const address = await client.generateAddress(mpcWallet);
        const signature = await client.signMessage(address.mpcKeys[0], 'after the retry', { passcode });
        return { address, signature };
      },
      { mpcWallet, passcode: PASSCODE },
    );
    assert.equal(
      await recoverMessageAddress({ message: 'after the retry', signature: used.signature.signedPayload.signature }),
      used.address.address,
    );
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('a Date 75 s ahead on unsigned and signed successes does not shift the next tokens (no CLOCK_SKEW)', async () => {
  const { context, page, errors, created } = await victim();
  try {
    assert.ok(created);
    const group = created.wallet.deviceGroup;
    const shiftMs = 75_000;
    /** @param {import('playwright-core').Route} route */
    const lie = async (route) => {
      const real = await route.fetch();
      const date = new Date(Date.now() + shiftMs).toUTCString();
      await route.fulfill({ response: real, headers: { ...real.headers(), date } });
    };
    await page.route('**/v1/device:register', lie);
    await page.route(`**/v1/${group}`, lie);
    /** @type {number[]} */
    const seenAhead = [];
    /** @param {import('playwright-core').Response} response */
    const onLie = (response) => {
      const date = response.headers().date;
      if (date) seenAhead.push(Date.parse(date) - Date.now());
    };
    page.on('response', onLie);
    await page.evaluate(
      async (group) => {
        const { client } = /** @type {any} */ (window);
        await client.registerDevice(); // unsigned
        await client.getDeviceGroup(group); // signed, and accepted
      },
      group,
    );
    page.off('response', onLie);
    assert.equal(seenAhead.length, 2);
    for (const ahead of seenAhead) assert.ok(ahead > 60_000, `the page saw Date ${ahead} ms ahead`);
    await page.unrouteAll({ behavior: 'wait' });

    /** @type {{ call: string, status: number }[]} */
    const answers = [];
    /** @type {{ call: string, ahead: number, lifetime: number }[]} */
    const tokens = [];
    page.on('request', (request) => {
      const authorization = request.headers().authorization;
      if (!authorization) return;
      const claims = JSON.parse(Buffer.from(authorization.split('.')[1], 'base64url').toString());
      tokens.push({
        call: `${request.method()} ${new URL(request.url()).pathname}`,
        ahead: claims.iat - Math.floor(Date.now() / 1000),
        lifetime: claims.exp - claims.iat,
      });
    });
    page.on('response', (response) => {
      const { pathname } = new URL(response.url());
      if (pathname.startsWith('/v1/')) {
        answers.push({ call: `${response.request().method()} ${pathname}`, status: response.status() });
      }
    });
    const message = 'after the lie';
    const signature = await page.evaluate(
      ({ key, message, passcode }) =>
        /** @type {any} */ (window).client.signMessage(key, message, { passcode }),
      { key: created.address.mpcKeys[0], message, passcode: PASSCODE },
    );
    assert.equal(
      await recoverMessageAddress({ message, signature: signature.signedPayload.signature }),
      created.address.address,
    );
    assert.ok(answers.length > 0);
    assert.deepEqual(
      answers.filter((answer) => answer.status >= 300),
      [],
      `every call succeeded at once: ${JSON.stringify(answers)}`,
    );
    assert.ok(tokens.length > 0);
    for (const token of tokens) {
      assert.ok(Math.abs(token.ahead) <= 2, `token on the real clock: ${JSON.stringify(token)}`);
      assert.ok(token.lifetime <= 60, JSON.stringify(token));
    }
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

test('a tampered passcode salt or KDF setting reads as STORAGE_CORRUPT, never WRONG_PASSCODE', async () => {
  const context = await browser.newContext();
  const { page, errors } = await openHarness(context, server.url);
  try {
    const results = await page.evaluate(async (passcode) => {
      const { sdk } = /** @type {any} */ (window);
      if (!(await sdk.bootstrapDevice(passcode))) throw new Error('the profile had a device');
      /** @type {IDBDatabase} */
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('waas-sdk');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      /** @returns {Promise<any>} */
      const get = () =>
        new Promise((resolve, reject) => {
          const request = db.transaction('meta').objectStore('meta').get('device');
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
      /** @param {any} value */
      const put = (value) =>
        new Promise((resolve, reject) => {
          const transaction = db.transaction('meta', 'readwrite');
          transaction.objectStore('meta').put(value, 'device');
          transaction.oncomplete = resolve;
          transaction.onerror = () => reject(transaction.error);
        });
      /** @param {string} code */
      const check = async (code) => {
        const device = await sdk.WaasDevice.open();
        return device.checkPasscode(code).then(
          () => 'ok',
          (/** @type {any} */ error) => error.code,
        );
      };
      const original = await get();
      const { memoryKib, iterations } = original.passcode;
      /** @type {[string, (device: any) => void][]} */
      const tampers = [
        ['salt: one bit flipped', (d) => void (d.passcode.salt[0] ^= 1)],
        ['salt: last byte flipped', (d) => void (d.passcode.salt[d.passcode.salt.length - 1] ^= 0x80)],
        ['memoryKib: +1 (in range)', (d) => void (d.passcode.memoryKib = memoryKib + 1)],
        ['memoryKib: 32768 (in range)', (d) => void (d.passcode.memoryKib = 32768)],
        ['memoryKib: 8, iterations: 1 (lowered)', (d) => void ((d.passcode.memoryKib = 8), (d.passcode.iterations = 1))],
        ['iterations: +1 (in range)', (d) => void (d.passcode.iterations = iterations + 1)],
      ];
      /** @type {Record<string, { right: string, wrong: string }>} */
      const results = {};
      for (const [label, tamper] of tampers) {
        const device = structuredClone(original);
        tamper(device);
        await put(device);
        results[label] = { right: await check(passcode), wrong: await check('000000') };
      }
      await put(original);
      results['restored'] = { right: await check(passcode), wrong: await check('000000') };
      db.close();
      return { results, memoryKib, iterations };
    }, PASSCODE);
    assert.equal(results.memoryKib, 19456);
    assert.equal(results.iterations, 2);
    /** @type {Record<string, { right: string, wrong: string }>} */
    const expected = {};
    for (const label of Object.keys(results.results)) {
      expected[label] = { right: 'STORAGE_CORRUPT', wrong: 'STORAGE_CORRUPT' };
    }
    expected['restored'] = { right: 'ok', wrong: 'WRONG_PASSCODE' };
    assert.deepEqual(results.results, expected);
    assert.deepEqual(uncaught(errors), []);
  } finally {
    await context.close();
  }
});

/**
 * Two bootstraps of one profile at once, with different passcodes: in one page, and in two tabs.
 * Returns what each call resolved to, which passcodes then open the device, the device names two
 * tabs register as, and what the pages threw uncaught.
 */
async function raceBootstraps() {
  const samePageContext = await browser.newContext();
  const tabs = await browser.newContext();
  try {
    const { page, errors } = await openHarness(samePageContext, server.url);
    const samePage = await page.evaluate(async () => {
      const { sdk } = /** @type {any} */ (window);
      const settled = await Promise.allSettled([sdk.bootstrapDevice('111111'), sdk.bootstrapDevice('222222')]);
      const outcomes = settled.map((result) =>
        result.status === 'fulfilled' ? result.value : `${result.reason.code}: ${result.reason.message}`,
      );
      const device = await sdk.WaasDevice.open();
      /** @param {string} code */
      const check = (code) =>
        device.checkPasscode(code).then(
          () => 'ok',
          (/** @type {any} */ error) => error.code,
        );
      return { outcomes, unlocks: [await check('111111'), await check('222222')] };
    });

    const [one, two] = await Promise.all([openHarness(tabs, server.url), openHarness(tabs, server.url)]);
    /** @param {import('playwright-core').Page} page @param {string} passcode */
    const bootstrapIn = (page, passcode) =>
      page.evaluate(
        (passcode) =>
          /** @type {any} */ (window).sdk.bootstrapDevice(passcode).then(
            (/** @type {boolean} */ value) => value,
            (/** @type {any} */ error) => `${error.code}: ${error.message}`,
          ),
        passcode,
      );
    const tabOutcomes = await Promise.all([bootstrapIn(one.page, '111111'), bootstrapIn(two.page, '222222')]);
    /** @param {import('playwright-core').Page} page */
    const registerIn = (page) =>
      page.evaluate(async () => {
        const { sdk } = /** @type {any} */ (window);
        const client = await sdk.WaasClient.connect('');
        return (await client.registerDevice()).name;
      });
    const names = await Promise.all([registerIn(one.page), registerIn(two.page)]);
    // Let any late IndexedDB events of the losing transactions fire before reading the errors.
    await Promise.all([page, one.page, two.page].map((p) => p.evaluate(() => new Promise((r) => setTimeout(r, 200)))));
    return {
      samePage,
      tabOutcomes,
      names,
      uncaught: { samePage: uncaught(errors), tabs: uncaught([...one.errors, ...two.errors]) },
    };
  } finally {
    await samePageContext.close();
    await tabs.close();
  }
}

test('two bootstraps at once: one true, one false, one device (same page and two tabs)', async () => {
  const race = await raceBootstraps();
  assert.deepEqual([...race.samePage.outcomes].sort(), [false, true], JSON.stringify(race.samePage));
  // All or nothing: the winner's passcode opens the device, the loser's is simply wrong.
  const winner = race.samePage.outcomes.indexOf(true);
  assert.deepEqual(race.samePage.unlocks, winner === 0 ? ['ok', 'WRONG_PASSCODE'] : ['WRONG_PASSCODE', 'ok']);
  assert.deepEqual([...race.tabOutcomes].sort(), [false, true], JSON.stringify(race.tabOutcomes));
  assert.equal(race.names[0], race.names[1], 'both tabs are the one device');
});

test('two bootstraps at once: the losing one throws nothing uncaught in the page', async () => {
  // The loser's insert-only transaction fails: its first add with ConstraintError, the others
  // with AbortError; every one of those error events bubbles to the transaction's error handler.
  const race = await raceBootstraps();
  assert.deepEqual(race.uncaught, { samePage: [], tabs: [] });
});
