//! Changing the live campaign set: uploads, deletes and folder reloads.
//!
//! A change is validated completely (every problem with its path), authorised (an
//! advertiser key manages only its own campaigns and may not set `priority`), then:
//!
//! 1. written to the campaigns folder as one all-or-nothing set (see
//!    [`crate::campaign::store`]);
//! 2. logged as `campaign` records (document, version, the key that changed it) and
//!    acknowledged by the log only once durable: the audit trail, and the report's
//!    source of conversion rules;
//! 3. published to the decision path ([`Publisher`](crate::index::Publisher)).
//!
//! Only then is the response sent, so the change is live for the next decision. If
//! the log refuses, the files are put back and nothing has changed. Changes are
//! serialised by one async mutex (the write path is cold; decisions never take it),
//! which keeps versions, files and log records in one order.
//!
//! On a fleet (see [`crate::cluster`]), a change made on another node arrives through
//! [`upsert_locked`] and [`delete_locked`] with its `origin`: the same path, logged with
//! the node it came from, so it is never sent back out.
//!
//! The folder can also change behind the server's back (an operator edits a file and
//! sends `SIGHUP`, or the server starts on a folder edited while it was down):
//! [`reconcile`] logs every campaign whose document differs from its last logged
//! version, so the audit trail always ends with what is being served.

use crate::access::Principal;
use crate::app::App;
use crate::campaign::{Campaign, DEFAULT_PRIORITY, Status, ValidationRules, parse_campaign};
use crate::exposure::{Kind, LogUnavailable, Record};
use crate::index::CompiledCampaign;
use crate::ledger::document_digest;
use crate::validation::{Detail, Problems, join};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// The most campaigns one batch may carry.
pub const MAX_BATCH: usize = 10_000;

/// `changed_by` of changes found in the folder rather than made through the API.
pub const FOLDER: &str = "folder";

#[derive(Debug)]
pub enum CatalogError {
    Invalid(Vec<Detail>),
    Forbidden(Detail),
    NotFound,
    Unavailable(String),
}

/// One campaign as a change left it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Applied {
    pub id: String,
    pub version: u64,
    pub status: Status,
    /// New (201) rather than replaced (200).
    #[serde(skip)]
    pub created: bool,
    /// The document was identical to the one served: nothing was written or logged.
    #[serde(skip)]
    pub unchanged: bool,
}

/// A validated upload, with what it replaces.
struct Upload {
    campaign: Campaign,
    existing: Option<Arc<CompiledCampaign>>,
}

/// Compiles a document with its advertiser's competitive category, if any.
pub fn compile(app: &App, campaign: Campaign) -> Arc<CompiledCampaign> {
    let category = app
        .access
        .advertiser(&campaign.advertiser)
        .and_then(|a| a.competitive_category);
    let live = app.delivery.registry.get(&campaign.id);
    Arc::new(
        CompiledCampaign::compile(Arc::new(campaign), app.config.timezone, category.as_deref())
            .with_live(live),
    )
}

/// The document as logged and compared: compact JSON of the validated campaign.
pub fn document_text(c: &Campaign) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

fn campaign_record(
    now: i64,
    c: &Campaign,
    action: &str,
    version: u64,
    by: &str,
    document: Option<String>,
) -> Record {
    let mut r = Record::new(Kind::Campaign, now);
    r.campaign = Some(c.id.clone());
    r.advertiser = Some(c.advertiser.clone());
    r.action = Some(action.to_string());
    r.version = Some(version);
    r.changed_by = Some(by.to_string());
    r.document = document;
    r
}

