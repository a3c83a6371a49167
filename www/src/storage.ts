// What the demo remembers between page loads, in localStorage: public names and the first address,
// never a secret. The key share itself stays in the SDK's encrypted store (IndexedDB).
import { ResourceName, type ResourceKind } from 'waas-sdk';

const STORAGE_KEY = 'waas-demo:wallet';

/** The wallet this browser's device created, as the page shows it again after a reload. */
export interface StoredWallet {
  /** `devices/{d}`: the device that holds the wallet's key share. */
  device: string;
  /** `pools/{p}/mpcWallets/{w}`. */
  wallet: string;
  /** `pools/{p}/deviceGroups/{g}`. */
  deviceGroup: string;
  /** `pools/{p}/deviceGroups/{g}/mpcKeys/{k}`: the key of the first address. */
  mpcKey: string;
  /** The first address, EIP-55. */
  address: string;
  /** Its derivation path, `0/0`. */
  derivationPath: string;
  /** Its network, e.g. `networks/ethereum-mainnet`. */
  network: string;
  /**
   * Set when /recover restored the wallet here: the backup used was made elsewhere and may no
   * longer be safe, so the wallet page asks for a new one until the user confirms saving it.
   */
  needsBackup?: boolean;
}

function isName(value: unknown, kind: ResourceKind): value is string {
  if (typeof value !== 'string') return false;
  try {
    const name = ResourceName.parse(value);
    try {
      return name.kind === kind && name.toString() === value;
    } finally {
      name.free();
    }
  } catch {
    return false;
  }
}

function isStoredWallet(value: unknown): value is StoredWallet {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    isName(record['device'], 'device') &&
    isName(record['wallet'], 'mpcWallet') &&
    isName(record['deviceGroup'], 'deviceGroup') &&
    isName(record['mpcKey'], 'mpcKey') &&
    (record['mpcKey'] as string).startsWith(`${record['deviceGroup'] as string}/`) &&
    typeof record['address'] === 'string' &&
    /^0x[0-9a-fA-F]{40}$/.test(record['address']) &&
    typeof record['derivationPath'] === 'string' &&
    typeof record['network'] === 'string' &&
    (record['needsBackup'] === undefined || typeof record['needsBackup'] === 'boolean')
  );
}

/**
 * The remembered wallet, if there is a valid one. A record that does not parse is dropped: it
 * holds only public names, and the wallet itself lives on with its key share.
 */
export function loadWallet(): StoredWallet | undefined {
  try {
    const text = localStorage.getItem(STORAGE_KEY);
    if (text === null) return undefined;
    const value: unknown = JSON.parse(text);
    if (isStoredWallet(value)) return value;
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage blocked or a malformed record: the page simply starts without a wallet.
  }
  return undefined;
}

/** Remembers the wallet; throws (a DOMException) if the browser refuses to store it. */
export function saveWallet(wallet: StoredWallet): void {
  const record: StoredWallet = {
    device: wallet.device,
    wallet: wallet.wallet,
    deviceGroup: wallet.deviceGroup,
    mpcKey: wallet.mpcKey,
    address: wallet.address,
    derivationPath: wallet.derivationPath,
    network: wallet.network,
    ...(wallet.needsBackup === true ? { needsBackup: true } : {}),
  };
  localStorage.setItem(STORAGE_KEY, JSON.stringify(record));
}

/** Forgets the remembered wallet (only the names: the key share is not touched). */
export function forgetWallet(): void {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Nothing was readable either.
  }
}
