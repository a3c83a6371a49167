// The demo's recovery page (/recover): a backup (pasted, or read from the downloaded file) and
// the wallet's passcode make this browser a new device of the wallet. It sets the device up with
// that passcode when the profile has none (as the wallet page's onboarding does), registers it,
// runs the SDK's `recover`, and hands the wallet to the wallet page through storage.ts.
//
// The backup string, with the passcode, restores the wallet: it stays in the form's field and
// this module's locals, and never goes into the URL, localStorage or a log.
import { WaasClient, WaasDevice, WaasError, initAsync, type RecoveredWallet } from 'waas-sdk';

import { type StoredWallet, loadWallet, saveWallet } from './storage';
import { PASSCODE_POLICY, byId, clearError, describe, describeError, showError, showProblem } from './ui';

const ui = {
  status: byId('status', HTMLElement),
  appError: byId('app-error', HTMLElement),
  recover: byId('recover', HTMLElement),
  existing: byId('recover-existing', HTMLElement),
  form: byId('recover-form', HTMLFormElement),
  fieldset: byId('recover-fieldset', HTMLFieldSetElement),
  file: byId('recover-file', HTMLInputElement),
  backup: byId('recover-backup', HTMLTextAreaElement),
  passcode: byId('recover-passcode', HTMLInputElement),
  confirmField: byId('recover-confirm-field', HTMLElement),
  confirm: byId('recover-confirm', HTMLInputElement),
  oldField: byId('recover-old-field', HTMLElement),
  old: byId('recover-old', HTMLInputElement),
  submit: byId('recover-submit', HTMLButtonElement),
  wait: byId('recover-wait', HTMLElement),
  error: byId('recover-error', HTMLElement),
  recovered: byId('recovered', HTMLElement),
  recoveredAddress: byId('recovered-address', HTMLElement),
  recoveredWallet: byId('recovered-wallet', HTMLElement),
  recoveredDeviceGroup: byId('recovered-device-group', HTMLElement),
  recoveredDevice: byId('recovered-device', HTMLElement),
  recoveredExport: byId('recovered-export', HTMLElement),
  recoveredSaved: byId('recovered-saved', HTMLElement),
};

/** The backup file is one note line and the string: anything much larger is not one. */
const MAX_FILE_BYTES = 64 * 1024;

/** A backup string as the SDK writes it: the prefix, then Base58 (no 0, O, I or l). */
const BACKUP_PATTERN = /waasbackup1[1-9A-HJ-NP-Za-km-z]+/g;

interface Page {
  device: WaasDevice;
  client: WaasClient;
  /** Only one recovery at a time from this page. */
  busy: boolean;
  /** Until when the server asked to wait (PASSCODE_BACKOFF), in `Date.now()` milliseconds. */
  retryAt: number;
  waitTimer: number | undefined;
}

/** A problem the page found itself: shown without a code, since no SDK call failed. */
class Problem extends Error {
  constructor(
    message: string,
    readonly focus?: HTMLElement,
  ) {
    super(message);
  }
}

function setStatus(text: string, state: 'loading' | 'busy' | 'ready' | 'error'): void {
  ui.status.textContent = text;
  ui.status.dataset['state'] = state;
}

// --- the backup -----------------------------------------------------------------------------------

/** The distinct backup strings in a file's text (the download holds a note line, then one). */
function backupsIn(text: string): string[] {
  return [...new Set(text.match(BACKUP_PATTERN) ?? [])];
}

/**
 * Reads the chosen file into the backup field, so the user sees what will be used. The file is
 * read here only: nothing of it is uploaded.
 */
async function readBackupFile(file: File): Promise<void> {
  if (file.size > MAX_FILE_BYTES) {
    throw new Problem(`${file.name} is too large to be a backup file: choose the waas-backup-….txt file.`, ui.file);
  }
  const found = backupsIn(await file.text());
  if (found.length === 0) {
    throw new Problem(`${file.name} holds no backup string (one starting with waasbackup1): choose another file, or paste the string.`, ui.file);
  }
  if (found.length > 1) {
    throw new Problem(`${file.name} holds ${found.length} backup strings: paste the one to use.`, ui.backup);
  }
  ui.backup.value = found[0] ?? '';
}

// --- errors ---------------------------------------------------------------------------------------

/** What each code means for someone recovering; other codes show the SDK's own message. */
const ADVICE: Record<string, string> = {
  INVALID_BACKUP: 'Check the backup: it is mistyped or cut. Nothing was sent to the server.',
  WRONG_PASSCODE:
    'The passcode is wrong. Wrong tries are counted: after 10, recovery of this wallet locks.',
  PASSCODE_LOCKED: 'Recovery is locked for this wallet: contact the wallet’s operator.',
  DEVICE_REVOKED:
    'This browser’s device is revoked, so it cannot join a wallet. Recover in a fresh browser profile.',
};

