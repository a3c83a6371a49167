// The demo wallet, served by the real waas-server, in headless Chromium.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { collectPageErrors, launchBrowser, repoRoot, startServer } from './support.mjs';

const cargoToml = readFileSync(join(repoRoot, 'Cargo.toml'), 'utf8');
const crateVersion = /\[workspace\.package\][^[]*?\nversion = "([^"]+)"/.exec(cargoToml)?.[1];

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  server = await startServer({ staticDir: join(repoRoot, 'www/dist') });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the demo page shows the SDK and server versions without errors', async () => {
  assert.ok(crateVersion, 'version in Cargo.toml');
  const page = await browser.newPage();
  const errors = collectPageErrors(page);
  /** @type {string[]} */
  const wasmTypes = [];
  page.on('response', (response) => {
    if (response.url().endsWith('.wasm')) wasmTypes.push(response.headers()['content-type'] ?? '');
  });

  await page.goto(server.url);
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
  const page = await browser.newPage();
  await page.goto(server.url);
  const body = await page.evaluate(async () => {
    const response = await fetch('/v1/no-such-route');
    return { status: response.status, json: await response.json() };
  });
  assert.equal(body.status, 404);
  assert.equal(body.json.code, 'NOT_FOUND');
  assert.equal(body.json.status, 404);
  await page.close();
});
