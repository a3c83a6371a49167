// Turns wasm-bindgen's output in pkg/ into the npm package: entries for browsers and Node with an
// initAsync() guard (npm/*.js), tightened types (npm/index.d.ts) and a package.json.
// Run by scripts/build.sh after wasm-bindgen and wasm-opt.
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

/** @param {string} template */
const fill = (template) =>
  readFileSync(join(templates, template), 'utf8')
    .replace('__EXPORTS__', exportsLine)
    .replace('__WAAS_ERROR_MODULE__', errorModules[0]);
for (const file of ['loader.js', 'index.js', 'node.js']) {
  writeFileSync(join(pkg, file), fill(file));
}
copyFileSync(join(templates, 'index.d.ts'), join(pkg, 'index.d.ts'));
copyFileSync(join(templates, 'README.md'), join(pkg, 'README.md'));
// wasm-bindgen's own entry imports the .wasm as an ES module, which browsers cannot do yet.
rmSync(join(pkg, 'waas_sdk.js'));
rmSync(join(pkg, '.gitignore'), { force: true });

const metadata = JSON.parse(
  execFileSync('cargo', ['metadata', '--no-deps', '--format-version', '1'], { cwd: root, encoding: 'utf8' }),
);
const crate = metadata.packages.find((/** @type {{name: string}} */ p) => p.name === 'waas-sdk');
if (!crate) fail('no waas-sdk package in cargo metadata');

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
    './waas_sdk_bg.wasm': './waas_sdk_bg.wasm',
    './package.json': './package.json',
  },
  files: [
    'index.js',
    'node.js',
    'loader.js',
    'index.d.ts',
    'waas_sdk.d.ts',
    'waas_sdk_bg.js',
    'waas_sdk_bg.wasm',
    'snippets/',
    'README.md',
  ],
  // Only the loader runs code at import time (it installs the not-initialized guard).
  sideEffects: ['./loader.js'],
  engines: { node: '>=20' },
  keywords: ['wallet', 'mpc', 'threshold-ecdsa', 'secp256k1', 'wasm'],
};
writeFileSync(join(pkg, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`package-sdk: pkg/ is waas-sdk@${crate.version} exporting ${names.join(', ')}, WaasError, initAsync`);
