//! `GET /v1/campaigns/{id}/report`: the advertiser's own closed-loop row, computed from
//! the log exactly as `aftercart report` computes it, and nobody else's.

use crate::support::*;
use aftercart::clock::ManualClock;
use serde_json::{Value, json};
use std::sync::Arc;

/// 2026-11-23T00:00:00Z.
const MIDNIGHT: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

/// Seen and clicked on the web by a device and loyalty card, bought in a store by the
/// card alone: revenue the web never sees.
async fn web_exposure_then_store_purchase(s: &TestServer, clock: &ManualClock) {
    let (status, d) = s
        .decide(&request(
            "web-1",
            json!({"customer": {"ids": {"device_id": "dev-r1", "loyalty_id": "L-r1"}}}),
        ))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(offered(&d), vec!["acme-1"], "{d}");
    for event in ["impression", "click"] {
        let url = d["offers"][0]["tracking"][event].as_str().unwrap();
        let r = s.get_raw(url).await;
        assert!(r.status().is_success() || r.status().is_redirection());
    }
    // The shopper walks into a store an hour later.
    clock.advance(HOUR);
    let (status, body) = s
        .convert(&conversion(
            "POS-1",
            json!({
                "timestamp": "2026-11-23T01:00:00Z",
                "total": 30.0,
                "customer": {"ids": {"loyalty_id": "L-r1"}},
                "items": [{"sku": "SKU-9", "category": "grocery/snacks", "brand": "Crunchy", "price": 30.0, "quantity": 1}]
            }),
        ))
        .await;
    assert_eq!(status, 202, "{body}");
}

async fn server() -> (TestServer, Arc<ManualClock>, String, String) {
    let acme_campaign = campaign(
        "acme-1",
        "acme",
        json!({"conversion": {"brands": ["Crunchy"]}}),
    );
    // Never served (no such placement), but owned by someone else.
    let other_campaign = campaign(
        "other-1",
        "other",
        json!({"targeting": {"placements": ["nowhere"]}}),
    );
    let clock = ManualClock::new(MIDNIGHT);
    let s = TestServer::builder()
        .clock(clock.clone())
        .writable_campaigns(&[acme_campaign, other_campaign])
        .start()
        .await;
    let acme = s.advertiser("acme").await;
    let other = s.advertiser("other").await;
    (s, clock, acme, other)
}

fn report_path(id: &str, query: &str) -> String {
    format!("/v1/campaigns/{id}/report{query}")
}

#[tokio::test]
async fn an_advertiser_sees_the_in_store_revenue_its_web_offer_drove() {
    let (s, clock, acme, _) = server().await;
    web_exposure_then_store_purchase(&s, &clock).await;

    let (status, row) = s
        .call("GET", &report_path("acme-1", ""), Some(&acme), None)
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["campaign_id"], "acme-1");
    assert_eq!(row["advertiser_id"], "acme");
    assert_eq!(row["decisions"], 1);
    assert_eq!(row["impressions"], 1);
    assert_eq!(row["clicks"], 1);
    assert_eq!(row["conversions"], 1, "{row}");
    assert_eq!(row["cross_channel_conversions"], 1);
    assert_eq!(row["revenue"]["in_store"], 30.0, "{row}");
    assert_eq!(row["revenue"]["online"], 0.0);
    // cpm 10: one impression costs 0.01.
    assert_eq!(row["spend"], 0.01);
    assert_eq!(row["roas"], 3000.0);
    assert_eq!(row["roas_online_only"], 0.0);
    assert_eq!(row["period"]["click_window_secs"], 14 * 86_400);
    assert_eq!(row["log"]["last_ts"], "2026-11-23T01:00:00.000Z", "{row}");
    assert!(row["log"]["records"].as_u64().unwrap() >= 4, "{row}");

    // The same row as the CLI's, read from the same log.
    let out = std::process::Command::new(bin())
        .args([
            "report",
            "--format",
            "json",
            "--campaign",
            "acme-1",
            "--data",
        ])
        .arg(s.data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli_row = &cli["campaigns"][0];
    for field in [
        "conversions",
        "revenue",
        "spend",
        "roas",
        "impressions",
        "clicks",
    ] {
        assert_eq!(row[field], cli_row[field], "{field}");
    }
}

