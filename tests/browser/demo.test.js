// The demo order-confirmation page in a real browser, against the real server:
// offers appear, an impression counts only after its offer was at least half visible
// for one continuous second, clicks count without leaking the page's URL, a product can
// be bought (and stock goes down), a sold-out product says so, and the shopper's raw
// e-mail never leaves the browser.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  ROOT, eventually, isolatedContext, sha256, sleep, startBoth, watchConsole,
} from './harness.js';

const PRODUCT_SKU = 'SKU-VG-HC1';
const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');

let server;
let browser;

before(async () => {
  [server, browser] = await startBoth();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Opens /demo and waits for the SDK to finish; returns the page and what it sent. */
async function openDemo() {
  const { context, requests } = await isolatedContext(browser);
  const page = await context.newPage();
  const consoleSeen = watchConsole(page);
  await page.goto(`${server.base}/demo`);
  await page.waitForSelector('body[data-offers]');
  const order = await page.textContent('#order-id');
  const email = await page.evaluate(() => document.body.dataset.email);
  return { context, page, requests, console: consoleSeen, order, email };
}

/** The `decision` records of the order, by slot. */
async function decisionOf(order) {
  const records = await eventually(async () => {
    const r = (await server.log()).filter((x) => x.kind === 'decision' && x.transaction_id === order);
    return r.length ? r : null;
  }, 5000, 'the decision records');
  return { id: records[0].decision_id, slots: records.map((r) => ({ slot: r.slot, campaign: r.campaign_id })) };
}

async function records(kind, decisionId) {
  return (await server.log()).filter((x) => x.kind === kind && x.decision_id === decisionId);
}

/** Scrolls so that `fraction` of the element's height is inside the viewport (from below). */
async function showFraction(page, selector, fraction) {
  await page.evaluate(([sel, f]) => {
    const el = document.querySelector(sel);
    const top = el.getBoundingClientRect().top + window.scrollY;
    window.scrollTo(0, top + el.offsetHeight * f - window.innerHeight);
  }, [selector, fraction]);
}

test('offers count only once half visible for a continuous second; clicks and purchases work', async () => {
  const demo = await openDemo();
  const { page } = demo;
  assert.equal(await page.getAttribute('body', 'data-offers'), '3');
  const cards = page.locator('article.aftercart-offer');
  assert.equal(await cards.count(), 3);
  const product = page.locator('article.aftercart-offer:has(button.aftercart-buy)');
  assert.equal(await product.count(), 1, 'one product offer with a Buy button');
  const productSelector = 'article.aftercart-offer[data-slot="2"]';
  assert.equal(await page.locator(productSelector).count(), 1);

  // Accessible markup: headings, alt text, real buttons and links, a live region.
  assert.match(await product.locator('h3').textContent(), /\S/);
  assert.equal(await product.locator('img').getAttribute('alt'), 'VoltGear HC1 Over-Ear Headphone Case');
  assert.equal(await product.locator('img').getAttribute('referrerpolicy'), 'no-referrer');
  assert.equal(await product.locator('.aftercart-price').textContent(), '$24.99');
  assert.equal(await product.locator('.aftercart-stock').textContent(), 'In stock');
  const buy = product.getByRole('button', { name: /Buy now: VoltGear HC1.*\$24\.99/ });
  assert.equal(await buy.count(), 1);
  const link = product.locator('a.aftercart-cta');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await link.getAttribute('target'), '_blank');
  const status = product.locator('[role="status"]');
  assert.equal(await status.getAttribute('aria-live'), 'polite');

  // The offers start below the fold.
  const box = await page.locator(productSelector).boundingBox();
  assert.ok(box.y > 600, `the offers start below the fold (top at ${box.y})`);

  const decision = await decisionOf(demo.order);
  assert.deepEqual(decision.slots.map((s) => s.slot).sort(), [0, 1, 2]);
  assert.equal(decision.slots.find((s) => s.slot === 2).campaign, 'cmp-voltgear-headphone-case');

  // Rendered but never seen: nothing counted.
  await sleep(1300);
  assert.deepEqual(await records('impression', decision.id), [], 'not seen, not counted');
  // A quarter visible for well over a second: still not viewable.
  await showFraction(page, productSelector, 0.25);
  await sleep(1300);
  assert.deepEqual(await records('impression', decision.id), [], 'a quarter visible is not viewable');
  // Fully visible, but for less than a second before it scrolls away: the clock resets.
  // In the page, on the SDK's own event loop, so a slow test process cannot stretch it.
  const glimpse = await page.evaluate(async (sel) => {
    const start = performance.now();
    document.querySelector(sel).scrollIntoView({ block: 'center' });
    await new Promise((r) => setTimeout(r, 600));
    window.scrollTo(0, 0);
    return performance.now() - start;
  }, productSelector);
  assert.ok(glimpse < 1000, `the glimpse lasted ${glimpse} ms`);
  await sleep(700);
  assert.deepEqual(await records('impression', decision.id), [], '0.6 s is not a continuous second');

  // Three quarters visible from here on: counted one second later, not before.
  const shownAt = Date.now();
  await showFraction(page, productSelector, 0.75);
  await sleep(700);
  assert.deepEqual(await records('impression', decision.id), [], 'counted too early');
  const impressions = await eventually(async () => {
    const r = await records('impression', decision.id);
    return r.length === 3 ? r : null;
  }, 5000, 'three impressions');
  for (const r of impressions) {
    const waited = Date.parse(r.ts) - shownAt;
    assert.ok(waited >= 1000, `slot ${r.slot} counted ${waited} ms after it became visible`);
  }

  // A click goes through the tracking URL, is counted, and carries no Referer.
  const [advertiser] = await Promise.all([demo.context.waitForEvent('page'), link.click()]);
  await advertiser.waitForURL(/^https:\/\/voltgear\.example\/p\/hc1-headphone-case/);
  const clicks = await eventually(async () => {
    const r = await records('click', decision.id);
    return r.length ? r : null;
  }, 5000, 'the click record');
  assert.deepEqual(clicks.map((c) => c.slot), [2]);
  const clickRequest = demo.requests.find((r) => r.url().includes('/v1/events/click'));
  assert.ok(clickRequest, 'the click went through aftercart');
  assert.equal((await clickRequest.allHeaders()).referer, undefined, 'the click leaks no Referer');
  const landing = demo.requests.find((r) => r.url().startsWith('https://voltgear.example/'));
  assert.equal((await landing.allHeaders()).referer, undefined, 'the advertiser gets no Referer');
  for (const img of demo.requests.filter((r) => r.resourceType() === 'image')) {
    assert.equal((await img.allHeaders()).referer, undefined, `${img.url()} leaks no Referer`);
  }
  await advertiser.close();

  // Buy: the confirmation is announced and the stock goes down by one.
  const before = await server.stock(PRODUCT_SKU);
  await buy.click();
  await eventually(async () => /Thank you! Order ac_/.test(await status.textContent()), 5000, 'the confirmation');
  assert.match(await status.textContent(), /VoltGear HC1 Over-Ear Headphone Case, \$24\.99\./);
  assert.ok(await product.locator('button.aftercart-buy').isDisabled());
  assert.equal(await server.stock(PRODUCT_SKU), before - 1);
  assert.equal((await records('purchase', decision.id)).length, 1);

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), fullPage: true });

  // The raw e-mail never left the browser: only its hash, in the decision request.
  const raw = demo.email.trim();
  const decisionRequest = demo.requests.find((r) => r.url().endsWith('/v1/decisions'));
  const sent = JSON.parse(decisionRequest.postData());
  assert.equal(sent.customer.ids.email, undefined);
  assert.equal(sent.customer.ids.email_sha256, sha256(raw.toLowerCase()));
  for (const r of demo.requests) {
    const everything = [r.url(), r.postData() || '', JSON.stringify(r.headers())].join('\n').toLowerCase();
    assert.ok(!everything.includes(raw.toLowerCase()), `${r.url()} carries the e-mail`);
    assert.ok(!everything.includes(encodeURIComponent(raw).toLowerCase()), `${r.url()} carries the e-mail`);
  }

  assert.deepEqual(demo.console.warnings, []);
  assert.deepEqual(demo.console.pageErrors, []);
  await demo.context.close();
});

test('a product that sold out meanwhile says so and is not bought', async () => {
  const demo = await openDemo();
  const product = demo.page.locator('article.aftercart-offer:has(button.aftercart-buy)');
  assert.equal(await product.count(), 1);
  const left = await server.stock(PRODUCT_SKU);
  await server.setStock(PRODUCT_SKU, 0);
  try {
    await product.locator('button.aftercart-buy').click();
    const status = product.locator('[role="status"]');
    await eventually(async () => /sold out/.test(await status.textContent()), 5000, 'the sold-out message');
    assert.equal(await product.locator('.aftercart-stock').textContent(), 'Out of stock');
    assert.ok(await product.locator('button.aftercart-buy').isDisabled());
    assert.equal(await server.stock(PRODUCT_SKU), 0);
    const decision = await decisionOf(demo.order);
    assert.deepEqual(await records('purchase', decision.id), []);
    assert.deepEqual(demo.console.pageErrors, []);
  } finally {
    await server.setStock(PRODUCT_SKU, left);
    await demo.context.close();
  }
});
