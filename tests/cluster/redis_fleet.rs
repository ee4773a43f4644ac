//! Spawning a fleet for the tests: a redis-server on a free port and aftercart nodes
//! as child processes of the built binary, each with its own data folder, all with
//! the same secrets and campaigns. Drop guards stop every process, also on panic.

use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "fleet-admin-key-0123456789";
const TOKEN_SECRET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const IDENTITY_SECRET: &str = "2222222222222222222222222222222222222222222222222222222222222222";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `request` on a fresh connection; the whole answer, or "" if none.
fn exchange(port: u16, request: &[u8]) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(request);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

/// A redis-server of the test's own, killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (tests/cluster/run installs it)");
        let redis = Redis {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !exchange(port, b"PING\r\nQUIT\r\n").starts_with("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server now (Redis goes down under the fleet).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs one command (inline protocol) and returns the raw reply.
    pub fn command(&self, cmd: &str) -> String {
        exchange(self.port, format!("{cmd}\r\nQUIT\r\n").as_bytes())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The campaigns folder every node of a fleet reads.
pub struct Campaigns(tempfile::TempDir);

impl Campaigns {
    pub fn new(docs: &[Value]) -> Campaigns {
        let dir = tempfile::tempdir().unwrap();
        for d in docs {
            let id = d["id"].as_str().unwrap();
            std::fs::write(
                dir.path().join(format!("{id}.json")),
                serde_json::to_vec_pretty(d).unwrap(),
            )
            .unwrap();
        }
        Campaigns(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// One aftercart node, killed on drop.
pub struct Node {
    child: Child,
    pub base: String,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts a node on `campaigns` sharing `redis_url` (keys under `prefix`) and
    /// waits until it is ready.
    pub fn start(campaigns: &Path, redis_url: &str, prefix: &str) -> Node {
        Node::start_on(campaigns, redis_url, prefix, tempfile::tempdir().unwrap())
    }

    /// The same, on the data folder `data` (a restart).
    pub fn start_on(
        campaigns: &Path,
        redis_url: &str,
        prefix: &str,
        data: tempfile::TempDir,
    ) -> Node {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_aftercart"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--campaigns")
            .arg(campaigns)
            .arg("--data")
            .arg(data.path())
            .env("AFTERCART_REDIS_URL", redis_url)
            .env("AFTERCART_REDIS_KEY_PREFIX", prefix)
            .env("AFTERCART_ADMIN_KEY", ADMIN_KEY)
            .env("AFTERCART_TOKEN_SECRET", TOKEN_SECRET)
            .env("AFTERCART_IDENTITY_SECRET", IDENTITY_SECRET)
            .env("AFTERCART_MIN_RENDER_MS", "0")
            .env("AFTERCART_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = exchange(
                port,
                b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            if reply.starts_with("HTTP/1.1 200") {
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("the node exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "the node did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the node as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Three nodes sharing one redis-server, with a key prefix of their own.
pub struct Fleet {
    pub nodes: Vec<Node>,
    pub redis: Redis,
    pub client: reqwest::Client,
    campaigns: Campaigns,
    prefix: String,
}

impl Fleet {
    pub fn start(n: usize, docs: &[Value]) -> Fleet {
        let redis = Redis::start();
        let campaigns = Campaigns::new(docs);
        let prefix = format!("t{}:", std::process::id());
        let nodes = (0..n)
            .map(|_| Node::start(campaigns.path(), &redis.url(), &prefix))
            .collect();
        Fleet {
            nodes,
            redis,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(16)
                .build()
                .unwrap(),
            campaigns,
            prefix,
        }
    }

    /// Stops node `i` gracefully and starts it again on the same data folder.
    pub fn restart(&mut self, i: usize) {
        assert_eq!(self.nodes[i].stop(), Some(0), "a clean stop");
        let empty = tempfile::tempdir().unwrap();
        let data = std::mem::replace(&mut self.nodes[i]._data, empty);
        let node = Node::start_on(self.campaigns.path(), &self.redis.url(), &self.prefix, data);
        self.nodes[i] = node;
    }

    /// Starts one more node (one that joins late); returns its index.
    pub fn add_node(&mut self) -> usize {
        let node = Node::start(self.campaigns.path(), &self.redis.url(), &self.prefix);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// A Redis key of this fleet.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Sends `method path` with the admin key and an optional JSON body to node `i`.
    pub async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = (self.client.request(method, self.node(i).url(path))).bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }

    /// Posts a decision request to node `i`; status and body.
    pub async fn decide(&self, i: usize, body: &Value) -> (u16, Value) {
        self.post(i, "/v1/decisions", body, false).await
    }

    /// An admin preview: checks caps and budgets without changing anything.
    pub async fn preview(&self, i: usize, body: &Value) -> (u16, Value) {
        let mut body = body.clone();
        body["test"] = Value::Bool(true);
        self.post(i, "/v1/decisions", &body, true).await
    }

    pub async fn post(&self, i: usize, path: &str, body: &Value, admin: bool) -> (u16, Value) {
        let mut r = self.client.post(self.node(i).url(path)).json(body);
        if admin {
            r = r.bearer_auth(ADMIN_KEY);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, i: usize, path: &str, body: &Value) -> (u16, Value) {
        let r = (self.client.put(self.node(i).url(path)))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every record in node `i`'s exposure log.
    pub async fn log(&self, i: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut from = 0u64;
        loop {
            let r = (self
                .client
                .get(self.node(i).url(&format!("/v1/log?from={from}&max=10000"))))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let next: u64 = r
                .headers()
                .get("x-aftercart-next-offset")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(from);
            let text = r.text().await.unwrap();
            let before = out.len();
            out.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
            );
            if out.len() == before || next == from {
                return out;
            }
            from = next;
        }
    }
}

/// A minimal valid campaign targeting `order_confirmation`, changed by `patch`
/// (top-level merge).
pub fn campaign(id: &str, patch: Value) -> Value {
    let mut c = serde_json::json!({
        "id": id,
        "advertiser": id,
        "name": format!("{id} test campaign"),
        "status": "active",
        "start": "2020-01-01T00:00:00Z",
        "end": "2099-12-31T23:59:59Z",
        "bid": {"model": "cpm", "amount": 10.0},
        "targeting": {"placements": ["order_confirmation"]},
        "creatives": [{"id": format!("{id}-cr"), "kind": "offer", "headline": "Hello",
            "click_url": "https://shop.example/x"}]
    });
    if let Value::Object(p) = patch {
        for (k, v) in p {
            c[k] = v;
        }
    }
    c
}

/// A decision request with these identifiers (personalisation consent by default).
pub fn request(tx: &str, ids: Value) -> Value {
    serde_json::json!({
        "placement": "order_confirmation",
        "channel": "online",
        "slots": 2,
        "transaction": {"id": tx, "total": 50.0, "currency": "USD",
            "items": [{"sku": "SKU-1", "category": "electronics/audio", "brand": "Sonix",
                "price": 50.0, "quantity": 1}]},
        "customer": {"ids": ids},
        "context": {"country": "US"}
    })
}

/// The offer of `campaign` in a decision response.
pub fn offer<'a>(d: &'a Value, campaign: &str) -> Option<&'a Value> {
    d["offers"]
        .as_array()?
        .iter()
        .find(|o| o["campaign_id"] == campaign)
}
