// The demo wallet: versions, then onboarding (passcode, device, registration), a wallet and its
// first address, signing (a message, typed data, a transaction), key export, backup, and the
// wallet's devices (revocation). One page; each step is a <section> shown when it applies.
import {
  WaasClient,
  WaasDevice,
  WaasError,
  initAsync,
  version,
  type CreatedWallet,
  type Device,
  type DeviceGroupEvent,
  type ExportedKeys,
  type Signature,
  type TransactionRequest,
  type Unlock,
} from 'waas-sdk';

import { fetchServerVersion } from './api';
import { ETH_DECIMALS, GWEI_DECIMALS, SEPOLIA, chainIdValue, mailExample, toWei, withChainId } from './ethereum';
import { type StoredWallet, forgetWallet, loadWallet, saveWallet } from './storage';
import { PASSCODE_POLICY, byId, clearError, describe, showError, showProblem } from './ui';

// --- DOM helpers ---------------------------------------------------------------------------------

const ui = {
  status: byId('status', HTMLElement),
  appError: byId('app-error', HTMLElement),
  onboarding: byId('onboarding', HTMLElement),
  onboardingForm: byId('onboarding-form', HTMLFormElement),
  onboardingPasscode: byId('onboarding-passcode', HTMLInputElement),
  onboardingConfirm: byId('onboarding-confirm', HTMLInputElement),
  onboardingError: byId('onboarding-error', HTMLElement),
  device: byId('device', HTMLElement),
  deviceName: byId('device-name', HTMLElement),
  deviceState: byId('device-state', HTMLElement),
  deviceError: byId('device-error', HTMLElement),
  registerRetry: byId('register-retry', HTMLButtonElement),
  createWallet: byId('create-wallet', HTMLElement),
  createWalletForm: byId('create-wallet-form', HTMLFormElement),
  createWalletPasscode: byId('create-wallet-passcode', HTMLInputElement),
  createWalletError: byId('create-wallet-error', HTMLElement),
  wallet: byId('wallet', HTMLElement),
  walletAddress: byId('wallet-address', HTMLElement),
  walletPath: byId('wallet-path', HTMLElement),
  walletNetwork: byId('wallet-network', HTMLElement),
  walletName: byId('wallet-name', HTMLElement),
  walletDeviceGroup: byId('wallet-device-group', HTMLElement),
  walletKey: byId('wallet-key', HTMLElement),
  sign: byId('sign', HTMLElement),
  signForm: byId('sign-form', HTMLFormElement),
  signKindMessage: byId('sign-kind-message', HTMLElement),
  signKindTypedData: byId('sign-kind-typed-data', HTMLElement),
  signKindTransaction: byId('sign-kind-transaction', HTMLElement),
  signMessage: byId('sign-message', HTMLTextAreaElement),
  signChainField: byId('sign-chain-field', HTMLElement),
  signChain: byId('sign-chain', HTMLInputElement),
  typedData: byId('typed-data', HTMLTextAreaElement),
  typedDataReset: byId('typed-data-reset', HTMLButtonElement),
  txType: byId('tx-type', HTMLSelectElement),
  txNonce: byId('tx-nonce', HTMLInputElement),
  txTo: byId('tx-to', HTMLInputElement),
  txValue: byId('tx-value', HTMLInputElement),
  txValueWei: byId('tx-value-wei', HTMLOutputElement),
  txGas: byId('tx-gas', HTMLInputElement),
  txFeesEip1559: byId('tx-fees-eip1559', HTMLElement),
  txMaxFee: byId('tx-max-fee', HTMLInputElement),
  txMaxFeeWei: byId('tx-max-fee-wei', HTMLOutputElement),
  txPriorityFee: byId('tx-priority-fee', HTMLInputElement),
  txPriorityFeeWei: byId('tx-priority-fee-wei', HTMLOutputElement),
  txFeesLegacy: byId('tx-fees-legacy', HTMLElement),
  txGasPrice: byId('tx-gas-price', HTMLInputElement),
  txGasPriceWei: byId('tx-gas-price-wei', HTMLOutputElement),
  txData: byId('tx-data', HTMLTextAreaElement),
  signPasscode: byId('sign-passcode', HTMLInputElement),
  signSubmit: byId('sign-submit', HTMLButtonElement),
  signError: byId('sign-error', HTMLElement),
  signResult: byId('sign-result', HTMLElement),
  signResultTitle: byId('sign-result-title', HTMLElement),
  signRows: byId('sign-rows', HTMLElement),
  exportSection: byId('export', HTMLElement),
  exportForm: byId('export-form', HTMLFormElement),
  exportPasscode: byId('export-passcode', HTMLInputElement),
  exportUnderstood: byId('export-understood', HTMLInputElement),
  exportError: byId('export-error', HTMLElement),
  exportResult: byId('export-result', HTMLElement),
  exportCountdown: byId('export-countdown', HTMLElement),
  exportKeys: byId('export-keys', HTMLUListElement),
  exportXprv: byId('export-xprv', HTMLElement),
  exportXprvCopy: byId('export-xprv-copy', HTMLElement),
  exportHide: byId('export-hide', HTMLButtonElement),
  deviceRevoked: byId('device-revoked', HTMLElement),
  backup: byId('backup', HTMLElement),
  backupForm: byId('backup-form', HTMLFormElement),
  backupPasscode: byId('backup-passcode', HTMLInputElement),
  backupError: byId('backup-error', HTMLElement),
  backupResult: byId('backup-result', HTMLElement),
  backupOrigin: byId('backup-origin', HTMLElement),
  backupString: byId('backup-string', HTMLElement),
  backupCopy: byId('backup-copy', HTMLButtonElement),
  backupDownload: byId('backup-download', HTMLButtonElement),
  backupSaved: byId('backup-saved', HTMLButtonElement),
  backupDone: byId('backup-done', HTMLElement),
  backupNeeded: byId('backup-needed', HTMLElement),
  devices: byId('devices', HTMLElement),
  devicesRefresh: byId('devices-refresh', HTMLButtonElement),
  devicesList: byId('devices-list', HTMLUListElement),
  devicesError: byId('devices-error', HTMLElement),
  deviceEventsBox: byId('device-events-box', HTMLElement),
  deviceEventsEmpty: byId('device-events-empty', HTMLElement),
  deviceEvents: byId('device-events', HTMLOListElement),
  revokeOtherForm: byId('revoke-other-form', HTMLFormElement),
  revokeOtherLegend: byId('revoke-other-legend', HTMLElement),
  revokeOtherPasscode: byId('revoke-other-passcode', HTMLInputElement),
  revokeOtherCancel: byId('revoke-other-cancel', HTMLButtonElement),
  revokeOtherError: byId('revoke-other-error', HTMLElement),
  revokeSelfForm: byId('revoke-self-form', HTMLFormElement),
  revokeSelfUnderstood: byId('revoke-self-understood', HTMLInputElement),
  revokeSelfError: byId('revoke-self-error', HTMLElement),
};

