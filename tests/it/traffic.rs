//! Invalid traffic: rate limits per address (behind trusted proxies) and per profile,
//! known bots and impressions faster than a page renders: logged as `invalid`, never
//! charged.

use crate::support::*;
use serde_json::{Value, json};

/// 1.00 per impression, plenty of budget.
fn paid() -> Value {
    campaign(
        "paid",
        "paid",
        json!({"bid": {"model": "cpm", "amount": 1000.0}, "budget": {"daily": 1000.0},
               "pacing": "asap", "targeting": {"placements": ["order_confirmation"]}}),
    )
}

fn charged(records: &[Value]) -> f64 {
    of_kind(records, "impression")
        .iter()
        .map(|r| r["cost"].as_f64().unwrap())
        .sum()
}

fn reasons(records: &[Value]) -> Vec<String> {
    of_kind(records, "invalid")
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_scripted_loop_from_one_address_charges_nothing_past_the_rate_limit() {
    let s = TestServer::builder()
        .config(|c| {
            c.rate_limit_per_address = 1;
            c.rate_limit_burst = 6;
        })
        .writable_campaigns(&[paid()])
        .start()
        .await;
    let started = std::time::Instant::now();
    let mut limited = 0;
    let mut urls = Vec::new();
    for i in 0..40 {
        let r = s
            .client
            .post(s.url("/v1/decisions"))
            .json(&request(&format!("L-{i}"), json!({})))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            limited += 1;
            continue;
        }
        let d: Value = r.json().await.unwrap();
        if let Some(u) = d["offers"][0]["tracking"]["impression"].as_str() {
            urls.push(u.to_string());
        }
    }
    for u in &urls {
        assert_eq!(
            s.get_raw(u).await.status().as_u16(),
            204,
            "beacons always answer"
        );
    }
    let seconds = started.elapsed().as_secs_f64().ceil();
    assert!(
        limited >= 30,
        "decisions past the limit are refused: {limited}"
    );
    let records = s.log_records().await;
    let budget = 6.0 + seconds;
    assert!(
        charged(&records) <= budget,
        "charged {} > {budget}",
        charged(&records)
    );
    assert!(
        reasons(&records).iter().any(|r| r == "rate_limited"),
        "{:?}",
        reasons(&records)
    );
}

#[tokio::test]
async fn forwarded_addresses_count_behind_trusted_proxies_only() {
    let s = TestServer::builder()
        .config(|c| {
            c.rate_limit_per_address = 1;
            c.rate_limit_burst = 2;
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .writable_campaigns(&[paid()])
        .start()
        .await;
    let status = |xff: &'static str, i: usize| {
        let s = &s;
        async move {
            s.client
                .post(s.url("/v1/decisions"))
                .header("x-forwarded-for", xff)
                .json(&request(&format!("X-{xff}-{i}"), json!({})))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let a: Vec<u16> = three_in_a_row(|i| status("203.0.113.1", i)).await;
    let b: Vec<u16> = three_in_a_row(|i| status("203.0.113.2", i)).await;
    assert_eq!(a, [200, 200, 429], "one shopper's burst");
    assert_eq!(b, [200, 200, 429], "another shopper has its own");
}

/// Three calls of `f` in a row.
async fn three_in_a_row<F, Fut>(f: F) -> Vec<u16>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(f(i).await);
    }
    out
}

#[tokio::test]
async fn bots_and_too_fast_impressions_are_logged_invalid_and_never_charged() {
    let s = TestServer::builder()
        .config(|c| c.min_render_ms = 150)
        .writable_campaigns(&[paid()])
        .start()
        .await;
    // A crawler asking for offers gets none.
    let r = s
        .client
        .post(s.url("/v1/decisions"))
        .header("user-agent", "Mozilla/5.0 (compatible; bingbot/2.0)")
        .json(&request("BOT-1", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["offers"], json!([]));

    let (_, d) = s.decide(&request("H-1", json!({}))).await;
    let url = d["offers"][0]["tracking"]["impression"]
        .as_str()
        .unwrap()
        .to_string();
    // At once: faster than a page renders.
    assert_eq!(s.get_raw(&url).await.status().as_u16(), 204);
    // A bot fetching the beacon.
    let r = s
        .client
        .get(&url)
        .header("user-agent", "python-requests/2.31")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let records = s.log_records().await;
    assert_eq!(charged(&records), 0.0, "nothing charged yet");
    let mut why = reasons(&records);
    why.sort();
    assert_eq!(why, ["bot_user_agent", "bot_user_agent", "too_fast"]);
    // The page's own beacon, once it has rendered, still counts.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.get_raw(&url).await.status().as_u16(), 204);
    let records = s.log_records().await;
    assert_eq!(charged(&records), 1.0);
}

#[tokio::test]
async fn one_profile_asking_too_often_is_rate_limited() {
    let s = TestServer::builder()
        .config(|c| c.rate_limit_per_profile = 3)
        .writable_campaigns(&[paid()])
        .start()
        .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, _) = s
            .decide(&request(
                &format!("PR-{i}"),
                json!({"customer": {"ids": {"loyalty_id": "L-busy"}}}),
            ))
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (status, _) = s
        .decide(&request(
            "PR-other",
            json!({"customer": {"ids": {"loyalty_id": "L-calm"}}}),
        ))
        .await;
    assert_eq!(status, 200, "another profile is not limited");
}

#[tokio::test]
async fn a_placement_with_publishable_keys_answers_only_pages_that_carry_one() {
    const KEY: &str = "pk_shop_0123456789abcdef";
    let s = TestServer::builder()
        .writable_campaigns(&[paid()])
        .config(|c| {
            c.placements.insert(
                "order_confirmation".into(),
                aftercart::config::PlacementRules {
                    publishable_keys: vec![KEY.into(), "pk_shop_rotated_0123456789".into()],
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    let ask = |tx: &str, key: Option<&str>, admin: bool| {
        let mut r = s
            .client
            .post(s.url("/v1/decisions"))
            .json(&request(tx, json!({})));
        if let Some(k) = key {
            r = r.header("X-Aftercart-Key", k);
        }
        if admin {
            r = r.bearer_auth(ADMIN_KEY);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for (tx, key) in [
        ("ORD-none", None),
        ("ORD-wrong", Some("pk_shop_someone_elses_key")),
    ] {
        let (status, body) = ask(tx, key, false).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "placement_key_required");
        assert_eq!(error_paths(&body), ["X-Aftercart-Key"]);
    }
    let (status, body) = ask("ORD-key", Some(KEY), false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(offered(&body), ["paid"]);
    // Either key of a rotation works, and an admin previewing needs none.
    let (status, _) = ask("ORD-rotated", Some("pk_shop_rotated_0123456789"), false).await;
    assert_eq!(status, 200);
    let (status, _) = ask("ORD-admin", None, true).await;
    assert_eq!(status, 200);
    // A placement without keys stays open.
    let (status, body) = s
        .decide(&request(
            "ORD-pos",
            json!({"placement": "pos_receipt", "channel": "in_store"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    // Refused requests left no trace in the log.
    let records = s.log_records().await;
    let orders: Vec<&str> = records
        .iter()
        .filter_map(|r| r["transaction_id"].as_str())
        .collect();
    assert!(
        !orders.contains(&"ORD-none") && !orders.contains(&"ORD-wrong"),
        "{orders:?}"
    );
    assert!(orders.contains(&"ORD-key"));
}
