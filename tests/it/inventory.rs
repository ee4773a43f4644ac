//! Stock per SKU and location: product offers only where in stock, and in-unit
//! purchases that take the stock atomically and never oversell.

use crate::support::*;
use serde_json::{Value, json};

const PRICE: f64 = 19.99;

/// A product campaign for `sku` on every channel, winning `order_confirmation`.
fn product(id: &str, sku: &str) -> Value {
    campaign(
        id,
        id,
        json!({
            "priority": 1,
            "targeting": {"placements": ["order_confirmation"]},
            "creatives": [{"id": format!("{id}-cr"), "kind": "product", "headline": "Add this",
                "click_url": "https://shop.example/p",
                "product": {"sku": sku, "name": "Sea salt crisps", "price": PRICE}}]
        }),
    )
}

async fn server() -> TestServer {
    TestServer::builder()
        .writable_campaigns(&[product("prod-p", "SKU-P"), product("prod-u", "SKU-U")])
        .start()
        .await
}

async fn feed(s: &TestServer, lines: Value) -> (u16, Value) {
    s.call("PUT", "/v1/inventory", Some(ADMIN_KEY), Some(&lines))
        .await
}

fn offer<'a>(d: &'a Value, campaign: &str) -> Option<&'a Value> {
    d["offers"]
        .as_array()?
        .iter()
        .find(|o| o["campaign_id"] == campaign)
}

/// The purchase URL of `campaign`'s offer in a fresh decision on `channel`.
async fn purchase_url(s: &TestServer, tx: &str, channel: &str) -> Option<String> {
    let (_, d) = s
        .decide(&request(tx, json!({"channel": channel, "slots": 2})))
        .await;
    offer(&d, "prod-p")?["tracking"]["purchase"]
        .as_str()
        .map(String::from)
}

