//! Stored consent: a person's recorded choice, applied to every later decision that
//! carries one of their identifiers.
//!
//! A decision says what consent it has (`consent`, else the deployment's
//! `default_consent`, and `Sec-GPC: 1` withholds personalisation). A site that keeps
//! consent in a consent-management platform can also record it once per person
//! (Kevel's UserDB consent call, `POST /udb/{networkId}/consent`), keyed by one of
//! their identifiers. The rules, per purpose (personalisation, measurement):
//!
//! - **Withholding wins.** If the request or any stored record for the request's
//!   identifiers (or for any identifier linked to them in one profile) withholds the
//!   purpose, it is withheld. A request cannot grant what the person's record
//!   withholds; the site changes the record instead.
//! - Otherwise, if either grants it, it is granted.
//! - Otherwise the deployment's default applies.
//!
//! Records are keyed by the identifier's keyed hash (never the raw value), kept in
//! memory, and durable in a journal under `DATA/consent/` (fsynced before the call
//! that stored them is answered). Erasing a person removes their records; the
//! journal's next compaction (at each checkpoint) drops them from disk too.

use crate::exposure::storage::{Faults, LogError};
use crate::identity::graph::IdentityGraph;
use crate::identity::{IdHash, IdKind};
use crate::journal::Journal;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Consent per purpose: `Some(true)` granted, `Some(false)` withheld, `None` unsaid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personalization: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<bool>,
}

impl Consent {
    /// Both statements together: withholding wins, then granting, then unsaid.
    pub fn and(self, other: Consent) -> Consent {
        Consent {
            personalization: both(self.personalization, other.personalization),
            measurement: both(self.measurement, other.measurement),
        }
    }

    pub fn is_unsaid(self) -> bool {
        self.personalization.is_none() && self.measurement.is_none()
    }
}

fn both(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), _) | (_, Some(true)) => Some(true),
        _ => None,
    }
}

/// A stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub kind: IdKind,
    pub consent: Consent,
    /// When it was recorded (ms since the epoch).
    pub at_ms: i64,
}

/// One journal entry: a record set, or an identifier's record removed.
#[derive(Serialize, Deserialize)]
enum Entry {
    Set {
        hash: (u64, u64),
        kind: IdKind,
        consent: Consent,
        at_ms: i64,
    },
    Erase {
        hash: (u64, u64),
    },
}

fn halves(h: u128) -> (u64, u64) {
    ((h >> 64) as u64, h as u64)
}

fn whole((hi, lo): (u64, u64)) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

pub struct ConsentStore {
    /// Identifier hash → record. Hashes are keyed, so DashMap's seeded hasher is more
    /// than enough.
    records: DashMap<u128, Stored>,
    /// How many records there are: every decision with identifiers asks, and this
    /// answers without touching the map's shards.
    count: AtomicUsize,
    /// `None` for a store that keeps nothing on disk (benches).
    journal: Option<Mutex<Journal<Entry>>>,
}

impl ConsentStore {
    /// Opens the store journalled in `dir`.
    pub fn open(dir: &Path, faults: Arc<Faults>) -> Result<ConsentStore, LogError> {
        let (journal, entries) = Journal::open(dir, faults)?;
        let store = ConsentStore {
            records: DashMap::new(),
            count: AtomicUsize::new(0),
            journal: Some(Mutex::new(journal)),
        };
        for e in entries {
            store.apply(e);
        }
        Ok(store)
    }

    /// A store that persists nothing.
    pub fn in_memory() -> ConsentStore {
        ConsentStore {
            records: DashMap::new(),
            count: AtomicUsize::new(0),
            journal: None,
        }
    }

    /// Applies one entry. Only an insert that adds a record and a remove that takes
    /// one move the count, so it stays exact.
    fn apply(&self, e: Entry) {
        match e {
            Entry::Set {
                hash,
                kind,
                consent,
                at_ms,
            } => {
                let stored = Stored {
                    kind,
                    consent,
                    at_ms,
                };
                if self.records.insert(whole(hash), stored).is_none() {
                    self.count.fetch_add(1, Ordering::Release);
                }
            }
            Entry::Erase { hash } => {
                if self.records.remove(&whole(hash)).is_some() {
                    self.count.fetch_sub(1, Ordering::Release);
                }
            }
        }
    }

    /// Journals `entries` (durably) and applies them, in one order for both.
    fn change(&self, entries: Vec<Entry>) -> std::io::Result<()> {
        let Some(journal) = &self.journal else {
            entries.into_iter().for_each(|e| self.apply(e));
            return Ok(());
        };
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        journal.append(&entries)?;
        entries.into_iter().for_each(|e| self.apply(e));
        Ok(())
    }