fn next_version(app: &App, id: &str) -> u64 {
    app.ledger.campaign_version(id).map_or(1, |v| v.version + 1)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> CatalogError {
    tracing::error!(error = %e, "{what}");
    CatalogError::Unavailable(format!("{what}; nothing was changed, retry later"))
}

/// Validates and authorises `documents` (each with its path: `""` for a single
/// upload, `[i]` in a batch). `url_id` is the id a `PUT` names.
fn check(
    app: &App,
    who: &Principal,
    documents: Vec<(String, Value)>,
    url_id: Option<&str>,
) -> Result<Vec<Upload>, CatalogError> {
    let snap = app.snapshot.load();
    let rules = ValidationRules {
        allow_http_urls: app.config.allow_http_urls,
    };
    let mut problems = Problems::default();
    let mut forbidden = None;
    let mut seen = HashSet::new();
    let mut uploads = Vec::with_capacity(documents.len());
    for (path, mut value) in documents {
        if let (Some(id), Some(obj)) = (url_id, value.as_object_mut()) {
            obj.entry("id").or_insert_with(|| Value::from(id));
        }
        let mut c = match parse_campaign(&value, &path, rules) {
            Ok(c) => c,
            Err(p) => {
                problems.0.extend(p.0);
                continue;
            }
        };
        let id_path = join(&path, "id");
        if let Some(id) = url_id.filter(|id| *id != c.id) {
            problems.push(&id_path, format!("must be {id:?}, the id in the URL"));
        }
        if !seen.insert(c.id.clone()) {
            problems.push(&id_path, "appears more than once in the batch");
        }
        let existing = snap.by_id(&c.id).cloned();
        let deny = |path: String, message: String| Some(Detail::new(path, message));
        if !who.manages(&c.advertiser) {
            forbidden = forbidden.or(deny(
                join(&path, "advertiser"),
                "this key does not manage this advertiser's campaigns".into(),
            ));
        }
        if existing
            .as_ref()
            .is_some_and(|e| !who.manages(&e.advertiser))
        {
            forbidden = forbidden.or(deny(id_path, "belongs to another advertiser".into()));
        }
        if !who.is_admin() {
            let current = existing
                .as_ref()
                .map_or(DEFAULT_PRIORITY, |e| e.doc.priority);
            if value.get("priority").is_some() && c.priority != current {
                forbidden = forbidden.or(deny(
                    join(&path, "priority"),
                    "only an admin key may set the priority".into(),
                ));
            }
            c.priority = current;
            if app.config.require_approval && c.status == Status::Active {
                c.status = Status::PendingReview;
            }
        }
        uploads.push(Upload {
            campaign: c,
            existing,
        });
    }
    if let Some(detail) = forbidden {
        return Err(CatalogError::Forbidden(detail));
    }
    if !problems.is_empty() {
        return Err(CatalogError::Invalid(problems.0));
    }
    Ok(uploads)
}

/// Creates or replaces campaigns, all or nothing.
pub async fn upsert(
    app: &App,
    who: &Principal,
    documents: Vec<(String, Value)>,
    url_id: Option<&str>,
) -> Result<Vec<Applied>, CatalogError> {
    let _writer = app.catalog_lock.lock().await;
    upsert_locked(app, who, documents, url_id, None).await
}

/// [`upsert`] for a caller that holds the catalog lock; `origin` names the node of a
/// fleet the change was made on when it was made elsewhere.
pub async fn upsert_locked(
    app: &App,
    who: &Principal,
    documents: Vec<(String, Value)>,
    url_id: Option<&str>,
    origin: Option<&str>,
) -> Result<Vec<Applied>, CatalogError> {
    let uploads = check(app, who, documents, url_id)?;
    let now = app.clock.now_ms();
    let mut applied = Vec::with_capacity(uploads.len());
    let mut files = Vec::new();
    let mut records = Vec::new();
    for u in &uploads {
        let c = &u.campaign;
        let unchanged = u.existing.as_ref().is_some_and(|e| *e.doc == *c);
        let version = if unchanged {
            app.ledger.campaign_version(&c.id).map_or(1, |v| v.version)
        } else {
            next_version(app, &c.id)
        };
        applied.push(Applied {
            id: c.id.clone(),
            version,
            status: c.status,
            created: u.existing.is_none(),
            unchanged,
        });
        if unchanged {
            continue;
        }
        let pretty = serde_json::to_vec_pretty(c).unwrap_or_default();
        files.push((c.id.clone(), pretty));
        let mut record = campaign_record(
            now,
            c,
            "upsert",
            version,
            &who.key_id,
            Some(document_text(c)),
        );
        record.origin = origin.map(str::to_string);
        records.push(record);
    }
    if records.is_empty() {
        return Ok(applied);
    }

    let folder = app.folder.clone();
    let previous = tokio::task::spawn_blocking(move || folder.write_set(&files))
        .await
        .map_err(|e| unavailable("campaign write task failed", e))?
        .map_err(|e| unavailable("cannot write the campaigns folder", e))?;
    if let Err(e) = app.log.append_durable(Kind::Campaign, &records).await {
        let folder = app.folder.clone();
        let undone = tokio::task::spawn_blocking(move || folder.undo(&previous)).await;
        if !matches!(undone, Ok(Ok(()))) {
            tracing::error!(
                "could not put the campaigns folder back after a failed log write; the next start logs what it holds"
            );
        }
        return Err(unavailable("the exposure log refused the change", e));
    }
    for r in &records {
        app.ledger.apply(r, &crate::ledger::NoCampaigns);
    }
    let compiled = uploads
        .into_iter()
        .filter(|u| !u.existing.as_ref().is_some_and(|e| *e.doc == u.campaign))
        .map(|u| compile(app, u.campaign))
        .collect();
    app.publisher.publish(compiled, Vec::new());
    app.metrics
        .campaigns_loaded
        .set(app.snapshot.load().len() as i64);
    Ok(applied)
}

/// Deletes a campaign: it stops serving at once, its file moves to `.deleted/`.
pub async fn delete(app: &App, who: &Principal, id: &str) -> Result<u64, CatalogError> {
    let _writer = app.catalog_lock.lock().await;
    delete_locked(app, who, id, None).await
}

/// [`delete`] for a caller that holds the catalog lock, with the change's `origin` as in
/// [`upsert_locked`].
pub async fn delete_locked(
    app: &App,
    who: &Principal,
    id: &str,
    origin: Option<&str>,
) -> Result<u64, CatalogError> {
    let existing = app
        .snapshot
        .load()
        .by_id(id)
        .cloned()
        .ok_or(CatalogError::NotFound)?;
    if !who.manages(&existing.advertiser) {
        return Err(CatalogError::Forbidden(Detail::new(
            "id",
            "belongs to another advertiser",
        )));
    }
    let now = app.clock.now_ms();
    let version = next_version(app, id);
    let folder = app.folder.clone();
    let owned = id.to_string();
    let moved = tokio::task::spawn_blocking(move || match folder.delete(&owned, now) {
        Ok(to) => Ok(Some(to)),
        // Already gone from the folder (removed by hand): nothing to move.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await
    .map_err(|e| unavailable("campaign delete task failed", e))?
    .map_err(|e| unavailable("cannot move the campaign file", e))?;
    let mut record = campaign_record(now, &existing.doc, "delete", version, &who.key_id, None);
    record.origin = origin.map(str::to_string);
    if let Err(e) = app
        .log
        .append_durable(Kind::Campaign, std::slice::from_ref(&record))
        .await
    {
        if let Some(to) = moved
            && let Err(undo) = app.folder.undelete(id, &to)
        {
            tracing::error!(error = %undo, "could not restore a deleted campaign's file");
        }
        return Err(unavailable("the exposure log refused the change", e));
    }
    app.ledger.apply(&record, &crate::ledger::NoCampaigns);
    app.publisher.publish(Vec::new(), vec![existing.id.clone()]);
    app.metrics
        .campaigns_loaded
        .set(app.snapshot.load().len() as i64);
    Ok(version)
}

/// Logs every served campaign whose document is not its last logged version, and a
/// delete for every logged campaign no longer served. Returns how many were logged.
/// The caller holds the catalog lock.
pub async fn reconcile(app: &App) -> Result<usize, LogUnavailable> {
    let snap = app.snapshot.load();
    let now = app.clock.now_ms();
    let mut records = Vec::new();
    for c in snap.campaigns() {
        let text = document_text(&c.doc);
        let last = app.ledger.campaign_version(&c.id);
        if last.is_some_and(|v| !v.deleted && v.digest == document_digest(&text)) {
            continue;
        }
        let version = last.map_or(1, |v| v.version + 1);
        records.push(campaign_record(
            now,
            &c.doc,
            "upsert",
            version,
            FOLDER,
            Some(text),
        ));
    }
    for (id, v) in app.ledger.campaign_versions() {
        if v.deleted || snap.by_id(&id).is_some() {
            continue;
        }
        let mut r = Record::new(Kind::Campaign, now);
        r.campaign = Some(id);
        r.action = Some("delete".into());
        r.version = Some(v.version + 1);
        r.changed_by = Some(FOLDER.into());
        records.push(r);
    }
    for chunk in records.chunks(MAX_BATCH) {
        app.log.append_durable(Kind::Campaign, chunk).await?;
        for r in chunk {
            app.ledger.apply(r, &crate::ledger::NoCampaigns);
        }
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{load_folder, parse_campaign_bytes};

    /// What is written to the folder and the log must read back as the same campaign,
    /// or a restart would see every upload as changed.
    #[test]
    fn written_documents_read_back_unchanged() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
        let rules = ValidationRules::default();
        let folder = load_folder(&dir, rules).unwrap();
        assert!(folder.campaigns.len() >= 10);
        for c in folder.campaigns {
            let pretty = serde_json::to_vec_pretty(&c).unwrap();
            let again = parse_campaign_bytes(&pretty, false, rules).unwrap();
            assert_eq!(again, c, "{}", c.id);
            assert_eq!(document_text(&again), document_text(&c));
        }
    }
}
