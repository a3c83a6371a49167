// Key export end to end (docs/protocol/archive.md, passcode.md): the archive made when a wallet
// is created, exportPrivateKeys with the passcode (one login, then offline) and with a passkey
// (offline), viem and @scure/bip32 as independent checks, a copied profile that cannot open the
// archive, wrong passcodes counted by the server up to the lock, and a pool with export off.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { recoverMessageAddress } from 'viem';
import { HDKey, privateKeyToAccount } from 'viem/accounts';

import { addVirtualAuthenticator, collectPageErrors, harnessFixture, operatorApi, serverCommand, signMessageIn } from './support.mjs';

const PASSCODE = '123456';

/** The server (a short backoff after 3 wrong passcodes, so the lock test is quick), the page, the browser. */
const harness = harnessFixture({ extraArgs: ['--passcode-backoff', '10ms'] });

/**
 * A fresh profile with the SDK loaded; with `hasPrf`, a platform authenticator with PRF.
 * @param {{ hasPrf?: boolean }} [options]
 */
async function freshPage({ hasPrf } = {}) {
  const context = await harness.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  if (hasPrf !== undefined) {
    await addVirtualAuthenticator(context, page, hasPrf);
  }
  await page.goto(harness.server.url);
  await page.waitForFunction(() => document.title === 'ready');
  return { page, errors, context };
}

/**
 * Bootstraps, registers and creates a wallet with three addresses; returns the wallet, its
 * addresses and the group's export metadata.
 * @param {import('playwright-core').Page} page
 * @param {{ passkey?: boolean, pool?: string }} [options]
 */
function walletWithAddresses(page, { passkey = false, pool } = {}) {
  return page.evaluate(
    async ({ passcode, passkey, pool }) => {
      const { sdk } = /** @type {any} */ (window);
      await sdk.bootstrapDevice(passcode, { passkey });
      const client = await sdk.WaasClient.connect('');
      /** @type {any} */ (window).client = client;
      await client.registerDevice();
      const created = await client.createWallet({ passcode }, pool);
      const addresses = [created.address];
      for (let i = 0; i < 2; i += 1) {
        addresses.push(await client.generateAddress(created.wallet.name));
      }
      const group = await client.getDeviceGroup(created.wallet.deviceGroup);
      return { created, addresses, group };
    },
    { passcode: PASSCODE, passkey, pool },
  );
}

/**
 * Every exported key against the wallet: viem derives the same address from the private key and
 * recovers it from a message the key signs; @scure/bip32 derives the same keys from the xprv.
 * @param {{ keys: { address: string, privateKey: `0x${string}`, derivationPath: string, mpcKey: string }[], xprv: string }} exported
 * @param {{ address: string, derivationPath: string, mpcKeys: string[] }[]} addresses
 */
async function assertExportMatches(exported, addresses) {
  assert.equal(exported.keys.length, addresses.length);
  const root = HDKey.fromExtendedKey(exported.xprv);
  for (const address of addresses) {
    const key = exported.keys.find((entry) => entry.derivationPath === address.derivationPath);
    assert.ok(key, `a key for ${address.derivationPath}`);
    assert.equal(key.mpcKey, address.mpcKeys[0]);
    assert.equal(key.address, address.address);
    const account = privateKeyToAccount(key.privateKey);
    assert.equal(account.address, address.address, 'viem: the private key is the address');
    const signature = await account.signMessage({ message: 'exported' });
    assert.equal(await recoverMessageAddress({ message: 'exported', signature }), address.address);
    const child = root.derive(`m/${address.derivationPath}`);
    assert.equal(
      `0x${Buffer.from(/** @type {Uint8Array} */ (child.privateKey)).toString('hex')}`,
      key.privateKey,
      '@scure/bip32 derives the same key from the xprv',
    );
  }
}

test('export with the passcode: one login, then offline; the keys are the wallet and the xprv reproduces them', async () => {
  const { page, errors, context } = await freshPage();
  const { created, addresses, group } = await walletWithAddresses(page);
  assert.equal(created.archived, true, 'createWallet stored the archive (export is on by default)');
  assert.ok(group.mpcKeyExportMetadata, 'GetDeviceGroup returns the export metadata');

  // The reveal after the login makes no request: the page goes offline as soon as the login is
  // answered, and every later request would fail.
  /** @type {string[]} */
  const requests = [];
  page.on('request', (request) => requests.push(new URL(request.url()).pathname));
  await page.route('**/passcode:loginFinish', async (route) => {
    const response = await route.fetch();
    await context.setOffline(true);
    await route.fulfill({ response });
  });
  const exported = await page.evaluate(
    ({ metadata, passcode }) =>
      /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passcode }),
    { metadata: group.mpcKeyExportMetadata, passcode: PASSCODE },
  );
  assert.match(requests.at(-1) ?? '', /passcode:loginFinish$/, 'nothing after the login');
  await assertExportMatches(exported, addresses);
  assert.deepEqual(
    errors.filter((error) => !error.startsWith('request failed')),
    [],
  );
  await context.close();
});

