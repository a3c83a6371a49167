// Ethereum signing end to end: the built package in headless Chromium (signMessage, signTypedData,
// signTransaction, the viem account of waas-sdk/viem, the EIP-1193 provider), the real server on
// the other side, and viem and ethers checking every result in Node. viem runs in the page from a
// bundle built here with Vite; a stand-in JSON-RPC node (node:http) answers what the provider and
// viem ask before sending, and records the raw transactions they send.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Transaction, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData } from 'ethers';
import {
  hashMessage,
  hashTypedData,
  keccak256,
  parseTransaction,
  recoverTransactionAddress,
  serializeTransaction,
  toHex,
  verifyMessage,
  verifyTypedData,
} from 'viem';
import { build } from 'vite';

import { collectPageErrors, harnessFixture, repoRoot } from './support.mjs';

const passcode = '123456';
/** The chain of the provider and of the stand-in node. */
const CHAIN_ID = 31337;
const bob = '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB';
const cow = '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826';
/** `address` with the case of its first letter swapped: a wrong EIP-55 checksum. */
const misspelled = (/** @type {string} */ address) =>
  address.replace(/(?<=^0x[0-9]*)[a-fA-F]/, (letter) => (letter === letter.toLowerCase() ? letter.toUpperCase() : letter.toLowerCase()));

