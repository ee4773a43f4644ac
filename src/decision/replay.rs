//! The same `(placement, transaction.id)` answered with the same decision.
//!
//! A reloaded confirmation page is not a new exposure: within the replay window it gets
//! the first decision back and nothing is counted twice. Entries live in two
//! generations of concurrent maps; the older generation is dropped whole when the
//! newer one is a window old or holds half the memory budget, so eviction is O(1) and
//! memory is bounded by the budget (config `decision_replay_memory_mb`). Keys are
//! 128-bit hashes with a per-process random seed, so client-chosen transaction ids
//! cannot be crafted to collide.
//!
//! Why a byte budget rather than an entry count: a decision kept for replay holds its
//! sealed tokens (a few hundred bytes per offer), so an entry with three offers is up to about a kilobyte, and
//! a count that is harmless at 50 decisions a second holds gigabytes at full load.
//! Each generation counts the bytes it holds (an atomic add per insert; asking the
//! concurrent map for its length would lock every shard on every decision).
//!
//! A generation dropped in rotation may hold hundreds of thousands of decisions, and
//! freeing them takes tens of milliseconds: that is done on a background thread, never
//! on the request that happened to rotate.

use super::{Decision, ServedOffer};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// One generation: its decisions and the bytes they hold (estimated).
#[derive(Default)]
struct Generation {
    map: DashMap<u128, Arc<Decision>>,
    bytes: AtomicUsize,
}

struct Generations {
    current: Arc<Generation>,
    previous: Arc<Generation>,
    started_ms: i64,
}

pub struct ReplayCache {
    gens: ArcSwap<Generations>,
    seed: u64,
    window_ms: i64,
    /// Bytes one generation may hold before it is rotated: half the budget.
    generation_bytes: usize,
}

/// A map slot (key, pointer, control byte) at the load a hash map keeps, plus the
/// decision's allocation header.
const ENTRY_OVERHEAD: usize = 64;

/// What keeping `decision` costs, estimated from what it allocates.
pub fn entry_bytes(decision: &Decision) -> usize {
    ENTRY_OVERHEAD
        + std::mem::size_of::<Decision>()
        + decision.offers.capacity() * std::mem::size_of::<ServedOffer>()
        + decision
            .offers
            .iter()
            .map(|o| o.token.capacity())
            .sum::<usize>()
}

impl ReplayCache {
    pub fn new(window_ms: i64, budget_bytes: usize, now_ms: i64) -> ReplayCache {
        ReplayCache {
            gens: ArcSwap::from_pointee(Generations {
                current: Arc::default(),
                previous: Arc::default(),
                started_ms: now_ms,
            }),
            seed: rand::random(),
            window_ms,
            generation_bytes: (budget_bytes / 2).max(1),
        }
    }

    pub fn key(&self, placement: &str, transaction_id: &str) -> u128 {
        let mut buf = Vec::with_capacity(placement.len() + transaction_id.len() + 1);
        buf.extend_from_slice(placement.as_bytes());
        buf.push(0);
        buf.extend_from_slice(transaction_id.as_bytes());
        xxh3_128_with_seed(&buf, self.seed)
    }

    /// The decision made for this key within the window, if any.
    pub fn get(&self, key: u128, now_ms: i64) -> Option<Arc<Decision>> {
        let gens = self.gens.load();
        let found = gens
            .current
            .map
            .get(&key)
            .map(|d| d.clone())
            .or_else(|| gens.previous.map.get(&key).map(|d| d.clone()))?;
        (now_ms - found.made_ms < self.window_ms).then_some(found)
    }

    /// Stores `decision` unless another request for the same key got there first, in
    /// which case that one is returned: two concurrent reloads still see one decision.
    pub fn insert_or_get(
        &self,
        key: u128,
        decision: Arc<Decision>,
        now_ms: i64,
    ) -> Result<(), Arc<Decision>> {
        if let Some(existing) = self.get(key, now_ms) {
            return Err(existing);
        }
        self.maybe_rotate(now_ms);
        let gens = self.gens.load();
        let mut result = Ok(());
        gens.current
            .map
            .entry(key)
            .and_modify(|existing| {
                if now_ms - existing.made_ms < self.window_ms {
                    result = Err(existing.clone());
                } else {
                    *existing = decision.clone();
                }
            })
            .or_insert_with(|| decision.clone());
        if result.is_ok() {
            gens.current
                .bytes
                .fetch_add(entry_bytes(&decision), Ordering::Relaxed);
        }
        result
    }

