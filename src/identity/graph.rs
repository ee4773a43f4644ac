//! The identity graph: identifiers seen together are one profile.
//!
//! A decision or conversion with personalisation consent calls [`IdentityGraph::link`]
//! with its identifiers; from then on any of them finds the same profile, across
//! channels (a loyalty id from the POS, a device id from the app and an e-mail hash from
//! the web end up as one profile once requests have connected them). Frequency caps,
//! holdout groups and attribution are kept per profile; erasure removes a profile and
//! everything linked to it.
//!
//! ```
//! use aftercart::identity::graph::{GraphConfig, IdentityGraph};
//! use aftercart::identity::{IdKind, IdentityHasher};
//!
//! let hasher = IdentityHasher::new(&[7; 32]);
//! let graph = IdentityGraph::new(GraphConfig::default());
//! let loyalty = hasher.hash(IdKind::LoyaltyId, "L-123");
//! let device = hasher.hash(IdKind::DeviceId, "d-77");
//! let email = hasher.hash_raw_email("ann@example.com");
//!
//! let pos = graph.link(&[loyalty]).unwrap(); // in store
//! let web = graph.link(&[email, device]).unwrap(); // online: a second profile
//! let app = graph.link(&[device, loyalty]).unwrap(); // the app joins the two
//! assert_eq!(app.profile, pos.profile, "the older profile survives");
//! assert_eq!(app.merged[0].absorbed, web.profile);
//! assert_eq!(graph.resolve(web.profile), Some(pos.profile));
//! assert_eq!(graph.members(pos.profile).len(), 3);
//!
//! assert_eq!(graph.erase(email).len(), 3);
//! assert_eq!(graph.profile_of(loyalty), None);
//! ```
//!
//! # Profile ids
//!
//! A [`ProfileId`] is the keyed hash of the profile's *founding* identifier: the most
//! durable identifier of the link that created it (a customer id before a loyalty id,
//! an e-mail hash, a phone hash, a payment token, a device id; ties by hash). It names
//! an identifier rather than a counter: the checkpoint keeps it across restarts, a
//! replay of the same links in the same order gives the same ids on any node, and the
//! order in which a client listed the identifiers makes no difference.
//!
//! When profiles merge, the oldest survives and keeps its id; the others are reported
//! in [`Linked::merged`] so that callers can fold per-profile state (cap counts, holdout
//! groups) into the survivor. An absorbed profile's founder is now a member of the
//! survivor, so [`IdentityGraph::resolve`] maps an old profile id (from a token or a
//! log record) to the current one with a plain lookup, and no table of aliases exists.
//!
//! Erasure forgets every identifier of the profile, so the graph cannot tell a returning
//! identifier from a new one, which is the point: the same identifiers seen afterwards
//! start a new, empty profile. If the same identifier founds it, the new profile has the
//! same id as the erased one; readers of the exposure log tell the two apart by whether
//! a record comes before or after the erasure record, as they do for conversions.
//!
//! # Bounded profiles
//!
//! A profile never holds more than [`GraphConfig::max_profile_size`] identifiers. A
//! store's test card or a shared family tablet would otherwise glue thousands of
//! shoppers into one profile, one link at a time. A link that would exceed the bound is
//! refused whole (see [`Linked::refused`]) and counted ([`GraphStats::refused_links`]).
//!
//! # Layout and locking
//!
//! Each identifier is a 24-byte entry in one of 64 shards, chosen by the top bits of its
//! hash: the hash, a 32-bit reference to its profile's founder entry, and a 32-bit
//! reference to the next member of the same profile (a ring through the members, which
//! is how members are listed and erased without a per-profile vector). A profile's
//! record (creation number, size: 16 bytes) sits in its founder's shard, and the
//! founder refers to it. Every member points at its founder directly (quick-find rather
//! than union-find trees), so a lookup is one hash probe and two entries, never a
//! chain of parents; the price, re-pointing the absorbed profile's members on a merge,
//! is bounded by the size bound.
//!
//! Each shard has its own `RwLock`: lookups, the common case, share it; no lock is global
//! and none is held across an `.await` (no method is async). A lookup reads its
//! identifier's shard and, when the founder lives in another, that shard too.
//! Changes are planned from reads, then the graph write-locks exactly the shards the
//! change touches, checks that nothing it read has changed (a profile's record changes
//! its size on every change and its creation number on reuse), applies it, or starts
//! over. Whoever holds two locks took them in ascending shard order, so no two
//! operations can wait on each other in a cycle. Write locks are held for a few hundred
//! nanoseconds, except when a shard's hash table doubles (about once per doubling of
//! the graph; at 10 million identifiers it rehashes ~150,000 slots, a pause of a few
//! milliseconds for that shard). A lock poisoned by a panic is used anyway: nothing here
//! is meant to panic while holding one, and refusing every later decision would be
//! worse.