/** The "Mail" example of EIP-712, and its digest as the EIP gives it. */
const mail = /** @type {const} */ ({
  types: {
    EIP712Domain: [
      { name: 'name', type: 'string' },
      { name: 'version', type: 'string' },
      { name: 'chainId', type: 'uint256' },
      { name: 'verifyingContract', type: 'address' },
    ],
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  domain: { name: 'Ether Mail', version: '1', chainId: 1, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
});
const MAIL_DIGEST = '0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2';
const { EIP712Domain: _domainType, ...mailTypes } = mail.types;
/** The example as viem and ethers take it: the domain's type is inferred from its fields. */
const mailForViem = { ...mail, types: mailTypes };
/** ethers takes mutable type lists. */
const mutable = (/** @type {object} */ types) => /** @type {Record<string, import('ethers').TypedDataField[]>} */ (types);

/**
 * Typed data with bigint values (an EIP-2612 permit with a signed field added): values above
 * 2^64, a negative int256, a bigint chain id.
 * @param {`0x${string}`} owner
 */
const permitOf = (owner) =>
  /** @type {const} */ ({
    types: {
      Permit: [
        { name: 'owner', type: 'address' },
        { name: 'spender', type: 'address' },
        { name: 'value', type: 'uint256' },
        { name: 'nonce', type: 'uint256' },
        { name: 'deadline', type: 'uint256' },
        { name: 'delta', type: 'int256' },
      ],
    },
    primaryType: 'Permit',
    domain: { name: 'USD Coin', version: '2', chainId: 8453n, verifyingContract: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913' },
    message: { owner, spender: bob, value: 2n ** 255n + 12345n, nonce: 0n, deadline: 1893456000n, delta: -(2n ** 200n) - 7n },
  });

/** JSON with bigints as `123n` strings: how bigints cross to the page (its `revive` reads them). */
const withBigints = (/** @type {unknown} */ value) => JSON.stringify(value, (_key, inner) => (typeof inner === 'bigint' ? `${inner}n` : inner));

/** Typed data with every kind of field: bytes, fixed bytes, bool, small ints, arrays of
 * structs, arrays of arrays, and a type referenced only from inside an array. */
const kitchenSink = /** @type {const} */ ({
  types: {
    Order: [
      { name: 'maker', type: 'Party' },
      { name: 'takers', type: 'Party[]' },
      { name: 'payload', type: 'bytes' },
      { name: 'salt', type: 'bytes32' },
      { name: 'tag', type: 'bytes4' },
      { name: 'partial', type: 'bool' },
      { name: 'decimals', type: 'uint8' },
      { name: 'offset', type: 'int8' },
      { name: 'matrix', type: 'uint256[][]' },
      { name: 'notes', type: 'string[2]' },
      { name: 'empty', type: 'string' },
    ],
    Party: [
      { name: 'wallet', type: 'address' },
      { name: 'limits', type: 'Limit[]' },
    ],
    Limit: [{ name: 'amount', type: 'uint128' }],
  },
  primaryType: 'Order',
  domain: { name: 'Exchange', chainId: 10, salt: `0x${'5a'.repeat(32)}` },
  message: {
    maker: { wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826', limits: [{ amount: 1 }, { amount: 2 }] },
    takers: [
      { wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB', limits: [] },
      { wallet: '0x0000000000000000000000000000000000000001', limits: [{ amount: 3 }] },
    ],
    payload: '0x00ff10',
    salt: `0x${'ab'.repeat(32)}`,
    tag: '0xdeadbeef',
    partial: true,
    decimals: 18,
    offset: -5,
    matrix: [[1, 2], [], [3]],
    notes: ['first', 'Ünïcødé ✓'],
    empty: '',
  },
});

const harness = harnessFixture();
const node = startNodeFixture();

before(async () => {
  // viem for the page, as browser modules next to pkg/: the page's import map names them.
  const entries = { viem: 'viem', accounts: 'viem/accounts', 'op-stack': 'viem/op-stack' };
  await build({
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    build: {
      outDir: join(harness.staticDir, 'viem'),
      emptyOutDir: true,
      minify: false,
      target: 'es2022',
      lib: {
        entry: Object.fromEntries(Object.entries(entries).map(([name, specifier]) => [name, new URL(import.meta.resolve(specifier)).pathname])),
        formats: ['es'],
      },
      rollupOptions: { output: { entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js' } },
    },
  });
});

/**
 * The stand-in JSON-RPC node on 127.0.0.1 (another origin than the page: it answers CORS
 * preflights). What it answers is in `state`; `calls` and `sent` record what it was asked.
 */
function startNodeFixture() {
  const fixture = {
    url: '',
    state: nodeState(),
    /** @type {{ method: string, params: any[] }[]} */
    calls: [],
    /** The raw transactions of eth_sendRawTransaction. */
    /** @type {`0x${string}`[]} */
    sent: [],
    reset() {
      fixture.state = nodeState();
      fixture.calls = [];
      fixture.sent = [];
    },
    /** @type {() => Promise<void>} */
    close: async () => {},
  };
  const server = createServer(async (request, response) => {
    const cors = { 'access-control-allow-origin': '*' };
    if (request.method === 'OPTIONS') {
      response.writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': 'content-type',
        'access-control-max-age': '600',
      });
      response.end();
      return;
    }
    let body = '';
    for await (const chunk of request) body += chunk;
    const { id, method, params } = JSON.parse(body);
    fixture.calls.push({ method, params });
    const reply = answer(fixture, method, params);
    response.writeHead(200, { ...cors, 'content-type': 'application/json' });
    response.end(JSON.stringify({ jsonrpc: '2.0', id, ...reply }));
  });
  before(async () => {
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    fixture.url = `http://127.0.0.1:${address.port}`;
    fixture.close = () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      });
  });
  after(() => fixture.close());
  return fixture;
}

function nodeState() {
  return {
    chainId: CHAIN_ID,
    nonce: 7n,
    /** null: a chain without EIP-1559. */
    /** @type {bigint | null} */
    baseFee: 10n ** 9n,
    tip: 2n * 10n ** 9n,
    gasPrice: 3n * 10n ** 9n,
    gas: 53_000n,
    /** Answer eth_sendRawTransaction with another hash than the transaction's. */
    wrongHash: false,
  };
}

/**
 * The stand-in node's answer to one call: `{ result }` or `{ error }`.
 * @param {ReturnType<typeof startNodeFixture>} fixture @param {string} method @param {any[]} params
 */
function answer(fixture, method, params) {
  const { state } = fixture;
  switch (method) {
    case 'eth_chainId':
      return { result: toHex(state.chainId) };
    case 'eth_blockNumber':
      return { result: '0x10' };
    case 'eth_getTransactionCount':
      return { result: toHex(state.nonce) };
    case 'eth_estimateGas':
      return { result: toHex(state.gas) };
    case 'eth_maxPriorityFeePerGas':
      return { result: toHex(state.tip) };
    case 'eth_gasPrice':
      return { result: toHex(state.gasPrice) };
    case 'eth_getBlockByNumber':
      return {
        result: {
          number: '0x10',
          hash: `0x${'11'.repeat(32)}`,
          timestamp: '0x6553f100',
          gasLimit: '0x1c9c380',
          transactions: [],
          ...(state.baseFee === null ? {} : { baseFeePerGas: toHex(state.baseFee) }),
        },
      };
    case 'eth_sendRawTransaction': {
      const raw = params[0];
      fixture.sent.push(raw);
      return { result: state.wrongHash ? `0x${'22'.repeat(32)}` : keccak256(raw) };
    }
    default:
      return { error: { code: -32601, message: `the method ${method} does not exist`, data: { method } } };
  }
}

/** @type {import('playwright-core').Page} */
let page;
/** @type {string[]} */
let pageErrors;
/** @type {`0x${string}`} */
let address;
/** How many CreateSignature requests the page has sent: what "signs nothing" is checked by. */
let signatureRequests = 0;

/** Runs `body` and checks that the page sent no CreateSignature request meanwhile. */
async function signsNothing(/** @type {() => Promise<any>} */ body) {
  const before = signatureRequests;
  const result = await body();
  assert.equal(signatureRequests, before, 'no signature was requested from the server');
  return result;
}

/**
 * A signed transaction as viem parses it, checked field by field, and against its hash and sender
 * (viem and ethers); with the SDK's Signature, its digest too.
 * @param {{ rawTransaction: `0x${string}`, hash: `0x${string}`, signature?: { payload: string } }} signed
 * @param {Record<string, unknown>} expected viem's parsed fields that must match
 */
async function checkTransaction(signed, expected) {
  const parsed = parseTransaction(signed.rawTransaction);
  for (const [field, value] of Object.entries(expected)) {
    assert.deepEqual(/** @type {any} */ (parsed)[field], value, `field ${field}`);
  }
  if (signed.signature) {
    const { r: _r, s: _s, v: _v, yParity: _yParity, ...unsigned } = parsed;
    assert.equal(signed.signature.payload, keccak256(serializeTransaction(unsigned)), 'the digest signed is the signing hash');
  }
  assert.equal(await recoverTransactionAddress({ serializedTransaction: /** @type {any} */ (signed.rawTransaction) }), address);
  assert.equal(keccak256(signed.rawTransaction), signed.hash, 'the hash is Keccak-256 of the raw transaction');
  const ethersTransaction = Transaction.from(signed.rawTransaction);
  assert.equal(ethersTransaction.from, address, 'ethers recovers the sender');
  assert.equal(ethersTransaction.hash, signed.hash, 'ethers computes the same hash');
  return { parsed, ethersTransaction };
}

/** Set once the first test made the wallet every other test signs with. */
let walletReady = false;

/**
 * A test that signs with the first test's wallet: skipped if there is none. The tests are
 * otherwise independent: each counts its own signature requests and resets the node it uses.
 * @param {string} name @param {() => Promise<void>} body
 */
function step(name, body) {
  test(name, async (t) => {
    if (!walletReady) return t.skip('no wallet: the first test failed');
    await body();
  });
}

test('the package has the waas-sdk/viem entry, with viem an optional peer dependency', () => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'pkg/package.json'), 'utf8'));
  assert.deepEqual(manifest.exports['./viem'], { types: './viem.d.ts', default: './viem.js' });
  assert.deepEqual(manifest.peerDependenciesMeta, { viem: { optional: true } });
  assert.match(manifest.peerDependencies.viem, /^\^2\.\d+\.\d+$/);
  assert.equal(manifest.dependencies, undefined, 'no dependency is installed with the package');
  for (const file of ['viem.js', 'viem.d.ts', 'eip1193.js']) assert.ok(manifest.files.includes(file), file);
  // Only the viem entry imports viem: the main entries work without it.
  for (const file of ['index.js', 'node.js', 'loader.js', 'eip1193.js']) {
    assert.doesNotMatch(readFileSync(join(repoRoot, 'pkg', file), 'utf8'), /from ['"]viem/, file);
  }
});

test('the types of the provider and the viem account check under strict TypeScript', () => {
  try {
    execFileSync(join(repoRoot, 'node_modules/.bin/tsc'), ['-p', join(repoRoot, 'tests/ethereum-types')], { encoding: 'utf8' });
  } catch (error) {
    throw new Error(`tsc -p tests/ethereum-types: ${/** @type {{ stdout?: string }} */ (error).stdout || error}`);
  }
});

test('a wallet to sign with, on a page with the package and viem', async () => {
  const context = await harness.browser.newContext();
  page = await context.newPage();
  pageErrors = collectPageErrors(page);
  page.on('request', (request) => {
    if (request.method() === 'POST' && /\/mpcKeys\/[^/]+\/signatures$/.test(new URL(request.url()).pathname)) {
      signatureRequests += 1;
    }
  });
  await page.goto(`${harness.server.url}/ethereum.html`);
  await page.waitForFunction(() => document.title === 'ready').catch((/** @type {Error} */ error) => {
    throw new Error(`the page did not load: ${error.message}; page errors: ${pageErrors.join('; ') || 'none'}`);
  });
  const created = await page.evaluate(async ({ passcode, CHAIN_ID }) => {
    const w = /** @type {any} */ (window);
    w.revive = (/** @type {string} */ text) =>
      JSON.parse(text, (_key, value) => (typeof value === 'string' && /^-?\d+n$/.test(value) ? BigInt(value.slice(0, -1)) : value));
    /** The test chain for viem, its RPC at `rpcUrl`. */
    w.testChain = (/** @type {string} */ rpcUrl) =>
      w.viem.defineChain({
        id: CHAIN_ID,
        name: 'waas test chain',
        nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        rpcUrls: { default: { http: [rpcUrl] } },
      });
    if (!(await w.sdk.bootstrapDevice(passcode))) throw new Error('the profile had a device');
    const client = await w.sdk.WaasClient.connect('');
    await client.registerDevice();
    const { address } = await client.createWallet({ passcode });
    // What every later step uses: the client, the key, its address, and a way to keep a
    // rejection's fields (an Error does not cross to Node whole).
    w.wallet = { client, mpcKey: address.mpcKeys[0], address: address.address };
    w.outcome = (/** @type {Promise<unknown>} */ promise) =>
      promise.then(
        (value) => ({ value }),
        (/** @type {any} */ error) => ({
          error: {
            name: error?.name,
            code: error?.code,
            message: String(error?.message),
            data: error?.data,
            isWaasError: error instanceof w.sdk.WaasError,
          },
        }),
      );
    return w.wallet;
  }, { passcode, CHAIN_ID });
  assert.match(created.address, /^0x[0-9a-fA-F]{40}$/);
  address = created.address;
  walletReady = true;
});

step('signMessage: text, bytes and { raw } recover to the wallet address in viem and ethers', async () => {
  const before = signatureRequests;
  const signatures = await page.evaluate(async ({ passcode }) => {
    const { wallet } = /** @type {any} */ (window);
    const sign = (/** @type {unknown} */ message) => wallet.client.signMessage(wallet.mpcKey, message, { passcode });
    return {
      text: await sign('hello ethereum'),
      bytes: await sign(new Uint8Array([0, 1, 2, 255])),
      rawHex: await sign({ raw: '0xdeadbeef' }),
      rawBytes: await sign({ raw: new Uint8Array([1, 2, 3]) }),
    };
  }, { passcode });
  assert.equal(signatureRequests - before, 4, 'one signature request each');
  /** @type {[keyof typeof signatures, string | { raw: `0x${string}` }, string | Uint8Array, string][]} */
  const cases = [
    ['text', 'hello ethereum', 'hello ethereum', toHex('hello ethereum')],
    ['bytes', { raw: '0x000102ff' }, new Uint8Array([0, 1, 2, 255]), '0x000102ff'],
    ['rawHex', { raw: '0xdeadbeef' }, new Uint8Array([0xde, 0xad, 0xbe, 0xef]), '0xdeadbeef'],
    ['rawBytes', { raw: '0x010203' }, new Uint8Array([1, 2, 3]), '0x010203'],
  ];
  for (const [name, viemMessage, ethersMessage, hex] of cases) {
    const signature = signatures[name];
    const signed = signature.signedPayload.signature;
    assert.equal(signature.payload, hashMessage(viemMessage), `${name}: the digest is EIP-191's`);
    assert.deepEqual(signature.typedPayload, { type: 'eip191', message: hex }, name);
    assert.ok(await verifyMessage({ address, message: viemMessage, signature: signed }), `${name}: viem verifies`);
    assert.equal(ethersVerifyMessage(ethersMessage, signed), address, `${name}: ethers recovers the address`);
    assert.ok([27, 28].includes(signature.signedPayload.v));
    assert.equal(signed, `${signature.signedPayload.r}${signature.signedPayload.s.slice(2)}${signature.signedPayload.v.toString(16)}`);
  }
});

step('signTypedData: the EIP-712 Mail example has its digest and verifies in viem and ethers', async () => {
  assert.equal(hashTypedData(mailForViem), MAIL_DIGEST, "viem's digest of the example is the EIP's");
  const signatures = await page.evaluate(async ({ passcode, mail, mailTypes }) => {
    const { wallet } = /** @type {any} */ (window);
    const sign = (/** @type {unknown} */ data) => wallet.client.signTypedData(wallet.mpcKey, data, { passcode });
    return {
      object: await sign(mail),
      json: await sign(JSON.stringify(mail)),
      // EIP712Domain left out: taken from the domain's fields.
      noDomainType: await sign({ ...mail, types: mailTypes }),
    };
  }, { passcode, mail, mailTypes });
  for (const [name, signature] of Object.entries(signatures)) {
    const signed = signature.signedPayload.signature;
    assert.equal(signature.payload, MAIL_DIGEST, `${name}: the digest`);
    assert.equal(signature.typedPayload.type, 'eip712', name);
    assert.ok(await verifyTypedData({ ...mailForViem, address, signature: signed }), `${name}: viem verifies`);
    assert.equal(ethersVerifyTypedData(mail.domain, mutable(mailTypes), mail.message, signed), address, `${name}: ethers recovers`);
  }
});

step('signTypedData with bigint values (above 2^64, a negative int256, a bigint chain id)', async () => {
  const permit = permitOf(address);
  const signature = await page.evaluate(async ({ passcode, permit }) => {
    const { wallet, revive } = /** @type {any} */ (window);
    return wallet.client.signTypedData(wallet.mpcKey, revive(permit), { passcode });
  }, { passcode, permit: withBigints(permit) });
  const signed = signature.signedPayload.signature;
  assert.equal(signature.payload, hashTypedData(permit), "the digest is viem's");
  assert.ok(await verifyTypedData({ ...permit, address, signature: signed }), 'viem verifies');
  assert.equal(ethersVerifyTypedData(permit.domain, mutable(permit.types), permit.message, signed), address, 'ethers recovers');
});

step('signTypedData with every kind of field (bytes, arrays of structs, arrays of arrays, ...)', async () => {
  const signature = await page.evaluate(
    async ({ passcode, kitchenSink }) => {
      const { wallet } = /** @type {any} */ (window);
      return wallet.client.signTypedData(wallet.mpcKey, kitchenSink, { passcode });
    },
    { passcode, kitchenSink },
  );
  const signed = signature.signedPayload.signature;
  assert.equal(signature.payload, hashTypedData(/** @type {any} */ (kitchenSink)), "the digest is viem's");
  assert.ok(await verifyTypedData({ .../** @type {any} */ (kitchenSink), address, signature: signed }), 'viem verifies');
  assert.equal(ethersVerifyTypedData(kitchenSink.domain, mutable(kitchenSink.types), kitchenSink.message, signed), address, 'ethers recovers');
});

step('signTransaction: EIP-1559, legacy (EIP-155), a contract creation and an access list', async () => {
  const initCode = '0x6080604052348015600f57600080fd5b50603f80601d6000396000f3fe';
  const accessList = [
    { address: cow, storageKeys: [`0x${'00'.repeat(31)}01`, `0x${'ab'.repeat(32)}`] },
    { address: bob, storageKeys: [] },
  ];
  const signed = await page.evaluate(async ({ passcode, bob, initCode, accessList }) => {
    const { wallet } = /** @type {any} */ (window);
    const sign = (/** @type {unknown} */ tx) => wallet.client.signTransaction(wallet.mpcKey, tx, { passcode });
    return {
      // Every form of quantity: bigint, safe integer, 0x hex, decimal string.
      eip1559: await sign({
        chainId: 1,
        nonce: 5n,
        gas: '0x5208',
        maxFeePerGas: '30000000000',
        maxPriorityFeePerGas: 1_500_000_000,
        to: bob,
        value: 10n ** 18n + 1n,
        data: '0xa9059cbb',
      }),
      legacy: await sign({ chainId: '0x89', nonce: 0, gasLimit: 21000, gasPrice: 40_000_000_000n, to: bob, value: '0x1', from: wallet.address }),
      creation: await sign({ type: 'eip1559', chainId: 1, nonce: 6, gas: 200000, maxFeePerGas: 2n * 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n, input: initCode }),
      legacyCreation: await sign({ type: 'legacy', chainId: 1, nonce: 8, gas: 200000, gasPrice: 1, to: null, value: 0, data: initCode }),
      accessList: await sign({ type: '0x2', chainId: 10, nonce: 7, gas: 60000, maxFeePerGas: 100, maxPriorityFeePerGas: 100, to: bob, accessList }),
    };
  }, { passcode, bob, initCode, accessList });

  await checkTransaction(signed.eip1559, {
    type: 'eip1559',
    chainId: 1,
    nonce: 5,
    gas: 21000n,
    maxFeePerGas: 30_000_000_000n,
    maxPriorityFeePerGas: 1_500_000_000n,
    to: bob.toLowerCase(),
    value: 10n ** 18n + 1n,
    data: '0xa9059cbb',
  });
  // What was signed, as the server keeps it: the fields in JSON-RPC's form.
  assert.deepEqual(signed.eip1559.signature.typedPayload, {
    type: 'transaction',
    transaction: {
      type: 'eip1559',
      chainId: '0x1',
      nonce: '0x5',
      maxPriorityFeePerGas: '0x59682f00',
      maxFeePerGas: '0x6fc23ac00',
      gas: '0x5208',
      to: bob,
      value: '0xde0b6b3a7640001',
      data: '0xa9059cbb',
      accessList: [],
    },
  });

  const legacy = await checkTransaction(signed.legacy, {
    type: 'legacy',
    chainId: 137,
    nonce: 0,
    gas: 21000n,
    gasPrice: 40_000_000_000n,
    to: bob.toLowerCase(),
    value: 1n,
  });
  const yParity = signed.legacy.signature.signedPayload.v - 27;
  assert.equal(legacy.parsed.v, BigInt(137 * 2 + 35 + yParity), 'v carries the chain id (EIP-155)');
  assert.equal(legacy.ethersTransaction.chainId, 137n);
  assert.equal(legacy.ethersTransaction.type, 0);

  const creation = await checkTransaction(signed.creation, { type: 'eip1559', chainId: 1, nonce: 6, gas: 200000n, data: initCode });
  assert.equal(creation.parsed.to, undefined, 'no recipient: a contract creation');
  assert.equal(creation.ethersTransaction.to, null);
  const legacyCreation = await checkTransaction(signed.legacyCreation, { type: 'legacy', chainId: 1, nonce: 8, gasPrice: 1n, data: initCode });
  assert.equal(legacyCreation.parsed.to, undefined, 'to: null creates a contract too');

  const withList = await checkTransaction(signed.accessList, { type: 'eip1559', chainId: 10, nonce: 7, to: bob.toLowerCase() });
  assert.deepEqual(
    withList.parsed.accessList?.map((item) => ({ address: item.address.toLowerCase(), storageKeys: item.storageKeys })),
    accessList.map((item) => ({ address: item.address.toLowerCase(), storageKeys: item.storageKeys })),
  );
});

step('toViemAccount in a viem wallet client: signMessage, signTypedData and signTransaction verify', async () => {
  const before = signatureRequests;
  const result = await page.evaluate(async ({ passcode, mail, permit, bob, CHAIN_ID }) => {
    const { wallet, viem, waasViem, sdk, revive, testChain } = /** @type {any} */ (window);
    /** @type {unknown[]} */
    const asked = [];
    const account = waasViem.toViemAccount(wallet.client, {
      mpcKey: wallet.mpcKey,
      address: wallet.address.toLowerCase(),
      unlock: async (/** @type {unknown} */ request) => {
        // As JSON, bigints as `123n`: what crosses back to Node.
        asked.push(JSON.parse(JSON.stringify(request, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value))));
        return { passcode };
      },
    });
    const chain = testChain('http://127.0.0.1:1');
    // The transport only answers eth_chainId here (signTransaction asks it): the provider does.
    const transport = viem.custom(
      sdk.createEip1193Provider({ client: wallet.client, mpcKey: wallet.mpcKey, address: wallet.address, chainId: CHAIN_ID, unlock: { passcode } }),
    );
    const walletClient = viem.createWalletClient({ account, chain, transport });
    return {
      accountAddress: account.address,
      type: account.type,
      message: await walletClient.signMessage({ message: 'hello viem' }),
      rawMessage: await walletClient.signMessage({ message: { raw: '0x00ff' } }),
      mail: await walletClient.signTypedData(mail),
      permit: await walletClient.signTypedData(revive(permit)),
      eip1559: await walletClient.signTransaction({
        to: bob,
        value: 123n,
        nonce: 3,
        gas: 21000n,
        maxFeePerGas: 20n * 10n ** 9n,
        maxPriorityFeePerGas: 10n ** 9n,
      }),
      legacy: await walletClient.signTransaction({ to: bob, nonce: 4, gas: 21000n, gasPrice: 10n ** 10n, data: '0x1234' }),
      asked,
    };
  }, { passcode, mail, permit: withBigints(permitOf(address)), bob, CHAIN_ID });
  assert.equal(signatureRequests - before, 6, 'one signature request each');
  assert.equal(result.accountAddress, address, 'the account has the checksummed address');
  assert.equal(result.type, 'local');
  assert.ok(await verifyMessage({ address, message: 'hello viem', signature: result.message }));
  assert.equal(ethersVerifyMessage('hello viem', result.message), address);
  assert.ok(await verifyMessage({ address, message: { raw: '0x00ff' }, signature: result.rawMessage }));
  assert.ok(await verifyTypedData({ ...mailForViem, address, signature: result.mail }));
  assert.equal(ethersVerifyTypedData(mail.domain, mutable(mailTypes), mail.message, result.mail), address);
  assert.ok(await verifyTypedData({ ...permitOf(address), address, signature: result.permit }));
  const eip1559 = { rawTransaction: result.eip1559, hash: keccak256(result.eip1559) };
  await checkTransaction(eip1559, {
    type: 'eip1559',
    chainId: CHAIN_ID,
    nonce: 3,
    gas: 21000n,
    maxFeePerGas: 20n * 10n ** 9n,
    maxPriorityFeePerGas: 10n ** 9n,
    to: bob.toLowerCase(),
    value: 123n,
  });
  const legacy = await checkTransaction(
    { rawTransaction: result.legacy, hash: keccak256(result.legacy) },
    { type: 'legacy', chainId: CHAIN_ID, nonce: 4, gasPrice: 10n ** 10n, data: '0x1234' },
  );
  assert.equal(legacy.ethersTransaction.chainId, BigInt(CHAIN_ID));
  // The unlock callback was asked once per signature, told what is signed.
  assert.deepEqual(
    result.asked.map((/** @type {any} */ request) => request.kind),
    ['message', 'message', 'typedData', 'typedData', 'transaction', 'transaction'],
  );
  assert.deepEqual(/** @type {any} */ (result.asked[0]), { kind: 'message', message: 'hello viem' });
  const askedTransaction = /** @type {any} */ (result.asked[4]).transaction;
  assert.deepEqual(
    { to: askedTransaction.to, value: askedTransaction.value, chainId: askedTransaction.chainId, nonce: askedTransaction.nonce },
    { to: bob, value: '123n', chainId: CHAIN_ID, nonce: 3 },
  );
  assert.equal(askedTransaction.account, undefined, 'only the signed fields are passed on');
});

