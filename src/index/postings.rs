//! Inverted indexes from targeting values to campaigns.
//!
//! Each campaign is posted under the values of exactly one of its positive targeting
//! lists, the most selective one it has (a SKU before a brand before a category before
//! a country), or under its channels × placements when it has none. A request looks up
//! each of its values in each index, so the work per decision grows with the number of
//! campaigns that share at least one targeted value with the request, not with the
//! number loaded. The candidates are then checked completely (`HotSet::check`): the
//! index only has to never miss a campaign that could match.
//!
//! Values are the snapshot's numbers (see [`super::intern`]), so a lookup is an array
//! index rather than a string hash.
//!
//! Each layer of a snapshot (see [`super::delta`]) has its own index: a delta's is
//! sized over the base's numbers and its overlay's, and posts campaign indexes that
//! continue after the base's, so gathering from both layers fills one candidate list.

use super::hot::HotSet;
use super::intern::{Dictionary, List};
use super::query::NumberedQuery;
use crate::campaign::Channel;

/// The lists a campaign can be posted under, most selective first.
const DIMENSIONS: [List; 7] = [
    List::Skus,
    List::Stores,
    List::Brands,
    List::AnyCategories,
    List::Regions,
    List::LoyaltyTiers,
    List::Countries,
];

/// Campaigns per value number, flattened: those posted under value `v` are
/// `campaigns[starts[v]..starts[v + 1]]`, in campaign order.
#[derive(Default)]
struct Postings {
    starts: Vec<u32>,
    campaigns: Vec<u32>,
    /// Some campaign is posted under more than one value, so a request holding
    /// several of them finds it more than once.
    repeats: bool,
}

impl Postings {
    /// From `(value, campaign)` pairs in campaign order, values below `values`.
    fn build(values: usize, pairs: &[(u32, u32)]) -> Postings {
        if pairs.is_empty() {
            // Most of a small delta's dimensions: no table sized over every value.
            return Postings::default();
        }
        let mut starts = vec![0u32; values + 1];
        for &(v, _) in pairs {
            starts[v as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut campaigns = vec![0u32; pairs.len()];
        for &(v, c) in pairs {
            campaigns[next[v as usize] as usize] = c;
            next[v as usize] += 1;
        }
        let repeats = pairs.windows(2).any(|w| w[0].1 == w[1].1);
        Postings {
            starts,
            campaigns,
            repeats,
        }
    }

    fn get(&self, value: u32) -> &[u32] {
        let v = value as usize;
        match (self.starts.get(v), self.starts.get(v + 1)) {
            (Some(&a), Some(&b)) => &self.campaigns[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// `values` without repeats, into `out`: a list may name a value twice, and a campaign
/// is posted once per value.
fn distinct<'a>(values: &[u32], out: &'a mut Vec<u32>) -> &'a [u32] {
    out.clear();
    out.extend_from_slice(values);
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Default)]
pub struct TargetingIndex {
    /// Per entry of [`DIMENSIONS`].
    by_value: [Postings; 7],
    /// Per channel: placement number to campaigns, with one extra number (the
    /// placement count) for campaigns that target every placement.
    by_placement: [Postings; 3],
    /// The extra placement number of [`TargetingIndex::by_placement`].
    any_placement: u32,
}

impl TargetingIndex {
    /// Posts every campaign of `hot` as `first` + its index there. Inactive campaigns
    /// (and any whose flight is empty) are not posted: they can never match. `dict`
    /// numbered the campaigns' values (for a delta, the overlay, whose numbers end where
    /// the extended range does).
    pub fn build(hot: &HotSet, dict: &Dictionary, first: u32) -> Self {
        let mut by_value: [Vec<(u32, u32)>; 7] = Default::default();
        let mut by_placement: [Vec<(u32, u32)>; 3] = Default::default();
        let any_placement = u32::try_from(dict.placements.end()).expect("placement count");
        let mut scratch = Vec::new();
        for local in 0..hot.len() as u32 {
            let h = hot.get(local);
            let idx = first + local;
            if !h.can_serve() {
                continue;
            }
            if let Some(d) = DIMENSIONS
                .iter()
                .position(|&l| !hot.list(local, l).is_empty())
            {
                let values = distinct(hot.list(local, DIMENSIONS[d]), &mut scratch);
                by_value[d].extend(values.iter().map(|&v| (v, idx)));
                continue;
            }
            let placements = distinct(hot.list(local, List::Placements), &mut scratch);
            for ch in Channel::ALL {
                if h.channels() & ch.bit() == 0 {
                    continue;
                }
                let pairs = &mut by_placement[ch as usize];
                if placements.is_empty() {
                    pairs.push((any_placement, idx));
                } else {
                    pairs.extend(placements.iter().map(|&p| (p, idx)));
                }
            }
        }
        let sizes = DIMENSIONS.map(|l| dict.list(l).end());
        TargetingIndex {
            by_value: std::array::from_fn(|d| Postings::build(sizes[d], &by_value[d])),
            by_placement: std::array::from_fn(|ch| {
                Postings::build(any_placement as usize + 1, &by_placement[ch])
            }),
            any_placement,
        }
    }

    /// Appends every campaign that could match `q`, in posting order (not sorted).
    /// Returns whether a campaign may appear more than once: only when it is posted
    /// under several values of one dimension and the request holds more than one of
    /// them.
    pub fn gather(&self, q: &NumberedQuery, out: &mut Vec<u32>) -> bool {
        let mut may_repeat = false;
        for (d, postings) in DIMENSIONS.iter().zip(self.by_value.iter()) {
            if postings.campaigns.is_empty() {
                continue;
            }
            let values: &[u32] = match d {
                List::Skus => &q.skus,
                List::Stores => q.store.as_slice(),
                List::Brands => &q.brands,
                List::AnyCategories => &q.categories,
                List::Regions => q.region.as_slice(),
                List::LoyaltyTiers => q.loyalty_tier.as_slice(),
                List::Countries => q.country.as_slice(),
                _ => &[],
            };
            let mut hits = 0;
            for &v in values {
                let list = postings.get(v);
                hits += usize::from(!list.is_empty());
                out.extend_from_slice(list);
            }
            may_repeat |= postings.repeats && hits > 1;
        }
        if let Some(ch) = q.channel {
            // A campaign is posted under its placements or under "any", never both, and
            // the request names one placement: these lists never repeat a campaign.
            let postings = &self.by_placement[ch as usize];
            // A placement numbered by a delta's overlay can equal this (base) index's
            // "any" number: it is no placement of this layer's campaigns.
            if let Some(p) = q.placement.filter(|&p| p < self.any_placement) {
                out.extend_from_slice(postings.get(p));
            }
            out.extend_from_slice(postings.get(self.any_placement));
        }
        may_repeat
    }
}
