//! Budgets: an offer reserves its expected cost when served, the impression or click
//! settles it, and a campaign whose charged plus reserved spend would pass its daily
//! or total budget is not served.
//!
//! Why reservations: impressions arrive after the decision, sometimes seconds later.
//! Admitting offers against charged spend alone would let every concurrent decision
//! in that gap serve, and a popular campaign would overshoot its budget by all of
//! them. With reservations, admission is one check-and-add under the campaign's own
//! short lock: each decision sees every reservation made before it, so concurrent
//! decisions can never commit more than the budget.
//!
//! Reservations are kept per campaign in a ring of time buckets, not one entry per
//! offer: the token of an offer carries the time and amount it reserved, which is all
//! settling needs, so memory stays a few hundred bytes per campaign however many
//! offers are outstanding, and expiry is dropping whole buckets older than
//! `reservation_ttl` (a shopper who never loads the offer releases it then).
//!
//! Expected cost: a cpm offer reserves its price per impression (exact); a cpc offer
//! reserves bid × predicted CTR. A click costs the whole bid, more than was reserved,
//! so charges are capped at what is left of the budget (see the ledger): a campaign
//! can reach its budget but never pass it.
//!
//! # Leases (a fleet of nodes)
//!
//! With budgets shared across nodes (see [`crate::cluster`]), each node holds a
//! [`Lease`]: a slice of the campaign's remaining budget for the day, granted to it
//! atomically by the shared store so the slices of all nodes never add up to more than
//! the budget. Admission then also checks that the node's own charges since the lease
//! began, plus its reservations, plus the offer stay within what it was granted. The
//! check is the same local one under the same lock, so decisions never wait on the
//! network; a background task tops the lease up before it runs dry. A node without a
//! lease for the day refuses the campaign's offers (`budget`) until it gets one.
//!
//! The decisions themselves tell the lease task what needs its attention, so its work
//! is proportional to what the node serves, not to the size of the catalogue: a
//! campaign is queued (once, until the task took care of it) when a decision was
//! refused for its budget ([`Budgets::want_lease`]: no lease for the day yet, or the
//! lease ran out) and when an admission leaves less than the lease's low-water mark;
//! a campaign with a daily budget is queued for spend sharing when it first serves in
//! a sharing period. The cost is that a campaign's first offers on a node each day are
//! refused until the next lease round (`redis.lease_interval_ms`).

use super::{CampaignLive, pacing};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Buckets in a campaign's ring; the time-to-live spans all but two of them (the
/// one being filled and one of margin), so nothing expires early.
pub const BUCKETS: usize = 32;

/// A campaign's outstanding reservations.
#[derive(Debug, Default)]
pub struct Ring {
    /// (bucket number, micros reserved in it).
    buckets: [(i64, i64); BUCKETS],
    total: i64,
    /// This node's slice of a fleet-wide budget (leased budgets only).
    lease: Option<Lease>,
    /// The campaign's id, once a decision wanted it (leased budgets only): what the
    /// queues for the lease task carry.
    id: Option<Arc<str>>,
    /// Queued for the lease task and not yet taken care of.
    queued: bool,
    /// A decision was refused for the budget since the task last took care of it.
    refused: bool,
    /// Queued for spend sharing in this period.
    touched: bool,
}

/// A node's slice of a budget shared by a fleet, for one campaign day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The campaign's local day (days since the epoch) the lease is for.
    pub day: i32,
    /// Micros granted to this node for `day`, less what it gave back.
    pub granted: i64,
    /// This node's own charges for `day` when the lease began: what it charged since
    /// counts against `granted`.
    pub base: i64,
    /// What the other nodes charged the campaign today, as last read (even pacing
    /// follows the fleet's spend, not this node's).
    pub others_today: i64,
    /// An admission that leaves less than this queues the campaign for a top-up (half
    /// the last slice granted), so a busy node does not run dry between two rounds.
    pub low_water: i64,
}

impl Lease {
    /// What is left of the lease after `charged_today` (this node's charges for the
    /// day) and `reserved`.
    pub fn left(&self, charged_today: i64, reserved: i64) -> i64 {
        self.granted - (charged_today - self.base) - reserved
    }
}

impl Ring {
    /// Drops buckets older than the time-to-live, as of bucket `now`.
    fn expire(&mut self, now: i64) {
        let oldest = now - (BUCKETS as i64 - 2);
        for b in &mut self.buckets {
            if b.1 != 0 && b.0 < oldest {
                self.total -= b.1;
                *b = (0, 0);
            }
        }
    }

