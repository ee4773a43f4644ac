//! The forwarder: tails this node's exposure log and publishes every record to JetStream,
//! in log order, so the local log is the spool that outlives any outage.
//!
//! It reads only what the writer has fsynced ([`crate::exposure::ExposureLog::synced`]):
//! a record copied to the stream can never be lost locally after a crash and its offset
//! (and so its message id) reused by a different record.
//!
//! A *session* is one connection: on start it asks the stream for the last record it holds
//! from this node (one lookup per kind subject) and resumes right after it (see
//! `resume_after_stream` for when it does not trust that), then publishes
//! batches of up to [`MAX_BATCH_RECORDS`] records — runs of one kind packed several to a
//! message ([`pack`]) — with every acknowledgement in flight at once, and moves its
//! cursor past a batch once JetStream acknowledged all of it. Records
//! applied here from other nodes (they carry an `origin`) are skipped: their own node
//! publishes them. Any failure ends the session (its client does not reconnect behind our
//! back for long: one immediate attempt at most, so nothing queued on a dead connection
//! goes out much later), and the next session resumes after what the stream holds. The message id
//! (`Nats-Msg-Id: <node>-<offset>`, `<node>-<first>-<last>` for a pack) makes a republish
//! within the duplicate window harmless besides; after a session whose client
//! reconnected by itself the next one resumes from its own cursor, and a pack cut
//! differently from the one sent before can repeat records in the stream, which the
//! readers drop ([`pack::Seen`]).
//!
//! The acknowledged cursor is persisted (write, fsync, rename) once a second while
//! records flow and whenever the forwarder is idle, so a restart does not re-read the
//! log from its start; the stream lookup is what decides.

use super::{
    HEADER_NODE, HEADER_OFFSET, NatsMetrics, backoff, connect_watching, context, ensure_stream,
    message_id, pack, subject,
};
use crate::app::App;
use crate::cluster::NatsConfig;
use crate::exposure::storage::{LogError, LogReader};
use crate::exposure::{Kind, Replica};
use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use prometheus::IntCounter;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The persisted cursor, in the node's `cluster/` state folder.
pub const CURSOR_FILE: &str = "nats-forwarded";
/// Records per batch: enough acknowledgements in flight to keep a link busy.
pub const MAX_BATCH_RECORDS: usize = 1024;
/// Payload bytes per batch.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// The cursor's file is written at most this often while records flow.
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// How often an idle session checks its connection.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the forwarder shares with the log's producers and the metrics.
pub struct Shared {
    /// Every record before this offset is in the stream (or needs not be).
    acknowledged: watch::Sender<u64>,
    reachable: Arc<AtomicBool>,
    /// Counts sessions, so that a dead session's client cannot mark a newer one lost.
    session: Arc<AtomicU64>,
}

impl Shared {
    /// The replica durable appends wait for.
    pub fn replica(&self, wait: Duration, local_only: IntCounter) -> Replica {
        Replica {
            acknowledged: self.acknowledged.subscribe(),
            reachable: self.reachable.clone(),
            wait,
            local_only,
        }
    }

    /// Watches the offset up to which JetStream acknowledged this node's log.
    pub fn acknowledged_watch(&self) -> watch::Receiver<u64> {
        self.acknowledged.subscribe()
    }

    /// The offset up to which JetStream acknowledged this node's log.
    pub fn acknowledged(&self) -> u64 {
        *self.acknowledged.borrow()
    }

    /// Whether the forwarder has a working session.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }
}

/// A failed session: what failed, and why.
#[derive(Debug)]
struct Failure {
    what: &'static str,
    error: String,
}

fn failed<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure {
        what,
        error: e.to_string(),
    }
}

/// The fields of a record the forwarder looks at (the payload goes out as it is).
#[derive(Deserialize)]
struct Head {
    kind: Kind,
    ts: i64,
    #[serde(default)]
    origin: Option<String>,
}

/// Records read for one batch, and the offset after the last one read.
struct Batch {
    records: Vec<(u64, Kind, Bytes)>,
    end: u64,
    /// When the first record read was written.
    first_ts: Option<i64>,
}

pub struct Forwarder {
    url: String,
    stream: String,
    node: String,
    log_dir: PathBuf,
    cursor_path: PathBuf,
    synced: watch::Receiver<u64>,
    shared: Arc<Shared>,
    metrics: NatsMetrics,
    /// The next offset to publish from.
    cursor: u64,
    /// When the record at the cursor was written (ms), once known: the lag in seconds.
    pending_ts: Option<i64>,
    /// Connections the current session's client made (see [`Forwarder::forward`]).
    connections: Arc<AtomicU64>,
    /// The cursor as last written to its file, and when.
    persisted: (u64, std::time::Instant),
}