step('toViemAccount: viem sendTransaction through an http transport fills, signs and sends', async () => {
  node.reset();
  const before = signatureRequests;
  const hash = await page.evaluate(async ({ passcode, bob, rpcUrl }) => {
    const { wallet, viem, waasViem, testChain } = /** @type {any} */ (window);
    const account = waasViem.toViemAccount(wallet.client, { mpcKey: wallet.mpcKey, address: wallet.address, unlock: { passcode } });
    const walletClient = viem.createWalletClient({ account, chain: testChain(rpcUrl), transport: viem.http(rpcUrl) });
    return walletClient.sendTransaction({ to: bob, value: 10n ** 15n, data: '0xabcdef' });
  }, { passcode, bob, rpcUrl: node.url });
  assert.equal(signatureRequests - before, 1);
  assert.equal(node.sent.length, 1, 'one raw transaction sent');
  const raw = node.sent[0];
  assert.equal(hash, keccak256(raw), "viem resolves the node's hash of it");
  await checkTransaction(
    { rawTransaction: raw, hash },
    {
      type: 'eip1559',
      chainId: CHAIN_ID,
      nonce: Number(node.state.nonce),
      gas: node.state.gas,
      maxPriorityFeePerGas: node.state.tip,
      to: bob.toLowerCase(),
      value: 10n ** 15n,
      data: '0xabcdef',
    },
  );
});

