// A web wallet on its own origin: the harness and the package served by a separate static server
// on 127.0.0.1, the API on localhost, so every SDK call is a CORS request with a preflight.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { recoverMessageAddress } from 'viem';

import {
  createWalletIn,
  harnessDir,
  launchBrowser,
  openHarness,
  readKeyStore,
  signMessageIn,
  startServer,
  startStaticServer,
} from './support.mjs';

/** Key generation and signing against a debug build of the server: generous, never forever. */
const timeout = 180_000;

/** @type {string} */
let staticDir;
/** @type {Awaited<ReturnType<typeof startStaticServer>>} */
let allowedPages;
/** @type {Awaited<ReturnType<typeof startStaticServer>>} */
let otherPages;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  staticDir = harnessDir();
  allowedPages = await startStaticServer(staticDir);
  otherPages = await startStaticServer(staticDir);
  server = await startServer({ allowedOrigins: [allowedPages.url] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await allowedPages?.close();
  await otherPages?.close();
  rmSync(staticDir, { recursive: true, force: true });
});

test('a page on an allowed origin runs the whole flow against the API on another origin', { timeout }, async () => {
  assert.notEqual(new URL(allowedPages.url).origin, new URL(server.url).origin);
  const context = await browser.newContext();
  const { page, errors } = await openHarness(context, allowedPages.url);
  /** @type {Set<string>} */
  const apiOrigins = new Set();
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/v1/')) apiOrigins.add(url.origin);
  });

  const { device, created } = await createWalletIn(page, { baseUrl: server.url });
  assert.match(device.name, /^devices\/[0-9a-f]{32}$/);
  assert.equal(created.address.derivationPath, '0/0');
  const message = 'hello from another origin';
  const signature = await signMessageIn(page, created.address.mpcKeys[0], message, {
    baseUrl: server.url,
  });
  assert.equal(
    await recoverMessageAddress({ message, signature: signature.signedPayload.signature }),
    created.address.address,
    'viem recovers the wallet address',
  );
  assert.deepEqual([...apiOrigins], [new URL(server.url).origin], 'every API call went cross-origin');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a page on an origin the server does not allow gets NETWORK, and nothing is stored', { timeout }, async () => {
  const context = await browser.newContext();
  const { page } = await openHarness(context, otherPages.url);
  const result = await page.evaluate(async (baseUrl) => {
    const { sdk } = /** @type {any} */ (window);
    await sdk.bootstrapDevice('123456');
    const client = await sdk.WaasClient.connect(baseUrl);
    return client.registerDevice().then(
      () => 'resolved',
      (/** @type {any} */ error) =>
        error instanceof sdk.WaasError ? error.code : `not a WaasError: ${error}`,
    );
  }, server.url);
  assert.equal(result, 'NETWORK');
  const stored = await readKeyStore(page);
  assert.deepEqual(Object.keys(stored?.records ?? {}), ['archive-key'], 'only the device itself');
  await context.close();
});
