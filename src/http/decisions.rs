//! `POST /v1/decisions`.

use super::codec::{Body, Codec, read_body};
use super::error::ApiError;
use crate::app::App;
use crate::decision::{Caller, DecisionError, DecisionRequest, DecisionView, Outcome};
use crate::exposure::Kind;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::{Duration, Instant};

pub async fn post(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if !app.within_rate(&req) {
        return Err(ApiError::rate_limited());
    }
    let bot = crate::traffic::is_bot(req.headers());
    let (parts, body) = req.into_parts();
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms);
    let bytes = read_body(body, &parts.headers, app.config.max_body_bytes, deadline).await?;
    let started = Instant::now();
    let request: DecisionRequest = codec
        .decode(&bytes)
        .inspect_err(|_| app.decider.count_invalid())?;
    check_placement_key(app, &parts.headers, request.placement.as_deref())?;
    if bot {
        return answer_bot(app, &parts.headers, &request).await;
    }
    let caller = Caller {
        admin: app.is_admin(&parts.headers),
        gpc: gpc(&parts.headers),
    };
    let outcome = decide_and_log(app, request, caller).await?;
    let view = DecisionView {
        decision: &outcome.decision,
        explain: outcome.explain.as_ref(),
        test: outcome.test,
        public_url: &app.config.public_url,
        currency: &app.config.currency,
    };
    let codec = Codec::of_response(&parts.headers);
    let mut json = Vec::with_capacity(2048);
    let response = if codec == Codec::Json && view.write_json(&mut json) {
        super::codec::with_type(StatusCode::OK, codec.content_type(), json.into())
    } else {
        codec.encode(StatusCode::OK, &view)
    };
    observe(app, &outcome, started);
    Ok(response)
}

/// The request carries `Sec-GPC: 1` (Global Privacy Control).
pub(super) fn gpc(headers: &http::HeaderMap) -> bool {
    headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1")
}

/// Decides, logs the decision's records and counts its offers: what every endpoint
/// that makes decisions shares.
pub(super) async fn decide_and_log(
    app: &App,
    request: DecisionRequest,
    caller: Caller,
) -> Result<Outcome, ApiError> {
    let outcome = app.decider.decide(request, caller).map_err(|e| {
        app.decider.count_invalid();
        match e {
            DecisionError::Invalid(details) => ApiError::invalid(details),
            DecisionError::Forbidden(detail) => ApiError::forbidden(detail),
            DecisionError::RateLimited => ApiError::rate_limited(),
        }
    })?;
    let kind = if outcome.decision.offers.is_empty() {
        Kind::Nofill
    } else {
        Kind::Decision
    };
    if app.config.log_decisions
        && let Err(e) = app.log.append(kind, &outcome.records).await
    {
        // Nothing is served without its record.
        if let Some(key) = outcome.replay_key {
            app.decider.forget(key);
        }
        return Err(ApiError::unavailable(format!("{e}; retry later")));
    }
    if !outcome.replayed && !outcome.test {
        let ch = outcome.decision.channel as usize;
        for o in &outcome.decision.offers {
            crate::delivery::CampaignLive::count(&o.winner.campaign.live.offers[ch]);
        }
    }
    Ok(outcome)
}

/// Observes a decision's latency, from `started` (when its request was read) to now.
pub(super) fn observe(app: &App, outcome: &Outcome, started: Instant) {
    app.metrics.hot.decision_seconds[outcome.decision.channel as usize]
        .observe(started.elapsed().as_secs_f64());
}

/// Logs an `invalid` record for a decision request from a known bot (one per
/// placement asked for), which then gets a well-formed answer without offers.
pub(super) async fn log_bot(app: &App, placements: &[Option<String>]) -> Result<(), ApiError> {
    let now = app.clock.now_ms();
    let records: Vec<_> = (placements.iter())
        .map(|placement| {
            let mut r = crate::exposure::Record::new(Kind::Invalid, now);
            r.reason = Some("bot_user_agent".into());
            r.event = Some(Kind::Decision);
            r.placement = placement.clone();
            r
        })
        .collect();
    app.log
        .append(Kind::Invalid, &records)
        .await
        .map_err(|e| ApiError::unavailable(format!("{e}; retry later")))?;
    app.metrics
        .events
        .with_label_values(&["invalid"])
        .inc_by(records.len() as u64);
    Ok(())
}

/// The header carrying a placement's publishable key.
pub const PLACEMENT_KEY: &str = "x-aftercart-key";

/// A placement configured with publishable keys answers only requests carrying one of
/// them (or the admin key, for previews); every other is a 401 naming the header.
pub fn check_placement_key(
    app: &App,
    headers: &http::HeaderMap,
    placement: Option<&str>,
) -> Result<(), ApiError> {
    let Some(rules) = placement.and_then(|p| app.config.placements.get(p)) else {
        return Ok(());
    };
    if rules.publishable_keys.is_empty() || app.is_admin(headers) {
        return Ok(());
    }
    let given = headers.get(PLACEMENT_KEY).map(|v| v.as_bytes());
    let known = given.is_some_and(|given| {
        (rules.publishable_keys.iter())
            .any(|k| bool::from(subtle::ConstantTimeEq::ct_eq(k.as_bytes(), given)))
    });
    if known {
        return Ok(());
    }
    let message = match given {
        None => "this placement requires its publishable key",
        Some(_) => "not a publishable key of this placement",
    };
    Err(
        ApiError::new(StatusCode::UNAUTHORIZED, "placement_key_required", message).with_details(
            vec![crate::validation::Detail::new("X-Aftercart-Key", message)],
        ),
    )
}

/// A known bot gets a well-formed empty answer (no offer, nothing reserved or
/// counted) and an `invalid` record, so it neither sees offers nor skews fill rates.
async fn answer_bot(
    app: &App,
    headers: &http::HeaderMap,
    request: &DecisionRequest,
) -> Result<Response<Body>, ApiError> {
    log_bot(app, std::slice::from_ref(&request.placement)).await?;
    #[derive(serde::Serialize)]
    struct Empty {
        decision_id: crate::ids::DecisionId,
        offers: [(); 0],
    }
    let body = Empty {
        decision_id: crate::ids::DecisionId::mint(app.clock.now_ms()),
        offers: [],
    };
    Ok(Codec::of_response(headers).encode(StatusCode::OK, &body))
}