test('export with a passkey (PRF) runs offline once the full module is loaded', async () => {
  const { page, context } = await freshPage({ hasPrf: true });
  const { created, addresses, group } = await walletWithAddresses(page, { passkey: true });
  assert.equal(created.archived, true);
  await context.setOffline(true);
  // Export runs in the full module, fetched on first use: offline, it cannot be fetched yet.
  const first = await page.evaluate(
    (metadata) =>
      /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passkey: true }).then(
        () => 'resolved',
        (/** @type {any} */ error) => error.code,
      ),
    group.mpcKeyExportMetadata,
  );
  assert.equal(first, 'INIT_FAILED');
  // Loaded ahead of time (a failed load is tried again), export needs no network.
  await context.setOffline(false);
  await page.evaluate(() => /** @type {any} */ (window).sdk.initFullAsync());
  await context.setOffline(true);
  const exported = await page.evaluate(
    (metadata) => /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passkey: true }),
    group.mpcKeyExportMetadata,
  );
  await assertExportMatches(exported, addresses);
  await context.close();
});

test('the whole profile and the right passcode, without the server, open neither the data key nor the archive', async () => {
  const { page, context } = await freshPage();
  const { group, created } = await walletWithAddresses(page);
  const mpcKey = created.address.mpcKeys[0];
  // Export's code (the full module) loaded while online, so offline it reaches its login.
  await page.evaluate(() => /** @type {any} */ (window).sdk.initFullAsync());
  await context.setOffline(true);
  const result = await page.evaluate(
    async ({ metadata, passcode, mpcKey }) => {
      const { sdk, client } = /** @type {any} */ (window);
      /** @param {Promise<unknown>} promise */
      const code = (promise) => promise.then(() => 'resolved', (/** @type {any} */ error) => error.code);
      const device = await sdk.WaasDevice.open();
      const outcomes = {
        // The passcode is tested at the server only: offline, nothing can tell right from wrong.
        clientCheck: await code(client.checkPasscode(passcode)),
        clientCheckWrong: await code(client.checkPasscode('000000')),
        deviceCheck: await code(device.checkPasscode(passcode)),
        sign: await code(client.signPayload(mpcKey, `0x${'11'.repeat(32)}`, { passcode })),
        exported: await code(client.exportPrivateKeys(metadata, { passcode })),
      };
      // Every record, as an attacker copying the profile would find them.
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('waas-sdk');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      /** @param {string} store */
      const all = (store) =>
        new Promise((resolve, reject) => {
          const request = /** @type {IDBDatabase} */ (db).transaction(store).objectStore(store).getAll();
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
      const records = /** @type {any[]} */ (await all('records'));
      const meta = /** @type {any[]} */ (await all('meta'));
      const archive = records.find((record) => record.exportWrap);
      const deviceRecord = meta.find((entry) => entry && entry.registrationData);
      return {
        outcomes,
        archiveWraps: Object.keys(archive).filter((key) => /Wrap$/.test(key)).sort(),
        deviceFields: Object.keys(deviceRecord).filter((key) => /^passcode|Wraps$/.test(key)).sort(),
        loginWrapGroups: Object.keys(deviceRecord.loginWraps),
      };
    },
    { metadata: group.mpcKeyExportMetadata, passcode: PASSCODE, mpcKey },
  );
  assert.deepEqual(result.outcomes, {
    clientCheck: 'NETWORK',
    clientCheckWrong: 'NETWORK',
    deviceCheck: 'INVALID_ARGUMENT',
    sign: 'NETWORK',
    exported: 'NETWORK',
  });
  assert.deepEqual(result.archiveWraps, ['exportWrap'], 'no passcode wrap on the archive');
  assert.deepEqual(result.deviceFields, ['loginWraps'], 'no local passcode wrap of the data key');
  assert.deepEqual(result.loginWrapGroups, [created.wallet.deviceGroup]);
  await context.close();
});

test('with a wallet, a wrong passcode at signing is counted at the server like a wrong export', async () => {
  const { page, context } = await freshPage();
  const { created } = await walletWithAddresses(page);
  const mpcKey = created.address.mpcKeys[0];
  const codes = await page.evaluate(async (mpcKey) => {
    const { client } = /** @type {any} */ (window);
    const digest = `0x${'22'.repeat(32)}`;
    /** @type {string[]} */
    const codes = [];
    for (let i = 0; i < 5; i += 1) {
      codes.push(
        await client.signPayload(mpcKey, digest, { passcode: '999999' }).then(
          () => 'signed',
          (/** @type {any} */ error) => error.code,
        ),
      );
    }
    return codes;
  }, mpcKey);
  // Three free failures, then the server's backoff (this server's base is 10 ms, so the fourth
  // may or may not wait): the failures are the server's, not a local test.
  assert.deepEqual(codes.slice(0, 3), ['WRONG_PASSCODE', 'WRONG_PASSCODE', 'WRONG_PASSCODE']);
  assert.ok(codes.every((code) => code === 'WRONG_PASSCODE' || code === 'PASSCODE_BACKOFF'), codes.join(', '));
  // Past the longest backoff five failures can earn here (40 ms), the right passcode signs.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const signature = await signMessageIn(page, mpcKey, 'after the wrong ones', { passcode: PASSCODE });
  assert.match(signature.signedPayload.signature, /^0x[0-9a-f]{130}$/);
  await context.close();
});

test('wrong passcodes: WRONG_PASSCODE, then backoff, locked after 10; an operator unlock lets the right one export', async () => {
  const { page, context } = await freshPage();
  const { group, created } = await walletWithAddresses(page);
  /** @type {string[]} */
  const codes = [];
  /** @type {number[]} */
  const waits = [];
  while (!codes.includes('PASSCODE_LOCKED')) {
    const outcome = await page.evaluate(
      (metadata) =>
        /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passcode: '999999' }).then(
          () => ({ code: 'exported' }),
          (/** @type {any} */ error) => ({ code: error.code, retry: error.retryAfterSeconds }),
        ),
      group.mpcKeyExportMetadata,
    );
    codes.push(outcome.code);
    if (outcome.code === 'PASSCODE_BACKOFF') {
      waits.push(outcome.retry);
      await new Promise((resolve) => setTimeout(resolve, outcome.retry * 1000));
    }
    assert.ok(codes.length < 40, `no lock after ${codes.join(', ')}`);
  }
  const wrong = codes.filter((code) => code === 'WRONG_PASSCODE').length;
  assert.equal(wrong, 10, `ten counted failures before the lock: ${codes.join(', ')}`);
  assert.ok(waits.length > 0 && waits.every((seconds) => seconds >= 1), 'backoff after 3 failures');
  // Locked: the right passcode does not help.
  const locked = await page.evaluate(
    ({ metadata, passcode }) =>
      /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passcode }).then(
        () => 'exported',
        (/** @type {any} */ error) => error.code,
      ),
    { metadata: group.mpcKeyExportMetadata, passcode: PASSCODE },
  );
  assert.equal(locked, 'PASSCODE_LOCKED');

  const device = await page.evaluate(async () => (await (/** @type {any} */ (window).client.registerDevice())).name);
  serverCommand(harness.server, ['unlock-passcode', '--device-group', created.wallet.deviceGroup, '--device', device]);
  const exported = await page.evaluate(
    ({ metadata, passcode }) => /** @type {any} */ (window).client.exportPrivateKeys(metadata, { passcode }),
    { metadata: group.mpcKeyExportMetadata, passcode: PASSCODE },
  );
  assert.equal(exported.keys[0].address, created.address.address);
  await context.close();
});

