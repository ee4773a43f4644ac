//! Every targeting predicate of the campaign document, matching and not matching.

use crate::support::*;
use aftercart::clock::ManualClock;
use serde_json::{Value, json};

/// Serves exactly one campaign with `targeting` and asks whether `req` gets it.
async fn served(targeting: Value, req: Value) -> bool {
    served_with(
        campaign("c-t", "adv", json!({ "targeting": targeting })),
        req,
        None,
    )
    .await
}

async fn served_with(c: Value, req: Value, clock: Option<std::sync::Arc<ManualClock>>) -> bool {
    let mut b = TestServer::builder().campaigns(&[c]);
    if let Some(clock) = clock {
        b = b.clock(clock);
    }
    let s = b.start().await;
    let (status, body) = s.decide(&req).await;
    assert_eq!(status, 200, "{body}");
    let got = offered(&body) == ["c-t"];
    s.stop().await;
    got
}

fn with(patch: Value) -> Value {
    request("ORD-T", patch)
}

#[tokio::test]
async fn channels_and_placements() {
    assert!(served(json!({"channels": ["online", "app"]}), with(json!({}))).await);
    assert!(!served(json!({"channels": ["in_store"]}), with(json!({}))).await);
    assert!(
        served(
            json!({"placements": ["order_confirmation"]}),
            with(json!({}))
        )
        .await
    );
    assert!(!served(json!({"placements": ["pos_receipt"]}), with(json!({}))).await);
}

#[tokio::test]
async fn countries_regions_and_stores_and_a_missing_field_does_not_match() {
    assert!(
        served(json!({"countries": ["us"]}), with(json!({}))).await,
        "case-insensitive"
    );
    assert!(!served(json!({"countries": ["CA"]}), with(json!({}))).await);
    assert!(
        !served(json!({"countries": ["US"]}), with(json!({"context": {}}))).await,
        "no country in the request"
    );
    assert!(served(json!({"regions": ["CA", "NY"]}), with(json!({}))).await);
    assert!(!served(json!({"regions": ["TX"]}), with(json!({}))).await);
    assert!(served(json!({"store_ids": ["store-042"]}), with(json!({}))).await);
    assert!(!served(json!({"store_ids": ["store-001"]}), with(json!({}))).await);
    assert!(
        !served(
            json!({"store_ids": ["store-042"]}),
            with(json!({"context": {"country": "US"}}))
        )
        .await
    );
}

