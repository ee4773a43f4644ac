//! Erasure: forgetting a person everywhere, for good.
//!
//! `DELETE /v1/profiles` removes the profile and every identifier linked to it from the
//! identity graph and its per-profile memory (caps, holdout groups, purchases), and
//! logs an `erasure` record naming the erased profile and identifier hashes. The log
//! itself is append-only, so its older records are not rewritten; instead every
//! reader redacts them: a record from before an erasure that carries one of its
//! identifiers or its profile is shown without identifiers, profile, transaction or
//! order id. The same identifiers seen after the erasure are a new person.
//!
//! Readers learn about erasures from [`Erasures`], kept as `erasures.idx` inside the
//! log folder (written atomically before the erasure is acknowledged) and also
//! rebuilt from `erasure` records as they are read, so the log folder alone is enough
//! to redact it.

use crate::exposure::record::{H128, Kind, Record};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The index file, inside the log folder (the segment lister ignores it).
pub const INDEX: &str = "erasures.idx";

/// The `reason` of a record written for an already erased person (a conversion
/// backfilled from before the erasure): readers always redact it.
pub const ERASED: &str = "erased";

/// Every erasure so far: identifier hashes and profiles, with when they were erased.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Erasures {
    /// Identifier hash → erasure time (ms); the latest erasure if several.
    ids: HashMap<u128, i64>,
    /// Profile id → erasure time (ms).
    profiles: HashMap<u128, i64>,
}

impl Erasures {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.profiles.is_empty()
    }

    /// Loads the index of the log in `log_dir` (empty if there is none).
    pub fn load(log_dir: &Path) -> std::io::Result<Erasures> {
        match std::fs::read(index_path(log_dir)) {
            Ok(bytes) => rmp_serde::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Erasures::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the index atomically.
    pub fn save(&self, log_dir: &Path) -> std::io::Result<()> {
        let bytes = rmp_serde::to_vec(self).map_err(std::io::Error::other)?;
        crate::secrets::write_atomic(&index_path(log_dir), &bytes)
    }

    /// Notes an erasure (from the API, or an `erasure` record read back).
    pub fn add(&mut self, at_ms: i64, profile: Option<u128>, ids: impl IntoIterator<Item = u128>) {
        for id in ids {
            let t = self.ids.entry(id).or_insert(at_ms);
            *t = (*t).max(at_ms);
        }
        if let Some(p) = profile {
            let t = self.profiles.entry(p).or_insert(at_ms);
            *t = (*t).max(at_ms);
        }
    }

    /// Notes the erasure an `erasure` record describes; other records change nothing.
    pub fn note(&mut self, r: &Record) {
        if r.kind == Kind::Erasure {
            self.add(r.ts, r.profile.map(|p| p.0), r.ids.iter().map(|l| l.hash.0));
        }
    }

    /// When identifier `hash` was last erased, if ever.
    pub fn erased_at(&self, hash: u128) -> Option<i64> {
        self.ids.get(&hash).copied()
    }

    /// Whether `r` belongs to an erased person: it happened before an erasure of its
    /// profile or of one of its identifiers.
    pub fn covers(&self, r: &Record) -> bool {
        if r.kind == Kind::Erasure {
            return false;
        }
        if r.reason.as_deref() == Some(ERASED) {
            return true;
        }
        if self.is_empty() {
            return false;
        }
        // An event of an earlier decision, or a conversion dated earlier, belongs to
        // the time it describes.
        let when = [r.occurred, r.decision_ts]
            .into_iter()
            .flatten()
            .fold(r.ts, i64::min);
        // At the erasure's own millisecond, err on the side of privacy.
        let before = |t: Option<&i64>| t.is_some_and(|&t| when <= t);
        r.profile.is_some_and(|p| before(self.profiles.get(&p.0)))
            || r.ids.iter().any(|l| before(self.ids.get(&l.hash.0)))
    }

    /// Strips what could identify the person from a record of theirs; spend, campaign
    /// and delivery fields stay so totals still add up.
    pub fn redact(&self, r: &mut Record) {
        if self.covers(r) {
            redact(r);
        }
    }
}

/// Removes identifiers, profile, transaction and order id.
pub fn redact(r: &mut Record) {
    r.ids.clear();
    r.profile = None;
    r.transaction_id = None;
    r.order_id = None;
}

fn index_path(log_dir: &Path) -> PathBuf {
    log_dir.join(INDEX)
}

/// The `erasure` record of one erasure.
pub fn record(at_ms: i64, profile: Option<u128>, ids: &[crate::identity::IdHash]) -> Record {
    let mut r = Record::new(Kind::Erasure, at_ms);
    r.profile = profile.map(H128);
    r.ids = ids.iter().map(|&h| h.into()).collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::record::LoggedId;
    use crate::identity::IdKind;

    fn decision(ts: i64, profile: u128, id: u128) -> Record {
        let mut r = Record::new(Kind::Decision, ts);
        r.profile = Some(H128(profile));
        r.ids = vec![LoggedId {
            kind: IdKind::LoyaltyId,
            hash: H128(id),
        }];
        r.transaction_id = Some("ORD-1".into());
        r.campaign = Some("c".into());
        r
    }

    #[test]
    fn records_before_an_erasure_are_redacted_and_later_ones_are_not() {
        let mut e = Erasures::default();
        e.add(100, Some(7), [42]);
        let mut old = decision(50, 7, 42);
        e.redact(&mut old);
        assert!(old.ids.is_empty() && old.profile.is_none() && old.transaction_id.is_none());
        assert_eq!(old.campaign.as_deref(), Some("c"), "delivery fields stay");
        let mut by_id = decision(60, 9, 42);
        assert!(e.covers(&by_id));
        e.redact(&mut by_id);
        assert!(by_id.profile.is_none());
        let new = decision(101, 7, 42);
        assert!(
            !e.covers(&new),
            "the same identifiers after the erasure are a new person"
        );
        assert!(!e.covers(&decision(50, 8, 43)), "others are untouched");
    }

    #[test]
    fn the_index_round_trips_and_records_rebuild_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Erasures::default();
        e.add(100, Some(7), [42]);
        e.save(dir.path()).unwrap();
        let loaded = Erasures::load(dir.path()).unwrap();
        assert_eq!(loaded.erased_at(42), Some(100));
        let mut rebuilt = Erasures::default();
        let ids = [crate::identity::IdHash {
            kind: IdKind::LoyaltyId,
            hash: 42,
        }];
        rebuilt.note(&record(100, Some(7), &ids));
        assert!(rebuilt.covers(&decision(50, 7, 1)));
        assert!(Erasures::load(&dir.path().join("none")).unwrap().is_empty());
    }
}
