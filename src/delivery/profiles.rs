//! What delivery remembers per profile: offers served per campaign (frequency caps),
//! holdout groups, and purchases (suppression).
//!
//! Keyed by profile id (the identity graph's keyed hash, so unpredictable to an
//! attacker) and, inside a profile, by the campaign's 64-bit id hash, which is stable
//! across restarts without a registry. When the identity graph merges two profiles
//! their memories are merged: served offers add up (so caps hold across channels once
//! the identifiers are linked), the earlier holdout assignment wins, purchases are
//! pooled. Erasure forgets a profile entirely.

use crate::campaign::{ConversionRule, FrequencyCap};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Purchases remembered per profile: suppression looks back at most a year, and a
/// shopper with more purchases than this in a year is a business account.
const MAX_PURCHASES: usize = 256;

/// A holdout assignment: in the control group or not, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub control: bool,
    pub since_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CampaignMemory {
    campaign: u64,
    /// When offers were served (ms), oldest first.
    served: Vec<i64>,
    holdout: Option<Group>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Purchase {
    at_ms: i64,
    /// Keys of the items bought (see [`item_keys`]).
    items: Vec<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    campaigns: Vec<CampaignMemory>,
    purchases: Vec<Purchase>,
    /// For subject access: first and last seen (ms), exposures and conversions.
    #[serde(default)]
    seen: Option<(i64, i64)>,
    #[serde(default)]
    exposures: u64,
    #[serde(default)]
    conversions: u64,
}

/// What a subject access request shows of a profile's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub exposures: u64,
    pub conversions: u64,
}

impl Memory {
    fn campaign(&mut self, campaign: u64) -> &mut CampaignMemory {
        let i = match self.campaigns.iter().position(|c| c.campaign == campaign) {
            Some(i) => i,
            None => {
                self.campaigns.push(CampaignMemory {
                    campaign,
                    ..CampaignMemory::default()
                });
                self.campaigns.len() - 1
            }
        };
        &mut self.campaigns[i]
    }

    fn absorb(&mut self, other: Memory) {
        for theirs in other.campaigns {
            let mine = self.campaign(theirs.campaign);
            mine.served.extend(theirs.served);
            mine.served.sort_unstable();
            mine.holdout = match (mine.holdout, theirs.holdout) {
                (Some(a), Some(b)) => Some(if b.since_ms < a.since_ms { b } else { a }),
                (a, b) => a.or(b),
            };
        }
        self.seen = match (self.seen, other.seen) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        self.exposures += other.exposures;
        self.conversions += other.conversions;
        self.purchases.extend(other.purchases);
        self.purchases.sort_unstable_by_key(|p| p.at_ms);
        let excess = self.purchases.len().saturating_sub(MAX_PURCHASES);
        self.purchases.drain(..excess);
    }
}

/// The key of one fact about a bought item: its SKU, brand or one category prefix.
fn key(kind: u8, value: &str) -> u64 {
    xxh3_64_with_seed(value.as_bytes(), u64::from(kind))
}

/// The keys an item bought is remembered by: its SKU, its lower-cased brand, and every
/// whole-segment prefix of its lower-cased category (so a rule on `electronics`
/// matches `electronics/audio`).
pub fn item_keys(sku: Option<&str>, category: Option<&str>, brand: Option<&str>) -> Vec<u64> {
    let mut keys = Vec::new();
    if let Some(s) = sku {
        keys.push(key(b's', s));
    }
    if let Some(b) = brand {
        keys.push(key(b'b', &b.trim().to_lowercase()));
    }
    if let Some(c) = category {
        let lower = c.trim().to_lowercase();
        let mut end = 0;
        for seg in lower.split('/') {
            end += seg.len();
            keys.push(key(b'c', &lower[..end]));
            end += 1;
        }
    }
    keys
}

/// A campaign's `conversion` rule as item keys: an item matches when any key is shared.
pub fn rule_keys(rule: &ConversionRule) -> Vec<u64> {
    let skus = rule.skus.iter().map(|s| key(b's', s));
    let brands = rule
        .brands
        .iter()
        .map(|b| key(b'b', &b.trim().to_lowercase()));
    let categories = (rule.categories.iter()).map(|c| key(b'c', &c.trim().to_lowercase()));
    skus.chain(brands).chain(categories).collect()
}

/// The stable hash a campaign is remembered by.
pub fn campaign_hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

pub struct Profiles {
    map: DashMap<u128, Memory>,
}

/// Shards of the per-profile map. A checkpoint copies it one shard at a time under
/// that shard's read lock, and a decision serving a profile in that shard waits: with
/// millions of profiles, the default (four per core) would make that wait milliseconds.
pub const PROFILE_SHARDS: usize = 256;

impl Default for Profiles {
    fn default() -> Profiles {
        Profiles {
            map: DashMap::with_shard_amount(PROFILE_SHARDS),
        }
    }
}

