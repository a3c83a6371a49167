// The demo wallet's Ethereum signing (issue 8), served by the real waas-server, in headless
// Chromium: one browser profile creates a wallet through the page, then signs a message, typed
// data and two transactions through the page's forms; viem checks in Node what the page shows.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import {
  getAddress,
  hashTypedData,
  keccak256,
  parseTransaction,
  recoverTransactionAddress,
  verifyMessage,
  verifyTypedData,
} from 'viem';

import { collectPageErrors, serveDemo, settledStatus, stepsInOrder } from './support.mjs';

const demo = serveDemo();

describe('the demo wallet signs a message, typed data and transactions, through its forms', () => {
  const passcode = '123456';
  /** Generous: key generation and signing run the MPC rounds against the server. */
  const stepTimeout = 120_000;
  /** @type {import('playwright-core').BrowserContext} */
  let context;
  /** @type {import('playwright-core').Page} */
  let page;
  /** @type {string[]} */
  let errors;
  /** The wallet's address, as the page shows it. */
  let address = '';
  /** CreateSignature requests the page sent (`POST …/mpcKeys/{k}/signatures`), counted. */
  let signatureRequests = 0;

  before(async () => {
    context = await demo.browser.newContext();
    page = await context.newPage();
    errors = collectPageErrors(page);
    page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.endsWith('/signatures')) {
        signatureRequests += 1;
      }
    });
  });

  after(async () => {
    await context?.close();
  });

  const step = stepsInOrder();

  /** @param {string} id */
  const byTestId = (id) => page.getByTestId(id);

  const settled = () => settledStatus(page, stepTimeout);

  /** @param {string} id */
  const text = async (id) => (await byTestId(id).textContent()) ?? '';

  /** Picks what to sign, by the radio button's label, as a user does. @param {string} label */
  const choose = (label) => byTestId('sign-kind').getByLabel(label).check();

  /** Types the passcode and presses the sign button. @param {string} [code] */
  async function submit(code = passcode) {
    await byTestId('sign-passcode').fill(code);
    await byTestId('sign-submit').click();
    return settled();
  }

  /**
   * The shown signature: 65 bytes that are r ‖ s ‖ v as shown.
   * @returns {Promise<`0x${string}`>}
   */
  async function shownSignature() {
    const signature = await text('signature');
    assert.match(signature, /^0x[0-9a-f]{130}$/i, 'r ‖ s ‖ v, 65 bytes');
    const v = Number(await text('signature-v'));
    const joined = `0x${(await text('signature-r')).slice(2)}${(await text('signature-s')).slice(2)}${v.toString(16)}`;
    assert.equal(joined.toLowerCase(), signature.toLowerCase(), 'signature = r ‖ s ‖ v');
    return /** @type {`0x${string}`} */ (signature);
  }

  /**
   * Fills the transaction form (the kind is chosen first).
   * @param {{ type: string, chainId: string, nonce: string, to: string, value: string, gas: string,
   *   fees: Record<string, string>, data: string }} fields
   */
  async function fillTransaction({ type, chainId, nonce, to, value, gas, fees, data }) {
    await choose('A transaction');
    await byTestId('tx-type').selectOption({ label: type });
    await byTestId('sign-chain').fill(chainId);
    await byTestId('tx-nonce').fill(nonce);
    await byTestId('tx-to').fill(to);
    await byTestId('tx-value').fill(value);
    await byTestId('tx-gas').fill(gas);
    for (const [testid, gwei] of Object.entries(fees)) await byTestId(testid).fill(gwei);
    await byTestId('tx-data').fill(data);
  }

  /**
   * The shown signed transaction, checked: its hash is keccak256 of the raw bytes, it recovers
   * the wallet's address, and the shown signature is the one it carries. Resolves with viem's
   * reading of it.
   */
  async function shownTransaction() {
    const raw = /** @type {import('viem').TransactionSerialized} */ (await text('tx-raw'));
    assert.match(raw, /^0x[0-9a-f]+$/);
    assert.equal(await text('tx-hash'), keccak256(raw), 'the hash is keccak256 of the raw transaction');
    assert.equal(await recoverTransactionAddress({ serializedTransaction: raw }), address);
    const parsed = parseTransaction(raw);
    const signature = await shownSignature();
    assert.equal(BigInt(parsed.r ?? 0), BigInt(signature.slice(0, 66)), 'r of the transaction');
    assert.equal(BigInt(parsed.s ?? 0), BigInt(`0x${signature.slice(66, 130)}`), 's of the transaction');
    assert.ok(await byTestId('tx-not-broadcast').isVisible(), 'the page says nothing is broadcast');
    return parsed;
  }

  step('a device and a wallet, made through the page', async () => {
    await page.goto(demo.server.url);
    assert.equal((await settled()).state, 'ready');
    await byTestId('onboarding-passcode').fill(passcode);
    await byTestId('onboarding-confirm').fill(passcode);
    await byTestId('onboarding-submit').click();
    assert.equal((await settled()).state, 'ready');
    await byTestId('create-wallet-passcode').fill(passcode);
    await byTestId('create-wallet-submit').click();
    const status = await settled();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    address = await text('wallet-address');
    assert.equal(getAddress(address), address, 'an EIP-55 address');
    assert.ok(await byTestId('sign').isVisible());
    // A message is what the form signs at first: the other kinds' fields are hidden.
    assert.ok(await byTestId('sign-kind-message').isChecked());
    assert.ok(await byTestId('sign-message').isVisible());
    assert.ok(await byTestId('typed-data').isHidden());
    assert.ok(await byTestId('tx-nonce').isHidden());
    assert.ok(await byTestId('sign-chain').isHidden(), 'a message has no chain');
    assert.deepEqual(errors, []);
  });

  step('a message (EIP-191): viem verifies the signature for the wallet address', async () => {
    const message = 'Ethereum from the demo wallet ✓';
    await choose('A message');
    await byTestId('sign-message').fill(message);
    assert.equal(await text('sign-submit'), 'Sign message');
    const status = await submit();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await text('sign-result-title'), 'Signed message');
    assert.equal(await text('signed-message'), message);
    const signature = await shownSignature();
    assert.ok(await verifyMessage({ address: /** @type {`0x${string}`} */ (address), message, signature }));
    assert.ok(
      !(await verifyMessage({ address: /** @type {`0x${string}`} */ (address), message: `${message}.`, signature })),
      'and not for another message',
    );
    assert.equal(await byTestId('sign-passcode').inputValue(), '', 'the passcode field is cleared');
    assert.deepEqual(errors, []);
  });

  step('typed data (EIP-712): the Mail example on the chosen chain, its digest, verified by viem', async () => {
    await choose('Typed data (EIP-712)');
    assert.ok(await byTestId('typed-data').isVisible());
    assert.ok(await byTestId('sign-message').isHidden());
    assert.equal(await text('sign-submit'), 'Sign typed data');
    // Prefilled with EIP-712's example, on Sepolia (the chain field's default).
    assert.equal(await byTestId('sign-chain').inputValue(), '11155111');
    let typedData = JSON.parse(await byTestId('typed-data').inputValue());
    assert.equal(typedData.primaryType, 'Mail');
    assert.equal(typedData.domain.name, 'Ether Mail');
    assert.equal(typedData.domain.chainId, 11155111);
    // Another chain id rewrites the domain's.
    await byTestId('sign-chain').fill('17000');
    typedData = JSON.parse(await byTestId('typed-data').inputValue());
    assert.equal(typedData.domain.chainId, 17000);
    // An edit of the JSON is what gets signed.
    typedData.message.contents = 'Hello, Bob! Edited in the page.';
    await byTestId('typed-data').fill(JSON.stringify(typedData, null, 2));

    const sentBefore = signatureRequests;
    const status = await submit();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(signatureRequests, sentBefore + 1, 'one CreateSignature request');
    assert.equal(await text('sign-result-title'), 'Signed typed data');
    assert.equal(await text('typed-digest'), hashTypedData(typedData), 'the digest shown is the EIP-712 hash');
    const signature = await shownSignature();
    assert.ok(await verifyTypedData({ address: /** @type {`0x${string}`} */ (address), ...typedData, signature }));
    const original = { ...typedData, message: { ...typedData.message, contents: 'Hello, Bob!' } };
    assert.ok(
      !(await verifyTypedData({ address: /** @type {`0x${string}`} */ (address), ...original, signature })),
      'not for the unedited message',
    );
    assert.deepEqual(errors, []);
  });

  step('malformed typed-data JSON is refused with INVALID_ARGUMENT, and nothing is signed', async () => {
    await byTestId('typed-data').fill('{ "types": { "Mail": [ }');
    const sentBefore = signatureRequests;
    const status = await submit();
    assert.equal(status.state, 'error');
    const error = byTestId('sign-error');
    assert.equal(await error.getAttribute('data-code'), 'INVALID_ARGUMENT');
    assert.equal(await error.getAttribute('role'), 'alert');
    const invalid = /^INVALID_ARGUMENT: the typed data is not valid EIP-712: .+ line 1 column \d+/;
    assert.match(await text('sign-error'), invalid);
    assert.ok(await byTestId('sign-result').isHidden(), 'no signature on show');
    assert.equal(signatureRequests, sentBefore, 'no CreateSignature request');

    // The example comes back with the button, on the chain in the form.
    await byTestId('typed-data-reset').click();
    const typedData = JSON.parse(await byTestId('typed-data').inputValue());
    assert.equal(typedData.domain.chainId, 17000);
    assert.equal(typedData.message.contents, 'Hello, Bob!');
    assert.deepEqual(errors, []);
  });

  step('an EIP-1559 transaction: the fields as typed, the value exact in wei, signed by the wallet', async () => {
    const to = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
    await fillTransaction({
      type: 'EIP-1559 (type 2)',
      chainId: '11155111',
      nonce: '7',
      to,
      value: '0.123456789012345678',
      gas: '50000',
      fees: { 'tx-max-fee': '32.5', 'tx-priority-fee': '1.000000001' },
      data: '0xdeadbeef',
    });
    assert.ok(await byTestId('tx-gas-price').isHidden(), 'no gas price in an EIP-1559 transaction');
    assert.equal(await text('tx-value-wei'), '= 123456789012345678 wei');
    assert.equal(await text('tx-priority-fee-wei'), '= 1000000001 wei');
    assert.equal(await text('sign-submit'), 'Sign transaction');

    const status = await submit();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    assert.equal(await text('sign-result-title'), 'Signed transaction (not broadcast)');
    const parsed = await shownTransaction();
    assert.equal(parsed.type, 'eip1559');
    assert.equal(parsed.chainId, 11155111);
    assert.equal(parsed.nonce, 7);
    assert.equal(getAddress(parsed.to ?? ''), to);
    assert.equal(parsed.value, 123_456_789_012_345_678n, 'wei exact');
    assert.equal(parsed.gas, 50_000n);
    assert.equal(parsed.maxFeePerGas, 32_500_000_000n);
    assert.equal(parsed.maxPriorityFeePerGas, 1_000_000_001n);
    assert.equal(parsed.data, '0xdeadbeef');
    assert.ok(parsed.yParity === 0 || parsed.yParity === 1);
    assert.deepEqual(errors, []);
  });

  step('a legacy transaction (EIP-155) creating a contract: no recipient, 1 wei, signed by the wallet', async () => {
    const initCode = '0x600a600c600039600a6000f3602a60005260206000f3';
    await fillTransaction({
      type: 'Legacy (EIP-155)',
      chainId: '1',
      nonce: '0',
      to: '',
      value: '0.000000000000000001',
      gas: '100000',
      fees: { 'tx-gas-price': '20.5' },
      data: initCode,
    });
    assert.ok(await byTestId('tx-max-fee').isHidden(), 'no fee cap in a legacy transaction');
    assert.equal(await text('tx-value-wei'), '= 1 wei');

    const status = await submit();
    assert.equal(status.state, 'ready', `status: ${status.text}`);
    const parsed = await shownTransaction();
    assert.equal(parsed.type, 'legacy');
    assert.equal(parsed.chainId, 1, 'replay-protected for mainnet (EIP-155)');
    assert.ok(parsed.v === 37n || parsed.v === 38n, `v = 2 * chainId + 35 + parity, not ${parsed.v}`);
    assert.equal(parsed.nonce ?? 0, 0);
    assert.equal(parsed.to ?? undefined, undefined, 'a contract creation');
    assert.equal(parsed.value, 1n);
    assert.equal(parsed.gas, 100_000n);
    assert.equal(parsed.gasPrice, 20_500_000_000n);
    assert.equal(parsed.data, initCode);
    assert.deepEqual(errors, []);
  });

  step('a wrong passcode shows WRONG_PASSCODE and signs nothing', async () => {
    await fillTransaction({
      type: 'EIP-1559 (type 2)',
      chainId: '11155111',
      nonce: '8',
      to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      value: '1',
      gas: '21000',
      fees: { 'tx-max-fee': '30', 'tx-priority-fee': '1' },
      data: '',
    });
    const status = await submit('000000');
    assert.equal(status.state, 'error');
    const error = byTestId('sign-error');
    assert.equal(await error.getAttribute('data-code'), 'WRONG_PASSCODE');
    assert.equal(await text('sign-error'), 'WRONG_PASSCODE: wrong passcode');
    assert.ok(await byTestId('sign-result').isHidden(), 'no earlier signature left on show');
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      'sign-passcode',
      'focus returns to the passcode',
    );
    assert.deepEqual(errors, []);
  });

  step('fields the page or the SDK cannot take are named, and nothing is signed', async () => {
    const sentBefore = signatureRequests;
    // Finer than a wei: the page says so itself, without a code, and the field gets the focus.
    await byTestId('tx-value').fill('0.1234567890123456789');
    assert.match(await text('tx-value-wei'), /^Not an amount yet: .*more than 18 decimals/);
    let status = await submit();
    assert.equal(status.state, 'error');
    assert.equal(await byTestId('sign-error').getAttribute('data-code'), null);
    assert.match(await text('sign-error'), /^Value: "0\.1234567890123456789" has more than 18 decimals/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tx-value');
    assert.equal(await byTestId('sign-passcode').inputValue(), passcode, 'the passcode stays typed');

    // A recipient of 2 bytes: the SDK refuses it.
    await byTestId('tx-value').fill('1');
    await byTestId('tx-to').fill('0x1234');
    status = await submit();
    assert.equal(status.state, 'error');
    assert.equal(await byTestId('sign-error').getAttribute('data-code'), 'INVALID_ARGUMENT');
    assert.match(await text('sign-error'), /^INVALID_ARGUMENT: transaction: "0x1234" is not an address/);

    // A tip above the fee cap: a node would refuse the transaction, so the SDK does not sign it.
    await byTestId('tx-to').fill('0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
    await byTestId('tx-priority-fee').fill('31');
    status = await submit();
    assert.equal(status.state, 'error');
    assert.equal(await byTestId('sign-error').getAttribute('data-code'), 'INVALID_ARGUMENT');
    assert.match(await text('sign-error'), /^INVALID_ARGUMENT: maxPriorityFeePerGas: higher than maxFeePerGas/);

    assert.ok(await byTestId('sign-result').isHidden());
    assert.equal(signatureRequests, sentBefore, 'no CreateSignature request');
    assert.deepEqual(errors, []);
  });
});
