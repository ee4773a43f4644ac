//! The running server's shared state, built once from the configuration.
//!
//! [`App`] is the cheap-to-share handle every request gets: the configuration, the
//! published campaign snapshot, the decider, keys, stock and the metrics. Building it
//! loads the deployment's secrets (creating them on first start), the keys, the stock
//! journal, the campaigns folder (refusing it whole if any file is wrong), and the
//! ledger from its checkpoint and the log; then it logs any campaign the folder
//! changed while the server was down.

use crate::access::{Access, Principal};
use crate::campaign::store::CampaignFolder;
use crate::campaign::{FolderError, ValidationRules, load_folder};
use crate::clock::SharedClock;
use crate::compat::kevel::KevelIds;
use crate::config::Config;
use crate::consent::ConsentStore;
use crate::decision::{Decider, LiveState};
use crate::delivery::Delivery;
use crate::exposure::read::Records;
use crate::exposure::storage::{Faults, LogError};
use crate::exposure::{ExposureLog, WriterConfig};
use crate::identity::IdentityHasher;
use crate::identity::graph::{GraphConfig, IdentityGraph};
use crate::index::{CompiledCampaign, Publisher, SharedSnapshot, Snapshot};
use crate::inventory::Inventory;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::secrets;
use arc_swap::ArcSwap;
use http::HeaderMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the campaigns folder has {} problem(s)", .0.len())]
    Campaigns(Vec<FolderError>),
    #[error("the inventory seed has {} problem(s)", .0.len())]
    InventorySeed(Vec<FolderError>),
    #[error("exposure log: {0}")]
    Log(#[from] LogError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct App {
    pub config: Arc<Config>,
    pub snapshot: SharedSnapshot,
    pub decider: Decider,
    pub metrics: Metrics,
    pub clock: SharedClock,
    pub log: ExposureLog,
    pub ledger: Arc<Ledger>,
    /// API keys and advertisers.
    pub access: Arc<Access>,
    /// Stock per SKU and location.
    pub inventory: Arc<Inventory>,
    /// Budgets, live counters and per-profile memory.
    pub delivery: Arc<Delivery>,
    /// Consent recorded per person (see [`crate::consent`]).
    pub consent: Arc<ConsentStore>,
    /// The stable numbers Kevel's response shape needs for aftercart's ids.
    pub kevel_ids: Arc<KevelIds>,
    /// Publishes campaign changes to the decision path.
    pub publisher: Publisher,
    /// The campaigns folder, for uploads and deletes.
    pub folder: CampaignFolder,
    /// Serialises campaign changes (uploads, deletes, reloads); decisions never take it.
    pub catalog_lock: tokio::sync::Mutex<()>,
    /// Serialises erasures, which rewrite the erasure index.
    pub erasure_lock: tokio::sync::Mutex<()>,
    /// One campaign report at a time: each reads the whole log.
    pub report_turn: tokio::sync::Semaphore,
    /// Public requests per client address (`None`: no limit).
    pub address_limiter: Option<crate::traffic::RateLimiter<std::net::IpAddr>>,
    /// Fault injection for the log's storage (tests flip these).
    pub faults: Arc<Faults>,
    hasher: IdentityHasher,
    /// Where a generated admin key was written, to tell the operator.
    pub admin_key_file: Option<PathBuf>,
    /// The fleet this node shares budgets, caps, links and stock with (`[redis]`).
    #[cfg(feature = "redis")]
    pub fleet: std::sync::OnceLock<Arc<crate::cluster::redis::Fleet>>,
    ready: AtomicBool,
}

impl App {
    pub async fn start(config: Config, clock: SharedClock) -> Result<Arc<App>, StartError> {
        Self::start_with_faults(config, clock, Arc::new(Faults::default())).await
    }

