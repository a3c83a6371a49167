// Shared by the end-to-end suites: the real waas-server binary and Debian's Chromium.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

export const repoRoot = new URL('../..', import.meta.url).pathname;
const serverBinary = process.env.WAAS_SERVER_BIN ?? join(repoRoot, 'target/debug/waas-server');

/**
 * Runs an operator command of waas-server (e.g. `unlock-passcode`) on a test server's database.
 * @param {{ dataDir: string }} server
 * @param {string[]} args
 */
export function serverCommand(server, args) {
  return execFileSync(
    serverBinary,
    [...args, '--database', join(server.dataDir, 'waas.db'), '--master-key-file', join(server.dataDir, 'master.key')],
    { encoding: 'utf8', env: { ...process.env, WAAS_LOG: 'warn' } },
  );
}

/** @param {Uint8Array | string} bytes */
const b64u = (bytes) => Buffer.from(bytes).toString('base64url');

/**
 * API calls as the operator (the dev API key), from Node: `api(method, path, json?)`.
 * @param {{ url: string, dataDir: string }} server
 */
export function operatorApi(server) {
  /** @type {{ name: string, privateKey: string }} */
  const apiKey = JSON.parse(readFileSync(join(server.dataDir, 'dev-api-key.json'), 'utf8'));
  /** A request token of the dev API key for one request (docs/api.md, "Request tokens"). */
  const token = (/** @type {string} */ method, /** @type {string} */ path, /** @type {string} */ body) => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64u(JSON.stringify({ alg: 'ES256', typ: 'JWT' }));
    const claims = b64u(
      JSON.stringify({
        sub: apiKey.name,
        aud: 'waas-server',
        iat: now,
        exp: now + 60,
        jti: randomBytes(16).toString('hex'),
        htm: method,
        htu: path,
        bh: b64u(createHash('sha256').update(body).digest()),
      }),
    );
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), {
      key: createPrivateKey(apiKey.privateKey),
      dsaEncoding: 'ieee-p1363',
    });
    return `${header}.${claims}.${b64u(signature)}`;
  };
  /**
   * @param {'GET' | 'POST'} method
   * @param {string} path
   * @param {unknown} [json]
   * @returns {Promise<any>}
   */
  return async (method, path, json) => {
    const body = json === undefined ? '' : JSON.stringify(json);
    const response = await fetch(server.url.replace('localhost', '127.0.0.1') + path, {
      method,
      headers: {
        Authorization: `Bearer ${token(method, path, body)}`,
        ...(json === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: json === undefined ? undefined : body,
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
}

/**
 * Spawns waas-server with `args` and waits for its first line, `waas-server listening on URL`.
 * @param {string[]} args
 */
async function spawnServer(args) {
  const child = spawn(serverBinary, args, {
    env: { ...process.env, WAAS_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const firstLine = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`waas-server exited early with ${code}`)));
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  const match = /^waas-server listening on (http:\/\/\S+)$/.exec(firstLine);
  if (!match) throw new Error(`unexpected first line from waas-server: ${firstLine}`);
  child.removeAllListeners('exit');
  return { child, listening: match[1] };
}

/**
 * Starts waas-server on a free loopback port with a fresh SQLite database and master key.
 * @param {{ staticDir?: string, allowedOrigins?: string[], extraArgs?: string[] }} [options]
 */
export async function startServer({ staticDir, allowedOrigins = [], extraArgs = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'waas-e2e-'));
  const args = [
    '--database',
    join(dataDir, 'waas.db'),
    '--master-key-file',
    join(dataDir, 'master.key'),
    '--dev-api-key-file',
    join(dataDir, 'dev-api-key.json'),
  ];
  if (staticDir) args.push('--static-dir', staticDir);
  for (const origin of allowedOrigins) args.push('--allowed-origin', origin);
  args.push(...extraArgs);
  let { child, listening } = await spawnServer(['--listen', '127.0.0.1:0', ...args]);
  // The port it picked: a restart listens there again, so pages and clients keep their URL.
  const address = new URL(listening).host;
  // http://127.0.0.1:PORT -> http://localhost:PORT: both are secure contexts, and WebAuthn wants a name.
  const url = listening.replace('127.0.0.1', 'localhost');
  /** Ends the running process with `signal` and waits until it has exited. */
  const end = (/** @type {NodeJS.Signals} */ signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    return exited;
  };
  return {
    url,
    /** Its database, master key and dev API key (`dev-api-key.json`); removed by `stop`. */
    dataDir,
    /**
     * Kills the process at once (SIGKILL: no graceful shutdown, in-flight requests are cut, as
     * in a crash), keeping its data; `restart` brings it back.
     */
    async crash() {
      await end('SIGKILL');
    },
    /** Starts it again on the same port, database and master key (after `crash`). */
    async restart() {
      ({ child } = await spawnServer(['--listen', address, ...args]));
    },
    async stop() {
      await end('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The flags this machine needs (no downloads, no background traffic). */
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const chromiumBin = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Headless Debian Chromium, with the flags this machine needs. */
export function launchBrowser() {
  return chromium.launch({ executablePath: chromiumBin, headless: true, args: chromiumArgs });
}

/**
 * For a file of demo-wallet tests: waas-server serving the built demo (`www/dist`), and headless
 * Chromium, started before the file's tests and stopped after them. Read `server` and `browser`
 * inside tests and hooks, once the file's `before` has run.
 */
export function serveDemo() {
  const demo = /** @type {{ server: Awaited<ReturnType<typeof startServer>>, browser: import('playwright-core').Browser }} */ ({});
  before(async () => {
    demo.server = await startServer({ staticDir: join(repoRoot, 'www/dist') });
    demo.browser = await launchBrowser();
  });
  after(async () => {
    await demo.browser?.close();
    await demo.server?.stop();
  });
  return demo;
}

/**
 * Headless Debian Chromium on a profile kept in `userDataDir`: closing it and launching it again
 * on the same folder is a browser restart (IndexedDB and its non-extractable keys included).
 * @param {string} userDataDir
 */
export function launchPersistentBrowser(userDataDir) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumBin,
    headless: true,
    args: chromiumArgs,
  });
}

/**
 * Gives the browser of `page` a platform authenticator (CDP virtual authenticator) that verifies
 * the user at once; with `hasPrf`, it supports the WebAuthn PRF extension.
 * @param {import('playwright-core').BrowserContext} context
 * @param {import('playwright-core').Page} page
 * @param {boolean} hasPrf
 */
export async function addVirtualAuthenticator(context, page, hasPrf) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      ctap2Version: 'ctap2_1',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      hasPrf,
      automaticPresenceSimulation: true,
    },
  });
}

