//! The decision path's view of the campaigns: one 64-byte [`Hot`] record per campaign
//! in a contiguous array, with targeting lists as value numbers in one shared array.
//!
//! Why: a request's ~60 candidates are scattered over the whole set, and checking a
//! [`CompiledCampaign`] costs several dependent cache misses each (the campaign, then
//! each boxed list, then each string's bytes), which is what made selection slow down
//! as the set grew. A `Hot` record holds everything checking and ranking read in one
//! cache line, usually including the targeting values themselves (see [`INLINE`]).
//! The compiled campaign stays the source of truth for winners, responses and `explain`.
//!
//! [`HotSet::check`] must agree with [`CompiledCampaign::matches`] on every campaign and
//! request, stage for stage; `index/tests.rs` compares the two.

use super::compiled::{CompiledCampaign, LocalTimes, Stage, ecpm};
use super::intern::{Dictionary, List};
use super::query::NumberedQuery;
use crate::campaign::{Bid, BidModel, CustomerFilter};
use crate::delivery::CampaignLive;
use crate::money::Micros;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// "No such entry" for the optional `u32` fields of [`Hot`].
pub const NONE: u32 = u32::MAX;

/// What checking and ranking read of one campaign, in one cache line.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct Hot {
    /// The flight in epoch ms. An inactive campaign gets an empty window, so one
    /// comparison rejects both (the reference reports both as [`Stage::Flight`]).
    start_ms: i64,
    end_ms: i64,
    /// Micros per thousand impressions (cpm) or per click (cpc), with `bid_model`.
    /// Kept instead of a precomputed eCPM so a learned CTR can replace the prior.
    bid_amount: i64,
    /// xxh3 of the campaign id; tie-breaks mix it with the decision id.
    pub id_hash: u64,
    pub priority: u32,
    /// Index into [`HotSet::orders`], or [`NONE`] without order-value bounds.
    order: u32,
    /// Index into [`HotSet::dayparts`], or [`NONE`] when it runs at every hour.
    daypart: u32,
    /// The targeting lists' values: when `inline` (see [`Hot::is_inline`]), the values
    /// themselves in [`List`] order; otherwise `[offset into HotSet::values, 0, 0]`.
    words: [u32; INLINE],
    /// A bit per non-empty [`List`].
    present: u16,
    /// `words` holds the values themselves.
    inline: bool,
    /// Bit per channel, as in [`CompiledCampaign::channels`].
    channels: u8,
    customer: CustomerFilter,
    bid_model: BidModel,
    require_identity: bool,
}

/// Most campaigns target a few lists of one value each (a country, a category): those
/// fit in the record itself, which saves a second, dependent cache miss per candidate.
const INLINE: usize = 3;

const _: () = assert!(std::mem::size_of::<Hot>() == 64);

impl Hot {
    /// False when no request time can fall in the flight (inactive campaigns get an
    /// empty one): such a campaign need not be indexed.
    pub fn can_serve(&self) -> bool {
        self.start_ms <= self.end_ms
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Ranked by bid × predicted CTR (the learned rate is read per decision).
    pub fn is_cpc(&self) -> bool {
        self.bid_model == BidModel::Cpc
    }

    /// Whether the lists are held in `words`: at most [`INLINE`] lists, one value each.
    fn is_inline(present: u16, single: u16) -> bool {
        present == single && present.count_ones() as usize <= INLINE
    }

    /// The value of one impression in micros per thousand, as
    /// [`CompiledCampaign::ecpm`] computes it.
    pub fn ecpm(&self, ctr: f64) -> i64 {
        let bid = Bid {
            model: self.bid_model,
            amount: Micros(self.bid_amount),
        };
        ecpm(bid, ctr)
    }
}

/// Who a campaign belongs to, for slot separation and placement blocklists: read
/// only for campaigns that passed every check, so kept out of [`Hot`].
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// Numbers in the snapshot's advertiser and separation-category interners.
    pub advertiser: u32,
    /// [`NONE`] when the campaign has no competitive category.
    pub separation: u32,
}

/// Every campaign's [`Hot`] record, by campaign index, and the tables they point into.
#[derive(Default)]
pub struct HotSet {
    hot: Vec<Hot>,
    owners: Vec<Owner>,
    /// Each campaign's live counters, for the learned CTR a cpc candidate is ranked
    /// by: from this dense array it is one dependent load, not three (the campaign
    /// list, the compiled campaign, then its counters) as through the campaign.
    lives: Vec<Arc<CampaignLive>>,
    /// The lists of campaigns that do not hold them inline, from the offset in their
    /// `words`: for each non-empty list in [`List`] order, its length and then its
    /// value numbers. Checking reads them in that order.
    values: Vec<u32>,
    /// Order-value bounds, deduplicated; an open bound is `i64::MIN` / `i64::MAX`.
    orders: Vec<(i64, i64)>,
    /// Daypart masks with their time zone, deduplicated.
    dayparts: Vec<(Tz, [u32; 7])>,
}