test('resetPasscode changes the passcode on the device and at the server; the archive follows', async () => {
  const { page, context } = await freshPage();
  const { group, created } = await walletWithAddresses(page);
  const result = await page.evaluate(
    async ({ metadata, passcode }) => {
      const { sdk, client } = /** @type {any} */ (window);
      /** @param {Promise<unknown>} promise */
      const code = (promise) => promise.then(() => 'resolved', (/** @type {any} */ error) => error.code);
      const wrongOld = await code(client.resetPasscode('000000', '654321'));
      // The device-wide reset would leave the server's record behind: it refuses.
      const deviceOnly = await code(sdk.resetPasscode(passcode, '654321'));
      await client.resetPasscode(passcode, '654321');
      return {
        wrongOld,
        deviceOnly,
        oldUnlocks: await code(client.checkPasscode(passcode)),
        newUnlocks: await code(client.checkPasscode('654321')),
        oldExports: await code(client.exportPrivateKeys(metadata, { passcode })),
        newExport: await client.exportPrivateKeys(metadata, { passcode: '654321' }),
      };
    },
    { metadata: group.mpcKeyExportMetadata, passcode: PASSCODE },
  );
  assert.deepEqual(
    { ...result, newExport: undefined },
    {
      wrongOld: 'WRONG_PASSCODE',
      deviceOnly: 'INVALID_ARGUMENT',
      oldUnlocks: 'WRONG_PASSCODE',
      newUnlocks: 'resolved',
      oldExports: 'WRONG_PASSCODE',
      newExport: undefined,
    },
  );
  assert.equal(result.newExport.keys[0].address, created.address.address);
  await context.close();
});

