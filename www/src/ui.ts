// What both pages of the demo (the wallet, /recover) show the same way: elements by id, and
// errors as a stable code plus a message for people.
import { WaasError } from 'waas-sdk';

import { ApiError } from './api';

/** The passcode policy the pages state (and the SDK's default): at least 6 digits. */
export const PASSCODE_POLICY = { minPasscodeLength: 6, digitsOnly: true };

/** The element `#id`, which must be a `type`: a page whose markup lost it fails loudly at load. */
export function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`missing #${id}`);
  return element;
}

/** An error as the page shows it: a stable code and a message for people. */
export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof WaasError || error instanceof ApiError) {
    return { code: error.code, message: error.message };
  }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) };
}

export function describe(error: unknown): string {
  const { code, message } = describeError(error);
  return `${code}: ${message}`;
}

/** Shows `error` in `element` (a role="alert" region) as "CODE: message". */
export function showError(element: HTMLElement, error: unknown): void {
  const { code, message } = describeError(error);
  const codeElement = document.createElement('code');
  codeElement.textContent = code;
  element.replaceChildren(codeElement, `: ${message}`);
  element.dataset['code'] = code;
}

/** Shows a problem the page found itself (no SDK call was made), without a code. */
export function showProblem(element: HTMLElement, message: string): void {
  element.textContent = message;
  delete element.dataset['code'];
}

export function clearError(element: HTMLElement): void {
  element.replaceChildren();
  delete element.dataset['code'];
}