/// The targeting list of a compiled campaign that `list` stands for.
fn compiled_list(c: &CompiledCampaign, list: List) -> &[Box<str>] {
    match list {
        List::Placements => &c.placements,
        List::Countries => &c.countries,
        List::Regions => &c.regions,
        List::Stores => &c.store_ids,
        List::AnyCategories => &c.any_categories,
        List::NoneCategories => &c.none_categories,
        List::Skus => &c.any_skus,
        List::Brands => &c.any_brands,
        List::LoyaltyTiers => &c.loyalty_tiers,
    }
}

/// Index of `key` in `table`, adding it if new (`seen` maps keys to indexes).
fn entry_of<K: std::hash::Hash + Eq + Copy>(
    table: &mut Vec<K>,
    seen: &mut HashMap<K, u32>,
    key: K,
) -> u32 {
    *seen.entry(key).or_insert_with(|| {
        table.push(key);
        u32::try_from(table.len() - 1).expect("fewer than 2^32 entries")
    })
}

/// Builds a [`HotSet`] one campaign at a time, so that building a snapshot reads each
/// (cold) compiled campaign once.
#[derive(Default)]
pub struct HotSetBuilder {
    set: HotSet,
    /// Indexes of the deduplicated `orders` and `dayparts` tables.
    orders: HashMap<(i64, i64), u32>,
    dayparts: HashMap<(Tz, [u32; 7]), u32>,
    /// One campaign's lists in the out-of-line encoding, reused across campaigns.
    encoded: Vec<u32>,
}

impl HotSetBuilder {
    /// Records the next campaign, numbering its values in `dict`: for a delta layer,
    /// `dict` is the overlay and a value `base` already numbers keeps its number.
    pub fn push(&mut self, c: &CompiledCampaign, dict: &mut Dictionary, base: Option<&Dictionary>) {
        let (mut present, mut single) = (0, 0);
        self.encoded.clear();
        for list in List::ALL {
            let strings = compiled_list(c, list);
            if strings.is_empty() {
                continue;
            }
            present |= list.bit();
            if strings.len() == 1 {
                single |= list.bit();
            }
            let (interner, under) = (dict.list_mut(list), base.map(|b| b.list(list)));
            self.encoded
                .push(u32::try_from(strings.len()).expect("list length"));
            self.encoded
                .extend(strings.iter().map(|s| interner.intern_over(under, s)));
        }
        let mut words = [0; INLINE];
        let inline = Hot::is_inline(present, single);
        if inline {
            // Every length is 1: keep the values, drop the lengths.
            let values = self.encoded.iter().skip(1).step_by(2);
            for (w, &v) in words.iter_mut().zip(values) {
                *w = v;
            }
        } else {
            words[0] = u32::try_from(self.set.values.len()).expect("fewer than 2^32 values");
            self.set.values.extend_from_slice(&self.encoded);
        }
        let order = if c.order_min.is_some() || c.order_max.is_some() {
            let bounds = (
                c.order_min.map_or(i64::MIN, |m| m.0),
                c.order_max.map_or(i64::MAX, |m| m.0),
            );
            entry_of(&mut self.set.orders, &mut self.orders, bounds)
        } else {
            NONE
        };
        let daypart = match c.dayparts {
            Some(mask) => entry_of(&mut self.set.dayparts, &mut self.dayparts, (c.tz, mask)),
            None => NONE,
        };
        let (start_ms, end_ms) = if c.active {
            (c.start_ms, c.end_ms)
        } else {
            (i64::MAX, i64::MIN)
        };
        self.set.hot.push(Hot {
            start_ms,
            end_ms,
            bid_amount: c.bid.amount.0,
            id_hash: xxh3_64(c.id.as_bytes()),
            priority: c.priority,
            order,
            words,
            daypart,
            present,
            inline,
            channels: c.channels,
            customer: c.customer,
            bid_model: c.bid.model,
            require_identity: c.require_identity,
        });
        let separations = base.map(|b| &b.separations);
        self.set.lives.push(c.live.clone());
        self.set.owners.push(Owner {
            advertiser: (dict.advertisers).intern_over(base.map(|b| &b.advertisers), &c.advertiser),
            separation: (c.separation.as_deref())
                .map_or(NONE, |s| dict.separations.intern_over(separations, s)),
        });
    }

    pub fn finish(self) -> HotSet {
        self.set
    }
}

impl HotSet {
    pub fn len(&self) -> usize {
        self.hot.len()
    }

    pub fn get(&self, idx: u32) -> &Hot {
        &self.hot[idx as usize]
    }

    pub fn owner(&self, idx: u32) -> Owner {
        self.owners[idx as usize]
    }

