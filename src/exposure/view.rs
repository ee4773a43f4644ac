//! Records as people and measurement jobs read them: JSON objects with ids written
//! exactly as the API shows them (`d_…` decision ids, campaign and creative ids, order
//! ids), money in major units, hashes in hex.

use super::record::{LoggedId, Record};
use crate::ids::DecisionId;
use serde::Serialize;
use serde::ser::SerializeMap;

/// Hex of a 128-bit hash, as profiles and identifiers are shown.
pub fn hex128(v: u128) -> String {
    format!("{v:032x}")
}

fn major(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// A record with its offset, serialised for `aftercart log` and `GET /v1/log`.
pub struct RecordView<'a> {
    pub offset: u64,
    pub record: &'a Record,
}

#[derive(Serialize)]
struct IdView {
    kind: &'static str,
    hash: String,
}

impl From<&LoggedId> for IdView {
    fn from(id: &LoggedId) -> IdView {
        IdView {
            kind: id.kind.as_str(),
            hash: hex128(id.hash.0),
        }
    }
}

impl Serialize for RecordView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("offset", &self.offset)?;
        m.serialize_entry("v", &r.v)?;
        m.serialize_entry("kind", r.kind.as_str())?;
        m.serialize_entry("ts", &time(r.ts))?;
        if let Some(d) = r.decision() {
            m.serialize_entry("decision_id", &DecisionId(d.0).to_string())?;
        }
        if let Some(v) = r.slot {
            m.serialize_entry("slot", &v)?;
        }
        opt(&mut m, "campaign_id", &r.campaign)?;
        opt(&mut m, "creative_id", &r.creative)?;
        opt(&mut m, "advertiser_id", &r.advertiser)?;
        opt(&mut m, "placement", &r.placement)?;
        if let Some(c) = r.channel {
            m.serialize_entry("channel", c.as_str())?;
        }
        opt(&mut m, "location", &r.location)?;
        if let Some(p) = r.profile {
            m.serialize_entry("profile", &hex128(p.0))?;
        }
        if !r.ids.is_empty() {
            let ids: Vec<IdView> = r.ids.iter().map(IdView::from).collect();
            m.serialize_entry("ids", &ids)?;
        }
        opt(&mut m, "transaction_id", &r.transaction_id)?;
        if let Some(model) = r.model {
            m.serialize_entry("model", model.as_str())?;
        }
        if let Some(v) = r.price {
            m.serialize_entry("price", &major(v))?;
        }
        if let Some(v) = r.cost {
            m.serialize_entry("cost", &major(v))?;
        }
        if let Some(v) = r.decision_ts {
            m.serialize_entry("decision_ts", &time(v))?;
        }
        opt(&mut m, "order_id", &r.order_id)?;
        if let Some(t) = r.conversion_type {
            m.serialize_entry("type", t.as_str())?;
        }
        if let Some(v) = r.occurred {
            m.serialize_entry("timestamp", &time(v))?;
        }
        opt(&mut m, "store_id", &r.store_id)?;
        if let Some(v) = r.total {
            m.serialize_entry("total", &major(v))?;
        }
        opt(&mut m, "currency", &r.currency)?;
        if !r.items.is_empty() {
            let items: Vec<serde_json::Value> = r
                .items
                .iter()
                .map(|i| {
                    serde_json::json!({"sku": i.sku, "category": i.category, "brand": i.brand, "price": major(i.price), "quantity": i.quantity})
                })
                .collect();
            m.serialize_entry("items", &items)?;
        }
        opt(&mut m, "sku", &r.sku)?;
        if let Some(q) = r.quantity {
            m.serialize_entry("quantity", &q)?;
        }
        opt(&mut m, "action", &r.action)?;
        if let Some(doc) = &r.document {
            // The document is JSON text; show it as JSON, not as a string.
            match serde_json::from_str::<serde_json::Value>(doc) {
                Ok(v) => m.serialize_entry("document", &v)?,
                Err(_) => m.serialize_entry("document", doc)?,
            }
        }
        if let Some(v) = r.version {
            m.serialize_entry("version", &v)?;
        }
        opt(&mut m, "changed_by", &r.changed_by)?;
        opt(&mut m, "origin", &r.origin)?;
        opt(&mut m, "reason", &r.reason)?;
        if let Some(e) = r.event {
            m.serialize_entry("event", e.as_str())?;
        }
        m.end()
    }
}

fn opt<M: SerializeMap>(m: &mut M, key: &'static str, v: &Option<String>) -> Result<(), M::Error> {
    match v {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
