//! The checkout integration's server side: CORS on the public endpoints (and nowhere
//! else), the SDK served immutable with its SRI hash (which the README must state),
//! the demo page, stock in product offers, and the sample stock seed.
//! The SDK's behaviour in a real browser is tested by `tests/browser/`.

use crate::support::*;
use aftercart::config::AllowedOrigins;
use base64::Engine;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use std::process::Command;

const SHOP: &str = "https://shop.example";

/// Sends `method path` with `Origin` (and more headers); returns status and headers.
async fn with_origin(
    s: &TestServer,
    method: Method,
    path: &str,
    origin: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, HeaderMap) {
    let mut r = s.client.request(method, s.url(path));
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.headers().clone())
}

async fn preflight(s: &TestServer, path: &str, origin: &str) -> (u16, HeaderMap) {
    let asks = [
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    with_origin(s, Method::OPTIONS, path, Some(origin), &asks).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The SRI value of `bytes`, computed here independently of the server's code.
fn sri(bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes));
    format!("sha384-{b64}")
}

#[tokio::test]
async fn public_endpoints_answer_preflights_from_any_origin_by_default() {
    let s = TestServer::sample().await;
    for path in [
        "/v1/decisions",
        "/v1/events/impression",
        "/v1/events/click",
        "/v1/events/purchase",
        "/sdk/v1.js",
    ] {
        let (status, h) = preflight(&s, path, SHOP).await;
        assert_eq!(status, 204, "{path}");
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let allowed = header(&h, "access-control-allow-headers").unwrap();
        for name in ["Content-Type", "Sec-GPC", "X-Aftercart-Key"] {
            assert!(allowed.contains(name), "{path}: {allowed}");
        }
        assert!(!allowed.contains("Authorization"), "keys stay on servers");
        assert!(
            header(&h, "access-control-allow-methods").is_some(),
            "{path}"
        );
        assert_eq!(header(&h, "access-control-max-age"), Some("7200"));
        assert_eq!(header(&h, "vary"), None, "one answer fits every origin");
    }
    let (_, h) = preflight(&s, "/v1/decisions", SHOP).await;
    assert_eq!(
        header(&h, "access-control-allow-methods"),
        Some("POST, OPTIONS")
    );

    // The answers themselves, errors included: a page must read a 400 or a 409 too.
    let r = s
        .client
        .post(s.url("/v1/decisions"))
        .header("origin", SHOP)
        .json(&request("ORD-CORS-1", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some("*")
    );
    let r = s
        .client
        .post(s.url("/v1/decisions"))
        .header("origin", SHOP)
        .json(&json!({"channel": "tv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some("*")
    );
    let (status, h) = with_origin(&s, Method::GET, "/sdk/v1.js", Some(SHOP), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    // A plain OPTIONS (not a preflight) says what the path allows.
    let (status, h) = with_origin(&s, Method::OPTIONS, "/v1/events/impression", None, &[]).await;
    assert_eq!(status, 204);
    assert_eq!(header(&h, "allow"), Some("GET, POST, OPTIONS"));
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    s.stop().await;
}

#[tokio::test]
async fn management_endpoints_never_answer_cross_origin() {
    let s = TestServer::sample().await;
    let auth = format!("Bearer {ADMIN_KEY}");
    for path in [
        "/v1/campaigns",
        "/v1/campaigns/cmp-streamly-trial",
        "/v1/conversions",
        "/v1/inventory",
        "/v1/log",
        "/v1/keys",
        "/v1/profiles",
        "/metrics",
    ] {
        let (status, h) = preflight(&s, path, SHOP).await;
        assert_eq!(status, 405, "{path}");
        assert_eq!(header(&h, "access-control-allow-origin"), None, "{path}");
        let (_, h) = with_origin(
            &s,
            Method::GET,
            path,
            Some(SHOP),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(header(&h, "access-control-allow-origin"), None, "{path}");
        assert_eq!(header(&h, "vary"), None, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_list_of_origins_echoes_the_allowed_and_refuses_the_others() {
    let s = TestServer::builder()
        .config(|c| {
            c.cors_allowed_origins =
                AllowedOrigins::List(vec![SHOP.into(), "http://localhost:3000".into()]);
        })
        .start()
        .await;
    let (status, h) = preflight(&s, "/v1/decisions", SHOP).await;
    assert_eq!(status, 204);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(header(&h, "vary"), Some("Origin"));
    // Browsers send the origin lower-case; compare it so anyway.
    let (_, h) = preflight(&s, "/v1/events/purchase", "http://localhost:3000").await;
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );

    let (status, h) = preflight(&s, "/v1/decisions", "https://evil.example").await;
    assert_eq!(status, 403);
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    let r = s
        .client
        .request(Method::OPTIONS, s.url("/v1/decisions"))
        .header("origin", "https://shop.example.evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");

    // The request itself is served (CORS is the browser's to enforce), without CORS
    // headers for the stranger, and with Vary on every public answer so a shared
    // cache never hands one origin's response to another.
    for (origin, allowed) in [(Some("https://evil.example"), None), (None, None)] {
        let (status, h) = with_origin(&s, Method::GET, "/sdk/v1.js", origin, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "access-control-allow-origin"), allowed);
        assert_eq!(header(&h, "vary"), Some("Origin"));
    }
    s.stop().await;

    let closed = TestServer::builder()
        .config(|c| c.cors_allowed_origins = AllowedOrigins::List(Vec::new()))
        .start()
        .await;
    let (status, h) = preflight(&closed, "/v1/decisions", SHOP).await;
    assert_eq!(status, 403);
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    closed.stop().await;
}

#[tokio::test]
async fn the_sdk_is_immutable_with_its_integrity_as_etag() {
    let s = TestServer::sample().await;
    let r = s.client.get(s.url("/sdk/v1.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let body = r.bytes().await.unwrap();
    assert_eq!(
        header(&h, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let cache = header(&h, "cache-control").unwrap();
    assert!(
        cache.contains("max-age=31536000") && cache.contains("immutable"),
        "{cache}"
    );
    assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));
    let etag = header(&h, "etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sri(&body)));
    assert_eq!(
        body.as_ref(),
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/v1.js"))
            .unwrap()
            .as_slice(),
        "served as it is in the repository"
    );
    assert_eq!(
        aftercart::http::sdk::v1_integrity(),
        sri(&body),
        "the server's hash agrees with an independent one"
    );

    for held in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"old\", {etag}"),
        "*".to_string(),
    ] {
        let r = s
            .client
            .get(s.url("/sdk/v1.js"))
            .header("if-none-match", &held)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{held}");
        assert_eq!(header(r.headers(), "etag"), Some(etag.as_str()));
        assert!(header(r.headers(), "cache-control").is_some());
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = s
        .client
        .get(s.url("/sdk/v1.js"))
        .header("if-none-match", "\"sha384-stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = s.client.head(s.url("/sdk/v1.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(r.headers(), "content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(s.call("POST", "/sdk/v1.js", None, None).await.0, 405);
    assert_eq!(s.call("GET", "/sdk/v2.js", None, None).await.0, 404);
    assert_eq!(s.call("GET", "/sdk/", None, None).await.0, 404);
    s.stop().await;
}

/// The README's `<script integrity=...>` must be the served file's: docs that go stale
/// would break every page that copies them.
#[tokio::test]
async fn the_readme_states_the_served_sdks_integrity() {
    let s = TestServer::sample().await;
    let body = s
        .client
        .get(s.url("/sdk/v1.js"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    s.stop().await;
    let expected = sri(&body);
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("integrity=\"{expected}\"")),
        "README.md must show the script tag with integrity=\"{expected}\""
    );
    let stated: Vec<&str> = readme
        .match_indices("sha384-")
        .map(|(i, _)| {
            let rest = &readme[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "+/=-".contains(c)))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(
        stated.iter().all(|v| *v == expected),
        "every SRI value in README.md must be {expected}: {stated:?}"
    );
}

#[tokio::test]
async fn the_demo_page_pins_the_sdk_and_can_be_turned_off() {
    let s = TestServer::sample().await;
    let r = s.client.get(s.url("/demo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(r.headers(), "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(r.headers(), "cache-control"), Some("no-store"));
    let page = r.text().await.unwrap();
    let sdk = s
        .client
        .get(s.url("/sdk/v1.js"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let tag = format!(
        "<script src=\"/sdk/v1.js\" integrity=\"{}\" crossorigin=\"anonymous\"></script>",
        sri(&sdk)
    );
    assert!(page.contains(&tag), "{page}");
    assert!(page.contains("aftercart.render("));
    s.stop().await;

    let off = TestServer::builder()
        .config(|c| c.demo = false)
        .start()
        .await;
    assert_eq!(off.call("GET", "/demo", None, None).await.0, 404);
    assert_eq!(off.call("GET", "/sdk/v1.js", None, None).await.0, 200);
    off.stop().await;
}

/// The order the demo page posts (kept in step with `sdk/demo.html`).
fn demo_order(tx: &str) -> Value {
    json!({
        "placement": "order_confirmation", "channel": "online", "slots": 3,
        "transaction": {"id": tx, "total": 162.36, "currency": "USD", "payment_method": "card",
            "items": [{"sku": "SNX-WH900-MID", "category": "electronics/audio", "brand": "Sonix", "price": 149.99, "quantity": 1}]},
        "customer": {"ids": {"email_sha256": format!("{:064x}", tx.len())}, "new_customer": false},
        "context": {"country": "US", "region": "CA", "postal_code": "94105", "locale": "en-US"},
        "consent": {"personalization": true, "measurement": true}
    })
}

async fn post(port: u16, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn stock(port: u16, key: &str, sku: &str) -> i64 {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/inventory/{sku}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["locations"][0]["quantity"].as_i64().unwrap()
}

/// `aftercart serve` on the shipped samples: the demo's order fills three slots, one a
/// product with stock that can be bought, and a restart does not re-seed sold stock.
#[tokio::test]
async fn the_samples_fill_the_demo_with_a_product_that_can_be_bought() {
    let data = tempfile::tempdir().unwrap();
    let server = spawn_server_in(&sample_campaigns(), data.path());
    let port = server.port;
    let key = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
    let key = key.trim();

    let (status, d) = post(port, "/v1/decisions", None, &demo_order("ORD-DEMO-1")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["offers"].as_array().unwrap().len(), 3, "{d}");
    let product = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "product")
        .unwrap_or_else(|| panic!("no product offer in {d}"));
    assert_eq!(product["product"]["sku"], "SKU-VG-HC1");
    assert_eq!(product["product"]["stock"], 40, "the seeded stock");
    let url = product["tracking"]["purchase"].as_str().unwrap();
    let offers_without_stock = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "offer")
        .all(|o| o.get("product").is_none());
    assert!(offers_without_stock);

    let r = reqwest::Client::new()
        .post(url)
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(stock(port, key, "SKU-VG-HC1").await, 38);

    drop(server);
    let again = spawn_server_in(&sample_campaigns(), data.path());
    assert_eq!(
        stock(again.port, key, "SKU-VG-HC1").await,
        38,
        "a restart must not bring sold stock back"
    );
    let (_, d) = post(again.port, "/v1/decisions", None, &demo_order("ORD-DEMO-2")).await;
    let product = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "product")
        .unwrap();
    assert_eq!(product["product"]["stock"], 38);
}

#[test]
fn a_bad_inventory_seed_stops_the_server_naming_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"[{"sku": "SKU-1", "location": "online", "quantity": -1}, {"sku": "SKU-2", "quantity": 1}]"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--campaigns")
        .arg(sample_campaigns())
        .arg("--data")
        .arg(data.path())
        .env("AFTERCART_INVENTORY_SEED", &seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let text = String::from_utf8_lossy(&out.stderr);
    let file = seed.display().to_string();
    for path in ["[0].quantity", "[1].location"] {
        assert!(
            text.lines().any(|l| l.contains(&file) && l.contains(path)),
            "{path} in:\n{text}"
        );
    }

    // A seed named but missing is a configuration error, before anything starts.
    let out = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data")
        .arg(data.path())
        .env("AFTERCART_INVENTORY_SEED", dir.path().join("nope.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("AFTERCART_INVENTORY_SEED") && text.contains("no such file"),
        "{text}"
    );
}