/** How long revealed keys stay on the screen. */
const EXPORT_SHOWN_SECONDS = 60;

function show(id: string, text: string, state: 'ok' | 'error'): void {
  const element = byId(id, HTMLElement);
  element.textContent = text;
  element.dataset['state'] = state;
}

function setStatus(text: string, state: 'loading' | 'busy' | 'ready' | 'error'): void {
  ui.status.textContent = text;
  ui.status.dataset['state'] = state;
}

/** Shows a section and moves focus to its heading, so keyboard and screen reader users follow. */
function reveal(section: HTMLElement, focus: boolean): void {
  section.hidden = false;
  if (focus) section.querySelector<HTMLElement>('h2')?.focus();
}

// --- state ----------------------------------------------------------------------------------------

interface App {
  device: WaasDevice;
  client: WaasClient;
  /** The server's name for this device, once registered (this page load). */
  deviceName: string | undefined;
  wallet: StoredWallet | undefined;
  /** Only one SDK operation at a time from this page. */
  busy: boolean;
  /** The countdown that hides revealed keys. */
  exportTimer: number | undefined;
  /** This device's state as the server last reported it (RegisterDevice). */
  deviceState: Device['state'] | undefined;
  /**
   * The backup string on show, for Copy and Download. Only in memory and the DOM while shown:
   * never in localStorage, the URL or a log, since with the passcode it restores the wallet.
   */
  backupString: string | undefined;
  /** The device group's devices, as GetDeviceGroup last listed them. */
  groupDevices: string[];
  /** Each device's state, as GetDeviceGroup last reported it (`deviceStates`). */
  groupStates: Map<string, Device['state']>;
  /**
   * Other devices this page revoked: what it shows for them if the server sends no states (an
   * older server told a device only its own).
   */
  revokedHere: Set<string>;
  /** The group's events (devices added and revoked), if the server lists them. */
  events: DeviceGroupEvent[] | undefined;
  /** The other device the step-up form is about to revoke. */
  revokeTarget: string | undefined;
}

const forms = [
  ui.onboardingForm,
  ui.createWalletForm,
  ui.signForm,
  ui.exportForm,
  ui.backupForm,
  ui.revokeOtherForm,
  ui.revokeSelfForm,
];

/** The buttons outside those forms that start an SDK call (disabled while one runs). */
function actionButtons(): HTMLButtonElement[] {
  return [
    ui.registerRetry,
    ui.backupSaved,
    ui.devicesRefresh,
    ...ui.devicesList.querySelectorAll<HTMLButtonElement>('button'),
  ];
}

/**
 * Runs one user action: every form is disabled meanwhile, `form` is marked busy, and any failure
 * is shown in `errorElement` (never thrown further). Resolves whether the action succeeded.
 */
async function run(
  app: App,
  form: HTMLFormElement | undefined,
  errorElement: HTMLElement,
  busyText: string,
  action: () => Promise<void>,
): Promise<boolean> {
  if (app.busy) return false;
  app.busy = true;
  clearError(errorElement);
  for (const each of forms) each.querySelector('fieldset')?.setAttribute('disabled', '');
  for (const button of actionButtons()) button.disabled = true;
  form?.setAttribute('aria-busy', 'true');
  setStatus(busyText, 'busy');
  try {
    await action();
    return true;
  } catch (error) {
    showError(errorElement, error);
    setStatus(`Failed: ${describe(error)}`, 'error');
    return false;
  } finally {
    app.busy = false;
    for (const each of forms) each.querySelector('fieldset')?.removeAttribute('disabled');
    for (const button of actionButtons()) button.disabled = false;
    form?.removeAttribute('aria-busy');
  }
}

// --- steps ----------------------------------------------------------------------------------------

function showDevice(app: App, device: Device): void {
  app.deviceName = device.name;
  app.deviceState = device.state;
  ui.deviceName.textContent = device.name;
  ui.deviceState.textContent = device.state;
  ui.registerRetry.hidden = true;
  clearError(ui.deviceError);
  showDeviceState(app);
}

/**
 * What a revoked device may still do: nothing at the server. Its backup form and self-revocation
 * go; signing stays, so its DEVICE_REVOKED is seen rather than the form silently missing.
 */
