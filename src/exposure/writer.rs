//! The log writer: one thread owns the segment files; producers hand it framed records
//! over a bounded queue.
//!
//! Group commit: the writer takes everything queued (up to a batch limit) and writes it
//! in one call. When the batch holds a record someone waits on (conversions, purchases,
//! campaign changes) it is written and fsynced at once, and the waiters are woken.
//! Records nobody waits on (decision side) are held in memory until such a waiter comes,
//! 256 KiB have gathered, or the flush interval (10 ms) is up, then written and synced:
//! large writes instead of a syscall per decision, and still on disk within the
//! interval. A record is readable by `aftercart log` once written, durable once synced.
//!
//! Full queue policy: a producer waits up to `queue_wait` for room, then gets
//! [`LogUnavailable::Overloaded`]; the HTTP layer answers 503, so nothing is served or
//! acknowledged without its record. Failed writes: waiters of the failed batch get
//! [`LogUnavailable::Storage`] (503, never 2xx); records nobody waits on are kept and
//! written with the next batch, so a passing fault loses nothing.
//!
//! Replication: a fleet of nodes copies each node's log elsewhere (see [`crate::cluster`]).
//! The copier reads only what [`ExposureLog::synced`] says is durable, and reports how far
//! the copy has acknowledged through a [`Replica`]; once one is attached, durable appends
//! also wait for the copy, up to its deadline, and never while it is unreachable: then the
//! local fsync alone is the acknowledgement and the copier catches up later.

use super::record::{Kind, Record};
use super::storage::{FRAME_HEADER, Faults, LogError, Recovery, SegmentWriter};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Why a record could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogUnavailable {
    #[error("the exposure log queue is full")]
    Overloaded,
    #[error("the exposure log could not write or sync")]
    Storage,
    #[error("the exposure log is closed")]
    Closed,
}

/// Tuning of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    /// How long a producer waits for room in a full queue.
    pub queue_wait: Duration,
}

/// Most bytes written in one batch: large enough to amortise the syscall and fsync,
/// small enough that waiters at the front are not delayed behind megabytes.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Records nobody waits on are written once this many bytes are held (or the flush
/// interval is up): large writes, few syscalls.
const HOLD_BYTES: usize = 256 << 10;

enum Msg {
    Append {
        frames: Vec<u8>,
        records: u32,
        kind: Kind,
        ack: Option<oneshot::Sender<Result<u64, LogUnavailable>>>,
    },
    /// Sync everything written so far, then answer.
    Flush(oneshot::Sender<Result<u64, LogUnavailable>>),
}

/// The metrics of the writer.
#[derive(Clone)]
pub struct LogMetrics {
    pub records: IntCounterVec,
    pub queue_depth: IntGauge,
    pub queue_full: IntCounter,
    pub batch_records: Histogram,
    pub fsync_seconds: Histogram,
    pub bytes_written: IntCounter,
    pub write_errors: IntCounter,
}

impl LogMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<LogMetrics> {
        let m = LogMetrics {
            records: IntCounterVec::new(
                Opts::new(
                    "log_records_total",
                    "Records written to the exposure log, by kind.",
                ),
                &["kind"],
            )?,
            queue_depth: IntGauge::new("log_queue_depth", "Messages waiting for the log writer.")?,
            queue_full: IntCounter::new(
                "log_queue_full_total",
                "Producers refused because the log queue stayed full (answered 503).",
            )?,
            batch_records: Histogram::with_opts(
                HistogramOpts::new("log_batch_records", "Records per group-commit batch.")
                    .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0]),
            )?,
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "log_fsync_duration_seconds",
                    "Time of one fsync of the exposure log.",
                )
                .buckets(vec![
                    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )?,
            bytes_written: IntCounter::new(
                "log_bytes_written_total",
                "Bytes appended to the exposure log.",
            )?,
            write_errors: IntCounter::new(
                "log_write_errors_total",
                "Failed writes or syncs of the exposure log.",
            )?,
        };
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        registry.register(Box::new(m.queue_full.clone()))?;
        registry.register(Box::new(m.batch_records.clone()))?;
        registry.register(Box::new(m.fsync_seconds.clone()))?;
        registry.register(Box::new(m.bytes_written.clone()))?;
        registry.register(Box::new(m.write_errors.clone()))?;
        Ok(m)
    }
}

