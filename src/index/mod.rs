//! Targeting indexes over the campaign set, published as one immutable snapshot.
//!
//! The decision path loads the current [`Snapshot`] with a single `ArcSwap::load` and
//! never takes a lock; a campaign change builds a new snapshot and swaps it in. Live
//! counters (spend, caps, stock) are kept outside the snapshot, keyed by campaign id,
//! so a swap never resets them.
//!
//! Inside a snapshot, for the decision path:
//!
//! - `intern`: every targeted string gets a number; a request is numbered once
//!   ([`NumberedQuery`]) and everything after compares integers.
//! - `hot`: one 64-byte record per campaign with what checking and ranking read.
//! - `postings`: value number → campaigns, to find the candidates.
//!
//! [`CompiledCampaign::matches`] stays the readable reference the records are tested
//! against (`tests.rs`).

mod compiled;
mod hot;
mod intern;
mod postings;
mod publish;
mod query;

pub use compiled::{CompiledCampaign, CompiledCreative, LocalTimes, PRIOR_CTR, Stage, ecpm};
pub use hot::{Hot, NONE, Owner};
pub use publish::Publisher;
pub use query::{NumberedQuery, Query};

use arc_swap::ArcSwap;
use hot::{HotSet, HotSetBuilder};
use intern::{Dictionary, FastMap};
use postings::TargetingIndex;
use std::collections::HashMap;
use std::sync::Arc;

/// An immutable, indexed campaign set.
///
/// Selection reads the [`Hot`] records (one cache line per campaign, values as
/// numbers); the [`CompiledCampaign`]s are read only for winners and `explain`.
#[derive(Default)]
pub struct Snapshot {
    campaigns: Vec<Arc<CompiledCampaign>>,
    hot: HotSet,
    dict: Dictionary,
    index: TargetingIndex,
    by_id: HashMap<Arc<str>, u32>,
    /// ASCII-lower-cased advertiser name to the advertiser numbers it folds (placement
    /// blocklists compare advertisers ignoring ASCII case).
    folded_advertisers: FastMap<Box<str>, Vec<u32>>,
}

impl Snapshot {
    /// Indexes `campaigns` (already compiled; ids are unique).
    pub fn build(campaigns: Vec<Arc<CompiledCampaign>>) -> Snapshot {
        let mut dict = Dictionary::default();
        let mut hot = HotSetBuilder::default();
        let mut by_id = HashMap::with_capacity(campaigns.len());
        for (i, c) in campaigns.iter().enumerate() {
            hot.push(c, &mut dict);
            by_id.insert(c.id.clone(), i as u32);
        }
        let hot = hot.finish();
        let index = TargetingIndex::build(&hot, &dict);
        let mut folded_advertisers = FastMap::<Box<str>, Vec<u32>>::default();
        for (name, n) in dict.advertisers.iter() {
            let list = folded_advertisers
                .entry(name.to_ascii_lowercase().into())
                .or_default();
            list.push(n);
        }
        Snapshot {
            campaigns,
            hot,
            dict,
            index,
            by_id,
            folded_advertisers,
        }
    }

    pub fn len(&self) -> usize {
        self.campaigns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.campaigns.is_empty()
    }

    /// The number of campaigns that can serve (status `active`).
    pub fn active_count(&self) -> usize {
        self.campaigns.iter().filter(|c| c.active).count()
    }

    pub fn campaign(&self, idx: u32) -> &Arc<CompiledCampaign> {
        &self.campaigns[idx as usize]
    }

    pub fn campaigns(&self) -> &[Arc<CompiledCampaign>] {
        &self.campaigns
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<CompiledCampaign>> {
        self.by_id.get(id).map(|&i| &self.campaigns[i as usize])
    }

    /// What checking and ranking read of campaign `idx`.
    pub fn hot(&self, idx: u32) -> &Hot {
        self.hot.get(idx)
    }

    /// Who campaign `idx` belongs to, as numbers.
    pub fn owner(&self, idx: u32) -> Owner {
        self.hot.owner(idx)
    }

    /// `q` in this snapshot's value numbers, into a reused `out`.
    pub fn number(&self, q: &Query, out: &mut NumberedQuery) {
        out.fill(q, &self.dict);
    }

    /// Campaigns that could match `q` according to the indexes (a superset of the
    /// matching ones), in posting order, possibly repeated: returns whether a campaign
    /// may appear more than once. [`Snapshot::candidates`] is the sorted form.
    pub fn gather(&self, q: &NumberedQuery, out: &mut Vec<u32>) -> bool {
        self.index.gather(q, out)
    }

    /// Every static predicate of campaign `idx` against `q`: the first failing stage,
    /// as [`CompiledCampaign::matches`] reports it. `clock` caches local times for one
    /// request.
    #[inline]
    pub fn check(&self, idx: u32, q: &NumberedQuery, clock: &mut LocalTimes) -> Result<(), Stage> {
        self.hot.check(idx, q, clock)
    }

    /// The numbers of the advertisers whose name equals `name` ignoring ASCII case.
    pub fn advertisers_named(&self, name: &str) -> &[u32] {
        let found = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.folded_advertisers.get(&*name.to_ascii_lowercase())
        } else {
            self.folded_advertisers.get(name)
        };
        found.map_or(&[], |v| v.as_slice())
    }

    /// The number of a (lower-case) competitive category, if any campaign has it.
    pub fn separation_number(&self, category: &str) -> Option<u32> {
        self.dict.separations.get(category)
    }

    /// Campaigns that could match `q` according to the indexes (a superset of the
    /// matching ones), sorted. Pass a reused buffer to avoid allocating.
    pub fn candidates(&self, q: &Query, out: &mut Vec<u32>) {
        let mut numbered = NumberedQuery::default();
        self.number(q, &mut numbered);
        self.gather(&numbered, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Every campaign: the brute-force baseline the index is measured and tested against.
    pub fn scan_all(&self, out: &mut Vec<u32>) {
        out.clear();
        out.extend(0..self.campaigns.len() as u32);
    }

    /// The campaigns that match `q` (every static predicate), via the index or by a
    /// full scan, sorted: the two must always agree.
    pub fn matching(&self, q: &Query, use_index: bool, out: &mut Vec<u32>) {
        if use_index {
            self.candidates(q, out);
        } else {
            self.scan_all(out);
        }
        let mut numbered = NumberedQuery::default();
        self.number(q, &mut numbered);
        let mut times = LocalTimes::default();
        out.retain(|&i| self.check(i, &numbered, &mut times).is_ok());
    }
}

/// The published snapshot, shared by every request.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

#[cfg(test)]
mod tests;
