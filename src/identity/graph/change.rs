//! Changes to the graph: links and erasures.
//!
//! Each change is planned from ordinary reads (one shard lock at a time), then takes
//! the write locks of exactly the shards it will touch, in ascending shard order,
//! checks that what it read still holds, and applies itself, or lets go and plans again.
//! A retry means another change succeeded meanwhile, so the graph as a whole always
//! makes progress.

use super::store::{Meta, Ref, SHARDS, Shard, shard_of};
use super::{IdentityGraph, Linked, Merge, ProfileId, Snap, snap_at};
use crate::identity::IdHash;
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, RwLockWriteGuard};

enum Attempt {
    Done(Option<Linked>),
    Retry,
}

fn bit(shard: usize) -> u64 {
    1 << shard
}

/// Write guards on a set of shards, taken in ascending order.
struct Locked<'a> {
    guards: [Option<RwLockWriteGuard<'a, Shard>>; SHARDS],
}

impl Locked<'_> {
    fn shard(&mut self, s: usize) -> &mut Shard {
        self.guards[s]
            .as_deref_mut()
            .expect("an operation only touches the shards it locked")
    }

    fn founder_at(&mut self, hash: u128) -> Option<Ref> {
        let home = shard_of(hash);
        let shard = self.shard(home);
        let slot = shard.find(hash)?;
        Some(shard.entry(slot)?.founder(Ref::new(home, slot)))
    }

    fn next(&mut self, at: Ref) -> Ref {
        self.shard(at.shard())
            .entry(at.slot())
            .map_or(at, |e| e.next())
    }

    fn set_next(&mut self, at: Ref, next: Ref) {
        if let Some(e) = self.shard(at.shard()).entry_mut(at.slot()) {
            e.set_next(next);
        }
    }

    /// Whether `ids` (absent, spread over their shards) and `profiles` new records in
    /// shard `home` fit.
    fn fits(&mut self, ids: &[IdHash], home: usize, profiles: usize) -> bool {
        let mut per_shard = [0usize; SHARDS];
        for id in ids {
            per_shard[shard_of(id.hash)] += 1;
        }
        per_shard.iter().enumerate().all(|(s, &n)| {
            let records = if s == home { profiles } else { 0 };
            (n == 0 && records == 0) || self.shard(s).has_room(n, records)
        })
    }
}

impl IdentityGraph {
    /// Links deduplicated `ids`, most durable first, retrying until an attempt holds.
    pub(super) fn link_sorted(&self, ids: &[IdHash]) -> Option<Linked> {
        loop {
            if let Attempt::Done(linked) = self.try_link(ids) {
                return linked;
            }
        }
    }

