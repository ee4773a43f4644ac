//! Targeting indexes over the campaign set, published as one immutable snapshot.
//!
//! The decision path loads the current [`Snapshot`] with a single `ArcSwap::load` and
//! never takes a lock; a campaign change builds a new snapshot and swaps it in. Live
//! counters (spend, caps, stock) are kept outside the snapshot, keyed by campaign id,
//! so a swap never resets them.

mod compiled;
mod postings;
mod query;

pub use compiled::{CompiledCampaign, CompiledCreative, LocalTimes, PRIOR_CTR, Stage};
pub use query::Query;

use arc_swap::ArcSwap;
use postings::TargetingIndex;
use std::collections::HashMap;
use std::sync::Arc;

/// An immutable, indexed campaign set.
#[derive(Default)]
pub struct Snapshot {
    campaigns: Vec<Arc<CompiledCampaign>>,
    index: TargetingIndex,
    by_id: HashMap<Arc<str>, u32>,
}

impl Snapshot {
    /// Indexes `campaigns` (already compiled; ids are unique).
    pub fn build(campaigns: Vec<Arc<CompiledCampaign>>) -> Snapshot {
        let mut index = TargetingIndex::default();
        let mut by_id = HashMap::with_capacity(campaigns.len());
        for (i, c) in campaigns.iter().enumerate() {
            index.insert(i as u32, c);
            by_id.insert(c.id.clone(), i as u32);
        }
        Snapshot {
            campaigns,
            index,
            by_id,
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

    /// Campaigns that could match `q` according to the indexes (a superset of the
    /// matching ones), sorted. Pass a reused buffer to avoid allocating.
    pub fn candidates(&self, q: &Query, out: &mut Vec<u32>) {
        self.index.candidates(q, out);
    }

    /// Every campaign: the brute-force baseline the index is measured and tested against.
    pub fn scan_all(&self, out: &mut Vec<u32>) {
        out.clear();
        out.extend(0..self.campaigns.len() as u32);
    }

    /// The campaigns that match `q` (every static predicate), via the index or by a
    /// full scan: the two must always agree.
    pub fn matching(&self, q: &Query, use_index: bool, out: &mut Vec<u32>) {
        if use_index {
            self.candidates(q, out);
        } else {
            self.scan_all(out);
        }
        let mut times = LocalTimes::default();
        out.retain(|&i| self.campaigns[i as usize].matches(q, &mut times).is_ok());
    }
}

/// The published snapshot, shared by every request.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