function showDeviceState(app: App): void {
  const revoked = app.deviceState === 'REVOKED';
  ui.deviceRevoked.hidden = !revoked;
  ui.backupForm.hidden = revoked;
  ui.revokeSelfForm.hidden = revoked;
  if (revoked) ui.revokeOtherForm.hidden = true;
  // A backup string already on show stays: the user may still need to save it.
  if (app.wallet) ui.backup.hidden = revoked && app.backupString === undefined;
  ui.backupNeeded.hidden = revoked || app.wallet?.needsBackup !== true;
  renderDevices(app);
}

/**
 * RegisterDevice (again is fine: the same device). It is also how the page learns this device's
 * state: it needs no request token, so it answers a revoked device too. Rejects like the SDK does.
 */
async function register(app: App): Promise<void> {
  ui.device.hidden = false;
  showDevice(app, await app.client.registerDevice());
}

function showWallet(app: App, wallet: StoredWallet, focus: boolean): void {
  ui.walletAddress.textContent = wallet.address;
  ui.walletPath.textContent = wallet.derivationPath;
  ui.walletNetwork.textContent = wallet.network;
  ui.walletName.textContent = wallet.wallet;
  ui.walletDeviceGroup.textContent = wallet.deviceGroup;
  ui.walletKey.textContent = wallet.mpcKey;
  ui.createWallet.hidden = true;
  reveal(ui.wallet, focus);
  reveal(ui.sign, false);
  reveal(ui.exportSection, false);
  reveal(ui.backup, false);
  reveal(ui.devices, false);
  showDeviceState(app);
}

/** What the page remembers of a wallet `createWallet` made. */
function toStored(deviceName: string, created: CreatedWallet): StoredWallet {
  const mpcKey = created.address.mpcKeys[0];
  if (mpcKey === undefined) throw new Error('the first address names no key');
  return {
    device: deviceName,
    wallet: created.wallet.name,
    deviceGroup: created.wallet.deviceGroup,
    mpcKey,
    address: created.address.address,
    derivationPath: created.address.derivationPath,
    network: created.address.network,
  };
}

/**
 * RegisterDevice after the device exists (onboarding, a retry, a page load). A failure is shown in
 * the device section with a button to try again; resolves whether it registered.
 */
async function registerOrOfferRetry(app: App): Promise<boolean> {
  try {
    await register(app);
    return true;
  } catch (error) {
    showError(ui.deviceError, error);
    ui.registerRetry.hidden = false;
    setStatus(`Registration failed: ${describe(error)}`, 'error');
    return false;
  }
}

/** After registration: the wallet if this browser remembers one, otherwise its creation. */
function afterRegistration(app: App, focus: boolean, note = ''): void {
  if (app.wallet) {
    showWallet(app, app.wallet, focus);
    if (app.deviceState === 'REVOKED') {
      setStatus(`${note}This device is revoked: the server refuses its requests.`, 'ready');
      return;
    }
    setStatus(`${note}Ready.`, 'ready');
    loadDevicesQuietly(app);
  } else {
    setStatus(`${note}This browser is a registered device. Next: create a wallet.`, 'ready');
    reveal(ui.createWallet, focus);
  }
}

function wireOnboarding(app: App): void {
  ui.onboardingForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const passcode = ui.onboardingPasscode.value;
    const confirm = ui.onboardingConfirm.value;
    ui.onboardingPasscode.value = '';
    ui.onboardingConfirm.value = '';
    if (passcode !== confirm) {
      showProblem(ui.onboardingError, 'The two passcodes differ: type the same passcode twice.');
      ui.onboardingPasscode.focus();
      return;
    }
    const busyText = 'Creating this device’s keys…';
    void run(app, ui.onboardingForm, ui.onboardingError, busyText, async () => {
      const created = await app.device.bootstrap(passcode);
      ui.onboarding.hidden = true;
      setStatus('Registering this device with the server…', 'busy');
      if (await registerOrOfferRetry(app)) {
        const note = created ? '' : 'This browser had a device already; its passcode is unchanged. ';
        afterRegistration(app, true, note);
      }
    }).then((ok) => {
      // Focus where the user can go on: the passcode again, or the registration's retry.
      if (!ok) ui.onboardingPasscode.focus();
      else if (!ui.registerRetry.hidden) ui.registerRetry.focus();
    });
  });

  ui.registerRetry.addEventListener('click', () => {
    const busyText = 'Registering this device with the server…';
    void run(app, undefined, ui.deviceError, busyText, async () => {
      await register(app);
      afterRegistration(app, true);
    });
  });
}

function wireCreateWallet(app: App): void {
  ui.createWalletForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const passcode = ui.createWalletPasscode.value;
    ui.createWalletPasscode.value = '';
    const busyText = 'Creating the wallet: this device and the server generate its key together…';
    void run(app, ui.createWalletForm, ui.createWalletError, busyText, async () => {
      const deviceName = app.deviceName;
      if (deviceName === undefined) throw new Error('register this device first');
      const created = await app.client.createWallet({ passcode });
      const wallet = toStored(deviceName, created);
      app.wallet = wallet;
      showWallet(app, wallet, true);
      loadDevicesQuietly(app);
      try {
        saveWallet(wallet);
        setStatus('Wallet created. Its first address is below.', 'ready');
      } catch (error) {
        const why = describe(error);
        setStatus(`Wallet created, but this browser will not remember it: ${why}`, 'ready');
      }
    }).then((ok) => {
      if (!ok) ui.createWalletPasscode.focus();
    });
  });
}

// --- signing --------------------------------------------------------------------------------------

type SignKind = 'message' | 'typed-data' | 'transaction';

