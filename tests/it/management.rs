//! Keys, roles and the campaigns API: who may do what, all-or-nothing uploads that are
//! live for the next decision, deletes, approval, restarts and the audit trail.

use crate::support::*;
use serde_json::{Value, json};

/// A campaign that wins `order_confirmation` online with its priority 1 (admin only).
fn winner(id: &str, advertiser: &str) -> Value {
    campaign(
        id,
        advertiser,
        json!({"priority": 1, "targeting": {"placements": ["order_confirmation"]}}),
    )
}

async fn writable() -> TestServer {
    TestServer::builder().writable_campaigns(&[]).start().await
}

#[tokio::test]
async fn every_management_endpoint_checks_the_key_and_its_role() {
    let s = writable().await;
    let acme = s.advertiser("acme").await;
    let other = s.advertiser("other").await;
    let (_, ingest) = s.key("ingest").await;
    let (_, measurement) = s.key("measurement").await;
    let (revoked_id, revoked) = s.key("ingest").await;
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/v1/keys/{revoked_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(&acme),
            Some(&campaign("acme-1", "acme", json!({}))),
        )
        .await;
    assert_eq!(status, 201);

    let sku_feed = json!([{"sku": "SKU-1", "location": "online", "quantity": 3}]);
    let acme_doc = campaign("acme-1", "acme", json!({}));
    // (method, path, body, [no key, forged, revoked, ingest, measurement, other advertiser, owner, admin])
    let cases: Vec<(&str, String, Option<Value>, [u16; 8])> = vec![
        (
            "GET",
            "/v1/advertisers".into(),
            None,
            [401, 401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/v1/advertisers".into(),
            Some(json!({"id": "n1", "name": "N"})),
            [401, 401, 401, 403, 403, 403, 403, 201],
        ),
        (
            "GET",
            "/v1/keys".into(),
            None,
            [401, 401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"role": "measurement"})),
            [401, 401, 401, 403, 403, 403, 403, 201],
        ),
        (
            "DELETE",
            "/v1/keys/0000000000000000".into(),
            None,
            [401, 401, 401, 403, 403, 403, 403, 404],
        ),
        (
            "GET",
            "/v1/campaigns".into(),
            None,
            [401, 401, 401, 403, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/campaigns/acme-1".into(),
            None,
            [401, 401, 401, 403, 403, 403, 200, 200],
        ),
        (
            "PUT",
            "/v1/campaigns/acme-1".into(),
            Some(acme_doc.clone()),
            [401, 401, 401, 403, 403, 403, 200, 200],
        ),
        (
            "POST",
            "/v1/campaigns/batch".into(),
            Some(json!([acme_doc])),
            [401, 401, 401, 403, 403, 403, 200, 200],
        ),
        (
            "PUT",
            "/v1/inventory".into(),
            Some(sku_feed),
            [401, 401, 401, 200, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/v1/inventory/SKU-1".into(),
            None,
            [401, 401, 401, 200, 200, 403, 403, 200],
        ),
        (
            "POST",
            "/v1/conversions".into(),
            Some(conversion("AUTH-1", json!({}))),
            [401, 401, 401, 202, 403, 403, 403, 202],
        ),
        (
            "GET",
            "/v1/log?max=1".into(),
            None,
            [401, 401, 401, 403, 200, 403, 403, 200],
        ),
        (
            "DELETE",
            "/v1/campaigns/acme-1".into(),
            None,
            [401, 401, 401, 403, 403, 403, 204, 404],
        ),
    ];
    // Change the secret's last character to one it certainly is not.
    let last = if acme.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &acme[..acme.len() - 1]);
    let keys: [Option<&str>; 8] = [
        None,
        Some(&forged),
        Some(&revoked),
        Some(&ingest),
        Some(&measurement),
        Some(&other),
        Some(&acme),
        Some(ADMIN_KEY),
    ];
    let names = [
        "no key",
        "forged",
        "revoked",
        "ingest",
        "measurement",
        "other advertiser",
        "owner",
        "admin",
    ];
    for (method, path, body, expected) in &cases {
        for (i, key) in keys.iter().enumerate() {
            let (status, reply) = s.call(method, path, *key, body.as_ref()).await;
            assert_eq!(
                status, expected[i],
                "{method} {path} with {}: {reply}",
                names[i]
            );
            if status == 401 || status == 403 {
                assert!(reply["error"]["code"].is_string(), "{reply}");
            }
        }
    }
}

