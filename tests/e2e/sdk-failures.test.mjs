// The browser SDK when things go wrong: the server unreachable, a tampered key store, a server
// that lies about an address, waits that end early. Each failure must carry its precise code, and
// a failed call must leave the key store exactly as it was.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { getAddress, hashMessage, recoverAddress, recoverMessageAddress } from 'viem';

import {
  closedPort,
  createWalletIn,
  flipStoredByte,
  harnessFixture,
  openHarness,
  readKeyStore,
  setStoredField,
  signMessageIn,
  startServer,
} from './support.mjs';

/** Key generation and signing against a debug build of the server: generous, never forever. */
const timeout = 180_000;

/** The server on the harness page, and the browser. */
const harness = harnessFixture();

/** A fresh profile (its own IndexedDB) with the harness of `url` loaded. */
async function freshPage(url = harness.server.url) {
  const context = await harness.browser.newContext();
  const { page, errors } = await openHarness(context, url);
  return { page, errors, context };
}

test('the server unreachable (a closed port): every call rejects with NETWORK, nothing stored changes', { timeout }, async () => {
  const { page, context } = await freshPage();
  const { created } = await createWalletIn(page);
  const mpcKey = created.address.mpcKeys[0];
  const digest = hashMessage('offline');
  // A real operation name, from the live server, for the calls that read one.
  const operation = await page.evaluate(
    async ({ mpcKey, digest }) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      return client.createSignature(mpcKey, digest);
    },
    { mpcKey, digest },
  );
  const before = await readKeyStore(page);
  assert.ok(before?.records[`pairing/${created.wallet.deviceGroup}/0`], 'the pairing is stored');

  const deadUrl = `http://127.0.0.1:${await closedPort()}`;
  const codes = await page.evaluate(
    async ({ deadUrl, wallet, group, mpcKey, digest, operation }) => {
      const { sdk } = /** @type {any} */ (window);
      /** @param {() => Promise<unknown>} call */
      const code = (call) =>
        call().then(
          () => 'resolved',
          (/** @type {any} */ error) =>
            error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
        );
      const client = await sdk.WaasClient.connect(deadUrl);
      const unlock = { passcode: '123456' };
      return {
        registerDevice: await code(() => client.registerDevice()),
        createMPCWallet: await code(() => client.createMPCWallet()),
        getDeviceGroup: await code(() => client.getDeviceGroup(group)),
        listMPCOperations: await code(() => client.listMPCOperations(group)),
        generateAddress: await code(() => client.generateAddress(wallet)),
        createSignature: await code(() => client.createSignature(mpcKey, digest)),
        getOperation: await code(() => client.getOperation(operation)),
        waitOperation: await code(() => client.waitOperation(operation)),
        createWallet: await code(() => client.createWallet(unlock)),
        signPayload: await code(() => client.signPayload(mpcKey, digest, unlock)),
        signMessage: await code(() => client.signMessage(mpcKey, 'offline', unlock)),
      };
    },
    {
      deadUrl,
      wallet: created.wallet.name,
      group: created.wallet.deviceGroup,
      mpcKey,
      digest,
      operation: operation.name,
    },
  );
  assert.deepEqual(codes, {
    registerDevice: 'NETWORK',
    createMPCWallet: 'NETWORK',
    getDeviceGroup: 'NETWORK',
    listMPCOperations: 'NETWORK',
    generateAddress: 'NETWORK',
    createSignature: 'NETWORK',
    getOperation: 'NETWORK',
    waitOperation: 'NETWORK',
    createWallet: 'NETWORK',
    signPayload: 'NETWORK',
    signMessage: 'NETWORK',
  });
  assert.deepEqual(await readKeyStore(page), before, 'the key store is unchanged');
  await context.close();
});

