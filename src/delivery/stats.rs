//! A campaign's live delivery figures (`GET /v1/campaigns/{id}/stats`).
//!
//! Offers, impressions, clicks and spend are derived from the exposure log (kept
//! across restarts through checkpoints); reservations and skip counts are live state
//! since the server started.

use super::{CampaignLive, pacing};
use crate::app::App;
use crate::campaign::{Channel, Pacing};
use crate::index::CompiledCampaign;
use crate::money::Micros;
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Serialize)]
pub struct Stats {
    pub campaign_id: String,
    /// The campaign's local date that "today" means.
    pub today: String,
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub ctr: f64,
    pub by_channel: Vec<ChannelStats>,
    pub spend: Spend,
    pub budget: Budget,
    pub pacing: PacingState,
    pub skipped: Skipped,
}

#[derive(Debug, Serialize)]
pub struct ChannelStats {
    pub channel: &'static str,
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    /// The CTR ranking uses (learned, smoothed toward the prior).
    pub predicted_ctr: f64,
}

#[derive(Debug, Serialize)]
pub struct Spend {
    pub today: Micros,
    pub total: Micros,
    /// Expected cost of offers served and not yet settled.
    pub reserved: Micros,
}

#[derive(Debug, Serialize)]
pub struct Budget {
    pub daily: Option<Micros>,
    pub total: Option<Micros>,
    pub left_today: Option<Micros>,
    pub left_total: Option<Micros>,
}

#[derive(Debug, Serialize)]
pub struct PacingState {
    pub mode: &'static str,
    /// `unlimited`, `exhausted`, `ahead` (being thinned), `on_track` or `behind`.
    pub state: &'static str,
    /// Elapsed share of the campaign's day.
    pub elapsed: f64,
    /// What even pacing aims to have committed by now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_today: Option<Micros>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub caps: u64,
    pub budget: u64,
    pub pacing: u64,
    pub holdout: u64,
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub fn of(app: &App, c: &CompiledCampaign, now_ms: i64) -> Stats {
    let live = app.delivery.registry.get(&c.id);
    let (day, elapsed) = pacing::local_day(c.tz, now_ms);
    let (today, total) = app.ledger.spent(&c.id, day);
    let reserved = app.delivery.budgets.reserved(&live, now_ms);
    let budget = c.doc.budget;
    let daily = budget.daily.map(|m| m.0);
    let left = |limit: Option<i64>, spent: i64| limit.map(|l| Micros((l - spent).max(0)));
    let left_today = left(daily, today);
    let left_total = left(budget.total.map(|m| m.0), total);
    let exhausted = [left_today, left_total]
        .iter()
        .any(|l| l.is_some_and(|m| m.0 == 0));
    let target = match (c.doc.pacing, daily) {
        (Pacing::Even, Some(d)) => Some((d as f64 * (elapsed + pacing::LEAD).min(1.0)) as i64),
        _ => None,
    };
    let state = if daily.is_none() && budget.total.is_none() {
        "unlimited"
    } else if exhausted {
        "exhausted"
    } else {
        match (target, daily) {
            (Some(_), Some(d)) if pacing::serve_probability(today + reserved, d, elapsed) < 1.0 => {
                "ahead"
            }
            (Some(t), _) if today + reserved + (t / 50) >= t => "on_track",
            (Some(_), _) => "behind",
            (None, _) => "on_track",
        }
    };
    let by_channel: Vec<ChannelStats> = Channel::ALL
        .iter()
        .map(|&ch| ChannelStats {
            channel: ch.as_str(),
            decisions: load(&live.offers[ch as usize]),
            impressions: load(&live.impressions[ch as usize]),
            clicks: load(&live.clicks[ch as usize]),
            predicted_ctr: live.ctr(ch),
        })
        .collect();
    let impressions = CampaignLive::total(&live.impressions);
    let clicks = CampaignLive::total(&live.clicks);
    Stats {
        campaign_id: c.id.to_string(),
        today: (chrono::NaiveDate::default() + chrono::Days::new(day.max(0) as u64)).to_string(),
        decisions: CampaignLive::total(&live.offers),
        impressions,
        clicks,
        ctr: if impressions == 0 {
            0.0
        } else {
            clicks as f64 / impressions as f64
        },
        by_channel,
        spend: Spend {
            today: Micros(today),
            total: Micros(total),
            reserved: Micros(reserved),
        },
        budget: Budget {
            daily: budget.daily,
            total: budget.total,
            left_today,
            left_total,
        },
        pacing: PacingState {
            mode: match c.doc.pacing {
                Pacing::Even => "even",
                Pacing::Asap => "asap",
            },
            state,
            elapsed,
            target_today: target.map(Micros),
        },
        skipped: Skipped {
            caps: load(&live.skipped_caps),
            budget: load(&live.skipped_budget),
            pacing: load(&live.skipped_pacing),
            holdout: load(&live.skipped_holdout),
        },
    }
}
