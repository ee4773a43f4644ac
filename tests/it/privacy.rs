//! Subject access and erasure: what is known of a person, and forgetting it everywhere
//! (graph, caps, readers, restarts); raw e-mail addresses never reach the disk.

use crate::support::*;
use serde_json::{Value, json};

fn capped() -> Value {
    campaign(
        "capped",
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}],
               "targeting": {"placements": ["order_confirmation"]}}),
    )
}

fn ask(tx: &str, ids: Value) -> Value {
    request(tx, json!({"customer": {"ids": ids}}))
}

fn shows(d: &Value) -> bool {
    offered(d).iter().any(|c| c == "capped")
}

/// Every file under `dir`, read whole.
fn all_bytes(dir: &std::path::Path, out: &mut Vec<u8>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            all_bytes(&path, out);
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
}

#[tokio::test]
async fn subject_access_shows_the_linked_identifiers_and_history() {
    let s = TestServer::builder()
        .writable_campaigns(&[capped()])
        .start()
        .await;
    let (_, d) = s
        .decide(&ask(
            "P-1",
            json!({"loyalty_id": "L-7", "device_id": "d-7"}),
        ))
        .await;
    assert!(shows(&d));
    let c = conversion(
        "P-ORD",
        json!({"customer": {"ids": {"loyalty_id": "L-7", "email": "Kim@Example.com"}}}),
    );
    assert_eq!(s.convert(&c).await.0, 202);
    let (status, p) = s
        .call("GET", "/v1/profiles?device_id=d-7", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200, "{p}");
    let mut kinds: Vec<&str> = p["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["device_id", "email_sha256", "loyalty_id"]);
    assert_eq!(
        (p["exposures"].as_u64(), p["conversions"].as_u64()),
        (Some(1), Some(1)),
        "{p}"
    );
    assert!(p["first_seen"].is_string());
    let (status, same) = s
        .call(
            "GET",
            "/v1/profiles?email=kim%40example.com",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((status, &same["profile"]), (200, &p["profile"]));
    assert_eq!(
        s.call(
            "GET",
            "/v1/profiles?device_id=nobody",
            Some(ADMIN_KEY),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        s.call("GET", "/v1/profiles?colour=red", Some(ADMIN_KEY), None)
            .await
            .0,
        400
    );
    assert_eq!(
        s.call("GET", "/v1/profiles?device_id=d-7", None, None)
            .await
            .0,
        401
    );
    let (_, ingest) = s.key("ingest").await;
    assert_eq!(
        s.call("GET", "/v1/profiles?device_id=d-7", Some(&ingest), None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn erasure_reaches_the_graph_caps_readers_and_restarts() {
    let s = TestServer::builder()
        .writable_campaigns(&[capped()])
        .start()
        .await;
    let (_, d) = s
        .decide(&ask(
            "E-1",
            json!({"loyalty_id": "L-1", "device_id": "d-1"}),
        ))
        .await;
    assert!(shows(&d));
    let imp = d["offers"][0]["tracking"]["impression"]
        .as_str()
        .unwrap()
        .to_string();
    let c = conversion(
        "E-ORD",
        json!({"customer": {"ids": {"loyalty_id": "L-1", "payment_token": "tok-1"}}}),
    );
    assert_eq!(s.convert(&c).await.0, 202);
    let (_, d) = s
        .decide(&ask("E-2", json!({"payment_token": "tok-1"})))
        .await;
    assert!(!shows(&d), "capped: the card is the same person");

    let (status, body) = s
        .call(
            "DELETE",
            "/v1/profiles",
            Some(ADMIN_KEY),
            Some(&json!({"ids": {"payment_token": "tok-1"}})),
        )
        .await;
    assert_eq!(
        (status, body["erased_identifiers"].as_u64()),
        (200, Some(3)),
        "{body}"
    );
    assert_eq!(
        s.call("GET", "/v1/profiles?loyalty_id=L-1", Some(ADMIN_KEY), None)
            .await
            .0,
        404
    );
    // The impression of the earlier decision still counts, but names nobody.
    assert_eq!(s.get_raw(&imp).await.status().as_u16(), 204);
    // A conversion backfilled from before the erasure is kept without identifiers.
    let backfill = conversion(
        "E-OLD",
        json!({"timestamp": "2026-01-01T00:00:00Z", "customer": {"ids": {"loyalty_id": "L-1"}}}),
    );
    let mut backfill = backfill;
    backfill["timestamp"] = json!((chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339());
    assert_eq!(s.convert(&backfill).await.0, 202);
    assert_eq!(
        s.call("GET", "/v1/profiles?loyalty_id=L-1", Some(ADMIN_KEY), None)
            .await
            .0,
        404,
        "it linked nothing"
    );
    // The same identifiers now are a new, empty person: no cap carried over.
    let (_, d) = s.decide(&ask("E-3", json!({"loyalty_id": "L-1"}))).await;
    assert!(shows(&d), "a new profile starts empty");

    let check = |records: &[Value]| {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| {
                r["transaction_id"] == "E-1" || r["order_id"] == "E-ORD" || r["order_id"] == "E-OLD"
            })
            .collect();
        assert!(
            mine.is_empty(),
            "transaction and order ids are gone: {mine:?}"
        );
        let before: Vec<&Value> = records
            .iter()
            .filter(|r| r["kind"] != "erasure")
            .take_while(|r| r["transaction_id"] != "E-3")
            .filter(|r| r["ids"].is_array() || r["profile"].is_string())
            .collect();
        assert!(
            before.is_empty(),
            "nothing before the erasure names the person: {before:?}"
        );
        assert_eq!(of_kind(records, "erasure").len(), 1);
        assert_eq!(
            of_kind(records, "conversion").len(),
            2,
            "both conversions still count"
        );
    };
    check(&s.log_records().await);
    let r = s
        .client
        .get(s.url("/v1/log?max=1000"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let over_http: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check(&over_http);

    // After a restart the erased links do not come back from the checkpoint or the log.
    let data = s.stop_keeping_data().await;
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    assert_eq!(
        s.call(
            "GET",
            "/v1/profiles?payment_token=tok-1",
            Some(ADMIN_KEY),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        s.call("GET", "/v1/profiles?device_id=d-1", Some(ADMIN_KEY), None)
            .await
            .0,
        404
    );
    check(&s.log_records().await);
}

#[tokio::test]
async fn raw_email_addresses_never_reach_the_disk() {
    let s = TestServer::builder()
        .writable_campaigns(&[capped()])
        .start()
        .await;
    let email = "Secret.Shopper+42@Example.org";
    let (status, _) = s.decide(&ask("R-1", json!({"email": email}))).await;
    assert_eq!(status, 200);
    let c = conversion("R-ORD", json!({"customer": {"ids": {"email": email}}}));
    assert_eq!(s.convert(&c).await.0, 202);
    let (status, _) = s
        .call(
            "DELETE",
            "/v1/profiles",
            Some(ADMIN_KEY),
            Some(&json!({"ids": {"email": email}})),
        )
        .await;
    assert_eq!(status, 200);
    let data = s.stop_keeping_data().await;
    let mut bytes = Vec::new();
    all_bytes(data.path(), &mut bytes);
    let haystack = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(haystack.len() > 1000, "the data folder has content");
    for needle in ["secret.shopper", "example.org"] {
        assert!(
            !haystack.contains(needle),
            "{needle} found in the data folder"
        );
    }
}
