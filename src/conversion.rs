//! Conversions: purchases and refunds reported by online checkouts, apps and POS
//! systems, validated whole before anything is applied.

use crate::campaign::Channel;
use crate::exposure::record::{ConversionType, Kind, LoggedId, LoggedItem, Record};
use crate::identity::{IdHash, IdKind, IdentityHasher};
use crate::money::Micros;
use crate::validation::{Problems, Reader, index, join};
use serde_json::Value;

/// The most conversions in one request.
pub const MAX_BATCH: usize = 10_000;
/// How far in the future a conversion's timestamp may be (clock skew between systems).
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
const MAX_TEXT: usize = 256;
/// How a currency mismatch is worded, so the HTTP layer can answer `currency_mismatch`.
pub const CURRENCY_MISMATCH: &str = "does not match the deployment currency";

/// One validated conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub order_id: String,
    pub kind: ConversionType,
    pub channel: Channel,
    pub store_id: Option<String>,
    pub occurred_ms: i64,
    pub total: Option<Micros>,
    pub ids: Vec<IdHash>,
    pub personalization: bool,
    pub measurement: bool,
    pub items: Vec<LoggedItem>,
}

impl Conversion {
    /// The log record: identifiers only with measurement consent.
    pub fn record(&self, now_ms: i64, currency: &str) -> Record {
        let mut r = Record::new(Kind::Conversion, now_ms);
        r.order_id = Some(self.order_id.clone());
        r.conversion_type = Some(self.kind);
        r.channel = Some(self.channel);
        r.store_id = self.store_id.clone();
        r.occurred = Some(self.occurred_ms);
        r.total = self.total.map(|m| m.0);
        r.currency = Some(currency.to_string());
        r.items = self.items.clone();
        if self.measurement {
            r.ids = self.ids.iter().map(|&h| LoggedId::from(h)).collect();
        }
        r
    }
}

/// What the deployment decides about conversions.
pub struct Rules<'a> {
    pub currency: &'a str,
    pub now_ms: i64,
    /// Conversions older than this are refused (they could no longer be deduplicated).
    pub horizon_ms: i64,
    pub default_personalization: bool,
    pub default_measurement: bool,
    pub hasher: &'a IdentityHasher,
}

/// Validates one conversion object or an array of them. Every problem of every element
/// is listed (paths like `[3].items[0].price`); on any problem nothing is returned.
pub fn parse_batch(v: &Value, rules: &Rules) -> Result<Vec<Conversion>, Problems> {
    let mut p = Problems::default();
    let out = match v {
        Value::Array(items) => {
            if items.is_empty() {
                p.push("", "must hold at least one conversion");
            }
            if items.len() > MAX_BATCH {
                p.push("", format!("must hold at most {MAX_BATCH} conversions"));
                Vec::new()
            } else {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| parse_one(c, &index("", i), rules, &mut p))
                    .collect()
            }
        }
        other => parse_one(other, "", rules, &mut p).into_iter().collect(),
    };
    if p.is_empty() { Ok(out) } else { Err(p) }
}

fn text(r: &mut Reader, key: &'static str, required: bool, p: &mut Problems) -> Option<String> {
    let v = if required {
        r.required_string(key, p)
    } else {
        r.string(key, p)
    }?;
    let v = v.trim();
    let path = r.field_path(key);
    if v.is_empty() {
        p.push(path, "must not be empty");
        None
    } else if v.len() > MAX_TEXT {
        p.push(path, format!("must be at most {MAX_TEXT} characters"));
        None
    } else {
        Some(v.to_string())
    }
}

fn money(r: &mut Reader, key: &'static str, p: &mut Problems) -> Option<Micros> {
    let n = r.number(key, p)?;
    let m = Micros::from_major(n);
    if m.is_none() {
        p.push(r.field_path(key), "amount too large");
    }
    m
}

