//! Counters per campaign and per placement, and the report rows built from them.

use super::FastMap;
use super::model::{CampaignRow, Group, Holdout, PlacementRow, Revenue, Totals, major, ratio};
use super::stats::{self, Moments};
use super::wire::text;
use crate::campaign::{Channel, ConversionRule};
use crate::delivery::profiles::rule_keys;
use serde_json::Value;

/// A campaign as the log describes it, with its counters. Money in micros.
#[derive(Debug, Default)]
pub struct Campaign {
    pub id: Box<str>,
    pub name: Option<String>,
    pub advertiser: Option<String>,
    pub deleted: bool,
    /// Item keys of the `conversion` rule (see `delivery::profiles::rule_keys`).
    pub rule: Vec<u64>,
    pub holdout_percent: f64,
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub spend: i64,
    pub conversions: u64,
    pub cross_channel: u64,
    /// By `Channel as usize`.
    pub revenue: [i64; 3],
    /// Holdout: spend on the exposed group, control records seen.
    pub exposed_spend: i64,
    pub controls: u64,
    /// Holdout groups, summed at the end: (profiles, converted, revenue per profile).
    pub exposed: (u64, Moments),
    pub control: (u64, Moments),
}

impl Campaign {
    /// Whether the campaign's holdout groups are followed.
    pub fn has_holdout(&self) -> bool {
        self.holdout_percent > 0.0 || self.controls > 0
    }

    pub fn matches(&self, item_keys: &[u64]) -> bool {
        !self.rule.is_empty() && item_keys.iter().any(|k| self.rule.contains(k))
    }

    /// Applies a `campaign` record: the document's name, advertiser, rule and holdout.
    /// A delete keeps the last rule (purchases after it may still be credited to its
    /// exposures).
    pub fn apply_change(
        &mut self,
        action: Option<&[u8]>,
        document: Option<&[u8]>,
        advertiser: Option<&[u8]>,
    ) {
        if let Some(a) = advertiser {
            self.advertiser = Some(text(a).into_owned());
        }
        if action == Some(b"delete") {
            self.deleted = true;
            return;
        }
        self.deleted = false;
        let Some(doc) = document.and_then(|d| serde_json::from_slice::<Value>(d).ok()) else {
            return;
        };
        if let Some(n) = doc["name"].as_str() {
            self.name = Some(n.to_string());
        }
        if let Some(a) = doc["advertiser"].as_str() {
            self.advertiser = Some(a.to_string());
        }
        self.holdout_percent = doc["holdout_percent"].as_f64().unwrap_or(0.0);
        let list = |key: &str| -> Vec<String> {
            doc["conversion"][key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let rule = ConversionRule {
            skus: list("skus"),
            categories: list("categories"),
            brands: list("brands"),
        };
        self.rule = rule_keys(&rule);
    }

    pub fn row(&self) -> CampaignRow {
        let spend = major(self.spend);
        let revenue = revenue(&self.revenue);
        CampaignRow {
            campaign_id: self.id.to_string(),
            name: self.name.clone(),
            advertiser_id: self.advertiser.clone(),
            deleted: self.deleted,
            decisions: self.decisions,
            impressions: self.impressions,
            clicks: self.clicks,
            ctr: ratio(self.clicks as f64, self.impressions as f64),
            spend,
            conversions: self.conversions,
            cross_channel_conversions: self.cross_channel,
            cross_channel_rate: ratio(self.cross_channel as f64, self.conversions as f64),
            revenue,
            roas: ratio(revenue.total, spend),
            roas_online_only: ratio(revenue.online, spend),
            holdout: self.has_holdout().then(|| self.holdout()),
        }
    }

    fn holdout(&self) -> Holdout {
        let group = |(converted, m): &(u64, Moments), spend: i64| Group {
            profiles: m.n,
            converted: *converted,
            conversion_rate: ratio(*converted as f64, m.n as f64),
            revenue: m.sum,
            revenue_per_profile: m.mean(),
            spend: major(spend),
        };
        let exposed = group(&self.exposed, self.exposed_spend);
        let control = group(&self.control, 0);
        let (x1, n1, x2, n2) = (
            exposed.converted,
            exposed.profiles,
            control.converted,
            control.profiles,
        );
        let difference = stats::rate_difference(x1, n1, x2, n2);
        let revenue =
            stats::mean_difference(&self.exposed.1, &self.control.1).map(|d| d.scaled(n1 as f64));
        let spend = major(self.exposed_spend);
        Holdout {
            holdout_percent: self.holdout_percent,
            exposed,
            control,
            conversion_rate_difference: difference,
            lift: stats::lift(x1, n1, x2, n2),
            incremental_conversions: difference.map(|d| d.scaled(n1 as f64)),
            incremental_revenue: revenue,
            incremental_roas: revenue
                .filter(|_| spend > 0.0)
                .map(|r| r.scaled(1.0 / spend)),
        }
    }
}

pub fn revenue(by_channel: &[i64; 3]) -> Revenue {
    let at = |c: Channel| major(by_channel[c as usize]);
    Revenue {
        online: at(Channel::Online),
        app: at(Channel::App),
        in_store: at(Channel::InStore),
        total: major(by_channel.iter().sum()),
    }
}

pub fn totals(rows: &[CampaignRow]) -> Totals {
    let mut t = Totals {
        campaigns: rows.len() as u64,
        ..Totals::default()
    };
    let mut by_channel = [0i64; 3];
    let mut spend = 0i64;
    for r in rows {
        t.decisions += r.decisions;
        t.impressions += r.impressions;
        t.clicks += r.clicks;
        t.conversions += r.conversions;
        t.cross_channel_conversions += r.cross_channel_conversions;
        // Summed in micros so that totals do not drift with the number of rows.
        spend += (r.spend * 1e6).round() as i64;
        by_channel[Channel::Online as usize] += (r.revenue.online * 1e6).round() as i64;
        by_channel[Channel::App as usize] += (r.revenue.app * 1e6).round() as i64;
        by_channel[Channel::InStore as usize] += (r.revenue.in_store * 1e6).round() as i64;
    }
    t.spend = major(spend);
    t.revenue = revenue(&by_channel);
    t.ctr = ratio(t.clicks as f64, t.impressions as f64);
    t.cross_channel_rate = ratio(t.cross_channel_conversions as f64, t.conversions as f64);
    t.roas = ratio(t.revenue.total, t.spend);
    t.roas_online_only = ratio(t.revenue.online, t.spend);
    t
}

/// Campaigns by id, numbered in order of appearance.
#[derive(Default)]
pub struct Campaigns {
    pub list: Vec<Campaign>,
    index: FastMap<Box<[u8]>, u32>,
}

impl Campaigns {
    /// The number of campaign `id`, added if new.
    pub fn intern(&mut self, id: &[u8]) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(Campaign {
            id: text(id).into(),
            ..Campaign::default()
        });
        self.index.insert(id.into(), i);
        i
    }

    pub fn get(&mut self, i: u32) -> &mut Campaign {
        &mut self.list[i as usize]
    }
}

/// Delivery per placement and channel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placement {
    pub requests: u64,
    pub filled: u64,
    pub offers: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub spend: i64,
}

