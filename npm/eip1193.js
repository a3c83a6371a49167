// An EIP-1193 provider (`window.ethereum`'s interface) over one key of a WaasClient: what dapps,
// wagmi connectors, ethers' BrowserProvider and viem's `custom` transport talk to. Account
// methods are answered here and signed by the SDK; read-only methods go to `rpcUrl`. Plain JS with
// no dependency. Generated into pkg/ by scripts/package-sdk.mjs.
import { WaasError } from '__WAAS_ERROR_MODULE__';

/** An EIP-1193 error: `code` as the EIP and JSON-RPC define them, `data.waasCode` the SDK's. */
export class ProviderRpcError extends Error {
  /**
   * @param {number} code
   * @param {string} message
   * @param {unknown} [data]
   * @param {unknown} [cause]
   */
  constructor(code, message, data, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ProviderRpcError';
    this.code = code;
    if (data !== undefined) this.data = data;
  }
}

const USER_REJECTED = 4001;
const UNAUTHORIZED = 4100;
const UNSUPPORTED_METHOD = 4200;
const CHAIN_DISCONNECTED = 4901;
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;

/** The unlock callback refused (returned nothing, or threw): the user said no. */
export class UnlockRefused extends Error {
  /** @param {unknown} [cause] */
  constructor(cause) {
    super('the unlock was refused', cause === undefined ? undefined : { cause });
    this.name = 'UnlockRefused';
  }
}

/**
 * The Unlock for one signature: `source` itself, or what the function `source` gives for
 * `request` (awaited). Throws UnlockRefused when the function throws or gives nothing.
 * @param {unknown} source
 * @param {object} request
 */
export async function resolveUnlock(source, request) {
  if (typeof source !== 'function') return source;
  let unlock;
  try {
    unlock = await source(request);
  } catch (cause) {
    throw new UnlockRefused(cause);
  }
  if (unlock === undefined || unlock === null || unlock === false) throw new UnlockRefused();
  return unlock;
}

/**
 * Checks the `unlock` option of an adapter: an Unlock, or a function that gives one per
 * signature.
 * @param {unknown} unlock
 */
export function checkUnlockOption(unlock) {
  if (typeof unlock !== 'function' && (typeof unlock !== 'object' || unlock === null)) {
    throw new WaasError('INVALID_ARGUMENT', 'unlock is { passcode } or { passkey: true }, or a function giving one');
  }
}

const addressPattern = /^0x[0-9a-fA-F]{40}$/;
const hexBytesPattern = /^0x(?:[0-9a-fA-F]{2})*$/;

/**
 * A chain id or another quantity as a bigint: a bigint, a safe integer, or a `0x` hex or decimal
 * string. Null if it is none of these.
 * @param {unknown} value
 */
function quantity(value) {
  if (typeof value === 'bigint') return value >= 0n ? value : null;
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : null;
  if (typeof value === 'string' && /^(?:0[xX][0-9a-fA-F]+|[0-9]+)$/.test(value)) return BigInt(value);
  return null;
}

/** @param {bigint} value */
const toHex = (value) => `0x${value.toString(16)}`;

/** JSON with bigints as `0x` hex quantities (JSON-RPC's form). */
const rpcJson = (/** @type {unknown} */ value) =>
  JSON.stringify(value, (_key, inner) => (typeof inner === 'bigint' ? toHex(inner) : inner));

/**
 * An EIP-1193 provider for the key `mpcKey` of `client`, whose address is `address` (as
 * `createWallet` or `generateAddress` gave it with that key), on chain `chainId`.
 * @param {{ client: any, mpcKey: string, address: string, chainId: unknown, unlock: unknown, rpcUrl?: string | URL }} options
 */