    /// Starts with a handle on the log's fault injection (tests).
    pub async fn start_with_faults(
        config: Config,
        clock: SharedClock,
        faults: Arc<Faults>,
    ) -> Result<Arc<App>, StartError> {
        let io = |what, path: &PathBuf| {
            let path = path.clone();
            move |source| StartError::Io { what, path, source }
        };
        let data = config.data.clone();
        std::fs::create_dir_all(&data).map_err(io("cannot create the data folder", &data))?;

        let token_path = data.join("token.secret");
        let token_key = match config.token_secret {
            Some(k) => k,
            None => secrets::load_or_create_key(&token_path)
                .map_err(io("cannot read or create", &token_path))?,
        };
        let identity_path = data.join("identity.secret");
        let identity_key = match config.identity_secret {
            Some(k) => k,
            None => secrets::load_or_create_key(&identity_path)
                .map_err(io("cannot read or create", &identity_path))?,
        };
        let admin_path = data.join("admin.key");
        let (admin_key, admin_key_file) = match &config.admin_key {
            Some(k) => (k.clone(), None),
            None => {
                let (key, _) = secrets::load_or_create_admin_key(&admin_path)
                    .map_err(io("cannot read or create", &admin_path))?;
                (key, Some(admin_path))
            }
        };

        let access_path = data.join("access.json");
        let access = Access::open(&access_path, admin_key)
            .map_err(io("cannot read the keys in", &access_path))?;
        let inventory = Arc::new(Inventory::open(&data.join("inventory"), faults.clone())?);
        let consent = Arc::new(ConsentStore::open(&data.join("consent"), faults.clone())?);
        let kevel_ids = Arc::new(KevelIds::open(
            &data.join("compat").join("kevel-ids"),
            faults.clone(),
        )?);

        let graph_config = GraphConfig {
            max_profile_size: config.max_profile_identifiers,
        };
        let mut delivery = Delivery::new(config.reservation_ttl_secs as i64 * 1000, graph_config);
        if config.redis.is_some() {
            // A fleet shares budgets: admit only within this node's lease.
            delivery.budgets =
                crate::delivery::budget::Budgets::leased(config.reservation_ttl_secs as i64 * 1000);
        }
        let checkpoints = data.join("checkpoint");
        let graph_path = checkpoints.join("identity.bin");
        match std::fs::File::open(&graph_path) {
            Ok(f) => {
                delivery.graph = IdentityGraph::load(std::io::BufReader::new(f), graph_config)
                    .map_err(|e| StartError::Io {
                        what: "cannot read the identity checkpoint",
                        path: graph_path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StartError::Io {
                    what: "cannot read the identity checkpoint",
                    path: graph_path,
                    source,
                });
            }
        }
        let profiles_path = checkpoints.join("profiles.bin");
        match std::fs::read(&profiles_path) {
            Ok(bytes) => delivery.profiles.load(&bytes).map_err(|e| StartError::Io {
                what: "cannot read the profiles checkpoint",
                path: profiles_path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StartError::Io {
                    what: "cannot read the profiles checkpoint",
                    path: profiles_path,
                    source,
                });
            }
        }
        let erasures_dir = data.join("log");
        *delivery
            .erasures
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = crate::erasure::Erasures::load(&erasures_dir)
            .map_err(|source| StartError::Io {
                what: "cannot read the erasure index in",
                path: erasures_dir.clone(),
                source,
            })?;
        let delivery = Arc::new(delivery);
        let metrics = Metrics::new();
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let config = Arc::new(config);
        let hasher = IdentityHasher::new(&identity_key);
        let ledger = Arc::new(Ledger::new(
            hasher.clone(),
            inventory.clone(),
            delivery.clone(),
        ));
        let decider = Decider::new(
            snapshot.clone(),
            config.clone(),
            &token_key,
            &identity_key,
            clock.clone(),
            metrics.clone(),
            LiveState {
                inventory: inventory.clone(),
                delivery: delivery.clone(),
                ledger: ledger.clone(),
                consent: consent.clone(),
            },
        );
        let writer = WriterConfig {
            dir: data.join("log"),
            segment_bytes: config.log_segment_bytes,
            flush_interval: std::time::Duration::from_millis(config.log_flush_interval_ms),
            queue_capacity: config.log_queue_capacity,
            queue_wait: std::time::Duration::from_millis(config.log_queue_wait_ms),
        };
        // The writer thread lives as long as the process; graceful shutdown flushes it.
        let (log, recovery, _writer) =
            ExposureLog::open(writer, faults.clone(), metrics.log.clone())?;
        if let Some(at) = recovery.truncated_at {
            tracing::warn!(
                offset = at,
                bytes = recovery.truncated_bytes,
                "exposure log: cut a torn tail back to the last whole record"
            );
        }
        let app = App {
            config: config.clone(),
            publisher: Publisher::new(snapshot.clone()),
            snapshot,
            decider,
            metrics,
            clock,
            log,
            ledger,
            delivery,
            consent,
            kevel_ids,
            access: Arc::new(access),
            inventory,
            folder: CampaignFolder::new(&config.campaigns),
            catalog_lock: tokio::sync::Mutex::new(()),
            erasure_lock: tokio::sync::Mutex::new(()),
            report_turn: tokio::sync::Semaphore::new(1),
            address_limiter: crate::traffic::RateLimiter::new(
                f64::from(config.rate_limit_per_address),
                config.rate_limit_burst,
            ),
            faults,
            hasher,
            admin_key_file,
            #[cfg(feature = "redis")]
            fleet: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
        };
        let recovered = app.folder.recover().map_err(io(
            "cannot finish an interrupted change in",
            &config.campaigns,
        ))?;
        if recovered > 0 {
            tracing::warn!(sets = recovered, "finished interrupted campaign uploads");
        }
        app.load_campaigns().map_err(StartError::Campaigns)?;
        app.restore_ledger()?;
        // After the ledger, so the seed sees every location already reported.
        if let Some(seed) = &config.inventory_seed {
            app.seed_inventory(seed)?;
        }
        crate::catalog::reconcile(&app)
            .await
            .map_err(|e| StartError::Io {
                what: "cannot log the campaigns of",
                path: config.campaigns.clone(),
                source: std::io::Error::other(e),
            })?;
        let app = Arc::new(app);
        #[cfg(feature = "redis")]
        if let Some(settings) = &config.redis {
            let node_path = data.join("cluster-node");
            let node = crate::cluster::redis::node_id(&node_path)
                .map_err(io("cannot read or create", &node_path))?;
            // Resume the fleet's changes where the checkpoint's graph and profiles end.
            let position = std::fs::read_to_string(checkpoints.join(FLEET_POSITION))
                .ok()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty());
            let fleet = crate::cluster::redis::Fleet::start(&app, settings, node, position);
            let fleet = fleet.map_err(|e| StartError::Io {
                what: "cannot use the Redis of",
                path: PathBuf::from("[redis] url"),
                source: std::io::Error::other(e.to_string()),
            })?;
            let _ = app.fleet.set(fleet);
        }
        app.ready.store(true, Ordering::SeqCst);
        Ok(app)
    }

