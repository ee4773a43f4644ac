//! The exposure log and campaign changes on NATS JetStream (feature `nats`).
//!
//! One stream (`nats.stream`, created if missing: file storage, subjects
//! `aftercart.log.>`, a duplicate window) holds every node's records. A node publishes its
//! own under `aftercart.log.<node>.<kind>`, a message the record's MessagePack payload
//! exactly as in the local log, with headers naming the node and the record's local offset
//! and `Nats-Msg-Id: <node>-<offset>` — or, for a run of records of one kind, a [`pack`]
//! of them.
//!
//! - [`forwarder`]: the node's local log *is* its spool. A forwarder tails it (only what is
//!   fsynced) and publishes in log order, many acknowledgements in flight; it persists how
//!   far JetStream acknowledged. While JetStream is unreachable the log keeps growing
//!   locally and decisions never wait; when it is back the forwarder resumes after the
//!   last record the stream holds from this node, so the stream gets every record once
//!   and in order per node.
//! - [`campaigns`]: every node follows the stream's `campaign` records and applies other
//!   nodes' changes through the same catalog path an upload takes; the last change of a
//!   campaign in stream order wins on every node.
//! - [`read`]: the stream as `aftercart log --nats` and `aftercart report --nats` read it.
//!
//! Conversions, purchases and campaign changes are acknowledged to their client once
//! JetStream acknowledged their record, or after `nats.ack_wait_ms` on the local fsync
//! alone (see [`crate::exposure::Replica`]).

pub mod campaigns;
pub mod forwarder;
pub mod pack;
pub mod read;

use crate::app::App;
use crate::cluster::NatsConfig;
use crate::exposure::Kind;
use async_nats::jetstream;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every subject of the stream starts with this.
pub const SUBJECT_PREFIX: &str = "aftercart.log";
/// The node a message's record was written on.
pub const HEADER_NODE: &str = "Aftercart-Node";
/// The record's offset in its node's local log (a pack's: its last record's).
pub const HEADER_OFFSET: &str = "Aftercart-Offset";
/// How long JetStream remembers message ids to drop a republished record: longer than a
/// node takes to restart after a crash, so a record published just before the crash and
/// republished after it is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Requests to NATS (stream lookups, acknowledgements) time out after this: a node never
/// waits on an unreachable server for long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The subject of one node's records of one kind.
pub fn subject(node: &str, kind: Kind) -> String {
    format!("{SUBJECT_PREFIX}.{node}.{}", kind.as_str())
}

/// The subjects of every node's campaign changes.
pub fn campaign_subjects() -> String {
    format!("{SUBJECT_PREFIX}.*.{}", Kind::Campaign.as_str())
}

/// The message id that lets JetStream drop a republished record.
pub fn message_id(node: &str, offset: u64) -> String {
    format!("{node}-{offset}")
}

/// Connects to NATS. The client tries to reconnect once, at most, and then gives up: the
/// forwarder and the follower each start a fresh session after a failure, so messages
/// queued on a dead connection are not sent out much later.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, async_nats::Error> {
    connect_watching(url, name, |_| {}).await
}

/// [`connect`], calling `on_event` with every connection event (connected, disconnected,
/// closed, …) as it happens, before any request on a dead connection times out.
pub async fn connect_watching(
    url: &str,
    name: &str,
    on_event: impl Fn(&async_nats::Event) + Send + Sync + 'static,
) -> Result<async_nats::Client, async_nats::Error> {
    let on_event = Arc::new(on_event);
    let client = async_nats::ConnectOptions::new()
        .event_callback(move |event| {
            on_event(&event);
            async {}
        })
        .name(name)
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .max_reconnects(1)
        .connect(url)
        .await?;
    Ok(client)
}

/// A JetStream context with a bounded request timeout.
pub fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

/// The stream, created if missing.
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{SUBJECT_PREFIX}.>")],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            description: Some("aftercart: every node's exposure log records".into()),
            ..Default::default()
        })
        .await?;
    Ok(stream)
}

/// The metrics of a node's link to JetStream.
#[derive(Clone)]
pub struct NatsMetrics {
    /// Records published and acknowledged by JetStream.
    pub published: IntCounter,
    /// Failed publishes and sessions, by what failed.
    pub errors: IntCounterVec,
    /// 1 while the forwarder has a working session.
    pub connected: IntGauge,
    /// Age of the oldest record not yet acknowledged by JetStream, in seconds (0 when
    /// caught up).
    pub lag_seconds: IntGauge,
    /// Durable appends answered on the local fsync alone.
    pub local_only: IntCounter,
    /// Other nodes' campaign changes applied here.
    pub campaigns_applied: IntCounter,
    /// Other nodes' campaign changes not applied because this node's own later change of
    /// the same campaign was still on its way to the stream.
    pub campaigns_superseded: IntCounter,
}

