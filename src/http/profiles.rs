//! Subject access and erasure (admin key): `GET /v1/profiles?KIND=VALUE` and
//! `DELETE /v1/profiles {"ids": {...}}`. See [`crate::erasure`] for what erasure
//! reaches; stored consent ([`crate::consent`]) is shown and erased with the rest.

use super::auth::require;
use super::codec::{Body, Codec};
use super::error::ApiError;
use super::manage::read_value;
use crate::app::App;
use crate::exposure::Kind;
use crate::exposure::view::{hex128, time};
use crate::identity::{IdHash, IdKind};
use crate::validation::{Detail, Problems};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

/// The one identifier of a subject access query, hashed.
fn identifier(app: &App, query: &str) -> Result<IdHash, ApiError> {
    let pairs: Vec<(String, String)> = (query.split('&'))
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            (k.to_string(), v)
        })
        .collect();
    let [(key, value)] = pairs.as_slice() else {
        return Err(ApiError::invalid(vec![Detail::new(
            "",
            "give exactly one identifier, e.g. ?email_sha256=… or ?loyalty_id=…",
        )]));
    };
    let hasher = app.hasher();
    let hashed = if key == "email" {
        hasher.hash_given_email(value)
    } else {
        match IdKind::ALL.iter().find(|k| k.as_str() == key) {
            Some(&kind) => hasher.hash_given(kind, value),
            None => Err("is not an identifier kind"),
        }
    };
    hashed.map_err(|e| ApiError::invalid(vec![Detail::new(key.as_str(), e)]))
}

#[derive(Serialize)]
struct Identifier {
    kind: &'static str,
    /// The keyed hash, as the log shows it.
    hash: String,
}

/// A consent record stored for one of the person's identifiers.
#[derive(Serialize)]
struct ConsentRecord {
    kind: &'static str,
    hash: String,
    #[serde(flatten)]
    consent: crate::consent::Consent,
    recorded: String,
}

/// What aftercart holds about one person: their profile (linked identifiers and its
/// counts) and any consent recorded for them.
#[derive(Serialize)]
pub(super) struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    identifiers: Vec<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<String>,
    exposures: u64,
    conversions: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consent: Vec<ConsentRecord>,
}

/// Subject access for the person behind `id`: `None` when aftercart holds nothing.
pub(super) fn profile_of(app: &App, id: IdHash) -> Option<Profile> {
    let d = &app.delivery;
    let profile = d.graph.profile_of(id);
    let members = match profile {
        Some(p) => d.graph.members(p),
        None if app.consent.get(id).is_some() => vec![id],
        None => return None,
    };
    let summary = profile.map(|p| d.profiles.summary(p.0)).unwrap_or_default();
    let consent = (members.iter())
        .filter_map(|&h| {
            let r = app.consent.get(h)?;
            Some(ConsentRecord {
                kind: h.kind.as_str(),
                hash: hex128(h.hash),
                consent: r.consent,
                recorded: time(r.at_ms),
            })
        })
        .collect();
    Some(Profile {
        profile: profile.map(|p| hex128(p.0)),
        identifiers: (members.iter())
            .filter(|_| profile.is_some())
            .map(|h| Identifier {
                kind: h.kind.as_str(),
                hash: hex128(h.hash),
            })
            .collect(),
        first_seen: summary.first_seen_ms.map(time),
        last_seen: summary.last_seen_ms.map(time),
        exposures: summary.exposures,
        conversions: summary.conversions,
        consent,
    })
}

pub async fn get(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[])?;
    let id = identifier(app, req.uri().query().unwrap_or(""))?;
    let body = profile_of(app, id).ok_or_else(ApiError::not_found)?;
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &body))
}

pub async fn delete(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require(app, &parts.headers, &[])?;
    let value = read_value(app, &parts, body, app.config.max_body_bytes).await?;
    let mut p = Problems::default();
    let ids = crate::conversion::read_customer(&value, "", app.hasher(), &mut p);
    if p.is_empty() && ids.is_empty() {
        p.push("ids", "name at least one identifier");
    }
    if !p.is_empty() {
        return Err(ApiError::invalid(p.0));
    }
    let erased = erase(app, &ids).await?;
    Ok(Codec::of_response(&parts.headers).encode(StatusCode::OK, &erased))
}

/// What an erasure removed.
#[derive(Serialize)]
pub(crate) struct Erased {
    erased_identifiers: usize,
}

/// Erases the people behind `ids` everywhere (see [`crate::erasure`]) and their stored
/// consent; answers once the erasure is durable. In a fleet, every other node then
/// does the same (see [`crate::cluster`]).
pub(super) async fn erase(app: &App, ids: &[IdHash]) -> Result<Erased, ApiError> {
    let erased = erase_here(app, ids).await?;
    if let Some(fleet) = app.delivery.replication.get() {
        fleet.erased(ids);
    }
    Ok(erased)
}

/// [`erase`] on this node only: what another node's erasure does here.
pub(crate) async fn erase_here(app: &App, ids: &[IdHash]) -> Result<Erased, ApiError> {
    let now = app.clock.now_ms();
    // One erasure at a time, so the index on disk never loses a concurrent one.
    let _one = app.erasure_lock.lock().await;
    let erased = app.delivery.erase(ids);
    let mut records: Vec<_> = (erased.profiles.iter())
        .map(|(profile, members)| crate::erasure::record(now, Some(*profile), members))
        .collect();
    if !erased.unknown.is_empty() {
        records.push(crate::erasure::record(now, None, &erased.unknown));
    }
    app.log
        .append_durable(Kind::Erasure, &records)
        .await
        .map_err(|e| ApiError::unavailable(format!("{e}; retry the erasure")))?;
    let index = {
        let mut erasures = app
            .delivery
            .erasures
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for r in &records {
            erasures.note(r);
        }
        erasures.clone()
    };
    let dir = app.log_dir();
    tokio::task::spawn_blocking(move || index.save(&dir))
        .await
        .map_err(|_| ApiError::unavailable("erasure index task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot write the erasure index");
            ApiError::unavailable("the erasure is logged but its index could not be written; retry")
        })?;
    let mut forgotten: Vec<IdHash> = ids.to_vec();
    for (_, members) in &erased.profiles {
        forgotten.extend(members.iter().copied());
    }
    let consent = app.consent.clone();
    tokio::task::spawn_blocking(move || consent.erase(&forgotten))
        .await
        .map_err(|_| ApiError::unavailable("consent erasure task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot erase stored consent");
            ApiError::unavailable(
                "the erasure is logged but stored consent could not be removed; retry",
            )
        })?;
    Ok(Erased {
        erased_identifiers: erased.identifiers(),
    })
}
