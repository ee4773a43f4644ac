//! `aftercart simulate` as the report's oracle: a population driven through the real
//! server's HTTP API with a known true lift, then the report read from the log it left.

use crate::support::*;
use aftercart::measure::{self, Options as ReportOptions};
use aftercart::simulate::{self, Options};
use serde_json::json;

fn holdout_campaign(id: &str, brand: &str) -> serde_json::Value {
    campaign(
        id,
        id,
        json!({
            "holdout_percent": 40,
            "conversion": {"brands": [brand]},
            "creatives": [{"id": format!("{id}-cr"), "kind": "offer", "headline": brand,
                "click_url": "https://shop.example/x"}]
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_finds_the_simulated_truth() {
    let s = TestServer::builder()
        .config(|c| {
            // Fixed secrets: the same profiles, so the same holdout groups, every run.
            c.identity_secret = Some([7; 32]);
            c.token_secret = Some([9; 32]);
        })
        .writable_campaigns(&[
            holdout_campaign("sim-works", "Alpha"),
            holdout_campaign("sim-does-nothing", "Beta"),
        ])
        .start()
        .await;
    let options = Options {
        server: s.base.clone(),
        key: ADMIN_KEY.into(),
        shoppers: 1_000,
        visits: 2,
        seed: 11,
        base_rate: 0.30,
        lift: 0.0,
        lifts: [("sim-works".to_string(), 0.5)].into(),
        render_ms: 0,
        concurrency: 8,
        currency: "USD".into(),
    };
    let truth = simulate::run(&options, &|_| {}).await.unwrap();
    assert!(truth.failures.is_empty(), "{:?}", truth.failure_examples);
    assert!(truth.impressions > 1_000 && truth.clicks > 50, "{truth:?}");

    let data = s.data.path().to_path_buf();
    let report =
        tokio::task::spawn_blocking(move || measure::report(&data, &ReportOptions::default()))
            .await
            .unwrap()
            .unwrap();

    // Delivery: every offer, impression and click the simulator saw counted is there.
    assert_eq!(report.totals.decisions, truth.offers);
    assert_eq!(report.totals.impressions, truth.impressions);
    assert_eq!(report.totals.clicks, truth.clicks);

    // Identity resolution: exactly what a perfect resolver reaches from the identifiers
    // the visits brought together; cash in stores keeps it below 100%.
    assert_eq!(report.overall.purchases, truth.purchases);
    assert_eq!(report.overall.resolved_purchases, truth.resolved_purchases);
    let rate = truth.identity_resolution_rate.unwrap();
    assert!((0.8..0.999).contains(&rate), "resolution {rate}");

    // Incrementality: the interval covers the true lift, for the campaign that works
    // (and it is told apart from zero) and for the one that does nothing.
    let works = report.campaign("sim-works").unwrap();
    let lift = works.holdout.as_ref().unwrap().lift.unwrap();
    assert!(lift.low <= 0.5 && 0.5 <= lift.high, "{lift:?}");
    assert!(
        lift.low > 0.0,
        "a +50% lift on 1,000 shoppers is detected: {lift:?}"
    );
    let nothing = report.campaign("sim-does-nothing").unwrap();
    let lift = nothing.holdout.as_ref().unwrap().lift.unwrap();
    assert!(lift.low <= 0.0 && 0.0 <= lift.high, "{lift:?}");

    // The groups are the simulator's: offered shoppers against held-out ones, as far
    // as a log can know them (an offer made to a cash customer has no profile to count
    // it for, and a purchase paid in cash has no buyer).
    let t = truth
        .campaigns
        .iter()
        .find(|c| c.campaign_id == "sim-works")
        .unwrap();
    let h = works.holdout.as_ref().unwrap();
    let share = h.control.profiles as f64 / (h.control.profiles + h.exposed.profiles) as f64;
    assert!((0.34..0.46).contains(&share), "held out {share}");
    assert_eq!(h.exposed.profiles, t.offered_known, "{h:?} vs {t:?}");
    assert_eq!(
        h.exposed.converted, t.offered_known_bought_known,
        "{h:?} vs {t:?}"
    );
}
