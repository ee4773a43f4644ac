//! Tracking events: impressions and clicks authorised by their sealed token, counted
//! once per decision and slot, charged per the campaign's bid model.

use crate::app::App;
use crate::campaign::BidModel;
use crate::delivery::CampaignLive;
use crate::exposure::record::H128;
use crate::exposure::{Kind, LogUnavailable, Record};
use crate::ledger::Event;
use crate::token::{TokenError, TokenPayload};
use chrono::TimeZone;

/// What an event request turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Counted {
    /// Counted, charged and logged.
    Yes,
    /// A repeat, or too late: answered normally, not counted.
    No,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Log(#[from] LogUnavailable),
}

/// The campaign's (daily, total) budget in micros, if it is still loaded.
fn budget_of(app: &App, campaign: &str) -> (Option<i64>, Option<i64>) {
    app.snapshot
        .load()
        .by_id(campaign)
        .map_or((None, None), |c| {
            let b = c.doc.budget;
            (b.daily.map(|m| m.0), b.total.map(|m| m.0))
        })
}

/// Charges up to `amount` to the token's campaign, capped at what is left of its
/// budget; returns what was charged.
fn charge(app: &App, t: &TokenPayload, now: i64, amount: i64) -> i64 {
    let (daily, total) = budget_of(app, &t.campaign);
    let day = campaign_day(app, &t.campaign, now);
    app.ledger
        .charge_capped(&t.campaign, day, amount, daily, total)
}

/// The campaign's day (days since the epoch in its time zone) at `ms`.
pub fn campaign_day(app: &App, campaign: &str, ms: i64) -> i32 {
    let tz = app
        .snapshot
        .load()
        .by_id(campaign)
        .map_or(app.config.timezone, |c| c.tz);
    let local = tz.timestamp_millis_opt(ms).single().map(|t| t.date_naive());
    local.map_or(0, |d| (d - chrono::NaiveDate::default()).num_days() as i32)
}

/// A record about the offer a token names: which decision, slot, campaign, creative,
/// placement, channel, location and profile, and when the decision was made.
pub fn offer_record(kind: Kind, t: &TokenPayload, now: i64) -> Record {
    let mut r = Record::new(kind, now);
    r.decision_id = Some(H128(t.decision.0));
    r.slot = Some(t.slot);
    r.campaign = Some(t.campaign.clone());
    r.creative = Some(t.creative.clone());
    r.placement = Some(t.placement.clone());
    r.channel = Some(t.channel);
    r.location = Some(t.location.clone());
    r.profile = t.profile.map(H128);
    r.decision_ts = Some(t.issued_ms);
    r
}

/// An impression, click or invalid event: the offer, its price and what it charged.
fn event_record(kind: Kind, t: &TokenPayload, now: i64, cost: i64) -> Record {
    let mut r = offer_record(kind, t, now);
    r.model = Some(t.model);
    r.price = Some(t.price);
    r.cost = Some(cost);
    r
}

/// Why an event is not a person looking at an offer, if it is not: `flagged` by the
/// HTTP layer (a bot, a burst from one address), or faster than a page can render.
fn invalid_reason(
    app: &App,
    t: &TokenPayload,
    now: i64,
    flagged: Option<&'static str>,
) -> Option<&'static str> {
    let min_render = app.config.min_render_ms as i64;
    flagged.or((min_render > 0 && now - t.issued_ms < min_render).then_some("too_fast"))
}

/// Logs an invalid event: kept for the record, never counted or charged.
async fn log_invalid(
    app: &App,
    t: &TokenPayload,
    now: i64,
    event: Kind,
    reason: &'static str,
) -> Result<Counted, EventError> {
    let mut r = event_record(Kind::Invalid, t, now, 0);
    r.reason = Some(reason.to_string());
    r.event = Some(event);
    app.log.append(Kind::Invalid, &[r]).await?;
    app.metrics.events.with_label_values(&["invalid"]).inc();
    Ok(Counted::No)
}