step('toViemAccount: a chain serializer of the same encoding signs; other kinds and encodings are refused', async () => {
  const before = signatureRequests;
  const outcomes = await page.evaluate(async ({ passcode, bob }) => {
    const { wallet, viem, waasViem, opStack, outcome } = /** @type {any} */ (window);
    const account = waasViem.toViemAccount(wallet.client, { mpcKey: wallet.mpcKey, address: wallet.address, unlock: { passcode } });
    const base = { chainId: 10, nonce: 1, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 10n ** 8n, to: bob, value: 1n };
    // What viem passes: the OP stack chains' own serializer.
    const opSerializer = opStack.chainConfig.serializers.transaction;
    const op = await account.signTransaction({ ...base, type: 'eip1559' }, { serializer: opSerializer });
    const opLegacy = await account.signTransaction({ chainId: 10, nonce: 2, gas: 21000n, gasPrice: 10n ** 9n, to: bob, type: 'legacy' }, { serializer: opSerializer });
    const refused = {
      otherEncoding: await outcome(
        account.signTransaction(base, { serializer: (/** @type {any} */ tx, /** @type {any} */ sig) => viem.concat([viem.serializeTransaction(tx, sig), '0x00']) }),
      ),
      eip2930: await outcome(account.signTransaction({ type: 'eip2930', chainId: 10, nonce: 1, gas: 21000n, gasPrice: 1n, accessList: [] })),
      eip4844: await outcome(account.signTransaction({ ...base, type: 'eip4844', blobs: ['0x00'], maxFeePerBlobGas: 1n })),
      blobsWithoutType: await outcome(account.signTransaction({ ...base, blobVersionedHashes: [`0x01${'00'.repeat(31)}`] })),
      eip7702: await outcome(account.signTransaction({ ...base, authorizationList: [] })),
      chainField: await outcome(account.signTransaction({ ...base, feeCurrency: bob })),
      otherFrom: await outcome(account.signTransaction({ ...base, from: bob })),
      hexType: await outcome(account.signTransaction({ ...base, type: '0x2' })),
    };
    return { op, opLegacy, refused };
  }, { passcode, bob });
  await checkTransaction({ rawTransaction: outcomes.op, hash: keccak256(outcomes.op) }, { type: 'eip1559', chainId: 10, nonce: 1 });
  await checkTransaction({ rawTransaction: outcomes.opLegacy, hash: keccak256(outcomes.opLegacy) }, { type: 'legacy', chainId: 10, nonce: 2 });
  // The two transactions above, and nothing else: every refusal comes before the signing.
  assert.equal(signatureRequests - before, 2);
  const expected = {
    otherEncoding: /serializer encodes the transaction otherwise/,
    eip2930: /not eip2930/,
    eip4844: /not eip4844/,
    blobsWithoutType: /not eip4844 \(the transaction has blobVersionedHashes\)/,
    eip7702: /not eip7702 \(the transaction has authorizationList\)/,
    chainField: /field feeCurrency is not one waas-sdk signs/,
    otherFrom: /from 0x.* is not this account/,
    hexType: /not 0x2/,
  };
  for (const [name, pattern] of Object.entries(expected)) {
    const { error } = /** @type {any} */ (outcomes.refused)[name];
    assert.ok(error, `${name} is refused`);
    assert.equal(error.code, 'INVALID_ARGUMENT', `${name}: ${error.message}`);
    assert.ok(error.isWaasError, name);
    assert.match(error.message, pattern, name);
  }
});

