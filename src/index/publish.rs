//! Publishing campaign changes: the write side of the [`SharedSnapshot`].
//!
//! Readers load the snapshot with one `ArcSwap::load` and never wait. Writers take one
//! mutex, so changes apply in order and none is lost between a load and a store: each
//! builds the next snapshot from the current one ([`Snapshot::with_changes`], a delta
//! rebuild) and swaps it in before returning.
//!
//! When the pending changes pass the snapshot's threshold, a compaction builds a new
//! base from the live set on a thread of its own, so neither the decision path nor the
//! upload that crossed the threshold waits for a full build. Changes published while
//! it runs are collected ([`Changes`]) and applied on top of the new base before it is
//! stored, under the writer mutex, so the result equals the live set at that moment. A
//! compaction is abandoned if the set was replaced meanwhile ([`Publisher::replace_all`],
//! or a snapshot stored into the [`SharedSnapshot`] without this publisher).
//!
//! Snapshots swapped out are kept here until no reader holds them, then dropped by a
//! writer: otherwise the last reader to let go would free it on the decision path,
//! which for a replaced base means freeing 100k records and postings between two
//! requests.

use super::delta::Changes;
use super::{CompiledCampaign, SharedSnapshot, Snapshot};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// The only writer of a [`SharedSnapshot`]. Cheap to share behind an `Arc`.
pub struct Publisher {
    inner: Arc<Inner>,
}

/// What compactions did, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub started: u64,
    /// Compactions whose new base was published.
    pub completed: u64,
    /// Campaigns changed while a compaction ran, applied again on its new base.
    pub reapplied: u64,
    /// Compactions dropped because the whole set was replaced while they ran.
    pub abandoned: u64,
}

struct Inner {
    shared: SharedSnapshot,
    writer: Mutex<Writer>,
    /// Signalled when a compaction ends, for [`Publisher::wait_for_compaction`].
    compaction_ended: Condvar,
    /// Replaces [`Snapshot::compaction_threshold`] (tests and benches force compactions).
    threshold: Option<usize>,
}

#[derive(Default)]
struct Writer {
    /// What this publisher stored last. Anything else in `shared` was stored without
    /// it, and makes a compaction under way stale.
    current: Option<Arc<Snapshot>>,
    compaction: Option<Compaction>,
    next_compaction: u64,
    /// Snapshots swapped out that a reader may still hold.
    retired: Vec<Arc<Snapshot>>,
    stats: CompactionStats,
}

struct Compaction {
    id: u64,
    /// What was published since it started.
    since: Changes,
}

impl Publisher {
    pub fn new(shared: SharedSnapshot) -> Publisher {
        Publisher::with_threshold(shared, None)
    }

    /// A publisher that compacts once more than `pending` changes are outside the base,
    /// whatever the base's size (see [`Snapshot::pending`]).
    pub fn with_compaction_threshold(shared: SharedSnapshot, pending: usize) -> Publisher {
        Publisher::with_threshold(shared, Some(pending))
    }

