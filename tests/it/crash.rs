//! Nothing acknowledged is lost: kill -9 during conversions, torn tails, graceful stops.

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversion_that_got_a_202_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let server = spawn_server_in(&sample_campaigns(), data.path());
    let key = std::fs::read_to_string(data.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_string();
    let url = format!("http://127.0.0.1:{}/v1/conversions", server.port);
    let stop = Arc::new(AtomicBool::new(false));
    let mut posters = Vec::new();
    for worker in 0..6 {
        let (url, key, stop) = (url.clone(), key.clone(), stop.clone());
        posters.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<_> = (0..5)
                    .map(|i| conversion(&format!("K-{worker}-{n}-{i}"), json!({})))
                    .collect();
                n += 1;
                match client
                    .post(&url)
                    .bearer_auth(&key)
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
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&server.child, "-KILL");
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for p in posters {
        acked.extend(p.await.unwrap());
    }
    drop(server);
    assert!(
        acked.len() > 50,
        "the test posted enough to mean something: {}",
        acked.len()
    );

    let logged: HashSet<String> = of_kind(&read_log(data.path()), "conversion")
        .iter()
        .map(|r| r["order_id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.iter().filter(|o| !logged.contains(*o)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged conversions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // After a restart, the same conversions are recognised as duplicates.
    let server = spawn_server_in(&sample_campaigns(), data.path());
    let sample: Vec<_> = acked
        .iter()
        .take(100)
        .map(|o| conversion(o, json!({})))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/conversions", server.port))
        .bearer_auth(&key)
        .json(&sample)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 0, "duplicates": sample.len()}));
}

#[tokio::test]
async fn a_torn_tail_is_cut_back_and_everything_before_it_is_kept() {
    let s = TestServer::sample().await;
    for i in 0..10 {
        assert_eq!(
            s.convert(&conversion(&format!("T-{i}"), json!({}))).await.0,
            202
        );
    }
    let data = s.stop_keeping_data().await;
    let segment = std::fs::read_dir(data.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    // Cut the last record in half, as a crash in the middle of a write would.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    f.set_len(len - 40).unwrap();
    drop(f);

    let s = TestServer::builder().start_on(data).await;
    let orders: Vec<String> = of_kind(&s.log_records().await, "conversion")
        .iter()
        .map(|r| r["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orders, (0..9).map(|i| format!("T-{i}")).collect::<Vec<_>>());
    let (status, body) = s
        .convert(&json!([
            conversion("T-9", json!({})),
            conversion("T-10", json!({}))
        ]))
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(2)),
        "the cut record can be sent again"
    );
    assert_eq!(of_kind(&s.log_records().await, "conversion").len(), 11);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_leaves_no_decision_record_in_memory() {
    let data = tempfile::tempdir().unwrap();
    let mut server = spawn_server_in(&sample_campaigns(), data.path());
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/v1/decisions", server.port);
    let mut served = HashSet::new();
    for i in 0..200 {
        let mut req = example(
            [
                "decision-online.json",
                "decision-app.json",
                "decision-in-store.json",
            ][i % 3],
        );
        req["transaction"]["id"] = json!(format!("GS-{i}"));
        let r = client.post(&url).json(&req).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        served.insert(body["decision_id"].as_str().unwrap().to_string());
    }
    signal(&server.child, "-TERM");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(10)),
        Some(0)
    );
    let records = read_log(data.path());
    let logged: HashSet<String> = records
        .iter()
        .filter(|r| r["kind"] == "decision" || r["kind"] == "nofill")
        .map(|r| r["decision_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        logged, served,
        "every decision that got a 200 has its records"
    );
    assert!(
        data.path().join("checkpoint/ledger.bin").exists(),
        "a final checkpoint was written"
    );
}

/// Batches of uploads while the server is killed: every file is whole, every batch is
/// entirely one generation, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_leaves_whole_files_and_whole_batches() {
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().join("campaigns");
    std::fs::create_dir(&folder).unwrap();
    let server = spawn_server_in(&folder, data.path());
    let key = std::fs::read_to_string(data.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_string();
    let url = format!("http://127.0.0.1:{}/v1/campaigns/batch", server.port);
    let batch = |worker: usize, generation: u64| -> serde_json::Value {
        (0..40)
            .map(|i| {
                let mut c = campaign(&format!("w{worker}-{i}"), "acme", json!({}));
                c["name"] = json!(format!("generation {generation}"));
                c
            })
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Arc<[std::sync::atomic::AtomicU64; 2]> = Arc::default();
    let mut uploaders = Vec::new();
    for worker in 0..2 {
        let (url, key, stop) = (url.clone(), key.clone(), stop.clone());
        let progress = progress.clone();
        uploaders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = 0;
            let mut generation = 1;
            while !stop.load(Ordering::SeqCst) {
                let sent = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&batch(worker, generation))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked = generation;
                        progress[worker].store(generation, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => break,
                }
                generation += 1;
            }
            acked
        }));
    }
    // Kill once both have a few acknowledged batches, at a moment that varies run to run.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while progress.iter().any(|p| p.load(Ordering::SeqCst) < 3) {
        assert!(std::time::Instant::now() < deadline, "uploads too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(rand_ms())).await;
    signal(&server.child, "-KILL");
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for u in uploaders {
        acked.push(u.await.unwrap());
    }
    drop(server);
    assert!(
        acked.iter().all(|&g| g >= 3),
        "enough uploads to mean something: {acked:?}"
    );

    // Start again: an interrupted set is finished or discarded, never half applied.
    let server = spawn_server_in(&folder, data.path());
    for (worker, &acked) in acked.iter().enumerate() {
        let generations: HashSet<String> = (0..40)
            .map(|i| {
                let path = folder.join(format!("w{worker}-{i}.json"));
                let doc: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("a whole file");
                doc["name"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            generations.len(),
            1,
            "one batch, one generation: {generations:?}"
        );
        let g: u64 = generations.iter().next().unwrap()["generation ".len()..]
            .parse()
            .unwrap();
        assert!(g == acked || g == acked + 1, "acked {acked}, found {g}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no staging folder left after the restart"
    );
    drop(server);
}

/// A delay of 0 to 250 ms that differs from run to run.
fn rand_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 250)
}