    fn add(&mut self, bucket: i64, amount: i64) {
        let slot = &mut self.buckets[bucket.rem_euclid(BUCKETS as i64) as usize];
        if slot.0 != bucket {
            self.total -= slot.1;
            *slot = (bucket, 0);
        }
        slot.1 += amount;
        self.total += amount;
    }

    fn release(&mut self, bucket: i64, amount: i64) {
        let slot = &mut self.buckets[bucket.rem_euclid(BUCKETS as i64) as usize];
        if slot.0 == bucket {
            let released = amount.min(slot.1).max(0);
            slot.1 -= released;
            self.total -= released;
        }
    }
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
    /// Expected cost in micros.
    pub expected: i64,
    /// Elapsed share of the campaign's day.
    pub elapsed: f64,
    /// The decision's seed and the campaign's id hash, for the pacing coin.
    pub seed: u64,
    pub campaign_hash: u64,
    pub now_ms: i64,
    /// The campaign's local day (leased budgets are per day).
    pub day: i32,
}

/// Reservation bookkeeping shared by every campaign: the bucket width.
#[derive(Debug)]
pub struct Budgets {
    bucket_ms: i64,
    /// Budgets are shared by a fleet: admit only within this node's [`Lease`].
    leased: bool,
    /// Campaigns whose lease needs the lease task (see [`Budgets::want_lease`]).
    wanted: Mutex<Vec<Arc<str>>>,
    /// Campaigns with a daily budget that served in this sharing period.
    touched: Mutex<Vec<Arc<str>>>,
}

impl Budgets {
    pub fn new(reservation_ttl_ms: i64) -> Budgets {
        Budgets {
            bucket_ms: (reservation_ttl_ms / (BUCKETS as i64 - 2)).max(1),
            leased: false,
            wanted: Mutex::new(Vec::new()),
            touched: Mutex::new(Vec::new()),
        }
    }

    /// The same, admitting offers only within each campaign's [`Lease`].
    pub fn leased(reservation_ttl_ms: i64) -> Budgets {
        Budgets {
            leased: true,
            ..Budgets::new(reservation_ttl_ms)
        }
    }

    pub fn is_leased(&self) -> bool {
        self.leased
    }

    /// The campaign's lease, if it holds one.
    pub fn lease(&self, live: &CampaignLive) -> Option<Lease> {
        let ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.lease
    }

    /// Notes that a decision wanted to serve campaign `id` and was refused for its
    /// budget (no lease for the day, the lease ran out, or the budget is spent): the
    /// campaign is queued for the lease task unless it already is, so later refusals
    /// cost one short lock until the task took care of it.
    pub fn want_lease(&self, live: &CampaignLive, id: &Arc<str>) {
        if !self.leased {
            return;
        }
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        if ring.id.is_none() {
            ring.id = Some(id.clone());
        }
        ring.refused = true;
        if ring.queued {
            return;
        }
        ring.queued = true;
        drop(ring);
        push(&self.wanted, id.clone());
    }

    /// The campaigns queued for the lease task since the last call. The task calls
    /// [`Budgets::lease_handled`] for each once it is done with it.
    pub fn take_wanted(&self) -> Vec<Arc<str>> {
        take(&self.wanted)
    }

    /// Whether a decision was refused for the campaign's budget since the lease task
    /// last took care of it: what is left of the lease may be above its low-water mark
    /// and still too little for an offer (a small last slice), so it needs topping up.
    pub fn refused(&self, live: &CampaignLive) -> bool {
        let ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.refused
    }

    /// The campaign may be queued for the lease task again.
    pub fn lease_handled(&self, live: &CampaignLive) {
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.queued = false;
        ring.refused = false;
    }

    /// The campaigns with a daily budget that served since the last call: their spend
    /// is to be shared. Each may be queued again from now on.
    pub fn take_touched(&self, live: impl Fn(&str) -> Option<Arc<CampaignLive>>) -> Vec<Arc<str>> {
        let ids = take(&self.touched);
        for id in &ids {
            if let Some(l) = live(id) {
                let mut ring = l.reservations.lock().unwrap_or_else(|p| p.into_inner());
                ring.touched = false;
            }
        }
        ids
    }

    /// Replaces the campaign's lease (the task that keeps leases topped up is the only
    /// writer, so reading, asking the fleet and writing back need no lock across).
    pub fn set_lease(&self, live: &CampaignLive, lease: Option<Lease>) {
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.lease = lease;
    }

    fn bucket(&self, ms: i64) -> i64 {
        ms.div_euclid(self.bucket_ms)
    }

    /// Admits one offer of the campaign whose live state is `live` and reserves its
    /// expected cost, or says why not (and counts the refusal).
    pub fn admit(
        &self,
        live: &CampaignLive,
        limits: Limits,
        spent: Spent,
        ask: Ask,
    ) -> Result<(), Refusal> {
        self.decide(live, limits, spent, ask, true)
    }

