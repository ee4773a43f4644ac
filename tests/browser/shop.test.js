// The SDK on a shop's own page, on another origin than aftercart: it loads with
// Subresource Integrity, calls aftercart through CORS, honours Global Privacy Control,
// and never breaks the page when aftercart is down, silent or has nothing to show.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { isolatedContext, sri, startAftercart, startBoth, watchConsole } from './harness.js';

let server;
let browser;
let shop; // the shop's web server: another origin (localhost vs 127.0.0.1, another port)
let silent; // accepts connections and never answers
const held = [];
let integrity;

const ORDER = {
  placement: 'order_confirmation',
  channel: 'online',
  slots: 2,
  transaction: {
    total: 162.36, currency: 'USD',
    items: [{ sku: 'SNX-WH900-MID', category: 'electronics/audio', brand: 'Sonix', price: 149.99, quantity: 1 }],
  },
  customer: { ids: { email: 'casey@example.com' }, new_customer: false },
  context: { country: 'US', region: 'CA' },
  consent: { personalization: true, measurement: true },
};

/** The shop's confirmation page: the SDK pinned by SRI, then `render(options)`. */
function shopPage(options, sdkFrom = server) {
  return `<!doctype html><html lang="en"><title>Shop</title><body>
<h1>Thanks for your order</h1>
<div id="offers"></div>
<button id="host-button" onclick="this.textContent = 'still works'">Track my parcel</button>
<script src="${sdkFrom.base}/sdk/v1.js" integrity="${integrity}" crossorigin="anonymous"></script>
<script>
  window.started = performance.now();
  aftercart.render(Object.assign({ element: '#offers' }, ${JSON.stringify(options)})).then(function (n) {
    window.shown = n;
    window.took = performance.now() - window.started;
  });
</script></body></html>`;
}

function listen(srv) {
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv.address().port)));
}

before(async () => {
  [server, browser] = await startBoth();
  integrity = sri(Buffer.from(await (await fetch(`${server.base}/sdk/v1.js`)).arrayBuffer()));
  const pages = new Map();
  shop = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(pages.get(req.url) || 'not found');
  });
  shop.pages = pages;
  shop.port = await listen(shop);
  silent = net.createServer((socket) => held.push(socket));
  silent.port = await listen(silent);
});

after(async () => {
  for (const s of held) s.destroy();
  await Promise.all([
    new Promise((r) => shop?.close(r)),
    new Promise((r) => silent?.close(r)),
  ]);
  await browser?.close();
  await server?.stop();
});

let pageCount = 0;

/** Opens the shop page rendering `options` and waits for `render` to settle. */
async function openShop(options, contextOptions) {
  const id = `/confirm-${++pageCount}`;
  shop.pages.set(id, shopPage(options));
  const { context, requests } = await isolatedContext(browser, contextOptions);
  const page = await context.newPage();
  const seen = watchConsole(page);
  await page.goto(`http://localhost:${shop.port}${id}`);
  await page.waitForFunction(() => window.shown !== undefined, null, { timeout: 10000 });
  const shown = await page.evaluate(() => window.shown);
  const took = await page.evaluate(() => window.took);
  return { context, page, requests, console: seen, shown, took };
}

/** The page is intact: the element untouched, the host's own script still running. */
async function assertPageUnharmed(visit) {
  assert.equal(visit.shown, 0);
  assert.equal(await visit.page.innerHTML('#offers'), '', 'the element stays empty');
  assert.deepEqual(visit.console.pageErrors, [], 'no exception escapes');
  assert.equal(visit.console.warnings.length, 1, `one warning: ${JSON.stringify(visit.console.warnings)}`);
  assert.match(visit.console.warnings[0], /^aftercart: /);
  await visit.page.click('#host-button');
  assert.equal(await visit.page.textContent('#host-button'), 'still works');
}

