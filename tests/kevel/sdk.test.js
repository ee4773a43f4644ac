// Kevel's official JavaScript SDK (@adzerk/decision-sdk, unmodified, pinned in
// package-lock.json) driving the real aftercart binary: decisions for one and several
// placements, count > 1, no fill, impression and click pixels counted in aftercart's
// log, UserDB read, consent and forget.
//
// Run by tests/kevel/run (which installs the SDK and builds the binary); on its own:
//   AFTERCART_BIN=target/debug/aftercart node --test tests/kevel/sdk.test.js
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { Client } = require("@adzerk/decision-sdk");

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = process.env.AFTERCART_BIN || path.join(ROOT, "target", "debug", "aftercart");
const CAMPAIGNS = path.join(__dirname, "campaigns");
const ADMIN_KEY = "kevel-sdk-test-admin-key-0123456789";
const NETWORK_ID = 23;
const SITE_ID = 667480;

let server;
let base;
let client;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url, child, log) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`aftercart exited with ${child.exitCode}:\n${log()}`);
    }
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return;
    } catch (_) {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`aftercart did not become ready:\n${log()}`);
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `no aftercart binary at ${BIN}`);
  const port = await freePort();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "aftercart-kevel-js-"));
  // Only our settings: any other AFTERCART_* in the environment would change the run.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("AFTERCART_")),
  );
  env.AFTERCART_ADMIN_KEY = ADMIN_KEY;
  // Pixels are fired the moment the decision arrives: faster than any page renders.
  env.AFTERCART_MIN_RENDER_MS = "0";
  env.AFTERCART_LOG_LEVEL = "warn";
  const child = spawn(
    BIN,
    ["serve", "--listen", `127.0.0.1:${port}`, "--campaigns", CAMPAIGNS, "--data", data],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (b) => (stderr += b));
  server = { child, data, log: () => stderr };
  base = `http://127.0.0.1:${port}`;
  await waitReady(base, child, server.log);
  // The one-line switch: Kevel's client, pointed at aftercart.
  client = new Client({
    networkId: NETWORK_ID,
    siteId: SITE_ID,
    protocol: "http",
    host: `127.0.0.1:${port}`,
    apiKey: ADMIN_KEY,
  });
});

after(async () => {
  if (server) {
    server.child.kill("SIGTERM");
    await new Promise((r) => server.child.once("exit", r));
    fs.rmSync(server.data, { recursive: true, force: true });
  }
});

/** A placement on the order confirmation page, with aftercart's context. */
function confirmation(extra = {}) {
  return {
    adTypes: [5],
    zoneIds: [136711],
    divName: "order_confirmation",
    properties: {
      transaction: { total: 129.99, currency: "USD" },
      context: { country: "US" },
    },
    ...extra,
  };
}

const ID_FIELDS = ["adId", "creativeId", "flightId", "campaignId", "advertiserId", "priorityId"];

/** Checks one decision as Kevel's SDK hands it over; returns its aftercart offer. */
function checkDecision(d) {
  assert.ok(d && typeof d === "object", `a decision: ${JSON.stringify(d)}`);
  for (const f of ID_FIELDS) {
    assert.ok(Number.isInteger(d[f]) && d[f] > 0 && d[f] <= 2147483647, `${f}: ${d[f]}`);
  }
  assert.equal(typeof d.clickUrl, "string");
  assert.ok(d.clickUrl.startsWith(`${base}/v1/events/click?t=`), d.clickUrl);
  assert.ok(d.impressionUrl.startsWith(`${base}/v1/events/impression?t=`), d.impressionUrl);
  assert.ok(Array.isArray(d.contents) && d.contents.length === 1);
  const [content] = d.contents;
  assert.equal(content.type, "raw");
  assert.deepEqual(JSON.parse(content.body), content.data);
  assert.equal(content.data.tracking.click, d.clickUrl);
  assert.equal(typeof d.pricing.price, "number");
  assert.equal(typeof d.pricing.eCPM, "number");
  assert.deepEqual(d.events, []);
  return content.data;
}

/** The aftercart campaign of each decision in a placement's answer (null: no fill). */
function campaigns(answer) {
  return answer.map((d) => (d === null ? null : checkDecision(d).campaign_id));
}

