//! The same `(placement, transaction.id)` answered with the same decision.
//!
//! A reloaded confirmation page is not a new exposure: within the replay window it gets
//! the first decision back and nothing is counted twice. Entries live in two
//! generations of concurrent maps; the older generation is dropped whole when the
//! newer one is a window old or full, so eviction is O(1) and memory is bounded by
//! twice the capacity. Keys are 128-bit hashes with a per-process random seed, so
//! client-chosen transaction ids cannot be crafted to collide.

use super::Decision;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128_with_seed;

struct Generations {
    current: Arc<DashMap<u128, Arc<Decision>>>,
    previous: Arc<DashMap<u128, Arc<Decision>>>,
    started_ms: i64,
}

pub struct ReplayCache {
    gens: ArcSwap<Generations>,
    seed: u64,
    window_ms: i64,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(window_ms: i64, capacity: usize, now_ms: i64) -> ReplayCache {
        ReplayCache {
            gens: ArcSwap::from_pointee(Generations {
                current: Arc::default(),
                previous: Arc::default(),
                started_ms: now_ms,
            }),
            seed: rand::random(),
            window_ms,
            capacity: capacity.max(1),
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
            .get(&key)
            .map(|d| d.clone())
            .or_else(|| gens.previous.get(&key).map(|d| d.clone()))?;
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
            .entry(key)
            .and_modify(|existing| {
                if now_ms - existing.made_ms < self.window_ms {
                    result = Err(existing.clone());
                } else {
                    *existing = decision.clone();
                }
            })
            .or_insert_with(|| decision.clone());
        result
    }

    fn maybe_rotate(&self, now_ms: i64) {
        let gens = self.gens.load();
        if now_ms - gens.started_ms < self.window_ms && gens.current.len() < self.capacity {
            return;
        }
        // Several threads may race here; compare-and-swap lets exactly one rotate.
        let next = Arc::new(Generations {
            current: Arc::default(),
            previous: gens.current.clone(),
            started_ms: now_ms,
        });
        self.gens.compare_and_swap(&*gens, next);
    }

    /// Drops the decision stored for `key`.
    pub fn remove(&self, key: u128) {
        let gens = self.gens.load();
        gens.current.remove(&key);
        gens.previous.remove(&key);
    }

    /// Entries held (both generations), for tests and metrics.
    pub fn len(&self) -> usize {
        let gens = self.gens.load();
        gens.current.len() + gens.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
