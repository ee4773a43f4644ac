//! The exposure log and tracking events: every served, seen, clicked or bought offer
//! reaches the log once; acknowledged records survive crashes; readers and consumers.

use crate::support::*;
use aftercart::clock::ManualClock;
use aftercart::exposure::storage::Faults;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn tracking(body: &Value, slot: usize, event: &str) -> String {
    body["offers"][slot]["tracking"][event]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn decisions_and_no_fills_are_logged_with_what_measurement_needs() {
    let s = TestServer::sample().await;
    let (_, body) = s.decide(&example("decision-online.json")).await;
    let (_, none) = s
        .decide(&request(
            "ORD-nofill",
            json!({"placement": "nowhere", "context": {"country": "FR"}}),
        ))
        .await;
    let records = s.log_records().await;
    let decisions = of_kind(&records, "decision");
    assert_eq!(decisions.len(), body["offers"].as_array().unwrap().len());
    for (i, d) in decisions.iter().enumerate() {
        assert_eq!(
            d["decision_id"], body["decision_id"],
            "the id exactly as the API showed it"
        );
        assert_eq!(d["slot"], i);
        assert_eq!(d["campaign_id"], body["offers"][i]["campaign_id"]);
        assert_eq!(d["creative_id"], body["offers"][i]["creative_id"]);
        assert_eq!(d["transaction_id"], "ORD-20481");
        assert_eq!(d["channel"], "online");
        assert!(d["price"].as_f64().unwrap() > 0.0);
        assert!(d["profile"].is_string());
        let ids = d["ids"].as_array().map_or(0, Vec::len);
        assert_eq!(
            ids,
            if i == 0 { 3 } else { 0 },
            "identifiers once per decision, on slot 0"
        );
    }
    let nofill = of_kind(&records, "nofill");
    assert_eq!(nofill.len(), 1);
    assert_eq!(nofill[0]["decision_id"], none["decision_id"]);
    assert_eq!(nofill[0]["placement"], "nowhere");

    // A reload is not a new exposure.
    s.decide(&example("decision-online.json")).await;
    assert_eq!(
        of_kind(&s.log_records().await, "decision").len(),
        decisions.len()
    );
    s.stop().await;
}

#[tokio::test]
async fn without_measurement_consent_records_carry_no_identifier() {
    let s = TestServer::sample().await;
    let mut req = example("decision-online.json");
    req["consent"] = json!({"personalization": true, "measurement": false});
    let (_, body) = s.decide(&req).await;
    let imp = tracking(&body, 0, "impression");
    assert_eq!(s.client.get(&imp).send().await.unwrap().status(), 204);
    let records = s.log_records().await;
    for r in records
        .iter()
        .filter(|r| r["kind"] == "decision" || r["kind"] == "impression")
    {
        assert!(
            r.get("profile").is_none()
                && r.get("ids").is_none()
                && r.get("transaction_id").is_none(),
            "{r}"
        );
        assert!(r["campaign_id"].is_string() && r["price"].is_number() && r["channel"] == "online");
    }
    s.stop().await;
}

#[tokio::test]
async fn impressions_count_once_within_their_time_to_live_and_charge_cpm() {
    let clock = ManualClock::new(1_795_012_200_000);
    let s = TestServer::builder()
        .clock(clock.clone())
        .campaigns(&[campaign(
            "c-cpm",
            "a1",
            json!({"bid": {"model": "cpm", "amount": 20.0}}),
        )])
        .start()
        .await;
    let (_, body) = s.decide(&request("ORD-imp", json!({}))).await;
    let url = tracking(&body, 0, "impression");
    for _ in 0..3 {
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    assert_eq!(
        s.client.post(&url).send().await.unwrap().status(),
        204,
        "POST works too"
    );
    assert_eq!(
        s.app.ledger.spend("c-cpm").total,
        20_000,
        "charged once: 20.00 / 1000"
    );

    // Another decision's impression arriving after the hour is not counted.
    let (_, late) = s.decide(&request("ORD-late", json!({}))).await;
    clock.advance(3_600_001);
    assert_eq!(
        s.client
            .get(tracking(&late, 0, "impression"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let imps = of_kind(&s.log_records().await, "impression").len();
    assert_eq!(imps, 1);
    assert_eq!(s.app.ledger.spend("c-cpm").total, 20_000);
    s.stop().await;
}

#[tokio::test]
async fn clicks_redirect_count_once_record_a_missing_impression_and_charge_cpc() {
    let clock = ManualClock::new(1_795_012_200_000);
    let s = TestServer::builder()
        .clock(clock.clone())
        .campaigns(&[campaign(
            "c-cpc",
            "a1",
            json!({"bid": {"model": "cpc", "amount": 1.5}}),
        )])
        .start()
        .await;
    let (_, body) = s.decide(&request("ORD-click", json!({}))).await;
    let click = tracking(&body, 0, "click");
    for _ in 0..2 {
        let r = s.get_raw(&click).await;
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "https://shop.example/x");
    }
    let records = s.log_records().await;
    assert_eq!(of_kind(&records, "click").len(), 1);
    assert_eq!(
        of_kind(&records, "impression").len(),
        1,
        "a click without an impression records it"
    );
    assert_eq!(s.app.ledger.spend("c-cpc").total, 1_500_000);

    // Eight days later the link still works but counts nothing.
    let (_, old) = s.decide(&request("ORD-old", json!({}))).await;
    clock.advance(8 * 86_400_000);
    let r = s.get_raw(&tracking(&old, 0, "click")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(of_kind(&s.log_records().await, "click").len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn forged_and_missing_tokens_are_refused_and_not_logged() {
    let s = TestServer::sample().await;
    let (_, body) = s.decide(&example("decision-app.json")).await;
    let url = tracking(&body, 0, "impression");
    let (base, token) = url.split_once("t=").unwrap();
    let mut forged: Vec<char> = token.chars().collect();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for bad in [
        format!("{base}t={forged}"),
        format!("{base}t=garbage"),
        s.url("/v1/events/impression"),
    ] {
        let r = s.client.get(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(error_paths(&e), ["t"]);
    }
    assert_eq!(
        s.get_raw(&tracking(&body, 0, "click").replace("t=", "t=x"))
            .await
            .status(),
        400
    );
    assert!(of_kind(&s.log_records().await, "impression").is_empty());
    s.stop().await;
}

#[tokio::test]
async fn conversions_are_idempotent_also_across_restarts() {
    let s = TestServer::sample().await;
    let (status, body) = s.convert(&conversion("POS-1", json!({}))).await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 1, "duplicates": 0}))
    );
    let batch = json!([
        conversion("POS-1", json!({})),
        conversion("POS-2", json!({})),
        conversion("POS-2", json!({})),
        conversion("POS-1", json!({"type": "refund"})),
        conversion("POS-1", json!({"channel": "online"}))
    ]);
    let (status, body) = s.convert(&batch).await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 3, "duplicates": 2}))
    );
    let data = s.stop_keeping_data().await;

    let s = TestServer::builder().start_on(data).await;
    let (status, body) = s
        .convert(&json!([
            conversion("POS-2", json!({})),
            conversion("POS-3", json!({}))
        ]))
        .await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 1, "duplicates": 1})),
        "the dedup keys survived the restart"
    );
    let conversions = of_kind(&s.log_records().await, "conversion").len();
    assert_eq!(conversions, 5);
    s.stop().await;
}

