// Turns wasm-bindgen's output in pkg/ into the npm package: entries for browsers and Node with an
// initAsync() guard (npm/*.js), the EIP-1193 provider (npm/eip1193.js), the `waas-sdk/viem` entry
// (npm/viem.js), tightened types (npm/*.d.ts) and a package.json.
// Run by scripts/build.sh after wasm-bindgen and wasm-opt, with both builds in pkg/: the main module
// (waas_sdk*) and the full module (waas_sdk_full*, feature `rare-flows`).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = join(root, 'pkg');
const templates = join(root, 'npm');

/** @param {string} message @returns {never} */
function fail(message) {
  console.error(`package-sdk: ${message}`);
  process.exit(1);
}

// The public exports, as wasm-bindgen's own entry lists them (we replace that entry).
const generatedEntry = readFileSync(join(pkg, 'waas_sdk.js'), 'utf8');
const exportList = generatedEntry.match(/export\s*\{([^}]*)\}\s*from\s*["']\.\/waas_sdk_bg\.js["']/);
if (!exportList) fail('no export list in pkg/waas_sdk.js (did the wasm-bindgen output change?)');
const names = exportList[1].split(',').map((name) => name.trim()).filter(Boolean);
const exportsLine = `export { ${names.join(', ')} } from './waas_sdk_bg.js';`;

// The WaasError class is a wasm-bindgen snippet under a content-hashed folder.
const snippetDirs = existsSync(join(pkg, 'snippets')) ? readdirSync(join(pkg, 'snippets')) : [];
const errorModules = snippetDirs
  .map((dir) => `./snippets/${dir}/js/waas-error.js`)
  .filter((path) => existsSync(join(pkg, path)));
if (errorModules.length !== 1) fail(`expected one waas-error.js snippet, found ${errorModules.length}`);
// Both builds must throw the one WaasError class, so `instanceof WaasError` holds for errors of the
// full module too: they share the snippet's folder (its hash is the crate's, not the build's).
if (!readFileSync(join(pkg, 'waas_sdk_full_bg.js'), 'utf8').includes(`from '${errorModules[0]}'`)) {
  fail(`the full module does not import WaasError from ${errorModules[0]}`);
}

// What the full module adds. The loader gives the main module's WaasClient a lazy wrapper for each
// instance method only the full module has; anything else only it had would be missing from the
// main module's API, so it stops the build.
const main = await import(join(pkg, 'waas_sdk_bg.js'));
const full = await import(join(pkg, 'waas_sdk_full_bg.js'));
/** @param {object} module */
const publicNames = (module) => Object.keys(module).filter((name) => !name.startsWith('__'));
/** @param {object} object */
const members = (object) =>
  Object.getOwnPropertyNames(object).filter((name) => !name.startsWith('__') && !['length', 'name', 'prototype', 'constructor'].includes(name));
/** @param {string[]} a @param {string[]} b */
const missing = (a, b) => a.filter((name) => !b.includes(name));
if (missing(publicNames(main), publicNames(full)).length || missing(publicNames(full), publicNames(main)).length) {
  fail(`the two builds export different names: main ${publicNames(main)}, full ${publicNames(full)}`);
}
/** @type {string[]} */
let fullOnlyMethods = [];
for (const name of publicNames(main)) {
  if (typeof main[name] !== 'function' || !main[name].prototype) continue;
  for (const [side, a, b] of [
    ['static', main[name], full[name]],
    ['instance', main[name].prototype, full[name].prototype],
  ]) {
    const onlyMain = missing(members(a), members(b));
    const onlyFull = missing(members(b), members(a));
    if (onlyMain.length) fail(`${name} has ${side} members the full module lacks: ${onlyMain}`);
    if (!onlyFull.length) continue;
    if (name !== 'WaasClient' || side !== 'instance') {
      fail(`only WaasClient's instance methods can be full-only (npm/loader.js); ${name} has ${side} ${onlyFull}`);
    }
    fullOnlyMethods = onlyFull;
  }
}
if (!fullOnlyMethods.length) fail('the full module adds no WaasClient method (was it built with --features rare-flows?)');

/** @param {string} template */
const fill = (template) =>
  readFileSync(join(templates, template), 'utf8')
    .replace('__EXPORTS__', exportsLine)
    .replace('__WAAS_ERROR_MODULE__', errorModules[0])
    .replace('__FULL_ONLY_METHODS__', JSON.stringify(fullOnlyMethods.sort()));
for (const file of ['loader.js', 'index.js', 'node.js', 'eip1193.js', 'viem.js']) {
  writeFileSync(join(pkg, file), fill(file));
}
for (const file of ['index.d.ts', 'viem.d.ts']) copyFileSync(join(templates, file), join(pkg, file));
// The full build's types are the package's: the main module's WaasClient has the same methods once
// the loader adds the full-only ones, each async like the original.
copyFileSync(join(pkg, 'waas_sdk_full.d.ts'), join(pkg, 'waas_sdk.d.ts'));
copyFileSync(join(templates, 'README.md'), join(pkg, 'README.md'));
// wasm-bindgen's own entry imports the .wasm as an ES module, which browsers cannot do yet.
rmSync(join(pkg, 'waas_sdk.js'));
for (const file of ['waas_sdk_full.js', 'waas_sdk_full.d.ts', 'waas_sdk_full_bg.wasm.d.ts']) rmSync(join(pkg, file));
rmSync(join(pkg, '.gitignore'), { force: true });

const metadata = JSON.parse(
  execFileSync('cargo', ['metadata', '--no-deps', '--format-version', '1'], { cwd: root, encoding: 'utf8' }),
);
const crate = metadata.packages.find((/** @type {{name: string}} */ p) => p.name === 'waas-sdk');
if (!crate) fail('no waas-sdk package in cargo metadata');
// waas-sdk/viem is tested against the workspace's viem: that release is the lowest one declared.
const viemVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies?.viem;
if (!/^2\.\d+\.\d+$/.test(viemVersion ?? '')) fail(`package.json's devDependencies pin no viem 2.x.y (${viemVersion})`);

const manifest = {
  name: 'waas-sdk',
  version: crate.version,
  description: crate.description,
  license: crate.license,
  repository: crate.repository,
  type: 'module',
  types: './index.d.ts',
  exports: {
    '.': {
      types: './index.d.ts',
      node: './node.js',
      default: './index.js',
    },
    './viem': {
      types: './viem.d.ts',
      default: './viem.js',
    },
    './waas_sdk_bg.wasm': './waas_sdk_bg.wasm',
    './waas_sdk_full_bg.wasm': './waas_sdk_full_bg.wasm',
    './package.json': './package.json',
  },
  files: [
    'index.js',
    'node.js',
    'loader.js',
    'eip1193.js',
    'viem.js',
    'index.d.ts',
    'viem.d.ts',
    'waas_sdk.d.ts',
    'waas_sdk_bg.js',
    'waas_sdk_bg.wasm',
    'waas_sdk_full_bg.js',
    'waas_sdk_full_bg.wasm',
    'snippets/',
    'README.md',
  ],
  // Only the loader runs code at import time (it installs the not-initialized guard).
  sideEffects: ['./loader.js'],
  // Only waas-sdk/viem imports viem; the rest of the package works without it.
  peerDependencies: { viem: `^${viemVersion}` },
  peerDependenciesMeta: { viem: { optional: true } },
  engines: { node: '>=20' },
  keywords: ['wallet', 'mpc', 'threshold-ecdsa', 'secp256k1', 'wasm'],
};
writeFileSync(join(pkg, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(
  `package-sdk: pkg/ is waas-sdk@${crate.version} exporting ${names.join(', ')}, WaasError, initAsync, initFullAsync,` +
    ` createEip1193Provider, ProviderRpcError, and waas-sdk/viem's toViemAccount;` +
    ` WaasClient methods from the full module: ${fullOnlyMethods.join(', ')}`,
);
