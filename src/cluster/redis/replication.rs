//! Frequency caps, purchase suppression and identity links across the fleet: every
//! node tells the others what its decisions linked and served, what its conversions
//! bought, and what its erasures forgot, through one Redis Stream.
//!
//! The decision path only queues ([`Outbox`], a bounded channel: never waits). Every
//! `sync_interval_ms` a task sends what queued as one stream entry (`XADD … MAXLEN ~`),
//! carrying identifier hashes (never raw identifiers), campaign id hashes and times.
//! Every node reads the stream from the last entry it applied (`XREAD`, polled at
//! the same interval) and applies the other nodes' entries to its own identity graph
//! and per-profile memory: `link` the identifiers, then count the offers served.
//! Since every node links the same identifier sets, a profile capped on one node is
//! capped on every node once the entry arrives: within two sync intervals plus a
//! round trip (about 25 ms on a LAN at the default 10 ms).
//!
//! A node reads the stream from the entry its last checkpoint recorded (a new node:
//! from the beginning, what trimming kept), so one that was away catches up and a
//! restart does not apply again what its checkpoint holds; applying is idempotent (a link already made changes
//! nothing; an offer at the same time for the same profile and campaign counts once),
//! and a node skips its own entries, which it applied when it made them. If Redis is
//! down, entries wait in the outbox (up to its capacity, then the oldest changes are
//! dropped and counted) and the reader retries; decisions go on with what the node
//! knows.

use super::Fleet;
use crate::app::App;
use crate::cluster::Replication;
use crate::delivery::Delivery;
use crate::identity::{IdHash, IdKind};
use redis::Value;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes queued before the oldest are dropped: several seconds of a busy node.
const OUTBOX: usize = 65_536;
/// Changes per stream entry at most (a busy interval sends several entries).
const PER_ENTRY: usize = 2_000;
/// Entries read per poll.
const READ_COUNT: usize = 200;

/// An identifier hash on the wire (u128 as two halves: MessagePack has no u128).
type WireId = (IdKind, u64, u64);

fn wire(id: &IdHash) -> WireId {
    (id.kind, (id.hash >> 64) as u64, id.hash as u64)
}

fn unwire(w: &WireId) -> IdHash {
    IdHash {
        kind: w.0,
        hash: (u128::from(w.1) << 64) | u128::from(w.2),
    }
}

/// One change to replicate.
#[derive(Debug, Serialize, Deserialize)]
pub enum Change {
    /// A decision linked `ids` and served these campaigns (id hash, cap window) at `at`.
    Decided {
        ids: Vec<WireId>,
        served: Vec<(u64, i64)>,
        at: i64,
    },
    /// An erasure forgot these identifiers and the profiles holding them.
    Erased { ids: Vec<WireId> },
    /// The person behind `ids` bought items with these keys at `at` (suppression).
    Purchased {
        ids: Vec<WireId>,
        at: i64,
        items: Vec<u64>,
    },
}

/// One stream entry.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    node: u64,
    sent_ms: i64,
    changes: Vec<Change>,
}

/// The queue the decision path writes to.
pub struct Outbox {
    tx: mpsc::Sender<Change>,
    dropped: prometheus::IntCounter,
}

impl Outbox {
    pub fn new(dropped: prometheus::IntCounter) -> (Outbox, mpsc::Receiver<Change>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        (Outbox { tx, dropped }, rx)
    }

    fn push(&self, change: Change) {
        if self.tx.try_send(change).is_err() {
            self.dropped.inc();
        }
    }
}

impl Replication for Outbox {
    fn decided(&self, ids: &[IdHash], served: &[(u64, i64)], at_ms: i64) {
        self.push(Change::Decided {
            ids: ids.iter().map(wire).collect(),
            served: served.to_vec(),
            at: at_ms,
        });
    }

    fn purchased(&self, ids: &[IdHash], at_ms: i64, items: &[u64]) {
        self.push(Change::Purchased {
            ids: ids.iter().map(wire).collect(),
            at: at_ms,
            items: items.to_vec(),
        });
    }

    fn erased(&self, ids: &[IdHash]) {
        self.push(Change::Erased {
            ids: ids.iter().map(wire).collect(),
        });
    }
}