    /// Applies the stock in `path` (config `inventory_seed`) to the SKUs and locations
    /// never reported, so a demo's products can be bought on a first start without a
    /// feed; a restart finds them reported and leaves their stock (and sales) alone.
    fn seed_inventory(&self, path: &std::path::Path) -> Result<(), StartError> {
        let problem = |detail| {
            StartError::InventorySeed(vec![FolderError {
                file: path.to_path_buf(),
                detail,
            }])
        };
        let bytes = std::fs::read(path).map_err(|source| StartError::Io {
            what: "cannot read the inventory seed",
            path: path.to_path_buf(),
            source,
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| problem(crate::validation::Detail::new("", e.to_string())))?;
        let updates = crate::inventory::parse_feed(&value, self.clock.now_ms()).map_err(|p| {
            let errors = p.0.into_iter().map(|detail| FolderError {
                file: path.to_path_buf(),
                detail,
            });
            StartError::InventorySeed(errors.collect())
        })?;
        let applied = self
            .inventory
            .seed(&updates)
            .map_err(|source| StartError::Io {
                what: "cannot write the inventory journal in",
                path: self.config.data.join("inventory"),
                source,
            })?;
        if applied > 0 {
            tracing::info!(path = %path.display(), lines = applied, "stock seeded for SKUs never reported");
        }
        Ok(())
    }

    /// Reloads the campaigns folder (`SIGHUP`) and logs what changed in it. On any
    /// problem the running set is kept and every problem is returned.
    pub async fn reload_campaigns(&self) -> Result<usize, Vec<FolderError>> {
        let _writer = self.catalog_lock.lock().await;
        let n = self.load_campaigns()?;
        if let Err(e) = crate::catalog::reconcile(self).await {
            tracing::error!(error = %e, "could not log the reloaded campaigns; the next reload or start will");
        }
        Ok(n)
    }

    /// Loads the campaigns folder and publishes it whole.
    fn load_campaigns(&self) -> Result<usize, Vec<FolderError>> {
        let rules = ValidationRules {
            allow_http_urls: self.config.allow_http_urls,
        };
        let folder = load_folder(&self.config.campaigns, rules)?;
        let categories = self.access.advertiser_categories();
        let compiled: Vec<Arc<CompiledCampaign>> = folder
            .campaigns
            .into_iter()
            .map(|c| {
                let category = categories.get(&c.advertiser).map(String::as_str);
                let live = self.delivery.registry.get(&c.id);
                Arc::new(
                    CompiledCampaign::compile(Arc::new(c), self.config.timezone, category)
                        .with_live(live),
                )
            })
            .collect();
        let n = compiled.len();
        self.publisher.replace_all(compiled);
        self.metrics.campaigns_loaded.set(n as i64);
        Ok(n)
    }

    /// The principal of the request's API key, if it presents a known one.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Principal> {
        self.access.authenticate(headers)
    }

