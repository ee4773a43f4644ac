//! The report as data: what `aftercart report --format json` prints and what
//! `GET /v1/campaigns/{id}/report` answers (one [`CampaignRow`]).
//!
//! Field names are stable: new fields may be added, none renamed or removed without a
//! new `report_version`. Money is in major units of the deployment currency, times are
//! RFC 3339, rates are fractions (0.025 is 2.5%). A ratio whose denominator is zero (ROAS
//! without spend, CTR without impressions) is `null`, never infinity.

use super::stats::Interval;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of this layout.
pub const REPORT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub report_version: u32,
    pub period: Period,
    pub log: LogSummary,
    /// The currency conversions were logged in (the deployment's), when any were.
    pub currency: Option<String>,
    /// One row per campaign, by campaign id; only the selected one with `--campaign`.
    pub campaigns: Vec<CampaignRow>,
    /// The campaign rows added up.
    pub totals: Totals,
    /// Figures about the whole log, whatever campaign is selected.
    pub overall: Overall,
    /// Delivery per placement and channel (whole log), by placement then channel.
    pub placements: Vec<PlacementRow>,
}

impl Report {
    /// The row of one campaign.
    pub fn campaign(&self, id: &str) -> Option<&CampaignRow> {
        self.campaigns.iter().find(|c| c.campaign_id == id)
    }
}

/// What the report covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// Inclusive start, if one was given.
    pub from: Option<String>,
    /// Exclusive end, if one was given.
    pub to: Option<String>,
    pub click_window_secs: u64,
    pub view_window_secs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogSummary {
    /// Records read (the whole log up to `end_offset`).
    pub records: u64,
    /// Records per kind.
    pub kinds: BTreeMap<String, u64>,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    /// The offset the report read up to; a later report reads more when the log grew.
    pub end_offset: u64,
}

/// Attributed revenue by the channel the purchase was made in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Revenue {
    pub online: f64,
    pub app: f64,
    pub in_store: f64,
    pub total: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignRow {
    pub campaign_id: String,
    /// From the campaign's last logged document (absent if none is in the log).
    pub name: Option<String>,
    pub advertiser_id: Option<String>,
    /// The campaign's last change in the log was a delete.
    pub deleted: bool,
    /// Offers served (`decision` records).
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    /// clicks ÷ impressions.
    pub ctr: Option<f64>,
    /// What impressions and clicks charged.
    pub spend: f64,
    /// Orders with at least one item attributed to the campaign (in-unit purchases
    /// included), less those refunded completely.
    pub conversions: u64,
    /// Conversions made in a different channel from the exposure credited.
    pub cross_channel_conversions: u64,
    /// cross_channel_conversions ÷ conversions.
    pub cross_channel_rate: Option<f64>,
    /// Attributed revenue net of refunds, by the channel of the purchase.
    pub revenue: Revenue,
    /// revenue.total ÷ spend: connected commerce, every channel.
    pub roas: Option<f64>,
    /// revenue.online ÷ spend: what a stack that sees only online orders reports.
    pub roas_online_only: Option<f64>,
    /// The holdout comparison, for a campaign with a holdout.
    pub holdout: Option<Holdout>,
}

/// Exposed group against control group (see the README's "Measurement").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// The campaign's `holdout_percent` (its last logged value).
    pub holdout_percent: f64,
    pub exposed: Group,
    pub control: Group,
    /// exposed rate − control rate (Newcombe).
    pub conversion_rate_difference: Option<Interval>,
    /// exposed rate ÷ control rate − 1 (Katz log).
    pub lift: Option<Interval>,
    /// exposed profiles × rate difference.
    pub incremental_conversions: Option<Interval>,
    /// exposed profiles × difference in revenue per profile (Welch).
    pub incremental_revenue: Option<Interval>,
    /// incremental revenue ÷ the exposed group's spend.
    pub incremental_roas: Option<Interval>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Profiles first assigned to the group in the period.
    pub profiles: u64,
    /// Those that bought an item matching the campaign's rule after their assignment.
    pub converted: u64,
    pub conversion_rate: Option<f64>,
    /// What they spent on matching items after their assignment, net of refunds.
    pub revenue: f64,
    pub revenue_per_profile: Option<f64>,
    /// What the campaign's impressions and clicks to them charged (0 for control).
    pub spend: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub campaigns: u64,
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub ctr: Option<f64>,
    pub spend: f64,
    pub conversions: u64,
    pub cross_channel_conversions: u64,
    pub cross_channel_rate: Option<f64>,
    pub revenue: Revenue,
    pub roas: Option<f64>,
    pub roas_online_only: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    /// Purchases in the period: `conversion` records of type purchase and in-unit
    /// purchases.
    pub purchases: u64,
    /// Those whose buyer resolved to a known profile: one that also has decisions.
    pub resolved_purchases: u64,
    /// resolved_purchases ÷ purchases.
    pub identity_resolution_rate: Option<f64>,
    /// Purchases with at least one attributed item (an order attributed to two
    /// campaigns counts once here, and once in each campaign's row).
    pub attributed_orders: u64,
    /// Over all campaigns: cross-channel conversions ÷ conversions.
    pub cross_channel_rate: Option<f64>,
    pub refunds: u64,
    /// Profiles with decisions (after resolution across channels).
    pub profiles: u64,
    /// Identifiers in the identity graph rebuilt from the log.
    pub identifiers: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacementRow {
    pub placement: String,
    pub channel: String,
    /// Decisions asked for (with or without an offer).
    pub requests: u64,
    /// Requests that got at least one offer.
    pub filled: u64,
    /// filled ÷ requests.
    pub fill_rate: Option<f64>,
    /// Offers served.
    pub offers: u64,
    pub impressions: u64,
    pub clicks: u64,
    /// What the placement earned: the spend its impressions and clicks charged.
    pub revenue: f64,
}

/// `a ÷ b`, `None` when `b` is zero.
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}

/// Micros as major units.
pub(crate) fn major(micros: i64) -> f64 {
    micros as f64 / 1e6
}