/** Each kind: its fields, its button's text, the heading of its result and the status once done. */
const SIGN_KINDS: Record<SignKind, { fields: HTMLElement; button: string; title: string; done: string }> = {
  message: {
    fields: ui.signKindMessage,
    button: 'Sign message',
    title: 'Signed message',
    done: 'Message signed.',
  },
  'typed-data': {
    fields: ui.signKindTypedData,
    button: 'Sign typed data',
    title: 'Signed typed data',
    done: 'Typed data signed.',
  },
  transaction: {
    fields: ui.signKindTransaction,
    button: 'Sign transaction',
    title: 'Signed transaction (not broadcast)',
    done: 'Transaction signed. It was not broadcast.',
  },
};

function selectedKind(): SignKind {
  const value = ui.signForm.querySelector<HTMLInputElement>('input[name="kind"]:checked')?.value;
  return value === 'typed-data' || value === 'transaction' ? value : 'message';
}

/** Shows the fields of the chosen kind (the chain id for typed data and transactions). */
function showSignKind(): void {
  const kind = selectedKind();
  for (const [each, { fields }] of Object.entries(SIGN_KINDS)) fields.hidden = each !== kind;
  ui.signChainField.hidden = kind === 'message';
  ui.signSubmit.textContent = SIGN_KINDS[kind].button;
  // An error was about the kind before; a result shown stays, headed with what it is.
  clearError(ui.signError);
}

/** Shows the fee fields of the transaction's type: EIP-1559's two, or legacy's gas price. */
function showTransactionType(): void {
  const legacy = ui.txType.value === 'legacy';
  ui.txFeesEip1559.hidden = legacy;
  ui.txFeesLegacy.hidden = !legacy;
}

/** A form field the page cannot read, named for people; the field gets the focus. */
class FieldProblem extends Error {
  constructor(
    readonly field: HTMLElement,
    message: string,
  ) {
    super(message);
  }
}

/** An amount field: ETH or gwei as typed, and the exact wei shown under it. */
interface AmountField {
  input: HTMLInputElement;
  wei: HTMLOutputElement;
  label: string;
  decimals: number;
}

const AMOUNTS = {
  value: { input: ui.txValue, wei: ui.txValueWei, label: 'Value', decimals: ETH_DECIMALS },
  maxFee: { input: ui.txMaxFee, wei: ui.txMaxFeeWei, label: 'Max fee per gas', decimals: GWEI_DECIMALS },
  priorityFee: {
    input: ui.txPriorityFee,
    wei: ui.txPriorityFeeWei,
    label: 'Max priority fee per gas',
    decimals: GWEI_DECIMALS,
  },
  gasPrice: { input: ui.txGasPrice, wei: ui.txGasPriceWei, label: 'Gas price', decimals: GWEI_DECIMALS },
} satisfies Record<string, AmountField>;

function amount(field: AmountField): bigint {
  try {
    return toWei(field.input.value, field.decimals);
  } catch (error) {
    throw new FieldProblem(field.input, `${field.label}: ${describeProblem(error)}.`);
  }
}

function showWei(field: AmountField): void {
  try {
    field.wei.textContent = `= ${toWei(field.input.value, field.decimals)} wei`;
  } catch (error) {
    field.wei.textContent = `Not an amount yet: ${describeProblem(error)}.`;
  }
}