/**
 * Collects what a page reports as broken: console errors and uncaught exceptions.
 * @param {import('playwright-core').Page} page
 */
export function collectPageErrors(page) {
  /** @type {string[]} */
  const errors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  return errors;
}

/** A temporary folder with the SDK harness page and the built package next to it (`pkg/`). */
export function harnessDir() {
  const dir = mkdtempSync(join(tmpdir(), 'waas-harness-'));
  cpSync(join(repoRoot, 'tests/e2e/harness'), dir, { recursive: true });
  cpSync(join(repoRoot, 'pkg'), join(dir, 'pkg'), { recursive: true });
  for (const file of ['index.js', 'loader.js', 'waas_sdk_bg.js', 'waas_sdk_bg.wasm', 'waas_sdk_full_bg.js', 'waas_sdk_full_bg.wasm']) {
    if (!statSync(join(dir, 'pkg', file), { throwIfNoEntry: false })?.isFile()) {
      throw new Error(`pkg/${file} is missing: run scripts/build.sh (and not while tests copy pkg/)`);
    }
  }
  return dir;
}

/** @type {Record<string, string>} */
const contentTypes = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};

/**
 * A tiny static file server for `dir` on 127.0.0.1 (a free port): another origin than the
 * waas-server's `localhost`.
 * @param {string} dir
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export function startStaticServer(dir) {
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not found');
      return;
    }
    response.writeHead(200, {
      'content-type': contentTypes[extname(file)] ?? 'application/octet-stream',
    });
    response.end(readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A loopback port nothing listens on (taken from the OS, then released). */
export function closedPort() {
  const probe = createServer();
  return new Promise((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      probe.close(() => resolve(address.port));
    });
  });
}

/**
 * Opens the harness at `url` in a new page of `context` and waits for the SDK to load.
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} url
 */
export async function openHarness(context, url) {
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(url);
  await page.waitForFunction(() => document.title === 'ready').catch((/** @type {Error} */ error) => {
    throw new Error(`the harness at ${url} did not load: ${error.message}; page errors: ${errors.join('; ') || 'none'}`);
  });
  return { page, errors };
}

/**
 * In the page: bootstraps the device with `passcode`, registers it with the server at `baseUrl`
 * (`''`: the page's origin) and creates a wallet with its first address.
 * @param {import('playwright-core').Page} page
 * @param {{ baseUrl?: string, passcode?: string }} [options]
 * @returns {Promise<{ device: { name: string }, created: { wallet: { name: string, deviceGroup: string }, address: { address: `0x${string}`, mpcKeys: string[], derivationPath: string, mpcWallet: string } } }>}
 */