#[tokio::test]
async fn an_upload_wins_the_very_next_decision_and_a_delete_stops_it_at_once() {
    let s = writable().await;
    let (status, body) = s
        .call(
            "PUT",
            "/v1/campaigns/flash-1",
            Some(ADMIN_KEY),
            Some(&winner("flash-1", "flash")),
        )
        .await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(1)), "{body}");
    let (_, d) = s.decide(&request("T-1", json!({}))).await;
    assert_eq!(
        offered(&d).first().map(String::as_str),
        Some("flash-1"),
        "{d}"
    );

    // Replacing it is a 200 with the next version; the same document again changes nothing.
    let mut doc = winner("flash-1", "flash");
    doc["name"] = json!("renamed");
    let (status, body) = s
        .call("PUT", "/v1/campaigns/flash-1", Some(ADMIN_KEY), Some(&doc))
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)));
    let (status, body) = s
        .call("PUT", "/v1/campaigns/flash-1", Some(ADMIN_KEY), Some(&doc))
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)));
    let (_, got) = s
        .call("GET", "/v1/campaigns/flash-1", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(got["name"], "renamed");

    let (status, _) = s
        .call("DELETE", "/v1/campaigns/flash-1", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 204);
    for i in 0..20 {
        let (_, d) = s.decide(&request(&format!("T-after-{i}"), json!({}))).await;
        assert!(!offered(&d).contains(&"flash-1".to_string()), "{d}");
    }
    let folder = s.data.path().join("campaigns");
    assert!(!folder.join("flash-1.json").exists());
    let moved: Vec<_> = std::fs::read_dir(folder.join(".deleted"))
        .unwrap()
        .collect();
    assert_eq!(moved.len(), 1, "the file moved to .deleted/");
    let (status, _) = s
        .call("GET", "/v1/campaigns/flash-1", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);

    let audit: Vec<(String, u64)> = of_kind(&s.log_records().await, "campaign")
        .iter()
        .filter(|r| r["campaign_id"] == "flash-1")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        audit,
        [
            ("upsert".into(), 1),
            ("upsert".into(), 2),
            ("delete".into(), 3)
        ]
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_campaign_changes_nothing() {
    let s = writable().await;
    let mut bad = winner("b-2", "acme");
    bad["bid"]["amount"] = json!(-1);
    bad["creatives"][0]["click_url"] = json!("javascript:alert(1)");
    let batch = json!([winner("b-1", "acme"), bad, winner("b-3", "zeta")]);
    let (status, body) = s
        .call("POST", "/v1/campaigns/batch", Some(ADMIN_KEY), Some(&batch))
        .await;
    assert_eq!(status, 400, "{body}");
    let paths = error_paths(&body);
    assert!(paths.contains(&"[1].bid.amount".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"[1].creatives[0].click_url".to_string()),
        "{paths:?}"
    );
    for id in ["b-1", "b-2", "b-3"] {
        let (status, _) = s
            .call("GET", &format!("/v1/campaigns/{id}"), Some(ADMIN_KEY), None)
            .await;
        assert_eq!(status, 404, "{id} must not exist");
        assert!(
            !s.data
                .path()
                .join("campaigns")
                .join(format!("{id}.json"))
                .exists()
        );
    }
    let audit = of_kind(&s.log_records().await, "campaign")
        .into_iter()
        .filter(|r| {
            r["campaign_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("b-"))
        })
        .count();
    assert_eq!(audit, 0);

    // Duplicate ids in one batch are an error too; the fixed batch applies whole.
    let dup = json!([winner("b-1", "acme"), winner("b-1", "acme")]);
    let (status, body) = s
        .call("POST", "/v1/campaigns/batch", Some(ADMIN_KEY), Some(&dup))
        .await;
    assert_eq!(
        (status, error_paths(&body)),
        (400, vec!["[1].id".to_string()])
    );
    let good = json!([
        winner("b-1", "acme"),
        winner("b-2", "beta"),
        winner("b-3", "zeta")
    ]);
    let (status, body) = s
        .call("POST", "/v1/campaigns/batch", Some(ADMIN_KEY), Some(&good))
        .await;
    assert_eq!((status, body["created"].as_u64()), (200, Some(3)), "{body}");
    let (_, d) = s.decide(&request("T-b", json!({"slots": 3}))).await;
    let mut got = offered(&d);
    got.sort();
    assert_eq!(got, ["b-1", "b-2", "b-3"]);
}

#[tokio::test]
async fn advertiser_keys_manage_only_their_own_campaigns_and_never_the_priority() {
    let s = writable().await;
    let acme = s.advertiser("acme").await;
    let zeta = s.advertiser("zeta").await;
    let doc = campaign("acme-1", "acme", json!({}));
    let (status, _) = s
        .call("PUT", "/v1/campaigns/acme-1", Some(&acme), Some(&doc))
        .await;
    assert_eq!(status, 201);

    // Another advertiser's campaign, or one naming another advertiser: 403.
    let (status, body) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(&zeta),
            Some(&campaign("acme-1", "zeta", json!({}))),
        )
        .await;
    assert_eq!(
        (status, error_paths(&body)),
        (403, vec!["id".to_string()]),
        "{body}"
    );
    let (status, body) = s
        .call(
            "PUT",
            "/v1/campaigns/z-1",
            Some(&zeta),
            Some(&campaign("z-1", "acme", json!({}))),
        )
        .await;
    assert_eq!(
        (status, error_paths(&body)),
        (403, vec!["advertiser".to_string()]),
        "{body}"
    );
    // A campaign file naming an advertiser never created: only the admin manages it.
    let (status, _) = s
        .call("GET", "/v1/campaigns/cmp-streamly-trial", Some(&acme), None)
        .await;
    assert_eq!(status, 403);

    // Priority: only the admin sets it; an advertiser's re-upload keeps the admin's.
    let (status, body) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(&acme),
            Some(&campaign("acme-1", "acme", json!({"priority": 1}))),
        )
        .await;
    assert_eq!(
        (status, error_paths(&body)),
        (403, vec!["priority".to_string()])
    );
    let (status, _) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(ADMIN_KEY),
            Some(&campaign("acme-1", "acme", json!({"priority": 3}))),
        )
        .await;
    assert_eq!(status, 200);
    let mut edited = campaign("acme-1", "acme", json!({}));
    edited["name"] = json!("edited by acme");
    let (status, _) = s
        .call("PUT", "/v1/campaigns/acme-1", Some(&acme), Some(&edited))
        .await;
    assert_eq!(status, 200);
    let (_, got) = s
        .call("GET", "/v1/campaigns/acme-1", Some(&acme), None)
        .await;
    assert_eq!(
        (got["priority"].as_u64(), got["name"].as_str()),
        (Some(3), Some("edited by acme"))
    );

    // Listing shows one's own only; the admin sees everything.
    let (_, mine) = s.call("GET", "/v1/campaigns", Some(&acme), None).await;
    let ids: Vec<&str> = mine["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-1"]);
    let (_, all) = s
        .call("GET", "/v1/campaigns?limit=5", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(all["campaigns"].as_array().unwrap().len(), 5);
    assert!(all["next"].is_string(), "{all}");

    // The audit trail names the key that made each change.
    let records = s.log_records().await;
    let by: Vec<&str> = of_kind(&records, "campaign")
        .iter()
        .filter(|r| r["campaign_id"] == "acme-1")
        .map(|r| r["changed_by"].as_str().unwrap())
        .collect();
    assert_eq!(by.len(), 3);
    assert_eq!(by[1], "admin");
    assert_eq!(by[0], by[2], "both acme changes carry acme's key id");
    assert_ne!(by[0], "admin");
}

