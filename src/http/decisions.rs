//! `POST /v1/decisions`.

use super::codec::{Body, Codec, read_body};
use super::error::ApiError;
use crate::app::App;
use crate::decision::{Caller, DecisionError, DecisionRequest, DecisionView};
use crate::exposure::Kind;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::{Duration, Instant};

pub async fn post(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms);
    let bytes = read_body(body, &parts.headers, app.config.max_body_bytes, deadline).await?;
    let started = Instant::now();
    let request: DecisionRequest = codec
        .decode(&bytes)
        .inspect_err(|_| app.decider.count_invalid())?;
    let caller = Caller {
        admin: app.is_admin(&parts.headers),
        gpc: parts
            .headers
            .get("sec-gpc")
            .is_some_and(|v| v.as_bytes() == b"1"),
    };
    let outcome = app.decider.decide(request, caller).map_err(|e| {
        app.decider.count_invalid();
        match e {
            DecisionError::Invalid(details) => ApiError::invalid(details),
            DecisionError::Forbidden(detail) => ApiError::forbidden(detail),
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
            let live = app.delivery.registry.get(&o.winner.campaign.id);
            crate::delivery::CampaignLive::count(&live.offers[ch]);
        }
    }
    let view = DecisionView {
        decision: &outcome.decision,
        explain: outcome.explain.as_ref(),
        test: outcome.test,
        public_url: &app.config.public_url,
        currency: &app.config.currency,
    };
    let response = Codec::of_response(&parts.headers).encode(StatusCode::OK, &view);
    app.metrics
        .decision_seconds
        .with_label_values(&[outcome.decision.channel.as_str()])
        .observe(started.elapsed().as_secs_f64());
    Ok(response)
}