#[tokio::test]
async fn basket_categories_match_whole_segment_prefixes_case_insensitively() {
    assert!(
        served(
            json!({"basket": {"any_categories": ["electronics"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        served(
            json!({"basket": {"any_categories": ["Electronics/Audio"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        !served(
            json!({"basket": {"any_categories": ["electronicsx"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        !served(
            json!({"basket": {"any_categories": ["electronics/aud"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        !served(
            json!({"basket": {"any_categories": ["electronics/audio/headphones"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        !served(
            json!({"basket": {"none_categories": ["electronics"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        served(
            json!({"basket": {"none_categories": ["grocery"]}}),
            with(json!({}))
        )
        .await
    );
}

#[tokio::test]
async fn basket_skus_and_brands() {
    assert!(
        served(
            json!({"basket": {"any_skus": ["SKU-9", "SKU-1"]}}),
            with(json!({}))
        )
        .await
    );
    assert!(
        !served(json!({"basket": {"any_skus": ["sku-1"]}}), with(json!({}))).await,
        "SKUs are exact"
    );
    assert!(
        served(
            json!({"basket": {"any_brands": ["SONIX"]}}),
            with(json!({}))
        )
        .await,
        "brands ignore case"
    );
    assert!(!served(json!({"basket": {"any_brands": ["Acme"]}}), with(json!({}))).await);
    assert!(
        !served(
            json!({"basket": {"any_brands": ["Sonix"], "any_skus": ["SKU-2"]}}),
            with(json!({}))
        )
        .await,
        "every basket list must match"
    );
}

#[tokio::test]
async fn order_value_in_the_deployment_currency_only() {
    assert!(
        served(json!({"order_value": {"min": 50.0}}), with(json!({}))).await,
        "min is inclusive"
    );
    assert!(!served(json!({"order_value": {"min": 50.01}}), with(json!({}))).await);
    assert!(served(json!({"order_value": {"max": 50.0}}), with(json!({}))).await);
    assert!(!served(json!({"order_value": {"max": 49.99}}), with(json!({}))).await);
    let eur = with(json!({"transaction": {"id": "ORD-EUR", "total": 80.0, "currency": "EUR"}}));
    assert!(
        !served(json!({"order_value": {"min": 10.0}}), eur.clone()).await,
        "another currency never matches"
    );
    assert!(
        served(json!({}), eur).await,
        "but the decision is still served"
    );
}

#[tokio::test]
async fn loyalty_tiers_and_new_or_returning_customers() {
    assert!(
        served(
            json!({"loyalty_tiers": ["Gold", "platinum"]}),
            with(json!({}))
        )
        .await
    );
    assert!(!served(json!({"loyalty_tiers": ["platinum"]}), with(json!({}))).await);
    let anonymous = with(json!({"customer": {}}));
    assert!(!served(json!({"loyalty_tiers": ["gold"]}), anonymous.clone()).await);
    assert!(served(json!({"customer": "returning"}), with(json!({}))).await);
    assert!(!served(json!({"customer": "new"}), with(json!({}))).await);
    assert!(
        !served(json!({"customer": "new"}), anonymous.clone()).await,
        "unknown is neither new nor returning"
    );
    assert!(served(json!({"customer": "any"}), anonymous).await);
}

#[tokio::test]
async fn require_identity_excludes_anonymous_and_unconsented_requests() {
    assert!(served(json!({"require_identity": true}), with(json!({}))).await);
    assert!(
        !served(
            json!({"require_identity": true}),
            with(json!({"customer": {"new_customer": false}}))
        )
        .await
    );
    let no_consent = with(json!({"consent": {"personalization": false, "measurement": true}}));
    assert!(!served(json!({"require_identity": true}), no_consent).await);
}

#[tokio::test]
async fn dayparts_follow_the_campaign_time_zone() {
    // 2026-11-18 is a Wednesday; 14:30 UTC is 09:30 in New York and 06:30 in Los Angeles.
    let wednesday_1430_utc = 1_795_012_200_000;
    let morning_ny = campaign(
        "c-t",
        "adv",
        json!({"timezone": "America/New_York", "targeting": {"dayparts": [{"days": ["wed"], "from_hour": 9, "to_hour": 10}]}}),
    );
    assert!(
        served_with(
            morning_ny.clone(),
            with(json!({})),
            Some(ManualClock::new(wednesday_1430_utc))
        )
        .await
    );
    assert!(
        !served_with(
            morning_ny.clone(),
            with(json!({})),
            Some(ManualClock::new(wednesday_1430_utc + 3_600_000))
        )
        .await,
        "10:30 in New York is outside [9, 10)"
    );
    let mut morning_la = morning_ny.clone();
    morning_la["timezone"] = json!("America/Los_Angeles");
    assert!(
        !served_with(
            morning_la,
            with(json!({})),
            Some(ManualClock::new(wednesday_1430_utc))
        )
        .await
    );
    let mut thursday = morning_ny;
    thursday["targeting"]["dayparts"][0]["days"] = json!(["thu"]);
    assert!(
        !served_with(
            thursday,
            with(json!({})),
            Some(ManualClock::new(wednesday_1430_utc))
        )
        .await
    );
}

#[tokio::test]
async fn flights_and_status() {
    let now = 1_795_012_200_000; // 2026-11-18T14:30:00Z
    let clock = || Some(ManualClock::new(now));
    let ended = campaign("c-t", "adv", json!({"end": "2026-11-18T14:29:59Z"}));
    assert!(!served_with(ended, with(json!({})), clock()).await);
    let future = campaign("c-t", "adv", json!({"start": "2026-11-18T14:30:01Z"}));
    assert!(!served_with(future, with(json!({})), clock()).await);
    let paused = campaign("c-t", "adv", json!({"status": "paused"}));
    assert!(!served_with(paused, with(json!({})), clock()).await);
    let live = campaign("c-t", "adv", json!({"start": "2026-11-18T14:30:00Z"}));
    assert!(served_with(live, with(json!({})), clock()).await);
}