    /// Records `consent` for the identifier `id`, replacing any earlier record.
    pub fn set(&self, id: IdHash, consent: Consent, at_ms: i64) -> std::io::Result<()> {
        self.change(vec![Entry::Set {
            hash: halves(id.hash),
            kind: id.kind,
            consent,
            at_ms,
        }])
    }

    pub fn get(&self, id: IdHash) -> Option<Stored> {
        self.records.get(&id.hash).map(|r| *r)
    }

    /// Removes the records of `ids`; returns how many there were.
    pub fn erase(&self, ids: &[IdHash]) -> std::io::Result<usize> {
        let known: Vec<Entry> = (ids.iter())
            .filter(|id| self.records.contains_key(&id.hash))
            .map(|id| Entry::Erase {
                hash: halves(id.hash),
            })
            .collect();
        let n = known.len();
        if n > 0 {
            self.change(known)?;
        }
        Ok(n)
    }

    /// What the stored records say for a request carrying `ids`: every record of those
    /// identifiers and of the identifiers linked to them, combined (withholding wins).
    pub fn for_request(&self, ids: &[IdHash], graph: &IdentityGraph) -> Consent {
        // Most deployments store none: no lookups at all then.
        if self.is_empty() {
            return Consent::default();
        }
        let mut out = Consent::default();
        let mut seen_profiles = Vec::new();
        for &id in ids {
            if let Some(r) = self.get(id) {
                out = out.and(r.consent);
            }
            if let Some(p) = graph.profile_of(id)
                && !seen_profiles.contains(&p.0)
            {
                seen_profiles.push(p.0);
                for m in graph.members(p).into_iter().filter(|m| !ids.contains(m)) {
                    if let Some(r) = self.get(m) {
                        out = out.and(r.consent);
                    }
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rewrites the journal as the current records alone (at each checkpoint), so
    /// erased records leave the disk.
    pub fn compact(&self) -> Result<(), LogError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        let state: Vec<Entry> = (self.records.iter())
            .map(|r| Entry::Set {
                hash: halves(*r.key()),
                kind: r.kind,
                consent: r.consent,
                at_ms: r.at_ms,
            })
            .collect();
        journal.compact(&state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> IdHash {
        IdHash {
            kind: IdKind::CustomerId,
            hash: n,
        }
    }

    const GRANT: Consent = Consent {
        personalization: Some(true),
        measurement: Some(true),
    };
    const WITHHOLD: Consent = Consent {
        personalization: Some(false),
        measurement: Some(false),
    };

    #[test]
    fn withholding_wins_then_granting_then_unsaid() {
        let only_p = Consent {
            personalization: Some(false),
            measurement: None,
        };
        assert_eq!(GRANT.and(WITHHOLD), WITHHOLD);
        assert_eq!(WITHHOLD.and(GRANT), WITHHOLD);
        assert_eq!(
            GRANT.and(only_p),
            Consent {
                personalization: Some(false),
                measurement: Some(true)
            }
        );
        assert_eq!(Consent::default().and(only_p), only_p);
        assert!(Consent::default().is_unsaid());
    }

    #[test]
    fn records_survive_reopening_and_erasure_survives_compaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = ConsentStore::open(dir.path(), Arc::default()).unwrap();
            s.set(id(1), WITHHOLD, 10).unwrap();
            s.set(id(2), GRANT, 11).unwrap();
            s.set(id(1), GRANT, 12).unwrap();
        }
        {
            let s = ConsentStore::open(dir.path(), Arc::default()).unwrap();
            assert_eq!(s.get(id(1)).unwrap().consent, GRANT);
            assert_eq!(s.get(id(1)).unwrap().at_ms, 12);
            assert_eq!(s.erase(&[id(1), id(3)]).unwrap(), 1);
            s.compact().unwrap();
            s.set(id(4), WITHHOLD, 13).unwrap();
        }
        let s = ConsentStore::open(dir.path(), Arc::default()).unwrap();
        assert_eq!(s.get(id(1)), None);
        assert_eq!(s.get(id(2)).unwrap().consent, GRANT);
        assert_eq!(s.get(id(4)).unwrap().consent, WITHHOLD);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_request_sees_the_records_of_linked_identifiers() {
        let graph = IdentityGraph::new(Default::default());
        let s = ConsentStore::in_memory();
        let (customer, device, other) = (
            id(1),
            IdHash {
                kind: IdKind::DeviceId,
                hash: 2,
            },
            id(3),
        );
        graph.link(&[customer, device]);
        assert!(s.for_request(&[device], &graph).is_unsaid());
        s.set(customer, WITHHOLD, 1).unwrap();
        assert_eq!(s.for_request(&[device], &graph), WITHHOLD);
        assert!(s.for_request(&[other], &graph).is_unsaid());
        s.set(other, GRANT, 2).unwrap();
        assert_eq!(s.for_request(&[other, device], &graph), WITHHOLD);
    }
}
