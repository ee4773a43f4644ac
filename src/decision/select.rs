//! Selection: eligible campaigns, ranked, walked into slots.
//!
//! 1. The request in the snapshot's value numbers; candidates from the targeting
//!    indexes, each checked against every predicate (on its [`Hot`](crate::index::Hot) record).
//! 2. The placement's floor and blocklists from the configuration.
//! 3. Ranking: lowest priority first, then highest eCPM, ties broken by an xxh3 hash of
//!    the decision and campaign (stable for one decision, fair across decisions).
//! 4. The slot walk: distinct advertisers and distinct competitive categories.
//!
//! Only winners (and `explain`) read the full [`CompiledCampaign`].

use crate::campaign::Channel;
use crate::config::PlacementRules;
use crate::ids::DecisionId;
use crate::index::{
    CompiledCampaign, CompiledCreative, LocalTimes, NONE, NumberedQuery, Owner, PRIOR_CTR, Query,
    Snapshot, Stage,
};
use serde::Serialize;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// One filled slot.
#[derive(Clone, Debug)]
pub struct Winner {
    pub slot: u8,
    pub campaign: Arc<CompiledCampaign>,
    /// Index into the campaign's creatives.
    pub creative: usize,
    /// Micros per thousand impressions, as ranked.
    pub ecpm: i64,
    /// The expected cost reserved from the campaign's budget for this offer.
    pub reserved: i64,
}

/// What the live checks say about a campaign that passed every static one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it; this much of its budget is now reserved.
    Serve { reserved: i64 },
    /// Not now (frequency cap, suppression, budget, pacing).
    Skip(Stage),
    /// The profile is in the campaign's holdout control group: log a control record
    /// for this slot, show nothing, and let the next candidate take the slot.
    Control,
}

/// The live checks of delivery (caps, suppression, holdout, budget and pacing), asked
/// in the slot walk for each campaign about to take a slot. Kept behind a trait so
/// selection stays a pure function of the snapshot and whatever the caller checks.
pub trait Gate {
    fn admit(&self, campaign: &Arc<CompiledCampaign>, slot: u8, ecpm: i64) -> Admission;
}

/// Why campaigns were removed, stage by stage (admin `explain`).
#[derive(Debug, Default, Serialize)]
pub struct Explain {
    pub candidates: usize,
    pub stages: Vec<StageReport>,
    pub ranking: Vec<RankReport>,
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    pub stage: &'static str,
    pub removed: usize,
    pub campaigns: Vec<Arc<str>>,
}

#[derive(Debug, Serialize)]
pub struct RankReport {
    pub campaign_id: Arc<str>,
    pub priority: u32,
    pub ecpm: f64,
}

#[derive(Default)]
struct Removals(BTreeMap<Stage, Vec<Arc<str>>>);

impl Removals {
    fn add(&mut self, stage: Stage, id: &Arc<str>) {
        self.0.entry(stage).or_default().push(id.clone());
    }
    fn into_reports(self) -> Vec<StageReport> {
        self.0
            .into_iter()
            .map(|(stage, campaigns)| StageReport {
                stage: stage.as_str(),
                removed: campaigns.len(),
                campaigns,
            })
            .collect()
    }
}

/// What selection needs besides the snapshot and the query.
pub struct SelectionInput<'a> {
    pub decision: DecisionId,
    pub slots: u8,
    pub rules: Option<&'a PlacementRules>,
    pub explain: bool,
    /// Check every loaded campaign instead of asking the indexes: the brute-force
    /// baseline that benches compare against and tests check the index with.
    pub full_scan: bool,
    /// Whether a creative can be shown here (product stock at the request's location);
    /// `None` when every creative can.
    pub creative_ok: Option<&'a dyn Fn(&CompiledCreative) -> bool>,
    /// Live delivery checks; `None` admits every campaign.
    pub gate: Option<&'a dyn Gate>,
}

/// The creative a winner shows: the one its tie-break hash points at, or the next
/// that `ok` allows (a product out of stock here is skipped); `None` if none can.
fn pick_creative(
    c: &CompiledCampaign,
    tie: u64,
    ok: Option<&dyn Fn(&CompiledCreative) -> bool>,
) -> Option<usize> {
    let n = c.creatives.len();
    let first = (tie >> 32) as usize % n;
    match ok {
        None => Some(first),
        Some(ok) => (0..n)
            .map(|i| (first + i) % n)
            .find(|&i| ok(&c.creatives[i])),
    }
}

