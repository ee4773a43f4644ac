//! The decision's live checks, asked in the slot walk for each campaign about to take
//! a slot (selection steps 2, 3, 4 and 6 of the contract):
//!
//! 1. **frequency caps**: offers of the campaign served to the profile within each
//!    cap's window (merged profiles add up);
//! 2. **suppression**: the profile bought something matching the campaign's
//!    `conversion` rule within `exclude_purchasers_days`, in any channel;
//! 3. **budget and pacing**, checked without reserving;
//! 4. **holdout**: a profile in the campaign's control group gets a `control` record
//!    for the slot, and nothing is reserved or counted;
//! 5. the budget reservation itself, last, so nothing is reserved for an offer that
//!    another check refuses.
//!
//! Caps, suppression and holdouts need a resolved profile: anonymous requests and
//! those without personalisation consent skip them (campaigns with
//! `require_identity` never reach here for those), and only requests with both
//! consents are held out. An admin preview (`test`) checks without changing anything.

use super::select::{Admission, Gate};
use crate::campaign::{BidModel, Channel, Pacing};
use crate::delivery::budget::{Ask, Limits, Refusal, Spent};
use crate::delivery::{CampaignLive, Delivery, pacing};
use crate::index::{CompiledCampaign, Stage};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use std::cell::RefCell;
use std::sync::Arc;

pub struct LiveGate<'a> {
    pub delivery: &'a Delivery,
    pub ledger: &'a Ledger,
    pub metrics: &'a Metrics,
    /// The resolved profile, with personalisation consent.
    pub profile: Option<u128>,
    /// Personalisation and measurement consent: may be held out.
    pub holdout_eligible: bool,
    pub channel: Channel,
    pub now_ms: i64,
    /// The decision's seed (pacing coin).
    pub seed: u64,
    /// An admin preview: check, change nothing.
    pub dry_run: bool,
    /// Held-out campaigns and the slot they would have taken.
    pub controls: RefCell<Vec<(u8, Arc<CompiledCampaign>)>>,
}

impl LiveGate<'_> {
    fn skip(&self, live: &CampaignLive, stage: Stage) -> Admission {
        if !self.dry_run {
            let counter = match stage {
                Stage::FrequencyCap => Some(&live.skipped_caps),
                Stage::Holdout => Some(&live.skipped_holdout),
                _ => None, // budget and pacing are counted by the budget itself
            };
            if let Some(c) = counter {
                CampaignLive::count(c);
            }
            self.metrics
                .offers_skipped
                .with_label_values(&[stage.as_str()])
                .inc();
        }
        Admission::Skip(stage)
    }
}

impl Gate for LiveGate<'_> {
    fn admit(&self, c: &Arc<CompiledCampaign>, slot: u8, _ecpm: i64) -> Admission {
        let doc = &c.doc;
        let profiles = &self.delivery.profiles;
        if let Some(p) = self.profile {
            if !profiles.within_caps(p, c.id_hash, &doc.frequency_caps, self.now_ms) {
                return self.skip(&c.live, Stage::FrequencyCap);
            }
            if let Some(days) = doc.targeting.exclude_purchasers_days {
                let since = self.now_ms - i64::from(days) * 86_400_000;
                if profiles.bought_since(p, &c.conversion_keys, since) {
                    return self.skip(&c.live, Stage::Suppressed);
                }
            }
        }

        let (day, elapsed) = pacing::local_day(c.tz, self.now_ms);
        let (today, total) = self.ledger.spent(&c.id, day);
        let limits = Limits {
            daily: doc.budget.daily.map(|m| m.0),
            total: doc.budget.total.map(|m| m.0),
            even: doc.pacing == Pacing::Even,
        };
        let spent = Spent { today, total };
        let expected = match c.bid.model {
            BidModel::Cpm => c.price().0,
            BidModel::Cpc => (c.bid.amount.0 as f64 * c.live.ctr(self.channel)) as i64,
        };
        let ask = Ask {
            expected,
            elapsed,
            seed: self.seed,
            campaign_hash: c.id_hash,
            now_ms: self.now_ms,
            day,
        };
        let budgets = &self.delivery.budgets;
        let refusal_stage = |r: Refusal| match r {
            Refusal::Budget => {
                // In a fleet, a refusal may only mean no lease yet: ask for one.
                budgets.want_lease(&c.live, &c.id);
                Stage::Budget
            }
            Refusal::Pacing => Stage::Pacing,
        };

        if let (true, Some(p)) = (self.holdout_eligible, self.profile)
            && doc.holdout_percent > 0.0
        {
            let control = if self.dry_run {
                profiles.peek_holdout(p, c.id_hash, doc.holdout_percent)
            } else {
                profiles
                    .holdout(p, c.id_hash, doc.holdout_percent, self.now_ms)
                    .control
            };
            if control {
                // A campaign that could not serve anyway is not eligible, so it is
                // not held out either.
                if let Err(r) = budgets.would_admit(&c.live, limits, spent, ask) {
                    return self.skip(&c.live, refusal_stage(r));
                }
                if !self.dry_run {
                    self.controls.borrow_mut().push((slot, Arc::clone(c)));
                }
                self.skip(&c.live, Stage::Holdout);
                return Admission::Control;
            }
        }

        let verdict = if self.dry_run {
            budgets.would_admit(&c.live, limits, spent, ask)
        } else {
            budgets.admit(&c.live, limits, spent, ask)
        };
        match verdict {
            Ok(()) => Admission::Serve {
                reserved: if self.dry_run { 0 } else { expected },
            },
            Err(r) => {
                let stage = refusal_stage(r);
                if !self.dry_run {
                    self.metrics
                        .offers_skipped
                        .with_label_values(&[stage.as_str()])
                        .inc();
                }
                Admission::Skip(stage)
            }
        }
    }
}