#[tokio::test]
async fn uploads_need_approval_when_configured() {
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .config(|c| c.require_approval = true)
        .start()
        .await;
    let acme = s.advertiser("acme").await;
    let doc = campaign(
        "acme-1",
        "acme",
        json!({"targeting": {"placements": ["order_confirmation"]}}),
    );
    let (status, body) = s
        .call("PUT", "/v1/campaigns/acme-1", Some(&acme), Some(&doc))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("pending_review"))
    );
    let (_, d) = s.decide(&request("T-1", json!({"slots": 10}))).await;
    assert!(
        !offered(&d).contains(&"acme-1".to_string()),
        "not before approval"
    );
    let (status, _) = s
        .call("PUT", "/v1/campaigns/acme-1", Some(ADMIN_KEY), Some(&doc))
        .await;
    assert_eq!(status, 200);
    let (_, d) = s.decide(&request("T-2", json!({"slots": 10}))).await;
    assert!(offered(&d).contains(&"acme-1".to_string()), "{d}");
}

#[tokio::test]
async fn uploads_keys_and_versions_survive_a_restart() {
    let s = writable().await;
    let acme = s.advertiser("acme").await;
    let (status, _) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(&acme),
            Some(&winner_for("acme-1", "acme")),
        )
        .await;
    assert_eq!(status, 201);
    let data = s.stop_keeping_data().await;

    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    let (status, got) = s
        .call("GET", "/v1/campaigns/acme-1", Some(&acme), None)
        .await;
    assert_eq!(
        status, 200,
        "the advertiser key and the upload are both still there: {got}"
    );
    let (status, body) = s
        .call(
            "PUT",
            "/v1/campaigns/acme-1",
            Some(&acme),
            Some(&campaign("acme-1", "acme", json!({"name": "v2"}))),
        )
        .await;
    assert_eq!(
        (status, body["version"].as_u64()),
        (200, Some(2)),
        "versions continue"
    );
    // Nothing was logged again at start: the folder matched the log.
    let starts = of_kind(&s.log_records().await, "campaign")
        .iter()
        .filter(|r| r["campaign_id"] == "acme-1")
        .count();
    assert_eq!(starts, 2);
}