function describeProblem(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function wholeNumber(input: HTMLInputElement, label: string): bigint {
  const text = input.value.trim();
  if (!/^\d+$/.test(text)) throw new FieldProblem(input, `${label}: write a whole number, in decimal digits.`);
  return BigInt(text);
}

function isHex(text: string): text is `0x${string}` {
  return text.startsWith('0x');
}

/** An optional `0x` field: undefined when empty. The SDK checks the digits and the length. */
function optionalHex(input: HTMLInputElement | HTMLTextAreaElement, label: string): `0x${string}` | undefined {
  const text = input.value.trim();
  if (text === '') return undefined;
  if (!isHex(text)) throw new FieldProblem(input, `${label}: write it as 0x and hex digits, or leave it empty.`);
  return text;
}

/** The transaction form as the SDK takes it: quantities as bigint, wei exact. */
function readTransaction(): TransactionRequest {
  const legacy = ui.txType.value === 'legacy';
  const transaction: TransactionRequest = {
    type: legacy ? 'legacy' : 'eip1559',
    chainId: wholeNumber(ui.signChain, 'Chain id'),
    nonce: wholeNumber(ui.txNonce, 'Nonce'),
    gas: wholeNumber(ui.txGas, 'Gas limit'),
    value: amount(AMOUNTS.value),
  };
  if (legacy) {
    transaction.gasPrice = amount(AMOUNTS.gasPrice);
  } else {
    transaction.maxFeePerGas = amount(AMOUNTS.maxFee);
    transaction.maxPriorityFeePerGas = amount(AMOUNTS.priorityFee);
  }
  const to = optionalHex(ui.txTo, 'To');
  if (to !== undefined) transaction.to = to;
  const data = optionalHex(ui.txData, 'Data');
  if (data !== undefined) transaction.data = data;
  return transaction;
}

/** One line of a result: a label and its value (text, or elements). */
interface Row {
  label: string;
  value: string | Node[];
  testid?: string;
}

function signatureRows(signature: Signature): Row[] {
  const { signature: bytes, r, s, v } = signature.signedPayload;
  return [
    { label: 'Signature (65 bytes)', value: bytes, testid: 'signature' },
    { label: 'r', value: r, testid: 'signature-r' },
    { label: 's', value: s, testid: 'signature-s' },
    { label: 'v', value: String(v), testid: 'signature-v' },
  ];
}

/** The raw signed transaction: a monospace block that selects whole, and a copy button. */
function rawTransactionRow(raw: string): Row {
  const block = document.createElement('pre');
  block.className = 'raw';
  block.dataset['testid'] = 'tx-raw';
  block.textContent = raw;
  return { label: 'Raw signed transaction', value: [block, copyButton('Copy raw transaction', raw)] };
}

function showSigned(kind: SignKind, rows: Row[]): void {
  ui.signResultTitle.textContent = SIGN_KINDS[kind].title;
  const lines = rows.flatMap(({ label, value, testid }) => {
    const term = document.createElement('dt');
    term.textContent = label;
    const description = document.createElement('dd');
    description.className = 'long';
    if (testid !== undefined) description.dataset['testid'] = testid;
    if (typeof value === 'string') description.textContent = value;
    else description.append(...value);
    return [term, description];
  });
  ui.signRows.replaceChildren(...lines);
  ui.signResult.hidden = false;
}

/** What a submission of the form signs: its SDK call, resolving with the rows to show. */
type Signing = (client: WaasClient, mpcKey: string, unlock: Unlock) => Promise<Row[]>;

/** The chosen kind's fields, read now (a FieldProblem if the page cannot read one). */
function readSigning(kind: SignKind): Signing {
  switch (kind) {
    case 'message': {
      const message = ui.signMessage.value;
      return async (client, mpcKey, unlock) => {
        const signature = await client.signMessage(mpcKey, message, unlock);
        return [{ label: 'Message', value: message, testid: 'signed-message' }, ...signatureRows(signature)];
      };
    }
    case 'typed-data': {
      // The JSON text as typed: the SDK parses it (numbers of any size stay exact) and says
      // what is wrong with it.
      const typedData = ui.typedData.value;
      return async (client, mpcKey, unlock) => {
        const signature = await client.signTypedData(mpcKey, typedData, unlock);
        const digest = { label: 'Digest (EIP-712)', value: signature.payload, testid: 'typed-digest' };
        return [digest, ...signatureRows(signature)];
      };
    }
    case 'transaction': {
      const transaction = readTransaction();
      return async (client, mpcKey, unlock) => {
        const signed = await client.signTransaction(mpcKey, transaction, unlock);
        return [
          rawTransactionRow(signed.rawTransaction),
          { label: 'Hash', value: signed.hash, testid: 'tx-hash' },
          ...signatureRows(signed.signature),
        ];
      };
    }
  }
}

/** The typed data's example again, for the chain id in the form (Sepolia if it is not one). */
function resetTypedData(): void {
  ui.typedData.value = mailExample(chainIdValue(ui.signChain.value) ?? SEPOLIA);
}

function wireSign(app: App): void {
  for (const radio of ui.signForm.querySelectorAll<HTMLInputElement>('input[name="kind"]')) {
    radio.addEventListener('change', showSignKind);
  }
  showSignKind();
  ui.txType.addEventListener('change', showTransactionType);
  showTransactionType();
  for (const field of Object.values(AMOUNTS)) {
    field.input.addEventListener('input', () => showWei(field));
    showWei(field);
  }
  resetTypedData();
  ui.typedDataReset.addEventListener('click', resetTypedData);
  ui.signChain.addEventListener('input', () => {
    const chainId = chainIdValue(ui.signChain.value);
    const rewritten = chainId === undefined ? undefined : withChainId(ui.typedData.value, chainId);
    if (rewritten !== undefined) ui.typedData.value = rewritten;
  });

  ui.signForm.addEventListener('submit', (event) => {
    event.preventDefault();
    ui.signResult.hidden = true;
    const kind = selectedKind();
    let signing: Signing;
    try {
      signing = readSigning(kind);
    } catch (error) {
      if (!(error instanceof FieldProblem)) throw error;
      // Found by the page itself: nothing was asked of the SDK, and the passcode stays typed.
      showProblem(ui.signError, error.message);
      setStatus(`Not signed: ${error.message}`, 'error');
      error.field.focus();
      return;
    }
    const passcode = ui.signPasscode.value;
    ui.signPasscode.value = '';
    const busyText = 'Signing: this device and the server sign together…';
    void run(app, ui.signForm, ui.signError, busyText, async () => {
      const wallet = app.wallet;
      if (!wallet) throw new Error('create a wallet first');
      showSigned(kind, await signing(app.client, wallet.mpcKey, { passcode }));
      setStatus(SIGN_KINDS[kind].done, 'ready');
    }).then((ok) => {
      if (!ok) ui.signPasscode.focus();
    });
  });
}

/** Removes revealed keys from the page (the DOM, not only the view). */
function hideExportedKeys(app: App): void {
  if (app.exportTimer !== undefined) window.clearInterval(app.exportTimer);
  app.exportTimer = undefined;
  ui.exportKeys.replaceChildren();
  ui.exportXprv.textContent = '';
  ui.exportXprvCopy.replaceChildren();
  ui.exportCountdown.textContent = '';
  ui.exportResult.hidden = true;
}

/** A copy button for one secret; says when it copied, or that the browser refused. */
function copyButton(label: string, secret: string): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.addEventListener('click', () => {
    navigator.clipboard.writeText(secret).then(
      () => (button.textContent = 'Copied'),
      () => (button.textContent = 'Copy failed: select the text instead'),
    );
  });
  return button;
}