    pub fn live(&self, idx: u32) -> &CampaignLive {
        &self.lives[idx as usize]
    }

    fn lists<'a>(&'a self, h: &'a Hot) -> Lists<'a> {
        Lists {
            rest: if h.inline {
                &h.words
            } else {
                &self.values[h.words[0] as usize..]
            },
            present: h.present,
            inline: h.inline,
        }
    }

    /// The value numbers of one of campaign `idx`'s lists (empty when it has none).
    pub fn list(&self, idx: u32, list: List) -> &[u32] {
        let mut lists = self.lists(self.get(idx));
        for l in List::ALL {
            let values = lists.next(l);
            if l == list {
                return values;
            }
        }
        &[]
    }

    /// [`CompiledCampaign::matches`] on the numbered request: the same predicates in
    /// the same order, so the same first failing stage.
    #[inline]
    pub fn check(&self, idx: u32, q: &NumberedQuery, clock: &mut LocalTimes) -> Result<(), Stage> {
        let h = self.get(idx);
        if q.now_ms < h.start_ms || q.now_ms > h.end_ms {
            return Err(Stage::Flight);
        }
        match q.channel {
            Some(ch) if h.channels & ch.bit() != 0 => {}
            _ => return Err(Stage::Channel),
        }
        // An empty list matches anything; a non-empty one needs a request value in it.
        // A missing field, or a value no campaign uses (dropped when numbering the
        // request), matches no list, as with strings.
        let mut lists = self.lists(h);
        if !one(lists.next(List::Placements), q.placement) {
            return Err(Stage::Placement);
        }
        if !one(lists.next(List::Countries), q.country) {
            return Err(Stage::Country);
        }
        if !one(lists.next(List::Regions), q.region) {
            return Err(Stage::Region);
        }
        if !one(lists.next(List::Stores), q.store) {
            return Err(Stage::Store);
        }
        if !any(lists.next(List::AnyCategories), &q.categories) {
            return Err(Stage::Categories);
        }
        let excluded = lists.next(List::NoneCategories);
        if shares(excluded, &q.categories) {
            return Err(Stage::ExcludedCategories);
        }
        if !any(lists.next(List::Skus), &q.skus) {
            return Err(Stage::Skus);
        }
        if !any(lists.next(List::Brands), &q.brands) {
            return Err(Stage::Brands);
        }
        if h.order != NONE {
            let (min, max) = self.orders[h.order as usize];
            if !q.order_total.is_some_and(|t| min <= t.0 && t.0 <= max) {
                return Err(Stage::OrderValue);
            }
        }
        if !one(lists.next(List::LoyaltyTiers), q.loyalty_tier) {
            return Err(Stage::LoyaltyTier);
        }
        match (h.customer, q.new_customer) {
            (CustomerFilter::Any, _)
            | (CustomerFilter::New, Some(true))
            | (CustomerFilter::Returning, Some(false)) => {}
            _ => return Err(Stage::Customer),
        }
        if h.daypart != NONE {
            let (tz, mask) = &self.dayparts[h.daypart as usize];
            let (day, hour) = clock.local(*tz, q.now_ms);
            if mask[day as usize] & (1 << hour) == 0 {
                return Err(Stage::Daypart);
            }
        }
        if h.require_identity && !q.identified {
            return Err(Stage::RequireIdentity);
        }
        Ok(())
    }
}

/// Whether a list of one value or none matches `value`.
#[inline(always)]
fn one(list: &[u32], value: Option<u32>) -> bool {
    list.is_empty() || value.is_some_and(|v| shares(list, &[v]))
}

/// Whether a list of any values or none matches one of `values`.
#[inline(always)]
fn any(list: &[u32], values: &[u32]) -> bool {
    list.is_empty() || shares(list, values)
}

/// Whether `a` and `b` have a value in common. Both are short (a campaign's list, a
/// request's values): a plain double loop beats anything cleverer.
#[inline(always)]
fn shares(a: &[u32], b: &[u32]) -> bool {
    for x in a {
        for y in b {
            if x == y {
                return true;
            }
        }
    }
    false
}

/// A cursor over one campaign's lists, which must be asked for in [`List`] order.
struct Lists<'a> {
    rest: &'a [u32],
    present: u16,
    /// Inline lists have one value each and no lengths.
    inline: bool,
}

impl<'a> Lists<'a> {
    /// Inlined, as are the helpers above: called nine times per candidate, the calls
    /// cost more than the comparisons (about a fifth of all instructions).
    #[inline(always)]
    fn next(&mut self, list: List) -> &'a [u32] {
        if self.present & list.bit() == 0 {
            return &[];
        }
        let len = if self.inline {
            1
        } else {
            let (len, rest) = self.rest.split_first().expect("a length per present list");
            self.rest = rest;
            *len as usize
        };
        let (values, rest) = self.rest.split_at(len);
        self.rest = rest;
        values
    }
}
