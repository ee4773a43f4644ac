//! A fleet on NATS JetStream: campaign changes reach every node within a second, kill -9
//! loses no acknowledged conversion, a NATS outage stops no decision and loses no record,
//! and a token minted on one node counts on another.

use crate::nats_fleet::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Waits until every node's forwarder has a JetStream session.
async fn connected(nodes: &[&Node]) {
    for n in nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        while n.metric("nats_connected").await != Some(1.0) {
            assert!(
                Instant::now() < deadline,
                "node {} never connected to NATS",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until every node's forwarder has JetStream-acknowledged its whole log; returns
/// how long that took.
async fn drained(nodes: &[&Node], within: Duration) -> Duration {
    let started = Instant::now();
    for n in nodes {
        loop {
            let lag = n.metric("nats_forward_lag_bytes").await;
            let up = n.metric("nats_connected").await;
            if lag == Some(0.0) && up == Some(1.0) {
                break;
            }
            assert!(
                started.elapsed() < within,
                "node {} did not drain within {within:?} (lag {lag:?} bytes, connected {up:?})",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

/// The first offered campaign of a fresh decision on `node`.
async fn first_offer(node: &Node, tx: &str) -> Option<String> {
    let (status, body) = node.decide(&request(tx)).await;
    assert_eq!(status, 200, "{body}");
    offered(&body).into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_uploaded_on_a_serves_on_c_within_a_second() {
    let nats = Nats::start();
    let a = Node::start("a", &nats);
    let b = Node::start("b", &nats);
    let c = Node::start("c", &nats);
    connected(&[&a, &b, &c]).await;
    // Let the nodes' start-up changes (each logs the sample campaigns) settle first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        first_offer(&c, "before").await.as_deref(),
        Some("fleet-flash")
    );

    let started = Instant::now();
    let (status, body) = a
        .call(
            "PUT",
            "/v1/campaigns/fleet-flash",
            Some(&winner("fleet-flash")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let acknowledged = started.elapsed();
    let mut n = 0;
    while first_offer(&c, &format!("c-{n}")).await.as_deref() != Some("fleet-flash") {
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the upload on A never served on C"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live_on_c = started.elapsed();
    println!(
        "upload on A acknowledged after {acknowledged:?}, serving on C {live_on_c:?} after the upload started"
    );
    assert!(
        live_on_c < Duration::from_secs(1),
        "live on C after {live_on_c:?}"
    );
    // B too, within the same second.
    let mut n = 0;
    while first_offer(&b, &format!("b-{n}")).await.as_deref() != Some("fleet-flash") {
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the upload on A did not serve on B within a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // C logged the change as coming from A, with A's key, and did not send it back out.
    let copies: Vec<Value> = of_kind(&c.local_log(), "campaign")
        .into_iter()
        .filter(|r| r["campaign_id"] == "fleet-flash")
        .cloned()
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        (&copies[0]["origin"], &copies[0]["changed_by"]),
        (&json!("a"), &json!("admin"))
    );

    // A delete on B stops it everywhere.
    let (status, _) = b.call("DELETE", "/v1/campaigns/fleet-flash", None).await;
    assert_eq!(status, 204);
    let started = Instant::now();
    let mut n = 0;
    while first_offer(&a, &format!("a-del-{n}")).await.as_deref() == Some("fleet-flash")
        || first_offer(&c, &format!("c-del-{n}")).await.as_deref() == Some("fleet-flash")
    {
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the delete never reached A and C"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Conflicting changes of one campaign on two nodes at once: every node ends with the
    // same one (the last in the stream).
    for round in 0..3 {
        let id = format!("fleet-race-{round}");
        let mut on_a = winner(&id);
        on_a["name"] = json!("made on A");
        let mut on_c = winner(&id);
        on_c["name"] = json!("made on C");
        let path = format!("/v1/campaigns/{id}");
        let (ra, rc) = tokio::join!(
            a.call("PUT", &path, Some(&on_a)),
            c.call("PUT", &path, Some(&on_c))
        );
        assert_eq!((ra.0, rc.0), (201, 201));
        let started = Instant::now();
        loop {
            let mut names = HashSet::new();
            for node in [&a, &b, &c] {
                let (status, body) = node.call("GET", &path, None).await;
                names.insert(if status == 200 {
                    body["name"].as_str().unwrap_or_default().to_string()
                } else {
                    format!("missing ({status})")
                });
            }
            if names.len() == 1 && !names.iter().any(|n| n.starts_with("missing")) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the nodes disagree on {id}: {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Posts batches of conversions to `node` until `stop`; returns the order ids that got a 202.
fn post_conversions(
    node: &Node,
    prefix: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let url = node.url("/v1/conversions");
    (0..4)
        .map(|worker| {
            let (url, stop, prefix) = (url.clone(), stop.clone(), prefix.to_string());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<Value> = (0..5)
                        .map(|i| conversion(&format!("{prefix}-{worker}-{n}-{i}")))
                        .collect();
                    n += 1;
                    match client
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&batch)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 202 => acked.extend(
                            batch
                                .iter()
                                .map(|c| c["order_id"].as_str().unwrap().to_string()),
                        ),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// Kills `node` with -9 after `for_ms` of conversions; returns the acknowledged ones.
async fn conversions_then_kill_9(node: &mut Node, prefix: &str, for_ms: u64) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let posters = post_conversions(node, prefix, &stop);
    tokio::time::sleep(Duration::from_millis(for_ms)).await;
    node.kill();
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for p in posters {
        acked.extend(p.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "posted enough to mean something: {}",
        acked.len()
    );
    acked
}

/// Node `a`'s conversions in the stream, by order id.
fn streamed_conversions(nats: &Nats) -> Vec<String> {
    of_kind(&stream_log(nats), "conversion")
        .iter()
        .filter(|r| r["node"] == "a")
        .map(|r| r["order_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every acknowledged conversion is in the stream exactly once.
fn assert_all_streamed_once(nats: &Nats, acked: &[String]) {
    let streamed = streamed_conversions(nats);
    let unique: HashSet<&String> = streamed.iter().collect();
    assert_eq!(
        unique.len(),
        streamed.len(),
        "a conversion is in the stream twice"
    );
    let lost: Vec<&String> = acked.iter().filter(|o| !unique.contains(o)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged conversions missing from the stream, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_loses_no_acknowledged_conversion() {
    let mut nats = Nats::start();
    let mut a = Node::start("a", &nats);
    connected(&[&a]).await;

    // With JetStream up, a 202 waits for its acknowledgement: all are in the stream at once.
    let acked = conversions_then_kill_9(&mut a, "K", 1500).await;
    let at_once: HashSet<String> = streamed_conversions(&nats).into_iter().collect();
    let already = acked.iter().filter(|o| at_once.contains(*o)).count();
    a.restart();
    let drain = drained(&[&a], Duration::from_secs(20)).await;
    assert_all_streamed_once(&nats, &acked);
    println!(
        "{} conversions acknowledged before kill -9: {already} in the stream at once, all after the restart drained ({drain:?})",
        acked.len()
    );

    // With JetStream down, a 202 is the local fsync alone: the node is killed before it
    // could forward anything, and its restart forwards all of it once NATS is back.
    nats.stop();
    let acked_offline = conversions_then_kill_9(&mut a, "OFF", 1500).await;
    nats.restart();
    a.restart();
    let drain = drained(&[&a], Duration::from_secs(20)).await;
    let all: Vec<String> = acked.iter().chain(&acked_offline).cloned().collect();
    assert_all_streamed_once(&nats, &all);
    println!(
        "{} conversions acknowledged with NATS down, then kill -9: all in the stream {drain:?} after NATS and the node came back",
        acked_offline.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_stops_no_decision_and_every_record_reaches_the_stream_in_order() {
    let mut nats = Nats::start();
    let a = Arc::new(Node::start("a", &nats));
    let b = Arc::new(Node::start("b", &nats));
    connected(&[&a, &b]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    let during_outage = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for node in [a.clone(), b.clone()] {
        let (stop, outage, during_outage) = (stop.clone(), outage.clone(), during_outage.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let tx = format!("{}-{n}", node.name);
                let (status, _) = node.decide(&request(&tx)).await;
                *statuses.entry(status).or_default() += 1;
                if status == 200 && outage.load(Ordering::SeqCst) {
                    during_outage.fetch_add(1, Ordering::SeqCst);
                }
                if n % 10 == 0 {
                    let (status, body) = node
                        .call("POST", "/v1/conversions", Some(&json!([conversion(&tx)])))
                        .await;
                    assert_eq!(status, 202, "{body}");
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.stop();
    outage.store(true, Ordering::SeqCst);
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Still ready (it serves correctly), and saying where its records are.
    let readyz = a.client.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    let readyz = readyz.text().await.unwrap();
    assert!(
        readyz.contains("stream: unreachable") && readyz.contains("bytes waiting in the local log"),
        "{readyz}"
    );
    outage.store(false, Ordering::SeqCst);
    let lag_at_restart = a.metric("nats_forward_lag_bytes").await.unwrap_or(0.0)
        + b.metric("nats_forward_lag_bytes").await.unwrap_or(0.0);
    let lag_seconds = a.metric("nats_forward_lag_seconds").await.unwrap_or(0.0);
    nats.restart();
    let outage_lasted = down.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for w in workers {
        for (status, n) in w.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let during = during_outage.load(Ordering::SeqCst);
    assert_eq!(statuses.keys().collect::<Vec<_>>(), [&200], "{statuses:?}");
    assert!(
        during > 100,
        "decisions kept flowing during the outage: {during}"
    );
    assert!(lag_at_restart > 0.0, "the outage left records to forward");
    assert!(
        (8.0..=12.0).contains(&lag_seconds),
        "the oldest record waiting was written when NATS went down: {lag_seconds} s"
    );

    let drain = drained(&[&a, &b], Duration::from_secs(30)).await;
    let stream = stream_log(&nats);
    for node in [&a, &b] {
        // The node's own records (not other nodes' changes applied here), in log order.
        let local: Vec<u64> = node
            .local_log()
            .iter()
            .filter(|r| r.get("origin").is_none())
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        let streamed: Vec<u64> = stream
            .iter()
            .filter(|r| r["node"] == node.name.as_str())
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert!(
            local.len() > 500,
            "{} records on {}",
            local.len(),
            node.name
        );
        assert!(
            streamed == local,
            "node {}: the stream holds {} records, the local log {}; first difference at {:?}",
            node.name,
            streamed.len(),
            local.len(),
            streamed.iter().zip(&local).position(|(s, l)| s != l)
        );
    }
    let local_bytes: u64 = [&a, &b]
        .iter()
        .map(|n| {
            std::fs::read_dir(n.data.path().join("log"))
                .unwrap()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .map(|e| e.metadata().unwrap().len())
                .sum::<u64>()
        })
        .sum();
    println!(
        "stream: {} bytes of message blocks for {} records ({} per record); local logs: {} bytes",
        nats.stored_bytes(),
        stream.len(),
        nats.stored_bytes() / stream.len().max(1) as u64,
        local_bytes
    );
    // Campaign changes flow again: the follower is back too.
    let started = Instant::now();
    let (status, body) = a
        .call(
            "PUT",
            "/v1/campaigns/after-outage",
            Some(&winner("after-outage")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut n = 0;
    while first_offer(&b, &format!("b-after-{n}")).await.as_deref() != Some("after-outage") {
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a change made after the outage did not reach B"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{during} decisions served during a {outage_lasted:?} NATS outage ({statuses:?} in all); \
         {lag_at_restart} bytes behind when NATS came back, drained {drain:?} after the restart (+0.5 s of traffic); \
         {} records in the stream, in order per node",
        stream.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_on_a_is_counted_on_b() {
    let nats = Nats::start();
    let a = Node::start("a", &nats);
    let b = Node::start("b", &nats);
    let (status, body) = a.decide(&request("T-token")).await;
    assert_eq!(status, 200, "{body}");
    let campaign = body["offers"][0]["campaign_id"]
        .as_str()
        .unwrap()
        .to_string();
    let on_a = body["offers"][0]["tracking"]["impression"]
        .as_str()
        .unwrap();
    let on_b = on_a.replace(&a.base, &b.base);
    assert_ne!(on_a, on_b);
    let r = b.client.get(&on_b).send().await.unwrap();
    assert_eq!(r.status(), 204);
    // A token sealed with another key is not counted (so the count above means something).
    let forged = on_b.replace("t=", "t=x");
    let _ = b.client.get(&forged).send().await.unwrap();

    // Impressions are written with the next group commit (within the flush interval):
    // wait for the first, then long enough that a second would have been written too.
    let impressions_on_b = || -> Vec<Value> {
        of_kind(&b.local_log(), "impression")
            .into_iter()
            .cloned()
            .collect()
    };
    let started = Instant::now();
    while impressions_on_b().is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let impressions = impressions_on_b();
    assert_eq!(impressions.len(), 1, "{impressions:?}");
    assert_eq!(impressions[0]["campaign_id"], campaign.as_str());
    assert_eq!(impressions[0]["decision_id"], body["decision_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_reads_every_nodes_records_from_the_stream() {
    let nats = Nats::start();
    let a = Node::start("a", &nats);
    let b = Node::start("b", &nats);
    connected(&[&a, &b]).await;
    // A decision on A whose offer is seen and clicked on B.
    let (status, body) = a.decide(&request("T-report")).await;
    assert_eq!(status, 200, "{body}");
    let offer = &body["offers"][0];
    let campaign = offer["campaign_id"].as_str().unwrap();
    for event in ["impression", "click"] {
        let url = offer["tracking"][event]
            .as_str()
            .unwrap()
            .replace(&a.base, &b.base);
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success() || r.status().is_redirection(),
            "{event}: {}",
            r.status()
        );
    }
    // The events are written with B's next group commit (within the flush interval):
    // only once they are in B's log does "drained" mean they are in the stream.
    let started = Instant::now();
    while of_kind(&b.local_log(), "click").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the click never reached B's log"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drained(&[&a, &b], Duration::from_secs(10)).await;

    let out = std::process::Command::new(bin())
        .args([
            "report",
            "--format",
            "json",
            "--campaign",
            campaign,
            "--nats",
            &nats.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &report["campaigns"][0];
    assert_eq!(row["campaign_id"], campaign, "{report}");
    assert_eq!(
        (&row["decisions"], &row["impressions"], &row["clicks"]),
        (&json!(1), &json!(1), &json!(1)),
        "the decision on A and the events on B in one row: {row}"
    );
}
