//! Delivery controls: one profile across channels, frequency caps, budgets and even
//! pacing over simulated days, purchase suppression, holdouts and learned CTR.

use crate::support::*;
use aftercart::clock::ManualClock;
use serde_json::{Value, json};
use std::collections::HashSet;

/// 2026-11-23T00:00:00Z, a Monday inside every test flight.
const MIDNIGHT: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

/// A campaign that targets `order_confirmation` on every channel, changed by `patch`.
fn offer(id: &str, patch: Value) -> Value {
    let mut c = campaign(
        id,
        id,
        json!({"targeting": {"placements": ["order_confirmation"]}}),
    );
    if let Value::Object(p) = patch {
        for (k, v) in p {
            c[k] = v;
        }
    }
    c
}

/// A decision request on `channel` with exactly these identifiers.
fn ask(tx: &str, channel: &str, ids: Value) -> Value {
    request(
        tx,
        json!({"channel": channel, "customer": {"ids": ids}, "slots": 2}),
    )
}

fn shows(d: &Value, campaign: &str) -> bool {
    offered(d).iter().any(|c| c == campaign)
}

async fn fire(s: &TestServer, d: &Value, campaign: &str, event: &str) {
    let o = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["campaign_id"] == campaign)
        .unwrap();
    let r = s.get_raw(o["tracking"][event].as_str().unwrap()).await;
    assert!(r.status().is_success() || r.status().is_redirection());
}