async fn buy(s: &TestServer, url: &str, body: Value) -> (u16, Value) {
    let r = s.client.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_sku_at_zero_online_is_offered_only_in_a_store_that_has_it() {
    let s = server().await;
    let (status, body) = feed(
        &s,
        json!([
            {"sku": "SKU-P", "location": "online", "quantity": 0},
            {"sku": "SKU-P", "location": "store-042", "quantity": 5}
        ]),
    )
    .await;
    assert_eq!((status, body["updated"].as_u64()), (200, Some(2)), "{body}");

    let mut online = request("T-online", json!({"channel": "online", "slots": 2}));
    online["explain"] = json!(true);
    let (_, d) = s.decide_admin(&online).await;
    assert!(offer(&d, "prod-p").is_none(), "out of stock online: {d}");
    let stages = d["explain"]["stages"].as_array().unwrap();
    assert!(
        stages
            .iter()
            .any(|st| st["stage"] == "stock" && st["campaigns"][0] == "prod-p"),
        "{stages:?}"
    );
    // Never reported: offered, but with no purchase URL.
    let unmanaged = offer(&d, "prod-u").expect("an unreported SKU counts as in stock");
    assert!(unmanaged["tracking"]["purchase"].is_null());

    let (_, d) = s
        .decide(&request(
            "T-store",
            json!({"channel": "in_store", "slots": 2}),
        ))
        .await;
    let o = offer(&d, "prod-p").expect("in stock at store-042");
    assert_eq!(o["product"]["available"], true);
    assert_eq!(o["product"]["price"], PRICE);
    assert!(
        o["tracking"]["purchase"]
            .as_str()
            .unwrap()
            .contains("/v1/events/purchase?t=")
    );

    let (status, stock) = s
        .call("GET", "/v1/inventory/SKU-P", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    let by: Vec<(String, i64)> = stock["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap().into(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by, [("online".into(), 0), ("store-042".into(), 5)]);
}

#[tokio::test]
async fn a_hundred_concurrent_purchases_of_ten_in_stock_sell_exactly_ten() {
    let s = server().await;
    feed(
        &s,
        json!([{"sku": "SKU-P", "location": "online", "quantity": 10}]),
    )
    .await;
    let mut urls = Vec::new();
    for i in 0..100 {
        urls.push(
            purchase_url(&s, &format!("T-{i}"), "online")
                .await
                .expect("offered"),
        );
    }
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let client = s.client.clone();
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut sold = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => sold += 1,
            409 => {
                assert_eq!(body["error"]["code"], "out_of_stock");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((sold, refused), (10, 90));
    let purchases = of_kind(&s.log_records().await, "purchase").len();
    assert_eq!(purchases, 10, "one durable record per sale");
    assert!(
        purchase_url(&s, "T-after", "online").await.is_none(),
        "sold out: no longer offered"
    );
}

#[tokio::test]
async fn one_purchase_per_offer_bounded_quantity_and_stale_feeds_cannot_restock() {
    let s = server().await;
    feed(
        &s,
        json!([{"sku": "SKU-P", "location": "online", "quantity": 5, "as_of": "2026-01-01T00:00:00Z"}]),
    )
    .await;
    let url = purchase_url(&s, "T-1", "online").await.unwrap();
    for (body, path) in [
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": 11}), "quantity"),
        (json!({"quantity": "two"}), "quantity"),
        (json!({"qty": 1}), "qty"),
    ] {
        let (status, reply) = buy(&s, &url, body.clone()).await;
        assert_eq!(
            (status, error_paths(&reply)),
            (400, vec![path.to_string()]),
            "{body}"
        );
    }
    let (status, order) = buy(&s, &url, json!({"quantity": 2})).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["sku"], "SKU-P");
    assert!((order["total"].as_f64().unwrap() - 2.0 * PRICE).abs() < 1e-9);
    let order_id = order["order_id"].as_str().unwrap().to_string();
    assert!(order_id.starts_with("ac_"));
    let (status, again) = buy(&s, &url, json!({"quantity": 1})).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_purchased"))
    );

    let forged = url.replace("t=", "t=x");
    let (status, _) = buy(&s, &forged, json!({})).await;
    assert_eq!(status, 400);

    // The feed has not seen the sale yet: its 5 must not bring the 2 back.
    let (_, body) = feed(
        &s,
        json!([{"sku": "SKU-P", "location": "online", "quantity": 5, "as_of": "2026-01-02T00:00:00Z"}]),
    )
    .await;
    assert_eq!(body["updated"], 1);
    let (_, stock) = s
        .call("GET", "/v1/inventory/SKU-P", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(stock["locations"][0]["quantity"], 3);
    // An older feed is ignored.
    let (_, body) = feed(
        &s,
        json!([{"sku": "SKU-P", "location": "online", "quantity": 50, "as_of": "2025-12-01T00:00:00Z"}]),
    )
    .await;
    assert_eq!(
        (body["updated"].as_u64(), body["ignored"].as_u64()),
        (Some(0), Some(1))
    );

    // The retailer's order system posting the same order is a duplicate.
    let (status, body) = s
        .convert(&conversion(&order_id, json!({"channel": "online"})))
        .await;
    assert_eq!(
        (status, body["duplicates"].as_u64()),
        (202, Some(1)),
        "{body}"
    );

    let records = s.log_records().await;
    let p = of_kind(&records, "purchase")[0].clone();
    assert_eq!(
        (p["sku"].as_str(), p["quantity"].as_u64()),
        (Some("SKU-P"), Some(2))
    );
    assert_eq!(p["order_id"].as_str(), Some(order_id.as_str()));
    assert_eq!(p["campaign_id"], "prod-p");
}

#[tokio::test]
async fn stock_and_sales_survive_a_restart() {
    let s = server().await;
    feed(
        &s,
        json!([{"sku": "SKU-P", "location": "online", "quantity": 4}]),
    )
    .await;
    let url = purchase_url(&s, "T-1", "online").await.unwrap();
    assert_eq!(buy(&s, &url, json!({"quantity": 3})).await.0, 201);
    let data = s.stop_keeping_data().await;

    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(data)
        .await;
    // The same token, at the restarted server's address.
    let url = s.url(&url[url.find("/v1/").unwrap()..]);
    let (_, stock) = s
        .call("GET", "/v1/inventory/SKU-P", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(stock["locations"][0]["quantity"], 1, "{stock}");
    let (status, again) = buy(&s, &url, json!({"quantity": 1})).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_purchased"))
    );
    let url = purchase_url(&s, "T-2", "online").await.unwrap();
    let (status, body) = buy(&s, &url, json!({"quantity": 2})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("out_of_stock"))
    );
    assert_eq!(buy(&s, &url, json!({"quantity": 1})).await.0, 201);
}

#[tokio::test]
async fn bad_feeds_name_every_problem_and_change_nothing() {
    let s = server().await;
    let (status, body) = feed(
        &s,
        json!([
            {"sku": "SKU-P", "location": "online", "quantity": 3},
            {"sku": "", "location": "online", "quantity": -1},
            {"sku": "SKU-P", "quantity": 2, "as_of": "2999-01-01T00:00:00Z", "colour": "red"}
        ]),
    )
    .await;
    assert_eq!(status, 400);
    let mut paths = error_paths(&body);
    paths.sort();
    assert_eq!(
        paths,
        [
            "[1].quantity",
            "[1].sku",
            "[2].as_of",
            "[2].colour",
            "[2].location"
        ]
    );
    let (status, _) = s
        .call("GET", "/v1/inventory/SKU-P", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404, "nothing applied");
    let (status, _) = feed(&s, json!({"sku": "SKU-P"})).await;
    assert_eq!(status, 400);
}