test('the server stopped under a working client: NETWORK, nothing stored changes', { timeout }, async () => {
  // Its own server, so the others keep theirs; the page stays loaded after it stops.
  const own = await startServer({ staticDir: harness.staticDir });
  let running = true;
  try {
    const { page, context } = await freshPage(own.url);
    const { created } = await createWalletIn(page);
    const mpcKey = created.address.mpcKeys[0];
    await page.evaluate(async () => {
      const { sdk } = /** @type {any} */ (window);
      /** @type {any} */ (window).client = await sdk.WaasClient.connect('');
    });
    const before = await readKeyStore(page);
    await own.stop();
    running = false;

    const codes = await page.evaluate(async (mpcKey) => {
      const { sdk, client } = /** @type {any} */ (window);
      /** @param {() => Promise<unknown>} call */
      const code = (call) =>
        call().then(
          () => 'resolved',
          (/** @type {any} */ error) =>
            error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
        );
      const unlock = { passcode: '123456' };
      return {
        signMessage: await code(() => client.signMessage(mpcKey, 'server down', unlock)),
        createWallet: await code(() => client.createWallet(unlock)),
        registerDevice: await code(() => client.registerDevice()),
      };
    }, mpcKey);
    assert.deepEqual(codes, { signMessage: 'NETWORK', createWallet: 'NETWORK', registerDevice: 'NETWORK' });
    assert.deepEqual(await readKeyStore(page), before, 'the key store is unchanged');
    await context.close();
  } finally {
    if (running) await own.stop();
  }
});

test('a tampered pairing record: signPayload rejects with STORAGE_CORRUPT and nothing else changes', { timeout }, async () => {
  const { page, errors, context } = await freshPage();
  const { created } = await createWalletIn(page);
  const mpcKey = created.address.mpcKeys[0];
  const pairing = {
    store: 'records',
    key: `pairing/${created.wallet.deviceGroup}/0`,
    path: ['ciphertext'],
  };
  const original = await readKeyStore(page);
  assert.ok(original?.records[pairing.key], `${pairing.key} is stored`);

  await flipStoredByte(page, pairing);
  const tampered = await readKeyStore(page);
  assert.notDeepEqual(tampered, original, 'the flip is visible');
  const digest = hashMessage('tampered');
  const codes = await page.evaluate(
    async ({ mpcKey, digest }) => {
      const { sdk } = /** @type {any} */ (window);
      /** @param {() => Promise<unknown>} call */
      const code = (call) =>
        call().then(
          () => 'resolved',
          (/** @type {any} */ error) =>
            error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
        );
      const client = await sdk.WaasClient.connect('');
      return {
        signPayload: await code(() => client.signPayload(mpcKey, digest, { passcode: '123456' })),
        signMessage: await code(() => client.signMessage(mpcKey, 'x', { passcode: '123456' })),
      };
    },
    { mpcKey, digest },
  );
  assert.deepEqual(codes, { signPayload: 'STORAGE_CORRUPT', signMessage: 'STORAGE_CORRUPT' });
  assert.deepEqual(await readKeyStore(page), tampered, 'the key store is as the tamperer left it');

  // The same bit flipped back: the same key signs again, so the flip was the only cause.
  await flipStoredByte(page, pairing);
  assert.deepEqual(await readKeyStore(page), original);
  const signature = await page.evaluate(
    async ({ mpcKey, digest }) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      return client.signPayload(mpcKey, digest, { passcode: '123456' });
    },
    { mpcKey, digest },
  );
  assert.equal(
    await recoverAddress({ hash: digest, signature: signature.signedPayload.signature }),
    created.address.address,
  );
  assert.deepEqual(await readKeyStore(page), original);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a tampered wrapped data key: STORAGE_CORRUPT (not WRONG_PASSCODE) for any passcode, before any login, nothing changes', { timeout }, async () => {
  const { page, errors, context } = await freshPage();
  const { created } = await createWalletIn(page);
  const mpcKey = created.address.mpcKeys[0];
  // With a wallet, the data key's passcode layer is under the group's record (a login opens it).
  const wrapped = { store: 'meta', key: 'device', path: ['loginWraps', created.wallet.deviceGroup, 'wrap', 'wrapped'] };
  /** @type {string[]} */
  const logins = [];
  page.on('request', (request) => {
    if (/passcode:login/.test(request.url())) logins.push(request.url());
  });
  const original = await readKeyStore(page);

  await flipStoredByte(page, wrapped);
  const tampered = await readKeyStore(page);
  assert.notDeepEqual(tampered, original, 'the flip is visible');
  const digest = hashMessage('tampered wrap');
  const codes = await page.evaluate(
    async ({ mpcKey, digest }) => {
      const { sdk } = /** @type {any} */ (window);
      /** @param {() => Promise<unknown>} call */
      const code = (call) =>
        call().then(
          () => 'resolved',
          (/** @type {any} */ error) =>
            error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
        );
      const client = await sdk.WaasClient.connect('');
      return {
        signPayload: await code(() => client.signPayload(mpcKey, digest, { passcode: '123456' })),
        signPayloadWrongPasscode: await code(() =>
          client.signPayload(mpcKey, digest, { passcode: '000000' }),
        ),
        createWallet: await code(() => client.createWallet({ passcode: '123456' })),
        checkPasscode: await code(() => client.checkPasscode('123456')),
        resetPasscode: await code(() => client.resetPasscode('123456', '654321')),
        bootstrapAgain: await sdk.bootstrapDevice('123456'),
      };
    },
    { mpcKey, digest },
  );
  assert.deepEqual(codes, {
    signPayload: 'STORAGE_CORRUPT',
    signPayloadWrongPasscode: 'STORAGE_CORRUPT',
    createWallet: 'STORAGE_CORRUPT',
    checkPasscode: 'STORAGE_CORRUPT',
    resetPasscode: 'STORAGE_CORRUPT',
    bootstrapAgain: false,
  });
  assert.deepEqual(logins, [], 'the store failed before the server counted an attempt');
  assert.deepEqual(await readKeyStore(page), tampered, 'the key store is as the tamperer left it');

  await flipStoredByte(page, wrapped);
  assert.deepEqual(await readKeyStore(page), original);
  const signature = await signMessageIn(page, mpcKey, 'restored');
  assert.equal(
    await recoverMessageAddress({ message: 'restored', signature: signature.signedPayload.signature }),
    created.address.address,
  );
  assert.deepEqual(errors, []);
  await context.close();
});