mod change;
mod checkpoint;
mod store;
#[cfg(test)]
mod tests;

pub use checkpoint::CheckpointError;

use super::{IdHash, IdKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use store::{Ref, SHARDS, Shard, shard_of};

/// The default bound on identifiers per profile. A person has a handful of identifiers
/// per kind (devices, cards, addresses); 64 leaves room for a household, not a store.
pub const DEFAULT_MAX_PROFILE_SIZE: u16 = 64;

/// A profile: the 128-bit keyed hash of its founding identifier (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub u128);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphConfig {
    /// The most identifiers one profile may hold; at least 1.
    pub max_profile_size: u16,
}

impl Default for GraphConfig {
    fn default() -> GraphConfig {
        GraphConfig {
            max_profile_size: DEFAULT_MAX_PROFILE_SIZE,
        }
    }
}

/// One profile folded into another by a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merge {
    pub absorbed: ProfileId,
    pub into: ProfileId,
}

/// What a link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    /// The profile to serve and count the request as. After a merge, the survivor; on a
    /// refused link, the profile of the link's most durable identifier.
    pub profile: ProfileId,
    /// Whether any identifier was already known: the request was resolved to an
    /// existing profile (identity resolution rate).
    pub known: bool,
    /// Each profile absorbed, with the survivor it went into (always `profile`), oldest
    /// first. Empty unless profiles merged.
    pub merged: Vec<Merge>,
    /// The link would have made a profile larger than the bound, so no profiles merged
    /// and none grew; the link's unknown identifiers, if any, now form a new profile of
    /// their own (the most durable `max_profile_size` of them, when there are more).
    /// Also set when the graph is at capacity and could store none of them.
    pub refused: bool,
}

/// Figures for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    pub identifiers: u64,
    pub profiles: u64,
    /// Links refused because a profile would have exceeded the bound (a counter).
    pub refused_links: u64,
    /// Links that could not store new identifiers because a shard was full (a counter).
    pub over_capacity: u64,
}

/// The graph. Every method takes `&self`: share it behind an `Arc`.
pub struct IdentityGraph {
    shards: Box<[Padded]>,
    max_size: u16,
    /// The next profile's creation number. Merges keep the smaller one.
    next_born: AtomicU64,
    refused: AtomicU64,
    over_capacity: AtomicU64,
}

/// What a reader saw of one profile: where its record is, and enough to tell later
/// whether it has changed since (size grows on every change; `born` differs on reuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snap {
    founder: Ref,
    meta: Ref,
    born: u64,
    size: u16,
    id: ProfileId,
}

/// A shard's lock on a cache line pair of its own, so that threads working in
/// neighbouring shards do not invalidate each other's lock word.
#[repr(align(128))]
struct Padded(RwLock<Shard>);

impl std::ops::Deref for Padded {
    type Target = RwLock<Shard>;
    fn deref(&self) -> &RwLock<Shard> {
        &self.0
    }
}

