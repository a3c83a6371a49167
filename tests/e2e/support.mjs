// Shared by the end-to-end suites: the real waas-server binary and Debian's Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

export const repoRoot = new URL('../..', import.meta.url).pathname;

/**
 * Starts waas-server on a free loopback port with a fresh SQLite database and master key.
 * @param {{ staticDir?: string, allowedOrigins?: string[] }} [options]
 */
export async function startServer({ staticDir, allowedOrigins = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'waas-e2e-'));
  const binary = process.env.WAAS_SERVER_BIN ?? join(repoRoot, 'target/debug/waas-server');
  const args = [
    '--listen',
    '127.0.0.1:0',
    '--database',
    join(dataDir, 'waas.db'),
    '--master-key-file',
    join(dataDir, 'master.key'),
    '--dev-api-key-file',
    join(dataDir, 'dev-api-key.json'),
  ];
  if (staticDir) args.push('--static-dir', staticDir);
  for (const origin of allowedOrigins) args.push('--allowed-origin', origin);
  const child = spawn(binary, args, {
    env: { ...process.env, WAAS_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const firstLine = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`waas-server exited early with ${code}`)));
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  const match = /^waas-server listening on (http:\/\/\S+)$/.exec(firstLine);
  if (!match) throw new Error(`unexpected first line from waas-server: ${firstLine}`);
  // http://127.0.0.1:PORT -> http://localhost:PORT: both are secure contexts, and WebAuthn wants a name.
  const url = match[1].replace('127.0.0.1', 'localhost');
  return {
    url,
    async stop() {
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Headless Debian Chromium, with the flags this machine needs (no downloads, no background traffic). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Collects what a page reports as broken: console errors and uncaught exceptions.
 * @param {import('playwright-core').Page} page
 */
export function collectPageErrors(page) {
  /** @type {string[]} */
  const errors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  return errors;
}
