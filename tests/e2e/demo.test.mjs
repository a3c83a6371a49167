// The demo wallet, served by the real waas-server, in headless Chromium.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { getAddress, recoverMessageAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

import { collectPageErrors, repoRoot, serveDemo, settledStatus, stepsInOrder } from './support.mjs';

const cargoToml = readFileSync(join(repoRoot, 'Cargo.toml'), 'utf8');
const crateVersion = /\[workspace\.package\][^[]*?\nversion = "([^"]+)"/.exec(cargoToml)?.[1];

const demo = serveDemo();

test('the demo page shows the SDK and server versions without errors', async () => {
  assert.ok(crateVersion, 'version in Cargo.toml');
  const page = await demo.browser.newPage();
  const errors = collectPageErrors(page);
  /** @type {string[]} */
  const wasmTypes = [];
  page.on('response', (response) => {
    if (response.url().endsWith('.wasm')) wasmTypes.push(response.headers()['content-type'] ?? '');
  });

  await page.goto(demo.server.url);
  const sdk = page.locator('#sdk-version[data-state="ok"]');
  const serverVersion = page.locator('#server-version[data-state="ok"]');
  await sdk.waitFor();
  await serverVersion.waitFor();

  assert.equal(await sdk.textContent(), crateVersion);
  assert.equal(await serverVersion.textContent(), `waas-server ${crateVersion} (API v1)`);
  assert.deepEqual(wasmTypes, ['application/wasm'], 'the .wasm is fetched once, streamable');
  assert.deepEqual(errors, []);
  await page.close();
});

test('an API failure is shown as the server\'s JSON error, not a crash', async () => {
  const page = await demo.browser.newPage();
  await page.goto(demo.server.url);
  const body = await page.evaluate(async () => {
    const response = await fetch('/v1/no-such-route');
    return { status: response.status, json: await response.json() };
  });
  assert.equal(body.status, 404);
  assert.equal(body.json.code, 'NOT_FOUND');
  assert.equal(body.json.status, 404);
  await page.close();
});

