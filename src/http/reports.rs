//! `GET /v1/campaigns/{id}/report?from=&to=&click_window=&view_window=`: one campaign's
//! row of `aftercart report`, for its advertiser, measurement keys and the admin.
//!
//! The row is computed from the exposure log alone, exactly as the CLI computes it (the
//! same library call), so the advertiser's dashboard and the measurement team's job
//! agree to the cent. A report reads the whole log, which takes seconds on a big one:
//! it runs on the blocking pool, one at a time (the decision path keeps its cores), and
//! a request that cannot get its turn within [`QUEUE_WAIT`] is a 503 with `Retry-After`
//! rather than an ever-growing queue.

use super::auth::require;
use super::codec::{Body, Codec};
use super::error::ApiError;
use crate::access::Role;
use crate::app::App;
use crate::measure::model::{LogSummary, Period};
use crate::measure::{self, CampaignRow, Options, ReportError};
use crate::validation::Detail;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use std::time::Duration;

/// How long a report request waits for the one running before it gives up.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);

/// The campaign's row, with what it covers beside it.
#[derive(Serialize)]
struct Reply {
    #[serde(flatten)]
    row: CampaignRow,
    period: Period,
    log: LogSummary,
    currency: Option<String>,
}

/// The report options in the query string; every problem listed by parameter name.
fn options(query: &str) -> Result<Options, ApiError> {
    let mut options = Options::default();
    let mut problems = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let result = match &*name {
            "from" => measure::parse_time(&value, false).map(|t| options.from_ms = Some(t)),
            "to" => measure::parse_time(&value, true).map(|t| options.to_ms = Some(t)),
            "click_window" => measure::parse_window(&value).map(|w| options.click_window_ms = w),
            "view_window" => measure::parse_window(&value).map(|w| options.view_window_ms = w),
            _ => Err(
                "unknown parameter (expected from, to, click_window or view_window)".to_string(),
            ),
        };
        if let Err(message) = result {
            problems.push(Detail::new(&*name, message));
        }
    }
    if let (Some(from), Some(to)) = (options.from_ms, options.to_ms)
        && from >= to
    {
        problems.push(Detail::new("to", "must be after from"));
    }
    if problems.is_empty() {
        Ok(options)
    } else {
        Err(ApiError::invalid(problems))
    }
}

fn not_theirs() -> ApiError {
    ApiError::forbidden(Detail::new("id", "belongs to another advertiser"))
}

pub async fn get(app: &App, req: Request<Incoming>, id: &str) -> Result<Response<Body>, ApiError> {
    let who = require(app, req.headers(), &[Role::Advertiser, Role::Measurement])?;
    let options = options(req.uri().query().unwrap_or(""))?;
    // A live campaign's owner is known without reading the log: refuse another
    // advertiser before doing any work for them.
    let live_owner = app.snapshot.load().by_id(id).map(|c| c.advertiser.clone());
    if who.role == Role::Advertiser
        && let Some(owner) = &live_owner
        && !who.manages(owner)
    {
        return Err(not_theirs());
    }

    let _turn = tokio::time::timeout(QUEUE_WAIT, app.report_turn.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let data = app.config.data.clone();
    let campaign = id.to_string();
    let report = tokio::task::spawn_blocking(move || {
        measure::report(
            &data,
            &Options {
                campaign: Some(campaign),
                ..options
            },
        )
    })
    .await
    .map_err(|_| ApiError::unavailable("the report could not be computed"))?
    .map_err(report_error)?;

    let row = report
        .campaign(id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    // A deleted campaign is known only from the log: its last document names the owner.
    if who.role == Role::Advertiser
        && live_owner.is_none()
        && !row.advertiser_id.as_deref().is_some_and(|a| who.manages(a))
    {
        return Err(not_theirs());
    }
    let reply = Reply {
        row,
        period: report.period,
        log: report.log,
        currency: report.currency,
    };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &reply))
}

fn busy() -> ApiError {
    ApiError::unavailable("another report is running; try again shortly")
}

fn report_error(e: ReportError) -> ApiError {
    tracing::error!(error = %e, "a campaign report failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "log_unreadable",
        "the exposure log could not be read for the report",
    )
}