test('from another origin: SRI-pinned, through CORS, e-mail hashed', async () => {
  const visit = await openShop({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-1' } });
  assert.equal(visit.shown, 2);
  assert.equal(await visit.page.locator('#offers article.aftercart-offer').count(), 2);
  assert.deepEqual(visit.console.warnings, []);
  assert.deepEqual(visit.console.pageErrors, []);
  const sent = JSON.parse(visit.requests.find((r) => r.url().endsWith('/v1/decisions')).postData());
  assert.equal(sent.customer.ids.email, undefined);
  assert.match(sent.customer.ids.email_sha256, /^[0-9a-f]{64}$/);
  assert.equal(sent.consent.personalization, true);
  await visit.context.close();
});

test('with a list of origins, only those pages may use aftercart', async () => {
  const listed = await startAftercart({ AFTERCART_CORS_ALLOWED_ORIGINS: `http://localhost:${shop.port}` });
  try {
    const id = `/listed-${++pageCount}`;
    shop.pages.set(id, shopPage({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-LISTED' } }, listed));
    const { context } = await isolatedContext(browser);
    const page = await context.newPage();
    const seen = watchConsole(page);
    await page.goto(`http://localhost:${shop.port}${id}`);
    await page.waitForFunction(() => window.shown !== undefined, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => window.shown), 2, 'a listed origin gets its offers');

    // The same page from an origin not on the list: the browser refuses the SDK.
    const stranger = await context.newPage();
    const strangerSeen = watchConsole(stranger);
    await stranger.goto(`http://127.0.0.1:${shop.port}${id}`);
    assert.equal(await stranger.evaluate(() => typeof window.aftercart), 'undefined');
    assert.ok(strangerSeen.errors.some((e) => /CORS|Access-Control-Allow-Origin/.test(e)), JSON.stringify(strangerSeen.errors));
    assert.deepEqual(seen.pageErrors, []);
    await context.close();
  } finally {
    await listed.stop();
  }
});

test('a script that does not match its integrity hash is refused by the browser', async () => {
  const saved = integrity;
  integrity = 'sha384-' + Buffer.alloc(48).toString('base64');
  try {
    const id = `/tampered-${++pageCount}`;
    shop.pages.set(id, shopPage({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-SRI' } }));
    const { context } = await isolatedContext(browser);
    const page = await context.newPage();
    const seen = watchConsole(page);
    await page.goto(`http://localhost:${shop.port}${id}`);
    assert.equal(await page.evaluate(() => typeof window.aftercart), 'undefined');
    assert.ok(seen.errors.some((e) => /integrity/i.test(e)), JSON.stringify(seen.errors));
    await context.close();
  } finally {
    integrity = saved;
  }
});

test('Global Privacy Control turns personalisation off', async () => {
  // A browser that sends Sec-GPC itself still passes aftercart's preflight.
  const visit = await openShop({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-GPC' } }, {
    extraHTTPHeaders: { 'Sec-GPC': '1' },
  });
  assert.equal(visit.shown, 2);
  assert.deepEqual(visit.console.warnings, []);
  await visit.context.close();

  const { context, requests } = await isolatedContext(browser);
  await context.addInitScript(() =>
    Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
  );
  const page = await context.newPage();
  const id = `/gpc-${++pageCount}`;
  shop.pages.set(id, shopPage({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-GPC-2' } }));
  await page.goto(`http://localhost:${shop.port}${id}`);
  await page.waitForFunction(() => window.shown !== undefined);
  const sent = JSON.parse(requests.find((r) => r.url().endsWith('/v1/decisions')).postData());
  assert.equal(sent.consent.personalization, false);
  assert.equal(sent.consent.measurement, true);
  await context.close();
});

test('aftercart down: the element stays empty, one warning, the page unharmed', async () => {
  const closed = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const visit = await openShop({
    ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-DOWN' }, endpoint: `http://127.0.0.1:${closed}`,
  });
  await assertPageUnharmed(visit);
  assert.match(visit.console.warnings[0], /could not be reached/);
  await visit.context.close();
});

test('aftercart silent: given up after the timeout, the page unharmed', async () => {
  const visit = await openShop({
    ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-SILENT' }, endpoint: `http://127.0.0.1:${silent.port}`,
  });
  await assertPageUnharmed(visit);
  assert.match(visit.console.warnings[0], /no answer within 1500 ms/);
  assert.ok(visit.took >= 1400 && visit.took < 4000, `gave up after ${visit.took} ms`);
  await visit.context.close();
});

test('no fill and bad input: the element stays empty, one warning each', async () => {
  const nothing = await openShop({
    ...ORDER, context: { country: 'NZ' }, transaction: { ...ORDER.transaction, id: 'SHOP-NOFILL' },
  });
  await assertPageUnharmed(nothing);
  assert.match(nothing.console.warnings[0], /no fill/);
  await nothing.context.close();

  const invalid = await openShop({ ...ORDER, channel: 'tv', transaction: { ...ORDER.transaction, id: 'SHOP-BAD' } });
  await assertPageUnharmed(invalid);
  assert.match(invalid.console.warnings[0], /answered 400 invalid_request/);
  await invalid.context.close();

  const noElement = await openShop({ ...ORDER, transaction: { ...ORDER.transaction, id: 'SHOP-NOEL' }, element: '#missing' });
  assert.equal(noElement.shown, 0);
  await noElement.context.close();
});