test('a passcode change cut off after the server switched is finished by calling it again', async () => {
  const { page, context } = await freshPage();
  const { group, created } = await walletWithAddresses(page);
  // The server takes the new record, but its answer never arrives.
  await page.route('**/passcode:registerFinish', async (route) => {
    await route.fetch();
    await route.abort('connectionreset');
  });
  const cut = await page.evaluate(() =>
    /** @type {any} */ (window).client.resetPasscode('123456', '654321').then(
      () => 'resolved',
      (/** @type {any} */ error) => error.code,
    ),
  );
  assert.equal(cut, 'NETWORK');
  await page.unroute('**/passcode:registerFinish');
  const result = await page.evaluate(
    async ({ metadata }) => {
      const { client } = /** @type {any} */ (window);
      /** @param {Promise<unknown>} promise */
      const code = (promise) => promise.then(() => 'resolved', (/** @type {any} */ error) => error.code);
      // Half way: the server has the new record, so the new passcode opens the device (whose
      // data key is wrapped under both records) and the archive.
      const halfway = {
        old: await code(client.checkPasscode('123456')),
        new: await code(client.checkPasscode('654321')),
        exportNew: (await client.exportPrivateKeys(metadata, { passcode: '654321' })).keys.length,
      };
      await client.resetPasscode('123456', '654321');
      const after = {
        old: await code(client.checkPasscode('123456')),
        new: await code(client.checkPasscode('654321')),
        address: (await client.exportPrivateKeys(metadata, { passcode: '654321' })).keys[0].address,
      };
      return { halfway, after };
    },
    { metadata: group.mpcKeyExportMetadata },
  );
  assert.deepEqual(result.halfway, { old: 'WRONG_PASSCODE', new: 'resolved', exportNew: 3 });
  assert.deepEqual(result.after, { old: 'WRONG_PASSCODE', new: 'resolved', address: created.address.address });
  await context.close();
});

