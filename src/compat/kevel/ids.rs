//! Stable numbers for aftercart's ids, because Kevel's decisions carry integers.
//!
//! aftercart names things with strings (`cmp-streamly-trial`); a Kevel decision has
//! `adId`, `creativeId`, `flightId`, `campaignId`, `advertiserId` and `priorityId`,
//! positive 32-bit integers that integrations store, log and report on. Each entity
//! gets one number for the life of the deployment:
//!
//! | entity | its key | Kevel fields |
//! |---|---|---|
//! | advertiser | the advertiser id | `advertiserId` |
//! | campaign | the campaign id | `campaignId`, `flightId` (an aftercart campaign is also its one flight) |
//! | creative | `campaign/creative` (creative ids are unique within a campaign) | `creativeId`, `adId` |
//! | priority | the campaign's priority, in decimal | `priorityId` |
//!
//! **The scheme.** An entity's *home* number is the xxh3-64 hash of its kind tag and
//! key, masked to 31 bits (0 becomes 1): the range of a positive signed 32-bit
//! integer, which every Kevel client reads without surprise. Numbers are unique
//! across all four kinds, so a number alone names one entity. When the home is
//! already taken by another entity (two ids whose hashes agree in 31 bits: likely
//! somewhere among ~50,000 ids), the next free number up is taken (linear probing,
//! wrapping from 2^31 − 1 to 1).
//!
//! **Why a registry.** Probing depends on which entity came first, so the numbers
//! handed out are written down: a journal under `DATA/compat/kevel-ids/`, fsynced
//! before the response that first shows a number is sent. On start the journal is
//! replayed, so every number keeps its entity across restarts, whatever order
//! entities are seen in afterwards. Numbers are never reused, even when a campaign is
//! deleted: an integration's reports may still name it. Entities are numbered the
//! first time a Kevel response needs them (a deployment that never uses the Kevel
//! endpoint keeps no registry); an entity seen for the first time costs that one
//! response an fsync, and everything after is a concurrent map lookup.

use crate::exposure::storage::{Faults, LogError};
use crate::journal::Journal;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::xxh3_64;

/// The largest number handed out: Kevel's ids are positive signed 32-bit integers.
pub const MAX: u32 = i32::MAX as u32;

/// What a number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Advertiser,
    Campaign,
    Creative,
    Priority,
}

impl Entity {
    pub const ALL: [Entity; 4] = [
        Entity::Advertiser,
        Entity::Campaign,
        Entity::Creative,
        Entity::Priority,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Advertiser => "advertiser",
            Entity::Campaign => "campaign",
            Entity::Creative => "creative",
            Entity::Priority => "priority",
        }
    }

    /// The Kevel decision fields that carry this entity's number.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Entity::Advertiser => &["advertiserId"],
            Entity::Campaign => &["campaignId", "flightId"],
            Entity::Creative => &["creativeId", "adId"],
            Entity::Priority => &["priorityId"],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The key of a creative: creative ids are unique only within their campaign.
pub fn creative_key(campaign: &str, creative: &str) -> String {
    format!("{campaign}/{creative}")
}

/// Where the search for `key`'s number starts: its hash, in 1..=[`MAX`].
pub fn home(entity: Entity, key: &str) -> u32 {
    let mut buf = Vec::with_capacity(key.len() + 1);
    buf.push(entity as u8);
    buf.extend_from_slice(key.as_bytes());
    match (xxh3_64(&buf) as u32) & MAX {
        0 => 1,
        n => n,
    }
}

/// The next number to try after `n`, wrapping past [`MAX`] to 1.
fn next(n: u32) -> u32 {
    if n >= MAX { 1 } else { n + 1 }
}

/// One journal entry: `number` was given to `(entity, key)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Assigned {
    number: u32,
    entity: Entity,
    key: String,
}

pub struct KevelIds {
    /// Per entity: key → number. Reads (every Kevel decision) take no lock of ours.
    by_key: [DashMap<Box<str>, u32>; 4],
    /// number → what it names.
    by_number: DashMap<u32, (Entity, Box<str>)>,
    /// Serialises assignments: probing must see every number given so far.
    journal: Mutex<Journal<Assigned>>,
}

impl KevelIds {
    /// Opens the registry journalled in `dir` (created on first use).
    pub fn open(dir: &Path, faults: Arc<Faults>) -> Result<KevelIds, LogError> {
        let (journal, entries) = Journal::open(dir, faults)?;
        let ids = KevelIds {
            by_key: Default::default(),
            by_number: DashMap::new(),
            journal: Mutex::new(journal),
        };
        for a in entries {
            let clash = ids.by_number.get(&a.number).map(|e| e.clone());
            if clash.is_some_and(|(e, k)| e != a.entity || *k != *a.key)
                || ids.get(a.entity, &a.key).is_some_and(|n| n != a.number)
                || a.number == 0
                || a.number > MAX
            {
                return Err(LogError::Corrupt {
                    offset: 0,
                    path: dir.to_path_buf(),
                    reason: format!(
                        "the Kevel id registry gives {} twice or {:?} {:?} two numbers",
                        a.number, a.entity, a.key
                    ),
                });
            }
            ids.insert(a);
        }
        Ok(ids)
    }

    fn insert(&self, a: Assigned) {
        let key: Box<str> = a.key.into();
        self.by_key[a.entity.index()].insert(key.clone(), a.number);
        self.by_number.insert(a.number, (a.entity, key));
    }

