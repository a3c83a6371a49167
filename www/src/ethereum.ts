// What the wallet page's signing forms compute themselves: amounts in ETH or gwei as exact wei, and
// the EIP-712 example with the chosen chain. Everything Ethereum does beyond that (encoding,
// hashing, checking addresses and hex) is the SDK's.

/** Decimals of ETH and of gwei: 1 ETH = 10^18 wei, 1 gwei = 10^9 wei. */
export const ETH_DECIMALS = 18;
export const GWEI_DECIMALS = 9;

/** Sepolia's chain id: the test network the forms start on. */
export const SEPOLIA = 11155111;

/**
 * A decimal amount (`"0.5"`, `"12"`, `"1.25"`) of a unit worth 10^`decimals` wei, as a whole
 * number of wei: digit strings and bigint arithmetic only, so no amount is rounded. Throws a
 * RangeError, worded for people, if the text is not such an amount or is finer than 1 wei.
 */
export function toWei(text: string, decimals: number): bigint {
  const match = /^(\d*)(?:\.(\d*))?$/.exec(text.trim());
  const whole = match?.[1] ?? '';
  const fraction = match?.[2] ?? '';
  if (!match || (whole === '' && fraction === '')) {
    throw new RangeError(`"${text}" is not an amount: write digits, with a point before any decimals`);
  }
  if (fraction.length > decimals) {
    throw new RangeError(`"${text}" has more than ${decimals} decimals: that is finer than 1 wei`);
  }
  const scale = 10n ** BigInt(decimals);
  return BigInt(whole || '0') * scale + BigInt(fraction.padEnd(decimals, '0') || '0');
}

/** The "Mail" example of EIP-712 (its specification's own), for `chainId`, as indented JSON. */
export function mailExample(chainId: number | string): string {
  const typedData = {
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
    domain: {
      name: 'Ether Mail',
      version: '1',
      chainId,
      verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC',
    },
    message: {
      from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
      to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
      contents: 'Hello, Bob!',
    },
  };
  return JSON.stringify(typedData, null, 2);
}

/**
 * A chain id as typed-data JSON holds it: a number while it is exact in JavaScript, else its
 * decimal string (uint256 fields take both). Undefined if `text` is not a whole number.
 */
export function chainIdValue(text: string): number | string | undefined {
  const digits = text.trim();
  if (!/^\d+$/.test(digits)) return undefined;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : digits;
}

/**
 * `json` with its `domain.chainId` set to `chainId`, re-indented; undefined when `json` is not an
 * object with a `domain` object (text being edited is then left as it is), or when it holds a
 * number that JavaScript would round: writing it back would change what is signed.
 */
export function withChainId(json: string, chainId: number | string): string | undefined {
  let typedData: unknown;
  try {
    typedData = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!isObject(typedData) || !isObject(typedData['domain']) || !exactNumbers(typedData)) return undefined;
  typedData['domain']['chainId'] = chainId;
  return JSON.stringify(typedData, null, 2);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether every number in `value` is an integer JavaScript holds exactly. */
function exactNumbers(value: unknown): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value);
  if (Array.isArray(value)) return value.every(exactNumbers);
  if (isObject(value)) return Object.values(value).every(exactNumbers);
  return true;
}