    /// Write-locks the shards in `mask` from the lowest up: the one order in which
    /// anything here holds two locks, so no two threads can wait on each other.
    fn lock(&self, mask: u64) -> Locked<'_> {
        let mut guards: [Option<RwLockWriteGuard<'_, Shard>>; SHARDS] =
            std::array::from_fn(|_| None);
        let mut rest = mask;
        while rest != 0 {
            let s = rest.trailing_zeros() as usize;
            guards[s] = Some(
                self.shards[s]
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            rest &= rest - 1;
        }
        Locked { guards }
    }

    /// One attempt at a link of deduplicated `ids`, most durable first.
    fn try_link(&self, ids: &[IdHash]) -> Attempt {
        let seen: Vec<Option<Snap>> = ids.iter().map(|id| self.snap_of(id.hash)).collect();
        let mut profiles: Vec<Snap> = seen.iter().flatten().copied().collect();
        profiles.sort_unstable_by_key(|p| (p.born, p.founder.shard(), p.founder.slot()));
        profiles.dedup_by_key(|p| p.founder);
        let new: Vec<IdHash> = ids
            .iter()
            .zip(&seen)
            .filter(|(_, s)| s.is_none())
            .map(|(id, _)| *id)
            .collect();
        if profiles.is_empty() {
            return self.found_alone(&new);
        }
        if profiles.len() == 1 && new.is_empty() {
            return Attempt::Done(Some(Linked {
                profile: profiles[0].id,
                known: true,
                merged: Vec::new(),
                refused: false,
            }));
        }
        let total = profiles.iter().map(|p| p.size as usize).sum::<usize>() + new.len();
        if total > self.max_size as usize {
            return self.refuse(&seen, &profiles, &new);
        }
        self.merge(ids, &seen, &profiles, &new)
    }

    /// A link of identifiers none of which is known: one new profile.
    fn found_alone(&self, new: &[IdHash]) -> Attempt {
        let too_many = new.len() > self.max_size as usize;
        match self.found(new) {
            None => Attempt::Retry,
            Some(None) => {
                self.over_capacity.fetch_add(1, Ordering::Relaxed);
                Attempt::Done(None)
            }
            Some(Some(profile)) => {
                if too_many {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
                Attempt::Done(Some(Linked {
                    profile,
                    known: false,
                    merged: Vec::new(),
                    refused: too_many,
                }))
            }
        }
    }

    /// Stores unknown identifiers (most durable first, at most the bound of them) as a
    /// new profile founded by the first. `None` to retry (one became known meanwhile),
    /// `Some(None)` when there is no room.
    fn found(&self, new: &[IdHash]) -> Option<Option<ProfileId>> {
        let new = &new[..new.len().min(self.max_size as usize)];
        let (&founder, rest) = new.split_first()?;
        let home = shard_of(founder.hash);
        let mask = new.iter().fold(0, |m, id| m | bit(shard_of(id.hash)));
        let mut locked = self.lock(mask);
        if new.iter().any(|id| locked.founder_at(id.hash).is_some()) {
            return None;
        }
        if !locked.fits(new, home, 1) {
            return Some(None);
        }
        let born = self.next_born.fetch_add(1, Ordering::Relaxed);
        let shard = locked.shard(home);
        let founder_slot = shard.insert(founder, Ref::new(home, 0), Ref::new(home, 0));
        let meta_slot = shard.new_profile(Meta {
            born,
            founder: founder_slot,
            size: new.len() as u16,
        });
        let first = Ref::new(home, founder_slot);
        if let Some(e) = shard.entry_mut(founder_slot) {
            e.set_record(Ref::new(home, meta_slot));
            e.set_next(first);
        }
        let mut tail = first;
        for id in rest {
            let s = shard_of(id.hash);
            let at = Ref::new(s, locked.shard(s).insert(*id, first, first));
            locked.set_next(tail, at);
            tail = at;
        }
        Some(Some(ProfileId(founder.hash)))
    }

    /// A link that would exceed the bound: nothing merges, the unknown identifiers form
    /// a profile of their own, and the request is served as its most durable identifier.
    fn refuse(&self, seen: &[Option<Snap>], profiles: &[Snap], new: &[IdHash]) -> Attempt {
        let founded = if new.is_empty() {
            None
        } else {
            match self.found(new) {
                None => return Attempt::Retry,
                Some(None) => {
                    self.over_capacity.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Some(founded) => founded,
            }
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        let profile = match (seen[0], founded) {
            (Some(anchor), _) => anchor.id,
            (None, Some(founded)) => founded,
            (None, None) => profiles[0].id,
        };
        Attempt::Done(Some(Linked {
            profile,
            known: true,
            merged: Vec::new(),
            refused: true,
        }))
    }

    /// Merges `profiles` (oldest first) and adds `new`, all within the bound.
    fn merge(
        &self,
        ids: &[IdHash],
        seen: &[Option<Snap>],
        profiles: &[Snap],
        new: &[IdHash],
    ) -> Attempt {
        let (survivor, absorbed) = (profiles[0], &profiles[1..]);
        let mut rings = Vec::with_capacity(absorbed.len());
        for a in absorbed {
            match self.ring(a) {
                Some(ring) => rings.push(ring),
                None => return Attempt::Retry,
            }
        }
        let mut mask = ids.iter().fold(0, |m, id| m | bit(shard_of(id.hash)));
        for p in profiles {
            mask |= bit(p.founder.shard());
        }
        for (at, _) in rings.iter().flatten() {
            mask |= bit(at.shard());
        }
        let mut locked = self.lock(mask);
        // Unchanged records mean unchanged rings, so the planned relabelling is exact.
        let unchanged = ids
            .iter()
            .zip(seen)
            .all(|(id, s)| locked.founder_at(id.hash) == s.map(|s| s.founder))
            && profiles
                .iter()
                .all(|p| snap_at(locked.shard(p.founder.shard()), p.founder) == Some(*p));
        if !unchanged {
            return Attempt::Retry;
        }
        if !locked.fits(new, 0, 0) {
            self.over_capacity.fetch_add(1, Ordering::Relaxed);
            return Attempt::Done(Some(Linked {
                profile: seen[0].map_or(survivor.id, |s| s.id),
                known: true,
                merged: Vec::new(),
                refused: true,
            }));
        }
        let mut size = survivor.size;
        let mut merged = Vec::with_capacity(absorbed.len());
        for (a, ring) in absorbed.iter().zip(&rings) {
            for (at, _) in ring {
                // The absorbed founder too: it becomes an ordinary member.
                if let Some(e) = locked.shard(at.shard()).entry_mut(at.slot()) {
                    e.set_founder(survivor.founder);
                }
            }
            // Swapping the two founders' successors splices two rings into one.
            let (s_next, a_next) = (locked.next(survivor.founder), locked.next(a.founder));
            locked.set_next(survivor.founder, a_next);
            locked.set_next(a.founder, s_next);
            size += a.size;
            locked.shard(a.meta.shard()).drop_profile(a.meta.slot());
            merged.push(Merge {
                absorbed: a.id,
                into: survivor.id,
            });
        }
        for id in new {
            let s = shard_of(id.hash);
            let after = locked.next(survivor.founder);
            let at = Ref::new(s, locked.shard(s).insert(*id, survivor.founder, after));
            locked.set_next(survivor.founder, at);
            size += 1;
        }
        if let Some(m) = locked
            .shard(survivor.meta.shard())
            .meta_mut(survivor.meta.slot())
        {
            m.size = size;
        }
        Attempt::Done(Some(Linked {
            profile: survivor.id,
            known: true,
            merged,
            refused: false,
        }))
    }

    /// Erases the profile that the identifier with this hash belongs to.
    pub(super) fn erase_hash(&self, hash: u128) -> Vec<IdHash> {
        loop {
            let Some(snap) = self.snap_of(hash) else {
                return Vec::new();
            };
            let Some(ring) = self.ring(&snap) else {
                continue;
            };
            let mask = ring
                .iter()
                .fold(bit(snap.founder.shard()), |m, (at, _)| m | bit(at.shard()));
            let mut locked = self.lock(mask);
            if snap_at(locked.shard(snap.founder.shard()), snap.founder) != Some(snap) {
                continue;
            }
            for (at, _) in &ring {
                locked.shard(at.shard()).remove(at.slot());
            }
            locked
                .shard(snap.meta.shard())
                .drop_profile(snap.meta.slot());
            return ring.into_iter().map(|(_, id)| id).collect();
        }
    }
}
