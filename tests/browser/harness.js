// What the browser tests stand on: the real aftercart binary on a free loopback port
// with a fresh data folder and the shipped sample campaigns (and their stock seed),
// and headless Chromium (Debian's package) driven by playwright-core.
//
// Nothing leaves the machine: every browser request to a host other than loopback is
// answered here (creative images, advertisers' landing pages) or aborted.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ADMIN_KEY = 'browser-test-admin-key-0123456789';
// A stand-in for the creatives' images, whose CDNs do not exist: a 1200x628 banner.
const BANNER =
  '<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="628"><rect width="1200" height="628" fill="#dfe6ee"/>' +
  '<text x="600" y="330" font-family="sans-serif" font-size="56" text-anchor="middle" fill="#545d69">creative image</text></svg>';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** This process's environment without `AFTERCART_*`: the server refuses unknown ones,
 * and the tests must not depend on the shell's settings. */
function outsideSettings() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AFTERCART_')));
}

export const sha256 = (s) => createHash('sha256').update(s).digest('hex');
export const sri = (bytes) => `sha384-${createHash('sha384').update(bytes).digest('base64')}`;

/** Polls `fn` until it returns something truthy, or fails after `ms`. */
export async function eventually(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Starts `aftercart serve` (BROWSER_TESTS_BINARY, else the debug build) with `env` as its
 * only `AFTERCART_*` settings, and waits until it is ready.
 */
export async function startAftercart(env = {}) {
  const bin = process.env.BROWSER_TESTS_BINARY || path.join(ROOT, 'target/debug/aftercart');
  const data = mkdtempSync(path.join(os.tmpdir(), 'aftercart-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let stderr = '';
  const child = spawn(
    bin,
    ['serve', '--listen', `127.0.0.1:${port}`, '--campaigns', path.join(ROOT, 'campaigns'), '--data', data],
    { cwd: ROOT, env: { ...outsideSettings(), ...env, AFTERCART_ADMIN_KEY: ADMIN_KEY }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.on('data', (b) => (stderr += b));
  const exited = new Promise((resolve) => {
    child.once('exit', resolve);
    // A binary that cannot be started (not built, wrong path) fails at once, saying so.
    child.once('error', (e) => resolve(`an error: ${e.message}`));
  });
  const ready = async () => {
    try {
      return (await fetch(`${base}/readyz`)).ok;
    } catch {
      return false;
    }
  };
  let exit;
  exited.then((code) => (exit = code));
  try {
    await eventually(async () => exit !== undefined || (await ready()), 20000, 'aftercart to be ready');
    if (exit !== undefined) throw new Error(`aftercart (${bin}) exited with ${exit}:\n${stderr}`);
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
    throw e;
  }

  const admin = { Authorization: `Bearer ${ADMIN_KEY}` };
  return {
    base,
    port,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(data, { recursive: true, force: true });
    },
    /** Every record of the exposure log, as `GET /v1/log` shows them. */
    async log() {
      const all = [];
      for (let from = 0; ; ) {
        const r = await fetch(`${base}/v1/log?from=${from}&max=10000`, { headers: admin });
        if (!r.ok) throw new Error(`GET /v1/log: ${r.status} ${await r.text()}`);
        const lines = (await r.text()).split('\n').filter(Boolean);
        if (!lines.length) return all;
        all.push(...lines.map((l) => JSON.parse(l)));
        from = Number(r.headers.get('x-aftercart-next-offset'));
      }
    },
    /** Units of `sku` left online. */
    async stock(sku) {
      const r = await fetch(`${base}/v1/inventory/${sku}`, { headers: admin });
      const body = await r.json();
      return body.locations.find((l) => l.location === 'online').quantity;
    },
    async setStock(sku, quantity) {
      const r = await fetch(`${base}/v1/inventory`, {
        method: 'PUT',
        headers: { ...admin, 'Content-Type': 'application/json' },
        body: JSON.stringify([{ sku, location: 'online', quantity }]),
      });
      if (!r.ok) throw new Error(`PUT /v1/inventory: ${r.status}`);
    },
  };
}

/**
 * The server and the browser, started side by side. If either fails the other is
 * stopped before the error is thrown: a browser left running would keep the test
 * process alive forever.
 */
export async function startBoth(env) {
  const [server, browser] = await Promise.allSettled([startAftercart(env), launchBrowser()]);
  if (server.status === 'fulfilled' && browser.status === 'fulfilled') {
    return [server.value, browser.value];
  }
  if (server.status === 'fulfilled') await server.value.stop();
  if (browser.status === 'fulfilled') await browser.value.close();
  throw server.status === 'rejected' ? server.reason : browser.reason;
}

/** Headless Chromium: BROWSER_TESTS_CHROMIUM, else Debian's. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.BROWSER_TESTS_CHROMIUM || '/usr/bin/chromium',
    // No name is looked up outside this machine, whatever a page asks for.
    args: ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
  });
}

/**
 * A browser context that keeps everything on this machine: loopback passes, creative
 * images and advertisers' pages (`*.example`) are answered here, anything else fails.
 * Every request is recorded with its headers and body, to check what leaves the page.
 */
export async function isolatedContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 600 }, ...options });
  const requests = [];
  context.on('request', (req) => requests.push(req));
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
    if (url.hostname.endsWith('.example')) {
      if (url.hostname.startsWith('cdn.')) return route.fulfill({ contentType: 'image/svg+xml', body: BANNER });
      return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>Advertiser</title><p>Advertiser page' });
    }
    return route.abort();
  });
  return { context, requests };
}

/** Console messages and uncaught errors of a page. */
export function watchConsole(page) {
  const seen = { warnings: [], errors: [], pageErrors: [] };
  page.on('console', (m) => {
    if (m.type() === 'warning') seen.warnings.push(m.text());
    if (m.type() === 'error') seen.errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  return seen;
}