impl Profiles {
    /// Whether one more offer of `campaign` stays within every cap for `profile`.
    pub fn within_caps(
        &self,
        profile: u128,
        campaign: u64,
        caps: &[FrequencyCap],
        now_ms: i64,
    ) -> bool {
        if caps.is_empty() {
            return true;
        }
        let Some(memory) = self.map.get(&profile) else {
            return true;
        };
        let Some(c) = memory.campaigns.iter().find(|c| c.campaign == campaign) else {
            return true;
        };
        caps.iter().all(|cap| {
            let since = now_ms - cap.per_seconds as i64 * 1000;
            let recent = c.served.iter().rev().take_while(|&&t| t > since).count();
            recent < cap.max as usize
        })
    }

    /// Counts an offer served, keeping history for `keep_ms` (the longest cap window).
    pub fn served(&self, profile: u128, campaign: u64, at_ms: i64, keep_ms: i64) {
        let mut memory = self.map.entry(profile).or_default();
        let c = memory.campaign(campaign);
        // Replaying a record already in a checkpoint must not count it twice: two
        // offers of one campaign to one profile in the same millisecond do not happen
        // (one decision shows a campaign once), so an equal time is that same offer.
        if c.served.binary_search(&at_ms).is_ok() {
            return;
        }
        let pos = c.served.partition_point(|&t| t <= at_ms);
        c.served.insert(pos, at_ms);
        let cutoff = c.served.partition_point(|&t| t <= at_ms - keep_ms);
        c.served.drain(..cutoff);
    }

    /// The profile's holdout group for `campaign`: the stored one, or decided now (the
    /// first time the profile is eligible) from an xxh3 of profile and campaign and
    /// kept from then on.
    pub fn holdout(&self, profile: u128, campaign: u64, percent: f64, now_ms: i64) -> Group {
        let mut memory = self.map.entry(profile).or_default();
        let c = memory.campaign(campaign);
        *c.holdout.get_or_insert_with(|| {
            let draw = xxh3_64_with_seed(&profile.to_le_bytes(), campaign) % 10_000;
            Group {
                control: (draw as f64) < percent * 100.0,
                since_ms: now_ms,
            }
        })
    }

    /// The group [`Profiles::holdout`] would give, without deciding it (previews).
    pub fn peek_holdout(&self, profile: u128, campaign: u64, percent: f64) -> bool {
        let stored = self.map.get(&profile).and_then(|m| {
            (m.campaigns.iter())
                .find(|c| c.campaign == campaign)
                .and_then(|c| c.holdout)
        });
        match stored {
            Some(g) => g.control,
            None => {
                let draw = xxh3_64_with_seed(&profile.to_le_bytes(), campaign) % 10_000;
                (draw as f64) < percent * 100.0
            }
        }
    }

    /// Records a group read back from the log (replay), unless one is already known.
    pub fn note_group(&self, profile: u128, campaign: u64, group: Group) {
        let mut memory = self.map.entry(profile).or_default();
        let c = memory.campaign(campaign);
        if c.holdout.is_none_or(|g| group.since_ms < g.since_ms) {
            c.holdout = Some(group);
        }
    }

    /// Remembers a purchase (its items as [`item_keys`]).
    pub fn purchased(&self, profile: u128, at_ms: i64, items: Vec<u64>) {
        let mut memory = self.map.entry(profile).or_default();
        if (memory.purchases.iter()).any(|p| p.at_ms == at_ms && p.items == items) {
            return; // the same purchase replayed
        }
        let pos = memory.purchases.partition_point(|p| p.at_ms <= at_ms);
        memory.purchases.insert(pos, Purchase { at_ms, items });
        let excess = memory.purchases.len().saturating_sub(MAX_PURCHASES);
        memory.purchases.drain(..excess);
    }

    /// Whether the profile bought an item matching `rule` (as [`rule_keys`]) after
    /// `since_ms`.
    pub fn bought_since(&self, profile: u128, rule: &[u64], since_ms: i64) -> bool {
        if rule.is_empty() {
            return false;
        }
        let Some(memory) = self.map.get(&profile) else {
            return false;
        };
        (memory.purchases.iter().rev())
            .take_while(|p| p.at_ms > since_ms)
            .any(|p| p.items.iter().any(|k| rule.contains(k)))
    }

    /// Notes the profile was seen at `at_ms`, with so many exposures and conversions.
    pub fn saw(&self, profile: u128, at_ms: i64, exposures: u64, conversions: u64) {
        let mut memory = self.map.entry(profile).or_default();
        memory.seen = Some(match memory.seen {
            Some((first, last)) => (first.min(at_ms), last.max(at_ms)),
            None => (at_ms, at_ms),
        });
        memory.exposures += exposures;
        memory.conversions += conversions;
    }

    /// The profile's history for subject access.
    pub fn summary(&self, profile: u128) -> Summary {
        self.map
            .get(&profile)
            .map_or_else(Summary::default, |m| Summary {
                first_seen_ms: m.seen.map(|s| s.0),
                last_seen_ms: m.seen.map(|s| s.1),
                exposures: m.exposures,
                conversions: m.conversions,
            })
    }

