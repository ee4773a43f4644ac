//! The first pass: the identity graph rebuilt from the log, and what the second pass
//! must know ahead of time.
//!
//! Identifiers are linked exactly as the server links them when it replays its log
//! (`ledger`): the identifiers on a decision's first record (`decision`, `nofill` or
//! `control`), and those of a conversion that names its profile (it had
//! personalisation consent). Profile ids are the graph's own (the hash of a profile's
//! founding identifier), so a profile id written on a record years ago still resolves,
//! through [`IdentityGraph::resolve`], to the profile it is part of at the end of the log.
//!
//! Besides the graph this pass keeps, all small next to the graph itself:
//!
//! - the orders that a refund will name, so the second pass remembers how only those
//!   orders were attributed;
//! - the in-unit purchases' orders, so that a conversion posted later for the same
//!   channel and order is not counted twice;
//! - erasures: which identifiers and profiles were erased, and where in the log;
//! - the longest delay between a conversion happening and reaching the log, which
//!   bounds how long exposures must be remembered.
//!
//! Records are read up to the end of the log as it stands when the pass starts reading
//! the last segment; the second pass stops at the same offset, so both see one log.

use super::stream::{Work, stream};
use super::wire::{Fields, may_have_key, read_some};
use super::{FastMap, FastSet, Progress, ReportError, order_key};
use crate::exposure::record::{ConversionType, Kind};
use crate::identity::IdHash;
use crate::identity::graph::{IdentityGraph, ProfileId};
use std::path::Path;

pub struct Links {
    pub graph: IdentityGraph,
    /// The offsets read: `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// The longest `ts − occurred` over conversions (never negative).
    pub max_delay_ms: i64,
    /// Keys ([`order_key`]) of orders with a refund in the log.
    pub refunded: FastSet<u64>,
    /// Keys of in-unit purchases' orders.
    pub in_unit: FastSet<u64>,
    /// Identifier hashes and profile ids erased, with the offset of their erasure: a
    /// record before it that names one is redacted (never attributed).
    pub erased: FastMap<u128, u64>,
}

/// What pass 1 keeps of a record, decoded on the reader thread.
struct Fact {
    kind: Kind,
    ids: Vec<IdHash>,
    profile: Option<u128>,
    /// Link the identifiers (a decision's first record; a conversion naming its profile).
    link: bool,
    /// A conversion: `ts − occurred`.
    delay: Option<i64>,
    /// A refund's or an in-unit purchase's order key.
    order: Option<u64>,
}

/// Decodes what pass 1 needs from a record, or nothing.
fn fact(offset: u64, payload: &[u8]) -> Result<Option<Fact>, ReportError> {
    let select = |k: Kind| match k {
        Kind::Decision | Kind::Nofill | Kind::Control => Fields::IDS,
        Kind::Conversion | Kind::Erasure => Fields::SCALARS.and(Fields::IDS),
        Kind::Purchase => Fields::SCALARS,
        _ => Fields::NONE,
    };
    let bad = |e: super::wire::WireError| ReportError::Record {
        offset,
        reason: e.to_string(),
    };
    // Most decision records carry no identifiers (only a decision's first does): those
    // are passed over without reading their fields.
    let kind = read_some(payload, &|_| Fields::NONE).map_err(bad)?.kind;
    if matches!(kind, Kind::Decision | Kind::Nofill | Kind::Control)
        && !may_have_key(payload, b"\xa3ids")
    {
        return Ok(None);
    }
    let v = read_some(payload, &select).map_err(bad)?;
    let ids = || v.ids.ids().collect::<Result<Vec<IdHash>, _>>().map_err(bad);
    let mut f = Fact {
        kind: v.kind,
        ids: Vec::new(),
        profile: None,
        link: false,
        delay: None,
        order: None,
    };
    match v.kind {
        Kind::Decision | Kind::Nofill | Kind::Control if !v.ids.is_empty() => {
            f.ids = ids()?;
            f.link = true;
        }
        Kind::Conversion => {
            f.delay = v.occurred.map(|o| v.ts.saturating_sub(o));
            if v.profile.is_some() && !v.ids.is_empty() {
                f.ids = ids()?;
                f.link = true;
            }
            if v.conversion_type == Some(ConversionType::Refund)
                && let (Some(ch), Some(order)) = (v.channel, v.order_id)
            {
                f.order = Some(order_key(ch, order));
            }
        }
        Kind::Purchase => match (v.channel, v.order_id) {
            (Some(ch), Some(order)) => f.order = Some(order_key(ch, order)),
            _ => return Ok(None),
        },
        Kind::Erasure => {
            f.ids = ids()?;
            f.profile = v.profile;
        }
        _ => return Ok(None),
    }
    Ok(Some(f))
}

