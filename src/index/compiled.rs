//! A campaign compiled for the decision path: targeting as compact sets and bit masks,
//! checked against a [`Query`] without allocating.

use super::query::Query;
use crate::campaign::{
    Bid, BidModel, Campaign, Channel, Creative, CreativeKind, CustomerFilter, Status, Weekday,
};
use crate::delivery::CampaignLive;
use crate::money::Micros;
use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use std::sync::Arc;

/// The stage of selection that removed a campaign; `explain` reports these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Flight,
    Channel,
    Placement,
    Country,
    Region,
    Store,
    Categories,
    ExcludedCategories,
    Skus,
    Brands,
    OrderValue,
    LoyaltyTier,
    Customer,
    Daypart,
    RequireIdentity,
    PlacementFloor,
    PlacementBlocked,
    Stock,
    Separation,
    FrequencyCap,
    Suppressed,
    Budget,
    Pacing,
    Holdout,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Flight => "flight",
            Stage::Channel => "channel",
            Stage::Placement => "placement",
            Stage::Country => "country",
            Stage::Region => "region",
            Stage::Store => "store",
            Stage::Categories => "basket.any_categories",
            Stage::ExcludedCategories => "basket.none_categories",
            Stage::Skus => "basket.any_skus",
            Stage::Brands => "basket.any_brands",
            Stage::OrderValue => "order_value",
            Stage::LoyaltyTier => "loyalty_tier",
            Stage::Customer => "customer",
            Stage::Daypart => "daypart",
            Stage::RequireIdentity => "require_identity",
            Stage::PlacementFloor => "placement_floor",
            Stage::PlacementBlocked => "placement_blocklist",
            Stage::Stock => "stock",
            Stage::Separation => "separation",
            Stage::FrequencyCap => "frequency_caps",
            Stage::Suppressed => "exclude_purchasers",
            Stage::Budget => "budget",
            Stage::Pacing => "pacing",
            Stage::Holdout => "holdout",
        }
    }
}

/// The expected-CTR prior for cpc campaigns until clicks are learned.
pub const PRIOR_CTR: f64 = 0.01;

/// The value of one impression of a `bid` in micros per thousand, given the predicted
/// click-through rate (used by cpc bids only).
pub fn ecpm(bid: Bid, ctr: f64) -> i64 {
    match bid.model {
        BidModel::Cpm => bid.amount.0,
        BidModel::Cpc => (bid.amount.0 as f64 * ctr * 1000.0) as i64,
    }
}

/// A creative with what an offer needs, ready to copy into a response.
#[derive(Debug)]
pub struct CompiledCreative {
    pub id: Arc<str>,
    pub kind: CreativeKind,
    pub doc: Creative,
    /// The offer's fixed members as JSON, rendered once here rather than escaped
    /// again for every response: `"campaign_id":…,"creative_id":…,"advertiser_id":…,
    /// "kind":…,"headline":…` and `body`, `image_url`, `cta` when present (see
    /// [`crate::decision::response`]).
    pub json_members: Box<str>,
}

#[derive(Debug)]
pub struct CompiledCampaign {
    pub id: Arc<str>,
    pub advertiser: Arc<str>,
    /// The competitive category used for slot separation (lower-case), if any.
    pub separation: Option<Arc<str>>,
    pub priority: u32,
    pub bid: Bid,
    pub active: bool,
    pub start_ms: i64,
    pub end_ms: i64,
    pub tz: Tz,
    /// Bit per [`Channel`]; all bits when the campaign names no channel.
    pub channels: u8,
    pub placements: Box<[Box<str>]>,
    pub countries: Box<[Box<str>]>,
    pub regions: Box<[Box<str>]>,
    pub store_ids: Box<[Box<str>]>,
    pub any_categories: Box<[Box<str>]>,
    pub none_categories: Box<[Box<str>]>,
    pub any_skus: Box<[Box<str>]>,
    pub any_brands: Box<[Box<str>]>,
    pub order_min: Option<Micros>,
    pub order_max: Option<Micros>,
    pub loyalty_tiers: Box<[Box<str>]>,
    pub customer: CustomerFilter,
    /// Hours allowed per weekday (Monday first), bit `h` for `[h, h+1)`; `None` = always.
    pub dayparts: Option<[u32; 7]>,
    pub require_identity: bool,
    pub creatives: Box<[CompiledCreative]>,
    /// The document as validated, for the API and the log.
    pub doc: Arc<Campaign>,
    /// xxh3 of the id: per-profile memory and tie-breaks key campaigns by it.
    pub id_hash: u64,
    /// Live counters (offers, impressions, clicks, reservations), shared with every
    /// other compiled version of this campaign; see [`crate::delivery`].
    pub live: Arc<CampaignLive>,
    /// The `conversion` rule as item keys, for purchase suppression.
    pub conversion_keys: Box<[u64]>,
    /// The longest frequency-cap window (ms): how long served offers are remembered.
    pub cap_window_ms: i64,
}

