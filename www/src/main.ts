import { WaasError, initAsync, version } from 'waas-sdk';

import { fetchServerVersion } from './api';

function show(id: string, text: string, state: 'ok' | 'error'): void {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  element.textContent = text;
  element.dataset['state'] = state;
}

function describe(error: unknown): string {
  if (error instanceof WaasError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

async function showSdkVersion(): Promise<void> {
  try {
    await initAsync();
    show('sdk-version', version(), 'ok');
  } catch (error) {
    show('sdk-version', describe(error), 'error');
  }
}

async function showServerVersion(): Promise<void> {
  try {
    const server = await fetchServerVersion();
    show('server-version', `${server.name} ${server.version} (API ${server.apiVersion})`, 'ok');
  } catch (error) {
    show('server-version', describe(error), 'error');
  }
}

await Promise.all([showSdkVersion(), showServerVersion()]);