    /// What [`Budgets::admit`] would answer, without reserving or counting anything
    /// (admin previews, and a holdout control that takes no budget).
    pub fn would_admit(
        &self,
        live: &CampaignLive,
        limits: Limits,
        spent: Spent,
        ask: Ask,
    ) -> Result<(), Refusal> {
        self.decide(live, limits, spent, ask, false)
    }

    fn decide(
        &self,
        live: &CampaignLive,
        limits: Limits,
        spent: Spent,
        ask: Ask,
        reserve: bool,
    ) -> Result<(), Refusal> {
        if limits.daily.is_none() && limits.total.is_none() {
            return Ok(());
        }
        let now = self.bucket(ask.now_ms);
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.expire(now);
        let mut today = spent.today + ring.total;
        let over = |limit: Option<i64>, committed: i64| {
            limit.is_some_and(|l| committed + ask.expected > l)
        };
        // Within this node's slice of the fleet's budget (no lease for the day: none).
        let outside_lease = self.leased
            && match ring.lease {
                Some(l) if l.day == ask.day => {
                    today += l.others_today;
                    l.left(spent.today, ring.total) < ask.expected
                }
                _ => true,
            };
        let refusal = if outside_lease
            || over(limits.daily, today)
            || over(limits.total, spent.total + ring.total)
        {
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
        match refusal {
            None => {
                if reserve {
                    ring.add(now, ask.expected);
                    if self.leased {
                        self.note_admitted(&mut ring, spent.today, limits.daily.is_some());
                    }
                }
                Ok(())
            }
            Some(r) if !reserve => Err(r),
            Some(r) => {
                drop(ring);
                let counter = match r {
                    Refusal::Budget => &live.skipped_budget,
                    Refusal::Pacing => &live.skipped_pacing,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(r)
            }
        }
    }

    /// After an admission on a leased budget: queues the campaign for a top-up when its
    /// lease fell below the low-water mark, and for spend sharing (daily budgets) when
    /// it first served in the period. Under the campaign's lock, already held.
    fn note_admitted(&self, ring: &mut Ring, charged_today: i64, daily: bool) {
        let Some(id) = &ring.id else { return };
        let low = ring
            .lease
            .is_some_and(|l| l.left(charged_today, ring.total) < l.low_water);
        // The id is cloned only when queued: most admissions queue nothing.
        if low && !ring.queued {
            ring.queued = true;
            push(&self.wanted, id.clone());
        }
        if daily && !ring.touched {
            ring.touched = true;
            push(&self.touched, id.clone());
        }
    }

    /// Releases what an offer served at `served_ms` reserved, once its event arrived
    /// (the ledger charges the actual cost). Nothing if it already expired.
    pub fn settle(&self, live: &CampaignLive, served_ms: i64, reserved: i64) {
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.release(self.bucket(served_ms), reserved);
    }

    /// Micros reserved for the campaign now.
    pub fn reserved(&self, live: &CampaignLive, now_ms: i64) -> i64 {
        let mut ring = live.reservations.lock().unwrap_or_else(|p| p.into_inner());
        ring.expire(self.bucket(now_ms));
        ring.total
    }
}

fn push(queue: &Mutex<Vec<Arc<str>>>, id: Arc<str>) {
    queue.lock().unwrap_or_else(|p| p.into_inner()).push(id);
}

fn take(queue: &Mutex<Vec<Arc<str>>>) -> Vec<Arc<str>> {
    std::mem::take(&mut *queue.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const TTL: i64 = 600_000;

    fn ask(decision: u64, expected: i64, now_ms: i64) -> Ask {
        Ask {
            expected,
            elapsed: 0.5,
            seed: decision,
            campaign_hash: 1,
            now_ms,
            day: 0,
        }
    }

    const ASAP: Limits = Limits {
        daily: Some(10_000),
        total: Some(1_000_000),
        even: false,
    };

    #[test]
    fn reservations_count_until_settled_or_expired() {
        let b = Budgets::new(TTL);
        let c = CampaignLive::default();
        let none = Spent::default();
        for d in 0..10 {
            assert!(b.admit(&c, ASAP, none, ask(d, 1_000, 1_000)).is_ok());
        }
        assert_eq!(
            b.admit(&c, ASAP, none, ask(10, 1_000, 1_000)),
            Err(Refusal::Budget),
            "10 reservations of 1,000 commit the daily 10,000"
        );
        b.settle(&c, 1_000, 1_000);
        assert_eq!(b.reserved(&c, 2_000), 9_000);
        assert_eq!(
            b.reserved(&c, 1_000 + TTL - 1),
            9_000,
            "kept for the whole TTL"
        );
        assert_eq!(b.reserved(&c, 1_000 + TTL + TTL / 16), 0, "then released");
        let spent = Spent {
            today: 9_500,
            total: 9_500,
        };
        let later = 3 * TTL;
        assert_eq!(
            b.admit(&c, ASAP, spent, ask(11, 1_000, later)),
            Err(Refusal::Budget)
        );
        assert!(b.admit(&c, ASAP, spent, ask(12, 500, later)).is_ok());
        assert_eq!(c.skipped_budget.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn concurrent_admission_never_commits_more_than_the_budget() {
        let b = Arc::new(Budgets::new(TTL));
        let c = Arc::new(CampaignLive::default());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (b, c) = (b.clone(), c.clone());
                std::thread::spawn(move || {
                    (0..1_000u64)
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
        assert!(b.reserved(&c, 0) <= 10_000);
    }

    #[test]
    fn a_leased_budget_admits_only_within_the_lease_of_the_day() {
        let b = Budgets::leased(TTL);
        let c = CampaignLive::default();
        let none = Spent::default();
        assert_eq!(
            b.admit(&c, ASAP, none, ask(0, 1_000, 0)),
            Err(Refusal::Budget),
            "no lease yet"
        );
        let lease = Lease {
            day: 0,
            granted: 2_500,
            base: 500,
            others_today: 0,
            low_water: 0,
        };
        b.set_lease(&c, Some(lease));
        assert!(b.admit(&c, ASAP, none, ask(1, 1_000, 0)).is_ok());
        let charged = Spent {
            today: 1_000,
            total: 1_000,
        };
        assert_eq!(lease.left(charged.today, b.reserved(&c, 0)), 1_000);
        assert!(b.admit(&c, ASAP, charged, ask(2, 1_000, 0)).is_ok());
        assert_eq!(
            b.admit(&c, ASAP, charged, ask(3, 1, 0)),
            Err(Refusal::Budget),
            "500 charged since the lease and 2,000 reserved use the 2,500 granted"
        );
        let tomorrow = Ask {
            day: 1,
            ..ask(4, 1, 0)
        };
        assert_eq!(
            b.admit(&c, ASAP, none, tomorrow),
            Err(Refusal::Budget),
            "a lease is for its day"
        );
    }

    #[test]
    fn decisions_queue_a_campaign_for_the_lease_task_once_until_it_is_handled() {
        let b = Budgets::leased(TTL);
        let c = Arc::new(CampaignLive::default());
        let id: Arc<str> = "spring-sale".into();
        let daily = Limits {
            daily: Some(1_000_000),
            total: None,
            even: false,
        };
        let none = Spent::default();
        assert_eq!(
            b.admit(&c, daily, none, ask(0, 100, 0)),
            Err(Refusal::Budget)
        );
        b.want_lease(&c, &id);
        b.want_lease(&c, &id);
        assert_eq!(b.take_wanted(), vec![id.clone()], "queued once");
        assert!(b.refused(&c), "the task asks for more after a refusal");
        assert!(b.take_wanted().is_empty(), "taken");
        b.want_lease(&c, &id);
        assert!(
            b.take_wanted().is_empty(),
            "not again before it was handled"
        );
        b.set_lease(
            &c,
            Some(Lease {
                day: 0,
                granted: 1_000,
                base: 0,
                others_today: 0,
                low_water: 500,
            }),
        );
        b.lease_handled(&c);
        assert!(!b.refused(&c), "handled");
        assert!(b.admit(&c, daily, none, ask(1, 400, 0)).is_ok());
        assert!(
            b.take_wanted().is_empty(),
            "600 left: above the low-water mark"
        );
        let by_id = |_: &str| Some(c.clone());
        assert_eq!(
            b.take_touched(by_id),
            vec![id.clone()],
            "served: share its spend"
        );
        assert!(b.admit(&c, daily, none, ask(2, 200, 0)).is_ok());
        assert_eq!(b.take_wanted(), vec![id.clone()], "400 left: top it up");
        assert_eq!(b.take_touched(by_id), vec![id.clone()], "a new period");
        assert!(b.admit(&c, daily, none, ask(3, 100, 0)).is_ok());
        assert!(b.take_wanted().is_empty(), "still queued: not again");
        let own = Budgets::new(TTL);
        own.want_lease(&c, &id);
        assert!(
            own.take_wanted().is_empty(),
            "budgets not shared: no leases"
        );
    }

    #[test]
    fn even_pacing_thins_offers_only_when_ahead() {
        let b = Budgets::new(TTL);
        let c = CampaignLive::default();
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
