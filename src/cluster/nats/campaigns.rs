//! Campaign changes across the fleet: every node follows the stream's `campaign` records
//! (`aftercart.log.*.campaign`, an ordered consumer from where it last got to) and applies
//! the other nodes' through the catalog, exactly as an upload: validated, written to the
//! campaigns folder, logged (with the `origin` node, so the forwarder never sends it back
//! out) and published to the decision path.
//!
//! Conflicts: two nodes may change one campaign at the same time. The stream orders every
//! change, and the last one in stream order wins on every node. A node applies another
//! node's change unless one of its own, made later and not yet seen in the stream, is on
//! its way: that one will come after it and win there too. To tell, the follower keeps
//! per campaign the newest local version *accounted for*: its own changes as they come
//! back from the stream, and what applying other nodes' changes produced. A local version
//! beyond that is an own change still on its way. This is checked and applied under the
//! catalog lock, so no upload slips in between.
//!
//! A change whose document is already the one this node serves (or a delete of a
//! campaign already deleted here) changes nothing and only marks the campaign accounted
//! for: that is how a change replayed after a crash, before the follower's state reached
//! disk, is recognised.
//!
//! State (the stream sequence reached, the versions accounted for) is persisted at once
//! after a change is applied, and otherwise at most every [`PERSIST_EVERY`]: a restart
//! replays at most that much, which applying leaves unchanged.
//!
//! A node that starts late (or was down) resumes from the stream sequence it persisted,
//! replaying every change it missed. A brand-new node reads every campaign change the
//! stream holds; its own folder's campaigns are changes of its own, logged at start, so
//! a new node should start with the fleet's folder or an empty one.

use super::{
    HEADER_NODE, NatsMetrics, backoff, campaign_subjects, connect, context, ensure_stream,
};
use crate::access::{Principal, Role};
use crate::app::App;
use crate::catalog::{self, CatalogError};
use crate::cluster::NatsConfig;
use crate::exposure::Record;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The follower's persisted state, in the node's `cluster/` state folder.
pub const STATE_FILE: &str = "nats-campaigns.json";
/// The longest the persisted state lags behind when nothing was applied.
pub const PERSIST_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The stream sequence of the last campaign record handled.
    seq: u64,
    /// Per campaign, the newest local version accounted for (see the module docs).
    accounted: BTreeMap<String, u64>,
}

pub struct Follower {
    app: Arc<App>,
    url: String,
    stream: String,
    node: String,
    path: PathBuf,
    state: State,
    metrics: NatsMetrics,
}

/// What handling one record asks of the session.
enum Handled {
    /// Nothing changed here (own change, superseded, already served).
    Noted,
    /// Applied: persist the state before going on.
    Applied,
    /// The catalog could not take it now (storage): retry from this record.
    Retry(String),
}

