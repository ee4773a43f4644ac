//! One shard's storage, with no locking of its own: the graph puts each shard behind a
//! lock and decides which shards an operation needs.
//!
//! Identifiers and profile records live in chunked arenas and are referred to by 32-bit
//! [`Ref`]s (shard and slot) rather than by their 16-byte hashes, which is what keeps an
//! identifier at 24 bytes plus a few bytes of hash table. A hash table of slot numbers
//! (hashbrown's `HashTable<u32>`) finds an identifier's slot from its hash.

use crate::identity::{IdHash, IdKind};
use hashbrown::HashTable;

/// Shards, as a power of two: enough that a few dozen worker threads rarely meet on
/// one lock, few enough that a lock set fits in a `u64` mask.
pub(super) const SHARD_BITS: u32 = 6;
pub(super) const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per shard, per arena. 64 shards × 2^23 is about 536 million identifiers (some
/// 21 GB at these sizes); a full shard refuses new ones, counted as over capacity.
const SLOT_BITS: u32 = 23;
const SLOTS: u32 = 1 << SLOT_BITS;
/// A ref uses the low 29 bits; an entry's `next` word keeps the identifier kind above.
const KIND_SHIFT: u32 = SHARD_BITS + SLOT_BITS;
const REF_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// Arena chunk length. Growing by whole chunks wastes at most one chunk per arena and
/// never copies what is there, so growth costs no pause (the hash table still rehashes).
const CHUNK: usize = 1024;

/// The shard an identifier lives in. Identifier hashes are keyed HMACs, uniform and
/// unpredictable to an attacker, so their own bits spread the shards and the buckets
/// (the table uses the low 64 bits, the shard the top 6): no hasher needs to run and
/// no crafted set of identifiers can pile into one shard or bucket.
pub(super) fn shard_of(hash: u128) -> usize {
    (hash >> (128 - SHARD_BITS)) as usize
}

fn table_hash(hash: u128) -> u64 {
    hash as u64
}

/// A slot in some shard's arena: shard in the high bits, slot number below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Ref(u32);

impl Ref {
    pub(super) fn new(shard: usize, slot: u32) -> Ref {
        Ref(((shard as u32) << SLOT_BITS) | slot)
    }
    pub(super) fn shard(self) -> usize {
        (self.0 >> SLOT_BITS) as usize
    }
    pub(super) fn slot(self) -> u32 {
        self.0 & (SLOTS - 1)
    }
}

/// A stable one-byte code per kind, for the entry and for checkpoints. Never renumber.
pub(super) fn kind_code(kind: IdKind) -> u8 {
    match kind {
        IdKind::EmailSha256 => 0,
        IdKind::PhoneSha256 => 1,
        IdKind::DeviceId => 2,
        IdKind::LoyaltyId => 3,
        IdKind::PaymentToken => 4,
        IdKind::CustomerId => 5,
    }
}

pub(super) fn kind_from_code(code: u8) -> Option<IdKind> {
    Some(match code {
        0 => IdKind::EmailSha256,
        1 => IdKind::PhoneSha256,
        2 => IdKind::DeviceId,
        3 => IdKind::LoyaltyId,
        4 => IdKind::PaymentToken,
        5 => IdKind::CustomerId,
        _ => return None,
    })
}

/// Marks an entry as its profile's founder: its `owner` word then refers to the
/// profile's record instead of to the founder.
const FOUNDER: u32 = 1 << 31;

/// One identifier: 24 bytes. `[u64; 2]` rather than `u128` keeps the alignment at 8,
/// so the two words pack beside the hash with no padding.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    hash: [u64; 2],
    /// A member's founder entry, whose hash is the profile id: a lookup reads two
    /// entries and nothing else. The founder's own word (with `FOUNDER` set) refers to
    /// the profile's record, which only changes need.
    owner: u32,
    /// The next member of the same profile (a ring through all of them), with the kind
    /// in the top three bits.
    next: u32,
}

impl Entry {
    pub(super) fn hash(&self) -> u128 {
        ((self.hash[0] as u128) << 64) | self.hash[1] as u128
    }
    pub(super) fn id(&self) -> IdHash {
        let kind = kind_from_code((self.next >> KIND_SHIFT) as u8);
        IdHash {
            // Only codes written by `kind_code` are ever stored.
            kind: kind.unwrap_or(IdKind::DeviceId),
            hash: self.hash(),
        }
    }
    /// The founder of this entry's profile, given where this entry is.
    pub(super) fn founder(&self, at: Ref) -> Ref {
        if self.owner & FOUNDER != 0 {
            at
        } else {
            Ref(self.owner)
        }
    }
    /// The profile's record, if this entry is the founder.
    pub(super) fn record(&self) -> Option<Ref> {
        (self.owner & FOUNDER != 0).then_some(Ref(self.owner & REF_MASK))
    }
    pub(super) fn set_founder(&mut self, founder: Ref) {
        self.owner = founder.0;
    }
    pub(super) fn set_record(&mut self, record: Ref) {
        self.owner = FOUNDER | record.0;
    }
    pub(super) fn next(&self) -> Ref {
        Ref(self.next & REF_MASK)
    }
    pub(super) fn set_next(&mut self, next: Ref) {
        self.next = (self.next & !REF_MASK) | next.0;
    }
}

/// One profile's record, kept in the shard of its founding identifier: 16 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Meta {
    /// Creation order across the whole graph, from 1; 0 marks a free slot. Never reused,
    /// so (slot, born) names one profile for good.
    pub(super) born: u64,
    /// The founding identifier's slot in this same shard. Its hash is the profile id.
    pub(super) founder: u32,
    pub(super) size: u16,
}

