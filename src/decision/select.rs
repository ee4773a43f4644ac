//! Selection: eligible campaigns, ranked, walked into slots.
//!
//! 1. Candidates from the targeting indexes, each checked against every predicate.
//! 2. The placement's floor and blocklists from the configuration.
//! 3. Ranking: lowest priority first, then highest eCPM, ties broken by an xxh3 hash of
//!    the decision and campaign (stable for one decision, fair across decisions).
//! 4. The slot walk: distinct advertisers and distinct competitive categories.

use crate::config::PlacementRules;
use crate::ids::DecisionId;
use crate::index::{CompiledCampaign, LocalTimes, PRIOR_CTR, Query, Snapshot, Stage};
use serde::Serialize;
use std::cell::RefCell;
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
}

struct Ranked {
    priority: u32,
    ecpm: i64,
    tie: u64,
    idx: u32,
}

thread_local! {
    /// Candidate buffers reused across decisions on a worker thread.
    static BUFFERS: RefCell<(Vec<u32>, Vec<Ranked>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Chooses the offers for one decision.
pub fn select(
    snap: &Snapshot,
    q: &Query,
    input: &SelectionInput,
) -> (Vec<Winner>, Option<Explain>) {
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        let (candidates, ranked) = &mut *b;
        select_with(snap, q, input, candidates, ranked)
    })
}

fn select_with(
    snap: &Snapshot,
    q: &Query,
    input: &SelectionInput,
    candidates: &mut Vec<u32>,
    ranked: &mut Vec<Ranked>,
) -> (Vec<Winner>, Option<Explain>) {
    let mut removals = input.explain.then(Removals::default);
    let mut times = LocalTimes::default();
    if input.full_scan {
        snap.scan_all(candidates);
    } else {
        snap.candidates(q, candidates);
    }
    ranked.clear();
    let seed = input.decision.0 as u64;
    for &idx in candidates.iter() {
        let c = snap.campaign(idx);
        let verdict = c
            .matches(q, &mut times)
            .and_then(|()| placement_rules(c, input.rules));
        match verdict {
            Ok(ecpm) => ranked.push(Ranked {
                priority: c.priority,
                ecpm,
                tie: xxh3_64_with_seed(c.id.as_bytes(), seed),
                idx,
            }),
            Err(stage) => {
                if let Some(r) = removals.as_mut() {
                    r.add(stage, &c.id);
                }
            }
        }
    }
    ranked.sort_unstable_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.ecpm.cmp(&a.ecpm))
            .then(a.tie.cmp(&b.tie))
    });

    let mut winners: Vec<Winner> = Vec::with_capacity(input.slots as usize);
    for r in ranked.iter() {
        if winners.len() == input.slots as usize {
            break;
        }
        let c = snap.campaign(r.idx);
        let conflict = winners.iter().any(|w| {
            w.campaign.advertiser == c.advertiser
                || matches!((&w.campaign.separation, &c.separation), (Some(a), Some(b)) if a == b)
        });
        if conflict {
            if let Some(rm) = removals.as_mut() {
                rm.add(Stage::Separation, &c.id);
            }
            continue;
        }
        winners.push(Winner {
            slot: winners.len() as u8,
            campaign: c.clone(),
            creative: (r.tie >> 32) as usize % c.creatives.len(),
            ecpm: r.ecpm,
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

/// The placement's floor and blocklists; the campaign's eCPM when it passes.
fn placement_rules(c: &CompiledCampaign, rules: Option<&PlacementRules>) -> Result<i64, Stage> {
    let ecpm = c.ecpm(PRIOR_CTR);
    if let Some(rules) = rules {
        if ecpm < rules.floor_ecpm.0 {
            return Err(Stage::PlacementFloor);
        }
        let blocked_advertiser = rules
            .blocked_advertisers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&c.advertiser));
        let blocked_category = c
            .separation
            .as_deref()
            .is_some_and(|cat| rules.blocked_categories.iter().any(|b| b == cat));
        if blocked_advertiser || blocked_category {
            return Err(Stage::PlacementBlocked);
        }
    }
    Ok(ecpm)
}

/// The campaign and creative index holding creative `id`, for admin previews.
pub fn find_creative(snap: &Snapshot, id: &str) -> Option<(Arc<CompiledCampaign>, usize)> {
    snap.campaigns().iter().find_map(|c| {
        c.creatives
            .iter()
            .position(|cr| &*cr.id == id)
            .map(|i| (c.clone(), i))
    })
}