/// A profile's members with where each one is stored, founder first.
type Ring = Vec<(Ref, IdHash)>;

/// How long an identifier of a kind tends to stay with one person, most durable first.
/// The founder of a new profile is chosen by it (so a profile is named after a customer
/// id rather than a device id when a request has both), and so is the anchor that a
/// refused link is served as.
fn durability(kind: IdKind) -> u8 {
    match kind {
        IdKind::CustomerId => 0,
        IdKind::LoyaltyId => 1,
        IdKind::EmailSha256 => 2,
        IdKind::PhoneSha256 => 3,
        IdKind::PaymentToken => 4,
        IdKind::DeviceId => 5,
    }
}

/// The profile founded by the entry at `founder`, from the founder's shard (which holds
/// the profile's record too).
fn snap_at(shard: &Shard, founder: Ref) -> Option<Snap> {
    let f = shard.entry(founder.slot())?;
    let meta = f.record()?;
    let m = shard.meta(meta.slot())?;
    (m.founder == founder.slot()).then_some(Snap {
        founder,
        meta,
        born: m.born,
        size: m.size,
        id: ProfileId(f.hash()),
    })
}

impl Default for IdentityGraph {
    fn default() -> IdentityGraph {
        IdentityGraph::new(GraphConfig::default())
    }
}

impl IdentityGraph {
    pub fn new(config: GraphConfig) -> IdentityGraph {
        IdentityGraph {
            shards: (0..SHARDS)
                .map(|_| Padded(RwLock::new(Shard::new())))
                .collect(),
            max_size: config.max_profile_size.max(1),
            next_born: AtomicU64::new(1),
            refused: AtomicU64::new(0),
            over_capacity: AtomicU64::new(0),
        }
    }