    fn maybe_rotate(&self, now_ms: i64) {
        let gens = self.gens.load();
        if now_ms - gens.started_ms < self.window_ms
            && gens.current.bytes.load(Ordering::Relaxed) < self.generation_bytes
        {
            return;
        }
        // Several threads may race here; compare-and-swap lets exactly one rotate.
        let next = Arc::new(Generations {
            current: Arc::default(),
            previous: gens.current.clone(),
            started_ms: now_ms,
        });
        let before = self.gens.compare_and_swap(&*gens, next);
        if Arc::ptr_eq(&*before, &*gens) {
            retire(gens.previous.clone());
        }
    }

    /// Drops the decision stored for `key`.
    pub fn remove(&self, key: u128) {
        let gens = self.gens.load();
        gens.current.map.remove(&key);
        gens.previous.map.remove(&key);
    }

    /// Entries held (both generations), for tests. Locks every shard: not for the
    /// decision path.
    pub fn len(&self) -> usize {
        let gens = self.gens.load();
        gens.current.map.len() + gens.previous.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by both generations, estimated as they were inserted.
    pub fn bytes(&self) -> usize {
        let gens = self.gens.load();
        gens.current.bytes.load(Ordering::Relaxed) + gens.previous.bytes.load(Ordering::Relaxed)
    }
}

/// Hands a dropped generation to the thread that frees retired generations.
///
/// The caller's reference is one of possibly several: a request that loaded the old
/// generations a moment ago may still hold one. The thread waits until its reference is
/// the last, so the free happens there and not on whichever request lets go last.
fn retire(generation: Arc<Generation>) {
    static RETIRED: OnceLock<mpsc::Sender<Arc<Generation>>> = OnceLock::new();
    let sender = RETIRED.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Arc<Generation>>();
        let spawned = std::thread::Builder::new()
            .name("replay-retire".into())
            .spawn(move || {
                for generation in rx {
                    while Arc::strong_count(&generation) > 1 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    drop(generation);
                }
            });
        if let Err(e) = spawned {
            // Without the thread the receiver is dropped and sends fail: generations
            // are then freed where they are released, as before.
            tracing::warn!(error = %e, "could not start the replay retirement thread");
        }
        tx
    });
    // A failed send returns the generation, which is then dropped here.
    let _ = sender.send(generation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Channel;
    use crate::ids::DecisionId;

    fn decision(made_ms: i64) -> Arc<Decision> {
        Arc::new(Decision {
            id: DecisionId::mint(made_ms),
            made_ms,
            channel: Channel::Online,
            offers: Vec::new(),
        })
    }

    #[test]
    fn a_reload_within_the_window_gets_the_first_decision() {
        let cache = ReplayCache::new(60_000, 1 << 20, 0);
        let key = cache.key("thank-you", "T-1");
        let first = decision(0);
        assert!(cache.insert_or_get(key, first.clone(), 0).is_ok());
        let again = cache.insert_or_get(key, decision(10), 10).unwrap_err();
        assert_eq!(again.id, first.id);
        assert!(cache.get(key, 60_001).is_none(), "past the window");
        assert_ne!(key, cache.key("thank-you", "T-2"));
        assert_ne!(
            key,
            cache.key("thank-yo", "uT-1"),
            "the separator keeps fields apart"
        );
    }

    #[test]
    fn memory_stays_within_the_budget_and_recent_decisions_survive_rotation() {
        let per_entry = entry_bytes(&decision(0));
        // Room for 100 decisions in all: 50 per generation.
        let cache = ReplayCache::new(86_400_000, per_entry * 100, 0);
        let keys: Vec<u128> = (0..1_000)
            .map(|i| cache.key("p", &format!("T-{i}")))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            assert!(
                cache
                    .insert_or_get(*key, decision(i as i64), i as i64)
                    .is_ok()
            );
            assert!(cache.bytes() <= per_entry * 100, "over budget after {i}");
        }
        assert!(cache.len() <= 100 && cache.len() >= 50, "{}", cache.len());
        assert!(cache.get(keys[999], 1_000).is_some(), "the newest is kept");
        assert!(cache.get(keys[0], 1_000).is_none(), "the oldest made room");
    }

    #[test]
    fn an_old_generation_is_dropped_once_it_is_a_window_old() {
        let cache = ReplayCache::new(1_000, 1 << 30, 0);
        let old = cache.key("p", "old");
        cache.insert_or_get(old, decision(0), 0).unwrap();
        // Two rotations later (one per window) the old generation is gone whole.
        cache
            .insert_or_get(cache.key("p", "a"), decision(1_500), 1_500)
            .unwrap();
        cache
            .insert_or_get(cache.key("p", "b"), decision(3_000), 3_000)
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.bytes(), 2 * entry_bytes(&decision(0)));
    }
}
