//! The process around the decisions: configuration errors, start-up refusal of a bad
//! campaigns folder, `aftercart validate`, health, readiness, metrics and graceful
//! shutdown of the real binary.

use crate::support::*;
use serde_json::json;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// A folder of campaign files with one mistake of every kind, spread over two files.
fn broken_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut a = campaign(
        "c-a",
        "adv",
        json!({"targeting": {"channels": ["online", "tv"]}, "budget": {"daily": -5}}),
    );
    a["colour"] = json!("blue");
    a["start"] = json!("next tuesday");
    std::fs::write(dir.path().join("c-a.json"), serde_json::to_vec(&a).unwrap()).unwrap();
    let mut b = campaign("../escape", "adv", json!({}));
    b["creatives"][0]["click_url"] = json!("javascript:alert(1)");
    std::fs::write(dir.path().join("b.json"), serde_json::to_vec(&b).unwrap()).unwrap();
    dir
}

const EXPECTED_PROBLEMS: [(&str, &str); 6] = [
    ("c-a.json", "colour"),
    ("c-a.json", "start"),
    ("c-a.json", "budget.daily"),
    ("c-a.json", "targeting.channels[1]"),
    ("b.json", "id"),
    ("b.json", "creatives[0].click_url"),
];

#[test]
fn validate_lists_every_problem_with_file_and_path() {
    let dir = broken_folder();
    let out = Command::new(bin())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let text = String::from_utf8_lossy(&out.stdout);
    for (file, path) in EXPECTED_PROBLEMS {
        assert!(
            text.lines()
                .any(|l| l.contains(file) && l.contains(&format!(": {path}: "))),
            "{file} {path} in:\n{text}"
        );
    }

    let ok = Command::new(bin())
        .arg("validate")
        .arg(sample_campaigns())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

#[test]
fn the_server_refuses_to_start_on_a_broken_campaigns_folder() {
    let dir = broken_folder();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--campaigns")
        .arg(dir.path())
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let text = String::from_utf8_lossy(&out.stderr);
    for (file, path) in EXPECTED_PROBLEMS {
        assert!(
            text.contains(file) && text.contains(path),
            "{file} {path} in:\n{text}"
        );
    }
}

#[test]
fn every_bad_setting_is_reported_at_once_with_exit_code_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aftercart.toml");
    std::fs::write(&file, "currency = \"dollars\"\nmax_slots = 0\ncolour = \"blue\"\n[placements.order_confirmation]\nfloor_ecpm = -1\n").unwrap();
    let port = free_port();
    let start = Instant::now();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&file)
        .env("AFTERCART_TIMEZONE", "Mars/Olympus")
        .env("AFTERCART_LISTEN", "nope")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text = String::from_utf8_lossy(&out.stderr);
    for key in [
        "currency",
        "max_slots",
        "colour",
        "placements.order_confirmation.floor_ecpm",
        "AFTERCART_TIMEZONE",
        "AFTERCART_LISTEN",
    ] {
        assert!(text.contains(key), "{key} reported in:\n{text}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing was bound"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::sample().await;
    let get = |p: &str| s.client.get(s.url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    #[cfg(unix)]
    for secret in ["token.secret", "identity.secret"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data.path().join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "{secret} is created on first start, owner-only"
        );
    }
    s.decide(&example("decision-in-store.json")).await;
    s.decide(&json!({})).await;
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    for needle in [
        "aftercart_decision_duration_seconds_bucket{channel=\"in_store\"",
        "aftercart_decisions_total{channel=\"in_store\",outcome=\"fill\"} 1",
        "aftercart_decisions_total{channel=\"unknown\",outcome=\"invalid\"} 1",
        "aftercart_offers_total{channel=\"in_store\"",
        "aftercart_campaigns_loaded 15",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    s.stop().await;
}

#[test]
fn a_request_in_flight_at_sigterm_completes_and_the_process_exits_0() {
    let mut server = spawn_server(&sample_campaigns());
    let body = serde_json::to_vec(&example("decision-online.json")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);

    let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "POST /v1/decisions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    conn.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    signal(&server.child, "-TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "no new connections once stopping"
    );
    conn.write_all(rest).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "the in-flight request completed: {reply}"
    );
    assert!(reply.contains("\"offers\":[{"), "{reply}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the process exits after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_campaigns_folder() {
    let dir = tempfile::tempdir().unwrap();
    let write = |c: serde_json::Value| {
        let id = c["id"].as_str().unwrap().to_string();
        std::fs::write(
            dir.path().join(format!("{id}.json")),
            serde_json::to_vec(&c).unwrap(),
        )
        .unwrap();
    };
    write(campaign("c-first", "a1", json!({})));
    let mut server = spawn_server(dir.path());
    let port = server.port;
    let decide = |tx: &str| -> serde_json::Value {
        let body = serde_json::to_vec(&request(tx, json!({"slots": 3}))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                write!(s, "POST /v1/decisions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
                s.write_all(&body).unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                if let Some((_, json)) = reply.split_once("\r\n\r\n") {
                    return serde_json::from_str(json).unwrap();
                }
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(offered(&decide("h1")), ["c-first"]);
    write(campaign(
        "c-second",
        "a2",
        json!({"bid": {"model": "cpm", "amount": 99.0}}),
    ));
    signal(&server.child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while offered(&decide(&format!("h2-{n}"))) != ["c-second", "c-first"] {
        assert!(
            Instant::now() < deadline,
            "the new campaign serves after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
        n += 1;
    }
    // A broken file keeps the running set.
    std::fs::write(dir.path().join("c-bad.json"), b"{").unwrap();
    signal(&server.child, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(offered(&decide("h3")), ["c-second", "c-first"]);
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
}
