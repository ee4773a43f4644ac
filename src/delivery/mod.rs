//! Delivery controls: the live, per-request state that decides whether an eligible
//! campaign may be shown now: budgets and pacing, learned click-through rates, and the
//! counters its stats report.
//!
//! Everything here lives outside the campaign snapshot and survives snapshot swaps:
//! the [`Registry`] hands out one [`CampaignLive`] per campaign id, and a compiled
//! campaign holds a pointer to it, so the decision path reads counters through the
//! campaign it already has (atomics, no lookup and no lock) and a replaced campaign
//! keeps its counters.

pub mod budget;
pub mod pacing;
pub mod profiles;
pub mod stats;

use crate::campaign::Channel;
use crate::erasure::Erasures;
use crate::identity::IdHash;
use crate::identity::graph::{GraphConfig, IdentityGraph, Linked};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

pub use crate::index::PRIOR_CTR;
/// How many impressions the prior weighs as: with fewer real impressions than this,
/// the prior still dominates, so one early click cannot send a campaign to the top.
pub const PRIOR_WEIGHT: f64 = 200.0;

/// One campaign's live counters. Per-channel arrays are indexed by `Channel as usize`.
///
/// Ranking reads `impressions` and `clicks` of many campaigns on every decision, and
/// they change only with events; `offers` and the reservations change on every
/// decision that serves the campaign. So the first two open the struct on a cache
/// line of their own (`repr(C)`, 64-byte aligned, padded): a decision on one core
/// serving a campaign does not evict its CTR from the other core's cache.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct CampaignLive {
    pub impressions: [AtomicU64; 3],
    pub clicks: [AtomicU64; 3],
    _own_line: [u8; 16],
    /// Expected costs of offers served and not yet settled (see [`budget`]).
    pub reservations: Mutex<budget::Ring>,
    pub offers: [AtomicU64; 3],
    pub skipped_budget: AtomicU64,
    pub skipped_pacing: AtomicU64,
    pub skipped_caps: AtomicU64,
    pub skipped_holdout: AtomicU64,
}

impl CampaignLive {
    /// The predicted click-through rate on `channel`: clicks over impressions,
    /// smoothed toward the prior. Lock-free: two atomic loads.
    pub fn ctr(&self, channel: Channel) -> f64 {
        let i = channel as usize;
        let impressions = self.impressions[i].load(Ordering::Relaxed) as f64;
        let clicks = self.clicks[i].load(Ordering::Relaxed) as f64;
        (clicks + PRIOR_CTR * PRIOR_WEIGHT) / (impressions + PRIOR_WEIGHT)
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(counters: &[AtomicU64; 3]) -> u64 {
        counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The delivery state a running server shares: live counters, budget reservations,
/// per-profile memory.
pub struct Delivery {
    pub registry: Arc<Registry>,
    pub budgets: budget::Budgets,
    pub profiles: profiles::Profiles,
    /// Identifiers seen together, as profiles.
    pub graph: IdentityGraph,
    /// Who was erased, and when (see [`crate::erasure`]).
    pub erasures: RwLock<Erasures>,
    /// Where links, offers served and erasures go for the rest of a fleet (unset on a
    /// node of its own; see [`crate::cluster`]).
    pub replication: OnceLock<Arc<dyn crate::cluster::Replication>>,
}

/// What one erasure removed.
#[derive(Debug, Default)]
pub struct Erased {
    /// The profiles removed, each with the identifiers it held.
    pub profiles: Vec<(u128, Vec<IdHash>)>,
    /// Identifiers asked for that no profile held.
    pub unknown: Vec<IdHash>,
}

impl Erased {
    pub fn identifiers(&self) -> usize {
        self.profiles
            .iter()
            .map(|(_, ids)| ids.len())
            .sum::<usize>()
            + self.unknown.len()
    }
}

impl Delivery {
    pub fn new(reservation_ttl_ms: i64, graph: GraphConfig) -> Delivery {
        Delivery {
            registry: Arc::default(),
            budgets: budget::Budgets::new(reservation_ttl_ms),
            profiles: profiles::Profiles::default(),
            graph: IdentityGraph::new(graph),
            erasures: RwLock::default(),
            replication: OnceLock::new(),
        }
    }

    /// Removes every profile holding one of `ids`, with all their identifiers, from the
    /// graph and the per-profile memory (caps, holdout groups, purchases).
    pub fn erase(&self, ids: &[IdHash]) -> Erased {
        let mut erased = Erased::default();
        for &id in ids {
            match self.graph.profile_of(id) {
                Some(p) => {
                    let removed = self.graph.erase_profile(p);
                    self.profiles.forget(p.0);
                    erased.profiles.push((p.0, removed));
                }
                None if !erased.profiles.iter().any(|(_, r)| r.contains(&id)) => {
                    erased.unknown.push(id)
                }
                None => {}
            }
        }
        erased
    }

    /// Links identifiers seen together (with personalisation consent) and merges the
    /// per-profile memory of any profiles the link joined; returns the profile.
    pub fn link(&self, ids: &[IdHash]) -> Option<Linked> {
        let linked = self.graph.link(ids)?;
        for m in &linked.merged {
            self.profiles.merge(m.absorbed.0, m.into.0);
        }
        Some(linked)
    }
}

/// One [`CampaignLive`] per campaign id, for as long as the process runs.
#[derive(Debug, Default)]
pub struct Registry {
    campaigns: DashMap<Arc<str>, Arc<CampaignLive>>,
}

impl Registry {
    /// The campaign's live state, created on first use.
    pub fn get(&self, campaign: &str) -> Arc<CampaignLive> {
        if let Some(live) = self.campaigns.get(campaign) {
            return live.clone();
        }
        self.campaigns.entry(campaign.into()).or_default().clone()
    }

    /// Every campaign with live state, for checkpoints.
    pub fn all(&self) -> Vec<(Arc<str>, Arc<CampaignLive>)> {
        (self.campaigns.iter())
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ctr_inputs_have_a_cache_line_of_their_own() {
        let live = CampaignLive::default();
        let base = &live as *const CampaignLive as usize;
        assert_eq!(base % 64, 0);
        assert_eq!(live.clicks.as_ptr() as usize + 24, base + 48);
        assert!(std::ptr::addr_of!(live.offers) as usize >= base + 64);
        assert!(std::ptr::addr_of!(live.reservations) as usize >= base + 64);
    }

    #[test]
    fn ctr_starts_at_the_prior_and_learns() {
        let live = CampaignLive::default();
        assert!((live.ctr(Channel::Online) - PRIOR_CTR).abs() < 1e-12);
        live.impressions[Channel::Online as usize].store(10_000, Ordering::Relaxed);
        live.clicks[Channel::Online as usize].store(500, Ordering::Relaxed);
        assert!((live.ctr(Channel::Online) - 0.049).abs() < 0.001);
        assert!(
            (live.ctr(Channel::App) - PRIOR_CTR).abs() < 1e-12,
            "per channel"
        );
    }

    #[test]
    fn the_registry_keeps_one_state_per_campaign() {
        let r = Registry::default();
        let a = r.get("c");
        a.offers[0].fetch_add(1, Ordering::Relaxed);
        assert_eq!(CampaignLive::total(&r.get("c").offers), 1);
        assert!(Arc::ptr_eq(&a, &r.get("c")));
    }
}