impl Links {
    pub fn build(dir: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Links, ReportError> {
        let graph = IdentityGraph::default();
        let mut max_delay_ms = 0i64;
        let mut refunded = FastSet::default();
        let mut in_unit = FastSet::default();
        let mut erased = FastMap::default();
        let produce = |offset: u64, payload: &[u8], _: &mut Vec<u8>| fact(offset, payload);
        let span = stream(
            dir,
            None,
            None,
            1,
            &produce,
            &mut |batch| {
                for (offset, work) in &batch.items {
                    let decoded;
                    let f = match work {
                        Work::Done(f) => f,
                        Work::Raw(a, b) => match fact(*offset, batch.raw(*a, *b))? {
                            Some(f) => {
                                decoded = f;
                                &decoded
                            }
                            None => continue,
                        },
                    };
                    if f.link {
                        graph.link(&f.ids);
                    }
                    if let Some(d) = f.delay {
                        max_delay_ms = max_delay_ms.max(d);
                    }
                    match (f.kind, f.order) {
                        (Kind::Conversion, Some(key)) => {
                            refunded.insert(key);
                        }
                        (Kind::Purchase, Some(key)) => {
                            in_unit.insert(key);
                        }
                        (Kind::Erasure, _) => {
                            // The identifiers named, or the profile: everything linked to
                            // them goes, and records before this one that name any of it
                            // are redacted.
                            let mut gone: Vec<u128> = Vec::new();
                            for id in &f.ids {
                                gone.push(id.hash);
                                gone.extend(graph.erase(*id).iter().map(|m| m.hash));
                            }
                            if let Some(p) = f.profile {
                                gone.push(p);
                                gone.extend(
                                    graph.erase_profile(ProfileId(p)).iter().map(|m| m.hash),
                                );
                            }
                            for h in gone {
                                erased.insert(h, *offset);
                            }
                        }
                        _ => {}
                    }
                }
                Ok(())
            },
            progress,
        )?;
        Ok(Links {
            graph,
            start: span.start,
            end: span.end,
            max_delay_ms,
            refunded,
            in_unit,
            erased,
        })
    }

    /// Whether a record at `offset` naming `hash` (a profile or an identifier) comes
    /// before that hash's erasure.
    pub fn redacted(&self, hash: u128, offset: u64) -> bool {
        self.erased.get(&hash).is_some_and(|&at| offset < at)
    }

    /// The profile `profile` (a profile id from a record) is part of at the end of the
    /// log: itself when the graph does not know it (its identifiers were never logged).
    pub fn resolve(&self, profile: u128) -> u128 {
        self.graph
            .resolve(ProfileId(profile))
            .map_or(profile, |p| p.0)
    }

    /// The profile of a conversion without a profile id (measurement consent only):
    /// the first of its identifiers the graph knows.
    pub fn profile_of(&self, ids: &[IdHash]) -> Option<u128> {
        ids.iter()
            .find_map(|id| self.graph.profile_of(*id))
            .map(|p| p.0)
    }
}