#[tokio::test]
async fn only_the_owner_measurement_and_admin_read_a_report() {
    let (s, clock, acme, other) = server().await;
    web_exposure_then_store_purchase(&s, &clock).await;
    let (_, measurement) = s.key("measurement").await;
    let (_, ingest) = s.key("ingest").await;
    let path = report_path("acme-1", "");
    for (who, key, expected) in [
        ("no key", None, 401),
        ("forged", Some("ack_nope_nope"), 401),
        ("ingest", Some(ingest.as_str()), 403),
        ("other advertiser", Some(other.as_str()), 403),
        ("owner", Some(acme.as_str()), 200),
        ("measurement", Some(measurement.as_str()), 200),
        ("admin", Some(ADMIN_KEY), 200),
    ] {
        let (status, body) = s.call("GET", &path, key, None).await;
        assert_eq!(status, expected, "{who}: {body}");
        if status != 200 {
            assert!(
                body["campaign_id"].is_null(),
                "{who} learnt nothing: {body}"
            );
        }
    }

    // A deleted campaign is still reported from the log, to its owner only.
    let (status, _) = s
        .call("DELETE", "/v1/campaigns/acme-1", Some(&acme), None)
        .await;
    assert_eq!(status, 204);
    let (status, row) = s.call("GET", &path, Some(&acme), None).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["deleted"], true);
    assert_eq!(row["conversions"], 1);
    let (status, body) = s.call("GET", &path, Some(&other), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_paths(&body), vec!["id"]);

    // Nothing in the log: 404 for everyone allowed to ask.
    let (status, _) = s
        .call("GET", &report_path("never-1", ""), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_period_and_windows_come_from_the_query_and_bad_ones_are_named() {
    let (s, clock, acme, _) = server().await;
    web_exposure_then_store_purchase(&s, &clock).await;

    // A period before anything happened holds nothing of the delivery.
    let (status, row) = s
        .call(
            "GET",
            &report_path("acme-1", "?from=2020-01-01&to=2020-01-31"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["impressions"], 0);
    assert_eq!(row["conversions"], 0);
    assert_eq!(row["period"]["from"], "2020-01-01T00:00:00.000Z", "{row}");

    // One-minute windows: the purchase came an hour later, so nothing is attributed.
    let (status, row) = s
        .call(
            "GET",
            &report_path("acme-1", "?click_window=1m&view_window=1m"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["impressions"], 1);
    assert_eq!(row["conversions"], 0, "{row}");

    for (query, paths) in [
        ("?from=yesterday", vec!["from"]),
        ("?to=2026-13-01&click_window=7x", vec!["to", "click_window"]),
        ("?from=2026-11-02&to=2026-11-01", vec!["to"]),
        ("?campaign=other-1", vec!["campaign"]),
        ("?view_window=-1d", vec!["view_window"]),
    ] {
        let (status, body) = s
            .call("GET", &report_path("acme-1", query), Some(&acme), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(error_paths(&body), paths, "{query}: {body}");
    }
    let (status, _) = s
        .call("POST", &report_path("acme-1", ""), Some(&acme), None)
        .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn an_erased_shoppers_conversions_vanish_from_the_report() {
    let (s, clock, acme, _) = server().await;
    web_exposure_then_store_purchase(&s, &clock).await;
    let path = report_path("acme-1", "");
    let (_, before) = s.call("GET", &path, Some(&acme), None).await;
    assert_eq!(before["conversions"], 1, "{before}");

    let (status, body) = s
        .call(
            "DELETE",
            "/v1/profiles",
            Some(ADMIN_KEY),
            Some(&json!({"ids": {"loyalty_id": "L-r1"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, after) = s.call("GET", &path, Some(&acme), None).await;
    assert_eq!(status, 200, "{after}");
    // What was delivered and paid for stays; what the person bought is forgotten.
    assert_eq!(after["impressions"], 1);
    assert_eq!(after["spend"], 0.01);
    assert_eq!(after["conversions"], 0, "{after}");
    assert_eq!(after["revenue"]["total"], 0.0);
    assert_eq!(after["roas"], 0.0);
}
