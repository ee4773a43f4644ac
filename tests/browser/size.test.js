// The SDK stays small: what a page downloads, measured the way the README states it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';
import { ROOT } from './harness.js';

// Budgets, with room for fixes but not for a framework.
const SERVED_GZIP_BUDGET = 6 * 1024;
const MINIFIED_GZIP_BUDGET = 4 * 1024;

test('the SDK stays within its size budget', async (t) => {
  const source = readFileSync(path.join(ROOT, 'sdk/v1.js'));
  const served = gzipSync(source, { level: 9 }).length;
  const { code } = await minify(source.toString(), { ecma: 2017, compress: true, mangle: true });
  const minified = Buffer.byteLength(code);
  const minifiedGzip = gzipSync(code, { level: 9 }).length;
  t.diagnostic(`sdk/v1.js: ${source.length} bytes as served, ${served} gzipped; ` +
    `minified ${minified} bytes, ${minifiedGzip} gzipped`);
  assert.ok(served <= SERVED_GZIP_BUDGET, `${served} bytes gzipped`);
  assert.ok(minifiedGzip <= MINIFIED_GZIP_BUDGET, `${minifiedGzip} bytes minified and gzipped`);
  // No dependency: the file loads nothing else.
  assert.doesNotMatch(source.toString(), /\bimport\s*\(|\brequire\s*\(|importScripts|createElement\(['"]script/);
});
