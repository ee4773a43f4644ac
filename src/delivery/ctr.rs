//! Learned click-through rates in one dense table, for ranking.
//!
//! Ranking a cpc candidate needs its campaign's CTR on the request's channel. Read
//! from the campaign's [`CampaignLive`](super::CampaignLive), that is a cache miss per
//! candidate: 100k live-state records are spread over the heap, and a request's
//! candidates are scattered among them (profiles showed the load at a third of
//! selection's time). Here every campaign's three rates sit in 24 bytes of one dense
//! table (2.4 MB at 100k campaigns), which stays in the caches a decision already
//! uses, and the decision path reads one word per candidate.
//!
//! The rates are written when the counters behind them change (an impression or a
//! click, a checkpoint restored), so the table and the counters agree except for the
//! instant between the two; two events racing may leave the rate one event behind
//! until the next, which a learned estimate does not notice.
//!
//! One table for the process, addressed by a slot each live-state record takes when it
//! is created: live state is kept for the life of the process, so slots are never
//! reused, and the table grows by chunks that are never moved (readers take no lock).

use crate::campaign::Channel;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Rates per chunk: 96 KiB chunks, so a small deployment allocates little.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Chunks the table can have: room for 268 million campaigns, far past any catalogue.
const CHUNKS: usize = 1 << 16;

type Cell = [AtomicU64; 3];

struct Table {
    chunks: Box<[OnceLock<Box<[Cell]>>]>,
    next: AtomicU32,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        next: AtomicU32::new(0),
    })
}

/// A campaign's place in the table.
#[derive(Debug)]
pub struct Slot(u32);

impl Slot {
    /// A new slot holding `prior` on every channel; `None` once the table is full
    /// (the caller then reads its counters instead).
    pub fn take(prior: f64) -> Option<Slot> {
        let t = table();
        let n = t.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(n);
        let cell = slot.cell()?;
        for c in cell {
            c.store(prior.to_bits(), Ordering::Relaxed);
        }
        Some(slot)
    }

    pub fn number(&self) -> u32 {
        self.0
    }

    fn cell(&self) -> Option<&'static Cell> {
        cell(self.0)
    }

    /// Records the rate on `channel`.
    pub fn set(&self, channel: Channel, ctr: f64) {
        if let Some(cell) = self.cell() {
            cell[channel as usize].store(ctr.to_bits(), Ordering::Relaxed);
        }
    }
}

fn cell(n: u32) -> Option<&'static Cell> {
    let chunk = table()
        .chunks
        .get((n >> CHUNK_BITS) as usize)?
        .get_or_init(|| (0..CHUNK).map(|_| Cell::default()).collect());
    chunk.get(n as usize & (CHUNK - 1))
}

/// The rate in slot `n` on `channel` (`n` from [`Slot::number`]).
#[inline]
pub fn get(n: u32, channel: Channel) -> Option<f64> {
    // Chunks exist for every slot handed out, so this never allocates.
    let chunk = table().chunks.get((n >> CHUNK_BITS) as usize)?.get()?;
    let bits = chunk.get(n as usize & (CHUNK - 1))?[channel as usize].load(Ordering::Relaxed);
    Some(f64::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_starts_at_the_prior_and_keeps_each_channel_apart() {
        let a = Slot::take(0.01).unwrap();
        let b = Slot::take(0.01).unwrap();
        assert_ne!(a.number(), b.number());
        assert_eq!(get(a.number(), Channel::App), Some(0.01));
        a.set(Channel::App, 0.05);
        assert_eq!(get(a.number(), Channel::App), Some(0.05));
        assert_eq!(get(a.number(), Channel::Online), Some(0.01));
        assert_eq!(get(b.number(), Channel::App), Some(0.01), "slots are apart");
    }

    #[test]
    fn slots_past_a_chunk_boundary_work() {
        let slots: Vec<Slot> = (0..CHUNK + 10).map(|_| Slot::take(0.02).unwrap()).collect();
        let last = slots.last().unwrap();
        last.set(Channel::InStore, 0.5);
        assert_eq!(get(last.number(), Channel::InStore), Some(0.5));
        assert_eq!(get(slots[0].number(), Channel::InStore), Some(0.02));
        assert_eq!(get(u32::MAX, Channel::App), None, "never handed out");
    }
}
