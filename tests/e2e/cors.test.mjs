// A web wallet on its own origin calls the server cross-origin: the browser's CORS rules, for real.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { launchBrowser, startServer } from './support.mjs';

/** A page server on another port: another origin than the API's. */
function startPageServer() {
  const pages = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>wallet</title>');
  });
  return new Promise((resolve) => {
    pages.listen(0, '127.0.0.1', () => {
      const address = pages.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      resolve({ url: `http://127.0.0.1:${address.port}`, close: () => pages.close() });
    });
  });
}

/** @type {{ url: string, close: () => void }} */
let allowedPages;
/** @type {{ url: string, close: () => void }} */
let otherPages;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  allowedPages = await startPageServer();
  otherPages = await startPageServer();
  server = await startServer({ allowedOrigins: [allowedPages.url] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  allowedPages?.close();
  otherPages?.close();
});

/**
 * From a page at `origin`, calls the API as the SDK does (an Authorization header, so the
 * browser sends a preflight first) and reports what the page may read.
 * @param {string} origin
 */
async function callFrom(origin) {
  const page = await browser.newPage();
  await page.goto(origin);
  const result = await page.evaluate(async (api) => {
    try {
      const response = await fetch(`${api}/v1/pools/default`, {
        headers: { Authorization: 'Bearer not-a-token' },
      });
      return {
        status: response.status,
        code: (await response.json()).code,
        date: response.headers.get('date'),
      };
    } catch (error) {
      return { blocked: String(error) };
    }
  }, server.url.replace('localhost', '127.0.0.1'));
  await page.close();
  return result;
}

test('an allowed origin gets through the preflight and can read the answer and its Date', async () => {
  const result = await callFrom(allowedPages.url);
  assert.equal(result.status, 401, JSON.stringify(result));
  assert.equal(result.code, 'UNAUTHENTICATED');
  assert.ok(result.date && !Number.isNaN(Date.parse(result.date)), 'Date is exposed to scripts');
});

test('the preflight is cached and allows only what the SDK sends', async () => {
  // Chromium does not show preflights to Playwright, so this one is sent as the browser would.
  const response = await fetch(`${server.url}/v1/pools/default`, {
    method: 'OPTIONS',
    headers: {
      Origin: allowedPages.url,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization,content-type',
    },
  });
  assert.equal(response.headers.get('access-control-allow-origin'), allowedPages.url);
  assert.ok(Number(response.headers.get('access-control-max-age')) >= 600, 'preflights are cached');
  assert.match(response.headers.get('access-control-allow-headers') ?? '', /authorization/i);
  assert.equal(response.headers.get('access-control-allow-credentials'), null, 'no cookies');
});

test('another origin is refused by the browser', async () => {
  const result = await callFrom(otherPages.url);
  assert.ok('blocked' in result, JSON.stringify(result));
});
