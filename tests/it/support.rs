//! Starting real servers for the tests: in-process on port 0, or the real binary.

use aftercart::app::App;
use aftercart::clock::{ManualClock, SharedClock, SystemClock};
use aftercart::config::Config;
use aftercart::exposure::storage::Faults;
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
    faults: Arc<Faults>,
    /// Keep the campaigns folder inside the data folder (seeded with these documents,
    /// or the samples), so uploads survive a restart on the same data.
    writable: Option<Vec<Value>>,
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
        self.start_on(tempfile::tempdir().unwrap()).await
    }

    /// A campaigns folder of its own inside the data folder, seeded with `docs` (the
    /// sample campaigns when empty) on first start: uploads write there and a restart
    /// on the same data finds them.
    pub fn writable_campaigns(mut self, docs: &[Value]) -> Builder {
        self.writable = Some(docs.to_vec());
        self
    }

    /// Fault injection on the exposure log's storage.
    pub fn faults(mut self, faults: Arc<Faults>) -> Builder {
        self.faults = faults;
        self
    }

    /// Starts on an existing data folder (a restart).
    pub async fn start_on(self, data: TempDir) -> TestServer {
        let mut config = self.config;
        config.data = data.path().to_path_buf();
        if let Some(docs) = &self.writable {
            let dir = data.path().join("campaigns");
            if !dir.exists() {
                std::fs::create_dir_all(&dir).unwrap();
                if docs.is_empty() {
                    for e in std::fs::read_dir(sample_campaigns()).unwrap() {
                        let path = e.unwrap().path();
                        // The campaign documents; not the sample stock beside them.
                        if path.is_file() {
                            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
                        }
                    }
                }
                for d in docs {
                    let id = d["id"].as_str().unwrap();
                    let bytes = serde_json::to_vec_pretty(d).unwrap();
                    std::fs::write(dir.join(format!("{id}.json")), bytes).unwrap();
                }
            }
            config.campaigns = dir;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.listen = addr;
        config.public_url = format!("http://{addr}");
        let app = App::start_with_faults(config, self.clock, self.faults)
            .await
            .expect("server starts");
        TestServer::serve(app, listener, data, self.campaigns).await
    }
}

impl TestServer {
    async fn serve(
        app: Arc<App>,
        listener: tokio::net::TcpListener,
        data: TempDir,
        campaigns: Option<TempDir>,
    ) -> TestServer {
        let addr = listener.local_addr().unwrap();
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
            _campaigns: campaigns,
        }
    }

    pub fn builder() -> Builder {
        let config = Config {
            campaigns: sample_campaigns(),
            admin_key: Some(ADMIN_KEY.into()),
            // Tests fire impressions the moment they have the offer: faster than any page.
            min_render_ms: 0,
            ..Config::default()
        };
        Builder {
            config,
            clock: Arc::new(SystemClock),
            campaigns: None,
            faults: Arc::default(),
            writable: None,
        }
    }

    /// A server on the shipped sample campaigns.
    pub async fn sample() -> TestServer {
        TestServer::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Posts JSON to `path`, with the admin key when `admin`; returns status and body.
    pub async fn post_json(&self, path: &str, body: &Value, admin: bool) -> (u16, Value) {
        let mut r = self
            .client
            .post(self.url(path))
            .header("content-type", JSON)
            .json(body);
        if admin {
            r = r.bearer_auth(ADMIN_KEY);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Posts a JSON decision request; returns status and body.
    pub async fn decide(&self, body: &Value) -> (u16, Value) {
        self.post_json("/v1/decisions", body, false).await
    }

    /// Posts a decision request with the admin key.
    pub async fn decide_admin(&self, body: &Value) -> (u16, Value) {
        self.post_json("/v1/decisions", body, true).await
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

    /// Stops gracefully (drain, flush the log, checkpoint).
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops gracefully and hands back the data folder, for a restart.
    pub async fn stop_keeping_data(mut self) -> TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.app.shut_down().await;
        let empty = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.data, empty)
    }

    /// Every record in the log, as `aftercart log` shows them.
    pub async fn log_records(&self) -> Vec<Value> {
        let _ = self.app.log.flush().await;
        read_log(self.data.path())
    }

    /// Sends `method path` with `key` (a bearer key) and an optional JSON body; returns
    /// status and JSON body (`null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.client.request(method, self.url(path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates an advertiser (admin key); returns its API key.
    pub async fn advertiser(&self, id: &str) -> String {
        let body = json!({"id": id, "name": id.to_uppercase()});
        let (status, created) = self
            .call("POST", "/v1/advertisers", Some(ADMIN_KEY), Some(&body))
            .await;
        assert_eq!(status, 201, "{created}");
        created["api_key"].as_str().unwrap().to_string()
    }

    /// Mints a key of `role` (admin key); returns (id, key).
    pub async fn key(&self, role: &str) -> (String, String) {
        let (status, k) = self
            .call(
                "POST",
                "/v1/keys",
                Some(ADMIN_KEY),
                Some(&json!({"role": role})),
            )
            .await;
        assert_eq!(status, 201, "{k}");
        (
            k["id"].as_str().unwrap().to_string(),
            k["key"].as_str().unwrap().to_string(),
        )
    }

    /// Posts conversions with the admin key.
    pub async fn convert(&self, body: &Value) -> (u16, Value) {
        self.post_json("/v1/conversions", body, true).await
    }

    /// GET a URL without following redirects.
    pub async fn get_raw(&self, url: &str) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        client.get(url).send().await.unwrap()
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

/// Every record of the log in `data`, read with the real `aftercart log`.
pub fn read_log(data: &Path) -> Vec<Value> {
    let out = std::process::Command::new(bin())
        .arg("log")
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aftercart log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records of one kind.
pub fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// A conversion body.
pub fn conversion(order: &str, patch: Value) -> Value {
    let mut c = json!({
        "order_id": order, "type": "purchase", "channel": "in_store", "store_id": "store-042",
        "total": 9.98, "currency": "USD",
        "customer": {"ids": {"loyalty_id": "L-123", "payment_token": "tok_9"}},
        "items": [{"sku": "SKU-77", "category": "grocery/snacks", "brand": "Crunchy", "price": 4.99, "quantity": 2}]
    });
    if let Value::Object(p) = patch {
        for (k, v) in p {
            c[k] = v;
        }
    }
    c
}

// The real binary, for crashes, signals and exit codes.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    _data: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary on `campaigns` with a fresh data folder and waits until it is
/// ready.
pub fn spawn_server(campaigns: &Path) -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut server = spawn_server_in(campaigns, data.path());
    server._data = Some(data);
    server
}

/// Starts the real binary on `campaigns` and the data folder `data`, and waits until it
/// is ready.
pub fn spawn_server_in(campaigns: &Path, data: &Path) -> Server {
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(data)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        port,
        _data: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the process to exit and returns its exit code.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