export function createWalletIn(page, { baseUrl = '', passcode = '123456' } = {}) {
  return page.evaluate(
    async ({ baseUrl, passcode }) => {
      const { sdk } = /** @type {any} */ (window);
      if (!(await sdk.bootstrapDevice(passcode))) throw new Error('the profile had a device');
      const client = await sdk.WaasClient.connect(baseUrl);
      const device = await client.registerDevice();
      const created = await client.createWallet({ passcode });
      return { device, created };
    },
    { baseUrl, passcode },
  );
}

/**
 * In the page: signs `message` (EIP-191) with `mpcKey` through a new client of `baseUrl`.
 * @param {import('playwright-core').Page} page
 * @param {string} mpcKey
 * @param {string} message
 * @param {{ baseUrl?: string, passcode?: string }} [options]
 * @returns {Promise<{ mpcKey: string, payload: string, signedPayload: { signature: `0x${string}` } }>}
 */
export function signMessageIn(page, mpcKey, message, { baseUrl = '', passcode = '123456' } = {}) {
  return page.evaluate(
    async ({ baseUrl, mpcKey, message, passcode }) => {
      const { sdk } = /** @type {any} */ (window);
      const client = await sdk.WaasClient.connect(baseUrl);
      return client.signMessage(mpcKey, message, { passcode });
    },
    { baseUrl, mpcKey, message, passcode },
  );
}

/**
 * Everything the SDK stored in the page's origin: the IndexedDB database `name` (default
 * `waas-sdk`), store by store (`keys`, `records`, `meta`), key by key, as plain JSON. Bytes become
 * `hex:…`; a CryptoKey becomes its description plus an identity check that does not change it
 * (an AES key: its GCM tag of the empty message under a zero nonce; an ECDSA key: whether it
 * signs for the stored `authPublicKey`). `null` if the database does not exist (it is not created).
 * @param {import('playwright-core').Page} page
 * @param {string} [name]
 * @returns {Promise<Record<string, Record<string, unknown>> | null>}
 */