/** Shows `error` as "CODE: advice (the SDK's details)", or a page's own problem without a code. */
function showRecoverError(page: Page, error: unknown): void {
  if (error instanceof Problem) {
    showProblem(ui.error, error.message);
    return;
  }
  const { code, message } = describeError(error);
  if (code === 'PASSCODE_BACKOFF') {
    const seconds = error instanceof WaasError ? (error.retryAfterSeconds ?? 1) : 1;
    showAdvice(code, `Too many wrong passcodes lately: wait ${seconds} s before the next try.`, message);
    startWait(page, seconds);
    return;
  }
  const advice = ADVICE[code];
  if (advice === undefined) showError(ui.error, error);
  else showAdvice(code, advice, message);
}

function showAdvice(code: string, advice: string, details: string): void {
  const codeElement = document.createElement('code');
  codeElement.textContent = code;
  const detailsElement = document.createElement('span');
  detailsElement.className = 'hint';
  detailsElement.textContent = ` (${details})`;
  ui.error.replaceChildren(codeElement, `: ${advice}`, detailsElement);
  ui.error.dataset['code'] = code;
}

/** Holds the submit button back until the server's backoff has passed, saying how long. */
function startWait(page: Page, seconds: number): void {
  page.retryAt = Date.now() + seconds * 1000;
  if (page.waitTimer !== undefined) window.clearInterval(page.waitTimer);
  const tick = (): void => {
    const left = Math.ceil((page.retryAt - Date.now()) / 1000);
    if (left > 0) {
      ui.submit.disabled = true;
      ui.wait.textContent = `You can try again in ${left} s.`;
      return;
    }
    window.clearInterval(page.waitTimer);
    page.waitTimer = undefined;
    ui.submit.disabled = page.busy;
    ui.wait.textContent = 'You can try again now.';
  };
  tick();
  page.waitTimer = window.setInterval(tick, 1000);
}

// --- the recovery ---------------------------------------------------------------------------------

/**
 * The SDK unlocks this device's own keys with the passcode before anything goes to the server,
 * so a device set up with another passcode (a mistyped one at an earlier try) could never try
 * the right one. While it holds no wallet, its passcode protects nothing yet: with the passcode
 * it was set up with, the page changes it to this one. A device with a wallet checks the
 * passcode at the server only (`INVALID_ARGUMENT` here): recovery does that.
 */
async function matchDevicePasscode(page: Page, passcode: string, old: string): Promise<void> {
  try {
    await page.device.checkPasscode(passcode);
    ui.oldField.hidden = true;
    return;
  } catch (error) {
    if (error instanceof WaasError && error.code === 'INVALID_ARGUMENT') return;
    if (!(error instanceof WaasError && error.code === 'WRONG_PASSCODE')) throw error;
  }
  if (old === '') {
    ui.oldField.hidden = false;
    throw new Problem(
      'This browser’s device was set up with another passcode. Type that one in “The passcode this browser was set up with”, then try again.',
      ui.old,
    );
  }
  try {
    await page.device.resetPasscode(old, passcode);
  } catch (error) {
    if (error instanceof WaasError && error.code === 'WRONG_PASSCODE') {
      throw new Problem('That is not the passcode this browser was set up with either.', ui.old);
    }
    throw error;
  }
  ui.oldField.hidden = true;
}

/** What the wallet page remembers of the recovered wallet (its first address). */
function toStored(device: string, recovered: RecoveredWallet): StoredWallet {
  const mpcKey = recovered.address.mpcKeys[0];
  if (mpcKey === undefined) throw new Error('the first address names no key');
  return {
    device,
    wallet: recovered.wallet,
    deviceGroup: recovered.deviceGroup,
    mpcKey,
    address: recovered.address.address,
    derivationPath: recovered.address.derivationPath,
    network: recovered.address.network,
    needsBackup: true,
  };
}

function showRecovered(stored: StoredWallet, recovered: RecoveredWallet): void {
  ui.recoveredAddress.textContent = stored.address;
  ui.recoveredWallet.textContent = stored.wallet;
  ui.recoveredDeviceGroup.textContent = stored.deviceGroup;
  ui.recoveredDevice.textContent = stored.device;
  ui.recoveredExport.textContent = recovered.archived
    ? 'ready'
    : 'not set up yet: the wallet page’s export sets it up with the passcode';
  try {
    saveWallet(stored);
    ui.recoveredSaved.textContent = 'The wallet page now shows this wallet.';
  } catch (error) {
    ui.recoveredSaved.textContent = `This browser refused to remember the wallet for the wallet page (${describe(error)}): the wallet is recovered, but the wallet page will not show it.`;
  }
  ui.recover.hidden = true;
  ui.recovered.hidden = false;
  ui.recovered.querySelector<HTMLElement>('h2')?.focus();
}