fn parse_one(v: &Value, path: &str, rules: &Rules, p: &mut Problems) -> Option<Conversion> {
    let before = p.0.len();
    let mut r = Reader::object(v, path, p)?;
    let order_id = text(&mut r, "order_id", true, p);
    let kind = match r.string("type", p) {
        None | Some("purchase") => Some(ConversionType::Purchase),
        Some("refund") => Some(ConversionType::Refund),
        Some(other) => {
            p.push(
                r.field_path("type"),
                format!("unknown type {other:?}; expected purchase or refund"),
            );
            None
        }
    };
    let channel = r.required_string("channel", p).and_then(|c| {
        let ch = Channel::parse(c);
        if ch.is_none() {
            p.push(
                r.field_path("channel"),
                format!("unknown channel {c:?}; expected online, in_store or app"),
            );
        }
        ch
    });
    let store_id = text(&mut r, "store_id", false, p);
    let occurred_ms = match r.string("timestamp", p) {
        None => Some(rules.now_ms),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Err(e) => {
                p.push(
                    r.field_path("timestamp"),
                    format!("not an RFC 3339 timestamp ({e})"),
                );
                None
            }
            Ok(t) => {
                let ms = t.timestamp_millis();
                if ms > rules.now_ms + MAX_FUTURE_MS {
                    p.push(
                        r.field_path("timestamp"),
                        "is more than 5 minutes in the future",
                    );
                    None
                } else if ms < rules.now_ms - rules.horizon_ms {
                    p.push(
                        r.field_path("timestamp"),
                        "is older than the deduplication horizon",
                    );
                    None
                } else {
                    Some(ms)
                }
            }
        },
    };
    let total = money(&mut r, "total", p);
    if let Some(cur) = r.string("currency", p)
        && !cur.eq_ignore_ascii_case(rules.currency)
    {
        p.push(
            r.field_path("currency"),
            format!("{CURRENCY_MISMATCH} {}", rules.currency),
        );
    }
    let (personalization, measurement) = match r.raw("consent") {
        None => (rules.default_personalization, rules.default_measurement),
        Some(c) => {
            let path = r.field_path("consent");
            match Reader::object(c, &path, p) {
                Some(mut cr) => {
                    let pz = cr
                        .bool("personalization", p)
                        .unwrap_or(rules.default_personalization);
                    let ms = cr
                        .bool("measurement", p)
                        .unwrap_or(rules.default_measurement);
                    cr.finish(p);
                    (pz, ms)
                }
                None => (false, false),
            }
        }
    };
    let ids = match r.raw("customer") {
        None => Vec::new(),
        Some(c) => read_customer(c, &r.field_path("customer"), rules.hasher, p),
    };
    let items = r.array("items", p, read_item);
    r.finish(p);
    if p.0.len() > before {
        return None;
    }
    Some(Conversion {
        order_id: order_id?,
        kind: kind?,
        channel: channel?,
        store_id,
        occurred_ms: occurred_ms?,
        total,
        ids,
        personalization,
        measurement,
        items,
    })
}

/// Reads `{"ids": {...}}` (a customer, or an erasure request) into hashed identifiers.
pub fn read_customer(
    v: &Value,
    path: &str,
    hasher: &IdentityHasher,
    p: &mut Problems,
) -> Vec<IdHash> {
    let Some(mut r) = Reader::object(v, path, p) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(ids) = r.raw("ids") {
        let ids_path = join(path, "ids");
        if let Some(mut ir) = Reader::object(ids, &ids_path, p) {
            for kind in IdKind::ALL {
                if let Some(v) = text(&mut ir, kind.as_str(), false, p) {
                    match hasher.hash_given(kind, &v) {
                        Ok(h) => out.push(h),
                        Err(e) => p.push(ir.field_path(kind.as_str()), e),
                    }
                }
            }
            if let Some(email) = ir.string("email", p) {
                match hasher.hash_given_email(email) {
                    Ok(h) if !out.contains(&h) => out.push(h),
                    Ok(_) => {}
                    Err(e) => p.push(ir.field_path("email"), e),
                }
            }
            ir.finish(p);
        }
    }
    r.finish(p);
    out
}

fn read_item(v: &Value, path: &str, p: &mut Problems) -> Option<LoggedItem> {
    let before = p.0.len();
    let mut r = Reader::object(v, path, p)?;
    let sku = text(&mut r, "sku", false, p);
    let category = text(&mut r, "category", false, p);
    let brand = text(&mut r, "brand", false, p);
    text(&mut r, "name", false, p);
    let price = money(&mut r, "price", p).unwrap_or_default();
    let quantity = r.integer("quantity", 1..=100_000, p).unwrap_or(1) as u32;
    r.finish(p);
    (p.0.len() == before).then_some(LoggedItem {
        sku,
        category,
        brand,
        price: price.0,
        quantity,
    })
}
