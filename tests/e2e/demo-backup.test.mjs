// The demo wallet's backup and devices sections, served by the real waas-server, in headless
// Chromium: one browser profile goes through them step by step, a test per step, in order.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe } from 'node:test';

import { collectPageErrors, serveDemo, settledStatus, stepsInOrder } from './support.mjs';

const demo = serveDemo();

describe('the demo wallet: back up, then the devices and revoking this one', () => {
  const passcode = '123456';
  /** Generous: key generation, backup and signing run MPC rounds against a debug build of the server. */
  const stepTimeout = 120_000;
  /** @type {import('playwright-core').BrowserContext} */
  let context;
  /** @type {import('playwright-core').Page} */
  let page;
  /** @type {string[]} */
  let errors;
  /** Every console message of the page, to check that the backup string is never logged. */
  /** @type {string[]} */
  const consoleTexts = [];
  /** The first backup string the page showed. */
  let backup = '';
  /** This device's name, as the device section shows it. */
  let deviceName = '';

  before(async () => {
    // The Copy button writes to the clipboard, and the test reads it back.
    context = await demo.browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
    page = await context.newPage();
    errors = collectPageErrors(page);
    page.on('console', (message) => consoleTexts.push(message.text()));
  });

  after(async () => {
    await context?.close();
  });

  const step = stepsInOrder();

  /** @param {string} id */
  const byTestId = (id) => page.getByTestId(id);

  const settled = () => settledStatus(page, stepTimeout);

  /** Fills the backup form and submits it. @param {string} code */
  async function submitBackup(code) {
    await byTestId('backup-passcode').fill(code);
    await byTestId('backup-submit').click();
    return settled();
  }

  /** Fills the sign form and submits it. @param {string} message */
  async function sign(message) {
    await byTestId('sign-message').fill(message);
    await byTestId('sign-passcode').fill(passcode);
    await byTestId('sign-submit').click();
    return settled();
  }

  /** The devices list as plain data. */
  function listedDevices() {
    return byTestId('device-item').evaluateAll((items) =>
      items.map((item) => ({
        name: item.getAttribute('data-device'),
        state: item.querySelector('[data-testid="device-item-state"]')?.textContent,
        self: item.querySelector('[data-testid="device-item-self"]') !== null,
        revoke: item.querySelector('[data-testid="device-item-revoke"]') !== null,
      })),
    );
  }

  /**
   * The refused request (the server's 403 to the revoked device's sign) is all the page reported:
   * the browser's network log of it, nothing the page threw or logged. Then the list starts over.
   */
  function assertOnlyRefusedOnce() {
    assert.deepEqual(errors, ['console: Failed to load resource: the server responded with a status of 403 (Forbidden)']);
    errors.length = 0;
  }

  /** Where a page could keep or leak the string: its URL, localStorage, its console. */
  async function assertNotStoredOrLogged(/** @type {string} */ secret) {
    assert.ok(!page.url().includes(secret), 'not in the URL');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    assert.ok(!stored.includes(secret), 'not in localStorage');
    assert.ok(!consoleTexts.some((text) => text.includes(secret)), 'not logged');
  }

  step('a device and a wallet; the backup and devices sections appear with the wallet', async () => {
    await page.goto(demo.server.url);
    assert.equal((await settled()).state, 'ready');
    assert.ok(await byTestId('backup').isHidden(), 'no backup before a wallet');
    assert.ok(await byTestId('devices').isHidden(), 'no devices before a wallet');
    await byTestId('onboarding-passcode').fill(passcode);
    await byTestId('onboarding-confirm').fill(passcode);
    await byTestId('onboarding-submit').click();
    assert.equal((await settled()).state, 'ready');
    await byTestId('create-wallet-passcode').fill(passcode);
    await byTestId('create-wallet-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    deviceName = (await byTestId('device-name').textContent()) ?? '';
    assert.match(deviceName, /^devices\/[0-9a-f]{32}$/);
    assert.ok(await byTestId('backup').isVisible());
    assert.ok(await byTestId('devices').isVisible());
    assert.ok(await byTestId('backup-result').isHidden(), 'no string before the passcode');
    assert.deepEqual(errors, []);
  });

  step('a wrong passcode shows WRONG_PASSCODE and no backup', async () => {
    const status = await submitBackup('000000');
    assert.equal(status.state, 'error');
    assert.equal(await byTestId('backup-error').getAttribute('data-code'), 'WRONG_PASSCODE');
    assert.ok(await byTestId('backup-result').isHidden());
    assert.equal(await byTestId('backup-passcode').inputValue(), '', 'the passcode field is cleared');
    assert.deepEqual(errors, []);
  });

  step('back up: a waasbackup1 string, with the advice, a copy and a download holding it', async () => {
    const status = await submitBackup(passcode);
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    backup = (await byTestId('backup-string').textContent()) ?? '';
    assert.match(backup, /^waasbackup1[1-9A-HJ-NP-Za-km-z]+$/, 'the SDK\'s string, Base58');
    // The device held none to show again: the page says so with the SDK's code, and made one.
    assert.equal(await byTestId('backup-origin').getAttribute('data-code'), 'NO_BACKUP');
    assert.equal(await byTestId('backup-error').textContent(), '');
    const advice = (await byTestId('backup-advice').textContent()) ?? '';
    assert.match(advice, /only you control/);
    assert.match(advice, /cloud storage/);
    assert.match(advice, /apart from your passcode/);
    assert.match(advice, /new browser/);
    assert.match(advice, /for the server alike/);

    await byTestId('backup-copy').click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), backup, 'Copy copies the string');

    const [download] = await Promise.all([page.waitForEvent('download'), byTestId('backup-download').click()]);
    const wallet = (await byTestId('wallet-name').textContent()) ?? '';
    const walletId = wallet.split('/').pop();
    assert.equal(download.suggestedFilename(), `waas-backup-${walletId}.txt`);
    const file = readFileSync(/** @type {string} */ (await download.path()), 'utf8');
    const lines = file.trimEnd().split('\n');
    assert.equal(lines.length, 2, 'a one-line note, then the string');
    assert.match(lines[0] ?? '', /backup of the wallet .*passcode.*new browser/);
    assert.ok(lines[0]?.includes(wallet), 'the note names the wallet');
    assert.equal(lines[1], backup, 'the file holds the string');

    await assertNotStoredOrLogged(backup);
    assert.deepEqual(errors, []);
  });

  step('before "I have saved it", backing up again offers the same string (no new backup)', async () => {
    const status = await submitBackup(passcode);
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await byTestId('backup-string').textContent(), backup, 'the string the device kept');
    assert.equal(await byTestId('backup-origin').getAttribute('data-code'), null);
    assert.match((await byTestId('backup-origin').textContent()) ?? '', /still held/);
    assert.deepEqual(errors, []);
  });

  step('"I have saved it": the device forgets the string; asking again finds NO_BACKUP and makes a new one', async () => {
    await byTestId('backup-saved').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.ok(await byTestId('backup-result').isHidden());
    assert.equal(await byTestId('backup-string').textContent(), '', 'the string is gone from the page');
    assert.match((await byTestId('backup-done').textContent()) ?? '', /forgotten its copy/);
    assert.ok(!(await page.content()).includes(backup), 'nowhere in the DOM');

    // exportDeviceBackup (the page's first call) answers NO_BACKUP now: the page shows that code
    // and makes a new backup, another string.
    const again = await submitBackup(passcode);
    assert.equal(again.state, 'ready', `status: ${again.text}`);
    assert.equal(await byTestId('backup-origin').getAttribute('data-code'), 'NO_BACKUP');
    const second = (await byTestId('backup-string').textContent()) ?? '';
    assert.match(second, /^waasbackup1/);
    assert.notEqual(second, backup, 'a new backup, not the forgotten one');
    await byTestId('backup-saved').click();
    assert.equal((await settled()).state, 'ready');
    await assertNotStoredOrLogged(second);
    assert.deepEqual(errors, []);
  });

  step('devices: the group lists this device, marked, ACTIVE, without a Revoke button', async () => {
    await byTestId('devices-refresh').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await byTestId('devices-error').textContent(), '');
    assert.deepEqual(await listedDevices(), [{ name: deviceName, state: 'ACTIVE', self: true, revoke: false }]);
    assert.ok(await byTestId('revoke-self-form').isVisible());
    assert.match((await byTestId('revoke-warning').textContent()) ?? '', /only moving the funds/);
    assert.match((await byTestId('revoke-warning').textContent()) ?? '', /change the\s+passcode/);
    assert.deepEqual(errors, []);
  });

  step('revoke this device: only with the box ticked; then REVOKED, and signing fails with DEVICE_REVOKED', async () => {
    // Without the confirmation, nothing is asked of the SDK.
    await byTestId('revoke-self-submit').click();
    assert.match((await byTestId('revoke-self-error').textContent()) ?? '', /Tick the box/);
    assert.equal(await byTestId('device-state').textContent(), 'ACTIVE');

    await byTestId('revoke-self-understood').check();
    await byTestId('revoke-self-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await byTestId('device-state').textContent(), 'REVOKED');
    assert.ok(await byTestId('device-revoked').isVisible(), 'the page says the device is revoked');
    assert.deepEqual(await listedDevices(), [{ name: deviceName, state: 'REVOKED', self: true, revoke: false }]);
    assert.ok(await byTestId('revoke-self-form').isHidden());
    assert.ok(await byTestId('backup').isHidden(), 'a revoked device makes no backup');

    const signed = await sign('after revoking this device');
    assert.equal(signed.state, 'error');
    assert.equal(await byTestId('sign-error').getAttribute('data-code'), 'DEVICE_REVOKED');
    assert.ok(await byTestId('sign-result').isHidden());
    assertOnlyRefusedOnce();
  });

  step('after a reload the device is still shown revoked, and still signs nothing', async () => {
    await page.reload();
    await settled();
    assert.equal(await byTestId('device-state').textContent(), 'REVOKED');
    assert.ok(await byTestId('device-revoked').isVisible());
    assert.ok(await byTestId('backup').isHidden());
    const signed = await sign('after a reload');
    assert.equal(await byTestId('sign-error').getAttribute('data-code'), 'DEVICE_REVOKED', `status: ${signed.text}`);
    assertOnlyRefusedOnce();
  });

  // Revoking *another* device from the list (its Revoke button, the passcode as step-up) needs a
  // second device in the group: recovery.test.mjs adds one by recovery and revokes the first.
});
