//! Changing a snapshot without rebuilding it: a base layer plus a delta, like a
//! two-level LSM tree.
//!
//! Building a [`Snapshot`] from scratch numbers every value, encodes every record and
//! sorts every posting: fine at a thousand campaigns, far too slow at 100k for an
//! upload that must be live within 50 ms. So a snapshot is:
//!
//! - a **base** layer, large and immutable, shared through an `Arc` by every snapshot
//!   derived from it;
//! - a **delta** layer holding the campaigns added or replaced since the base was
//!   built, rebuilt whole on each change: its cost grows with the recent changes only;
//! - a **dead** set: base campaigns replaced (their new version is in the delta) or
//!   removed. They keep their index and their postings; gathering drops them.
//!
//! Values new to the delta are numbered in an overlay that continues the base's
//! numbers (`intern`), so a request numbered once compares equal to either layer's
//! campaigns, and slot separation and blocklists can compare advertiser and category
//! numbers across layers. The delta's indexes follow the base's in one `u32` range, so
//! selection reads both through the same calls.
//!
//! The alternative, persistent (structurally shared) postings and records, would make
//! each change cheaper still but every lookup dearer and the code much larger. A delta
//! costs the decision path one predictable branch per campaign read, a lookup in the
//! delta's postings per request value and, while base campaigns are dead, a bit test
//! per request value (only lists holding a dead campaign are filtered: see
//! `postings::Dead`). Measured at 100k campaigns (`benches/publish.rs`): a change is
//! live after a few µs with a small delta and under 1 ms at the compaction threshold,
//! against ~45 ms for a full build; selection takes ~4% longer with 200 replaced
//! campaigns, ~9% at the threshold.
//!
//! Each change rebuilds the delta, so a delta that keeps growing would make publishing
//! slower and slower: past [`Snapshot::compaction_threshold`] pending changes the
//! publisher ([`super::publish`]) builds a new base from the live set in a background
//! thread ([`Snapshot::compacted`]) and re-applies whatever was published meanwhile.

use super::Snapshot;
use super::compiled::CompiledCampaign;
use super::layer::Layer;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Pending changes (delta campaigns plus dead base ones) a base of any size tolerates
/// before a compaction: a delta this small rebuilds in a millisecond or two.
pub const MIN_COMPACTION_THRESHOLD: usize = 1024;
/// Above 32 × [`MIN_COMPACTION_THRESHOLD`] campaigns, the tolerated changes grow with
/// the base: a compaction costs as much as a full build, so it should be rarer the
/// larger the set, while the delta stays a thirty-second of the base at most.
pub const COMPACTION_DIVISOR: usize = 32;

/// The net effect of a sequence of changes: per campaign id, its last version, or
/// `None` when it was last removed. Merging changes first means a compaction re-applies
/// however many publishes happened meanwhile in one step.
#[derive(Default)]
pub struct Changes {
    net: HashMap<Arc<str>, Option<Arc<CompiledCampaign>>>,
    /// Upserted ids, in the order first seen (again after a removal): campaigns new to
    /// the delta join it in this order.
    order: Vec<Arc<str>>,
}

impl Changes {
    /// Adds one publish: `upserts` apply first, then `removals` (so naming an id in
    /// both removes it).
    pub fn add(&mut self, upserts: &[Arc<CompiledCampaign>], removals: &[Arc<str>]) {
        for c in upserts {
            // An id removed earlier in the sequence needs a place again (a repeat in
            // `order` is skipped when applying).
            if !matches!(
                self.net.insert(c.id.clone(), Some(c.clone())),
                Some(Some(_))
            ) {
                self.order.push(c.id.clone());
            }
        }
        for id in removals {
            self.net.insert(id.clone(), None);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.net.is_empty()
    }

    /// How many campaigns the changes name.
    pub fn len(&self) -> usize {
        self.net.len()
    }
}

impl Snapshot {
    /// This snapshot with `upserts` added or replacing the campaigns of the same id,
    /// then the campaigns named in `removals` removed (unknown ids are ignored). Shares
    /// this snapshot's base; rebuilds only the delta.
    pub fn with_changes(
        &self,
        upserts: &[Arc<CompiledCampaign>],
        removals: &[Arc<str>],
    ) -> Snapshot {
        let mut changes = Changes::default();
        changes.add(upserts, removals);
        self.with_merged(&changes)
    }