test('a wallet whose passcode registration failed moves its key under the record at the next unlock; a change whose record never arrived keeps the old passcode', async () => {
  const { page, context } = await freshPage();
  // The wallet is made, but its passcode registration does not reach the server.
  await page.route('**/passcode:registerStart', (route) => route.abort('connectionreset'));
  const created = await page.evaluate(async (passcode) => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice(passcode);
    const client = await sdk.WaasClient.connect('');
    /** @type {any} */ (window).client = client;
    await client.registerDevice();
    return client.createWallet({ passcode });
  }, PASSCODE);
  assert.equal(created.archived, false);
  assert.equal(created.archiveError.code, 'NETWORK');
  await page.unroute('**/passcode:registerStart');
  /** The passcode fields of the stored device. */
  const wraps = () =>
    page.evaluate(async () => {
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('waas-sdk');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      const device = await new Promise((resolve, reject) => {
        const request = /** @type {IDBDatabase} */ (db).transaction('meta').objectStore('meta').get('device');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      /** @type {IDBDatabase} */ (db).close();
      return {
        local: Object.keys(device).filter((key) => key === 'passcode' || key === 'passcodeNext'),
        changing: device.passcodeChanging === true,
        login: Object.fromEntries(
          Object.entries(device.loginWraps ?? {}).map(([group, entry]) => [group, Object.keys(/** @type {object} */ (entry)).sort()]),
        ),
      };
    });
  const group = created.wallet.deviceGroup;
  assert.deepEqual(await wraps(), { local: ['passcode'], changing: false, login: {} }, 'still the local wrap');

  // The next unlock (a signature) registers the record and moves the key under it.
  const mpcKey = created.address.mpcKeys[0];
  await signMessageIn(page, mpcKey, 'moves the key', { passcode: PASSCODE });
  assert.deepEqual(await wraps(), { local: [], changing: false, login: { [group]: ['wrap'] } }, 'the local wrap is gone');

  // A change whose new record never reaches the server: the old passcode still opens the device.
  await page.route('**/passcode:registerFinish', (route) => route.abort('connectionreset'));
  /** What `client[method](...args)` ends with. @param {string} method @param {string[]} args */
  const code = (method, ...args) =>
    page.evaluate(
      ({ method, args }) =>
        /** @type {any} */ (window).client[method](...args).then(
          () => 'resolved',
          (/** @type {any} */ error) => error.code,
        ),
      { method, args },
    );
  assert.equal(await code('resetPasscode', '123456', '654321'), 'NETWORK');
  await page.unroute('**/passcode:registerFinish');
  assert.deepEqual(await wraps(), { local: [], changing: true, login: { [group]: ['previousWrap', 'wrap'] } });
  assert.equal(await code('checkPasscode', '123456'), 'resolved');
  assert.equal(await code('checkPasscode', '654321'), 'WRONG_PASSCODE');
  // Called again, the change goes through; only the new passcode opens the device.
  assert.equal(await code('resetPasscode', '123456', '654321'), 'resolved');
  assert.deepEqual(await wraps(), { local: [], changing: false, login: { [group]: ['wrap'] } });
  assert.equal(await code('checkPasscode', '123456'), 'WRONG_PASSCODE');
  assert.equal(await code('checkPasscode', '654321'), 'resolved');
  await context.close();
});

test('a pool with export off: no archive, and export says EXPORT_DISABLED', async () => {
  const api = operatorApi(harness.server);
  await api('POST', '/v1/pools', { poolId: 'no-export', displayName: 'No export', exportEnabled: false });
  const { page, context } = await freshPage();
  const { created, group } = await walletWithAddresses(page, { pool: 'pools/no-export' });
  assert.equal(created.archived, false, 'no archive was queued');
  const codes = await page.evaluate(
    async ({ metadata, passcode, groupName }) => {
      const { client } = /** @type {any} */ (window);
      /** @param {Promise<unknown>} promise */
      const code = (promise) => promise.then(() => 'resolved', (/** @type {any} */ error) => error.code);
      return {
        exportKeys: await code(client.exportPrivateKeys(metadata, { passcode })),
        prepare: await code(client.prepareDeviceArchive(groupName)),
      };
    },
    {
      metadata: group.mpcKeyExportMetadata,
      passcode: PASSCODE,
      groupName: created.wallet.deviceGroup,
    },
  );
  assert.deepEqual(codes, { exportKeys: 'NO_ARCHIVE', prepare: 'EXPORT_DISABLED' });
  await context.close();
});

test('tampered or foreign metadata is refused before anything is revealed', async () => {
  const { page, context } = await freshPage();
  const { group } = await walletWithAddresses(page);
  const metadata = JSON.parse(Buffer.from(group.mpcKeyExportMetadata, 'base64url').toString());
  const encode = (/** @type {unknown} */ value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const swappedAddress = structuredClone(metadata);
  swappedAddress.keys[1].address = metadata.keys[2].address;
  const swappedPath = structuredClone(metadata);
  swappedPath.keys[1].derivationPath = '0/7';
  const otherRoot = structuredClone(metadata);
  otherRoot.rootPublicKey = `0x02${'11'.repeat(32)}`;
  const otherGroup = structuredClone(metadata);
  otherGroup.deviceGroup = 'pools/default/deviceGroups/not-mine';
  const codes = await page.evaluate(
    async ({ variants, passcode }) => {
      const { client } = /** @type {any} */ (window);
      /** @type {Record<string, string>} */
      const out = {};
      for (const [name, metadata] of Object.entries(variants)) {
        out[name] = await client.exportPrivateKeys(metadata, { passcode }).then(
          () => 'exported',
          (/** @type {any} */ error) => error.code,
        );
      }
      return out;
    },
    {
      variants: {
        swappedAddress: encode(swappedAddress),
        swappedPath: encode(swappedPath),
        otherRoot: encode(otherRoot),
        otherGroup: encode(otherGroup),
        notBase64: '%%%',
      },
      passcode: PASSCODE,
    },
  );
  assert.deepEqual(codes, {
    swappedAddress: 'UNTRUSTED_SERVER',
    swappedPath: 'UNTRUSTED_SERVER',
    otherRoot: 'UNTRUSTED_SERVER',
    otherGroup: 'INVALID_ARGUMENT',
    notBase64: 'INVALID_ARGUMENT',
  });
  await context.close();
});