async function recover(page: Page, backup: string, passcode: string, confirm: string, old: string): Promise<void> {
  if (!(await page.device.isBootstrapped())) {
    if (passcode !== confirm) {
      throw new Problem('The two passcodes differ: type the wallet’s passcode twice.', ui.passcode);
    }
    setStatus('Setting this browser up as a device, with the passcode…', 'busy');
    await page.device.bootstrap(passcode);
    ui.confirmField.hidden = true;
  } else {
    await matchDevicePasscode(page, passcode, old);
  }
  setStatus('Registering this device with the server…', 'busy');
  const device = await page.client.registerDevice();
  setStatus('Recovering: the server checks the backup and the passcode, then this device gets its own half of the key…', 'busy');
  const recovered = await page.client.recover(backup, passcode);
  // The backup leaves the page: the recovery is done, and a new backup replaces it.
  ui.backup.value = '';
  ui.file.value = '';
  showRecovered(toStored(device.name, recovered), recovered);
  setStatus('Wallet recovered. Make a new backup now, on the wallet page.', 'ready');
}

function wire(page: Page): void {
  ui.file.addEventListener('change', () => {
    const file = ui.file.files?.[0];
    if (file === undefined) return;
    clearError(ui.error);
    readBackupFile(file).then(
      () => setStatus(`Read the backup from ${file.name}. Now type the passcode.`, 'ready'),
      (error: unknown) => {
        showRecoverError(page, error);
        setStatus('That file holds no usable backup.', 'error');
      },
    );
  });

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (page.busy || Date.now() < page.retryAt) return;
    // Whitespace is never part of the string: a paste may wrap it over lines.
    const backup = ui.backup.value.replace(/\s+/g, '');
    const passcode = ui.passcode.value;
    const confirm = ui.confirm.value;
    const old = ui.old.value;
    for (const field of [ui.passcode, ui.confirm, ui.old]) field.value = '';
    clearError(ui.error);
    ui.wait.textContent = '';
    if (backup === '') {
      showProblem(ui.error, 'Choose the backup file or paste the backup string first.');
      ui.file.focus();
      return;
    }
    if (!/^[0-9]{6,}$/.test(passcode)) {
      showProblem(ui.error, 'Type the wallet’s passcode: at least 6 digits, digits only.');
      ui.passcode.focus();
      return;
    }
    page.busy = true;
    // At once, before the first await: whoever watches the status sees this try, not the last.
    setStatus('Checking this browser’s device…', 'busy');
    ui.fieldset.disabled = true;
    ui.form.setAttribute('aria-busy', 'true');
    recover(page, backup, passcode, confirm, old)
      .catch((error: unknown) => {
        showRecoverError(page, error);
        setStatus(`Recovery failed: ${error instanceof Problem ? error.message : describeError(error).code}`, 'error');
        (error instanceof Problem && error.focus ? error.focus : ui.passcode).focus();
      })
      .finally(() => {
        page.busy = false;
        ui.fieldset.disabled = false;
        ui.form.removeAttribute('aria-busy');
        if (Date.now() < page.retryAt) ui.submit.disabled = true;
      });
  });
}

// --- start ----------------------------------------------------------------------------------------

async function start(): Promise<Page | undefined> {
  try {
    await initAsync();
    // One after the other: both open the same IndexedDB store, the first may create it.
    // `recovery`: a new profile keeps no passcode wrap (the server checks the passcode during
    // the recovery), so a copy of this profile, next to the backup file, tests no passcode
    // offline.
    const device = await WaasDevice.open(null, { ...PASSCODE_POLICY, recovery: true });
    const client = await WaasClient.connect('');
    return { device, client, busy: false, retryAt: 0, waitTimer: undefined };
  } catch (error) {
    showError(ui.appError, error);
    setStatus('This browser cannot hold a device.', 'error');
    return undefined;
  }
}

async function main(): Promise<void> {
  const page = await start();
  if (!page) return;
  let bootstrapped: boolean;
  try {
    bootstrapped = await page.device.isBootstrapped();
  } catch (error) {
    showError(ui.appError, error);
    setStatus('This browser’s device could not be read.', 'error');
    return;
  }
  // A new profile is set up for the recovery; the passcode is typed twice, since the server
  // counts a wrong one.
  ui.confirmField.hidden = bootstrapped;
  const shown = bootstrapped ? loadWallet() : undefined;
  if (shown) {
    ui.existing.textContent = `The wallet page of this browser shows the wallet of ${shown.address}. After a recovery it shows the recovered wallet instead; the other wallet's keys stay in this browser.`;
    ui.existing.hidden = false;
  }
  wire(page);
  ui.recover.hidden = false;
  setStatus('Choose the backup file or paste the backup string, then type the passcode.', 'ready');
}

await main();