/// A copy of the log elsewhere that durable appends also wait for (see the module docs).
#[derive(Clone)]
pub struct Replica {
    /// Every record before this offset is acknowledged by the copy.
    pub acknowledged: watch::Receiver<u64>,
    /// Whether the copy can be reached now; while it cannot, nobody waits for it.
    pub reachable: Arc<AtomicBool>,
    /// The longest a durable append waits for the copy after its local fsync.
    pub wait: Duration,
    /// Durable appends answered on the local fsync alone (copy unreachable or late).
    pub local_only: IntCounter,
}

impl Replica {
    /// Waits until the copy acknowledged everything before `end`, at most `wait`; returns
    /// whether it did.
    pub async fn wait_for(&self, end: u64) -> bool {
        if *self.acknowledged.borrow() >= end {
            return true;
        }
        if !self.reachable.load(Ordering::Relaxed) || self.wait.is_zero() {
            self.local_only.inc();
            return false;
        }
        let mut acknowledged = self.acknowledged.clone();
        let copied = tokio::time::timeout(self.wait, acknowledged.wait_for(|a| *a >= end))
            .await
            .is_ok_and(|r| r.is_ok());
        if !copied {
            self.local_only.inc();
        }
        copied
    }
}

/// The producers' handle: cheap to clone, safe to use from any task.
#[derive(Clone)]
pub struct ExposureLog {
    tx: mpsc::Sender<Msg>,
    written: watch::Receiver<u64>,
    synced: watch::Receiver<u64>,
    replica: Arc<OnceLock<Replica>>,
    queue_wait: Duration,
    metrics: LogMetrics,
    wake: Arc<Wake>,
}

/// How producers wake a writer that is holding records. Sending on the queue alone does
/// not wake it while it holds: a wake-up per decision (a futex call and a context
/// switch) would cost more than writing the record. Only a waiter, or enough bytes to
/// be worth a write, wakes it early.
#[derive(Default)]
struct Wake {
    now: tokio::sync::Notify,
    /// Bytes sent but not yet taken by the writer.
    queued_bytes: std::sync::atomic::AtomicUsize,
}

impl ExposureLog {
    /// Opens the log (recovering a torn tail) and starts the writer thread.
    pub fn open(
        config: WriterConfig,
        faults: Arc<Faults>,
        metrics: LogMetrics,
    ) -> Result<(ExposureLog, Recovery, std::thread::JoinHandle<()>), LogError> {
        let (segments, recovery) = SegmentWriter::open(&config.dir, config.segment_bytes, faults)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (written_tx, written) = watch::channel(segments.end_offset());
        // What opening found is on disk (recovery syncs a cut tail).
        let (synced_tx, synced) = watch::channel(segments.end_offset());
        let wake = Arc::new(Wake::default());
        let writer = Writer {
            segments,
            rx,
            written: written_tx,
            synced: synced_tx,
            flush_interval: config.flush_interval,
            metrics: metrics.clone(),
            retry: VecDeque::new(),
            unsynced_since: None,
            sync_failed: false,
            wake: wake.clone(),
            taken_bytes: 0,
        };
        let thread = std::thread::Builder::new()
            .name("exposure-log".into())
            .spawn(move || writer.run())
            .map_err(|source| LogError::Io {
                path: config.dir.clone(),
                source,
            })?;
        Ok((
            ExposureLog {
                tx,
                written,
                synced,
                replica: Arc::default(),
                queue_wait: config.queue_wait,
                metrics,
                wake,
            },
            recovery,
            thread,
        ))
    }