impl Follower {
    pub fn new(
        app: Arc<App>,
        config: &NatsConfig,
        node: &str,
        state: &Path,
        metrics: NatsMetrics,
    ) -> std::io::Result<Follower> {
        let path = state.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Follower {
            app,
            url: config.url.clone(),
            stream: config.stream.clone(),
            node: node.to_string(),
            path,
            state,
            metrics,
        })
    }

    /// Follows for as long as the process lives, starting a new session after a failure.
    pub async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let error = self.session(&mut failures).await;
            self.metrics.errors.with_label_values(&["follow"]).inc();
            tracing::debug!(error = %error, "campaign change follower: session ended");
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    async fn session(&mut self, failures: &mut u32) -> String {
        let name = format!("aftercart {} campaigns", self.node);
        let client = match connect(&self.url, &name).await {
            Ok(c) => c,
            Err(e) => return e.to_string(),
        };
        let js = context(client);
        let stream = match ensure_stream(&js, &self.stream).await {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        let last = stream.cached_info().state.last_sequence;
        if self.state.seq > last {
            // The stream was deleted and created again: its sequences start over.
            tracing::warn!(
                seq = self.state.seq,
                last,
                "the stream is behind where this node got to; following it from its start"
            );
            self.state.seq = 0;
        }
        let deliver_policy = match self.state.seq {
            0 => DeliverPolicy::All,
            seq => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: campaign_subjects(),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(e) => return e.to_string(),
            },
            Err(e) => return e.to_string(),
        };
        *failures = 0;
        let mut dirty = false;
        loop {
            let next = if dirty {
                match tokio::time::timeout(PERSIST_EVERY, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.persist().await;
                        dirty = false;
                        continue;
                    }
                }
            } else {
                messages.next().await
            };
            let Some(message) = next else {
                break;
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => return e.to_string(),
            };
            let seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => return e.to_string(),
            };
            let from = message
                .headers
                .as_ref()
                .and_then(|h| h.get(HEADER_NODE))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            let handled = match Record::decode(&message.payload) {
                Ok(record) => self.handle(&from, record).await,
                Err(e) => {
                    tracing::error!(seq, error = %e, "a campaign message in the stream is not a record; skipped");
                    Handled::Noted
                }
            };
            self.state.seq = seq;
            match handled {
                Handled::Retry(e) => return e,
                Handled::Applied => {
                    self.persist().await;
                    dirty = false;
                }
                Handled::Noted => dirty = true,
            }
        }
        if dirty {
            self.persist().await;
        }
        "the consumer ended".into()
    }

    async fn persist(&self) {
        let Ok(bytes) = serde_json::to_vec(&self.state) else {
            return;
        };
        let path = self.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::secrets::write_atomic(&path, &bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            // A restart then replays a few changes again, which applying leaves unchanged.
            tracing::warn!(path = %self.path.display(), "cannot persist the campaign follower's state");
        }
    }

    /// Applies one campaign record from the stream (see the module docs).
    async fn handle(&mut self, from: &str, record: Record) -> Handled {
        let Some(id) = record.campaign.clone() else {
            return Handled::Noted;
        };
        let app = self.app.clone();
        let _writer = app.catalog_lock.lock().await;
        let local = |app: &App| app.ledger.campaign_version(&id).map_or(0, |v| v.version);
        if from == self.node {
            let accounted = self.state.accounted.entry(id).or_default();
            *accounted = (*accounted).max(record.version.unwrap_or(0));
            return Handled::Noted;
        }
        if record.origin.is_some() || from.is_empty() {
            // Copies are never published; a message without a node is not ours to apply.
            return Handled::Noted;
        }
        let served = app.ledger.campaign_version(&id);
        let same = match (record.action.as_deref(), &record.document, served) {
            (Some("upsert"), Some(doc), Some(v)) => {
                !v.deleted && v.digest == crate::ledger::document_digest(doc)
            }
            (Some("delete"), _, Some(v)) => v.deleted,
            _ => false,
        };
        if same {
            self.state.accounted.insert(id.clone(), local(&app));
            return Handled::Noted;
        }
        let accounted = self.state.accounted.get(&id).copied().unwrap_or(0);
        if local(&app) > accounted {
            self.metrics.campaigns_superseded.inc();
            tracing::info!(campaign = %id, from, "a later change of this campaign made here wins over another node's");
            return Handled::Noted;
        }
        let who = Principal {
            key_id: record.changed_by.as_deref().unwrap_or("admin").into(),
            role: Role::Admin,
            advertiser: None,
        };
        let result = match record.action.as_deref() {
            Some("upsert") => {
                let document = record
                    .document
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok());
                let Some(document) = document else {
                    tracing::error!(campaign = %id, from, "a campaign change without a readable document; skipped");
                    return Handled::Noted;
                };
                catalog::upsert_locked(
                    &app,
                    &who,
                    vec![(String::new(), document)],
                    None,
                    Some(from),
                )
                .await
                .map(drop)
            }
            Some("delete") => match catalog::delete_locked(&app, &who, &id, Some(from)).await {
                Err(CatalogError::NotFound) => Ok(()),
                other => other.map(drop),
            },
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                self.metrics.campaigns_applied.inc();
                tracing::info!(campaign = %id, from, action = ?record.action, "applied another node's campaign change");
            }
            Err(CatalogError::Unavailable(e)) => return Handled::Retry(e),
            Err(e) => {
                // Valid on its node, refused here: the nodes' configurations differ (e.g.
                // allow_http_urls). Nothing to retry; the operator has to align them.
                tracing::error!(campaign = %id, from, error = ?e, "another node's campaign change is refused here; the nodes' configurations differ");
            }
        }
        self.state.accounted.insert(id.clone(), local(&app));
        Handled::Applied
    }
}
