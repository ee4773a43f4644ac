//! Targeting indexes over the campaign set, published as one immutable snapshot.
//!
//! The decision path loads the current [`Snapshot`] with a single `ArcSwap::load` and
//! never takes a lock; a campaign change builds a new snapshot and swaps it in
//! ([`Publisher`]). Live counters (spend, caps, stock) are kept outside the snapshot,
//! keyed by campaign id, so a swap never resets them.
//!
//! Inside a snapshot, for the decision path:
//!
//! - `intern`: every targeted string gets a number; a request is numbered once
//!   ([`NumberedQuery`]) and everything after compares integers.
//! - `hot`: one 64-byte record per campaign with what checking and ranking read.
//! - `postings`: value number → campaigns, to find the candidates.
//!
//! A snapshot is two layers of these (`layer`): a large base shared between snapshots
//! and a small delta rebuilt on each change, so that publishing one change costs time
//! in proportion to the recent changes, not to the whole set (`delta`, `publish`).
//!
//! [`CompiledCampaign::matches`] stays the readable reference the records are tested
//! against (`tests.rs`).

mod compiled;
mod delta;
mod hot;
mod intern;
mod layer;
mod postings;
mod publish;
mod query;

pub use compiled::{CompiledCampaign, CompiledCreative, LocalTimes, PRIOR_CTR, Stage, ecpm};
pub use delta::{COMPACTION_DIVISOR, Changes, MIN_COMPACTION_THRESHOLD};
pub use hot::{Hot, NONE, Owner};
pub use publish::{CompactionStats, Publisher};
pub use query::{NumberedQuery, Query};

use arc_swap::ArcSwap;
use layer::Layer;
use postings::Dead;
use std::sync::Arc;

/// An immutable, indexed campaign set.
///
/// Selection reads the [`Hot`] records (one cache line per campaign, values as
/// numbers); the [`CompiledCampaign`]s are read only for winners and `explain`.
///
/// Campaign indexes are one `u32` range over both layers: the base's first, then the
/// delta's. A base campaign that was replaced or removed keeps its index but is
/// "dead": [`Snapshot::gather`] and [`Snapshot::scan_all`] never return it, and
/// [`Snapshot::by_id`] and [`Snapshot::campaigns`] see the live set only.
#[derive(Default)]
pub struct Snapshot {
    base: Arc<Layer>,
    delta: Layer,
    /// Base indexes that are no longer live.
    dead: Dead,
    /// `base.len()`, where the delta's indexes start: read for every candidate, so kept
    /// here rather than behind the base's pointer.
    base_len: u32,
}

impl Snapshot {
    /// Indexes `campaigns` (already compiled; ids are unique) as one base layer.
    pub fn build(campaigns: Vec<Arc<CompiledCampaign>>) -> Snapshot {
        Snapshot::over(Arc::new(Layer::build(campaigns, None)))
    }

    /// `base` alone, every campaign live.
    fn over(base: Arc<Layer>) -> Snapshot {
        let delta = Layer::build(Vec::new(), Some(&base));
        let base_len = u32::try_from(base.len()).expect("fewer than 2^32 campaigns");
        Snapshot {
            base,
            delta,
            dead: Dead::default(),
            base_len,
        }
    }

    /// The number of live campaigns.
    pub fn len(&self) -> usize {
        self.base.len() - self.dead.count() + self.delta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of campaigns that can serve (status `active`).
    pub fn active_count(&self) -> usize {
        self.campaigns().filter(|c| c.active).count()
    }

    /// Campaign `idx`, as returned by [`Snapshot::gather`] or [`Snapshot::scan_all`].
    #[inline]
    pub fn campaign(&self, idx: u32) -> &Arc<CompiledCampaign> {
        let (layer, i) = self.layer(idx);
        &layer.campaigns[i as usize]
    }

    /// The layer holding campaign `idx`, and its index there. Every per-campaign read
    /// goes through this one choice, so each reader has a single call site below and
    /// stays inlined (two calls of `HotSet::check`, one per layer, were not).
    #[inline(always)]
    fn layer(&self, idx: u32) -> (&Layer, u32) {
        if idx < self.base_len {
            (&self.base, idx)
        } else {
            (&self.delta, idx - self.base_len)
        }
    }

    /// Every live campaign: the base's (less the dead), then the delta's.
    pub fn campaigns(&self) -> impl Iterator<Item = &Arc<CompiledCampaign>> + '_ {
        let base = (self.base.campaigns.iter().enumerate())
            .filter(|(i, _)| !self.dead.contains(*i as u32))
            .map(|(_, c)| c);
        base.chain(self.delta.campaigns.iter())
    }

