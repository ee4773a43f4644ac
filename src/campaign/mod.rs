//! Campaigns: the document advertisers write, its validation, and the folder it lives in.
//!
//! A [`Campaign`] is exactly the contract's campaign document, typed. It is what is
//! read from `campaigns/*.json`, uploaded through the API and written to the log; the
//! decision path never reads it directly but a compiled form of it (see `index`).

mod folder;
mod parse;
pub mod store;

pub use folder::{FolderError, LoadedFolder, load_folder};
pub use parse::{parse_campaign, parse_campaign_bytes};

use crate::money::Micros;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an offer is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Online,
    InStore,
    App,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Online, Channel::InStore, Channel::App];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::InStore => "in_store",
            Channel::App => "app",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "online" => Some(Channel::Online),
            "in_store" => Some(Channel::InStore),
            "app" => Some(Channel::App),
            _ => None,
        }
    }

    /// A bit for channel sets.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Paused,
    PendingReview,
    Archived,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "paused" => Some(Status::Paused),
            "pending_review" => Some(Status::PendingReview),
            "archived" => Some(Status::Archived),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    Even,
    Asap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BidModel {
    Cpm,
    Cpc,
}

impl BidModel {
    pub fn as_str(self) -> &'static str {
        match self {
            BidModel::Cpm => "cpm",
            BidModel::Cpc => "cpc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bid {
    pub model: BidModel,
    pub amount: Micros,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Budget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<Micros>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Micros>,
}

impl Budget {
    /// Whether either limit is set (a campaign without one spends without limit).
    pub fn is_limited(&self) -> bool {
        self.daily.is_some() || self.total.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FrequencyCap {
    pub max: u32,
    pub per_seconds: u64,
}

/// Who the offer is for, by purchase history with the retailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerFilter {
    #[default]
    Any,
    New,
    Returning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub fn parse(s: &str) -> Option<Weekday> {
        Some(match s {
            "mon" => Weekday::Mon,
            "tue" => Weekday::Tue,
            "wed" => Weekday::Wed,
            "thu" => Weekday::Thu,
            "fri" => Weekday::Fri,
            "sat" => Weekday::Sat,
            "sun" => Weekday::Sun,
            _ => return None,
        })
    }
}

/// Hours `[from_hour, to_hour)` on the given days, in the campaign's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Daypart {
    pub days: Vec<Weekday>,
    pub from_hour: u8,
    pub to_hour: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BasketTargeting {
    pub any_categories: Vec<String>,
    pub none_categories: Vec<String>,
    pub any_skus: Vec<String>,
    pub any_brands: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrderValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Micros>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Micros>,
}

/// Every targeting predicate. An empty list places no restriction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Targeting {
    pub channels: Vec<Channel>,
    pub placements: Vec<String>,
    pub countries: Vec<String>,
    pub regions: Vec<String>,
    pub store_ids: Vec<String>,
    pub basket: BasketTargeting,
    pub order_value: OrderValue,
    pub loyalty_tiers: Vec<String>,
    pub customer: CustomerFilter,
    pub dayparts: Vec<Daypart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_purchasers_days: Option<u32>,
    pub require_identity: bool,
}

/// What counts as a purchase of the advertised thing, for attribution and suppression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConversionRule {
    pub skus: Vec<String>,
    pub categories: Vec<String>,
    pub brands: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price: Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreativeKind {
    Offer,
    Product,
}

impl CreativeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreativeKind::Offer => "offer",
            CreativeKind::Product => "product",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Creative {
    pub id: String,
    pub kind: CreativeKind,
    pub headline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cta: Option<String>,
    pub click_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
}

/// The default priority; only an admin may set another.
pub const DEFAULT_PRIORITY: u32 = 10;

/// One campaign document, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaign {
    pub id: String,
    pub advertiser: String,
    pub name: String,
    pub status: Status,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub budget: Budget,
    pub pacing: Pacing,
    pub bid: Bid,
    pub priority: u32,
    pub frequency_caps: Vec<FrequencyCap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub competitive_category: Option<String>,
    pub holdout_percent: f64,
    pub targeting: Targeting,
    pub conversion: ConversionRule,
    pub creatives: Vec<Creative>,
}

/// What validation needs to know about the deployment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidationRules {
    /// Accept plain `http://` URLs (for local development only).
    pub allow_http_urls: bool,
}