#[tokio::test]
async fn a_cap_hit_in_the_app_holds_on_the_web_once_a_conversion_links_them() {
    let capped = offer(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let s = TestServer::builder()
        .writable_campaigns(&[capped])
        .start()
        .await;
    let (_, d) = s
        .decide(&ask("A-1", "app", json!({"device_id": "dev-9"})))
        .await;
    assert!(shows(&d, "capped"), "first offer in the app: {d}");
    let (_, d) = s
        .decide(&ask("W-1", "online", json!({"email": "ann@example.com"})))
        .await;
    assert!(
        shows(&d, "capped"),
        "the web email is not known to be the same person yet"
    );

    // A purchase carrying both identifiers links them into one customer.
    let c = conversion(
        "ORD-LINK",
        json!({"channel": "online", "customer": {"ids": {"device_id": "dev-9", "email": "Ann@Example.com "}}}),
    );
    assert_eq!(s.convert(&c).await.0, 202);
    let (_, d) = s
        .decide(&ask("W-2", "online", json!({"email": "ann@example.com"})))
        .await;
    assert!(!shows(&d, "capped"), "capped across channels: {d}");
    let (_, d) = s
        .decide(&ask("W-3", "online", json!({"email": "bob@example.com"})))
        .await;
    assert!(shows(&d, "capped"), "another shopper is not capped");
    let (_, d) = s.decide(&ask("W-4", "online", json!({}))).await;
    assert!(shows(&d, "capped"), "anonymous requests skip caps");

    // Learnt links and caps survive a restart.
    let data = s.stop_keeping_data().await;
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    let (_, d) = s
        .decide(&ask("A-2", "app", json!({"device_id": "dev-9"})))
        .await;
    assert!(!shows(&d, "capped"), "still capped after a restart: {d}");
    let m = s.metrics().await;
    assert!(m.contains("aftercart_offers_skipped_total{reason=\"frequency_caps\"}"));
}

#[tokio::test]
async fn require_identity_excludes_anonymous_and_unconsented_requests() {
    let strict = offer(
        "strict",
        json!({"targeting": {"placements": ["order_confirmation"], "require_identity": true}}),
    );
    let s = TestServer::builder()
        .writable_campaigns(&[strict])
        .start()
        .await;
    let (_, d) = s
        .decide(&ask("R-1", "online", json!({"device_id": "d"})))
        .await;
    assert!(shows(&d, "strict"));
    let (_, d) = s.decide(&ask("R-2", "online", json!({}))).await;
    assert!(!shows(&d, "strict"));
    let mut no_consent = ask("R-3", "online", json!({"device_id": "d"}));
    no_consent["consent"] = json!({"personalization": false});
    let (_, d) = s.decide(&no_consent).await;
    assert!(!shows(&d, "strict"));
}

/// Spend of `campaign` as the log's impression and click records charged it.
fn charged(records: &[Value], campaign: &str) -> f64 {
    records
        .iter()
        .filter(|r| {
            r["campaign_id"] == campaign && (r["kind"] == "impression" || r["kind"] == "click")
        })
        .map(|r| r["cost"].as_f64().unwrap_or(0.0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_exhaustion_under_8_concurrent_clients_overspends_at_most_1_percent() {
    // 2.00 per impression, 50.00 a day: 25 impressions.
    let spender = offer(
        "spender",
        json!({"bid": {"model": "cpm", "amount": 2000.0}, "budget": {"daily": 50.0}, "pacing": "asap"}),
    );
    let s = std::sync::Arc::new(
        TestServer::builder()
            .writable_campaigns(&[spender])
            .start()
            .await,
    );
    let mut clients = Vec::new();
    for c in 0..8 {
        let s = s.clone();
        clients.push(tokio::spawn(async move {
            let mut served = 0;
            for i in 0..40 {
                let (_, d) = s
                    .decide(&ask(&format!("B-{c}-{i}"), "online", json!({})))
                    .await;
                if shows(&d, "spender") {
                    served += 1;
                    fire(&s, &d, "spender", "impression").await;
                }
            }
            served
        }));
    }
    let mut served = 0;
    for c in clients {
        served += c.await.unwrap();
    }
    let records = s.log_records().await;
    let spent = charged(&records, "spender");
    assert!(spent <= 50.0 * 1.01, "overspent: {spent}");
    assert!(spent >= 50.0 * 0.99, "the budget was used: {spent}");
    assert_eq!(served, 25, "no more offers than the budget pays for");
    let (_, st) = s
        .call("GET", "/v1/campaigns/spender/stats", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(st["pacing"]["state"], "exhausted", "{st}");
    assert!(st["skipped"]["budget"].as_u64().unwrap() > 0);
}

/// Runs one simulated day of decisions for an even-paced campaign, `per_hour[h]`
/// decisions in hour `h`, firing the impression of every offer; returns the spend at
/// the end of every hour and the last hour with an offer.
async fn simulated_day(per_hour: &[u32; 24]) -> (Vec<f64>, Option<usize>, f64) {
    let clock = ManualClock::new(MIDNIGHT);
    // 0.10 per impression, 20.00 a day: 200 impressions.
    let even = offer(
        "even",
        json!({"bid": {"model": "cpm", "amount": 100.0}, "budget": {"daily": 20.0}, "pacing": "even", "timezone": "UTC"}),
    );
    let s = TestServer::builder()
        .clock(clock.clone())
        .writable_campaigns(&[even])
        .start()
        .await;
    let mut by_hour = Vec::new();
    let mut last_served_hour = None;
    let mut spent = 0.0;
    let mut n = 0;
    for (hour, &count) in per_hour.iter().enumerate() {
        let step = HOUR / i64::from(count.max(1));
        for i in 0..count {
            clock.set(MIDNIGHT + hour as i64 * HOUR + i64::from(i) * step);
            n += 1;
            let (_, d) = s.decide(&ask(&format!("D-{n}"), "online", json!({}))).await;
            if shows(&d, "even") {
                fire(&s, &d, "even", "impression").await;
                spent += 0.1;
                last_served_hour = Some(hour);
            }
        }
        by_hour.push(spent);
    }
    clock.set(MIDNIGHT + 24 * HOUR - 1);
    let (_, st) = s
        .call("GET", "/v1/campaigns/even/stats", Some(ADMIN_KEY), None)
        .await;
    let logged = st["spend"]["today"].as_f64().unwrap();
    (by_hour, last_served_hour, logged)
}

#[tokio::test]
async fn even_pacing_follows_the_day_and_spends_the_budget() {
    // Flat traffic, many times what the budget pays for.
    let (by_hour, _, logged) = simulated_day(&[240; 24]).await;
    for (h, spent) in by_hour.iter().enumerate() {
        let expected = 20.0 * (h + 1) as f64 / 24.0;
        assert!(
            (spent - expected).abs() <= 0.05 * 20.0,
            "hour {h}: spent {spent:.2}, the curve says {expected:.2}"
        );
    }
    let end = by_hour[23];
    assert!(
        (end - 20.0).abs() <= 0.02 * 20.0,
        "the day ends at {end:.2} of 20.00"
    );
    assert!(
        (logged - end).abs() < 1e-6,
        "stats agree with what was charged"
    );
}

#[tokio::test]
async fn even_pacing_under_a_realistic_daily_curve_still_spends_and_serves_the_evening() {
    // Quiet nights, a lunch bump and an evening peak, 6,000 decisions in all.
    let curve = [
        40, 25, 15, 10, 10, 20, 60, 150, 250, 300, 320, 380, 420, 380, 330, 330, 380, 450, 520,
        560, 480, 300, 150, 80,
    ];
    let (by_hour, last_served_hour, _) = simulated_day(&curve).await;
    let end = by_hour[23];
    assert!(
        end >= 0.98 * 20.0,
        "spent only {end:.2} of 20.00: {by_hour:?}"
    );
    assert!(end <= 20.0 + 1e-9);
    assert!(
        last_served_hour.is_some_and(|h| h >= 20),
        "still serving after 20:00: {last_served_hour:?}, {by_hour:?}"
    );
}

#[tokio::test]
async fn an_in_store_purchase_suppresses_the_online_offer() {
    let crunchy = offer(
        "crunchy",
        json!({"conversion": {"skus": [], "categories": [], "brands": ["Crunchy"]},
               "targeting": {"placements": ["order_confirmation"], "exclude_purchasers_days": 30}}),
    );
    let s = TestServer::builder()
        .writable_campaigns(&[crunchy])
        .start()
        .await;
    let web = json!({"email_sha256": "ab".repeat(32)});
    let (_, d) = s.decide(&ask("S-1", "online", web.clone())).await;
    assert!(shows(&d, "crunchy"));
    // At the till: the loyalty card and the same e-mail, buying the brand.
    let pos = conversion(
        "POS-9",
        json!({"customer": {"ids": {"loyalty_id": "L-9", "email_sha256": "AB".repeat(32)}}}),
    );
    assert_eq!(s.convert(&pos).await.0, 202);
    let mut explain = ask("S-2", "online", web.clone());
    explain["explain"] = json!(true);
    let (_, d) = s.decide_admin(&explain).await;
    assert!(
        !shows(&d, "crunchy"),
        "a recent purchaser is not targeted: {d}"
    );
    let stages = d["explain"]["stages"].as_array().unwrap();
    assert!(
        stages.iter().any(|st| st["stage"] == "exclude_purchasers"),
        "{stages:?}"
    );
    let (_, d) = s
        .decide(&ask(
            "S-3",
            "online",
            json!({"email_sha256": "cd".repeat(32)}),
        ))
        .await;
    assert!(shows(&d, "crunchy"), "others still are");
}

#[tokio::test]
async fn holdout_groups_are_near_their_share_and_never_change() {
    let held = offer("held", json!({"holdout_percent": 20}));
    let s = TestServer::builder()
        .writable_campaigns(&[held])
        .start()
        .await;
    let mut control = HashSet::new();
    for i in 0..10_000 {
        let (_, d) = s
            .decide(&ask(
                &format!("H-{i}"),
                "online",
                json!({"customer_id": format!("c-{i}")}),
            ))
            .await;
        if !shows(&d, "held") {
            control.insert(i);
        }
    }
    let share = control.len() as f64 / 10_000.0;
    assert!((0.18..=0.22).contains(&share), "control share {share}");
    let records = s.log_records().await;
    assert_eq!(
        of_kind(&records, "control").len(),
        control.len(),
        "one control record each"
    );
    assert!(of_kind(&records, "control").iter().all(|r| r["slot"] == 0));

    // The same profiles again: nobody changes group.
    for i in 0..300 {
        let (_, d) = s
            .decide(&ask(
                &format!("H2-{i}"),
                "app",
                json!({"customer_id": format!("c-{i}")}),
            ))
            .await;
        assert_eq!(
            !shows(&d, "held"),
            control.contains(&i),
            "profile {i} changed group"
        );
    }
    // Merging a newer profile into an earlier one: the earlier group wins, for both.
    let mut moved = 0;
    for i in 0..200 {
        let newer = json!({"device_id": format!("n-{i}")});
        let (_, d) = s
            .decide(&ask(&format!("H3-{i}"), "online", newer.clone()))
            .await;
        let newer_control = !shows(&d, "held");
        let link = conversion(
            &format!("M-{i}"),
            json!({"customer": {"ids": {"customer_id": format!("c-{i}"), "device_id": format!("n-{i}")}}}),
        );
        assert_eq!(s.convert(&link).await.0, 202);
        for (n, ids) in [
            ("c", json!({"customer_id": format!("c-{i}")})),
            ("n", newer),
        ] {
            let (_, d) = s.decide(&ask(&format!("H4-{n}-{i}"), "online", ids)).await;
            assert_eq!(
                !shows(&d, "held"),
                control.contains(&i),
                "{n}-{i} follows the earlier group"
            );
        }
        moved += usize::from(newer_control != control.contains(&i));
    }
    assert!(moved > 0, "some merges joined profiles of different groups");
}

#[tokio::test]
async fn clicks_move_a_cpc_campaign_up_the_ranking() {
    // eCPM 15 against 1.00 × 1% prior × 1000 = 10: the cpm campaign leads at first.
    let cpm = offer("by-cpm", json!({"bid": {"model": "cpm", "amount": 15.0}}));
    let cpc = offer("by-cpc", json!({"bid": {"model": "cpc", "amount": 1.0}}));
    let s = TestServer::builder()
        .writable_campaigns(&[cpm, cpc])
        .start()
        .await;
    let (_, d) = s.decide(&ask("C-0", "online", json!({}))).await;
    assert_eq!(offered(&d), ["by-cpm", "by-cpc"]);
    for i in 1..=6 {
        let (_, d) = s.decide(&ask(&format!("C-{i}"), "online", json!({}))).await;
        fire(&s, &d, "by-cpc", "click").await;
    }
    let (_, d) = s.decide(&ask("C-9", "online", json!({}))).await;
    assert_eq!(
        offered(&d),
        ["by-cpc", "by-cpm"],
        "clicks raised its predicted CTR"
    );
    let (_, st) = s
        .call("GET", "/v1/campaigns/by-cpc/stats", Some(ADMIN_KEY), None)
        .await;
    assert!(
        st["by_channel"][0]["predicted_ctr"].as_f64().unwrap() > 0.015,
        "{st}"
    );
    // Learned per channel: the app has seen no clicks.
    let (_, d) = s.decide(&ask("C-10", "app", json!({}))).await;
    assert_eq!(offered(&d), ["by-cpm", "by-cpc"]);
}

#[tokio::test]
async fn a_shared_test_card_cannot_glue_shoppers_together() {
    let capped = offer(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let s = TestServer::builder()
        .config(|c| c.max_profile_identifiers = 4)
        .writable_campaigns(&[capped])
        .start()
        .await;
    // Forty shoppers pay with the store's test card at the till.
    for i in 0..40 {
        let c = conversion(
            &format!("POS-T-{i}"),
            json!({"customer": {"ids": {"loyalty_id": format!("L-{i}"), "payment_token": "tok_test_card"}}}),
        );
        assert_eq!(s.convert(&c).await.0, 202);
    }
    let m = s.metrics().await;
    let refused: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("aftercart_identity_links_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(
        refused >= 30,
        "links past the bound are refused and counted: {refused}"
    );
    // Most shoppers stay apart: one being capped does not cap the others.
    let (_, d) = s
        .decide(&ask("G-0", "online", json!({"loyalty_id": "L-30"})))
        .await;
    assert!(shows(&d, "capped"));
    let mut still_served = 0;
    for i in 0..40 {
        let (_, d) = s
            .decide(&ask(
                &format!("G-{i}-b"),
                "online",
                json!({"loyalty_id": format!("L-{i}")}),
            ))
            .await;
        still_served += usize::from(shows(&d, "capped"));
    }
    assert!(
        still_served >= 30,
        "only the few glued before the bound share a cap: {still_served}"
    );
}