/// Counts an impression: the first per decision and slot within the impression
/// time-to-live; charges cpm campaigns their price. `flagged` says why the HTTP layer
/// found the request invalid, if it did.
pub async fn impression(
    app: &App,
    token: &str,
    flagged: Option<&'static str>,
) -> Result<Counted, EventError> {
    let t = app.decider.sealer().open(token)?;
    let now = app.clock.now_ms();
    if let Some(reason) = invalid_reason(app, &t, now, flagged) {
        return log_invalid(app, &t, now, Kind::Impression, reason).await;
    }
    if now - t.issued_ms > app.config.impression_ttl_secs as i64 * 1000 {
        return Ok(Counted::No);
    }
    if !app
        .ledger
        .first_event(t.decision.0, t.slot, Event::Impression, t.issued_ms)
    {
        return Ok(Counted::No);
    }
    // Charged before logging, so the record says what was actually charged (a late
    // impression of a spent campaign charges only what is left), and refunded if the
    // record cannot be logged.
    let price = if t.model == BidModel::Cpm { t.price } else { 0 };
    let cost = charge(app, &t, now, price);
    let records = [event_record(Kind::Impression, &t, now, cost)];
    if let Err(e) = app.log.append(Kind::Impression, &records).await {
        app.ledger
            .refund(&t.campaign, campaign_day(app, &t.campaign, now), cost);
        app.ledger
            .unmark_event(t.decision.0, t.slot, Event::Impression);
        return Err(e.into());
    }
    let live = app.delivery.registry.get(&t.campaign);
    if t.model == BidModel::Cpm {
        app.delivery.budgets.settle(&live, t.issued_ms, t.reserved);
    }
    CampaignLive::count(&live.impressions[t.channel as usize]);
    app.metrics.events.with_label_values(&["impression"]).inc();
    Ok(Counted::Yes)
}

/// Counts a click (the first per decision and slot, within the click time-to-live),
/// recording the impression too if none came; charges cpc campaigns their price.
/// Returns the token's payload so the caller can redirect.
pub async fn click(
    app: &App,
    token: &str,
    flagged: Option<&'static str>,
) -> Result<(TokenPayload, Counted), EventError> {
    let t = app.decider.sealer().open(token)?;
    let now = app.clock.now_ms();
    if let Some(reason) = invalid_reason(app, &t, now, flagged) {
        let counted = log_invalid(app, &t, now, Kind::Click, reason).await?;
        return Ok((t, counted));
    }
    if now - t.issued_ms > app.config.click_ttl_secs as i64 * 1000
        || !app
            .ledger
            .first_event(t.decision.0, t.slot, Event::Click, t.issued_ms)
    {
        return Ok((t, Counted::No));
    }
    let within_impression_ttl = now - t.issued_ms <= app.config.impression_ttl_secs as i64 * 1000;
    let mut records = Vec::with_capacity(2);
    let mut impression_cost = 0;
    let impression_recorded = within_impression_ttl
        && app
            .ledger
            .first_event(t.decision.0, t.slot, Event::Impression, t.issued_ms);
    if impression_recorded {
        let price = if t.model == BidModel::Cpm { t.price } else { 0 };
        impression_cost = charge(app, &t, now, price);
        records.push(event_record(Kind::Impression, &t, now, impression_cost));
    }
    let price = if t.model == BidModel::Cpc { t.price } else { 0 };
    let click_cost = charge(app, &t, now, price);
    let click = event_record(Kind::Click, &t, now, click_cost);
    let logged = match records.pop() {
        Some(imp) => match app.log.append(Kind::Impression, &[imp]).await {
            Ok(()) => app.log.append(Kind::Click, &[click]).await,
            Err(e) => Err(e),
        },
        None => app.log.append(Kind::Click, &[click]).await,
    };
    if let Err(e) = logged {
        let day = campaign_day(app, &t.campaign, now);
        app.ledger
            .refund(&t.campaign, day, impression_cost + click_cost);
        app.ledger.unmark_event(t.decision.0, t.slot, Event::Click);
        if impression_recorded {
            app.ledger
                .unmark_event(t.decision.0, t.slot, Event::Impression);
        }
        return Err(e.into());
    }
    let live = app.delivery.registry.get(&t.campaign);
    if impression_recorded || t.model == BidModel::Cpc {
        app.delivery.budgets.settle(&live, t.issued_ms, t.reserved);
    }
    if impression_recorded {
        CampaignLive::count(&live.impressions[t.channel as usize]);
        app.metrics.events.with_label_values(&["impression"]).inc();
    }
    CampaignLive::count(&live.clicks[t.channel as usize]);
    app.metrics.events.with_label_values(&["click"]).inc();
    Ok((t, Counted::Yes))
}