    /// The number of `(entity, key)`, if it has one.
    pub fn get(&self, entity: Entity, key: &str) -> Option<u32> {
        self.by_key[entity.index()].get(key).map(|n| *n)
    }

    /// What `number` names, if anything.
    pub fn name(&self, number: u32) -> Option<(Entity, String)> {
        (self.by_number.get(&number)).map(|e| (e.0, e.1.to_string()))
    }

    /// Numbers registered so far.
    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }

    /// Gives a number to each of `wanted` that has none yet, durably: when this returns
    /// `Ok`, the numbers are journalled (fsynced) and visible to [`KevelIds::get`].
    /// Within one call, entities are numbered in sorted order, so which one probes
    /// does not depend on the order they were listed in.
    pub fn assign(&self, wanted: &[(Entity, String)]) -> std::io::Result<()> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted: Vec<&(Entity, String)> = (wanted.iter())
            .filter(|(e, k)| self.get(*e, k).is_none())
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut fresh: Vec<Assigned> = Vec::with_capacity(wanted.len());
        for (entity, key) in wanted {
            let mut n = home(*entity, key);
            // Terminates: 2^31 − 1 numbers, and a deployment holds far fewer entities.
            while self.by_number.contains_key(&n) || fresh.iter().any(|a| a.number == n) {
                n = next(n);
            }
            fresh.push(Assigned {
                number: n,
                entity: *entity,
                key: key.clone(),
            });
        }
        journal.append(&fresh)?;
        // Published only once durable, and still under the lock, so the next
        // assignment probes past them.
        fresh.into_iter().for_each(|a| self.insert(a));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two campaign ids whose home numbers are equal (found by brute force: with 31
    /// bits, a pair turns up among some tens of thousands of ids).
    pub(crate) fn colliding_pair(entity: Entity) -> (String, String) {
        let mut seen = std::collections::HashMap::new();
        for i in 0.. {
            let key = format!("cmp-{i}");
            if let Some(other) = seen.insert(home(entity, &key), key.clone()) {
                return (other, key);
            }
        }
        unreachable!()
    }

    fn open(dir: &Path) -> KevelIds {
        KevelIds::open(dir, Arc::default()).unwrap()
    }

    #[test]
    fn homes_are_positive_31_bit_numbers_and_differ_by_kind() {
        for key in ["a", "cmp-streamly-trial", "10", ""] {
            for e in Entity::ALL {
                let n = home(e, key);
                assert!((1..=MAX).contains(&n), "{n}");
            }
        }
        assert_ne!(home(Entity::Campaign, "x"), home(Entity::Advertiser, "x"));
        assert_eq!(next(MAX), 1);
    }

    #[test]
    fn a_collision_probes_and_the_first_comer_keeps_its_number_across_restarts() {
        let (a, b) = colliding_pair(Entity::Campaign);
        assert_eq!(home(Entity::Campaign, &a), home(Entity::Campaign, &b));
        let dir = tempfile::tempdir().unwrap();
        let (na, nb) = {
            let ids = open(dir.path());
            ids.assign(&[(Entity::Campaign, b.clone())]).unwrap();
            ids.assign(&[(Entity::Campaign, a.clone())]).unwrap();
            let na = ids.get(Entity::Campaign, &a).unwrap();
            let nb = ids.get(Entity::Campaign, &b).unwrap();
            (na, nb)
        };
        // b came first: it has the home, a the next number up.
        assert_eq!(nb, home(Entity::Campaign, &b));
        assert_eq!(na, next(nb));
        // After a restart, in whatever order they are asked for, nothing moves.
        let ids = open(dir.path());
        ids.assign(&[(Entity::Campaign, a.clone()), (Entity::Campaign, b.clone())])
            .unwrap();
        assert_eq!(ids.get(Entity::Campaign, &a), Some(na));
        assert_eq!(ids.get(Entity::Campaign, &b), Some(nb));
        assert_eq!(ids.name(na), Some((Entity::Campaign, a.clone())));
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn one_batch_numbers_in_sorted_order_whatever_the_listing() {
        let (a, b) = colliding_pair(Entity::Creative);
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let x = open(d1.path());
        let y = open(d2.path());
        x.assign(&[
            (Entity::Creative, first.clone()),
            (Entity::Creative, second.clone()),
        ])
        .unwrap();
        y.assign(&[
            (Entity::Creative, second.clone()),
            (Entity::Creative, first.clone()),
        ])
        .unwrap();
        for key in [&first, &second] {
            assert_eq!(x.get(Entity::Creative, key), y.get(Entity::Creative, key));
        }
        assert_eq!(
            x.get(Entity::Creative, &first),
            Some(home(Entity::Creative, &first))
        );
    }

    #[test]
    fn the_same_key_under_two_kinds_gets_two_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let ids = open(dir.path());
        ids.assign(&[
            (Entity::Advertiser, "x".into()),
            (Entity::Campaign, "x".into()),
        ])
        .unwrap();
        let adv = ids.get(Entity::Advertiser, "x").unwrap();
        let cmp = ids.get(Entity::Campaign, "x").unwrap();
        assert_ne!(adv, cmp);
        assert_eq!(ids.name(adv).unwrap().0, Entity::Advertiser);
        assert_eq!(ids.name(cmp).unwrap().0, Entity::Campaign);
    }
}
