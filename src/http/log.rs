//! `GET /v1/log?from=OFFSET&max=N&wait_ms=M`: the exposure log for measurement jobs, as
//! NDJSON (one record per line) or a MessagePack array, with the offset to continue
//! from in `X-Aftercart-Next-Offset`. `wait_ms` long-polls at the tail.

use super::codec::{Body, Codec, with_type};
use super::error::ApiError;
use crate::app::App;
use crate::exposure::read::read_batch;
use crate::exposure::record::Record;
use crate::exposure::storage::LogError;
use crate::exposure::view::RecordView;
use crate::validation::Detail;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::Duration;

pub const NEXT_OFFSET: &str = "x-aftercart-next-offset";
const MAX_RECORDS: u64 = 10_000;
const MAX_WAIT_MS: u64 = 30_000;

fn param(query: &str, name: &str, default: u64, max: u64, problems: &mut Vec<Detail>) -> u64 {
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && k == name
        {
            return match v.parse::<u64>() {
                Ok(n) if n <= max => n,
                _ => {
                    problems.push(Detail::new(
                        name,
                        format!("must be an integer from 0 to {max}"),
                    ));
                    default
                }
            };
        }
    }
    default
}

fn log_error(e: LogError) -> ApiError {
    match e {
        LogError::BadOffset { .. } => ApiError::invalid(vec![Detail::new("from", e.to_string())]),
        other => {
            tracing::error!(error = %other, "reading the exposure log failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "log_unreadable",
                "the exposure log could not be read",
            )
        }
    }
}

async fn read(app: &App, from: u64, max: usize) -> Result<(Vec<(u64, Record)>, u64), ApiError> {
    let dir = app.log_dir();
    tokio::task::spawn_blocking(move || read_batch(&dir, from, max))
        .await
        .map_err(|_| ApiError::unavailable("log reader failed"))?
        .map_err(log_error)
}

pub async fn get(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    super::auth::require(app, req.headers(), &[crate::access::Role::Measurement])?;
    let query = req.uri().query().unwrap_or("");
    let mut problems = Vec::new();
    let from = param(query, "from", 0, u64::MAX, &mut problems);
    let max = param(query, "max", 1000, MAX_RECORDS, &mut problems).max(1) as usize;
    let wait_ms = param(query, "wait_ms", 0, MAX_WAIT_MS, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let (mut records, mut next) = read(app, from, max).await?;
    if records.is_empty() && wait_ms > 0 {
        let mut written = app.log.written();
        let target = next;
        let _ = tokio::time::timeout(
            Duration::from_millis(wait_ms),
            written.wait_for(|&end| end > target),
        )
        .await;
        (records, next) = read(app, from, max).await?;
    }
    let views: Vec<RecordView> = records
        .iter()
        .map(|(offset, record)| RecordView {
            offset: *offset,
            record,
        })
        .collect();
    let mut response = match Codec::of_response(req.headers()) {
        Codec::MsgPack => Codec::MsgPack.encode(StatusCode::OK, &views),
        Codec::Json => {
            let mut out = Vec::with_capacity(256 * views.len());
            for v in &views {
                if serde_json::to_writer(&mut out, v).is_ok() {
                    out.push(b'\n');
                }
            }
            with_type(StatusCode::OK, "application/x-ndjson", Bytes::from(out))
        }
    };
    response
        .headers_mut()
        .insert(NEXT_OFFSET, HeaderValue::from(next));
    Ok(response)
}