/// Fixed-size chunks with a free list. Slots are never moved, so a [`Ref`] stays valid
/// until its slot is freed. Freed slots (erasures, absorbed profiles) are reused; an
/// arena never gives memory back, which suits a graph that only grows on the whole.
#[derive(Clone)]
struct Arena<T> {
    chunks: Vec<Vec<T>>,
    free: Vec<u32>,
}

impl<T> Arena<T> {
    fn new() -> Arena<T> {
        Arena {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }

    fn slots(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |c| (self.chunks.len() - 1) * CHUNK + c.len())
    }

    fn room(&self) -> usize {
        self.free.len() + (SLOTS as usize - self.slots())
    }

    fn alloc(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop() {
            if let Some(v) = self.get_mut(slot) {
                *v = value;
            }
            return slot;
        }
        let slot = self.slots() as u32;
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(value),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(value);
                self.chunks.push(c);
            }
        }
        slot
    }

    fn get(&self, slot: u32) -> Option<&T> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        let slot = slot as usize;
        self.chunks.get_mut(slot / CHUNK)?.get_mut(slot % CHUNK)
    }
}

pub(super) struct Shard {
    index: HashTable<u32>,
    entries: Arena<Entry>,
    profiles: Arena<Meta>,
    live_profiles: usize,
}

impl Shard {
    pub(super) fn new() -> Shard {
        Shard {
            index: HashTable::new(),
            entries: Arena::new(),
            profiles: Arena::new(),
            live_profiles: 0,
        }
    }

    /// The slot of the identifier with this hash.
    pub(super) fn find(&self, hash: u128) -> Option<u32> {
        let entries = &self.entries;
        let key = [(hash >> 64) as u64, hash as u64];
        self.index
            .find(table_hash(hash), |&s| {
                entries.get(s).is_some_and(|e| e.hash == key)
            })
            .copied()
    }

    /// An entry by slot. `None` only for a slot never allocated; a freed slot still
    /// reads as its last occupant, which is why readers validate what they saw.
    pub(super) fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot)
    }

    pub(super) fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot)
    }

    /// Whether `ids` more identifiers and `profiles` more profile records fit.
    pub(super) fn has_room(&self, ids: usize, profiles: usize) -> bool {
        self.entries.room() >= ids && self.profiles.room() >= profiles
    }

    /// Stores a new identifier as a member of `founder`'s profile (the founder itself
    /// is stored with any ref here and then given its record); the caller has checked
    /// it is absent and that there is room.
    pub(super) fn insert(&mut self, id: IdHash, founder: Ref, next: Ref) -> u32 {
        let entry = Entry {
            hash: [(id.hash >> 64) as u64, id.hash as u64],
            owner: founder.0,
            next: ((kind_code(id.kind) as u32) << KIND_SHIFT) | next.0,
        };
        let slot = self.entries.alloc(entry);
        let entries = &self.entries;
        self.index.insert_unique(table_hash(id.hash), slot, |&s| {
            entries.get(s).map_or(0, |e| table_hash(e.hash()))
        });
        slot
    }

    /// Forgets the identifier in `slot`.
    pub(super) fn remove(&mut self, slot: u32) {
        let Some(hash) = self.entries.get(slot).map(Entry::hash) else {
            return;
        };
        if let Ok(found) = self.index.find_entry(table_hash(hash), |&s| s == slot) {
            found.remove();
            self.entries.free.push(slot);
        }
    }

    pub(super) fn meta(&self, slot: u32) -> Option<&Meta> {
        self.profiles.get(slot).filter(|m| m.born != 0)
    }

    pub(super) fn meta_mut(&mut self, slot: u32) -> Option<&mut Meta> {
        self.profiles.get_mut(slot).filter(|m| m.born != 0)
    }

    pub(super) fn new_profile(&mut self, meta: Meta) -> u32 {
        self.live_profiles += 1;
        self.profiles.alloc(meta)
    }

    pub(super) fn drop_profile(&mut self, slot: u32) {
        if let Some(m) = self.meta_mut(slot) {
            m.born = 0;
            self.profiles.free.push(slot);
            self.live_profiles -= 1;
        }
    }

    /// Live profile records, in slot order (the layout checks of the tests).
    #[cfg(test)]
    pub(super) fn profiles(&self) -> impl Iterator<Item = (u32, &Meta)> {
        live_profiles(&self.profiles)
    }

    pub(super) fn identifier_count(&self) -> usize {
        self.index.len()
    }

    pub(super) fn profile_count(&self) -> usize {
        self.live_profiles
    }

    /// A copy of the shard's identifiers and profiles, without its hash table, for a
    /// checkpoint: copying whole arena chunks is several times faster than encoding
    /// them, so the graph is locked only for the copy and encoded after.
    pub(super) fn freeze(&self) -> Frozen {
        Frozen {
            entries: self.entries.clone(),
            profiles: self.profiles.clone(),
            identifiers: self.index.len(),
            live_profiles: self.live_profiles,
        }
    }
}

/// Live profile records, in slot order.
fn live_profiles(profiles: &Arena<Meta>) -> impl Iterator<Item = (u32, &Meta)> {
    profiles
        .chunks
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, m)| m.born != 0)
        .map(|(slot, m)| (slot as u32, m))
}

/// One shard as it was when [`Shard::freeze`] copied it.
pub(super) struct Frozen {
    entries: Arena<Entry>,
    profiles: Arena<Meta>,
    identifiers: usize,
    live_profiles: usize,
}

impl Frozen {
    pub(super) fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot)
    }

    pub(super) fn profiles(&self) -> impl Iterator<Item = (u32, &Meta)> {
        live_profiles(&self.profiles)
    }

    pub(super) fn identifier_count(&self) -> usize {
        self.identifiers
    }

    pub(super) fn profile_count(&self) -> usize {
        self.live_profiles
    }
}
