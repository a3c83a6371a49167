// The npm package as a web wallet gets it: packed, installed by name into a separate Vite project,
// type-checked, built, and run in Node and in headless Chromium.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { collectPageErrors, launchBrowser, repoRoot, startServer } from './support.mjs';

const project = join(repoRoot, 'target/consumer');
const bin = (/** @type {string} */ name) => join(repoRoot, 'node_modules/.bin', name);
const sdkVersion = JSON.parse(readFileSync(join(repoRoot, 'pkg/package.json'), 'utf8')).version;

/** @param {string} command @param {string[]} args */
function run(command, args) {
  return execFileSync(command, args, { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(() => {
  rmSync(project, { recursive: true, force: true });
  cpSync(join(repoRoot, 'tests/consumer'), project, { recursive: true });
  const tarball = run('npm', ['pack', '--silent', '--pack-destination', project, join(repoRoot, 'pkg')]).trim();
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', `./${tarball}`]);
});

test('the package installs by name with only its declared files', () => {
  const installed = join(project, 'node_modules/waas-sdk');
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  assert.equal(manifest.name, 'waas-sdk');
  assert.equal(manifest.version, sdkVersion);
  const listing = run('npm', ['pack', '--dry-run', '--json', installed]);
  const files = JSON.parse(listing)[0].files.map((/** @type {{path: string}} */ f) => f.path);
  assert.ok(files.includes('waas_sdk_bg.wasm') && files.includes('index.d.ts'), files.join(', '));
  assert.ok(files.includes('waas_sdk_full_bg.wasm') && files.includes('waas_sdk_full_bg.js'), files.join(', '));
  assert.ok(!files.includes('waas_sdk.js'), 'the ESM-integration entry is not shipped');
});

test('its types check under strict TypeScript without skipLibCheck', () => {
  run(bin('tsc'), ['-p', project]);
});

test('it runs in Node.js, imported by name', () => {
  const result = JSON.parse(run('node', ['check-node.mjs']));
  assert.deepEqual(result, {
    beforeInit: 'NOT_INITIALIZED',
    badModule: 'INIT_FAILED',
    version: sdkVersion,
    kind: 'device',
    badName: 'INVALID_NAME',
    badFullModule: 'INIT_FAILED',
    fullModule: 'loaded',
    rareMethod: 'function',
  });
});

test('Vite builds it into a page that runs in Chromium', async (t) => {
  run(bin('vite'), ['build', '--logLevel', 'warn', project]);
  const server = await startServer({ staticDir: join(project, 'dist') });
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  const page = await browser.newPage();
  const errors = collectPageErrors(page);
  await page.goto(server.url);
  await page.waitForFunction(() => document.getElementById('result')?.textContent !== 'running');
  const result = JSON.parse((await page.textContent('#result')) ?? '');
  assert.deepEqual(result, {
    beforeInit: 'NOT_INITIALIZED',
    version: sdkVersion,
    kind: 'deviceGroup',
    badName: 'INVALID_NAME',
    full: 'loaded',
  });
  assert.deepEqual(errors, []);
});

after(() => rmSync(project, { recursive: true, force: true }));