/// Sends what the outbox holds, every interval, until the outbox is closed.
pub async fn send(fleet: Arc<Fleet>, mut rx: mpsc::Receiver<Change>) {
    let stream = fleet.key("changes");
    let mut pending: Vec<Change> = Vec::new();
    let mut tick = tokio::time::interval(fleet.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match rx.try_recv() {
                Ok(c) => pending.push(c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) if pending.is_empty() => return,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        while !pending.is_empty() {
            let n = pending.len().min(PER_ENTRY);
            let entry = Entry {
                node: fleet.node,
                sent_ms: now_ms(),
                changes: pending.drain(..n).collect(),
            };
            let Ok(bytes) = rmp_serde::to_vec(&entry) else {
                continue;
            };
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(fleet.settings.stream_max_len)
                .arg("*")
                .arg("d")
                .arg(bytes);
            if let Err(e) = fleet.conn.query::<Value>(&cmd).await {
                tracing::debug!(error = %e, "cannot send changes to the fleet; will retry");
                // Put them back, oldest first; beyond the outbox's size, drop the oldest.
                let mut back = entry.changes;
                back.append(&mut pending);
                let excess = back.len().saturating_sub(OUTBOX);
                fleet.metrics.replication_dropped.inc_by(excess as u64);
                back.drain(..excess);
                pending = back;
                break;
            }
        }
    }
}

/// Applies the other nodes' entries, from the beginning of the stream, until the
/// server is gone.
pub async fn receive(fleet: Arc<Fleet>, app: Weak<App>) {
    let stream = fleet.key("changes");
    let mut last = fleet.stream_position().await;
    loop {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last);
        let entries = match fleet.conn.query::<Value>(&cmd).await {
            Ok(v) => stream_entries(v),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the fleet's changes; will retry");
                tokio::time::sleep(fleet.interval().max(Duration::from_millis(100))).await;
                continue;
            }
        };
        let full = entries.len() >= READ_COUNT;
        for (id, payload) in entries {
            // An entry is applied whole before a checkpoint may record it as applied.
            let _applying = fleet.applying.lock().await;
            last = id;
            *fleet.applied.lock().unwrap_or_else(|p| p.into_inner()) = last.clone();
            if payload.is_empty() {
                continue;
            }
            match rmp_serde::from_slice::<Entry>(&payload) {
                Ok(e) if e.node == fleet.node => {}
                Ok(e) => {
                    let Some(app) = app.upgrade() else { return };
                    // In order: a link made after an erasure must survive it.
                    for change in e.changes {
                        match change {
                            Change::Decided { ids, served, at } => {
                                let ids: Vec<IdHash> = ids.iter().map(unwire).collect();
                                apply(&app.delivery, &ids, &served, at, now_ms());
                            }
                            Change::Purchased { ids, at, items } => {
                                let ids: Vec<IdHash> = ids.iter().map(unwire).collect();
                                if let Some(linked) = app.delivery.link(&ids) {
                                    let p = linked.profile.0;
                                    app.delivery.profiles.purchased(p, at, items);
                                }
                            }
                            Change::Erased { ids } => {
                                // Erased here as if asked here: forgotten, logged,
                                // indexed for the readers' redaction, consent removed.
                                let ids: Vec<IdHash> = ids.iter().map(unwire).collect();
                                let erased = crate::http::profiles::erase_here(&app, &ids).await;
                                if let Err(e) = erased {
                                    tracing::error!(error = ?e, "could not log another node's erasure here; the profiles are forgotten, this node's log is not redacted for them");
                                }
                            }
                        }
                    }
                    let lag = (now_ms() - e.sent_ms).max(0);
                    fleet.metrics.replication_lag_ms.set(lag);
                }
                Err(e) => tracing::warn!(error = %e, "skipped an unreadable fleet change"),
            }
        }
        if !full {
            tokio::time::sleep(fleet.interval()).await;
        }
    }
}

/// Applies a decision made on another node to this node's graph and profile memory:
/// link the identifiers, then count the capped offers served.
pub fn apply(delivery: &Delivery, ids: &[IdHash], served: &[(u64, i64)], at: i64, now_ms: i64) {
    let Some(linked) = delivery.link(ids) else {
        return;
    };
    for &(campaign, keep) in served {
        // An offer older than its cap window no longer counts anywhere.
        if at + keep > now_ms {
            (delivery.profiles).served(linked.profile.0, campaign, at, keep);
        }
    }
}

/// The (id, `d` field) pairs of an `XREAD` reply for one stream.
fn stream_entries(v: Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // [[stream, [[id, [field, value, ...]], ...]]] (RESP2), or a map (RESP3).
    let streams = match v {
        Value::Array(s) => s,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return out,
    };
    for s in streams {
        let Value::Array(mut pair) = s else { continue };
        let Some(Value::Array(items)) = pair.pop() else {
            continue;
        };
        for item in items {
            let Value::Array(mut parts) = item else {
                continue;
            };
            let (Some(fields), Some(id)) = (parts.pop(), parts.pop()) else {
                continue;
            };
            let id = match id {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                _ => continue,
            };
            let Value::Array(fields) = fields else {
                continue;
            };
            let payload = fields.chunks(2).find_map(|kv| match kv {
                [Value::BulkString(k), Value::BulkString(v)] if k == b"d" => Some(v.clone()),
                _ => None,
            });
            // An entry without a payload is still read past.
            out.push((id, payload.unwrap_or_default()));
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