export function readKeyStore(page, name = 'waas-sdk') {
  return page.evaluate(async (name) => {
    /** @type {IDBDatabase | null} */
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open(name);
      let created = false;
      request.onupgradeneeded = () => {
        // The database did not exist: leave it so (the SDK creates it with its stores).
        created = true;
        request.transaction?.abort();
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => (created ? resolve(null) : reject(request.error));
    });
    if (db === null) return null;
    /** @param {IDBRequest} request @returns {Promise<any>} */
    const settle = (request) =>
      new Promise((resolve, reject) => {
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    /** @type {Record<string, Record<string, any>>} */
    const raw = {};
    const names = Array.from({ length: db.objectStoreNames.length }, (_, i) => db.objectStoreNames.item(i) ?? '').sort();
    const transaction = db.transaction(names, 'readonly');
    for (const storeName of names) {
      const store = transaction.objectStore(storeName);
      const [keys, values] = await Promise.all([settle(store.getAllKeys()), settle(store.getAll())]);
      raw[storeName] = Object.fromEntries(keys.map((/** @type {any} */ key, /** @type {number} */ i) => [String(key), values[i]]));
    }
    db.close();
    const authPublicKey = raw.meta?.device?.authPublicKey;
    /** @param {Uint8Array} bytes */
    const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
    /** @param {CryptoKey} key */
    const identity = async (key) => {
      if (key.algorithm.name === 'AES-GCM') {
        const tag = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, key, new Uint8Array(0));
        return `gcm-tag:${hex(new Uint8Array(tag))}`;
      }
      if (key.algorithm.name === 'ECDSA' && authPublicKey instanceof Uint8Array) {
        const data = new TextEncoder().encode('waas e2e identity');
        const algorithm = { name: 'ECDSA', hash: 'SHA-256' };
        const signature = await crypto.subtle.sign(algorithm, key, data);
        const publicKey = await crypto.subtle.importKey('raw', new Uint8Array(authPublicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
        const pairs = await crypto.subtle.verify(algorithm, publicKey, signature, data);
        return pairs ? 'signs-for:meta/device.authPublicKey' : 'signs-for:another key';
      }
      return 'unchecked';
    };
    /** @param {unknown} value @returns {Promise<unknown>} */
    const plain = async (value) => {
      if (value instanceof Uint8Array) return `hex:${hex(value)}`;
      if (value instanceof ArrayBuffer) return `hex:${hex(new Uint8Array(value))}`;
      if (value instanceof CryptoKey) {
        return {
          cryptoKey: {
            type: value.type,
            algorithm: JSON.parse(JSON.stringify(value.algorithm)),
            extractable: value.extractable,
            usages: [...value.usages].sort(),
            identity: await identity(value),
          },
        };
      }
      if (Array.isArray(value)) return Promise.all(value.map(plain));
      if (value !== null && typeof value === 'object') {
        const entries = await Promise.all(
          Object.entries(value).map(async ([key, inner]) => [key, await plain(inner)]),
        );
        return Object.fromEntries(entries);
      }
      return value;
    };
    /** @type {Record<string, Record<string, unknown>>} */
    const snapshot = {};
    for (const [storeName, entries] of Object.entries(raw)) {
      snapshot[storeName] = {};
      for (const [key, value] of Object.entries(entries)) snapshot[storeName][key] = await plain(value);
    }
    return snapshot;
  }, name);
}

/**
 * Alters one stored field in place, as a disk or an extension altering the profile would:
 * `store`/`key`, then the fields of `path`; `change` either flips one bit of a byte string at
 * `flip` (default: the middle) or sets the field to `value` (JSON values only).
 * @param {import('playwright-core').Page} page
 * @param {{ store: string, key: string, path: string[], name?: string }} target
 * @param {{ flip: number | undefined } | { value: unknown }} change
 */
function alterStored(page, { store, key, path, name = 'waas-sdk' }, change) {
  return page.evaluate(
    async ({ store, key, path, name, change }) => {
      /** @type {IDBDatabase} */
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open(name);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      const transaction = db.transaction(store, 'readwrite');
      const objects = transaction.objectStore(store);
      /** @type {any} */
      const stored = await new Promise((resolve, reject) => {
        const request = objects.get(key);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      if (stored === undefined) throw new Error(`no ${store}/${key}`);
      let parent = stored;
      for (const field of path.slice(0, -1)) parent = parent[field];
      const last = path[path.length - 1];
      if ('value' in change) {
        parent[last] = change.value;
      } else {
        const bytes = parent[last];
        if (!(bytes instanceof Uint8Array)) throw new Error(`${store}/${key}.${path.join('.')} is not bytes`);
        const flipped = new Uint8Array(bytes);
        flipped[change.flip ?? Math.floor(flipped.length / 2)] ^= 0x01;
        parent[last] = flipped;
      }
      objects.put(stored, key);
      await new Promise((resolve, reject) => {
        transaction.oncomplete = resolve;
        transaction.onerror = () => reject(transaction.error);
      });
      db.close();
    },
    { store, key, path, name, change },
  );
}

/**
 * Flips one bit of a stored byte string at byte `index` (default: the middle).
 * @param {import('playwright-core').Page} page
 * @param {{ store: string, key: string, path: string[], index?: number, name?: string }} target
 */
export function flipStoredByte(page, { index, ...target }) {
  return alterStored(page, target, { flip: index });
}

/**
 * Overwrites one stored field with `value` (JSON values only).
 * @param {import('playwright-core').Page} page
 * @param {{ store: string, key: string, path: string[], value: unknown, name?: string }} target
 */
export function setStoredField(page, { value, ...target }) {
  return alterStored(page, target, { value });
}

/**
 * For a test file that drives the SDK on the harness page: before its tests, the server serving
 * the page and the built package, and a headless browser; after them, both stopped and the page
 * folder removed. The fields are set once the `before` hook has run.
 */
export function harnessFixture({ extraArgs = /** @type {string[]} */ ([]) } = {}) {
  const harness = /** @type {{
   *   staticDir: string,
   *   server: Awaited<ReturnType<typeof startServer>>,
   *   browser: import('playwright-core').Browser,
   * }} */ ({});
  before(async () => {
    harness.staticDir = harnessDir();
    harness.server = await startServer({ staticDir: harness.staticDir, extraArgs });
    harness.browser = await launchBrowser();
  });
  after(async () => {
    await harness.browser?.close();
    await harness.server?.stop();
    if (harness.staticDir) rmSync(harness.staticDir, { recursive: true, force: true });
  });
  return harness;
}

/**
 * Tests that run in order and build on each other (a page walked through a flow): `step(name,
 * body)` declares one, skipped once an earlier one failed, since it would start where that one
 * should have ended.
 */
export function stepsInOrder() {
  let failedStep = '';
  /** @param {string} name @param {() => Promise<void>} body */
  return function step(name, body) {
    test(name, async (t) => {
      if (failedStep) return t.skip(`the step before failed: ${failedStep}`);
      try {
        await body();
      } catch (error) {
        failedStep = name;
        throw error;
      }
    });
  };
}

/**
 * Waits until a demo page is no longer busy (its status region leaves `data-state="busy"`, which
 * the page sets as soon as an action starts) and returns the status's state and text.
 * @param {import('playwright-core').Page} page @param {number} timeout
 */
export async function settledStatus(page, timeout) {
  await page.waitForFunction(
    () => {
      const state = document.querySelector('[data-testid="status"]')?.getAttribute('data-state');
      return state !== 'busy' && state !== 'loading';
    },
    undefined,
    { timeout },
  );
  const status = page.getByTestId('status');
  return { state: await status.getAttribute('data-state'), text: await status.textContent() };
}