fn boxed(list: &[String]) -> Box<[Box<str>]> {
    list.iter().map(|s| s.as_str().into()).collect()
}

fn contains(list: &[Box<str>], value: &str) -> bool {
    list.iter().any(|s| &**s == value)
}

impl CompiledCampaign {
    /// Compiles a validated document. `default_tz` applies when it names none;
    /// `advertiser_category` is the advertiser's competitive category, if known.
    pub fn compile(
        doc: Arc<Campaign>,
        default_tz: Tz,
        advertiser_category: Option<&str>,
    ) -> CompiledCampaign {
        let t = &doc.targeting;
        let channels = if t.channels.is_empty() {
            Channel::ALL.iter().fold(0, |m, c| m | c.bit())
        } else {
            t.channels.iter().fold(0, |m, c| m | c.bit())
        };
        let dayparts = (!t.dayparts.is_empty()).then(|| {
            let mut mask = [0u32; 7];
            for d in &t.dayparts {
                let hours = (d.from_hour..d.to_hour).fold(0u32, |m, h| m | (1 << h));
                for day in &d.days {
                    mask[*day as usize] |= hours;
                }
            }
            mask
        });
        let tz = doc
            .timezone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(default_tz);
        let separation = doc
            .competitive_category
            .as_deref()
            .or(advertiser_category)
            .map(|c| Arc::from(c.to_lowercase()));
        CompiledCampaign {
            id: doc.id.as_str().into(),
            advertiser: doc.advertiser.as_str().into(),
            separation,
            priority: doc.priority,
            bid: doc.bid,
            active: doc.status == Status::Active,
            start_ms: doc.start.timestamp_millis(),
            end_ms: doc.end.timestamp_millis(),
            tz,
            channels,
            placements: boxed(&t.placements),
            countries: boxed(&t.countries),
            regions: boxed(&t.regions),
            store_ids: boxed(&t.store_ids),
            any_categories: boxed(&t.basket.any_categories),
            none_categories: boxed(&t.basket.none_categories),
            any_skus: boxed(&t.basket.any_skus),
            any_brands: boxed(&t.basket.any_brands),
            order_min: t.order_value.min,
            order_max: t.order_value.max,
            loyalty_tiers: boxed(&t.loyalty_tiers),
            customer: t.customer,
            dayparts,
            require_identity: t.require_identity,
            creatives: doc
                .creatives
                .iter()
                .map(|c| CompiledCreative {
                    id: c.id.as_str().into(),
                    kind: c.kind,
                    json_members: crate::decision::response::json_members(
                        &doc.id,
                        &doc.advertiser,
                        c,
                    ),
                    doc: c.clone(),
                })
                .collect(),
            id_hash: xxhash_rust::xxh3::xxh3_64(doc.id.as_bytes()),
            live: Arc::default(),
            conversion_keys: crate::delivery::profiles::rule_keys(&doc.conversion).into(),
            cap_window_ms: (doc.frequency_caps.iter())
                .map(|c| c.per_seconds as i64 * 1000)
                .max()
                .unwrap_or(0),
            doc,
        }
    }

    /// Shares `live` counters with the other versions of this campaign (the registry's
    /// entry for its id), so replacing the campaign keeps them.
    pub fn with_live(mut self, live: Arc<CampaignLive>) -> CompiledCampaign {
        self.live = live;
        self
    }

    /// The value of one impression of this campaign in micros per thousand, given the
    /// predicted click-through rate (used by cpc campaigns only).
    pub fn ecpm(&self, ctr: f64) -> i64 {
        ecpm(self.bid, ctr)
    }

