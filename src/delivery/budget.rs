//! Budgets: an offer reserves its expected cost when served, the impression or click
//! settles it, and a campaign whose charged plus reserved spend would pass its daily
//! or total budget is not served.
//!
//! Why reservations: impressions arrive after the decision, sometimes seconds later.
//! Admitting offers against charged spend alone would let every concurrent decision
//! in that gap serve, and a popular campaign would overshoot its budget by all of
//! them. Reserving at serve time makes admission a single atomic add per campaign:
//! each decision sees every reservation made before it, so concurrent decisions can
//! never commit more than the budget. A reservation the event never settles (the
//! shopper left) is released after `reservation_ttl`.
//!
//! Expected cost: a cpm offer reserves its price per impression (exact); a cpc offer
//! reserves bid × predicted CTR. A click costs the whole bid, more than was reserved,
//! so charges are capped at what is left of the budget (see the ledger): a campaign
//! can reach its budget but never pass it.

use super::{CampaignLive, pacing};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct Reservation {
    account: Arc<CampaignLive>,
    amount: i64,
    expires_ms: i64,
}

/// A campaign's budget, as admission needs it (micros; `None` is unlimited).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub daily: Option<i64>,
    pub total: Option<i64>,
    pub even: bool,
}

/// What the campaign has been charged: today (its time zone) and in total.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spent {
    pub today: i64,
    pub total: i64,
}

/// Why an offer was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The daily or total budget is committed.
    Budget,
    /// Even pacing: the campaign is ahead of its line for the day.
    Pacing,
}

/// One offer asking to be served.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    /// (decision, slot): the key its event will settle.
    pub key: (u128, u8),
    /// Expected cost in micros.
    pub expected: i64,
    /// Elapsed share of the campaign's day.
    pub elapsed: f64,
    /// The decision's seed and the campaign's id hash, for the pacing coin.
    pub seed: u64,
    pub campaign_hash: u64,
    pub now_ms: i64,
}

pub struct Budgets {
    /// Keyed by (decision, slot): decision ids are random, so no crafted collisions.
    reservations: DashMap<(u128, u8), Reservation>,
    ttl_ms: i64,
}

impl Budgets {
    pub fn new(reservation_ttl_ms: i64) -> Budgets {
        Budgets {
            reservations: DashMap::new(),
            ttl_ms: reservation_ttl_ms,
        }
    }

