//! Decisions from the sample set: every channel gets offers, codecs agree, reloads
//! replay, admin explain and preview.

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test]
async fn every_channel_gets_offers_from_the_sample_campaigns() {
    let s = TestServer::sample().await;
    for (file, channel) in [
        ("decision-online.json", "online"),
        ("decision-app.json", "app"),
        ("decision-in-store.json", "in_store"),
    ] {
        let req = example(file);
        assert_eq!(req["channel"], channel);
        let (status, body) = s.decide(&req).await;
        assert_eq!(status, 200, "{file}: {body}");
        let offers = body["offers"].as_array().unwrap();
        assert!(offers.len() >= 2, "{file} gets at least two offers: {body}");
        assert!(body["decision_id"].as_str().unwrap().starts_with("d_"));
        for (i, o) in offers.iter().enumerate() {
            assert_eq!(o["slot"], i);
            for field in [
                "campaign_id",
                "creative_id",
                "advertiser_id",
                "kind",
                "headline",
            ] {
                assert!(o[field].is_string(), "{file} offer {i} has {field}: {o}");
            }
            for event in ["impression", "click"] {
                let url = o["tracking"][event].as_str().unwrap();
                assert!(
                    url.starts_with(&format!("{}/v1/events/{event}?t=", s.base)),
                    "absolute tracking URL: {url}"
                );
            }
            if o["kind"] == "product" {
                assert_eq!(o["product"]["currency"], "USD");
                assert!(o["product"]["price"].as_f64().unwrap() > 0.0);
            }
        }
        let advertisers: std::collections::HashSet<_> = offers
            .iter()
            .map(|o| o["advertiser_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            advertisers.len(),
            offers.len(),
            "{file}: one offer per advertiser"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn tracking_tokens_are_opaque_and_open_with_the_server_key() {
    let s = TestServer::sample().await;
    let (_, body) = s.decide(&example("decision-in-store.json")).await;
    let offer = &body["offers"][0];
    let url = offer["tracking"]["click"].as_str().unwrap();
    let token = url.split("t=").nth(1).unwrap();
    assert!(
        !token.contains(offer["campaign_id"].as_str().unwrap()),
        "campaign id not readable in the URL"
    );
    let payload = s
        .app
        .decider
        .sealer()
        .open(token)
        .expect("the server's key opens its tokens");
    assert_eq!(payload.campaign, offer["campaign_id"].as_str().unwrap());
    assert_eq!(
        payload.decision.to_string(),
        body["decision_id"].as_str().unwrap()
    );
    assert_eq!(
        payload.location, "store-042",
        "in-store decisions carry the store"
    );
    s.stop().await;
}

async fn post_msgpack(s: &TestServer, req: &Value) -> Value {
    let r = s
        .client
        .post(s.url("/v1/decisions"))
        .header("content-type", MSGPACK)
        .header("accept", MSGPACK)
        .body(rmp_serde::to_vec_named(req).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], MSGPACK);
    rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn json_and_msgpack_give_the_same_decision() {
    let s = TestServer::sample().await;
    for file in [
        "decision-online.json",
        "decision-app.json",
        "decision-in-store.json",
    ] {
        // Decoding: the same request in either codec selects the same campaigns. Without
        // personalisation, so that frequency caps from the first do not change the second.
        let mut req = example(file);
        req["consent"] = json!({"personalization": false, "measurement": true});
        req["transaction"]["id"] = json!(format!("{file}-json"));
        let (_, as_json) = s.decide(&req).await;
        req["transaction"]["id"] = json!(format!("{file}-msgpack"));
        let as_msgpack = post_msgpack(&s, &req).await;
        assert_eq!(offered(&as_json), offered(&as_msgpack), "{file}");

        // Encoding: one decision reads the same in both codecs, field for field.
        let replayed_as_json = s.decide(&req).await.1;
        assert_eq!(as_msgpack, replayed_as_json, "{file}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_reloaded_confirmation_page_gets_the_same_decision() {
    let s = TestServer::sample().await;
    let req = example("decision-online.json");
    let (_, first) = s.decide(&req).await;
    let (_, again) = s.decide(&req).await;
    assert_eq!(first, again, "same decision id, offers and tracking URLs");

    let mut other = req.clone();
    other["transaction"]["id"] = json!("ORD-other");
    let (_, different) = s.decide(&other).await;
    assert_ne!(first["decision_id"], different["decision_id"]);

    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"aftercart_decisions_total{channel="online",outcome="replay"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"aftercart_decisions_total{channel="online",outcome="fill"} 2"#),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_reloads_of_one_order_share_one_decision() {
    let s = TestServer::sample().await;
    let req = example("decision-app.json");
    let answers = futures_join(&s, &req, 16).await;
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|b| b["decision_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one decision for one transaction: {ids:?}");
    s.stop().await;
}

async fn futures_join(s: &TestServer, req: &Value, n: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let client = s.client.clone();
        let url = s.url("/v1/decisions");
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", JSON)
                .json(&req)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn no_fill_is_a_200_with_no_offers() {
    let s = TestServer::sample().await;
    let req = request(
        "ORD-none",
        json!({"placement": "nowhere", "context": {"country": "FR"}}),
    );
    let (status, body) = s.decide(&req).await;
    assert_eq!(status, 200);
    assert_eq!(body["offers"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn explain_says_which_stage_removed_which_campaign() {
    let s = TestServer::builder()
        .campaigns(&[
            campaign("c-audio", "a1", json!({"targeting": {"basket": {"any_categories": ["electronics/audio"]}}})),
            campaign("c-pets", "a2", json!({"targeting": {"basket": {"any_categories": ["electronics"], "none_categories": ["electronics/audio"]}}})),
            campaign("c-app", "a3", json!({"targeting": {"channels": ["app"], "basket": {"any_categories": ["electronics"]}}})),
        ])
        .start()
        .await;
    let mut req = request("ORD-explain", json!({}));
    req["explain"] = json!(true);
    let (status, body) = s.decide_admin(&req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(offered(&body), ["c-audio"]);
    let stages = body["explain"]["stages"].as_array().unwrap();
    let removed = |stage: &str| -> Vec<String> {
        stages
            .iter()
            .filter(|s| s["stage"] == stage)
            .flat_map(|s| {
                s["campaigns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
            })
            .collect()
    };
    assert_eq!(removed("basket.none_categories"), ["c-pets"]);
    assert_eq!(removed("channel"), ["c-app"]);
    assert_eq!(body["explain"]["candidates"], 3);

    let (status, body) = s.decide(&req).await;
    assert_eq!(status, 403, "explain needs the admin key");
    assert_eq!(error_paths(&body), ["explain"]);
    s.stop().await;
}

#[tokio::test]
async fn a_preview_with_a_forced_creative_counts_nothing() {
    let s = TestServer::sample().await;
    let mut req = example("decision-online.json");
    req["test"] = json!(true);
    // A pet-food product the online example's basket would not otherwise get first.
    req["force_creative"] = json!("cr-pawsome-204");
    let (status, body) = s.decide_admin(&req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["offers"][0]["creative_id"], "cr-pawsome-204");
    assert_eq!(body["offers"][0]["campaign_id"], "cmp-pawsome-kibble");
    let (_, again) = s.decide_admin(&req).await;
    assert_ne!(
        again["decision_id"], body["decision_id"],
        "previews are not remembered as the order's decision"
    );
    assert_eq!(again["test"], true);

    req.as_object_mut().unwrap().remove("test");
    let (status, _) = s.decide(&req).await;
    assert_eq!(status, 403, "force_creative needs the admin key");
    let metrics = s.metrics().await;
    // The fill series exist from the start, at 0; a preview leaves them there.
    let fills: Vec<&str> = (metrics.lines())
        .filter(|l| l.contains(r#"outcome="fill""#))
        .collect();
    assert!(
        !fills.is_empty() && fills.iter().all(|l| l.ends_with(" 0")),
        "previews are not counted as fills: {fills:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_examples_match_the_campaigns_their_readme_promises() {
    // Sunday 2026-11-22 20:00 UTC: outside every sample daypart.
    let clock = aftercart::clock::ManualClock::new(1_795_377_600_000);
    let s = TestServer::builder().clock(clock).start().await;
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/README.md"),
    )
    .unwrap();
    let always = readme.split("## Time-dependent").next().unwrap();
    for file in [
        "decision-online.json",
        "decision-app.json",
        "decision-in-store.json",
    ] {
        let mut expected: Vec<String> = always
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells.len() > 2 && cells[1] == file).then(|| cells[2].to_string())
            })
            .collect();
        expected.sort();
        let mut req = example(file);
        req["explain"] = json!(true);
        let (status, body) = s.decide_admin(&req).await;
        assert_eq!(status, 200, "{body}");
        let mut eligible: Vec<String> = body["explain"]["ranking"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["campaign_id"].as_str().unwrap().to_string())
            .collect();
        eligible.sort();
        assert_eq!(eligible, expected, "{file}");
    }
    s.stop().await;
}