function showExportedKeys(app: App, exported: ExportedKeys): void {
  hideExportedKeys(app);
  for (const key of exported.keys) {
    const item = document.createElement('li');
    item.dataset['testid'] = 'export-key';
    const heading = document.createElement('p');
    heading.textContent = `${key.address} (path ${key.derivationPath})`;
    const secret = document.createElement('p');
    secret.className = 'long secret';
    secret.dataset['testid'] = 'export-private-key';
    secret.textContent = key.privateKey;
    item.append(heading, secret, copyButton('Copy private key', key.privateKey));
    ui.exportKeys.append(item);
  }
  ui.exportXprv.textContent = exported.xprv;
  ui.exportXprvCopy.replaceChildren(copyButton('Copy xprv', exported.xprv));
  ui.exportResult.hidden = false;
  let left = EXPORT_SHOWN_SECONDS;
  const tick = (): void => {
    ui.exportCountdown.textContent = `Hidden again in ${left} s.`;
    if (left <= 0) hideExportedKeys(app);
    left -= 1;
  };
  tick();
  app.exportTimer = window.setInterval(tick, 1000);
}

function wireExport(app: App): void {
  ui.exportForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const passcode = ui.exportPasscode.value;
    ui.exportPasscode.value = '';
    if (!ui.exportUnderstood.checked) {
      showProblem(ui.exportError, 'Tick the box first: the exported key is the whole wallet.');
      ui.exportUnderstood.focus();
      return;
    }
    const busyText = 'Logging in at the server, then combining the keys in this browser…';
    void run(app, ui.exportForm, ui.exportError, busyText, async () => {
      const wallet = app.wallet;
      if (!wallet) throw new Error('create a wallet first');
      const group = await app.client.getDeviceGroup(wallet.deviceGroup);
      if (group.mpcKeyExportMetadata === undefined) throw new Error('the server sent no export metadata');
      const exported = await app.client.exportPrivateKeys(group.mpcKeyExportMetadata, { passcode });
      ui.exportUnderstood.checked = false;
      showExportedKeys(app, exported);
      setStatus(`Private keys shown for ${EXPORT_SHOWN_SECONDS} s.`, 'ready');
    }).then((ok) => {
      if (!ok) ui.exportPasscode.focus();
    });
  });
  ui.exportHide.addEventListener('click', () => {
    hideExportedKeys(app);
    setStatus('Private keys hidden.', 'ready');
  });
}

// --- backup ---------------------------------------------------------------------------------------

/** Removes the backup string from the page (the DOM and memory, not only the view). */
function hideBackup(app: App): void {
  app.backupString = undefined;
  ui.backupString.textContent = '';
  ui.backupOrigin.replaceChildren();
  delete ui.backupOrigin.dataset['code'];
  ui.backupCopy.textContent = 'Copy';
  ui.backupResult.hidden = true;
}

/**
 * Shows the string; `made` says whether it is new, with the code of why (the device held none to
 * show again), since a new backup replaces an older string the user may have saved.
 */
function showBackup(app: App, backup: string, made: { code: string } | undefined): void {
  hideBackup(app);
  app.backupString = backup;
  if (made) {
    const code = document.createElement('code');
    code.textContent = made.code;
    ui.backupOrigin.append(
      'This device held no backup to show again (',
      code,
      '), so this one is new, made just now. It replaces any backup made before: an older string stops working once the server’s retention for replaced backups (7 days by default) has passed.',
    );
    ui.backupOrigin.dataset['code'] = made.code;
  } else {
    ui.backupOrigin.textContent =
      'This device still held this backup (not yet confirmed saved), so no new backup was made.';
  }
  ui.backupString.textContent = backup;
  ui.backupDone.textContent = '';
  ui.backupResult.hidden = false;
}

/** The wallet id, for the download's file name: the last segment of `pools/p/mpcWallets/{id}`. */
function walletId(wallet: StoredWallet): string {
  return wallet.wallet.slice(wallet.wallet.lastIndexOf('/') + 1);
}

/**
 * Saves the backup as a text file through a blob: URL that lives only for the click, so the
 * string never enters the page's own URL or history.
 */
function downloadBackup(wallet: StoredWallet, backup: string): void {
  const text =
    `waas-sdk backup of the wallet ${wallet.wallet}: with its passcode it restores the wallet on a new browser. Keep it private.\n` +
    `${backup}\n`;
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = `waas-backup-${walletId(wallet)}.txt`;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // After the click has handed the blob to the download; revoking at once can cancel it.
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function wireBackup(app: App): void {
  ui.backupForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const passcode = ui.backupPasscode.value;
    ui.backupPasscode.value = '';
    hideBackup(app);
    const busyText = 'Looking for a backup this device still holds…';
    void run(app, ui.backupForm, ui.backupError, busyText, async () => {
      const wallet = app.wallet;
      if (!wallet) throw new Error('create a wallet first');
      let backup: string;
      let made: { code: string } | undefined;
      try {
        // A backup made earlier and not yet confirmed saved is offered again: a new one would
        // replace it at the server, and the string the user may already hold would stop working.
        backup = await app.client.exportDeviceBackup(wallet.deviceGroup, { passcode });
        made = undefined;
      } catch (error) {
        if (!(error instanceof WaasError && error.code === 'NO_BACKUP')) throw error;
        setStatus('Making a backup with the server: a new key, then a check that it opens…', 'busy');
        backup = await app.client.backup(wallet.deviceGroup, passcode);
        made = { code: error.code };
      }
      showBackup(app, backup, made);
      setStatus('Backup ready: save it, then press "I have saved it".', 'ready');
    }).then((ok) => {
      if (!ok) ui.backupPasscode.focus();
      else ui.backupCopy.focus();
    });
  });

  ui.backupCopy.addEventListener('click', () => {
    const backup = app.backupString;
    if (backup === undefined) return;
    navigator.clipboard.writeText(backup).then(
      () => (ui.backupCopy.textContent = 'Copied'),
      () => (ui.backupCopy.textContent = 'Copy failed: select the text instead'),
    );
  });

  ui.backupDownload.addEventListener('click', () => {
    if (app.wallet && app.backupString !== undefined) downloadBackup(app.wallet, app.backupString);
  });

  ui.backupSaved.addEventListener('click', () => {
    const busyText = 'This device is forgetting its copy of the backup…';
    void run(app, undefined, ui.backupError, busyText, async () => {
      const wallet = app.wallet;
      if (!wallet) throw new Error('create a wallet first');
      await app.client.confirmBackupSaved(wallet.deviceGroup);
      hideBackup(app);
      if (wallet.needsBackup === true) {
        // The recovered wallet has a backup of its own now: the reminder goes.
        const { needsBackup: _, ...saved } = wallet;
        app.wallet = saved;
        try {
          saveWallet(saved);
        } catch {
          // Only the reminder would come back after a reload; the backup itself is saved.
        }
      }
      ui.backupDone.textContent =
        'This device has forgotten its copy of the backup. The one you saved is now the only copy.';
      showDeviceState(app);
      setStatus('Backup saved; this device forgot its copy.', 'ready');
    });
  });
}

