//! Reports over small hand-built logs with known answers, and one generated holdout
//! population with a known true lift.

mod holdout;
mod rules;

use super::{Options, Report, report};
use crate::campaign::{BidModel, Channel};
use crate::exposure::record::{ConversionType, H128, Kind, LoggedId, LoggedItem, Record};
use crate::exposure::storage::{Faults, SegmentWriter, encode_frame};
use crate::identity::IdKind;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// 2026-11-18T11:06:40Z: the log's clock in these tests.
pub const T0: i64 = 1_795_000_000_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// Money in major units as micros.
pub fn m(major: f64) -> i64 {
    (major * 1e6).round() as i64
}

/// Writes records as the server's log, in a fresh data folder.
pub fn write_log(records: &[Record]) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    append(data.path(), records);
    data
}

pub fn append(data: &Path, records: &[Record]) {
    let (mut w, _) =
        SegmentWriter::open(&data.join("log"), 1 << 20, Arc::new(Faults::default())).unwrap();
    let (mut payload, mut frames) = (Vec::new(), Vec::new());
    for r in records {
        payload.clear();
        r.encode(&mut payload);
        encode_frame(&payload, &mut frames);
        if frames.len() > 256 << 10 {
            w.append(&frames).unwrap();
            frames.clear();
        }
    }
    w.append(&frames).unwrap();
    w.sync().unwrap();
}

pub fn run(records: &[Record]) -> Report {
    run_with(records, &Options::default())
}

pub fn run_with(records: &[Record], options: &Options) -> Report {
    let data = write_log(records);
    report(data.path(), options).unwrap()
}

pub fn id(kind: IdKind, hash: u128) -> LoggedId {
    LoggedId {
        kind,
        hash: H128(hash),
    }
}

pub fn email(n: u128) -> LoggedId {
    id(IdKind::EmailSha256, 1 << 100 | n)
}

pub fn loyalty(n: u128) -> LoggedId {
    id(IdKind::LoyaltyId, 2 << 100 | n)
}

pub fn device(n: u128) -> LoggedId {
    id(IdKind::DeviceId, 3 << 100 | n)
}

/// A `campaign` upsert with a conversion rule on `brand` and a holdout.
pub fn campaign(ts: i64, id: &str, brand: &str, holdout: f64) -> Record {
    let mut r = Record::new(Kind::Campaign, ts);
    r.campaign = Some(id.into());
    r.advertiser = Some("adv".into());
    r.action = Some("upsert".into());
    r.version = Some(1);
    r.document = Some(
        json!({"id": id, "advertiser": "adv", "name": format!("{id} name"),
               "holdout_percent": holdout,
               "conversion": {"skus": [], "categories": [], "brands": [brand]}})
        .to_string(),
    );
    r
}

/// The records of one decision by `who` (the profile is the hash of the first id, as
/// the graph names a profile after its founding identifier): one offer per campaign.
pub struct Shown<'a> {
    pub ts: i64,
    pub decision: u128,
    pub channel: Channel,
    pub ids: &'a [LoggedId],
    pub txn: &'a str,
}

pub fn profile_of(ids: &[LoggedId]) -> Option<H128> {
    // The most durable identifier founds the profile (customer, loyalty, e-mail, …).
    let rank = |k: IdKind| match k {
        IdKind::CustomerId => 0,
        IdKind::LoyaltyId => 1,
        IdKind::EmailSha256 => 2,
        IdKind::PhoneSha256 => 3,
        IdKind::PaymentToken => 4,
        IdKind::DeviceId => 5,
    };
    ids.iter()
        .min_by_key(|i| (rank(i.kind), i.hash.0))
        .map(|i| i.hash)
}

pub fn decision(s: &Shown, slot: u8, campaign: &str, kind: Kind) -> Record {
    let mut r = Record::new(kind, s.ts);
    r.decision_id = Some(H128(s.decision));
    r.placement = Some("order_confirmation".into());
    r.channel = Some(s.channel);
    r.location = Some("online".into());
    r.profile = profile_of(s.ids);
    r.transaction_id = Some(s.txn.into());
    if kind != Kind::Nofill {
        r.slot = Some(slot);
        r.campaign = Some(campaign.into());
        r.model = Some(BidModel::Cpm);
        r.price = Some(m(1.0));
    }
    if slot == 0 {
        r.ids = s.ids.to_vec();
    }
    r
}

/// An impression or click of slot `slot` of a decision, at `ts`, charging `cost`.
pub fn event(kind: Kind, s: &Shown, slot: u8, campaign: &str, ts: i64, cost: f64) -> Record {
    let mut r = Record::new(kind, ts);
    r.decision_id = Some(H128(s.decision));
    r.slot = Some(slot);
    r.campaign = Some(campaign.into());
    r.placement = Some("order_confirmation".into());
    r.channel = Some(s.channel);
    r.location = Some("online".into());
    r.profile = profile_of(s.ids);
    r.model = Some(BidModel::Cpm);
    r.cost = Some(m(cost));
    r.decision_ts = Some(s.ts);
    r
}

/// A purchase (or refund) posted at `ts`, made at `occurred`, of `items` (brand, price,
/// quantity). With `linked`, the conversion names its profile (personalisation
/// consent): its identifiers link.
pub struct Bought<'a> {
    pub ts: i64,
    pub occurred: i64,
    pub order: &'a str,
    pub channel: Channel,
    pub ids: &'a [LoggedId],
    pub linked: bool,
    pub items: &'a [(&'a str, f64, u32)],
}

pub fn conversion(b: &Bought, kind: ConversionType) -> Record {
    let mut r = Record::new(Kind::Conversion, b.ts);
    r.order_id = Some(b.order.into());
    r.conversion_type = Some(kind);
    r.channel = Some(b.channel);
    r.occurred = Some(b.occurred);
    r.currency = Some("USD".into());
    r.ids = b.ids.to_vec();
    if b.linked {
        r.profile = profile_of(b.ids);
    }
    r.items = (b.items.iter())
        .map(|(brand, price, quantity)| LoggedItem {
            sku: Some(format!("SKU-{brand}-{price}")),
            category: Some("grocery/snacks".into()),
            brand: Some((*brand).into()),
            price: m(*price),
            quantity: *quantity,
        })
        .collect();
    r.total = Some(
        r.items
            .iter()
            .map(|i| i.price * i64::from(i.quantity))
            .sum(),
    );
    r
}

pub fn purchase(b: &Bought) -> Record {
    conversion(b, ConversionType::Purchase)
}