/// A campaign that passed every check, with its ranking key.
struct Ranked {
    priority: u32,
    ecpm: i64,
    tie: u64,
    idx: u32,
}

impl Ranked {
    /// Lowest priority first, then highest eCPM, then the tie-break hash; the index
    /// only separates a (vanishingly unlikely) 64-bit hash collision, so the order is
    /// total and the same whatever order the candidates came in.
    fn key(&self) -> (u32, Reverse<i64>, u64, u32) {
        (self.priority, Reverse(self.ecpm), self.tie, self.idx)
    }
}

/// The tie-break for campaign `id_hash` in the decision seeded `seed`: stable for one
/// decision, fair across decisions, the same through the index and by a scan.
fn tie(id_hash: u64, seed: u64) -> u64 {
    xxh3_64_with_seed(&id_hash.to_le_bytes(), seed)
}

/// A placement's rules in the snapshot's numbers, resolved once per decision so the
/// per-campaign test compares integers.
#[derive(Default)]
struct Rules {
    floor: Option<i64>,
    advertisers: Vec<u32>,
    separations: Vec<u32>,
}

impl Rules {
    fn resolve(&mut self, snap: &Snapshot, rules: Option<&PlacementRules>) {
        self.floor = rules.map(|r| r.floor_ecpm.0);
        self.advertisers.clear();
        self.separations.clear();
        if let Some(r) = rules {
            for a in &r.blocked_advertisers {
                self.advertisers
                    .extend_from_slice(snap.advertisers_named(a));
            }
            let known = r.blocked_categories.iter();
            self.separations
                .extend(known.filter_map(|c| snap.separation_number(c)));
        }
    }

    /// The placement's floor and blocklists for campaign `idx`; its eCPM when it passes.
    /// A cpc campaign is valued at its learned CTR on `channel`.
    fn apply(&self, snap: &Snapshot, idx: u32, channel: Option<Channel>) -> Result<i64, Stage> {
        let hot = snap.hot(idx);
        let ctr = match channel {
            Some(ch) if hot.is_cpc() => snap.live(idx).ctr(ch),
            _ => PRIOR_CTR,
        };
        let ecpm = hot.ecpm(ctr);
        if self.floor.is_some_and(|floor| ecpm < floor) {
            return Err(Stage::PlacementFloor);
        }
        if !self.advertisers.is_empty() || !self.separations.is_empty() {
            let owner = snap.owner(idx);
            // `NONE` is never in `separations`: only numbers of known categories are.
            if self.advertisers.contains(&owner.advertiser)
                || self.separations.contains(&owner.separation)
            {
                return Err(Stage::PlacementBlocked);
            }
        }
        Ok(ecpm)
    }
}