    /// The client's address (behind `trusted_proxies`, the forwarded one).
    pub fn client_ip<B>(&self, req: &http::Request<B>) -> Option<std::net::IpAddr> {
        let peer = req.extensions().get::<crate::traffic::Peer>()?;
        Some(crate::traffic::client_ip(
            req.headers(),
            peer.0.ip(),
            &self.config.trusted_proxies,
        ))
    }

    /// Whether the client's address is within its rate limit (always, with none set).
    pub fn within_rate<B>(&self, req: &http::Request<B>) -> bool {
        let Some(limiter) = &self.address_limiter else {
            return true;
        };
        self.client_ip(req)
            .is_none_or(|ip| limiter.allow(&ip, self.clock.now_ms()))
    }

    /// The request carries the admin key.
    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        self.authenticate(headers).is_some_and(|p| p.is_admin())
    }

    pub fn hasher(&self) -> &IdentityHasher {
        &self.hasher
    }

    pub fn log_dir(&self) -> PathBuf {
        self.config.data.join("log")
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.config.data.join("checkpoint").join("ledger.bin")
    }

    /// Loads the last checkpoint and applies every record logged after it.
    fn restore_ledger(&self) -> Result<(), StartError> {
        let path = self.checkpoint_path();
        let from = match self.ledger.load_checkpoint(&path) {
            Ok(offset) => offset.unwrap_or(0),
            Err(source) => {
                return Err(StartError::Io {
                    what: "cannot read the checkpoint",
                    path,
                    source,
                });
            }
        };
        let started = std::time::Instant::now();
        let mut records = match Records::open_unredacted(&self.log_dir(), from) {
            Err(LogError::BadOffset { .. }) if from > 0 => {
                // The checkpoint claims records the log no longer has (the disk lost
                // synced data, or the log was restored from an older copy): the
                // checkpoint cannot be trusted, so rebuild from the whole log.
                tracing::warn!(
                    from,
                    "the checkpoint is ahead of the exposure log; rebuilding the ledger from the log"
                );
                self.ledger.clear();
                Records::open_unredacted(&self.log_dir(), 0)?
            }
            other => other?,
        };
        let mut n = 0u64;
        let campaigns = Loaded(self);
        while let Some((_, record)) = records.next_record()? {
            self.ledger.apply(&record, &campaigns);
            n += 1;
        }
        tracing::info!(
            from,
            records = n,
            ms = started.elapsed().as_millis() as u64,
            "ledger restored from checkpoint and log"
        );
        Ok(())
    }

    /// Writes a checkpoint of the ledger: everything logged before the offset it
    /// records is in it, so a restart replays only what came after.
    pub async fn checkpoint(&self) -> Result<u64, String> {
        // Only what is durable: a checkpoint must never claim records a power loss could
        // still take away.
        let offset = self.log.flush().await.map_err(|e| e.to_string())?;
        let now = self.clock.now_ms();
        self.ledger.expire(
            now - self.config.click_ttl_secs as i64 * 1000,
            now - self.config.dedup_horizon_days as i64 * 86_400_000,
        );
        // The identity graph and per-profile memory first, the ledger (whose offset says
        // where replay starts) last: after a crash between them, replay starts earlier
        // than these files need, which is harmless because replaying links, offers and
        // purchases is idempotent.
        let dir = self.config.data.join("checkpoint");
        let delivery = self.delivery.clone();
        // In a fleet: the other nodes' changes applied so far, read before the graph
        // and profiles are saved, so those hold at least everything up to it.
        #[cfg(feature = "redis")]
        let fleet_position = match self.fleet.get() {
            Some(f) => Some(f.stream_position().await),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let fleet_position: Option<String> = None;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            secrets::write_atomic_with(&dir.join("identity.bin"), |w| delivery.graph.save(w))?;
            secrets::write_atomic(&dir.join("profiles.bin"), &delivery.profiles.save())?;
            if let Some(position) = fleet_position {
                secrets::write_atomic(&dir.join(FLEET_POSITION), position.as_bytes())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let graph = self.delivery.graph.stats();
        self.metrics
            .identity_identifiers
            .set(graph.identifiers as i64);
        self.metrics.identity_profiles.set(graph.profiles as i64);
        self.metrics
            .replay_bytes
            .set(self.decider.replay_bytes() as i64);
        let path = self.checkpoint_path();
        let ledger = self.ledger.clone();
        // Serialising millions of keys takes a while; keep it off the async workers.
        tokio::task::spawn_blocking(move || ledger.save_checkpoint(&path, offset))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let inventory = self.inventory.clone();
        tokio::task::spawn_blocking(move || inventory.snapshot())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let consent = self.consent.clone();
        tokio::task::spawn_blocking(move || consent.compact())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some(hours) = self.config.log_retention_hours {
            let dir = self.log_dir();
            let keep_after =
                std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
            // On a fleet, nor a segment whose records are not yet copied to the stream.
            let needed = offset.min(self.log.replicated().unwrap_or(u64::MAX));
            let deleted = tokio::task::spawn_blocking(move || retain(&dir, keep_after, needed))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if deleted > 0 {
                tracing::info!(
                    segments = deleted,
                    "retention deleted old exposure log segments"
                );
            }
        }
        Ok(offset)
    }

    /// Flushes the log and writes a final checkpoint: the last step of a graceful stop.
    pub async fn shut_down(&self) {
        #[cfg(feature = "redis")]
        if let Some(fleet) = self.fleet.get() {
            fleet.shut_down(self).await;
        }
        if let Err(e) = self.log.flush().await {
            tracing::error!(error = %e, "final flush of the exposure log failed");
        }
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error = %e, "final checkpoint failed");
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// In the checkpoint folder: the last entry of the fleet's stream of changes that the
/// checkpoint's graph and profiles include (see [`crate::cluster`]).
pub const FLEET_POSITION: &str = "fleet-stream-position";

/// The loaded campaigns, as replaying the log asks about them.
struct Loaded<'a>(&'a App);

impl crate::ledger::Campaigns for Loaded<'_> {
    fn day_of(&self, campaign: &str, ms: i64) -> i32 {
        crate::tracking::campaign_day(self.0, campaign, ms)
    }

    fn delivery_of(&self, campaign: &str) -> Option<(i64, f64)> {
        let snap = self.0.snapshot.load();
        let c = snap.by_id(campaign)?;
        Some((c.cap_window_ms, c.doc.holdout_percent))
    }
}

/// Deletes whole log segments last written before `keep_after`, oldest first, but never
/// one that ends after `checkpointed` (its records are not yet in a checkpoint) and never
/// the segment being written.
fn retain(
    dir: &std::path::Path,
    keep_after: std::time::SystemTime,
    checkpointed: u64,
) -> Result<usize, LogError> {
    let segments = crate::exposure::storage::list_segments(dir)?;
    let mut cut = None;
    for pair in segments.windows(2) {
        let ((_, path), (next_base, _)) = (&pair[0], &pair[1]);
        let old = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < keep_after);
        if !old || *next_base > checkpointed {
            break;
        }
        cut = Some(*next_base);
    }
    match cut {
        Some(offset) => crate::exposure::storage::delete_segments_before(dir, offset),
        None => Ok(0),
    }
}