step('toViemAccount: another address is refused after the signature; a refused unlock or bad typed data signs nothing', async () => {
  const before = signatureRequests;
  const outcomes = await page.evaluate(async ({ passcode, bob, misspelledBob, mail }) => {
    const { wallet, waasViem, outcome } = /** @type {any} */ (window);
    const account = (/** @type {unknown} */ address, /** @type {unknown} */ unlock) =>
      waasViem.toViemAccount(wallet.client, { mpcKey: wallet.mpcKey, address, unlock });
    return {
      otherAddress: await outcome(account(bob, { passcode }).signMessage({ message: 'not mine' })),
      declined: await outcome(account(wallet.address, () => null).signMessage({ message: 'declined' })),
      cancelled: await outcome(
        account(wallet.address, async () => {
          throw new Error('the user closed the prompt');
        }).signTypedData({ types: { M: [{ name: 'a', type: 'uint8' }] }, primaryType: 'M', domain: {}, message: { a: 1 } }),
      ),
      // viem hashes first: typed data it refuses (a wrong checksum) is not signed.
      viemRefuses: await outcome(
        account(wallet.address, { passcode }).signTypedData({ ...mail, message: { ...mail.message, to: { name: 'Bob', wallet: misspelledBob } } }),
      ),
      badChecksum: await outcome(Promise.resolve().then(() => account(misspelledBob, { passcode }))),
      noUnlock: await outcome(Promise.resolve().then(() => account(wallet.address, undefined))),
    };
  }, { passcode, bob, misspelledBob: misspelled(bob), mail });
  // Only the other address's message was signed: the account refuses to return it.
  assert.equal(signatureRequests - before, 1);
  assert.equal(outcomes.otherAddress.error.code, 'INVALID_ARGUMENT');
  assert.match(outcomes.otherAddress.error.message, new RegExp(`signs for ${address}, not for ${bob}`));
  for (const name of /** @type {const} */ (['declined', 'cancelled'])) {
    assert.equal(outcomes[name].error.name, 'UserRejectedRequestError', name);
    assert.equal(outcomes[name].error.code, 4001, name);
  }
  assert.equal(outcomes.viemRefuses.error.name, 'InvalidAddressError');
  assert.equal(outcomes.badChecksum.error.code, 'INVALID_ARGUMENT');
  assert.equal(outcomes.noUnlock.error.code, 'INVALID_ARGUMENT');
});

