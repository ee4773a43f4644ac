//! Bad and hostile input gets a precise 4xx naming the field, and the server keeps
//! serving.

use crate::support::*;
use serde_json::{Value, json};

async fn still_serving(s: &TestServer) {
    let (status, body) = s.decide(&example("decision-online.json")).await;
    assert_eq!(status, 200, "the server still answers: {body}");
}

#[tokio::test]
async fn the_bad_input_matrix_gets_precise_errors() {
    let s = TestServer::sample().await;
    // (what, body, status, error code, the paths the error must name)
    type Case = (&'static str, Vec<u8>, u16, &'static str, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("malformed JSON", b"{\"placement\": ".to_vec(), 400, "malformed_body", vec!["placement"]),
        ("not an object", b"[1, 2]".to_vec(), 400, "malformed_body", vec!["[0]"]),
        ("trailing garbage", br#"{"placement":"p","channel":"online","transaction":{"id":"x"}} x"#.to_vec(), 400, "malformed_body", vec![""]),
        (
            "wrong type deep inside",
            serde_json::to_vec(&request("T1", json!({"transaction": {"id": "T1", "items": [{"sku": "a"}, {"sku": "b", "price": "9.99"}]}}))).unwrap(),
            400,
            "malformed_body",
            vec!["transaction.items[1].price"],
        ),
        ("slots is text", serde_json::to_vec(&request("T2", json!({"slots": "2"}))).unwrap(), 400, "malformed_body", vec!["slots"]),
        ("unknown field", serde_json::to_vec(&request("T3", json!({"slot": 2}))).unwrap(), 400, "malformed_body", vec!["slot"]),
        ("missing everything", b"{}".to_vec(), 400, "invalid_request", vec!["placement", "channel", "transaction"]),
        (
            "missing transaction id",
            serde_json::to_vec(&json!({"placement": "p", "channel": "online", "transaction": {}})).unwrap(),
            400,
            "invalid_request",
            vec!["transaction.id"],
        ),
        ("zero slots", serde_json::to_vec(&request("T4", json!({"slots": 0}))).unwrap(), 400, "invalid_request", vec!["slots"]),
        ("eleven slots", serde_json::to_vec(&request("T5", json!({"slots": 11}))).unwrap(), 400, "invalid_request", vec!["slots"]),
        ("unknown channel", serde_json::to_vec(&request("T6", json!({"channel": "tv"}))).unwrap(), 400, "invalid_request", vec!["channel"]),
        (
            "negative money, everywhere at once",
            serde_json::to_vec(&request("T7", json!({"transaction": {"id": "T7", "total": -1, "items": [{"price": -2.5}]}}))).unwrap(),
            400,
            "invalid_request",
            vec!["transaction.total", "transaction.items[0].price"],
        ),
        (
            "a hash that is not a hash",
            serde_json::to_vec(&request("T8", json!({"customer": {"ids": {"email_sha256": "bob@example.com"}}}))).unwrap(),
            400,
            "invalid_request",
            vec!["customer.ids.email_sha256"],
        ),
        (
            "too many items",
            serde_json::to_vec(&request("T9", json!({"transaction": {"id": "T9", "items": vec![json!({"sku": "s"}); 101]}}))).unwrap(),
            400,
            "invalid_request",
            vec!["transaction.items"],
        ),
        (
            "a path traversal placement",
            serde_json::to_vec(&request("T10", json!({"placement": "../../etc/passwd"}))).unwrap(),
            400,
            "invalid_request",
            vec!["placement"],
        ),
    ];
    for (name, body, status, code, paths) in cases {
        let (got, err) = s.post_raw("/v1/decisions", JSON, body).await;
        assert_eq!(got, status, "{name}: {err}");
        assert_eq!(err["error"]["code"], code, "{name}: {err}");
        assert_eq!(error_paths(&err), paths, "{name}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn a_raw_email_is_never_echoed_in_an_error() {
    let s = TestServer::sample().await;
    let (status, err) = s
        .decide(&request(
            "T-email",
            json!({"customer": {"ids": {"email": "not-an-address"}}}),
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_paths(&err), ["customer.ids.email"]);
    assert!(!err.to_string().contains("not-an-address"));
    s.stop().await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let s = TestServer::sample().await;
    for body in [
        "[".repeat(100_000),
        format!("{{\"placement\": {}", "[".repeat(100_000)),
        format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
    ] {
        let (status, err) = s.post_raw("/v1/decisions", JSON, body.into_bytes()).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "malformed_body");
    }
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_before_or_while_reading() {
    let s = TestServer::builder()
        .config(|c| c.max_body_bytes = 4096)
        .start()
        .await;
    let big = vec![b' '; 5000];
    let (status, err) = s.post_raw("/v1/decisions", JSON, big).await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["code"], "payload_too_large");

    // Without a Content-Length (chunked), the limit is found while reading.
    let chunk = format!("{:x}\r\n{}\r\n", 3000, " ".repeat(3000));
    let head = "POST /v1/decisions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let reply = raw_exchange(s.addr, &format!("{head}{chunk}{chunk}0\r\n\r\n")).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn unsupported_content_types_get_415_and_unknown_routes_404_and_405() {
    let s = TestServer::sample().await;
    let body = serde_json::to_vec(&example("decision-online.json")).unwrap();
    let (status, err) = s
        .post_raw("/v1/decisions", "text/plain", body.clone())
        .await;
    assert_eq!(status, 415);
    assert_eq!(err["error"]["code"], "unsupported_media_type");
    let (status, _) = s
        .post_raw(
            "/v1/decisions",
            "application/x-www-form-urlencoded",
            body.clone(),
        )
        .await;
    assert_eq!(status, 415);
    let (status, _) = s
        .post_raw("/v1/decisions", "application/json; charset=utf-8", body)
        .await;
    assert_eq!(status, 200, "parameters on the media type are fine");

    let r = s.client.get(s.url("/v1/decisions")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .client
        .get(s.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "not_found");
    s.stop().await;
}

#[tokio::test]
async fn msgpack_garbage_and_wrong_types_are_400s_with_paths() {
    let s = TestServer::sample().await;
    let (status, err) = s
        .post_raw("/v1/decisions", MSGPACK, vec![0xc1, 0xff, 0x00])
        .await;
    assert_eq!(status, 400, "{err}");
    let mut req = request("T-mp", json!({}));
    req["slots"] = json!("two");
    let (status, err) = s
        .post_raw(
            "/v1/decisions",
            MSGPACK,
            rmp_serde::to_vec_named(&req).unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_paths(&err), ["slots"]);
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_and_the_connection_cap_holds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::builder()
        .config(|c| {
            c.header_read_timeout_ms = 300;
            c.idle_timeout_ms = 400;
            c.max_connections = 3;
        })
        .start()
        .await;
    let closed_within = |mut stream: tokio::net::TcpStream, secs: u64| async move {
        let mut buf = [0u8; 1024];
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(std::time::Duration::from_secs(secs), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        (r.is_ok(), started.elapsed())
    };

    // Slowloris: half a request line, never finished.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"POST /v1/decisions HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let (closed, after) = closed_within(slow, 5).await;
    assert!(
        closed,
        "a client that never finishes its headers is dropped"
    );
    assert!(after < std::time::Duration::from_secs(3), "{after:?}");

    // Idle keep-alive after one request.
    let mut idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (closed, after) = closed_within(idle, 5).await;
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(
        after >= std::time::Duration::from_millis(300),
        "not before the idle timeout: {after:?}"
    );

    // The cap: three connections held open, a fourth is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "over the cap: closed without an answer");
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    still_serving(&s).await;
    s.stop().await;
}

/// Slowloris at scale: 500 connections trickling half a request do not stop a normal
/// client from getting decisions (the real binary, so each side has its own sockets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_slow_clients_do_not_starve_a_normal_one() {
    use tokio::io::AsyncWriteExt;
    let server = spawn_server(&sample_campaigns());
    let addr = format!("127.0.0.1:{}", server.port);
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"POST /v1/decisions HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(c);
    }
    let keep_trickling = tokio::spawn(async move {
        for _ in 0..20 {
            for c in slow.iter_mut() {
                let _ = c.write_all(b"a").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        slow
    });
    let client = reqwest::Client::new();
    for i in 0..10 {
        let started = std::time::Instant::now();
        let r = client
            .post(format!("http://{addr}/v1/decisions"))
            .json(&example_with_tx("decision-online.json", &format!("SL-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "a decision took {:?} beside 500 slow clients",
            started.elapsed()
        );
    }
    drop(keep_trickling.await.unwrap());
}

fn example_with_tx(file: &str, tx: &str) -> serde_json::Value {
    let mut req = example(file);
    req["transaction"]["id"] = serde_json::json!(tx);
    req
}