#[tokio::test]
async fn a_bad_element_rejects_the_whole_batch_with_paths() {
    let s = TestServer::sample().await;
    let batch = json!([
        conversion("OK-1", json!({})),
        conversion(
            "BAD-1",
            json!({"timestamp": "2999-01-01T00:00:00Z", "channel": "tv"})
        ),
        conversion(
            "BAD-2",
            json!({"items": [{"sku": "S", "price": -1}], "type": "return"})
        ),
        conversion("OLD-1", json!({"timestamp": "2001-01-01T00:00:00Z"})),
    ]);
    let (status, body) = s.convert(&batch).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_paths(&body),
        [
            "[1].channel",
            "[1].timestamp",
            "[2].type",
            "[2].items[0].price",
            "[3].timestamp"
        ]
    );
    assert!(
        of_kind(&s.log_records().await, "conversion").is_empty(),
        "nothing applied"
    );
    let (status, body) = s
        .convert(&conversion("EUR-1", json!({"currency": "EUR"})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "currency_mismatch");
    let (status, _) = s
        .convert(&json!(vec![conversion("X", json!({})); 10_001]))
        .await;
    assert_eq!(status, 400, "more than 10,000 in one batch");
    let r = s
        .client
        .post(s.url("/v1/conversions"))
        .header("content-type", JSON)
        .json(&conversion("NOKEY", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn a_failed_write_or_sync_is_a_503_never_a_202_and_the_writer_recovers() {
    let faults = Arc::new(Faults::default());
    let s = TestServer::builder().faults(faults.clone()).start().await;
    faults.fail_writes.store(true, Ordering::SeqCst);
    let (status, body) = s.convert(&conversion("F-1", json!({}))).await;
    assert_eq!(status, 503, "{body}");
    faults.fail_writes.store(false, Ordering::SeqCst);
    faults.fail_syncs.store(true, Ordering::SeqCst);
    let (status, _) = s.convert(&conversion("F-2", json!({}))).await;
    assert_eq!(status, 503);
    faults.fail_syncs.store(false, Ordering::SeqCst);

    let (status, body) = s
        .convert(&json!([
            conversion("F-1", json!({})),
            conversion("F-3", json!({}))
        ]))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["accepted"], 2,
        "the failed conversion's retry is not a duplicate"
    );
    let (status, _) = s.decide(&example("decision-online.json")).await;
    assert_eq!(status, 200);
    let records = s.log_records().await;
    let orders: Vec<&str> = of_kind(&records, "conversion")
        .iter()
        .map(|r| r["order_id"].as_str().unwrap())
        .collect();
    assert!(
        orders.contains(&"F-1") && orders.contains(&"F-3"),
        "{orders:?}"
    );
    assert!(
        !of_kind(&records, "decision").is_empty(),
        "the log is whole and readable after the faults"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_log_endpoint_pages_by_offset_and_long_polls_at_the_tail() {
    let s = TestServer::sample().await;
    s.decide(&example("decision-online.json")).await;
    let _ = s.app.log.flush().await;
    let get = |from: u64, max: u64| {
        s.client
            .get(s.url(&format!("/v1/log?from={from}&max={max}")))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    let r = get(0, 2).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let next: u64 = r.headers()["x-aftercart-next-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1]["offset"].as_u64().unwrap() < next);
    let r = get(next, 2).await.unwrap();
    let rest: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rest[0]["offset"], next,
        "paging continues exactly where it stopped"
    );

    // At the tail, wait_ms waits for the next record.
    let end: u64 = get(0, 10_000).await.unwrap().headers()["x-aftercart-next-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let poll = tokio::spawn({
        let client = s.client.clone();
        let url = s.url(&format!("/v1/log?from={end}&wait_ms=5000"));
        async move {
            client
                .get(url)
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.convert(&conversion("LP-1", json!({}))).await;
    let got = poll.await.unwrap();
    assert!(got.contains("\"order_id\":\"LP-1\""), "{got}");

    let r = s
        .client
        .get(s.url("/v1/log?from=0"))
        .header("accept", MSGPACK)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(records.iter().any(|r| r["kind"] == "conversion"));

    assert_eq!(
        s.client
            .get(s.url("/v1/log"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(1, 2).await.unwrap().status(),
        400,
        "not a record boundary"
    );
    let r = s
        .client
        .get(s.url("/v1/log?max=lots"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn retention_deletes_whole_old_segments_only_behind_a_checkpoint() {
    let s = TestServer::builder()
        .config(|c| {
            c.log_segment_bytes = 4096;
            c.log_retention_hours = Some(24);
        })
        .start()
        .await;
    for i in 0..60 {
        assert_eq!(
            s.convert(&conversion(&format!("R-{i}"), json!({}))).await.0,
            202
        );
    }
    let log_dir = s.data.path().join("log");
    let segments = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let before = segments();
    assert!(before.len() >= 4, "several segments: {}", before.len());
    let three_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    for seg in &before[..before.len() - 1] {
        std::fs::File::options()
            .write(true)
            .open(seg)
            .unwrap()
            .set_modified(three_days_ago)
            .unwrap();
    }
    s.app.checkpoint().await.unwrap();
    let after = segments();
    assert_eq!(
        after,
        before[before.len() - 1..],
        "every old segment went, the live one stayed"
    );

    let kept = of_kind(&s.log_records().await, "conversion").len();
    assert!(kept < 60 && kept > 0, "{kept}");
    let data = s.stop_keeping_data().await;
    let s = TestServer::builder()
        .config(|c| c.log_segment_bytes = 4096)
        .start_on(data)
        .await;
    let (status, body) = s.convert(&conversion("R-0", json!({}))).await;
    assert_eq!(
        (status, body["duplicates"].clone()),
        (202, json!(1)),
        "dedup keys outlive the deleted segments"
    );
    s.stop().await;
}