step('EIP-1193 provider: accounts, chain id, personal_sign, eth_signTypedData_v4 and eth_signTransaction', async () => {
  const before = signatureRequests;
  const result = await page.evaluate(async ({ passcode, mail, bob, CHAIN_ID }) => {
    const { wallet, sdk } = /** @type {any} */ (window);
    const provider = sdk.createEip1193Provider({
      client: wallet.client,
      mpcKey: wallet.mpcKey,
      address: wallet.address,
      chainId: `0x${CHAIN_ID.toString(16)}`,
      unlock: () => ({ passcode }),
    });
    /** @type {unknown[]} */
    const connects = [];
    provider.on('connect', (/** @type {unknown} */ info) => connects.push(info));
    const request = (/** @type {string} */ method, /** @type {unknown[]} */ params = []) => provider.request({ method, params });
    return {
      accounts: await request('eth_accounts'),
      requestAccounts: await request('eth_requestAccounts'),
      chainId: await request('eth_chainId'),
      connects,
      personalText: await request('personal_sign', ['hello provider', wallet.address.toLowerCase()]),
      personalHex: await request('personal_sign', ['0x68656c6c6f', wallet.address]),
      typedJson: await request('eth_signTypedData_v4', [wallet.address, JSON.stringify(mail)]),
      typedObject: await request('eth_signTypedData_v4', [wallet.address, mail]),
      // No rpcUrl: signed as given, with the provider's chain id.
      transaction: await request('eth_signTransaction', [
        { from: wallet.address, to: bob, value: '0x10', nonce: '0x9', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1' },
      ]),
    };
  }, { passcode, mail, bob, CHAIN_ID });
  assert.equal(signatureRequests - before, 5);
  assert.deepEqual(result.accounts, [address]);
  assert.deepEqual(result.requestAccounts, [address]);
  assert.equal(result.chainId, '0x7a69');
  assert.deepEqual(result.connects, [{ chainId: '0x7a69' }], 'connect is emitted once');
  assert.equal(ethersVerifyMessage('hello provider', result.personalText), address);
  assert.ok(await verifyMessage({ address, message: { raw: '0x68656c6c6f' }, signature: result.personalHex }), 'hex is read as bytes');
  assert.equal(ethersVerifyMessage('hello', result.personalHex), address);
  for (const signature of [result.typedJson, result.typedObject]) {
    assert.ok(await verifyTypedData({ ...mailForViem, address, signature }));
    assert.equal(ethersVerifyTypedData(mail.domain, mutable(mailTypes), mail.message, signature), address);
  }
  await checkTransaction(
    { rawTransaction: result.transaction, hash: keccak256(result.transaction) },
    { type: 'eip1559', chainId: CHAIN_ID, nonce: 9, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n, to: bob.toLowerCase(), value: 16n },
  );
});

step('EIP-1193 provider: eth_sendTransaction fills from the rpcUrl, signs, sends and returns the hash', async () => {
  node.reset();
  const before = signatureRequests;
  /**
   * @param {unknown[]} transactions eth_sendTransaction's parameter, one call each
   * @returns {Promise<any[]>}
   */
  const send = (transactions) =>
    page.evaluate(
      async ({ passcode, CHAIN_ID, rpcUrl, transactions }) => {
        const { wallet, sdk, outcome } = /** @type {any} */ (window);
        const provider = sdk.createEip1193Provider({ client: wallet.client, mpcKey: wallet.mpcKey, address: wallet.address, chainId: CHAIN_ID, unlock: { passcode }, rpcUrl });
        const results = [];
        for (const transaction of transactions) results.push(await outcome(provider.request({ method: 'eth_sendTransaction', params: [transaction] })));
        return results;
      },
      { passcode, CHAIN_ID, rpcUrl: node.url, transactions },
    );

  // EIP-1559: nonce, gas, tip and fee cap from the node.
  const [eip1559] = await send([{ from: address, to: bob, value: '0xde0b6b3a7640000', data: '0x01' }]);
  assert.equal(node.sent.length, 1);
  assert.equal(eip1559.value, keccak256(node.sent[0]), "the provider returns the sent transaction's hash");
  const baseFee = /** @type {bigint} */ (node.state.baseFee);
  await checkTransaction(
    { rawTransaction: node.sent[0], hash: eip1559.value },
    {
      type: 'eip1559',
      chainId: CHAIN_ID,
      nonce: 7,
      gas: node.state.gas,
      maxPriorityFeePerGas: node.state.tip,
      maxFeePerGas: 2n * baseFee + node.state.tip,
      to: bob.toLowerCase(),
      value: 10n ** 18n,
      data: '0x01',
    },
  );
  const asked = (/** @type {string} */ method) => node.calls.filter((call) => call.method === method);
  assert.deepEqual(asked('eth_getTransactionCount')[0].params, [address, 'pending']);
  assert.deepEqual(asked('eth_estimateGas')[0].params, [{ from: address, to: bob, value: '0xde0b6b3a7640000', data: '0x01' }]);
  assert.deepEqual(asked('eth_getBlockByNumber')[0].params, ['latest', false]);
  assert.equal(asked('eth_chainId').length, 1, "the node's chain is checked");

  // A chain without a base fee: a legacy transaction at eth_gasPrice. A given nonce and gas stay.
  node.reset();
  node.state.baseFee = null;
  const [legacy] = await send([{ to: bob, nonce: '0x20', gas: '0x7530' }]);
  await checkTransaction(
    { rawTransaction: node.sent[0], hash: legacy.value },
    { type: 'legacy', chainId: CHAIN_ID, nonce: 32, gas: 30000n, gasPrice: node.state.gasPrice, to: bob.toLowerCase() },
  );
  assert.equal(asked('eth_getTransactionCount').length + asked('eth_estimateGas').length, 0, 'nothing given is fetched');

  // A node that answers another hash than the transaction's: an error, not its hash.
  node.reset();
  node.state.wrongHash = true;
  const [wrongHash] = await send([{ to: bob, maxFeePerGas: '0x59682f00' }]);
  assert.equal(wrongHash.error.code, -32603);
  assert.match(wrongHash.error.message, /the rpcUrl answered transaction hash/);
  assert.equal(signatureRequests - before, 3);
  // The tip the node suggested (2 gwei) is lowered to the caller's fee cap (1.5 gwei).
  assert.equal(parseTransaction(node.sent[0]).maxFeePerGas, 1_500_000_000n);
  assert.equal(parseTransaction(node.sent[0]).maxPriorityFeePerGas, 1_500_000_000n);
});

step('EIP-1193 provider errors: 4100 another account, 4200 unsupported, 4001 refused, -32602, 4901, forwarding', async () => {
  node.reset();
  const before = signatureRequests;
  const outcomes = await page.evaluate(async ({ passcode, bob, CHAIN_ID, rpcUrl }) => {
    const { wallet, sdk, outcome } = /** @type {any} */ (window);
    const make = (/** @type {object} */ options) =>
      sdk.createEip1193Provider({ client: wallet.client, mpcKey: wallet.mpcKey, address: wallet.address, chainId: CHAIN_ID, unlock: { passcode }, ...options });
    const offline = make({});
    const online = make({ rpcUrl });
    const tx = { to: bob, nonce: 1, gas: 21000, maxFeePerGas: 2, maxPriorityFeePerGas: 1 };
    const call = (/** @type {any} */ provider, /** @type {string} */ method, /** @type {unknown} */ params) => outcome(provider.request({ method, params }));
    return {
      otherFrom: await call(online, 'eth_sendTransaction', [{ ...tx, from: bob }]),
      otherSigner: await call(offline, 'personal_sign', ['0x00', bob]),
      otherTypedSigner: await call(offline, 'eth_signTypedData_v4', [bob, '{}']),
      unknownOffline: await call(offline, 'eth_blockNumber', []),
      sendOffline: await call(offline, 'eth_sendTransaction', [tx]),
      ethSign: await call(online, 'eth_sign', [wallet.address, `0x${'00'.repeat(32)}`]),
      forwarded: await call(online, 'eth_blockNumber', []),
      nodeError: await call(online, 'eth_notAMethod', [1]),
      declined: await call(make({ unlock: () => undefined }), 'personal_sign', ['0x00', wallet.address]),
      thrown: await call(
        make({
          unlock: async () => {
            throw new Error('closed');
          },
        }),
        'eth_signTransaction',
        [tx],
      ),
      mistyped: await call(offline, 'eth_signTransaction', [{ ...tx, gasLimitt: 21000 }]),
      otherChain: await call(offline, 'eth_signTransaction', [{ ...tx, chainId: 1 }]),
      badParams: await call(offline, 'personal_sign', ['0x00']),
      nodeOnOtherChain: await call(make({ rpcUrl, chainId: 5 }), 'eth_sendTransaction', [tx]),
      badOptions: await outcome(Promise.resolve().then(() => make({ chainId: 0 }))),
    };
  }, { passcode, bob, CHAIN_ID, rpcUrl: node.url });
  assert.equal(signatureRequests, before, 'none of these signs');
  assert.deepEqual(node.sent, [], 'nothing is sent');
  /** @type {Record<string, number>} */
  const codes = {
    otherFrom: 4100,
    otherSigner: 4100,
    otherTypedSigner: 4100,
    unknownOffline: 4200,
    sendOffline: 4200,
    ethSign: 4200,
    nodeError: -32601,
    declined: 4001,
    thrown: 4001,
    mistyped: -32602,
    otherChain: -32602,
    badParams: -32602,
    nodeOnOtherChain: 4901,
  };
  for (const [name, code] of Object.entries(codes)) {
    const { error } = /** @type {any} */ (outcomes)[name];
    assert.ok(error, `${name} fails`);
    assert.equal(error.name, 'ProviderRpcError', name);
    assert.equal(error.code, code, `${name}: ${error.message}`);
  }
  assert.deepEqual(outcomes.mistyped.error.data, { waasCode: 'INVALID_ARGUMENT' }, "the SDK's code is kept");
  assert.match(outcomes.mistyped.error.message, /gasLimitt/);
  assert.deepEqual(outcomes.nodeError.error.data, { method: 'eth_notAMethod' }, "the node's error data is kept");
  assert.equal(outcomes.forwarded.value, '0x10', 'read-only methods go to the node');
  assert.ok(!node.calls.some((call) => call.method === 'eth_sign'), 'signing methods are never forwarded');
  assert.equal(outcomes.badOptions.error.code, 'INVALID_ARGUMENT');
});

step('bad inputs are INVALID_ARGUMENT and sign nothing', async () => {
  const before = signatureRequests;
  const outcomes = await page.evaluate(async ({ passcode, bob, misspelledCow, mail }) => {
    const { wallet, outcome } = /** @type {any} */ (window);
    const unlock = { passcode };
    const tx = { chainId: 1, nonce: 1, gas: 21000, maxFeePerGas: 100, maxPriorityFeePerGas: 10, to: bob };
    const signTransaction = (/** @type {object} */ changes) => outcome(wallet.client.signTransaction(wallet.mpcKey, { ...tx, ...changes }, unlock));
    const signTypedData = (/** @type {unknown} */ data) => outcome(wallet.client.signTypedData(wallet.mpcKey, data, unlock));
    return {
      unknownField: await signTransaction({ gasLimitt: 21000 }),
      tipAboveCap: await signTransaction({ maxPriorityFeePerGas: 101 }),
        badChecksum: await signTransaction({ to: misspelledCow }),
      eip4844: await signTransaction({ type: 'eip4844' }),
      eip4844Hex: await signTransaction({ type: '0x3' }),
      fractionalGas: await signTransaction({ gas: 21000.5 }),
      zeroChain: await signTransaction({ chainId: 0 }),
      typedNoPrimary: await signTypedData({ ...mail, primaryType: 'Letter' }),
      typedBadJson: await signTypedData('{"types": '),
      typedBadValue: await signTypedData({ ...mail, message: { ...mail.message, contents: 42 } }),
      typedBadAddress: await signTypedData({ ...mail, message: { ...mail.message, to: { name: 'Bob', wallet: '0x1234' } } }),
      typedMissingField: await signTypedData({ ...mail, message: { from: mail.message.from, to: mail.message.to } }),
      message: await outcome(wallet.client.signMessage(wallet.mpcKey, { raw: '0xabc' }, unlock)),
    };
  }, { passcode, bob, misspelledCow: misspelled(cow), mail });
  assert.equal(signatureRequests, before, 'nothing was sent to be signed');
  for (const [name, { error }] of Object.entries(outcomes)) {
    assert.ok(error, `${name} is refused`);
    assert.ok(error.isWaasError, name);
    assert.equal(error.code, 'INVALID_ARGUMENT', `${name}: ${error.message}`);
  }
  assert.match(outcomes.unknownField.error.message, /gasLimitt/);
  assert.match(outcomes.badChecksum.error.message, /checksum/);
});

step('a wrong passcode through the provider keeps its code in data.waasCode', async () => {
  const outcome = await page.evaluate(async ({ CHAIN_ID }) => {
    const { wallet, sdk, outcome } = /** @type {any} */ (window);
    const provider = sdk.createEip1193Provider({ client: wallet.client, mpcKey: wallet.mpcKey, address: wallet.address, chainId: CHAIN_ID, unlock: { passcode: '000000' } });
    return outcome(provider.request({ method: 'personal_sign', params: ['0x00', wallet.address] }));
  }, { CHAIN_ID });
  assert.equal(outcome.error.code, -32603);
  assert.equal(outcome.error.data.waasCode, 'WRONG_PASSCODE');
  // The server's refusals of the wrong passcode are the page's only console errors.
  assert.deepEqual(
    pageErrors.filter((line) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(line)),
    [],
  );
});
