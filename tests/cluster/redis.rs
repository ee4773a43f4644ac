//! Budgets, frequency caps, identity links and stock shared by three nodes through
//! one redis-server.

use crate::redis_fleet::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn shows(d: &Value, campaign: &str) -> bool {
    offer(d, campaign).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_hit_on_one_node_holds_on_the_others_within_100_ms() {
    let capped = campaign(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let fleet = Fleet::start(3, &[capped]);
    // On node A the shopper's app links a device to a loyalty card and is shown the
    // capped offer; nodes B and C have never seen either identifier.
    let (status, d) = fleet
        .decide(
            0,
            &request("C-1", json!({"device_id": "dev-1", "loyalty_id": "L-1"})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(shows(&d, "capped"), "first offer on A: {d}");
    let served = Instant::now();
    // On B the loyalty card alone, on C the device alone: capped once A's batch
    // arrives (a preview checks without counting anything, so polling changes
    // nothing). Each node reads the stream on its own, so wait for both.
    let on_b = request("C-2", json!({"loyalty_id": "L-1"}));
    let on_c = request("C-3", json!({"device_id": "dev-1"}));
    let mut reached = [None, None];
    while reached.iter().any(Option::is_none) {
        for (slot, (node, body)) in reached.iter_mut().zip([(1, &on_b), (2, &on_c)]) {
            if slot.is_none() && !shows(&fleet.preview(node, body).await.1, "capped") {
                *slot = Some(served.elapsed());
            }
        }
        assert!(
            served.elapsed() < Duration::from_secs(5),
            "the cap never reached every node: {reached:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let [b, c] = reached.map(Option::unwrap);
    let propagated = b.max(c);
    println!(
        "cap propagation: A -> B {} ms, A -> C {} ms",
        b.as_millis(),
        c.as_millis()
    );
    let (_, d) = fleet.decide(1, &on_b).await;
    assert!(!shows(&d, "capped"), "capped on B: {d}");
    let (_, d) = fleet.decide(2, &on_c).await;
    assert!(
        !shows(&d, "capped"),
        "capped on C through the linked device: {d}"
    );
    // The stated bound is 100 ms (two 10 ms batches and a round trip, typically
    // ~25 ms); a loaded test machine gets some slack.
    assert!(
        propagated < Duration::from_millis(500),
        "propagation took {propagated:?}"
    );
    // Another shopper is not capped anywhere.
    let (_, d) = fleet
        .decide(1, &request("C-4", json!({"device_id": "dev-2"})))
        .await;
    assert!(shows(&d, "capped"), "{d}");
}

/// Polls `check` until it holds or `within` passes; returns how long it took.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_late_catches_up_and_erasures_reach_every_node() {
    let capped = campaign(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let mut fleet = Fleet::start(2, &[capped]);
    let shopper = json!({"device_id": "dev-9", "loyalty_id": "L-9"});
    let (_, d) = fleet.decide(0, &request("J-1", shopper.clone())).await;
    assert!(shows(&d, "capped"), "{d}");
    // A node started afterwards reads the stream from its start: capped there too.
    let late = fleet.add_node();
    let card = request("J-2", json!({"loyalty_id": "L-9"}));
    let caught_up = eventually(
        Duration::from_secs(5),
        "the late node caught up",
        || async { !shows(&fleet.preview(late, &card).await.1, "capped") },
    )
    .await;
    println!(
        "late node caught up {} ms after it was ready",
        caught_up.as_millis()
    );
    assert_eq!(
        fleet
            .call(late, "GET", "/v1/profiles?device_id=dev-9", None)
            .await
            .0,
        200,
        "the late node knows the linked profile"
    );
    // Erased on node 0: forgotten on every node, so the card starts afresh anywhere.
    let (status, body) = fleet
        .call(
            0,
            "DELETE",
            "/v1/profiles",
            Some(&json!({"ids": {"loyalty_id": "L-9"}})),
        )
        .await;
    assert_eq!(
        (status, body["erased_identifiers"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    for node in [1, late] {
        eventually(
            Duration::from_secs(5),
            "the erasure reached the node",
            || async {
                fleet
                    .call(node, "GET", "/v1/profiles?device_id=dev-9", None)
                    .await
                    .0
                    == 404
            },
        )
        .await;
        let (_, p) = fleet.preview(node, &card).await;
        assert!(
            shows(&p, "capped"),
            "nothing remembered of the erased shopper: {p}"
        );
        // Logged there too, so that node's log readers redact the shopper.
        let logged = fleet.log(node).await;
        assert!(
            logged.iter().any(|r| r["kind"] == "erasure"),
            "an erasure record in node {node}'s log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_posted_to_one_node_suppresses_the_offer_on_the_others() {
    let crunchy = campaign(
        "crunchy",
        json!({"conversion": {"skus": [], "categories": [], "brands": ["Crunchy"]},
            "targeting": {"placements": ["order_confirmation"], "exclude_purchasers_days": 30}}),
    );
    let fleet = Fleet::start(2, &[crunchy]);
    let web = request("S-1", json!({"email_sha256": "ab".repeat(32)}));
    assert!(shows(&fleet.preview(1, &web).await.1, "crunchy"));
    // At the till, through node 0: the loyalty card and the same e-mail, buying the brand.
    let pos = json!({
        "order_id": "POS-9", "type": "purchase", "channel": "in_store", "store_id": "store-042",
        "total": 9.98, "currency": "USD",
        "customer": {"ids": {"loyalty_id": "L-9", "email_sha256": "AB".repeat(32)}},
        "items": [{"sku": "SKU-77", "category": "grocery/snacks", "brand": "Crunchy",
            "price": 4.99, "quantity": 2}]
    });
    assert_eq!(fleet.post(0, "/v1/conversions", &pos, true).await.0, 202);
    let took = eventually(Duration::from_secs(5), "suppressed on node 1", || async {
        !shows(&fleet.preview(1, &web).await.1, "crunchy")
    })
    .await;
    println!("suppression propagation: {} ms", took.as_millis());
    let other = request("S-2", json!({"email_sha256": "cd".repeat(32)}));
    assert!(
        shows(&fleet.decide(1, &other).await.1, "crunchy"),
        "others still are"
    );
}

/// What the log of every node charged `campaign`, in micros.
async fn charged(fleet: &Fleet, campaign: &str) -> i64 {
    let mut total = 0.0;
    for i in 0..fleet.nodes.len() {
        for r in fleet.log(i).await {
            if r["campaign_id"] == campaign && (r["kind"] == "impression" || r["kind"] == "click") {
                total += r["cost"].as_f64().unwrap_or(0.0);
            }
        }
    }
    (total * 1e6).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_shared_by_three_nodes_under_load_overspends_at_most_1_percent() {
    // 20.00 CPM: 0.02 an impression; 10.00 a day pays for 500 impressions.
    let spender = campaign(
        "spender",
        json!({"bid": {"model": "cpm", "amount": 20.0}, "budget": {"daily": 10.0},
            "pacing": "asap"}),
    );
    let fleet = Arc::new(Fleet::start(3, &[spender]));
    let budget: i64 = 10_000_000;
    let started = Instant::now();
    // Every node takes its lease once a decision wanted the campaign (these offers are
    // never shown: their reservations expire unspent).
    let mut tx = 0;
    for i in 0..3 {
        until_served(&fleet, i, "spender", &mut tx).await;
    }
    // 8 clients spread over the nodes, each firing the impression of every offer it
    // gets (at the node that served it), until the budget stops serving for a while:
    // a second, several lease rounds (a node whose slice ran out pauses until the next
    // round, by design).
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                let mut served = 0u32;
                let mut last_served = Instant::now();
                for i in 0..2_000 {
                    let node = c + i;
                    let (status, d) = fleet
                        .decide(node, &request(&format!("B-{c}-{i}"), json!({})))
                        .await;
                    assert_eq!(status, 200, "{d}");
                    let Some(o) = offer(&d, "spender") else {
                        if last_served.elapsed() > Duration::from_secs(1) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    last_served = Instant::now();
                    served += 1;
                    let url = o["tracking"]["impression"].as_str().unwrap();
                    let r = fleet.client.get(url).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                }
                served
            })
        })
        .collect();
    let mut served = 0;
    for c in clients {
        served += c.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the logs' flush interval
    let spent = charged(&fleet, "spender").await;
    let over = (spent - budget) as f64 / budget as f64 * 100.0;
    println!(
        "shared budget: {served} offers served, spent {spent} of {budget} micros \
         ({over:+.2}%) over 3 nodes in {:?}",
        started.elapsed()
    );
    assert!(
        spent <= budget + budget / 100,
        "overspent: {spent} > {budget}"
    );
    assert!(
        spent >= budget * 95 / 100,
        "the budget was used (at most the outstanding leases unspent): {spent}"
    );
    let committed = fleet
        .redis
        .command(&format!("GET {}", fleet.key("budget:spender:total")));
    assert!(
        committed.contains('$'),
        "Redis holds the committed total: {committed}"
    );
    let mut metrics = String::new();
    for n in &fleet.nodes {
        metrics += &fleet
            .client
            .get(n.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert!(
        metrics.contains("aftercart_fleet_lease_refills_total"),
        "lease metrics exported"
    );
}

/// An integer reply of the test's redis-server.
fn integer(fleet: &Fleet, cmd: &str) -> i64 {
    let reply = fleet.redis.command(cmd);
    // `$N\r\nVALUE\r\n` for GET, `:N\r\n` for integers.
    let line = reply.lines().find(|l| !l.starts_with('$') && !l.is_empty());
    let line = line.unwrap_or("0");
    line.trim_start_matches(':').parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_the_fleets_changes_where_its_checkpoint_ends() {
    let capped = campaign(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let mut fleet = Fleet::start(2, &[capped]);
    let card = json!({"loyalty_id": "L-5"});
    let (_, d) = fleet.decide(0, &request("R-1", card.clone())).await;
    assert!(shows(&d, "capped"));
    // Node 1 learns the shopper, then the erasure on node 0, which it applies too ...
    eventually(
        Duration::from_secs(5),
        "node 1 learnt the shopper",
        || async {
            fleet
                .call(1, "GET", "/v1/profiles?loyalty_id=L-5", None)
                .await
                .0
                == 200
        },
    )
    .await;
    let (status, _) = fleet
        .call(
            0,
            "DELETE",
            "/v1/profiles",
            Some(&json!({"ids": card.clone()})),
        )
        .await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(5),
        "the erasure reached node 1",
        || async {
            fleet
                .call(1, "GET", "/v1/profiles?loyalty_id=L-5", None)
                .await
                .0
                == 404
        },
    )
    .await;
    // ... then the shopper comes back on node 1 and is capped there again.
    let (_, d) = fleet.decide(1, &request("R-2", card.clone())).await;
    assert!(shows(&d, "capped"), "a new profile after the erasure: {d}");
    fleet.restart(1);
    // The restart must not apply the old erasure again over the shopper's return.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, p) = fleet.preview(1, &request("R-3", card.clone())).await;
    assert!(!shows(&p, "capped"), "still capped after the restart: {p}");
    let erasures = (fleet.log(1).await.iter())
        .filter(|r| r["kind"] == "erasure")
        .count();
    assert_eq!(erasures, 1, "the erasure is logged once on node 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_gives_back_what_it_did_not_spend() {
    let big = campaign(
        "big",
        json!({"bid": {"model": "cpm", "amount": 20.0}, "budget": {"daily": 1000.0, "total": 5000.0}}),
    );
    let mut fleet = Fleet::start(2, &[big]);
    let total = fleet.key("budget:big:total");
    // A node leases a slice (5% of what remains, 50.00 first) once a decision wanted
    // the campaign: node 1 serves it once, node 0 ten times, each impression fired.
    let mut tx = 0;
    until_served(&fleet, 1, "big", &mut tx).await;
    for _ in 0..10 {
        let o = until_served(&fleet, 0, "big", &mut tx).await;
        let url = o["tracking"]["impression"].as_str().unwrap();
        assert!(
            fleet
                .client
                .get(url)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = integer(&fleet, &format!("GET {total}"));
    assert!(before >= 95_000_000, "both nodes leased: {before}");
    assert_eq!(fleet.nodes[0].stop(), Some(0), "a clean stop");
    let after = integer(&fleet, &format!("GET {total}"));
    println!("committed before the stop {before}, after {after} micros");
    // Node 0 spent 10 × 0.02 of its slice (50.00 or 47.50, whichever it got first)
    // and gave back the rest; node 1 still holds the other slice.
    let spent = 200_000;
    assert!(
        [47_500_000 + spent, 50_000_000 + spent].contains(&after),
        "the unused lease came back, the spend stays committed: {before} -> {after}"
    );
}

/// Decides on node `i` until the offer of `campaign` is served (a node takes a
/// campaign's lease once a decision wanted it): returns the offer.
async fn until_served(fleet: &Fleet, i: usize, campaign: &str, tx: &mut u32) -> Value {
    let started = Instant::now();
    loop {
        *tx += 1;
        let (status, d) = fleet
            .decide(i, &request(&format!("W-{i}-{tx}"), json!({})))
            .await;
        assert_eq!(status, 200, "{d}");
        if let Some(o) = offer(&d, campaign) {
            return o.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node {i} did not serve {campaign} within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stock lines for a feed.
fn stock(sku: &str, quantity: i64, as_of: Option<&str>) -> Value {
    let mut line = json!({"sku": sku, "location": "online", "quantity": quantity});
    if let Some(t) = as_of {
        line["as_of"] = json!(t);
    }
    json!([line])
}

/// A product campaign for `sku`.
fn product(id: &str, sku: &str) -> Value {
    campaign(
        id,
        json!({"priority": 1,
            "creatives": [{"id": format!("{id}-cr"), "kind": "product", "headline": "Add this",
                "click_url": "https://shop.example/p",
                "product": {"sku": sku, "name": "Sea salt crisps", "price": 19.99}}]}),
    )
}

/// The purchase URL of a fresh decision on node `i`, once the node's copy of the
/// fleet's stock offers the product.
async fn purchase_url(fleet: &Fleet, i: usize, tx: &str) -> Option<String> {
    let (_, d) = fleet.decide(i, &request(tx, json!({}))).await;
    offer(&d, "prod")?["tracking"]["purchase"]
        .as_str()
        .map(String::from)
}

async fn buy(fleet: &Fleet, i: usize, url: &str) -> (u16, Value, Option<String>) {
    // The URL names the node that served the offer; buy through node `i` instead.
    let path = &url[url.find("/v1/").unwrap()..];
    let r = fleet
        .client
        .post(fleet.node(i).url(path))
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = (r.headers().get("retry-after")).map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_spread_over_three_nodes_never_oversell() {
    let fleet = Arc::new(Fleet::start(3, &[product("prod", "SKU-P")]));
    let (status, body) = fleet
        .put(
            0,
            "/v1/inventory",
            &stock("SKU-P", 10, Some("2026-01-01T00:00:00Z")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Every node's copy of the levels catches up within its refresh interval.
    let mut urls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    for i in 0..30 {
        // A new transaction each try: a reload of the same one replays its decision.
        for attempt in 0.. {
            if let Some(url) = purchase_url(&fleet, i, &format!("P-{i}-{attempt}")).await {
                urls.push(url);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never offered the stock",
                i % 3
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // 30 concurrent buyers for 10 units, each buying through another node than the
    // one that served the offer.
    let buyers: Vec<_> = (urls.into_iter().enumerate())
        .map(|(i, url)| {
            let fleet = fleet.clone();
            tokio::spawn(async move { buy(&fleet, i + 1, &url).await })
        })
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for b in buyers {
        let (status, body, _) = b.await.unwrap();
        match status {
            201 => sold += 1,
            409 => {
                assert_eq!(body["error"]["code"], "out_of_stock", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    println!(
        "fleet stock: 10 in stock, 30 buyers over 3 nodes: {sold} sold, {refused} out of stock"
    );
    assert_eq!((sold, refused), (10, 20));
    // A feed newer than the report but older than the sales cannot bring them back.
    let (status, _) = fleet
        .put(
            1,
            "/v1/inventory",
            &stock("SKU-P", 10, Some("2026-01-02T00:00:00Z")),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        purchase_url(&fleet, 2, "P-after").await.is_none(),
        "sold out everywhere"
    );
    // A fresh count from the shop restocks.
    let (status, _) = fleet
        .put(2, "/v1/inventory", &stock("SKU-P", 3, None))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let url = purchase_url(&fleet, 0, "P-restocked")
        .await
        .expect("restocked");
    assert_eq!(buy(&fleet, 1, &url).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_decisions_still_serve_and_purchases_answer_503() {
    let capped = campaign(
        "capped",
        json!({"frequency_caps": [{"max": 1, "per_seconds": 86400}]}),
    );
    let mut fleet = Fleet::start(2, &[product("prod", "SKU-P"), capped]);
    fleet
        .put(0, "/v1/inventory", &stock("SKU-P", 5, None))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let url = 'offered: {
        for attempt in 0.. {
            if let Some(url) = purchase_url(&fleet, 1, &format!("D-0-{attempt}")).await {
                break 'offered url;
            }
            assert!(Instant::now() < deadline, "never offered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unreachable!()
    };
    fleet.redis.kill();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let (status, d) = fleet
            .decide(
                i,
                &request(
                    &format!("D-{}", i + 1),
                    json!({"device_id": format!("d-{i}")}),
                ),
            )
            .await;
        slowest = slowest.max(t.elapsed());
        assert_eq!(status, 200, "{d}");
        assert!(
            shows(&d, "capped"),
            "decisions go on with what the node knows: {d}"
        );
    }
    println!(
        "Redis down: slowest of 20 decisions {} ms",
        slowest.as_millis()
    );
    assert!(
        slowest < Duration::from_millis(200),
        "a decision waited: {slowest:?}"
    );
    let t = Instant::now();
    let (status, body, retry) = buy(&fleet, 0, &url).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "Retry-After");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    for n in &mut fleet.nodes {
        assert!(n.alive(), "no node died");
    }
}