    /// This snapshot with `changes` applied (see [`Snapshot::with_changes`]).
    pub fn with_merged(&self, changes: &Changes) -> Snapshot {
        let mut dead = self.dead.clone();
        for id in changes.net.keys() {
            if let Some(&i) = self.base.by_id.get(id) {
                dead.insert(i, &self.base.index, &self.base.hot);
            }
        }
        // The delta keeps its order, replaced campaigns in place, so an unrelated change
        // moves no campaign's index.
        let mut placed = HashSet::with_capacity(changes.len());
        let mut campaigns = Vec::with_capacity(self.delta.len() + changes.order.len());
        for c in &self.delta.campaigns {
            match changes.net.get(&c.id) {
                None => campaigns.push(c.clone()),
                Some(latest) => {
                    placed.insert(c.id.clone());
                    campaigns.extend(latest.iter().cloned());
                }
            }
        }
        for id in &changes.order {
            if let Some(Some(c)) = changes.net.get(id)
                && placed.insert(id.clone())
            {
                campaigns.push(c.clone());
            }
        }
        let delta = Layer::build(campaigns, Some(&self.base));
        Snapshot {
            base: self.base.clone(),
            delta,
            dead,
            base_len: self.base_len,
        }
    }

    /// Changes held outside the base: campaigns in the delta plus dead base campaigns.
    /// Each costs the next publish some work (the delta is rebuilt) or the decision
    /// path some (a dead candidate is gathered, then dropped).
    pub fn pending(&self) -> usize {
        self.delta.len() + self.dead.count()
    }

    /// How many [`Snapshot::pending`] changes this snapshot's base tolerates before a
    /// compaction: at least [`MIN_COMPACTION_THRESHOLD`], and a
    /// [`COMPACTION_DIVISOR`]th of the base.
    pub fn compaction_threshold(&self) -> usize {
        MIN_COMPACTION_THRESHOLD.max(self.base.len() / COMPACTION_DIVISOR)
    }

    pub fn needs_compaction(&self) -> bool {
        self.pending() > self.compaction_threshold()
    }

    /// The live set as one new base, nothing pending: the cost of a full build, to be
    /// paid off the decision path.
    pub fn compacted(&self) -> Snapshot {
        Snapshot::build(self.campaigns().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compaction applies what was published meanwhile as one merged [`Changes`]: the
    /// last word on each id must win, whatever came before it.
    #[test]
    fn merged_changes_keep_the_last_word_on_each_id() {
        let v1 = crate::synth::compiled(crate::synth::mixed_campaigns(4, 1));
        let v2 = crate::synth::compiled(crate::synth::mixed_campaigns(4, 2));
        let snap = Snapshot::build(v1[..2].to_vec()).with_changes(&v1[2..3], &[]);
        let mut changes = Changes::default();
        // Base 0: removed, then back. Base 1: replaced, then removed. Delta 2: removed,
        // back, removed again, back again. New 3: added, removed, added.
        changes.add(
            &[v2[1].clone(), v2[3].clone()],
            &[v1[0].id.clone(), v1[2].id.clone()],
        );
        changes.add(
            &[v2[0].clone(), v2[2].clone()],
            &[v1[1].id.clone(), v1[3].id.clone()],
        );
        changes.add(&[], &[v1[2].id.clone()]);
        changes.add(&[v1[2].clone(), v2[3].clone()], &[]);
        let next = snap.with_merged(&changes);
        let live: Vec<_> = next.campaigns().map(|c| c.id.to_string()).collect();
        // The delta keeps 2 in place; the others join in the order first upserted.
        assert_eq!(live, ["synth-2", "synth-3", "synth-0"]);
        assert!(Arc::ptr_eq(next.by_id("synth-0").expect("back"), &v2[0]));
        assert!(Arc::ptr_eq(next.by_id("synth-2").expect("back"), &v1[2]));
        assert!(Arc::ptr_eq(next.by_id("synth-3").expect("added"), &v2[3]));
        assert!(next.by_id("synth-1").is_none());
        assert_eq!((next.len(), next.pending()), (3, 5));
    }
}