test('a server that answers GenerateAddress with another address is refused: UNTRUSTED_SERVER', { timeout }, async () => {
  const { page, errors, context } = await freshPage();
  const { created } = await createWalletIn(page);
  const stranger = getAddress(`0x${randomBytes(20).toString('hex')}`);
  /** @type {string[]} */
  const served = [];
  /** @type {string} */
  let forged = stranger;
  await page.route('**/*:generateAddress', async (route) => {
    try {
      // The real request reaches the real server once (its token is single-use); only the
      // answer's address is rewritten.
      const response = await route.fetch();
      const json = await response.json();
      served.push(`${json.derivationPath} ${json.address}`);
      json.address = forged;
      await route.fulfill({ response, json });
    } catch (error) {
      served.push(`the route failed: ${error}`);
      await route.abort();
    }
  });
  const stored = await readKeyStore(page);
  /** @param {string} wallet */
  const generate = (wallet) =>
    page.evaluate(async (wallet) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      return client.generateAddress(wallet).then(
        (/** @type {any} */ address) => ({ address }),
        (/** @type {any} */ error) => ({
          code: error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
        }),
      );
    }, wallet);

  // Any valid address, and this wallet's own first address (right key, wrong path).
  assert.deepEqual(await generate(created.wallet.name), { code: 'UNTRUSTED_SERVER' });
  forged = created.address.address;
  assert.deepEqual(await generate(created.wallet.name), { code: 'UNTRUSTED_SERVER' });
  assert.equal(served.length, 2, `the real answers: ${served.join(', ')}`);
  assert.deepEqual(await readKeyStore(page), stored, 'a refused address stores nothing');

  // The honest answer is accepted: the check is the address, not the route.
  await page.unroute('**/*:generateAddress');
  const honest = await generate(created.wallet.name);
  assert.ok('address' in honest, JSON.stringify(honest));
  assert.equal(honest.address.derivationPath, '0/3');
  assert.equal(honest.address.address, getAddress(honest.address.address), 'EIP-55');
  assert.ok(![stranger, created.address.address].includes(honest.address.address));
  assert.deepEqual(errors, []);
  await context.close();
});