// The onboarding flow (issue 5): one browser profile goes through it step by step, a test per
// step, in order; each later step starts where the one before ended.
describe('the demo wallet, step by step in one browser profile', () => {
  const passcode = '123456';
  /** Generous: key generation and signing run the MPC rounds against a debug build of the server. */
  const stepTimeout = 120_000;
  /** @type {import('playwright-core').BrowserContext} */
  let context;
  /** @type {import('playwright-core').Page} */
  let page;
  /** @type {string[]} */
  let errors;
  /** The address the page showed once the wallet was created. */
  let address = '';

  before(async () => {
    context = await demo.browser.newContext();
    page = await context.newPage();
    errors = collectPageErrors(page);
  });

  after(async () => {
    await context?.close();
  });

  const step = stepsInOrder();

  /** @param {string} id */
  const byTestId = (id) => page.getByTestId(id);

  const settled = () => settledStatus(page, stepTimeout);

  /** Fills the sign form and submits it. @param {string} message @param {string} code */
  async function sign(message, code) {
    await byTestId('sign-message').fill(message);
    await byTestId('sign-passcode').fill(code);
    await byTestId('sign-submit').click();
    return settled();
  }

  /** Checks the shown signature: 65 bytes, and viem recovers the shown address from it. */
  async function assertSignatureRecovers(/** @type {string} */ message) {
    const signature = (await byTestId('signature').textContent()) ?? '';
    assert.match(signature, /^0x[0-9a-f]{130}$/i, 'r ‖ s ‖ v, 65 bytes');
    assert.equal(await byTestId('signed-message').textContent(), message);
    const recovered = await recoverMessageAddress({
      message,
      signature: /** @type {`0x${string}`} */ (signature),
    });
    assert.equal(recovered, address, 'viem recovers the shown address');
    const r = (await byTestId('signature-r').textContent()) ?? '';
    const s = (await byTestId('signature-s').textContent()) ?? '';
    const v = Number(await byTestId('signature-v').textContent());
    const joined = `0x${r.slice(2)}${s.slice(2)}${v.toString(16)}`;
    assert.equal(joined.toLowerCase(), signature.toLowerCase(), 'signature = r ‖ s ‖ v');
  }

  step('onboarding: a passcode (typed twice), a device, registered with the server', async () => {
    await page.goto(demo.server.url);
    assert.equal((await settled()).state, 'ready');
    assert.ok(await byTestId('onboarding').isVisible(), 'a fresh profile is asked to onboard');
    assert.ok(await byTestId('create-wallet').isHidden());
    assert.ok(await byTestId('wallet').isHidden());
    // The fields are found by their labels, as a screen reader announces them.
    const onboarding = byTestId('onboarding');
    const first = onboarding.getByLabel('Passcode', { exact: true });
    assert.equal(await first.getAttribute('type'), 'password');

    // The two entries differ: the page says so itself, without asking the SDK.
    await first.fill(passcode);
    await onboarding.getByLabel('Passcode again').fill('654321');
    await byTestId('onboarding-submit').click();
    assert.match((await byTestId('onboarding-error').textContent()) ?? '', /differ/);
    assert.equal(await byTestId('onboarding-error').getAttribute('data-code'), null);

    // Too short: the SDK's policy refuses it, and the page shows its code.
    await byTestId('onboarding-passcode').fill('123');
    await byTestId('onboarding-confirm').fill('123');
    await byTestId('onboarding-submit').click();
    assert.equal((await settled()).state, 'error');
    assert.equal(await byTestId('onboarding-error').getAttribute('data-code'), 'INVALID_ARGUMENT');
    assert.match((await byTestId('onboarding-error').textContent()) ?? '', /^INVALID_ARGUMENT: .+/);

    await byTestId('onboarding-passcode').fill(passcode);
    await byTestId('onboarding-confirm').fill(passcode);
    await byTestId('onboarding-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.match((await byTestId('device-name').textContent()) ?? '', /^devices\/[0-9a-f]{32}$/);
    assert.equal(await byTestId('device-state').textContent(), 'ACTIVE');
    assert.ok(await byTestId('onboarding').isHidden());
    assert.ok(await byTestId('create-wallet').isVisible());
    assert.equal(await byTestId('onboarding-passcode').inputValue(), '', 'no passcode left');
    assert.deepEqual(errors, []);
  });

  step('create a wallet: the first address (EIP-55) and its path, remembered by name', async () => {
    await byTestId('create-wallet-passcode').fill(passcode);
    await byTestId('create-wallet-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);

    address = (await byTestId('wallet-address').textContent()) ?? '';
    assert.match(address, /^0x[0-9a-fA-F]{40}$/);
    assert.equal(getAddress(address), address, 'shown with its EIP-55 checksum');
    assert.equal(await byTestId('wallet-path').textContent(), '0/0');
    const wallet = (await byTestId('wallet-name').textContent()) ?? '';
    const group = (await byTestId('wallet-device-group').textContent()) ?? '';
    const key = (await byTestId('wallet-key').textContent()) ?? '';
    assert.match(wallet, /^pools\/default\/mpcWallets\/[^/]+$/);
    assert.match(group, /^pools\/default\/deviceGroups\/[^/]+$/);
    assert.ok(key.startsWith(`${group}/mpcKeys/`), key);
    assert.ok(await byTestId('create-wallet').isHidden());
    assert.ok(await byTestId('sign').isVisible());

    // localStorage holds public names (and the public address), never a secret.
    const stored = await page.evaluate(() => ({ ...localStorage }));
    assert.deepEqual(Object.keys(stored), ['waas-demo:wallet']);
    const record = JSON.parse(stored['waas-demo:wallet'] ?? '{}');
    assert.deepEqual(record, {
      device: await byTestId('device-name').textContent(),
      wallet,
      deviceGroup: group,
      mpcKey: key,
      address,
      derivationPath: '0/0',
      network: await byTestId('wallet-network').textContent(),
    });
    assert.ok(!JSON.stringify(stored).includes(passcode));
    assert.deepEqual(errors, []);
  });

  step('sign a message: a 65-byte signature that recovers the shown address', async () => {
    const message = 'hello from the demo wallet';
    const status = await sign(message, passcode);
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    await assertSignatureRecovers(message);
    assert.equal(await byTestId('sign-passcode').inputValue(), '', 'the passcode field is cleared');
    assert.deepEqual(errors, []);
  });

  step('a wrong passcode shows WRONG_PASSCODE and signs nothing', async () => {
    const status = await sign('not with this passcode', '000000');
    assert.equal(status.state, 'error');
    const error = byTestId('sign-error');
    assert.equal(await error.getAttribute('data-code'), 'WRONG_PASSCODE');
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.equal(await error.textContent(), 'WRONG_PASSCODE: wrong passcode');
    assert.ok(await byTestId('sign-result').isHidden(), 'no earlier signature left on show');
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      'sign-passcode',
      'focus returns to the passcode',
    );
    assert.deepEqual(errors, []);
  });

  step('a reload shows the wallet again, and it still signs', async () => {
    await page.reload();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await byTestId('wallet-address').textContent(), address);
    assert.equal(await byTestId('wallet-path').textContent(), '0/0');
    assert.ok(await byTestId('onboarding').isHidden());
    assert.ok(await byTestId('create-wallet').isHidden());
    assert.match((await byTestId('device-name').textContent()) ?? '', /^devices\/[0-9a-f]{32}$/);

    const message = 'signed after a reload';
    const signed = await sign(message, passcode);
    assert.equal(signed.state, 'ready', `status: ${signed.text}`);
    await assertSignatureRecovers(message);
    assert.deepEqual(errors, []);
  });

  step('export keys: the warning, the box to tick, then the key of the shown address, hidden on demand', async () => {
    const warning = (await byTestId('export-warning').textContent()) ?? '';
    assert.match(warning, /not MPC-secure/);
    assert.match(warning, /offline/);
    assert.ok(await byTestId('export-result').isHidden(), 'nothing shown before the passcode');

    // Without the box ticked, nothing is asked of the SDK.
    await byTestId('export-passcode').fill(passcode);
    await byTestId('export-submit').click();
    assert.match((await byTestId('export-error').textContent()) ?? '', /Tick the box/);
    assert.ok(await byTestId('export-result').isHidden());

    await byTestId('export-passcode').fill(passcode);
    await byTestId('export-understood').check();
    await byTestId('export-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await byTestId('export-passcode').inputValue(), '', 'the passcode field is cleared');
    const privateKey = /** @type {`0x${string}`} */ (
      (await byTestId('export-private-key').first().textContent()) ?? ''
    );
    assert.equal(privateKeyToAccount(privateKey).address, address, 'the key of the shown address');
    assert.match((await byTestId('export-xprv').textContent()) ?? '', /^xprv/);
    assert.match((await byTestId('export-countdown').textContent()) ?? '', /Hidden again in \d+ s/);

    await byTestId('export-hide').click();
    assert.ok(await byTestId('export-result').isHidden());
    assert.equal(await byTestId('export-keys').innerHTML(), '', 'the keys are gone from the page');
    assert.equal(await byTestId('export-xprv').textContent(), '');
    assert.deepEqual(errors, []);
  });

  step('export with a wrong passcode shows WRONG_PASSCODE and reveals nothing', async () => {
    await byTestId('export-passcode').fill('000000');
    await byTestId('export-understood').check();
    await byTestId('export-submit').click();
    const status = await settled();
    assert.equal(status.state, 'error');
    assert.equal(await byTestId('export-error').getAttribute('data-code'), 'WRONG_PASSCODE');
    assert.ok(await byTestId('export-result').isHidden());
    assert.deepEqual(errors, []);
  });

  step('revealed keys hide themselves after 60 seconds', async () => {
    // A fake clock for the page's timers from here on, so its countdown runs a minute at once.
    await page.clock.install();
    await byTestId('export-passcode').fill(passcode);
    await byTestId('export-understood').check();
    await byTestId('export-submit').click();
    await byTestId('export-private-key').first().waitFor();
    await page.clock.runFor(61_000);
    await byTestId('export-result').waitFor({ state: 'hidden' });
    assert.equal(await byTestId('export-keys').innerHTML(), '', 'the keys are gone from the page');
    assert.deepEqual(errors, []);
  });
});

test('a remembered wallet without its device (another profile\'s storage) is dropped', async () => {
  const context = await demo.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(demo.server.url);
  await page.getByTestId('onboarding').waitFor();
  await page.evaluate(() =>
    localStorage.setItem(
      'waas-demo:wallet',
      JSON.stringify({
        device: 'devices/00000000000000000000000000000000',
        wallet: 'pools/default/mpcWallets/w1',
        deviceGroup: 'pools/default/deviceGroups/g1',
        mpcKey: 'pools/default/deviceGroups/g1/mpcKeys/m-0-0',
        address: '0x0000000000000000000000000000000000000000',
        derivationPath: '0/0',
        network: 'networks/ethereum-mainnet',
      }),
    ),
  );
  await page.reload();
  await page.getByTestId('onboarding').waitFor();
  assert.ok(await page.getByTestId('wallet').isHidden());
  assert.equal(await page.evaluate(() => localStorage.getItem('waas-demo:wallet')), null);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a registration that cannot reach the server shows NETWORK, and a retry registers', async () => {
  const context = await demo.browser.newContext();
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(demo.server.url);
  await page.getByTestId('onboarding').waitFor();
  // The server is unreachable for RegisterDevice only (the page and the SDK are loaded).
  const register = '**/v1/device:register';
  await page.route(register, (route) => route.abort('connectionrefused'));

  await page.getByTestId('onboarding-passcode').fill('123456');
  await page.getByTestId('onboarding-confirm').fill('123456');
  await page.getByTestId('onboarding-submit').click();
  const deviceError = page.getByTestId('device-error');
  await page.locator('[data-testid="device-error"][data-code]').waitFor({ timeout: 60_000 });
  assert.equal(await deviceError.getAttribute('data-code'), 'NETWORK');
  assert.match((await deviceError.textContent()) ?? '', /^NETWORK: .+/);
  assert.equal(await page.getByTestId('status').getAttribute('data-state'), 'error');
  assert.ok(await page.getByTestId('onboarding').isHidden(), 'the device exists: no onboarding');
  assert.ok(await page.getByTestId('create-wallet').isHidden(), 'no wallet before registration');
  const retry = page.getByTestId('register-retry');
  assert.ok(await retry.isVisible());

  await page.unroute(register);
  await retry.click();
  await page.locator('[data-testid="status"][data-state="ready"]').waitFor({ timeout: 60_000 });
  const deviceName = (await page.getByTestId('device-name').textContent()) ?? '';
  assert.match(deviceName, /^devices\/[0-9a-f]{32}$/);
  assert.equal(await deviceError.textContent(), '');
  assert.ok(await retry.isHidden());
  assert.ok(await page.getByTestId('create-wallet').isVisible());
  // Only the refused request itself was reported (by the browser's network log), nothing the page
  // threw or logged.
  assert.deepEqual(errors, [
    `request failed: ${demo.server.url}/v1/device:register`,
    'console: Failed to load resource: net::ERR_CONNECTION_REFUSED',
  ]);
  await context.close();
});
