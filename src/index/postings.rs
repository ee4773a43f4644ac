//! Inverted indexes from targeting values to campaigns.
//!
//! Each campaign is posted under the values of exactly one of its positive targeting
//! lists, the most selective one it has (a SKU before a brand before a category before
//! a country), or under its channels × placements when it has none. A request looks up
//! each of its values in each index, so the work per decision grows with the number of
//! campaigns that share at least one targeted value with the request, not with the
//! number loaded. The candidates are then checked completely (`CompiledCampaign::matches`):
//! the index only has to never miss a campaign that could match.

use super::compiled::CompiledCampaign;
use super::query::Query;
use crate::campaign::Channel;
use std::collections::HashMap;
use xxhash_rust::xxh3::Xxh3Builder;

/// Keys come from validated campaign documents, not from requests, so a fast
/// non-keyed hash is safe here: a request can only look keys up, never insert them.
type Postings = HashMap<Box<str>, Vec<u32>, Xxh3Builder>;

/// The dimensions a campaign can be posted under, most selective first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Sku,
    Store,
    Brand,
    Category,
    Region,
    LoyaltyTier,
    Country,
}

const DIMENSIONS: [Dimension; 7] = [
    Dimension::Sku,
    Dimension::Store,
    Dimension::Brand,
    Dimension::Category,
    Dimension::Region,
    Dimension::LoyaltyTier,
    Dimension::Country,
];

/// The placement key for a campaign that targets every placement.
const ANY_PLACEMENT: &str = "";

#[derive(Default)]
pub struct TargetingIndex {
    by_value: [Postings; 7],
    /// Per channel: placement (or [`ANY_PLACEMENT`]) to campaigns.
    by_placement: [Postings; 3],
}

fn values(c: &CompiledCampaign, d: Dimension) -> &[Box<str>] {
    match d {
        Dimension::Sku => &c.any_skus,
        Dimension::Store => &c.store_ids,
        Dimension::Brand => &c.any_brands,
        Dimension::Category => &c.any_categories,
        Dimension::Region => &c.regions,
        Dimension::LoyaltyTier => &c.loyalty_tiers,
        Dimension::Country => &c.countries,
    }
}

impl TargetingIndex {
    /// Posts campaign `idx`. Inactive campaigns are not posted: they can never match.
    pub fn insert(&mut self, idx: u32, c: &CompiledCampaign) {
        if !c.active {
            return;
        }
        for (d, map) in DIMENSIONS.iter().zip(self.by_value.iter_mut()) {
            let vals = values(c, *d);
            if !vals.is_empty() {
                for v in vals.iter() {
                    map.entry(v.clone()).or_default().push(idx);
                }
                return;
            }
        }
        for ch in Channel::ALL {
            if c.channels & ch.bit() == 0 {
                continue;
            }
            let map = &mut self.by_placement[ch as usize];
            if c.placements.is_empty() {
                map.entry(ANY_PLACEMENT.into()).or_default().push(idx);
            } else {
                for p in c.placements.iter() {
                    map.entry(p.clone()).or_default().push(idx);
                }
            }
        }
    }

    /// Every campaign that could match `q`, sorted and without duplicates.
    pub fn candidates(&self, q: &Query, out: &mut Vec<u32>) {
        out.clear();
        for (d, map) in DIMENSIONS.iter().zip(self.by_value.iter()) {
            if map.is_empty() {
                continue;
            }
            let mut look = |key: &str| {
                if let Some(list) = map.get(key) {
                    out.extend_from_slice(list);
                }
            };
            match d {
                Dimension::Sku => q.skus.iter().for_each(|s| look(s)),
                Dimension::Store => q.store_id.iter().for_each(|s| look(s)),
                Dimension::Brand => q.brands.iter().for_each(|s| look(s)),
                Dimension::Category => q.category_prefixes.iter().for_each(|s| look(s)),
                Dimension::Region => q.region.iter().for_each(|s| look(s)),
                Dimension::LoyaltyTier => q.loyalty_tier.iter().for_each(|s| look(s)),
                Dimension::Country => q.country.iter().for_each(|s| look(s)),
            }
        }
        if let Some(ch) = q.channel {
            let map = &self.by_placement[ch as usize];
            for key in [q.placement.as_str(), ANY_PLACEMENT] {
                if let Some(list) = map.get(key) {
                    out.extend_from_slice(list);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}