    /// Frames records on the caller's thread, so encoding is spread over the workers.
    /// Each record is encoded straight behind a placeholder header that is filled in
    /// afterwards: one buffer, no copy.
    fn frame(records: &[Record]) -> Vec<u8> {
        let mut frames = Vec::with_capacity(400 * records.len());
        for r in records {
            let start = frames.len();
            frames.extend_from_slice(&[0; FRAME_HEADER]);
            r.encode(&mut frames);
            let payload = &frames[start + FRAME_HEADER..];
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            let crc = crc32fast::hash(payload);
            frames[start..start + 4].copy_from_slice(&len.to_le_bytes());
            frames[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
        }
        frames
    }

    async fn send(&self, msg: Msg) -> Result<(), LogUnavailable> {
        let permit = match self.tx.try_reserve() {
            Ok(p) => p,
            Err(mpsc::error::TrySendError::Closed(())) => return Err(LogUnavailable::Closed),
            Err(mpsc::error::TrySendError::Full(())) => {
                match tokio::time::timeout(self.queue_wait, self.tx.reserve()).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(LogUnavailable::Closed),
                    Err(_) => {
                        self.metrics.queue_full.inc();
                        return Err(LogUnavailable::Overloaded);
                    }
                }
            }
        };
        let (len, urgent) = match &msg {
            Msg::Append { frames, ack, .. } => (frames.len(), ack.is_some()),
            Msg::Flush(_) => (0, true),
        };
        permit.send(msg);
        let before = self.wake.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if urgent || (before < HOLD_BYTES && before + len >= HOLD_BYTES) {
            self.wake.now.notify_one();
        }
        Ok(())
    }

    /// Appends records of one kind that nobody waits on (decision side): they are
    /// written at once and synced within the flush interval.
    pub async fn append(&self, kind: Kind, records: &[Record]) -> Result<(), LogUnavailable> {
        if records.is_empty() {
            return Ok(());
        }
        let frames = Self::frame(records);
        self.send(Msg::Append {
            frames,
            records: records.len() as u32,
            kind,
            ack: None,
        })
        .await
    }

    /// Appends records of one kind and returns once they are durable (fsynced), with
    /// the offset of the first.
    pub async fn append_durable(
        &self,
        kind: Kind,
        records: &[Record],
    ) -> Result<u64, LogUnavailable> {
        let frames = Self::frame(records);
        let (ack, done) = oneshot::channel();
        self.send(Msg::Append {
            frames,
            records: records.len() as u32,
            kind,
            ack: Some(ack),
        })
        .await?;
        let first = done.await.unwrap_or(Err(LogUnavailable::Closed))?;
        if let Some(replica) = self.replica.get() {
            // The end of what was written when these records were synced: at or after
            // their end (a later batch may have followed, which only waits a little longer).
            let end = *self.written.borrow();
            replica.wait_for(end).await;
        }
        Ok(first)
    }

    /// Waits until everything handed over before this call is written and synced.
    pub async fn flush(&self) -> Result<u64, LogUnavailable> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Flush(ack)).await?;
        done.await.unwrap_or(Err(LogUnavailable::Closed))
    }

    /// The end of what has been written (readable), updated after every batch.
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.clone()
    }

    /// The end of what is durable (fsynced), updated after every sync: a copier reads only
    /// up to here, so nothing it copies can be lost locally and its offset reused.
    pub fn synced(&self) -> watch::Receiver<u64> {
        self.synced.clone()
    }

    /// How far the attached copy acknowledged the log (`None` without one): retention
    /// keeps every segment the copy still needs.
    pub fn replicated(&self) -> Option<u64> {
        self.replica.get().map(|r| *r.acknowledged.borrow())
    }

    /// Whether the attached copy is reachable and how many bytes of durable log it has
    /// not acknowledged yet (`None` without one).
    pub fn replica_status(&self) -> Option<(bool, u64)> {
        self.replica.get().map(|r| {
            let behind = self
                .synced
                .borrow()
                .saturating_sub(*r.acknowledged.borrow());
            (r.reachable.load(Ordering::Relaxed), behind)
        })
    }

    /// Attaches the copy durable appends wait for; only the first attach counts.
    pub fn attach_replica(&self, replica: Replica) -> bool {
        self.replica.set(replica).is_ok()
    }
}