    fn with_threshold(shared: SharedSnapshot, threshold: Option<usize>) -> Publisher {
        let writer = Writer {
            current: Some(shared.load_full()),
            ..Writer::default()
        };
        Publisher {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(writer),
                compaction_ended: Condvar::new(),
                threshold,
            }),
        }
    }

    pub fn shared(&self) -> &SharedSnapshot {
        &self.inner.shared
    }

    /// Adds or replaces `upserts` (by id) and removes the campaigns named in `removals`,
    /// publishing a snapshot that has them before returning. Writers are serialised;
    /// readers never wait.
    pub fn publish(&self, upserts: Vec<Arc<CompiledCampaign>>, removals: Vec<Arc<str>>) {
        let mut w = self.inner.lock();
        let next = self.inner.current(&mut w).with_changes(&upserts, &removals);
        if let Some(c) = w.compaction.as_mut() {
            c.since.add(&upserts, &removals);
        }
        let next = self.inner.store(&mut w, next);
        self.inner.maybe_compact(&mut w, &next);
    }

    /// Replaces the whole set (start-up and folder reload). A full build, done by the
    /// caller's thread while other writers wait.
    pub fn replace_all(&self, campaigns: Vec<Arc<CompiledCampaign>>) {
        let mut w = self.inner.lock();
        self.inner.abandon_compaction(&mut w);
        let next = Snapshot::build(campaigns);
        self.inner.store(&mut w, next);
    }

    /// Returns once no compaction is under way.
    pub fn wait_for_compaction(&self) {
        let mut w = self.inner.lock();
        while w.compaction.is_some() {
            w = (self.inner.compaction_ended.wait(w)).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub fn compaction_stats(&self) -> CompactionStats {
        self.inner.lock().stats
    }
}

impl Inner {
    /// A panic while publishing cannot leave the writer state half-changed (it is only
    /// written after the new snapshot is built), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The published snapshot, noticing one stored without this publisher.
    fn current(&self, w: &mut Writer) -> Arc<Snapshot> {
        let current = self.shared.load_full();
        if !w.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &current)) {
            self.abandon_compaction(w);
            w.current = Some(current.clone());
        }
        current
    }

    fn abandon_compaction(&self, w: &mut Writer) {
        if w.compaction.take().is_some() {
            w.stats.abandoned += 1;
            self.compaction_ended.notify_all();
        }
    }

    fn store(&self, w: &mut Writer, next: Snapshot) -> Arc<Snapshot> {
        let next = Arc::new(next);
        // `swap` returns once every reader that loaded the old snapshot holds a counted
        // reference to it, so a count of one below means no reader has it.
        let old = self.shared.swap(next.clone());
        w.current = Some(next.clone());
        w.retired.push(old);
        sweep(w);
        next
    }

    /// Starts a compaction of `from` (just published) if it has too many pending
    /// changes and none is under way.
    fn maybe_compact(self: &Arc<Self>, w: &mut Writer, from: &Arc<Snapshot>) {
        let threshold = self
            .threshold
            .unwrap_or_else(|| from.compaction_threshold());
        if w.compaction.is_some() || from.pending() <= threshold {
            return;
        }
        let id = w.next_compaction;
        w.next_compaction += 1;
        let (inner, from) = (self.clone(), from.clone());
        let spawned = thread::Builder::new()
            .name("index-compaction".into())
            .spawn(move || inner.compact(id, from));
        // Without a thread, the next publish tries again; the delta just grows meanwhile.
        if spawned.is_ok() {
            w.stats.started += 1;
            w.compaction = Some(Compaction {
                id,
                since: Changes::default(),
            });
        }
    }

    /// The compaction thread: a full build of `from`'s live set, then what was
    /// published since, applied on top and published.
    fn compact(self: Arc<Self>, id: u64, from: Arc<Snapshot>) {
        let _ended = Ended { inner: &self, id };
        let base = from.compacted();
        drop(from);
        let mut w = self.lock();
        if w.compaction.as_ref().is_none_or(|c| c.id != id) {
            return; // Abandoned: the set was replaced while this one was built.
        }
        let stored_elsewhere = {
            let current = self.shared.load();
            !w.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &current))
        };
        if stored_elsewhere {
            self.abandon_compaction(&mut w);
            return;
        }
        let Some(Compaction { since, .. }) = w.compaction.take() else {
            return;
        };
        let next = if since.is_empty() {
            base
        } else {
            base.with_merged(&since)
        };
        w.stats.completed += 1;
        w.stats.reapplied += since.len() as u64;
        let next = self.store(&mut w, next);
        self.compaction_ended.notify_all();
        // Publishes during a long compaction may already call for the next one.
        self.maybe_compact(&mut w, &next);
        drop((w, next));
        self.sweep_soon();
    }

    /// Drops the replaced base once readers let go of the snapshots that share it,
    /// rather than at the next publish, which may be long after.
    fn sweep_soon(&self) {
        for pause_ms in [1, 10, 100, 1_000] {
            thread::sleep(Duration::from_millis(pause_ms));
            let mut w = self.lock();
            sweep(&mut w);
            if w.retired.is_empty() {
                return;
            }
        }
    }
}

/// Drops the retired snapshots no reader holds any more.
fn sweep(w: &mut Writer) {
    w.retired.retain(|s| Arc::strong_count(s) > 1);
}

/// Clears compaction `id` if its thread ends without publishing (a panic), so that
/// waiters wake and the next publish can start another.
struct Ended<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut w = self.inner.lock();
        if w.compaction.as_ref().is_some_and(|c| c.id == self.id) {
            self.inner.abandon_compaction(&mut w);
        }
    }
}

#[cfg(test)]
mod tests;