/** Every exposure log record, read with the admin key through GET /v1/log. */
async function logRecords() {
  const r = await fetch(`${base}/v1/log?from=0&max=10000`, {
    headers: { Authorization: `Bearer ${ADMIN_KEY}` },
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** Records of `kind` for `decisionId`, once `want` of them are flushed (or the deadline). */
async function recordsFor(kind, decisionId, want) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = (await logRecords()).filter(
      (r) => r.kind === kind && r.decision_id === decisionId,
    );
    if (found.length >= want || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("one placement gets one decision, in Kevel's shape", async () => {
  const response = await client.decisions.get({
    placements: [confirmation()],
    user: { key: "js-one" },
    keywords: ["books"],
  });
  assert.equal(response.user.key, "js-one");
  const answer = response.decisions.order_confirmation;
  assert.deepEqual(campaigns(answer), ["kv-trial"]);
  const offer = answer[0].contents[0].data;
  assert.equal(offer.creative_id, "kv-trial-hero");
  assert.equal(answer[0].pricing.price, 18);
  assert.equal(answer[0].pricing.eCPM, 18);
});

test("several placements are decided one by one, for the same user", async () => {
  const response = await client.decisions.get({
    placements: [
      confirmation({ divName: "top", properties: { ...confirmation().properties, placement: "order_confirmation" } }),
      confirmation({ divName: "bottom", properties: { ...confirmation().properties, placement: "order_confirmation" } }),
    ],
    user: { key: "js-several" },
  });
  // The first placement shows the capped trial; the second already sees the cap.
  assert.deepEqual(campaigns(response.decisions.top), ["kv-trial"]);
  assert.deepEqual(campaigns(response.decisions.bottom), ["kv-charity"]);
  const ids = [response.decisions.top[0], response.decisions.bottom[0]].map(
    (d) => d.contents[0].data.decision_id,
  );
  assert.notEqual(ids[0], ids[1]);
});

test("count > 1 fills several slots, distinct advertisers", async () => {
  const response = await client.decisions.get({
    placements: [confirmation({ count: 3 })],
    user: { key: "js-multi" },
    keywords: ["electronics/audio"],
  });
  const got = campaigns(response.decisions.order_confirmation);
  assert.equal(got.length, 3);
  assert.equal(got[0], "kv-trial");
  assert.deepEqual([...got].sort(), ["kv-charity", "kv-headphones", "kv-trial"]);
  const slots = response.decisions.order_confirmation.map((d) => d.contents[0].data.slot);
  assert.deepEqual(slots, [0, 1, 2]);
});

test("no fill is null", async () => {
  const response = await client.decisions.get({
    placements: [{ adTypes: [5], divName: "nowhere" }],
  });
  // Kevel's SDK wraps every answer in an array.
  assert.deepEqual(response.decisions.nowhere, [null]);
  assert.match(response.user.key, /^ue1-/);
});

test("impression and click pixels are counted once by aftercart", async () => {
  const response = await client.decisions.get({
    placements: [confirmation()],
    user: { key: "js-pixels" },
  });
  const [decision] = response.decisions.order_confirmation;
  const offer = checkDecision(decision);
  const first = await client.pixels.fire({ url: decision.impressionUrl });
  assert.equal(first.status, 204);
  const again = await client.pixels.fire({ url: decision.impressionUrl });
  assert.equal(again.status, 204);
  const click = await client.pixels.fire({ url: decision.clickUrl });
  assert.equal(click.status, 302);
  assert.equal(click.location, "https://streaming.example/trial?src=aftercart");
  const impressions = await recordsFor("impression", offer.decision_id, 1);
  const clicks = await recordsFor("click", offer.decision_id, 1);
  assert.equal(impressions.length, 1, "a repeated impression is not counted");
  assert.equal(clicks.length, 1);
  assert.equal(impressions[0].campaign_id, "kv-trial");
  assert.equal((await recordsFor("decision", offer.decision_id, 1)).length, 1);
});

test("UserDB read, then forget: the next decision no longer knows the user", async () => {
  const user = "js-forget";
  const ask = () =>
    client.decisions.get({ placements: [confirmation()], user: { key: user } });
  assert.deepEqual(campaigns((await ask()).decisions.order_confirmation), ["kv-trial"]);
  assert.deepEqual(campaigns((await ask()).decisions.order_confirmation), ["kv-charity"]);
  assert.deepEqual((await ask()).decisions.order_confirmation, [null], "both capped");

  const record = await client.userDb.read(user);
  assert.equal(record.key, user);
  assert.equal(record.exposures, 2);
  assert.equal(record.identifiers[0].kind, "customer_id");

  await client.userDb.forget(user);
  await assert.rejects(client.userDb.read(user), (e) => e.status === 404);
  assert.deepEqual(
    campaigns((await ask()).decisions.order_confirmation),
    ["kv-trial"],
    "the caps went with the user",
  );
});

test("UserDB consent is recorded and applied to later decisions", async () => {
  const user = "js-consent";
  await client.userDb.gdprConsent({ userKey: user, consent: { gdpr: false } });
  const record = await client.userDb.read(user);
  assert.equal(record.consent[0].personalization, false);
  assert.equal(record.consent[0].measurement, false);
  // Without consent the user is not profiled: no caps, the trial every time.
  for (let i = 0; i < 2; i++) {
    const r = await client.decisions.get({ placements: [confirmation()], user: { key: user } });
    assert.deepEqual(campaigns(r.decisions.order_confirmation), ["kv-trial"]);
  }
  await client.userDb.gdprConsent({ userKey: user, consent: { gdpr: true } });
  const r1 = await client.decisions.get({ placements: [confirmation()], user: { key: user } });
  const r2 = await client.decisions.get({ placements: [confirmation()], user: { key: user } });
  assert.deepEqual(campaigns(r1.decisions.order_confirmation), ["kv-trial"]);
  assert.deepEqual(campaigns(r2.decisions.order_confirmation), ["kv-charity"]);
});

test("a bad request is refused with the field named", async () => {
  let refused;
  try {
    await client.decisions.get({
      placements: [confirmation(), confirmation({ divName: "x", count: 0 })],
    });
  } catch (e) {
    // The SDK throws the HTTP response.
    refused = e;
  }
  assert.ok(refused, "the request must be refused");
  assert.equal(refused.status, 400);
  const body = await refused.json();
  assert.equal(body.error.details[0].path, "placements[1].count");
});
