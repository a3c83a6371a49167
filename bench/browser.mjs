// The SDK's speed in a real browser (design §8 budgets), against the real server on loopback:
// bootstrap (Argon2id included), one unlock, key generation, signing and export end to end, the
// first rare call's load of the full module, and the two modules' sizes. Prints a Markdown section
// for docs/benchmarks.md.
//
//   npm run bench:browser            (builds the release server and the package first)
//   WAAS_BENCH_RUNS=20 npm run bench:browser
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { launchBrowser, repoRoot, startServer } from '../tests/e2e/support.mjs';

const runs = Number(process.env.WAAS_BENCH_RUNS ?? 10);

/** @param {number[]} samples */
function median(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** @param {number} ms */
const format = (ms) => `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;

const staticDir = mkdtempSync(join(tmpdir(), 'waas-bench-'));
cpSync(join(repoRoot, 'tests/e2e/harness'), staticDir, { recursive: true });
cpSync(join(repoRoot, 'pkg'), join(staticDir, 'pkg'), { recursive: true });
process.env.WAAS_SERVER_BIN ??= join(repoRoot, 'target/release/waas-server');
const server = await startServer({ staticDir });
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForFunction(() => document.title === 'ready');
  const times = await page.evaluate(async (runs) => {
    const { sdk } = /** @type {any} */ (window);
    const unlock = { passcode: '123456' };
    const time = async (/** @type {() => Promise<unknown>} */ work) => {
      const start = performance.now();
      await work();
      return performance.now() - start;
    };
    const bootstrap = await time(() => sdk.bootstrapDevice('123456'));
    const device = await sdk.WaasDevice.open();
    const client = await sdk.WaasClient.connect('');
    await client.registerDevice();
    /** @type {number[]} */ const unlocks = [];
    /** @type {number[]} */ const keygens = [];
    /** @type {number[]} */ const signs = [];
    /** @type {string | undefined} */ let key;
    // Before the first wallet the passcode opens the keys locally (Argon2id); from then on only
    // through a login at the server (OPAQUE, its Argon2id inside).
    const localUnlock = await time(() => device.checkPasscode('123456'));
    for (let run = 0; run < runs; run += 1) {
      keygens.push(
        await time(async () => {
          const created = await client.createWallet(unlock);
          key ??= created.address.mpcKeys[0];
        }),
      );
    }
    for (let run = 0; run < runs; run += 1) {
      unlocks.push(await time(() => client.checkPasscode('123456')));
    }
    for (let run = 0; run < runs; run += 1) {
      const digest = `0x${run.toString(16).padStart(64, '0')}`;
      signs.push(await time(() => client.signPayload(key, digest, unlock)));
    }
    // Export of the last wallet with three addresses: one OPAQUE login (its Argon2id included),
    // then the archive opened and every key derived and checked.
    const wallet = (await client.createWallet(unlock)).wallet;
    for (let i = 0; i < 2; i += 1) await client.generateAddress(wallet.name);
    const metadata = (await client.getDeviceGroup(wallet.deviceGroup)).mpcKeyExportMetadata;
    // The first export also loads the full module (fetch, compile, instantiate) and connects a
    // client of it; the later ones measure export alone.
    const firstExport = await time(() => client.exportPrivateKeys(metadata, unlock));
    /** @type {number[]} */ const exports = [];
    for (let run = 0; run < runs; run += 1) {
      exports.push(await time(() => client.exportPrivateKeys(metadata, unlock)));
    }
    return { bootstrap, localUnlock, unlocks, keygens, signs, firstExport, exports };
  }, runs);

  // The full module's load alone, in a fresh context each run (empty HTTP cache, as on the first
  // rare call of a visit): what a first backup, recovery, export or revoke waits for before its
  // own work.
  /** @type {number[]} */ const fullLoads = [];
  for (let run = 0; run < runs; run += 1) {
    const context = await browser.newContext();
    const fresh = await context.newPage();
    await fresh.goto(server.url);
    await fresh.waitForFunction(() => document.title === 'ready');
    fullLoads.push(
      await fresh.evaluate(async () => {
        const start = performance.now();
        await /** @type {any} */ (window).sdk.initFullAsync();
        return performance.now() - start;
      }),
    );
    await context.close();
  }

  const wasm = readFileSync(join(repoRoot, 'pkg/waas_sdk_bg.wasm'));
  const fullWasm = readFileSync(join(repoRoot, 'pkg/waas_sdk_full_bg.wasm'));
  /** @param {Buffer} bytes */
  const sizes = (bytes) =>
    `${bytes.length.toLocaleString('en')} / ${gzipSync(bytes, { level: 9 }).length.toLocaleString('en')} bytes`;
  const unlock = median(times.unlocks);
  console.log(`## The SDK in Chromium (\`npm run bench:browser\`)

Headless Chromium, the release package (wasm-opt -Oz) and the release server on loopback, one
browser profile; medians of ${runs} runs. Each wallet and each signature is the whole flow an app
calls (\`createWallet\`, \`signPayload\`), with one passcode unlock in it: with a wallet, an OPAQUE
login at the server (Argon2id, 19 MiB, t = 2, on the device, and two round trips).

| what | median | design budget |
|---|---|---|
| bootstrap (keys, Argon2id, IndexedDB), once | ${format(times.bootstrap)} | |
| unlock before the first wallet (local Argon2id), once | ${format(times.localUnlock)} | |
| unlock with the passcode: one login | ${format(unlock)} | |
| create a wallet: key generation end to end, first address | ${format(median(times.keygens))} | ≤ 1.5 s |
| sign a digest end to end | ${format(median(times.signs))} | |
| sign, without the unlock | ${format(median(times.signs) - unlock)} | ≤ 40 ms |
| export 3 keys with the passcode: one login, then offline | ${format(median(times.exports))} | ≤ 50 ms plus the login |
| the full module's load (fetch on loopback, compile, instantiate), on a first rare call | ${format(median(fullLoads))} | |
| the first export of the page, that load included (one sample) | ${format(times.firstExport)} | |
| main .wasm raw / gzip -9 (every page load) | ${sizes(wasm)} | gzip ≤ 410 KB (400 before issue 8) |
| full .wasm raw / gzip -9 (first rare call) | ${sizes(fullWasm)} | |
`);
} finally {
  await browser.close();
  await server.stop();
  rmSync(staticDir, { recursive: true, force: true });
}
