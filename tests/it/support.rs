//! Starting real servers for the tests: in-process on port 0, or the real binary.

use aftercart::app::App;
use aftercart::clock::{ManualClock, SharedClock, SystemClock};
use aftercart::config::Config;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const JSON: &str = "application/json";
pub const MSGPACK: &str = "application/msgpack";

/// The sample campaigns shipped in the repository.
pub fn sample_campaigns() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

pub fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A server running in this process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub app: Arc<App>,
    pub data: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _campaigns: Option<TempDir>,
}

pub struct Builder {
    config: Config,
    clock: SharedClock,
    campaigns: Option<TempDir>,
}

impl Builder {
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Builder {
        f(&mut self.config);
        self
    }

    pub fn clock(mut self, clock: Arc<ManualClock>) -> Builder {
        self.clock = clock;
        self
    }

    /// Serve exactly these campaign documents (written to a fresh folder).
    pub fn campaigns(mut self, docs: &[Value]) -> Builder {
        let dir = tempfile::tempdir().unwrap();
        for d in docs {
            let id = d["id"].as_str().unwrap();
            std::fs::write(
                dir.path().join(format!("{id}.json")),
                serde_json::to_vec_pretty(d).unwrap(),
            )
            .unwrap();
        }
        self.config.campaigns = dir.path().to_path_buf();
        self.campaigns = Some(dir);
        self
    }

    pub async fn start(self) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let mut config = self.config;
        config.data = data.path().to_path_buf();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.listen = addr;
        config.public_url = format!("http://{addr}");
        let app = App::start(config, self.clock).expect("server starts");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(aftercart::http::run(listener, app.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            app,
            data,
            stop: Some(tx),
            task: Some(task),
            _campaigns: self.campaigns,
        }
    }
}

impl TestServer {
    pub fn builder() -> Builder {
        let config = Config {
            campaigns: sample_campaigns(),
            admin_key: Some(ADMIN_KEY.into()),
            ..Config::default()
        };
        Builder {
            config,
            clock: Arc::new(SystemClock),
            campaigns: None,
        }
    }

    /// A server on the shipped sample campaigns.
    pub async fn sample() -> TestServer {
        TestServer::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Posts a JSON decision request; returns status and body.
    pub async fn decide(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/decisions"))
            .header("content-type", JSON)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts a decision request with the admin key.
    pub async fn decide_admin(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/decisions"))
            .header("content-type", JSON)
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Campaign ids of the offers in a decision response.
pub fn offered(body: &Value) -> Vec<String> {
    body["offers"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|o| o["campaign_id"].as_str().unwrap().to_string())
        .collect()
}

/// The error paths of an error response.
pub fn error_paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map_or_else(Vec::new, |d| {
            d.iter()
                .map(|x| x["path"].as_str().unwrap_or("").to_string())
                .collect()
        })
}

/// A minimal valid campaign, changed by `patch` (merged shallowly at the top level and
/// into `targeting`).
pub fn campaign(id: &str, advertiser: &str, patch: Value) -> Value {
    let mut c = json!({
        "id": id,
        "advertiser": advertiser,
        "name": format!("{id} test campaign"),
        "status": "active",
        "start": "2020-01-01T00:00:00Z",
        "end": "2099-12-31T23:59:59Z",
        "bid": {"model": "cpm", "amount": 10.0},
        "targeting": {},
        "creatives": [{"id": format!("{id}-cr"), "kind": "offer", "headline": "Hello", "click_url": "https://shop.example/x"}]
    });
    if let Value::Object(p) = patch {
        for (k, v) in p {
            if k == "targeting" {
                if let Value::Object(t) = v {
                    for (tk, tv) in t {
                        c["targeting"][tk] = tv;
                    }
                }
            } else {
                c[k] = v;
            }
        }
    }
    c
}

/// A minimal valid decision request, changed by `patch` (top-level merge).
pub fn request(tx: &str, patch: Value) -> Value {
    let mut r = json!({
        "placement": "order_confirmation",
        "channel": "online",
        "transaction": {"id": tx, "total": 50.0, "currency": "USD",
            "items": [{"sku": "SKU-1", "category": "electronics/audio", "brand": "Sonix", "price": 50.0, "quantity": 1}]},
        "customer": {"ids": {"device_id": "dev-1"}, "loyalty_tier": "gold", "new_customer": false},
        "context": {"country": "US", "region": "CA", "store_id": "store-042"}
    });
    if let Value::Object(p) = patch {
        for (k, v) in p {
            r[k] = v;
        }
    }
    r
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aftercart")
}

/// Sends raw bytes on a fresh connection and returns what the server answers before
/// closing (or within two seconds).
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        stream.read_to_end(&mut buf),
    )
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}