test('waitOperation ends with TIMEOUT: an aborted signal, timeoutMs 1, an abort during the wait', { timeout }, async () => {
  const { page, errors, context } = await freshPage();
  const result = await page.evaluate(async () => {
    const { sdk } = /** @type {any} */ (window);
    /** @param {() => Promise<unknown>} call */
    const timed = async (call) => {
      const start = performance.now();
      const code = await call().then(
        () => 'resolved',
        (/** @type {any} */ error) =>
          error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
      );
      return { code, fast: performance.now() - start < 5_000 };
    };
    await sdk.bootstrapDevice('123456');
    const client = await sdk.WaasClient.connect('');
    await client.registerDevice();
    // A key generation nobody computes: it stays pending.
    const operation = await client.createMPCWallet();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    return {
      aborted: await timed(() =>
        client.waitOperation(operation.name, { signal: AbortSignal.abort() }),
      ),
      oneMs: await timed(() => client.waitOperation(operation.name, { timeoutMs: 1 })),
      abortedWhileWaiting: await timed(() =>
        client.waitOperation(operation.name, { signal: controller.signal }),
      ),
      stillPending: (await client.getOperation(operation.name)).done === false,
    };
  });
  assert.deepEqual(result, {
    aborted: { code: 'TIMEOUT', fast: true },
    oneMs: { code: 'TIMEOUT', fast: true },
    abortedWhileWaiting: { code: 'TIMEOUT', fast: true },
    stillPending: true,
  });
  assert.deepEqual(errors, []);
  await context.close();
});

// Every stored field the unlock depends on is covered by an integrity check: a change is
// STORAGE_CORRUPT for the right passcode, never WRONG_PASSCODE (the user would be told they forgot
// a passcode they know, and might reset the device over it).
for (const { field, change } of [
  { field: 'outerNonce', change: 'flip' },
  { field: 'innerNonce', change: 'flip' },
  { field: 'salt', change: 'flip' },
  { field: 'memoryKib', change: 19 * 1024 + 1 },
  { field: 'iterations', change: 3 },
  { field: 'parallelism', change: 2 },
]) {
  test(`meta/device.passcode.${field} altered: STORAGE_CORRUPT for the right passcode, nothing changes`, { timeout }, async () => {
    const { page, context } = await freshPage();
    await page.evaluate(() => /** @type {any} */ (window).sdk.bootstrapDevice('123456'));
    const target = { store: 'meta', key: 'device', path: ['passcode', field] };
    const original = await readKeyStore(page);
    if (change === 'flip') await flipStoredByte(page, target);
    else await setStoredField(page, { ...target, value: change });
    const tampered = await readKeyStore(page);
    assert.notDeepEqual(tampered, original, 'the change is visible');
    const code = await page.evaluate(async () => {
      const { sdk } = /** @type {any} */ (window);
      const device = await sdk.WaasDevice.open();
      return device.checkPasscode('123456').then(
        () => 'resolved',
        (/** @type {any} */ error) =>
          error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
      );
    });
    assert.equal(code, 'STORAGE_CORRUPT');
    assert.deepEqual(await readKeyStore(page), tampered, 'nothing changed');
    await context.close();
  });
}

test(
  'a flipped bit in the stored root public key: generateAddress rejects with STORAGE_CORRUPT, not UNTRUSTED_SERVER',
  // The root key is authenticated with the sealed chain code (the group's AAD).
  { timeout },
  async () => {
    const { page, context } = await freshPage();
    const { created } = await createWalletIn(page);
    await flipStoredByte(page, {
      store: 'meta',
      key: `group/${created.wallet.deviceGroup}`,
      path: ['rootPublicKey'],
      index: 0,
    });
    const tampered = await readKeyStore(page);
    const code = await page.evaluate(async (wallet) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect('');
      return client.generateAddress(wallet).then(
        () => 'resolved',
        (/** @type {any} */ error) =>
          error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
      );
    }, created.wallet.name);
    assert.deepEqual(await readKeyStore(page), tampered, 'nothing changed');
    await context.close();
    assert.equal(code, 'STORAGE_CORRUPT');
  },
);
