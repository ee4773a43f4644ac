//! Multi-slot decisions: ranking, distinct advertisers and competitive categories,
//! placement floors and blocklists.

use crate::support::*;
use aftercart::money::Micros;
use serde_json::json;

fn cpm(amount: f64) -> serde_json::Value {
    json!({"model": "cpm", "amount": amount})
}

#[tokio::test]
async fn ranking_is_priority_then_ecpm_and_cpc_uses_the_prior_ctr() {
    let s = TestServer::builder()
        .campaigns(&[
            campaign("c-low", "a1", json!({"bid": cpm(5.0)})),
            campaign("c-high", "a2", json!({"bid": cpm(30.0)})),
            // cpc 2.00 at the 1% prior is an eCPM of 20.
            campaign(
                "c-cpc",
                "a3",
                json!({"bid": {"model": "cpc", "amount": 2.0}}),
            ),
            campaign("c-urgent", "a4", json!({"bid": cpm(1.0), "priority": 1})),
        ])
        .start()
        .await;
    let (_, body) = s.decide(&request("ORD-rank", json!({"slots": 4}))).await;
    assert_eq!(offered(&body), ["c-urgent", "c-high", "c-cpc", "c-low"]);
    s.stop().await;
}

#[tokio::test]
async fn slots_hold_distinct_advertisers_and_competitive_categories() {
    let s = TestServer::builder()
        .campaigns(&[
            campaign(
                "streamly-a",
                "streamly",
                json!({"bid": cpm(40.0), "competitive_category": "video-streaming"}),
            ),
            campaign("streamly-b", "streamly", json!({"bid": cpm(35.0)})),
            campaign(
                "flick",
                "flicktv",
                json!({"bid": cpm(30.0), "competitive_category": "Video-Streaming"}),
            ),
            campaign(
                "meals",
                "freshcrate",
                json!({"bid": cpm(20.0), "competitive_category": "meal-kits"}),
            ),
            campaign("charity", "feedforward", json!({"bid": cpm(10.0)})),
        ])
        .start()
        .await;
    let (_, body) = s.decide(&request("ORD-slots", json!({"slots": 5}))).await;
    assert_eq!(
        offered(&body),
        ["streamly-a", "meals", "charity"],
        "one per advertiser and per category"
    );
    let (_, one) = s.decide(&request("ORD-one", json!({"slots": 1}))).await;
    assert_eq!(offered(&one), ["streamly-a"]);
    let (_, default) = s.decide(&request("ORD-default", json!({}))).await;
    assert_eq!(offered(&default).len(), 1, "slots defaults to 1");
    s.stop().await;
}

#[tokio::test]
async fn placement_floor_and_blocklists_from_the_configuration() {
    let s = TestServer::builder()
        .campaigns(&[
            campaign("cheap", "a1", json!({"bid": cpm(2.0)})),
            campaign(
                "gamble",
                "a2",
                json!({"bid": cpm(50.0), "competitive_category": "gambling"}),
            ),
            campaign("blocked", "acme", json!({"bid": cpm(45.0)})),
            campaign("fine", "a3", json!({"bid": cpm(9.0)})),
        ])
        .config(|c| {
            c.placements.insert(
                "order_confirmation".into(),
                aftercart::config::PlacementRules {
                    floor_ecpm: Micros::from_major(5.0).unwrap(),
                    blocked_advertisers: vec!["acme".into()],
                    blocked_categories: vec!["gambling".into()],
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    let (_, body) = s.decide(&request("ORD-floor", json!({"slots": 4}))).await;
    assert_eq!(offered(&body), ["fine"]);
    let (_, other) = s
        .decide(&request(
            "ORD-elsewhere",
            json!({"slots": 4, "placement": "receipt_email"}),
        ))
        .await;
    assert_eq!(
        offered(&other).len(),
        4,
        "rules apply to their placement only"
    );
    s.stop().await;
}
