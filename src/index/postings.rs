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

/// The posting tables of a [`TargetingIndex`], numbered: the [`DIMENSIONS`] first,
/// then one per channel (placements).
const TABLES: usize = DIMENSIONS.len() + 3;

/// Calls `post(table, value)` for every posting of campaign `idx` of `hot`: under each
/// value of its most selective list, or else under its placements (or "any") in each
/// of its channels. Inactive campaigns (and any whose flight is empty) are not posted:
/// they can never match.
fn postings_of(
    hot: &HotSet,
    idx: u32,
    any_placement: u32,
    scratch: &mut Vec<u32>,
    mut post: impl FnMut(usize, u32),
) {
    let h = hot.get(idx);
    if !h.can_serve() {
        return;
    }
    if let Some(d) = DIMENSIONS
        .iter()
        .position(|&l| !hot.list(idx, l).is_empty())
    {
        for &v in distinct(hot.list(idx, DIMENSIONS[d]), scratch) {
            post(d, v);
        }
        return;
    }
    let placements = distinct(hot.list(idx, List::Placements), scratch);
    for ch in Channel::ALL {
        if h.channels() & ch.bit() == 0 {
            continue;
        }
        let table = DIMENSIONS.len() + ch as usize;
        if placements.is_empty() {
            post(table, any_placement);
        }
        for &p in placements.iter() {
            post(table, p);
        }
    }
}

/// A growable bit set over `u32`s.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    #[inline]
    fn contains(&self, n: u32) -> bool {
        let word = self.0.get(n as usize / 64).copied().unwrap_or(0);
        word & (1 << (n % 64)) != 0
    }

    /// Whether `n` was not in the set.
    fn insert(&mut self, n: u32) -> bool {
        let w = n as usize / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let bit = 1 << (n % 64);
        let new = self.0[w] & bit == 0;
        self.0[w] |= bit;
        new
    }
}

/// Base campaigns that are no longer live (replaced or removed), and the posting lists
/// that hold any of them.
///
/// Gathering must leave dead campaigns out. Testing every candidate would cost a bit
/// test for each of the ~70 a request gathers; testing each list the request looks up
/// costs one per request value, and only the few lists that hold a dead campaign are
/// then filtered.
#[derive(Clone, Default)]
pub struct Dead {
    campaigns: Bits,
    count: usize,
    /// Per table (see [`TABLES`]): the values whose lists hold a dead campaign.
    lists: [Bits; TABLES],
}

impl Dead {
    #[inline]
    pub fn contains(&self, idx: u32) -> bool {
        self.campaigns.contains(idx)
    }

    /// Marks campaign `idx` of the base `hot`, indexed by `index`, dead.
    pub fn insert(&mut self, idx: u32, index: &TargetingIndex, hot: &HotSet) {
        if !self.campaigns.insert(idx) {
            return;
        }
        self.count += 1;
        let lists = &mut self.lists;
        postings_of(hot, idx, index.any_placement, &mut Vec::new(), |t, v| {
            lists[t].insert(v);
        });
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends `list` (of `table`'s `value`) to `out`, less the dead campaigns.
    #[inline]
    fn extend(&self, table: usize, value: u32, list: &[u32], out: &mut Vec<u32>) {
        if self.lists[table].contains(value) {
            out.extend(list.iter().filter(|&&i| !self.contains(i)));
        } else {
            out.extend_from_slice(list);
        }
    }
}

impl TargetingIndex {
    /// Posts every campaign of `hot` as `first` + its index there. `dict` numbered the
    /// campaigns' values (for a delta, the overlay, whose numbers end where the
    /// extended range does).
    pub fn build(hot: &HotSet, dict: &Dictionary, first: u32) -> Self {
        let mut pairs: [Vec<(u32, u32)>; TABLES] = Default::default();
        let any_placement = u32::try_from(dict.placements.end()).expect("placement count");
        let mut scratch = Vec::new();
        for local in 0..hot.len() as u32 {
            postings_of(hot, local, any_placement, &mut scratch, |t, v| {
                pairs[t].push((v, first + local));
            });
        }
        let sizes = DIMENSIONS.map(|l| dict.list(l).end());
        let placements = &pairs[DIMENSIONS.len()..];
        TargetingIndex {
            by_value: std::array::from_fn(|d| Postings::build(sizes[d], &pairs[d])),
            by_placement: std::array::from_fn(|ch| {
                Postings::build(any_placement as usize + 1, &placements[ch])
            }),
            any_placement,
        }
    }

    /// Appends every campaign that could match `q`, in posting order (not sorted),
    /// leaving out the `dead` ones. Returns whether a campaign may appear more than
    /// once: only when it is posted under several values of one dimension and the
    /// request holds more than one of them.
    pub fn gather(&self, q: &NumberedQuery, out: &mut Vec<u32>, dead: Option<&Dead>) -> bool {
        // Most lists a request looks up are empty, in a delta most of all: skipping
        // them skips the dead-list test and a call into `Vec`'s extension.
        let extend = |table, value, list: &[u32], out: &mut Vec<u32>| match dead {
            _ if list.is_empty() => {}
            Some(dead) => dead.extend(table, value, list, out),
            None => out.extend_from_slice(list),
        };
        let mut may_repeat = false;
        for (d, (dim, postings)) in DIMENSIONS.iter().zip(self.by_value.iter()).enumerate() {
            if postings.campaigns.is_empty() {
                continue;
            }
            let values: &[u32] = match dim {
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
                extend(d, v, list, out);
            }
            may_repeat |= postings.repeats && hits > 1;
        }
        if let Some(ch) = q.channel {
            // A campaign is posted under its placements or under "any", never both, and
            // the request names one placement: these lists never repeat a campaign.
            let table = DIMENSIONS.len() + ch as usize;
            let postings = &self.by_placement[ch as usize];
            // A placement numbered by a delta's overlay can equal this (base) index's
            // "any" number: it is no placement of this layer's campaigns.
            if let Some(p) = q.placement.filter(|&p| p < self.any_placement) {
                extend(table, p, postings.get(p), out);
            }
            let any = self.any_placement;
            extend(table, any, postings.get(any), out);
        }
        may_repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_grow_as_needed_and_count_each_member_once() {
        let mut b = Bits::default();
        assert!(!b.contains(5) && !b.contains(1_000_000));
        assert!(b.insert(5));
        assert!(!b.insert(5));
        assert!(b.insert(200));
        assert!(b.contains(5) && b.contains(200) && !b.contains(6) && !b.contains(10_000));
    }
}
