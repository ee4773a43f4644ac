//! The exposure log's record: one MessagePack map per record, fields named, so any
//! MessagePack reader can consume the log and new optional fields never break old
//! readers.
//!
//! Every record carries the schema version `v`, its `kind` and `ts` (milliseconds since
//! the epoch, server receive time). The other fields depend on the kind; the README's
//! "Exposure log" section lists them per kind. Identifiers are only ever keyed hashes.

use crate::campaign::{BidModel, Channel};
use crate::identity::{IdHash, IdKind};
use crate::ids::DecisionId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema version written by this build.
pub const SCHEMA_VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Decision,
    Nofill,
    Control,
    Impression,
    Click,
    Conversion,
    Purchase,
    Campaign,
    Erasure,
    /// Non-human traffic. Also the placeholder of `Record::default()`;
    /// [`Record::new`] always sets the kind.
    #[default]
    Invalid,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Decision,
        Kind::Nofill,
        Kind::Control,
        Kind::Impression,
        Kind::Click,
        Kind::Conversion,
        Kind::Purchase,
        Kind::Campaign,
        Kind::Erasure,
        Kind::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Nofill => "nofill",
            Kind::Control => "control",
            Kind::Impression => "impression",
            Kind::Click => "click",
            Kind::Conversion => "conversion",
            Kind::Purchase => "purchase",
            Kind::Campaign => "campaign",
            Kind::Erasure => "erasure",
            Kind::Invalid => "invalid",
        }
    }
}

/// A 128-bit value stored as 16 big-endian bytes (MessagePack `bin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct H128(pub u128);

impl Serialize for H128 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.to_be_bytes())
    }
}

impl<'de> Deserialize<'de> for H128 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = H128;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("16 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<H128, E> {
                let arr: [u8; 16] = b
                    .try_into()
                    .map_err(|_| E::invalid_length(b.len(), &self))?;
                Ok(H128(u128::from_be_bytes(arr)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<H128, A::Error> {
                let mut arr = [0u8; 16];
                for (i, b) in arr.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(H128(u128::from_be_bytes(arr)))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl From<DecisionId> for H128 {
    fn from(d: DecisionId) -> H128 {
        H128(d.0)
    }
}

/// A hashed identifier as logged: its kind and keyed hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoggedId {
    pub kind: IdKind,
    pub hash: H128,
}

impl From<IdHash> for LoggedId {
    fn from(h: IdHash) -> LoggedId {
        LoggedId {
            kind: h.kind,
            hash: H128(h.hash),
        }
    }
}

/// One basket line of a conversion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Unit price in micros.
    pub price: i64,
    pub quantity: u32,
}

/// Purchase or refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionType {
    Purchase,
    Refund,
}

impl ConversionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversionType::Purchase => "purchase",
            ConversionType::Refund => "refund",
        }
    }
}

/// One log record. Fields that a kind does not use are absent from its encoding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u8,
    pub kind: Kind,
    pub ts: i64,

    // Decision side: decision, nofill, control, impression, click, purchase, invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<H128>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creative: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertiser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `online`, or the store id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The profile the exposure was served to (absent without measurement consent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<H128>,
    /// Hashed identifiers seen together (decisions and conversions with consent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<LoggedId>,
    /// The order the decision was made for (`transaction.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<BidModel>,
    /// The winning bid's price per billable event, in micros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// What this event charged the campaign, in micros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<i64>,
    /// When the decision behind an event was made (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_ts: Option<i64>,

    // Conversions and in-unit purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_type: Option<ConversionType>,
    /// When the conversion happened, as reported (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<LoggedItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,

    // Campaign changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The campaign document as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The id of the key that made the change (`admin`, a key id, or `folder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// The node of a fleet a change was made on, when it was made on another node and
    /// applied here (see [`crate::cluster`]); absent for changes made on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,

    // Invalid traffic and erasures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Kind>,
}

impl Record {
    /// A new record of `kind` at `ts`, every other field empty.
    pub fn new(kind: Kind, ts: i64) -> Record {
        Record {
            v: SCHEMA_VERSION,
            kind,
            ts,
            ..Record::default()
        }
    }

    /// The MessagePack encoding (field names included).
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing plain values into a Vec cannot fail.
        let _ = rmp_serde::encode::write_named(out, self);
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }

    pub fn decision(&self) -> Option<DecisionId> {
        self.decision_id.map(|h| DecisionId(h.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `kind` with every field its kind uses.
    fn full(kind: Kind) -> Record {
        let mut r = Record::new(kind, 1_795_012_200_123);
        r.decision_id = Some(H128(u128::MAX - 1));
        r.slot = Some(2);
        r.campaign = Some("cmp-a".into());
        r.creative = Some("cr-a".into());
        r.advertiser = Some("adv".into());
        r.placement = Some("order_confirmation".into());
        r.channel = Some(Channel::InStore);
        r.location = Some("store-042".into());
        r.profile = Some(H128(42));
        r.ids = vec![LoggedId {
            kind: IdKind::LoyaltyId,
            hash: H128(7),
        }];
        r.transaction_id = Some("ORD-1".into());
        r.model = Some(BidModel::Cpc);
        r.price = Some(1_500_000);
        r.cost = Some(1_500_000);
        r.decision_ts = Some(1_795_012_200_000);
        r.order_id = Some("POS-1".into());
        r.conversion_type = Some(ConversionType::Refund);
        r.occurred = Some(1_795_012_100_000);
        r.store_id = Some("store-042".into());
        r.total = Some(9_980_000);
        r.currency = Some("USD".into());
        r.items = vec![LoggedItem {
            sku: Some("SKU-77".into()),
            category: Some("grocery/snacks".into()),
            brand: None,
            price: 4_990_000,
            quantity: 2,
        }];
        r.sku = Some("SKU-77".into());
        r.quantity = Some(1);
        r.action = Some("upsert".into());
        r.document = Some("{\"id\":\"cmp-a\"}".into());
        r.version = Some(3);
        r.changed_by = Some("admin".into());
        r.origin = Some("node-b".into());
        r.reason = Some("bot_user_agent".into());
        r.event = Some(Kind::Impression);
        r
    }

    #[test]
    fn every_kind_round_trips_through_messagepack() {
        for kind in Kind::ALL {
            for r in [Record::new(kind, 1), full(kind)] {
                let mut buf = Vec::new();
                r.encode(&mut buf);
                assert_eq!(Record::decode(&buf).unwrap(), r, "{kind:?}");
            }
        }
    }

    #[test]
    fn readers_ignore_fields_they_do_not_know() {
        // A future version may add fields; today's reader must still read the record.
        #[derive(Serialize)]
        struct Future<'a> {
            v: u8,
            kind: &'a str,
            ts: i64,
            campaign: &'a str,
            something_new: [u32; 3],
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            v: 2,
            kind: "click",
            ts: 5,
            campaign: "c",
            something_new: [1, 2, 3],
        })
        .unwrap();
        let r = Record::decode(&bytes).unwrap();
        assert_eq!(
            (r.v, r.kind, r.campaign.as_deref()),
            (2, Kind::Click, Some("c"))
        );
    }
}
