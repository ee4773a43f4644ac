"""Kevel's official Python SDK (adzerk-decision-sdk, unmodified, pinned in
requirements.txt) driving the real aftercart binary: decisions for one and several
placements, count > 1, no fill, impression and click pixels counted in aftercart's
log, UserDB read, consent and forget, and the SDK's typed models for every answer.

Run by tests/kevel/run (which installs the SDK into a venv and builds the binary); on
its own, from that venv:
    AFTERCART_BIN=target/debug/aftercart python -m unittest tests/kevel/test_sdk.py
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

from adzerk_decision_sdk import Client
from adzerk_decision_sdk.exceptions import ApiException
from adzerk_decision_sdk.models import Content, Decision, DecisionResponse, PricingData, User

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = os.environ.get("AFTERCART_BIN") or str(ROOT / "target" / "debug" / "aftercart")
CAMPAIGNS = HERE / "campaigns"
ADMIN_KEY = "kevel-sdk-test-admin-key-0123456789"
NETWORK_ID = 23
SITE_ID = 667480
ID_FIELDS = ["ad_id", "creative_id", "flight_id", "campaign_id", "advertiser_id", "priority_id"]

# The SDK logs every request at DEBUG; the test output should show failures, not that.
logging.getLogger("adzerk_decision_sdk").setLevel(logging.WARNING)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The real aftercart binary on a free port, a fresh data folder, the test campaigns."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(prefix="aftercart-kevel-py-")
        # Only our settings: any other AFTERCART_* in the environment would change the run.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCART_")}
        env["AFTERCART_ADMIN_KEY"] = ADMIN_KEY
        # Pixels are fired the moment the decision arrives: faster than any page renders.
        env["AFTERCART_MIN_RENDER_MS"] = "0"
        env["AFTERCART_LOG_LEVEL"] = "warn"
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--campaigns", str(CAMPAIGNS), "--data", self.data],
            env=env, stdout=subprocess.DEVNULL, stderr=self.stderr,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aftercart exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"aftercart did not become ready: {self.log()}")

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)

    def records(self):
        """Every exposure log record, through GET /v1/log with the admin key."""
        req = urllib.request.Request(
            f"{self.base}/v1/log?from=0&max=10000",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]

    def records_for(self, kind, decision_id, want):
        """Records of `kind` for the decision, once `want` are flushed (or the deadline)."""
        deadline = time.monotonic() + 5
        while True:
            found = [r for r in self.records()
                     if r["kind"] == kind and r.get("decision_id") == decision_id]
            if len(found) >= want or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def confirmation(div="order_confirmation", **extra):
    """A placement on the order confirmation page, with aftercart's context."""
    p = {
        "adTypes": [5],
        "zoneIds": [136711],
        "divName": div,
        "properties": {
            "transaction": {"total": 129.99, "currency": "USD"},
            "context": {"country": "US"},
        },
    }
    p.update(extra)
    return p


class KevelPythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BIN):
            raise RuntimeError(f"no aftercart binary at {BIN}")
        cls.server = Server()
        # The one-line switch: Kevel's client, pointed at aftercart.
        cls.client = Client(NETWORK_ID, site_id=SITE_ID, host=cls.server.base, api_key=ADMIN_KEY)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def get(self, placements, **request):
        response = self.client.decisions.get({"placements": placements, **request})
        self.assertIsInstance(response, DecisionResponse)
        self.assertIsInstance(response.user, User)
        self.assertIsInstance(response.decisions, dict)
        return response

    def check(self, d):
        """Checks one decision as the SDK's typed model; returns its aftercart offer."""
        self.assertIsInstance(d, Decision)
        for f in ID_FIELDS:
            n = getattr(d, f)
            self.assertIsInstance(n, int, f)
            self.assertTrue(0 < n <= 2**31 - 1, f"{f}: {n}")
        self.assertTrue(d.click_url.startswith(f"{self.server.base}/v1/events/click?t="))
        self.assertTrue(d.impression_url.startswith(f"{self.server.base}/v1/events/impression?t="))
        self.assertEqual(len(d.contents), 1)
        content = d.contents[0]
        self.assertIsInstance(content, Content)
        self.assertEqual(content.type, "raw")
        self.assertIsInstance(content.data, dict)
        self.assertEqual(json.loads(content.body), content.data)
        self.assertIsInstance(d.pricing, PricingData)
        self.assertIsInstance(d.pricing.price, float)
        self.assertIsInstance(d.pricing.e_cpm, float)
        self.assertEqual(d.events, [])
        return content.data

    def campaigns(self, answer):
        return [None if d is None else self.check(d)["campaign_id"] for d in answer]

    def test_one_placement(self):
        r = self.get([confirmation()], user={"key": "py-one"}, keywords=["books"])
        self.assertEqual(r.user.key, "py-one")
        answer = r.decisions["order_confirmation"]
        self.assertEqual(self.campaigns(answer), ["kv-trial"])
        self.assertEqual(answer[0].contents[0].data["creative_id"], "kv-trial-hero")
        self.assertEqual((answer[0].pricing.price, answer[0].pricing.e_cpm), (18.0, 18.0))

    def test_several_placements_for_one_user(self):
        props = confirmation()["properties"]
        r = self.get(
            [confirmation("top", properties={**props, "placement": "order_confirmation"}),
             confirmation("bottom", properties={**props, "placement": "order_confirmation"})],
            user={"key": "py-several"},
        )
        # The first placement shows the capped trial; the second already sees the cap.
        self.assertEqual(self.campaigns(r.decisions["top"]), ["kv-trial"])
        self.assertEqual(self.campaigns(r.decisions["bottom"]), ["kv-charity"])
        ids = {a[0].contents[0].data["decision_id"] for a in r.decisions.values()}
        self.assertEqual(len(ids), 2)

    def test_count_above_one(self):
        r = self.get([confirmation(count=3)], user={"key": "py-multi"},
                     keywords=["electronics/audio"])
        got = self.campaigns(r.decisions["order_confirmation"])
        self.assertEqual(len(got), 3)
        self.assertEqual(got[0], "kv-trial")
        self.assertEqual(sorted(got), ["kv-charity", "kv-headphones", "kv-trial"])

    def test_no_fill(self):
        r = self.get([{"adTypes": [5], "divName": "nowhere"}])
        # The SDK wraps every answer in a list.
        self.assertEqual(r.decisions["nowhere"], [None])
        self.assertTrue(r.user.key.startswith("ue1-"))

    def test_pixels_are_counted_once(self):
        r = self.get([confirmation()], user={"key": "py-pixels"})
        d = r.decisions["order_confirmation"][0]
        offer = self.check(d)
        self.assertEqual(self.client.pixels.fire(d.impression_url)[0], 204)
        self.assertEqual(self.client.pixels.fire(d.impression_url)[0], 204)
        status, location = self.client.pixels.fire(d.click_url)
        self.assertEqual((status, location),
                         (302, "https://streaming.example/trial?src=aftercart"))
        impressions = self.server.records_for("impression", offer["decision_id"], 1)
        clicks = self.server.records_for("click", offer["decision_id"], 1)
        self.assertEqual(len(impressions), 1, "a repeated impression is not counted")
        self.assertEqual(len(clicks), 1)
        self.assertEqual(impressions[0]["campaign_id"], "kv-trial")

    def test_forget(self):
        user = "py-forget"

        def ask():
            return self.get([confirmation()], user={"key": user}).decisions["order_confirmation"]

        self.assertEqual(self.campaigns(ask()), ["kv-trial"])
        self.assertEqual(self.campaigns(ask()), ["kv-charity"])
        self.assertEqual(ask(), [None], "both campaigns are capped for the user")
        record = self.client.user_db.read(user)
        self.assertEqual(record["key"], user)
        self.assertEqual(record["exposures"], 2)
        self.client.user_db.forget(user)
        with self.assertRaises(ApiException) as e:
            self.client.user_db.read(user)
        self.assertEqual(e.exception.status, 404)
        self.assertEqual(self.campaigns(ask()), ["kv-trial"], "the caps went with the user")

    def test_consent(self):
        user = "py-consent"
        self.client.user_db.gdpr_consent({"userKey": user, "consent": {"gdpr": False}})
        record = self.client.user_db.read(user)
        self.assertEqual(record["consent"][0]["personalization"], False)

        def ask():
            return self.get([confirmation()], user={"key": user}).decisions["order_confirmation"]

        # Without consent the user is not profiled: no caps, the trial every time.
        self.assertEqual(self.campaigns(ask()), ["kv-trial"])
        self.assertEqual(self.campaigns(ask()), ["kv-trial"])
        self.client.user_db.gdpr_consent({"userKey": user, "consent": {"gdpr": True}})
        self.assertEqual(self.campaigns(ask()), ["kv-trial"])
        self.assertEqual(self.campaigns(ask()), ["kv-charity"])

    def test_bad_request_names_the_field(self):
        with self.assertRaises(ApiException) as e:
            self.get([confirmation(), confirmation("x", count=0)])
        self.assertEqual(e.exception.status, 400)
        body = json.loads(e.exception.body)
        self.assertEqual(body["error"]["details"][0]["path"], "placements[1].count")


if __name__ == "__main__":
    unittest.main()