// --- devices --------------------------------------------------------------------------------------

/**
 * The state the page shows for `name`: this device's from RegisterDevice (the freshest, and the
 * only one a revoked device can still learn), the others' from GetDeviceGroup.
 */
function stateOf(app: App, name: string): string {
  if (name === app.deviceName) return app.deviceState ?? 'unknown';
  return app.groupStates.get(name) ?? (app.revokedHere.has(name) ? 'REVOKED' : 'unknown');
}

/** The list: this device first (marked), then the group's others, each with what can be done. */
function renderDevices(app: App): void {
  const own = app.deviceName;
  const names = own === undefined ? [...app.groupDevices] : [own, ...app.groupDevices.filter((n) => n !== own)];
  const ownActive = app.deviceState === 'ACTIVE';
  const items = names.map((name) => {
    const item = document.createElement('li');
    item.dataset['testid'] = 'device-item';
    item.dataset['device'] = name;
    const state = stateOf(app, name);
    item.dataset['state'] = state;
    const label = document.createElement('span');
    label.className = 'long';
    label.textContent = name;
    const stateText = document.createElement('span');
    stateText.dataset['testid'] = 'device-item-state';
    stateText.textContent = state;
    item.append(label, ': ', stateText);
    if (name === own) {
      const mark = document.createElement('strong');
      mark.dataset['testid'] = 'device-item-self';
      mark.textContent = 'this device';
      item.append(' (', mark, ')');
    } else if (ownActive && state !== 'REVOKED') {
      // An active device, or one of unknown state (an older server): revoking it may help.
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Revoke';
      button.setAttribute('aria-label', `Revoke ${name}`);
      button.dataset['testid'] = 'device-item-revoke';
      button.disabled = app.busy;
      button.addEventListener('click', () => askRevokeOther(app, name));
      item.append(' ', button);
    }
    return item;
  });
  ui.devicesList.replaceChildren(...items);
  renderEvents(app);
}

/** What each event says, for people. */
const EVENT_TEXT: Record<DeviceGroupEvent['type'], string> = {
  DEVICE_ADDED: 'Device added (recovered with a backup)',
  DEVICE_REVOKED: 'Device revoked',
};

/** The group's events, oldest first, each with its time; hidden if the server lists none. */
function renderEvents(app: App): void {
  const events = app.events;
  ui.deviceEventsBox.hidden = events === undefined;
  if (events === undefined) return;
  ui.deviceEventsEmpty.hidden = events.length > 0;
  const items = events.map((event) => {
    const item = document.createElement('li');
    item.dataset['testid'] = 'device-event';
    item.dataset['type'] = event.type;
    item.dataset['device'] = event.device;
    const time = document.createElement('time');
    time.dateTime = event.time;
    const when = new Date(event.time);
    time.textContent = Number.isNaN(when.getTime()) ? event.time : when.toLocaleString();
    const device = document.createElement('span');
    device.className = 'long';
    device.textContent = event.device;
    item.append(time, `: ${EVENT_TEXT[event.type] ?? event.type} `, device);
    if (event.device === app.deviceName) item.append(' (this device)');
    return item;
  });
  ui.deviceEvents.replaceChildren(...items);
}

/**
 * This device's state (RegisterDevice) and the group's devices (GetDeviceGroup). A revoked device
 * may not read the group any more: it keeps the last list it had.
 */
async function refreshDevices(app: App): Promise<void> {
  const wallet = app.wallet;
  if (!wallet) throw new Error('create a wallet first');
  showDevice(app, await app.client.registerDevice());
  if (app.deviceState === 'ACTIVE') {
    const group = await app.client.getDeviceGroup(wallet.deviceGroup);
    app.groupDevices = group.devices;
    app.groupStates = new Map(group.deviceStates.map(({ device, state }) => [device, state]));
    app.events = await listEvents(app, wallet.deviceGroup);
  }
  renderDevices(app);
}

/**
 * The group's events; undefined from a server without them (its NOT_FOUND for the route), so
 * the list simply does not show. Other failures reject, like the rest of the refresh.
 */
async function listEvents(app: App, deviceGroup: string): Promise<DeviceGroupEvent[] | undefined> {
  try {
    return await app.client.listDeviceGroupEvents(deviceGroup);
  } catch (error) {
    if (error instanceof WaasError && error.code === 'SERVER' && error.message.includes('NOT_FOUND')) return undefined;
    throw error;
  }
}

/** The list at page load, without taking over the status line; a failure shows in the section. */
function loadDevicesQuietly(app: App): void {
  refreshDevices(app).then(
    () => clearError(ui.devicesError),
    (error: unknown) => showError(ui.devicesError, error),
  );
}