export function createEip1193Provider(options) {
  const { client, mpcKey, address, chainId, unlock, rpcUrl } = options ?? {};
  if (typeof client?.signTransaction !== 'function') {
    throw new WaasError('INVALID_ARGUMENT', 'client is a WaasClient');
  }
  if (typeof mpcKey !== 'string' || !mpcKey) throw new WaasError('INVALID_ARGUMENT', 'mpcKey is the key name');
  if (typeof address !== 'string' || !addressPattern.test(address)) {
    throw new WaasError('INVALID_ARGUMENT', `address ${String(address)} is not 0x and 40 hex digits`);
  }
  const chain = quantity(chainId);
  if (chain === null || chain === 0n) {
    throw new WaasError('INVALID_ARGUMENT', `chainId ${String(chainId)} is not a positive integer`);
  }
  const chainIdHex = toHex(chain);
  checkUnlockOption(unlock);
  let endpoint = null;
  if (rpcUrl !== undefined && rpcUrl !== null) {
    try {
      endpoint = new URL(rpcUrl).href;
    } catch {
      throw new WaasError('INVALID_ARGUMENT', `rpcUrl ${String(rpcUrl)} is not a URL`);
    }
  }

  /** @type {Map<string, Function[]>} */
  const listeners = new Map();
  let connected = false;
  let nextId = 1;
  /** @type {Promise<void> | null} */
  let chainChecked = null;

  /** @param {string} event @param {unknown[]} args */
  function emit(event, ...args) {
    for (const listener of [...(listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (error) {
        // As an event target does: a listener's error is reported, and the others still run.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** A JSON-RPC 2.0 call to `rpcUrl`; its error object becomes the thrown error. */
  async function rpc(/** @type {string} */ method, /** @type {unknown} */ params = []) {
    if (endpoint === null) throw new ProviderRpcError(UNSUPPORTED_METHOD, `${method} needs an rpcUrl`);
    const id = nextId++;
    let response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: rpcJson({ jsonrpc: '2.0', id, method, params }),
      });
    } catch (cause) {
      throw new ProviderRpcError(INTERNAL_ERROR, `${method}: cannot reach the rpcUrl (${messageOf(cause)})`, { waasCode: 'NETWORK' }, cause);
    }
    /** @type {any} */
    let body;
    try {
      body = await response.json();
    } catch (cause) {
      throw new ProviderRpcError(INTERNAL_ERROR, `${method}: the rpcUrl answered HTTP ${response.status}, not JSON-RPC`, { waasCode: 'NETWORK' }, cause);
    }
    if (body === null || typeof body !== 'object' || body.id !== id) {
      throw new ProviderRpcError(INTERNAL_ERROR, `${method}: the rpcUrl's answer is not the JSON-RPC response to request ${id}`, { waasCode: 'NETWORK' });
    }
    if (body.error != null) {
      const { code, message, data } = body.error;
      throw new ProviderRpcError(Number.isInteger(code) ? code : INTERNAL_ERROR, String(message ?? `${method} failed`), data);
    }
    if (!('result' in body)) {
      throw new ProviderRpcError(INTERNAL_ERROR, `${method}: the rpcUrl's answer has neither result nor error`, { waasCode: 'NETWORK' });
    }
    return body.result;
  }

  /** `rpc`, for a result that must be a quantity. */
  async function rpcQuantity(/** @type {string} */ method, /** @type {unknown[]} */ params = []) {
    const result = await rpc(method, params);
    const value = typeof result === 'string' && /^0x[0-9a-fA-F]+$/.test(result) ? BigInt(result) : null;
    if (value === null) throw new ProviderRpcError(INTERNAL_ERROR, `${method}: the rpcUrl answered ${rpcJson(result)}, not a quantity`);
    return value;
  }

  /** Once per provider (again after a failure): the rpcUrl serves this provider's chain. */
  function checkRpcChain() {
    chainChecked ??= rpcQuantity('eth_chainId').then((served) => {
      if (served !== chain) {
        throw new ProviderRpcError(CHAIN_DISCONNECTED, `the rpcUrl serves chain ${served}, this provider signs for chain ${chain}`);
      }
    });
    chainChecked.catch(() => {
      chainChecked = null;
    });
    return chainChecked;
  }

  /** Checks that `value` names this provider's account: -32602 if not an address, 4100 if another. */
  function ownAddress(/** @type {unknown} */ value, /** @type {string} */ what) {
    if (typeof value !== 'string' || !addressPattern.test(value)) {
      throw new ProviderRpcError(INVALID_PARAMS, `${what} is not an address: ${rpcJson(value)}`);
    }
    if (value.toLowerCase() !== address.toLowerCase()) {
      throw new ProviderRpcError(UNAUTHORIZED, `${value} is not this provider's account (${address})`);
    }
  }

  /** Resolves the unlock for `request` and runs the SDK call `sign` with it. */
  async function withUnlock(/** @type {object} */ request, /** @type {(unlock: unknown) => Promise<any>} */ sign) {
    return sign(await resolveUnlock(unlock, request));
  }

  /**
   * The transaction of eth_signTransaction / eth_sendTransaction as the SDK signs it: `from`
   * checked and dropped, the chain id checked or set, and with an rpcUrl, what is missing filled
   * from it (nonce, gas, fees).
   * @param {unknown} request
   */
  async function transactionOf(request) {
    if (request === null || typeof request !== 'object' || Array.isArray(request)) {
      throw new ProviderRpcError(INVALID_PARAMS, 'the transaction is an object');
    }
    /** @type {Record<string, any>} */
    const fields = { ...request };
    if (fields.from !== undefined) ownAddress(fields.from, 'from');
    delete fields.from;
    for (const [name, value] of Object.entries(fields)) if (value === undefined) delete fields[name];
    if (fields.chainId !== undefined && quantity(fields.chainId) !== chain) {
      throw new ProviderRpcError(INVALID_PARAMS, `the transaction's chainId ${fields.chainId} is not this provider's chain ${chain}`);
    }
    fields.chainId = chainIdHex;
    if (endpoint !== null) await fill(fields);
    return fields;
  }

  /** Fills a transaction's missing nonce, gas and fees from the rpcUrl, as wallets do. */
  async function fill(/** @type {Record<string, any>} */ fields) {
    await checkRpcChain();
    const type = fields.type;
    const legacy = ['legacy', '0x0', '0x00'].includes(type) || (type === undefined && fields.gasPrice !== undefined);
    const eip1559 = !legacy && (type === undefined || ['eip1559', '0x2', '0x02'].includes(type));
    // Anything else (eip2930, eip4844, ...) is left as it is: the SDK refuses to sign it.
    /** @type {Promise<unknown>[]} */
    const pending = [];
    if (fields.nonce === undefined) {
      pending.push(rpcQuantity('eth_getTransactionCount', [address, 'pending']).then((nonce) => (fields.nonce = toHex(nonce))));
    }
    if (fields.gas === undefined && fields.gasLimit === undefined) {
      pending.push(rpcQuantity('eth_estimateGas', [estimateOf(fields)]).then((gas) => (fields.gas = toHex(gas))));
    }
    if (legacy && fields.gasPrice === undefined) {
      pending.push(rpcQuantity('eth_gasPrice').then((price) => (fields.gasPrice = toHex(price))));
    }
    if (eip1559 && (fields.maxFeePerGas === undefined || fields.maxPriorityFeePerGas === undefined)) {
      pending.push(fillFees(fields));
    }
    await Promise.all(pending);
  }

  /** EIP-1559 fees: the node's suggested tip, and a cap of twice the latest base fee plus it. */
  async function fillFees(/** @type {Record<string, any>} */ fields) {
    /** @type {any} */
    const block = await rpc('eth_getBlockByNumber', ['latest', false]);
    if (block?.baseFeePerGas == null) {
      if (fields.type !== undefined || fields.maxFeePerGas !== undefined || fields.maxPriorityFeePerGas !== undefined) {
        throw new ProviderRpcError(INVALID_PARAMS, 'the chain has no base fee (no EIP-1559): send a legacy transaction (gasPrice)');
      }
      fields.gasPrice = toHex(await rpcQuantity('eth_gasPrice'));
      return;
    }
    const baseFee = quantity(block.baseFeePerGas);
    if (baseFee === null) throw new ProviderRpcError(INTERNAL_ERROR, `the latest block's baseFeePerGas is not a quantity: ${rpcJson(block.baseFeePerGas)}`);
    let tip = fields.maxPriorityFeePerGas === undefined ? await rpcQuantity('eth_maxPriorityFeePerGas') : quantity(fields.maxPriorityFeePerGas);
    if (tip === null) throw new ProviderRpcError(INVALID_PARAMS, `maxPriorityFeePerGas is not a quantity: ${rpcJson(fields.maxPriorityFeePerGas)}`);
    if (fields.maxFeePerGas === undefined) {
      fields.maxFeePerGas = toHex(2n * baseFee + tip);
    } else if (fields.maxPriorityFeePerGas === undefined) {
      // A suggested tip never goes above the caller's own fee cap.
      const cap = quantity(fields.maxFeePerGas);
      if (cap !== null && tip > cap) tip = cap;
    }
    fields.maxPriorityFeePerGas = toHex(tip);
  }

  /** The eth_estimateGas request for a transaction: what it executes, not what it pays. */
  function estimateOf(/** @type {Record<string, any>} */ fields) {
    /** @type {Record<string, unknown>} */
    const call = { from: address };
    for (const name of ['to', 'value', 'data', 'input', 'accessList']) {
      const value = fields[name];
      if (value === undefined || value === null) continue;
      if (name === 'value') {
        const wei = quantity(value);
        if (wei === null) throw new ProviderRpcError(INVALID_PARAMS, `value is not a quantity: ${rpcJson(value)}`);
        call.value = toHex(wei);
      } else {
        call[name] = value;
      }
    }
    return call;
  }

  /** One request, unwrapped: its result, or a thrown error of any kind. */
  async function handle(/** @type {string} */ method, /** @type {any} */ params) {
    switch (method) {
      case 'eth_accounts':
      case 'eth_requestAccounts':
        return [address];
      case 'eth_chainId':
        return chainIdHex;
      case 'personal_sign': {
        const [data, from] = positional(params, 2, method, '[message, address]');
        ownAddress(from, 'the address (second parameter)');
        if (typeof data !== 'string') throw new ProviderRpcError(INVALID_PARAMS, 'the message is a 0x hex string or text');
        // As wallets read it: 0x and whole bytes of hex is bytes, anything else is UTF-8 text.
        const message = hexBytesPattern.test(data) ? { raw: data } : data;
        const signature = await withUnlock({ kind: 'message', message }, (u) => client.signMessage(mpcKey, message, u));
        return signature.signedPayload.signature;
      }
      case 'eth_signTypedData_v4': {
        const [from, typedData] = positional(params, 2, method, '[address, typedData]');
        ownAddress(from, 'the address (first parameter)');
        if (typeof typedData !== 'string' && (typedData === null || typeof typedData !== 'object')) {
          throw new ProviderRpcError(INVALID_PARAMS, 'the typed data is an object or its JSON text');
        }
        const signature = await withUnlock({ kind: 'typedData', typedData }, (u) => client.signTypedData(mpcKey, typedData, u));
        return signature.signedPayload.signature;
      }
      case 'eth_signTransaction': {
        const [request] = positional(params, 1, method, '[transaction]');
        const transaction = await transactionOf(request);
        const signed = await withUnlock({ kind: 'transaction', transaction }, (u) => client.signTransaction(mpcKey, transaction, u));
        return signed.rawTransaction;
      }
      case 'eth_sendTransaction': {
        const [request] = positional(params, 1, method, '[transaction]');
        if (endpoint === null) throw new ProviderRpcError(UNSUPPORTED_METHOD, 'eth_sendTransaction needs an rpcUrl to send to');
        const transaction = await transactionOf(request);
        const signed = await withUnlock({ kind: 'transaction', transaction }, (u) => client.signTransaction(mpcKey, transaction, u));
        const hash = await rpc('eth_sendRawTransaction', [signed.rawTransaction]);
        if (typeof hash !== 'string' || hash.toLowerCase() !== signed.hash.toLowerCase()) {
          throw new ProviderRpcError(INTERNAL_ERROR, `the rpcUrl answered transaction hash ${rpcJson(hash)}, the signed transaction's is ${signed.hash}`);
        }
        return signed.hash;
      }
      default:
        // Methods about accounts and signing are never sent on: a node may hold keys of its own.
        if (endpoint === null || /^(?:eth_sign|eth_signTypedData|personal_|wallet_|eth_sendTransaction)/.test(method)) {
          throw new ProviderRpcError(UNSUPPORTED_METHOD, `${method} is not supported${endpoint === null ? ' (no rpcUrl)' : ''}`);
        }
        return rpc(method, params);
    }
  }

  const provider = {
    /** @param {{ method: string, params?: unknown }} args */
    async request(args) {
      if (args === null || typeof args !== 'object' || typeof args.method !== 'string') {
        throw new ProviderRpcError(INVALID_PARAMS, 'request takes { method, params }');
      }
      if (!connected) {
        connected = true;
        emit('connect', { chainId: chainIdHex });
      }
      try {
        return await handle(args.method, args.params ?? []);
      } catch (error) {
        throw providerError(error);
      }
    },
    /** @param {string} event @param {Function} listener */
    on(event, listener) {
      listeners.set(event, [...(listeners.get(event) ?? []), listener]);
      return provider;
    },
    /** @param {string} event @param {Function} listener */
    removeListener(event, listener) {
      const list = [...(listeners.get(event) ?? [])];
      const index = list.lastIndexOf(listener);
      if (index >= 0) list.splice(index, 1);
      listeners.set(event, list);
      return provider;
    },
  };
  return provider;
}

/**
 * The parameters of a positional method, at least `count` of them.
 * @param {unknown} params @param {number} count @param {string} method @param {string} shape
 * @returns {any[]}
 */
function positional(params, count, method, shape) {
  if (!Array.isArray(params) || params.length < count) {
    throw new ProviderRpcError(INVALID_PARAMS, `${method} takes ${shape}`);
  }
  return params;
}

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/**
 * Any error of a request as EIP-1193 wants it: a refused unlock is 4001, the SDK's
 * INVALID_ARGUMENT is -32602, its other codes -32603; `data.waasCode` keeps the SDK's code.
 * @param {unknown} error
 */
function providerError(error) {
  if (error instanceof ProviderRpcError) return error;
  if (error instanceof UnlockRefused) {
    return new ProviderRpcError(USER_REJECTED, 'User rejected the request.', undefined, error.cause);
  }
  if (error instanceof WaasError) {
    const code = error.code === 'INVALID_ARGUMENT' ? INVALID_PARAMS : INTERNAL_ERROR;
    /** @type {{ waasCode: string, retryAfterSeconds?: number }} */
    const data = { waasCode: error.code };
    if (error.retryAfterSeconds !== undefined) data.retryAfterSeconds = error.retryAfterSeconds;
    return new ProviderRpcError(code, error.message, data, error);
  }
  return new ProviderRpcError(INTERNAL_ERROR, messageOf(error), undefined, error);
}