struct Writer {
    segments: SegmentWriter,
    rx: mpsc::Receiver<Msg>,
    written: watch::Sender<u64>,
    synced: watch::Sender<u64>,
    flush_interval: Duration,
    metrics: LogMetrics,
    /// Frames of a failed batch that nobody waited on, written first next time.
    retry: VecDeque<(Vec<u8>, u32, Kind)>,
    /// When data was first written without a sync since.
    unsynced_since: Option<Instant>,
    sync_failed: bool,
    wake: Arc<Wake>,
    /// Bytes of the held batch already subtracted from `wake.queued_bytes`.
    taken_bytes: usize,
}

impl Writer {
    fn run(mut self) {
        // A tiny runtime only to wait on the queue with a deadline.
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "exposure log writer cannot start");
                return;
            }
        };
        let mut batch: Vec<Msg> = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH_BYTES);
        // When the oldest record nobody waits on was taken and is still held in `batch`.
        let mut held_since: Option<Instant> = None;
        loop {
            let until_flush = |since: Option<Instant>| {
                since.map(|t| self.flush_interval.saturating_sub(t.elapsed()))
            };
            let wait = [
                until_flush(held_since),
                // After a failed sync, retry no faster than every 10 ms.
                if self.sync_failed {
                    Some(Duration::from_millis(10))
                } else {
                    until_flush(self.unsynced_since)
                },
                (!self.retry.is_empty()).then_some(Duration::from_millis(10)),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(3600));
            // Wait for work. Idle, the first message wakes the writer; holding records,
            // only a producer's explicit wake (a waiter, or enough bytes) or the deadline
            // does, so a stream of decisions costs one wake-up per flush interval.
            let wake = self.wake.clone();
            let rx = &mut self.rx;
            let holding = !batch.is_empty();
            let mut closed = rt.block_on(async {
                let sleep = tokio::time::sleep(wait);
                if holding {
                    tokio::select! {
                        () = wake.now.notified() => {}
                        () = sleep => {}
                    }
                    return false;
                }
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(msg) => {
                            batch.push(msg);
                            false
                        }
                        None => true,
                    },
                    () = sleep => false,
                }
            });
            // Take everything queued, up to the batch limit.
            let mut bytes: usize = batch.iter().map(msg_len).sum();
            while bytes < MAX_BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(msg) => {
                        bytes += msg_len(&msg);
                        batch.push(msg);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() && held_since.is_none() {
                held_since = Some(Instant::now());
            }
            let taken = bytes - self.taken_bytes;
            self.taken_bytes = bytes;
            // A producer adds its bytes just after sending, so the writer may take them
            // first: subtract without wrapping below zero.
            let _ =
                self.wake
                    .queued_bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                        Some(q.saturating_sub(taken))
                    });
            let waited_on = batch
                .iter()
                .any(|m| !matches!(m, Msg::Append { ack: None, .. }));
            self.metrics.queue_depth.set(self.rx.len() as i64);
            if closed {
                // Every producer is gone: write what is left and stop.
                self.write_batch(&mut batch, &mut buf);
                // A failed sync is logged; there is nothing left to retry for.
                let _ = self.sync_now();
                return;
            }
            // Records nobody waits on are held until a waiter comes, enough bytes gather
            // to write efficiently, or the flush interval is up: one large write instead
            // of a syscall per decision.
            let due = held_since.is_some_and(|t| t.elapsed() >= self.flush_interval);
            if !batch.is_empty()
                && (waited_on || due || bytes >= HOLD_BYTES || !self.retry.is_empty())
            {
                self.write_batch(&mut batch, &mut buf);
                held_since = None;
                self.taken_bytes = 0;
            } else if batch.is_empty() && !self.retry.is_empty() {
                self.write_batch(&mut batch, &mut buf);
            }
            if self
                .unsynced_since
                .is_some_and(|t| t.elapsed() >= self.flush_interval)
            {
                // A failed sync is logged and retried by the loop.
                let _ = self.sync_now();
            }
        }
    }

    /// Writes a batch, syncs if anyone waits, and answers the waiters.
    fn write_batch(&mut self, batch: &mut Vec<Msg>, buf: &mut Vec<u8>) {
        buf.clear();
        let mut counts: Vec<(Kind, u32)> = Vec::new();
        let mut add = |kind: Kind, n: u32| match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => counts.push((kind, n)),
        };
        for (frames, n, kind) in &self.retry {
            buf.extend_from_slice(frames);
            add(*kind, *n);
        }
        let mut waiters = Vec::new();
        let mut flushes = Vec::new();
        let mut plain = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                Msg::Append {
                    frames,
                    records,
                    kind,
                    ack,
                } => {
                    buf.extend_from_slice(&frames);
                    add(kind, records);
                    match ack {
                        Some(ack) => waiters.push(ack),
                        None => plain.push((frames, records, kind)),
                    }
                }
                Msg::Flush(ack) => flushes.push(ack),
            }
        }
        if buf.is_empty() {
            if !flushes.is_empty() {
                let result = self.sync_now();
                for f in flushes {
                    let _ = f.send(result);
                }
            }
            return;
        }
        match self.segments.append(buf) {
            Ok(offset) => {
                self.retry.clear();
                self.unsynced_since.get_or_insert_with(Instant::now);
                self.metrics.bytes_written.inc_by(buf.len() as u64);
                let total: u32 = counts.iter().map(|(_, n)| n).sum();
                self.metrics.batch_records.observe(total as f64);
                for (kind, n) in counts {
                    self.metrics
                        .records
                        .with_label_values(&[kind.as_str()])
                        .inc_by(n as u64);
                }
                let _ = self.written.send(self.segments.end_offset());
                let synced = if waiters.is_empty() && flushes.is_empty() {
                    Ok(offset)
                } else {
                    self.sync_now()
                };
                let answer = synced.map(|_| offset);
                for w in waiters {
                    let _ = w.send(answer);
                }
                for f in flushes {
                    let _ = f.send(answer);
                }
            }
            Err(e) => {
                self.metrics.write_errors.inc();
                tracing::error!(error = %e, "exposure log write failed; waiting requests get 503, other records are retried");
                for w in waiters {
                    let _ = w.send(Err(LogUnavailable::Storage));
                }
                for f in flushes {
                    let _ = f.send(Err(LogUnavailable::Storage));
                }
                // Keep what nobody waited on (retried records stay at the front).
                let mut kept: VecDeque<_> = std::mem::take(&mut self.retry);
                kept.extend(plain);
                self.retry = kept;
            }
        }
    }

    fn sync_now(&mut self) -> Result<u64, LogUnavailable> {
        if self.unsynced_since.is_none() {
            return Ok(self.segments.end_offset());
        }
        let started = Instant::now();
        match self.segments.sync() {
            Ok(()) => {
                self.metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.unsynced_since = None;
                self.sync_failed = false;
                let _ = self.synced.send(self.segments.end_offset());
                Ok(self.segments.end_offset())
            }
            Err(e) => {
                self.metrics.write_errors.inc();
                tracing::error!(error = %e, "exposure log fsync failed; will retry");
                self.sync_failed = true;
                Err(LogUnavailable::Storage)
            }
        }
    }
}

fn msg_len(m: &Msg) -> usize {
    match m {
        Msg::Append { frames, .. } => frames.len(),
        Msg::Flush(_) => 0,
    }
}