    /// What the winner pays per billable event (first price): an impression for cpm
    /// (the bid is per thousand), a click for cpc.
    pub fn price(&self) -> Micros {
        match self.bid.model {
            BidModel::Cpm => Micros(self.bid.amount.0 / 1000),
            BidModel::Cpc => self.bid.amount,
        }
    }

    /// Checks every targeting predicate that depends only on the request, in order of
    /// cost; the first failing stage is returned for `explain`.
    pub fn matches(&self, q: &Query, clock: &mut LocalTimes) -> Result<(), Stage> {
        if !self.active || q.now_ms < self.start_ms || q.now_ms > self.end_ms {
            return Err(Stage::Flight);
        }
        match q.channel {
            Some(ch) if self.channels & ch.bit() != 0 => {}
            _ => return Err(Stage::Channel),
        }
        if !self.placements.is_empty() && !contains(&self.placements, &q.placement) {
            return Err(Stage::Placement);
        }
        // A predicate on a field the request lacks does not match.
        if !self.countries.is_empty()
            && !q
                .country
                .as_deref()
                .is_some_and(|c| contains(&self.countries, c))
        {
            return Err(Stage::Country);
        }
        if !self.regions.is_empty()
            && !q
                .region
                .as_deref()
                .is_some_and(|r| contains(&self.regions, r))
        {
            return Err(Stage::Region);
        }
        if !self.store_ids.is_empty()
            && !q
                .store_id
                .as_deref()
                .is_some_and(|s| contains(&self.store_ids, s))
        {
            return Err(Stage::Store);
        }
        if !self.any_categories.is_empty() && !self.any_categories.iter().any(|c| q.has_category(c))
        {
            return Err(Stage::Categories);
        }
        if self.none_categories.iter().any(|c| q.has_category(c)) {
            return Err(Stage::ExcludedCategories);
        }
        if !self.any_skus.is_empty() && !q.skus.iter().any(|s| contains(&self.any_skus, s)) {
            return Err(Stage::Skus);
        }
        if !self.any_brands.is_empty() && !q.brands.iter().any(|b| contains(&self.any_brands, b)) {
            return Err(Stage::Brands);
        }
        if self.order_min.is_some() || self.order_max.is_some() {
            let Some(total) = q.order_total else {
                return Err(Stage::OrderValue);
            };
            if self.order_min.is_some_and(|m| total < m)
                || self.order_max.is_some_and(|m| total > m)
            {
                return Err(Stage::OrderValue);
            }
        }
        if !self.loyalty_tiers.is_empty()
            && !q
                .loyalty_tier
                .as_deref()
                .is_some_and(|t| contains(&self.loyalty_tiers, t))
        {
            return Err(Stage::LoyaltyTier);
        }
        match (self.customer, q.new_customer) {
            (CustomerFilter::Any, _)
            | (CustomerFilter::New, Some(true))
            | (CustomerFilter::Returning, Some(false)) => {}
            _ => return Err(Stage::Customer),
        }
        if let Some(mask) = &self.dayparts {
            let (day, hour) = clock.local(self.tz, q.now_ms);
            if mask[day as usize] & (1 << hour) == 0 {
                return Err(Stage::Daypart);
            }
        }
        if self.require_identity && !q.identified {
            return Err(Stage::RequireIdentity);
        }
        Ok(())
    }
}

/// Local weekday and hour per time zone, computed once per request and zone: most
/// campaigns share a handful of zones, and the conversion is the costly part.
#[derive(Default)]
pub struct LocalTimes(Vec<(Tz, Weekday, u32)>);

impl LocalTimes {
    /// Forgets every zone, for the next request (keeping the allocation).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn local(&mut self, tz: Tz, now_ms: i64) -> (Weekday, u32) {
        if let Some((_, d, h)) = self.0.iter().find(|(z, _, _)| *z == tz) {
            return (*d, *h);
        }
        let t = tz
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_else(|| tz.from_utc_datetime(&chrono::DateTime::UNIX_EPOCH.naive_utc()));
        let day = match t.weekday() {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        };
        let entry = (tz, day, t.hour());
        self.0.push(entry);
        (entry.1, entry.2)
    }
}