/// Per-thread buffers reused across decisions, so selection does not allocate
/// (besides the winners it returns).
#[derive(Default)]
struct Buffers {
    query: NumberedQuery,
    candidates: Vec<u32>,
    ranked: Vec<Ranked>,
    rules: Rules,
    times: LocalTimes,
    /// Who holds the slots filled so far.
    seated: Vec<Owner>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Chooses the offers for one decision.
pub fn select(
    snap: &Snapshot,
    q: &Query,
    input: &SelectionInput,
) -> (Vec<Winner>, Option<Explain>) {
    BUFFERS.with(|b| select_with(snap, q, input, &mut b.borrow_mut()))
}

fn select_with(
    snap: &Snapshot,
    q: &Query,
    input: &SelectionInput,
    b: &mut Buffers,
) -> (Vec<Winner>, Option<Explain>) {
    let mut removals = input.explain.then(Removals::default);
    b.times.clear();
    snap.number(q, &mut b.query);
    b.rules.resolve(snap, input.rules);
    let candidates = &mut b.candidates;
    let may_repeat = if input.full_scan {
        snap.scan_all(candidates);
        false
    } else {
        snap.gather(&b.query, candidates)
    };
    // Ranking does not depend on candidate order; `explain` lists them sorted.
    if may_repeat || input.explain {
        candidates.sort_unstable();
        candidates.dedup();
    }
    let ranked = &mut b.ranked;
    ranked.clear();
    let seed = input.decision.0 as u64;
    for &idx in candidates.iter() {
        let h = snap.hot(idx);
        let verdict = snap
            .check(idx, &b.query, &mut b.times)
            .and_then(|()| b.rules.apply(snap, idx, b.query.channel));
        match verdict {
            Ok(ecpm) => ranked.push(Ranked {
                priority: h.priority,
                ecpm,
                tie: tie(h.id_hash, seed),
                idx,
            }),
            Err(stage) => {
                if let Some(r) = removals.as_mut() {
                    r.add(stage, &snap.campaign(idx).id);
                }
            }
        }
    }
    if input.explain {
        // The report lists the whole ranking.
        ranked.sort_unstable_by_key(Ranked::key);
    }

    // Walk the ranking best first. Only a few are usually needed (the slots, plus any
    // skipped for separation), so without `explain` each step selects the best of the
    // rest instead of sorting everything.
    let slots = input.slots as usize;
    let mut winners: Vec<Winner> = Vec::with_capacity(slots);
    let seated = &mut b.seated;
    seated.clear();
    for next in 0..ranked.len() {
        if winners.len() == slots {
            break;
        }
        if !input.explain {
            bring_best_to_front(&mut ranked[next..]);
        }
        let r = &ranked[next];
        let owner = snap.owner(r.idx);
        let conflict = seated.iter().any(|seat| {
            seat.advertiser == owner.advertiser
                || (seat.separation != NONE && seat.separation == owner.separation)
        });
        let c = snap.campaign(r.idx);
        if conflict {
            if let Some(rm) = removals.as_mut() {
                rm.add(Stage::Separation, &c.id);
            }
            continue;
        }
        let Some(creative) = pick_creative(c, r.tie, input.creative_ok) else {
            if let Some(rm) = removals.as_mut() {
                rm.add(Stage::Stock, &c.id);
            }
            continue;
        };
        let slot = winners.len() as u8;
        let admission = input.gate.map_or(Admission::Serve { reserved: 0 }, |g| {
            g.admit(c, slot, r.ecpm)
        });
        let refused = match admission {
            Admission::Serve { .. } => None,
            Admission::Skip(stage) => Some(stage),
            // Held out: the advertiser and category stay free for the next candidate.
            Admission::Control => Some(Stage::Holdout),
        };
        if let Some(stage) = refused {
            if let Some(rm) = removals.as_mut() {
                rm.add(stage, &c.id);
            }
            continue;
        }
        let reserved = match admission {
            Admission::Serve { reserved } => reserved,
            _ => 0,
        };
        seated.push(owner);
        winners.push(Winner {
            slot,
            campaign: c.clone(),
            creative,
            ecpm: r.ecpm,
            reserved,
        });
    }

    let explain = removals.map(|rm| Explain {
        candidates: candidates.len(),
        stages: rm.into_reports(),
        ranking: ranked
            .iter()
            .map(|r| {
                let c = snap.campaign(r.idx);
                RankReport {
                    campaign_id: c.id.clone(),
                    priority: r.priority,
                    ecpm: r.ecpm as f64 / 1e6,
                }
            })
            .collect(),
    });
    (winners, explain)
}

/// One step of a selection sort: moves the best-ranked entry of `rest` to its front.
fn bring_best_to_front(rest: &mut [Ranked]) {
    let best = (rest.iter().enumerate())
        .min_by_key(|(_, r)| r.key())
        .map(|(i, _)| i);
    if let Some(i) = best {
        rest.swap(0, i);
    }
}

/// The campaign and creative index holding creative `id`, for admin previews.
pub fn find_creative(snap: &Snapshot, id: &str) -> Option<(Arc<CompiledCampaign>, usize)> {
    snap.campaigns().find_map(|c| {
        c.creatives
            .iter()
            .position(|cr| &*cr.id == id)
            .map(|i| (c.clone(), i))
    })
}

#[cfg(test)]
mod tests;