/// Placements are few (a handful per deployment): a list searched from the one used
/// last is quicker than hashing the name on every record.
#[derive(Default)]
pub struct Placements {
    list: Vec<(Box<[u8]>, [Placement; 3])>,
    last: usize,
}

impl Placements {
    pub fn at(&mut self, placement: &[u8], channel: Channel) -> &mut Placement {
        let i = match self.list.get(self.last) {
            Some((name, _)) if **name == *placement => self.last,
            _ => match self.list.iter().position(|(name, _)| **name == *placement) {
                Some(i) => i,
                None => {
                    self.list
                        .push((placement.into(), [Placement::default(); 3]));
                    self.list.len() - 1
                }
            },
        };
        self.last = i;
        &mut self.list[i].1[channel as usize]
    }

    pub fn rows(&self) -> Vec<PlacementRow> {
        let mut rows = Vec::new();
        for (name, by_channel) in &self.list {
            for channel in Channel::ALL {
                let p = by_channel[channel as usize];
                if p.requests + p.offers + p.impressions + p.clicks == 0 {
                    continue;
                }
                rows.push(PlacementRow {
                    placement: text(name).into_owned(),
                    channel: channel.as_str().to_string(),
                    requests: p.requests,
                    filled: p.filled,
                    fill_rate: ratio(p.filled as f64, p.requests as f64),
                    offers: p.offers,
                    impressions: p.impressions,
                    clicks: p.clicks,
                    revenue: major(p.spend),
                });
            }
        }
        rows.sort_by(|a, b| (&a.placement, &a.channel).cmp(&(&b.placement, &b.channel)));
        rows
    }
}