function askRevokeOther(app: App, name: string): void {
  app.revokeTarget = name;
  ui.revokeOtherLegend.textContent = `Revoke ${name}`;
  clearError(ui.revokeOtherError);
  ui.revokeOtherForm.hidden = false;
  ui.revokeOtherPasscode.focus();
}

function closeRevokeOther(app: App): void {
  app.revokeTarget = undefined;
  ui.revokeOtherPasscode.value = '';
  ui.revokeOtherForm.hidden = true;
}

function wireDevices(app: App): void {
  ui.devicesRefresh.addEventListener('click', () => {
    const busyText = 'Asking the server for this wallet’s devices…';
    void run(app, undefined, ui.devicesError, busyText, async () => {
      await refreshDevices(app);
      setStatus('Device list refreshed.', 'ready');
    });
  });

  ui.revokeOtherCancel.addEventListener('click', () => closeRevokeOther(app));

  ui.revokeOtherForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const passcode = ui.revokeOtherPasscode.value;
    ui.revokeOtherPasscode.value = '';
    const target = app.revokeTarget;
    if (target === undefined) return;
    const busyText = `Revoking ${target}: a passcode login at the server, then the revocation…`;
    void run(app, ui.revokeOtherForm, ui.revokeOtherError, busyText, async () => {
      const wallet = app.wallet;
      if (!wallet) throw new Error('create a wallet first');
      // The step-up: the server wants a fresh passcode login of a group both devices are in.
      await app.client.revokeDevice(target, { deviceGroup: wallet.deviceGroup, passcode });
      app.revokedHere.add(target);
      closeRevokeOther(app);
      // The server's word on every device, and the revocation in the events. The revocation is
      // done either way: a failed refresh shows in the list's own error, not as the revocation's.
      try {
        await refreshDevices(app);
        clearError(ui.devicesError);
      } catch (error) {
        renderDevices(app);
        showError(ui.devicesError, error);
      }
      setStatus(`${target} is revoked: it can no longer sign for this wallet.`, 'ready');
    }).then((ok) => {
      if (!ok) ui.revokeOtherPasscode.focus();
    });
  });

  ui.revokeSelfForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!ui.revokeSelfUnderstood.checked) {
      showProblem(ui.revokeSelfError, 'Tick the box first: this device will never sign for this wallet again.');
      ui.revokeSelfUnderstood.focus();
      return;
    }
    const busyText = 'Revoking this device…';
    void run(app, ui.revokeSelfForm, ui.revokeSelfError, busyText, async () => {
      await app.client.revokeDevice();
      ui.revokeSelfUnderstood.checked = false;
      // The state shown is the server's answer, not an assumption.
      showDevice(app, await app.client.registerDevice());
      setStatus('This device is revoked: the server refuses its requests from now on.', 'ready');
    }).then((ok) => {
      if (ok) ui.device.querySelector<HTMLElement>('h2')?.focus();
    });
  });
}

// --- start ----------------------------------------------------------------------------------------

async function showServerVersion(): Promise<void> {
  try {
    const server = await fetchServerVersion();
    show('server-version', `${server.name} ${server.version} (API ${server.apiVersion})`, 'ok');
  } catch (error) {
    show('server-version', describe(error), 'error');
  }
}

/** Loads the SDK and opens this profile's device; undefined (failure shown) if it cannot. */
async function start(): Promise<App | undefined> {
  try {
    await initAsync();
    show('sdk-version', version(), 'ok');
  } catch (error) {
    show('sdk-version', describe(error), 'error');
    showError(ui.appError, error);
    setStatus('The SDK could not load.', 'error');
    return undefined;
  }
  try {
    // One after the other: both open the same IndexedDB store, the first may create it.
    const device = await WaasDevice.open(null, PASSCODE_POLICY);
    const client = await WaasClient.connect('');
    return {
      device,
      client,
      deviceName: undefined,
      wallet: undefined,
      busy: false,
      exportTimer: undefined,
      deviceState: undefined,
      backupString: undefined,
      groupDevices: [],
      groupStates: new Map(),
      revokedHere: new Set(),
      events: undefined,
      revokeTarget: undefined,
    };
  } catch (error) {
    showError(ui.appError, error);
    setStatus('This browser cannot hold a device.', 'error');
    return undefined;
  }
}

async function main(): Promise<void> {
  const serverVersion = showServerVersion();
  const app = await start();
  if (app) {
    wireOnboarding(app);
    wireCreateWallet(app);
    wireSign(app);
    wireExport(app);
    wireBackup(app);
    wireDevices(app);
    await resume(app);
  }
  await serverVersion;
}

/** The first screen: onboarding for a new profile, otherwise the device and its wallet. */
async function resume(app: App): Promise<void> {
  let bootstrapped: boolean;
  try {
    bootstrapped = await app.device.isBootstrapped();
  } catch (error) {
    showError(ui.appError, error);
    setStatus('This browser’s device could not be read.', 'error');
    return;
  }
  const stored = loadWallet();
  if (!bootstrapped) {
    // A remembered wallet without the device that holds its key share is of no use here.
    if (stored) forgetWallet();
    setStatus('This browser has no device yet. Choose a passcode to create one.', 'ready');
    reveal(ui.onboarding, false);
    return;
  }
  app.wallet = stored;
  ui.device.hidden = false;
  setStatus('Checking this device with the server…', 'busy');
  if (!(await registerOrOfferRetry(app))) {
    // The server is unreachable or refused: still show what this browser remembers.
    if (app.wallet) showWallet(app, app.wallet, false);
    return;
  }
  if (stored && stored.device !== app.deviceName) {
    // The remembered wallet belongs to an earlier device of this browser (its storage was reset).
    forgetWallet();
    app.wallet = undefined;
  }
  afterRegistration(app, false);
}

await main();