    /// Admits one offer of the campaign whose live state is `account` and reserves
    /// its expected cost, or says why not.
    pub fn admit(
        &self,
        account: &Arc<CampaignLive>,
        limits: Limits,
        spent: Spent,
        ask: Ask,
    ) -> Result<(), Refusal> {
        if limits.daily.is_none() && limits.total.is_none() {
            return Ok(());
        }
        let before = account.reserved.fetch_add(ask.expected, Ordering::AcqRel);
        let today = spent.today + before;
        let over = |limit: Option<i64>, committed: i64| {
            limit.is_some_and(|l| committed + ask.expected > l)
        };
        let refusal = if over(limits.daily, today) || over(limits.total, spent.total + before) {
            Some(Refusal::Budget)
        } else if let (true, Some(daily)) = (limits.even, limits.daily)
            && !pacing::coin(
                pacing::serve_probability(today, daily, ask.elapsed),
                ask.seed,
                ask.campaign_hash,
            )
        {
            Some(Refusal::Pacing)
        } else {
            None
        };
        if let Some(r) = refusal {
            account.reserved.fetch_sub(ask.expected, Ordering::AcqRel);
            let counter = match r {
                Refusal::Budget => &account.skipped_budget,
                Refusal::Pacing => &account.skipped_pacing,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        self.reservations.insert(
            ask.key,
            Reservation {
                account: account.clone(),
                amount: ask.expected,
                expires_ms: ask.now_ms + self.ttl_ms,
            },
        );
        Ok(())
    }

    /// Releases the reservation of an offer whose event arrived (the ledger charges
    /// the actual cost). `false` if there was none (already settled or expired).
    pub fn settle(&self, key: (u128, u8)) -> bool {
        match self.reservations.remove(&key) {
            Some((_, r)) => {
                r.account.reserved.fetch_sub(r.amount, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    /// Releases every reservation past its time-to-live; returns how many.
    pub fn sweep(&self, now_ms: i64) -> usize {
        let mut released = 0;
        self.reservations.retain(|_, r| {
            let keep = r.expires_ms > now_ms;
            if !keep {
                r.account.reserved.fetch_sub(r.amount, Ordering::AcqRel);
                released += 1;
            }
            keep
        });
        released
    }

    pub fn outstanding(&self) -> usize {
        self.reservations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(decision: u128, expected: i64, now_ms: i64) -> Ask {
        Ask {
            key: (decision, 0),
            expected,
            elapsed: 0.5,
            seed: decision as u64,
            campaign_hash: 1,
            now_ms,
        }
    }

    const ASAP: Limits = Limits {
        daily: Some(10_000),
        total: Some(1_000_000),
        even: false,
    };

    #[test]
    fn reservations_count_until_settled_or_expired() {
        let b = Budgets::new(600_000);
        let c = Arc::new(CampaignLive::default());
        for d in 0..10 {
            assert!(
                b.admit(&c, ASAP, Spent::default(), ask(d, 1_000, 0))
                    .is_ok()
            );
        }
        assert_eq!(
            b.admit(&c, ASAP, Spent::default(), ask(10, 1_000, 0)),
            Err(Refusal::Budget),
            "10 reservations of 1,000 commit the daily 10,000"
        );
        assert!(b.settle((3, 0)));
        assert!(!b.settle((3, 0)), "settled once");
        assert_eq!(c.reserved.load(Ordering::Relaxed), 9_000);
        assert_eq!(b.sweep(599_999), 0);
        assert_eq!(b.sweep(600_000), 9);
        assert_eq!(c.reserved.load(Ordering::Relaxed), 0);
        let spent = Spent {
            today: 9_500,
            total: 9_500,
        };
        assert_eq!(
            b.admit(&c, ASAP, spent, ask(11, 1_000, 0)),
            Err(Refusal::Budget)
        );
        assert!(b.admit(&c, ASAP, spent, ask(12, 500, 0)).is_ok());
    }

    #[test]
    fn concurrent_admission_never_commits_more_than_the_budget() {
        let b = Arc::new(Budgets::new(600_000));
        let c = Arc::new(CampaignLive::default());
        let threads: Vec<_> = (0..8u128)
            .map(|t| {
                let (b, c) = (b.clone(), c.clone());
                std::thread::spawn(move || {
                    (0..1_000u128)
                        .filter(|i| {
                            let a = ask(t * 10_000 + i, 7, 0);
                            b.admit(&c, ASAP, Spent::default(), a).is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 10_000 / 7);
        assert!(c.reserved.load(Ordering::Relaxed) <= 10_000);
    }

    #[test]
    fn even_pacing_thins_offers_only_when_ahead() {
        let b = Budgets::new(600_000);
        let c = Arc::new(CampaignLive::default());
        let even = Limits {
            daily: Some(1_000_000),
            total: None,
            even: true,
        };
        let behind = Spent {
            today: 400_000,
            total: 400_000,
        };
        let served = (0..1_000).filter(|&d| b.admit(&c, even, behind, ask(d, 1, 0)).is_ok());
        assert_eq!(served.count(), 1_000, "behind the line: everything serves");
        let ahead = Spent {
            today: 506_000,
            total: 506_000,
        };
        let served = (2_000..3_000)
            .filter(|&d| b.admit(&c, even, ahead, ask(d, 1, 0)).is_ok())
            .count();
        assert!(
            (200..700).contains(&served),
            "a little ahead: thinned, {served}"
        );
        assert!(c.skipped_pacing.load(Ordering::Relaxed) > 0);
    }
}