/// Like [`winner`] but without the admin-only priority.
fn winner_for(id: &str, advertiser: &str) -> Value {
    campaign(
        id,
        advertiser,
        json!({"targeting": {"placements": ["order_confirmation"]}}),
    )
}

#[tokio::test]
async fn a_file_changed_while_the_server_was_down_is_logged_at_start() {
    let s = writable().await;
    let data = s.stop_keeping_data().await;
    let file = data
        .path()
        .join("campaigns")
        .join("cmp-streamly-trial.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["name"] = json!("edited by hand");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    std::fs::remove_file(data.path().join("campaigns").join("cmp-glowlab-serum.json")).ok();

    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    let records = s.log_records().await;
    let trail: Vec<(String, String, u64, String)> = of_kind(&records, "campaign")
        .iter()
        .filter(|r| {
            r["campaign_id"] == "cmp-streamly-trial" || r["campaign_id"] == "cmp-glowlab-serum"
        })
        .map(|r| {
            (
                r["campaign_id"].as_str().unwrap().into(),
                r["action"].as_str().unwrap().into(),
                r["version"].as_u64().unwrap(),
                r["changed_by"].as_str().unwrap().into(),
            )
        })
        .collect();
    let edited = trail.iter().rfind(|t| t.0 == "cmp-streamly-trial").unwrap();
    assert_eq!(
        (edited.1.as_str(), edited.2, edited.3.as_str()),
        ("upsert", 2, "folder")
    );
    let removed = (trail.iter().rfind(|t| t.0 == "cmp-glowlab-serum")).unwrap();
    assert_eq!(
        (removed.1.as_str(), removed.2, removed.3.as_str()),
        ("delete", 2, "folder")
    );
}

#[tokio::test]
async fn msgpack_uploads_and_bad_ids_in_the_path() {
    let s = writable().await;
    let doc = winner("mp-1", "acme");
    let r = s
        .client
        .put(s.url("/v1/campaigns/mp-1"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", MSGPACK)
        .header("accept", MSGPACK)
        .body(rmp_serde::to_vec_named(&doc).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["id"], "mp-1");

    for path in [
        "/v1/campaigns/..",
        "/v1/campaigns/a%2Fb",
        "/v1/campaigns/%2E%2E",
    ] {
        let (status, body) = s.call("PUT", path, Some(ADMIN_KEY), Some(&doc)).await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
    }
    let (status, body) = s
        .call("PUT", "/v1/campaigns/other-id", Some(ADMIN_KEY), Some(&doc))
        .await;
    assert_eq!((status, error_paths(&body)), (400, vec!["id".to_string()]));
    assert!(!s.data.path().join("campaigns").join("..json").exists());
}

#[tokio::test]
async fn stats_show_live_delivery_and_match_the_log() {
    let s = writable().await;
    let acme = s.advertiser("acme").await;
    let mut doc = winner("st-1", "acme");
    doc["budget"] = json!({"daily": 100.0, "total": 1000.0});
    doc["bid"] = json!({"model": "cpm", "amount": 2000.0});
    doc["pacing"] = json!("asap");
    let (status, _) = s
        .call("PUT", "/v1/campaigns/st-1", Some(ADMIN_KEY), Some(&doc))
        .await;
    assert_eq!(status, 201);
    let mut impressions = 0;
    for i in 0..6 {
        let (_, d) = s.decide(&request(&format!("T-st-{i}"), json!({}))).await;
        let o = &d["offers"][0];
        assert_eq!(o["campaign_id"], "st-1");
        if i % 2 == 0 {
            let r = s
                .get_raw(o["tracking"]["impression"].as_str().unwrap())
                .await;
            assert_eq!(r.status().as_u16(), 204);
            impressions += 1;
        }
        if i == 0 {
            s.get_raw(o["tracking"]["click"].as_str().unwrap()).await;
        }
    }
    let zeta = s.advertiser("zeta").await;
    let (status, st) = s
        .call("GET", "/v1/campaigns/st-1/stats", Some(&zeta), None)
        .await;
    assert_eq!(status, 403, "not zeta's campaign: {st}");
    let (status, st) = s
        .call("GET", "/v1/campaigns/st-1/stats", Some(&acme), None)
        .await;
    assert_eq!(status, 200, "{st}");
    let records = s.log_records().await;
    let count = |kind: &str| {
        of_kind(&records, kind)
            .iter()
            .filter(|r| r["campaign_id"] == "st-1")
            .count() as u64
    };
    assert_eq!(st["decisions"].as_u64(), Some(count("decision")));
    assert_eq!(st["impressions"].as_u64(), Some(count("impression")));
    assert_eq!(st["clicks"].as_u64(), Some(count("click")));
    assert_eq!(
        (st["decisions"].as_u64(), st["impressions"].as_u64()),
        (Some(6), Some(impressions))
    );
    let charged: f64 = of_kind(&records, "impression")
        .iter()
        .filter(|r| r["campaign_id"] == "st-1")
        .map(|r| r["cost"].as_f64().unwrap())
        .sum();
    assert!(
        (st["spend"]["today"].as_f64().unwrap() - charged).abs() < 1e-6,
        "{st}"
    );
    assert!((charged - 6.0).abs() < 1e-9, "3 impressions at 2.0 each");
    assert!((st["budget"]["left_today"].as_f64().unwrap() - 94.0).abs() < 1e-6);
    assert_eq!(st["pacing"]["mode"], "asap");
    assert_eq!(
        s.call("GET", "/v1/campaigns/nope/stats", Some(ADMIN_KEY), None)
            .await
            .0,
        404
    );
    // The same figures after a restart: rebuilt from the checkpoint and the log.
    let data = s.stop_keeping_data().await;
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    let (_, again) = s
        .call("GET", "/v1/campaigns/st-1/stats", Some(ADMIN_KEY), None)
        .await;
    for field in ["decisions", "impressions", "clicks"] {
        assert_eq!(again[field], st[field], "{field} after a restart");
    }
    assert_eq!(again["spend"]["total"], st["spend"]["total"]);
}