impl NatsMetrics {
    fn register(app: &App) -> prometheus::Result<NatsMetrics> {
        let m = NatsMetrics {
            published: IntCounter::new(
                "nats_published_total",
                "Exposure log records published to JetStream and acknowledged.",
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "nats_errors_total",
                    "Failures talking to JetStream, by what failed (connect, publish, follow).",
                ),
                &["what"],
            )?,
            connected: IntGauge::new(
                "nats_connected",
                "1 while the exposure log forwarder has a working JetStream session.",
            )?,
            lag_seconds: IntGauge::new(
                "nats_forward_lag_seconds",
                "Age of the oldest local record not yet acknowledged by JetStream.",
            )?,
            local_only: IntCounter::new(
                "nats_ack_local_only_total",
                "Conversions, purchases and campaign changes acknowledged on the local fsync alone (JetStream unreachable or slower than nats.ack_wait_ms).",
            )?,
            campaigns_applied: IntCounter::new(
                "nats_campaign_changes_applied_total",
                "Campaign changes made on other nodes and applied here.",
            )?,
            campaigns_superseded: IntCounter::new(
                "nats_campaign_changes_superseded_total",
                "Other nodes' campaign changes skipped because a later change made here wins.",
            )?,
        };
        app.metrics.register(Box::new(m.published.clone()))?;
        app.metrics.register(Box::new(m.errors.clone()))?;
        app.metrics.register(Box::new(m.connected.clone()))?;
        app.metrics.register(Box::new(m.lag_seconds.clone()))?;
        app.metrics.register(Box::new(m.local_only.clone()))?;
        app.metrics
            .register(Box::new(m.campaigns_applied.clone()))?;
        app.metrics
            .register(Box::new(m.campaigns_superseded.clone()))?;
        for what in ["connect", "publish", "follow"] {
            m.errors.with_label_values(&[what]);
        }
        Ok(m)
    }
}

/// Why the link to NATS could not start (never because NATS is unreachable: that is
/// retried in the background).
#[derive(Debug, thiserror::Error)]
pub enum NatsStartError {
    #[error("cannot read or create the node id in {path}: {source}")]
    NodeId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot register the NATS metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// This node's id: the configured one, else the one generated into `DATA/node.id` on
/// first start. A generated id (rather than the host name) is tied to the data folder,
/// which holds the log whose offsets the message ids use: a fresh data folder on the
/// same host is a new node, and never has its records taken for duplicates.
pub fn node_id(config: &NatsConfig, data: &Path) -> Result<String, NatsStartError> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = data.join("node.id");
    let error = |source| NatsStartError::NodeId {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            crate::cluster::parse_nats_name(id)
                .map_err(|e| error(std::io::Error::other(format!("node id {id:?} {e}"))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{:016x}", rand::random::<u64>());
            crate::secrets::write_atomic(&path, format!("{id}\n").as_bytes()).map_err(error)?;
            Ok(id)
        }
        Err(e) => Err(error(e)),
    }
}

/// What a running node's link to NATS shares with the HTTP side.
pub struct Link {
    pub node: String,
    pub forwarder: Arc<forwarder::Shared>,
}

/// Starts the forwarder and the campaign follower of a node configured with `[nats]`,
/// and attaches the forwarder as the log's replica. Returns at once: NATS being
/// unreachable is not an error, the tasks keep retrying.
pub fn start(app: &Arc<App>, config: &NatsConfig) -> Result<Link, NatsStartError> {
    let data = app.config.data.clone();
    let node = node_id(config, &data)?;
    if app.config.token_secret.is_none() || app.config.identity_secret.is_none() {
        // Each node then has keys of its own: tokens minted elsewhere do not count here,
        // and identifiers hash differently on every node.
        tracing::warn!(
            "token_secret and identity_secret are not both configured: a fleet's nodes must share them (see docs/scale-out.md)"
        );
    }
    let metrics = NatsMetrics::register(app)?;
    let state = data.join("cluster");
    std::fs::create_dir_all(&state).map_err(|source| NatsStartError::State {
        path: state.clone(),
        source,
    })?;
    let forwarder = forwarder::Forwarder::new(app, config, &node, &state, metrics.clone())
        .map_err(|source| NatsStartError::State {
            path: state.join(forwarder::CURSOR_FILE),
            source,
        })?;
    let shared = forwarder.shared();
    app.metrics.register(Box::new(LagBytes::new(
        app.log.synced(),
        shared.acknowledged_watch(),
    )?))?;
    app.log.attach_replica(shared.replica(
        Duration::from_millis(config.ack_wait_ms),
        metrics.local_only.clone(),
    ));
    tokio::spawn(forwarder.run());
    let follower = campaigns::Follower::new(app.clone(), config, &node, &state, metrics).map_err(
        |source| NatsStartError::State {
            path: state.join(campaigns::STATE_FILE),
            source,
        },
    )?;
    tokio::spawn(follower.run());
    tracing::info!(node = %node, stream = %config.stream, "sharing the exposure log and campaign changes on NATS JetStream");
    Ok(Link {
        node,
        forwarder: shared,
    })
}

/// `nats_forward_lag_bytes`, computed when scraped: bytes of the local log fsynced and
/// not yet acknowledged by JetStream. Never stale, so "0 and connected" means drained.
struct LagBytes {
    synced: tokio::sync::watch::Receiver<u64>,
    acknowledged: tokio::sync::watch::Receiver<u64>,
    gauge: IntGauge,
}

impl LagBytes {
    fn new(
        synced: tokio::sync::watch::Receiver<u64>,
        acknowledged: tokio::sync::watch::Receiver<u64>,
    ) -> prometheus::Result<LagBytes> {
        Ok(LagBytes {
            synced,
            acknowledged,
            gauge: IntGauge::new(
                "nats_forward_lag_bytes",
                "Bytes of the local exposure log not yet acknowledged by JetStream.",
            )?,
        })
    }
}

impl prometheus::core::Collector for LagBytes {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let behind = self
            .synced
            .borrow()
            .saturating_sub(*self.acknowledged.borrow());
        self.gauge.set(behind as i64);
        self.gauge.collect()
    }
}

/// Pauses between failed sessions: quick at first, at most two seconds, so a node is
/// back within two seconds of NATS coming back.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(5)).min(2_000))
}