    /// Links `ids` into one profile: unknown identifiers join it, and the profiles the
    /// known ones are in merge into the oldest. `None` only when `ids` is empty or the
    /// graph is full and none of them was known.
    pub fn link(&self, ids: &[IdHash]) -> Option<Linked> {
        if ids.is_empty() {
            return None;
        }
        if let Some(linked) = self.already_linked(ids) {
            return Some(linked);
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable_by_key(|id| id.hash);
        ids.dedup_by_key(|id| id.hash);
        ids.sort_by_key(|id| (durability(id.kind), id.hash));
        self.link_sorted(&ids)
    }

    /// The profile `id` belongs to, without inserting it. Identifiers are matched by
    /// hash alone: the kind is part of what was hashed.
    pub fn profile_of(&self, id: IdHash) -> Option<ProfileId> {
        self.id_of(id.hash).map(|(_, p)| p)
    }

    /// The current profile of a profile id seen earlier: itself, the survivor it merged
    /// into, or `None` once erased. (After an erasure, an old id resolves again only if
    /// its founding identifier comes back: to the profile that identifier is then in.)
    pub fn resolve(&self, profile: ProfileId) -> Option<ProfileId> {
        self.id_of(profile.0).map(|(_, p)| p)
    }

    /// The identifiers of the profile `profile` resolves to, founder first; empty when
    /// unknown.
    pub fn members(&self, profile: ProfileId) -> Vec<IdHash> {
        loop {
            let Some(snap) = self.snap_of(profile.0) else {
                return Vec::new();
            };
            // The walk reads one shard at a time; it saw one state of the ring if the
            // record is unchanged afterwards, as every change to the ring changes it.
            if let Some(ring) = self.ring(&snap)
                && snap_at(&self.read(snap.founder.shard()), snap.founder) == Some(snap)
            {
                return ring.into_iter().map(|(_, id)| id).collect();
            }
        }
    }

    /// Removes the profile `id` belongs to and every identifier linked to it; returns
    /// them (founder first), empty when `id` is unknown.
    pub fn erase(&self, id: IdHash) -> Vec<IdHash> {
        self.erase_hash(id.hash)
    }

    /// Removes the profile `profile` resolves to, as [`IdentityGraph::erase`].
    pub fn erase_profile(&self, profile: ProfileId) -> Vec<IdHash> {
        self.erase_hash(profile.0)
    }

    pub fn stats(&self) -> GraphStats {
        let mut stats = GraphStats {
            refused_links: self.refused.load(Ordering::Relaxed),
            over_capacity: self.over_capacity.load(Ordering::Relaxed),
            ..GraphStats::default()
        };
        for s in 0..SHARDS {
            let g = self.read(s);
            stats.identifiers += g.identifier_count() as u64;
            stats.profiles += g.profile_count() as u64;
        }
        stats
    }

    /// A shard when nothing else can hold the graph (a checkpoint being loaded).
    fn shard_mut(&mut self, s: usize) -> &mut Shard {
        self.shards[s]
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, s: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[s]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The common case, with shared locks only: every identifier is known and already
    /// in one profile. The others are compared by founder, one shard read each.
    fn already_linked(&self, ids: &[IdHash]) -> Option<Linked> {
        let (first, rest) = ids.split_first()?;
        let (founder, profile) = self.id_of(first.hash)?;
        rest.iter()
            .all(|id| self.founder_of(id.hash) == Some(founder))
            .then(|| Linked {
                profile,
                known: true,
                merged: Vec::new(),
                refused: false,
            })
    }

    /// Reads the founder of the profile `hash` belongs to with `read`, while the entry
    /// and the founder are both under their locks, so the two agree.
    fn with_founder<R>(&self, hash: u128, read: impl Fn(&Shard, Ref) -> Option<R>) -> Option<R> {
        let home = shard_of(hash);
        loop {
            let g = self.read(home);
            let slot = g.find(hash)?;
            let founder = g.entry(slot)?.founder(Ref::new(home, slot));
            let there = founder.shard();
            if there == home {
                return read(&g, founder);
            }
            if there > home {
                return read(&self.read(there), founder);
            }
            // Two locks are only ever taken in ascending order: let go, take both in
            // that order, and check the entry still has the same founder.
            drop(g);
            let g2 = self.read(there);
            let g = self.read(home);
            let slot = g.find(hash)?;
            if g.entry(slot)?.founder(Ref::new(home, slot)) == founder {
                return read(&g2, founder);
            }
        }
    }

    /// The profile `hash` belongs to, with what a change needs to validate.
    fn snap_of(&self, hash: u128) -> Option<Snap> {
        self.with_founder(hash, snap_at)
    }

    /// The profile `hash` belongs to and its founder: what a lookup needs, without the
    /// profile's record (one memory access fewer).
    fn id_of(&self, hash: u128) -> Option<(Ref, ProfileId)> {
        self.with_founder(hash, |shard, founder| {
            let e = shard.entry(founder.slot())?;
            e.record()?;
            Some((founder, ProfileId(e.hash())))
        })
    }

    /// The founder of the profile `hash` belongs to: one shard, one lock.
    fn founder_of(&self, hash: u128) -> Option<Ref> {
        let home = shard_of(hash);
        let g = self.read(home);
        let slot = g.find(hash)?;
        Some(g.entry(slot)?.founder(Ref::new(home, slot)))
    }

    /// The members of the profile `snap` saw, read one shard at a time, so only a plan:
    /// `None` when the walk met a change.
    fn ring(&self, snap: &Snap) -> Option<Ring> {
        let mut ring = Vec::with_capacity(snap.size as usize);
        let mut at = snap.founder;
        loop {
            let (id, next, founder) = {
                let g = self.read(at.shard());
                let e = g.entry(at.slot())?;
                (e.id(), e.next(), e.founder(at))
            };
            if founder != snap.founder || ring.len() == snap.size as usize {
                return None;
            }
            ring.push((at, id));
            if next == snap.founder {
                break;
            }
            at = next;
        }
        (ring.len() == snap.size as usize).then_some(ring)
    }
}
