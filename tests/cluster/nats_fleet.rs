//! A fleet on loopback for the tests: a real `nats-server` with JetStream on a free port,
//! and real `aftercart` nodes (the built binary) with their own data and campaigns
//! folders, sharing the deployment's secrets. Everything started here is killed when
//! dropped, also when a test panics.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "fleet-admin-key-0123456789";
/// Every node shares these (see docs/scale-out.md): tokens and identifier hashes match.
const TOKEN_SECRET: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0";
const IDENTITY_SECRET: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aftercart")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sample_campaigns() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

/// The `nats-server` program: on the PATH, or where Debian puts it (`/usr/sbin`, which is
/// not on every user's PATH).
fn nats_server() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// A `nats-server -js` on loopback; stopped when dropped.
pub struct Nats {
    pub port: u16,
    pub url: String,
    store: TempDir,
    child: Option<Child>,
}

impl Nats {
    pub fn start() -> Nats {
        let port = free_port();
        let mut nats = Nats {
            port,
            url: format!("nats://127.0.0.1:{port}"),
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.restart();
        nats
    }

    /// Starts the server again on the same port and store (after [`Nats::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.store.path().join("server.log")).unwrap();
        let child = Command::new(nats_server())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server is installed (tests/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bytes of the server's JetStream message blocks (for sizing figures).
    pub fn stored_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            walk(&path)
                        } else if path.extension().is_some_and(|x| x == "blk") {
                            e.metadata().map_or(0, |m| m.len())
                        } else {
                            0
                        }
                    })
                    .sum()
            })
        }
        walk(self.store.path())
    }

    /// Kills the server (SIGKILL: an outage, not a goodbye) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `aftercart serve` of the fleet; killed when dropped.
pub struct Node {
    pub name: String,
    pub port: u16,
    pub base: String,
    pub data: TempDir,
    nats_url: String,
    child: Option<Child>,
    pub client: reqwest::Client,
}

impl Node {
    /// Starts node `name` on the sample campaigns (copied into its own folder, where its
    /// uploads go) and waits until it is ready.
    pub fn start(name: &str, nats: &Nats) -> Node {
        let data = tempfile::tempdir().unwrap();
        let campaigns = data.path().join("campaigns");
        std::fs::create_dir_all(&campaigns).unwrap();
        for e in std::fs::read_dir(sample_campaigns()).unwrap() {
            let path = e.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, campaigns.join(path.file_name().unwrap())).unwrap();
            }
        }
        let mut node = Node {
            name: name.to_string(),
            port: 0,
            base: String::new(),
            data,
            nats_url: nats.url.clone(),
            child: None,
            client: reqwest::Client::new(),
        };
        node.restart();
        node
    }

    /// Starts the node again on its data (after a kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("node.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--campaigns")
            .arg(self.data.path().join("campaigns"))
            .arg("--data")
            .arg(self.data.path())
            .env("AFTERCART_NATS_URL", &self.nats_url)
            .env("AFTERCART_NATS_NODE_ID", &self.name)
            .env("AFTERCART_ADMIN_KEY", ADMIN_KEY)
            .env("AFTERCART_TOKEN_SECRET", TOKEN_SECRET)
            .env("AFTERCART_IDENTITY_SECRET", IDENTITY_SECRET)
            .env("AFTERCART_MIN_RENDER_MS", "0")
            .env("AFTERCART_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.port = port;
        self.base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ =
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "node {} exited ({status}):\n{}",
                    self.name,
                    self.server_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not become ready",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the node wrote to stderr.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("node.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls the node with the admin key; returns status and body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A decision; returns status and body.
    pub async fn decide(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/decisions"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A metric's value from `/metrics` (the first series of that name).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                l.split([' ', '{'])
                    .next()
                    .is_some_and(|n| n == format!("aftercart_{name}"))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Every record of this node's own log, read with the real `aftercart log`.
    pub fn local_log(&self) -> Vec<Value> {
        let out = Command::new(bin())
            .arg("log")
            .arg("--data")
            .arg(self.data.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_lines(&out.stdout)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- node {} log ----\n{}", self.name, self.server_log());
        }
    }
}

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every record in the stream, read with the real `aftercart log --nats`.
pub fn stream_log(nats: &Nats) -> Vec<Value> {
    let out = Command::new(bin())
        .args(["log", "--nats", &nats.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aftercart log --nats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

/// Records of one kind.
pub fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// A campaign that wins every decision on the order confirmation page.
pub fn winner(id: &str) -> Value {
    json!({
        "id": id,
        "advertiser": "fleet",
        "name": format!("{id} test campaign"),
        "status": "active",
        "priority": 1,
        "start": "2020-01-01T00:00:00Z",
        "end": "2099-12-31T23:59:59Z",
        "bid": {"model": "cpm", "amount": 50.0},
        "targeting": {"placements": ["order_confirmation"]},
        "creatives": [{"id": format!("{id}-cr"), "kind": "offer", "headline": "Hello", "click_url": "https://shop.example/x"}]
    })
}

/// A decision request for a fresh transaction.
pub fn request(tx: &str) -> Value {
    json!({
        "placement": "order_confirmation",
        "channel": "online",
        "transaction": {"id": tx, "total": 50.0, "currency": "USD",
            "items": [{"sku": "SKU-1", "category": "electronics/audio", "brand": "Sonix", "price": 50.0, "quantity": 1}]},
        "customer": {"ids": {"device_id": format!("dev-{tx}")}, "loyalty_tier": "gold", "new_customer": false},
        "context": {"country": "US", "region": "CA", "store_id": "store-042"}
    })
}

/// A conversion body for `order`.
pub fn conversion(order: &str) -> Value {
    json!({
        "order_id": order, "type": "purchase", "channel": "in_store", "store_id": "store-042",
        "total": 9.98, "currency": "USD",
        "customer": {"ids": {"loyalty_id": "L-123", "payment_token": "tok_9"}},
        "items": [{"sku": "SKU-77", "category": "grocery/snacks", "brand": "Crunchy", "price": 4.99, "quantity": 2}]
    })
}

/// The campaign ids a decision offered.
pub fn offered(body: &Value) -> Vec<String> {
    body["offers"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|o| o["campaign_id"].as_str().map(str::to_string))
        .collect()
}