    /// The live campaign with this id: the delta's copy when there is one.
    pub fn by_id(&self, id: &str) -> Option<&Arc<CompiledCampaign>> {
        if let Some(&i) = self.delta.by_id.get(id) {
            return Some(&self.delta.campaigns[i as usize]);
        }
        let i = *self.base.by_id.get(id)?;
        (!self.dead.contains(i)).then(|| &self.base.campaigns[i as usize])
    }

    /// What checking and ranking read of campaign `idx`.
    #[inline]
    pub fn hot(&self, idx: u32) -> &Hot {
        let (layer, i) = self.layer(idx);
        layer.hot.get(i)
    }

    /// Who campaign `idx` belongs to, as numbers.
    #[inline]
    pub fn owner(&self, idx: u32) -> Owner {
        let (layer, i) = self.layer(idx);
        layer.hot.owner(i)
    }

    /// Campaign `idx`'s live counters (the same as `campaign(idx).live`, one load
    /// closer).
    #[inline]
    pub fn live(&self, idx: u32) -> &crate::delivery::CampaignLive {
        let (layer, i) = self.layer(idx);
        layer.hot.live(i)
    }

    /// `q` in this snapshot's value numbers, into a reused `out`.
    pub fn number(&self, q: &Query, out: &mut NumberedQuery) {
        out.fill(q, &self.base.dict, &self.delta.dict);
    }

    /// Live campaigns that could match `q` according to the indexes (a superset of the
    /// matching ones), in posting order, possibly repeated: returns whether a campaign
    /// may appear more than once. [`Snapshot::candidates`] is the sorted form.
    pub fn gather(&self, q: &NumberedQuery, out: &mut Vec<u32>) -> bool {
        out.clear();
        let dead = (self.dead.count() > 0).then_some(&self.dead);
        let mut may_repeat = self.base.index.gather(q, out, dead);
        if self.delta.len() > 0 {
            may_repeat |= self.delta.index.gather(q, out, None);
        }
        may_repeat
    }

    /// Every static predicate of campaign `idx` against `q`: the first failing stage,
    /// as [`CompiledCampaign::matches`] reports it. `clock` caches local times for one
    /// request.
    #[inline]
    pub fn check(&self, idx: u32, q: &NumberedQuery, clock: &mut LocalTimes) -> Result<(), Stage> {
        let (layer, i) = self.layer(idx);
        layer.hot.check(i, q, clock)
    }

    /// The numbers of the advertisers whose name equals `name` ignoring ASCII case.
    pub fn advertisers_named(&self, name: &str) -> &[u32] {
        let lower;
        let key = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        // The delta's entry, when it has one, already includes the base's numbers.
        let found = (self.delta.folded_advertisers.get(key))
            .or_else(|| self.base.folded_advertisers.get(key));
        found.map_or(&[], |v| v.as_slice())
    }

    /// The number of a (lower-case) competitive category, if any campaign has it.
    pub fn separation_number(&self, category: &str) -> Option<u32> {
        (self.base.dict.separations.get(category))
            .or_else(|| self.delta.dict.separations.get(category))
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

    /// Every live campaign: the brute-force baseline the index is measured and tested
    /// against.
    pub fn scan_all(&self, out: &mut Vec<u32>) {
        out.clear();
        if self.dead.count() == 0 {
            out.extend(0..self.base_len);
        } else {
            out.extend((0..self.base_len).filter(|&i| !self.dead.contains(i)));
        }
        let delta = u32::try_from(self.delta.len()).expect("fewer than 2^32 campaigns");
        out.extend(self.base_len..self.base_len + delta);
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