    /// Folds `absorbed` into `into` (the identity graph merged them).
    pub fn merge(&self, absorbed: u128, into: u128) {
        if absorbed == into {
            return;
        }
        if let Some((_, theirs)) = self.map.remove(&absorbed) {
            self.map.entry(into).or_default().absorb(theirs);
        }
    }

    /// Forgets a profile (erasure).
    pub fn forget(&self, profile: u128) {
        self.map.remove(&profile);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Everything, for a checkpoint.
    pub fn save(&self) -> Vec<u8> {
        let all: Vec<(u128, Memory)> = (self.map.iter())
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        rmp_serde::to_vec(&all).unwrap_or_default()
    }

    /// Restores a checkpoint written by [`Profiles::save`].
    pub fn load(&self, bytes: &[u8]) -> Result<(), rmp_serde::decode::Error> {
        let all: Vec<(u128, Memory)> = rmp_serde::from_slice(bytes)?;
        for (p, m) in all {
            self.map.insert(p, m);
        }
        Ok(())
    }

    pub fn clear(&self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn cap(max: u32, per_seconds: u64) -> FrequencyCap {
        FrequencyCap { max, per_seconds }
    }

    #[test]
    fn caps_count_offers_in_sliding_windows() {
        let p = Profiles::default();
        let caps = [cap(2, 3_600), cap(3, 86_400)];
        let c = campaign_hash("c");
        assert!(p.within_caps(1, c, &caps, 0));
        p.served(1, c, 0, DAY);
        p.served(1, c, 1_000, DAY);
        assert!(!p.within_caps(1, c, &caps, 2_000), "2 per hour");
        assert!(
            p.within_caps(1, c, &caps, 3_600_001),
            "the hour slid past the first"
        );
        p.served(1, c, 3_600_001, DAY);
        assert!(!p.within_caps(1, c, &caps, 7_300_000), "3 per day");
        assert!(p.within_caps(2, c, &caps, 2_000), "per profile");
        assert!(
            p.within_caps(1, campaign_hash("d"), &caps, 2_000),
            "per campaign"
        );
    }

    #[test]
    fn merged_profiles_add_up_and_keep_the_earlier_group() {
        let p = Profiles::default();
        let c = campaign_hash("c");
        let caps = [cap(2, 86_400)];
        p.served(1, c, 10, DAY);
        p.served(2, c, 20, DAY);
        assert!(p.within_caps(1, c, &caps, 30) && p.within_caps(2, c, &caps, 30));
        let early = p.holdout(2, c, 50.0, 5);
        p.holdout(1, c, 50.0, 7);
        p.merge(2, 1);
        assert!(!p.within_caps(1, c, &caps, 30), "one customer, two offers");
        assert_eq!(
            p.holdout(1, c, 50.0, 99),
            early,
            "the earlier assignment wins"
        );
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn holdout_groups_are_stable_and_near_the_share() {
        let p = Profiles::default();
        let c = campaign_hash("c");
        let control = (0..10_000u128)
            .filter(|&i| p.holdout(i, c, 10.0, 0).control)
            .count();
        assert!((800..1_200).contains(&control), "{control}");
        for i in 0..100u128 {
            assert_eq!(p.holdout(i, c, 90.0, 5), p.holdout(i, c, 10.0, 0), "kept");
        }
    }

    #[test]
    fn purchases_suppress_by_rule_and_window() {
        let p = Profiles::default();
        let rule = rule_keys(&ConversionRule {
            skus: vec![],
            categories: vec!["Grocery".into()],
            brands: vec!["Crunchy".into()],
        });
        p.purchased(
            1,
            10 * DAY,
            item_keys(Some("X"), Some("grocery/snacks"), None),
        );
        p.purchased(
            2,
            10 * DAY,
            item_keys(Some("Y"), Some("electronics"), Some("crunchy ")),
        );
        p.purchased(
            3,
            10 * DAY,
            item_keys(Some("Z"), Some("groceryx"), Some("Other")),
        );
        assert!(p.bought_since(1, &rule, 9 * DAY));
        assert!(p.bought_since(2, &rule, 9 * DAY), "brand, any case");
        assert!(!p.bought_since(3, &rule, 9 * DAY), "whole segments only");
        assert!(!p.bought_since(1, &rule, 10 * DAY), "outside the window");
        p.forget(1);
        assert!(!p.bought_since(1, &rule, 0));
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let p = Profiles::default();
        let c = campaign_hash("c");
        p.served(7, c, 5, DAY);
        p.holdout(7, c, 100.0, 5);
        let q = Profiles::default();
        q.load(&p.save()).unwrap();
        assert!(!q.within_caps(7, c, &[cap(1, 60)], 6));
        assert!(q.holdout(7, c, 0.0, 9).control);
        assert!(q.load(b"\x93garbage").is_err());
    }
}