impl Forwarder {
    pub fn new(
        app: &App,
        config: &NatsConfig,
        node: &str,
        state: &Path,
        metrics: NatsMetrics,
    ) -> std::io::Result<Forwarder> {
        let cursor_path = state.join(CURSOR_FILE);
        let cursor = match std::fs::read_to_string(&cursor_path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other(format!("not an offset: {:?}", text.trim())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let (acknowledged, _) = watch::channel(cursor);
        Ok(Forwarder {
            url: config.url.clone(),
            stream: config.stream.clone(),
            node: node.to_string(),
            log_dir: app.log_dir(),
            cursor_path,
            synced: app.log.synced(),
            shared: Arc::new(Shared {
                acknowledged,
                reachable: Arc::new(AtomicBool::new(false)),
                session: Arc::new(AtomicU64::new(0)),
            }),
            metrics,
            cursor,
            pending_ts: None,
            connections: Arc::new(AtomicU64::new(0)),
            persisted: (cursor, std::time::Instant::now()),
        })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Forwards for as long as the process lives, starting a new session after each
    /// failure.
    pub async fn run(mut self) {
        let mut failures = 0u32;
        self.update_lag();
        loop {
            let failure = self.session(&mut failures).await;
            self.metrics.connected.set(0);
            self.metrics.errors.with_label_values(&[failure.what]).inc();
            if self.shared.reachable.swap(false, Ordering::SeqCst) || failures == 0 {
                tracing::warn!(
                    node = %self.node,
                    error = %failure.error,
                    "JetStream unreachable: records stay in the local log and are forwarded once it is back"
                );
            } else {
                tracing::debug!(error = %failure.error, "JetStream still unreachable");
            }
            failures = failures.saturating_add(1);
            let pause = tokio::time::sleep(backoff(failures));
            tokio::pin!(pause);
            // Keep the lag figures moving during an outage.
            loop {
                self.learn_pending_ts().await;
                self.update_lag();
                tokio::select! {
                    () = &mut pause => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }

    /// Updates the lag in seconds: the age of the oldest record not yet acknowledged
    /// (kept while unknown). The lag in bytes is computed when scraped.
    fn update_lag(&mut self) {
        let synced = *self.synced.borrow();
        let behind = synced.saturating_sub(self.cursor);
        if behind == 0 {
            self.pending_ts = None;
            self.metrics.lag_seconds.set(0);
        } else if let Some(ts) = self.pending_ts {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            self.metrics.lag_seconds.set((now - ts).max(0) / 1000);
        }
    }

    /// During an outage: learns when the oldest record not yet forwarded was written.
    async fn learn_pending_ts(&mut self) {
        if self.pending_ts.is_some() || *self.synced.borrow() <= self.cursor {
            return;
        }
        let dir = self.log_dir.clone();
        let cursor = self.cursor;
        let head = tokio::task::spawn_blocking(move || -> Option<i64> {
            let mut reader = LogReader::open(&dir).ok()?;
            reader.seek(cursor).ok()?;
            let (_, payload) = reader.next().ok()??;
            rmp_serde::from_slice::<Head>(&payload).ok().map(|h| h.ts)
        })
        .await;
        self.pending_ts = head.ok().flatten();
    }

    /// One connection's worth of forwarding; returns only on a failure.
    async fn session(&mut self, failures: &mut u32) -> Failure {
        match self.forward(failures).await {
            Ok(never) => match never {},
            Err(f) => f,
        }
    }

    async fn forward(&mut self, failures: &mut u32) -> Result<std::convert::Infallible, Failure> {
        let name = format!("aftercart {} forwarder", self.node);
        let session = self.shared.session.fetch_add(1, Ordering::SeqCst) + 1;
        let (current, reachable) = (self.shared.session.clone(), self.shared.reachable.clone());
        // The previous session's connections: more than one means its client reconnected
        // by itself, and may have sent records queued before the drop after later ones.
        let previous = std::mem::replace(&mut self.connections, Arc::new(AtomicU64::new(0)));
        let trust_stream = previous.load(Ordering::SeqCst) <= 1;
        let connections = self.connections.clone();
        let on_event = move |event: &async_nats::Event| match event {
            async_nats::Event::Connected => {
                connections.fetch_add(1, Ordering::SeqCst);
            }
            // Nobody waits for JetStream from now on; the session ends on its next request.
            // An old session's client cannot mark a newer one lost.
            async_nats::Event::Disconnected
            | async_nats::Event::Closed
            | async_nats::Event::LameDuckMode
                if current.load(Ordering::SeqCst) == session
                    && reachable.swap(false, Ordering::SeqCst) =>
            {
                tracing::warn!(event = %event, "lost the connection to NATS");
            }
            _ => {}
        };
        let client = connect_watching(&self.url, &name, on_event)
            .await
            .map_err(failed("connect"))?;
        let js = context(client.clone());
        let stream = ensure_stream(&js, &self.stream)
            .await
            .map_err(failed("connect"))?;
        self.resume_after_stream(&stream, trust_stream).await?;
        // The lag first, then "connected": a watcher that sees both (a drain check) must
        // not read a lag from before the cursor moved (or the initial 0 of a restart).
        self.update_lag();
        self.shared.reachable.store(true, Ordering::SeqCst);
        self.metrics.connected.set(1);
        if *failures > 0 {
            tracing::info!(node = %self.node, from = self.cursor, "JetStream reachable again: forwarding the local log");
        }
        *failures = 0;
        let mut reader = Some(self.open_reader().await?);
        loop {
            let synced = *self.synced.borrow_and_update();
            self.update_lag();
            if synced <= self.cursor {
                self.persist().await;
                tokio::select! {
                    changed = self.synced.changed() => {
                        changed.map_err(failed("log"))?;
                    }
                    () = tokio::time::sleep(IDLE_CHECK) => {}
                }
                if client.connection_state() != async_nats::connection::State::Connected {
                    return Err(failed("publish")("the connection to NATS was lost"));
                }
                continue;
            }
            let Some(mut r) = reader.take() else {
                return Err(failed("log")("the log reader is gone"));
            };
            let (r, batch) = tokio::task::spawn_blocking(move || {
                let batch = read_batch(&mut r, synced);
                (r, batch)
            })
            .await
            .map_err(failed("log"))?;
            reader = Some(r);
            let batch = batch.map_err(|e| {
                tracing::error!(error = %e, "cannot read the exposure log to forward it");
                failed("log")(e)
            })?;
            if batch.end == self.cursor {
                // Durable but not yet visible to the reader (it cannot be for long): wait a
                // moment rather than spin.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            if self.pending_ts.is_none() {
                self.pending_ts = batch.first_ts;
            }
            self.update_lag();
            self.publish(&js, batch.records).await?;
            self.advance(batch.end).await;
        }
    }

    /// Publishes a batch with every acknowledgement in flight, then waits for all of them.
    /// Runs of records of one kind go out as [`pack`]s; a lone record, and every
    /// `campaign` record, as a message of its own.
    async fn publish(
        &self,
        js: &jetstream::Context,
        records: Vec<(u64, Kind, Bytes)>,
    ) -> Result<(), Failure> {
        let mut acks = Vec::new();
        let mut rest = records.as_slice();
        while let Some((first, kind, payload)) = rest.first() {
            let mut n = 1;
            let mut bytes = payload.len();
            if *kind != Kind::Campaign {
                while let Some((_, k, p)) = rest.get(n)
                    && k == kind
                    && n < pack::MAX_RECORDS
                    && bytes + p.len() <= pack::MAX_BYTES
                {
                    bytes += p.len();
                    n += 1;
                }
            }
            let (run, after) = rest.split_at(n);
            rest = after;
            let last = run[n - 1].0;
            let message = if n == 1 {
                PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(message_id(&self.node, *first))
            } else {
                PublishMessage::build()
                    .payload(pack::encode(run.iter().map(|(o, _, p)| (*o, &p[..]))))
                    .message_id(format!("{}-{first}-{last}", self.node))
                    .header(pack::HEADER_PACK, n.to_string().as_str())
            }
            .header(HEADER_NODE, self.node.as_str())
            .header(HEADER_OFFSET, last.to_string().as_str());
            let ack = js
                .send_publish(subject(&self.node, *kind), message)
                .await
                .map_err(failed("publish"))?;
            acks.push((ack, n));
        }
        for (ack, n) in acks {
            let ack = ack.await.map_err(failed("publish"))?;
            if !ack.duplicate {
                self.metrics.published.inc_by(n as u64);
            }
        }
        Ok(())
    }

    /// Moves the cursor past an acknowledged batch: producers see it at once; the file
    /// follows at most once per [`PERSIST_EVERY`] (and when the forwarder is idle), not
    /// with an fsync per batch: after a restart the stream lookup decides where to resume,
    /// the file only shortens the search.
    async fn advance(&mut self, end: u64) {
        self.cursor = end;
        self.pending_ts = None;
        self.shared.acknowledged.send_replace(end);
        if self.persisted.1.elapsed() >= PERSIST_EVERY {
            self.persist().await;
        }
    }

    /// Writes the cursor to its file (write, fsync, rename) if it moved.
    async fn persist(&mut self) {
        let end = self.cursor;
        self.persisted.1 = std::time::Instant::now();
        if self.persisted.0 == end {
            return;
        }
        let path = self.cursor_path.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::secrets::write_atomic(&path, format!("{end}\n").as_bytes())
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            self.persisted.0 = end;
        } else {
            // Only costs a longer look-up after a restart: the stream decides where to resume.
            tracing::warn!(path = %self.cursor_path.display(), "cannot persist the forwarder's cursor");
        }
    }

    /// Asks the stream for the last record it holds from this node and moves the cursor
    /// right after it, if that is further than the cursor.
    ///
    /// Only when `trust` it: the stream then holds a prefix of what this node sent (one
    /// connection delivers in order, and a lost connection loses a suffix). After a
    /// session whose client reconnected by itself, the stream may hold later records
    /// without an earlier one, so the forwarder resumes from its own cursor instead and
    /// the message ids drop what the stream already has (that session ended moments ago,
    /// well within the duplicate window).
    async fn resume_after_stream(
        &mut self,
        stream: &jetstream::stream::Stream,
        trust: bool,
    ) -> Result<(), Failure> {
        let mut last: Option<u64> = None;
        if !trust {
            tracing::info!(
                from = self.cursor,
                "the last connection reconnected by itself: resuming from the acknowledged cursor"
            );
        }
        for kind in Kind::ALL.into_iter().filter(|_| trust) {
            match stream
                .get_last_raw_message_by_subject(&subject(&self.node, kind))
                .await
            {
                Ok(m) => {
                    let offset = m
                        .headers
                        .get(HEADER_OFFSET)
                        .and_then(|v| v.as_str().parse::<u64>().ok());
                    last = last.max(offset);
                }
                Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {}
                Err(e) => return Err(failed("connect")(e)),
            }
        }
        let dir = self.log_dir.clone();
        let cursor = self.cursor;
        // The offset to resume from, and why the stream's last record was not found here.
        let found =
            tokio::task::spawn_blocking(move || -> Result<(u64, Option<String>), LogError> {
                let mut reader = LogReader::open(&dir)?;
                let oldest = reader.oldest_offset()?;
                let mut cursor = cursor;
                if cursor < oldest {
                    if cursor > 0 {
                        tracing::error!(
                            cursor,
                            oldest,
                            "log retention deleted records before they were forwarded"
                        );
                    }
                    cursor = oldest;
                }
                let Some(last) = last.filter(|l| *l >= cursor) else {
                    return Ok((cursor, None));
                };
                let problem = match reader.seek(last) {
                    Ok(()) => match reader.next() {
                        Ok(Some(_)) => return Ok((reader.position(), None)),
                        Ok(None) => format!("offset {last} is past the end of this node's log"),
                        Err(e) => e.to_string(),
                    },
                    Err(e) => e.to_string(),
                };
                Ok((cursor, Some(problem)))
            })
            .await
            .map_err(failed("log"))?
            .map_err(failed("log"))?;
        let (next, problem) = found;
        if let Some(problem) = problem {
            // The stream holds an offset this log does not have: another node uses the
            // same node id, or this data folder was replaced. Forward from the cursor;
            // message ids still drop what the stream already has.
            tracing::error!(
                node = %self.node,
                problem = %problem,
                "the stream holds records of this node id that its log does not: is nats.node_id shared by two nodes?"
            );
        }
        if next != self.cursor {
            tracing::info!(
                from = self.cursor,
                to = next,
                "resuming after the last record the stream holds from this node"
            );
            self.cursor = next;
            self.shared.acknowledged.send_replace(next);
        }
        Ok(())
    }

    async fn open_reader(&self) -> Result<LogReader, Failure> {
        let dir = self.log_dir.clone();
        let cursor = self.cursor;
        tokio::task::spawn_blocking(move || -> Result<LogReader, LogError> {
            let mut reader = LogReader::open(&dir)?;
            reader.seek(cursor)?;
            Ok(reader)
        })
        .await
        .map_err(failed("log"))?
        .map_err(failed("log"))
    }
}

/// Reads records up to (not including) `synced`, at most a batch's worth.
fn read_batch(reader: &mut LogReader, synced: u64) -> Result<Batch, LogError> {
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut end = reader.position();
    let mut first_ts = None;
    while records.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
        let mut payload = Vec::new();
        let Some(offset) = reader.next_into(&mut payload)? else {
            break;
        };
        if offset >= synced {
            // Written but not yet durable: read it again next time.
            reader.seek(offset)?;
            break;
        }
        end = reader.position();
        let head: Head = rmp_serde::from_slice(&payload).map_err(|e| LogError::Corrupt {
            offset,
            path: PathBuf::new(),
            reason: format!("not a record: {e}"),
        })?;
        first_ts = first_ts.or(Some(head.ts));
        if head.origin.is_some() {
            continue;
        }
        bytes += payload.len();
        records.push((offset, head.kind, Bytes::from(payload)));
    }
    Ok(Batch {
        records,
        end,
        first_ts,
    })
}
