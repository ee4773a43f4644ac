//! The fleet's shared state on Redis (cargo feature `redis`, config `[redis]`).
//!
//! [`Fleet::start`] connects lazily (a node starts, and decides, with Redis down) and
//! runs the background tasks; nothing on the decision path waits for Redis:
//!
//! - [`leases`]: budget leases, topped up and given back;
//! - [`replication`]: links, offers served and erasures, to and from every node;
//! - [`stock`]: purchases take stock atomically in Redis (the purchase path waits, at
//!   most `timeout_ms`, and answers 503 when Redis does not); decisions read a local
//!   copy of the levels refreshed every `stock_refresh_ms`.
//!
//! Every key starts with `key_prefix`. Each node has a stable id (a random number kept
//! in `DATA/cluster-node`), under which it publishes its spend and by which it
//! recognises its own stream entries.

mod conn;
pub mod leases;
pub mod replication;
pub mod stock;

use crate::app::App;
use crate::cluster::RedisSettings;
use conn::Conn;
pub use conn::RedisError;
use prometheus::{IntCounter, IntGauge, Opts};
use std::sync::Arc;
use std::time::Duration;

/// The fleet's series (registered in the server's registry).
pub struct FleetMetrics {
    pub lease_refills: IntCounter,
    pub lease_balance: IntGauge,
    pub leases_held: IntGauge,
    pub replication_lag_ms: IntGauge,
    pub replication_dropped: IntCounter,
    pub redis_errors: IntCounter,
}

impl FleetMetrics {
    fn register(registry: &prometheus::Registry) -> FleetMetrics {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid metric");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid metric");
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        FleetMetrics {
            lease_refills: counter(
                "fleet_lease_refills_total",
                "Budget lease slices this node took from the fleet",
            ),
            lease_balance: gauge(
                "fleet_lease_balance_micros",
                "Budget leased to this node and not yet charged or reserved, all campaigns",
            ),
            leases_held: gauge(
                "fleet_leases_held",
                "Campaigns this node keeps a budget lease for (those its decisions wanted)",
            ),
            replication_lag_ms: gauge(
                "fleet_replication_lag_ms",
                "Age of the last change applied from another node when applied",
            ),
            replication_dropped: counter(
                "fleet_replication_dropped_total",
                "Changes not sent to the fleet because the outbox was full",
            ),
            redis_errors: counter(
                "fleet_redis_errors_total",
                "Redis commands that failed or timed out",
            ),
        }
    }
}

/// This node's handle on the fleet.
pub struct Fleet {
    pub settings: RedisSettings,
    /// This node's stable id.
    pub node: u64,
    conn: Arc<Conn>,
    pub stock: stock::Stock,
    pub metrics: FleetMetrics,
    /// Held by the lease task for each round and by a stop, which sets `stopping`
    /// under it: no lease is topped up after the stop gave the leases back.
    leasing: tokio::sync::Mutex<()>,
    stopping: std::sync::atomic::AtomicBool,
    /// The last entry of the stream of changes applied here (or being applied, while
    /// `applying` is held).
    applied: std::sync::Mutex<String>,
    applying: tokio::sync::Mutex<()>,
}

impl Fleet {
    /// Connects (lazily) and starts the background tasks for `app`, whose delivery
    /// state was built with leased budgets, applying the other nodes' changes from
    /// after `position` (the one the last checkpoint recorded; from the start of the
    /// stream without one). Must run inside the Tokio runtime.
    pub fn start(
        app: &Arc<App>,
        settings: &RedisSettings,
        node: u64,
        position: Option<String>,
    ) -> Result<Arc<Fleet>, RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let metrics = FleetMetrics::register(app.metrics.registry());
        let conn = Arc::new(Conn::new(
            client,
            Duration::from_millis(settings.timeout_ms),
            metrics.redis_errors.clone(),
        ));
        let fleet = Arc::new(Fleet {
            settings: settings.clone(),
            node,
            stock: stock::Stock::new(conn.clone(), &settings.key_prefix),
            conn,
            metrics,
            leasing: tokio::sync::Mutex::new(()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            applied: std::sync::Mutex::new(position.unwrap_or_else(|| "0-0".to_string())),
            applying: tokio::sync::Mutex::new(()),
        });
        let (outbox, rx) = replication::Outbox::new(fleet.metrics.replication_dropped.clone());
        // Set once, at start: only this fleet ever replicates for this server.
        let _ = app.delivery.replication.set(Arc::new(outbox));
        tokio::spawn(replication::send(fleet.clone(), rx));
        tokio::spawn(replication::receive(fleet.clone(), Arc::downgrade(app)));
        tokio::spawn(leases::keep(fleet.clone(), Arc::downgrade(app)));
        tokio::spawn(refresh_stock(fleet.clone(), Arc::downgrade(app)));
        Ok(fleet)
    }

    /// The last entry of the stream of changes applied here, for checkpoints: waits
    /// for an entry being applied (an erasure writes to the log) to be done, so the
    /// graph and profiles saved afterwards hold everything up to the position.
    pub async fn stream_position(&self) -> String {
        let _applying = self.applying.lock().await;
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The full name of a key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.key_prefix)
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.settings.sync_interval_ms)
    }

    fn lease_interval(&self) -> Duration {
        Duration::from_millis(self.settings.lease_interval_ms)
    }

    /// A graceful stop: gives back unused budget leases.
    pub async fn shut_down(&self, app: &App) {
        let _round = self.leasing.lock().await;
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        leases::give_back_all(self, app).await;
    }
}

/// Keeps the decisions' copy of the fleet's stock levels fresh.
async fn refresh_stock(fleet: Arc<Fleet>, app: std::sync::Weak<App>) {
    let every = Duration::from_millis(fleet.settings.stock_refresh_ms);
    loop {
        let Some(app) = app.upgrade() else { return };
        match fleet.stock.levels().await {
            Ok(levels) => app.inventory.set_fleet_levels(levels),
            Err(e) => tracing::debug!(error = %e, "cannot refresh the fleet's stock levels"),
        }
        drop(app);
        tokio::time::sleep(every).await;
    }
}

/// This node's stable id: read from `path`, or created there.
pub fn node_id(path: &std::path::Path) -> std::io::Result<u64> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(id) = u64::from_str_radix(text.trim(), 16)
    {
        return Ok(id);
    }
    let id: u64 = rand::random();
    crate::secrets::write_atomic(path, format!("{id:016x}\n").as_bytes())?;
    Ok(id)
}
