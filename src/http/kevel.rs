//! Kevel's endpoints, as Kevel's SDKs call them (see [`crate::compat::kevel`]):
//!
//! - `POST /api/v2`: decisions, public like `POST /v1/decisions` (same rate limits,
//!   bot handling, consent defaults and `Sec-GPC`);
//! - `GET /udb/{networkId}/read?userKey=K`: subject access for `customer_id` K;
//! - `DELETE /udb/{networkId}?userKey=K`: erasure of the person behind K;
//! - `POST /udb/{networkId}/consent` `{"userKey", "consent"}`: their recorded consent;
//! - `GET /v1/compat/kevel/ids/{n}`: what a number in a Kevel decision names.
//!
//! UserDB calls need the admin key in `X-Adzerk-ApiKey` (the header Kevel's SDKs send
//! their API key in; `Authorization: Bearer` works too). The id lookup is aftercart's
//! own endpoint and takes an admin or measurement key: numbers name campaigns and
//! advertisers, which is what reading the log and reports already shows those keys.
//! `networkId` must be a positive integer and is otherwise ignored: one aftercart
//! deployment is one network.

use super::auth::require;
use super::codec::{Body, Codec, read_body};
use super::decisions::{check_placement_key, decide_and_log, gpc, log_bot, observe};
use super::error::ApiError;
use super::manage::read_value;
use super::profiles::{erase, profile_of};
use crate::access::{Principal, Role};
use crate::app::App;
use crate::compat::kevel::ids::{Entity, MAX};
use crate::compat::kevel::request::{KevelRequest, plan};
use crate::compat::kevel::response::{Answer, KevelResponse, UserOut, answer, entities};
use crate::consent::Consent;
use crate::decision::{Caller, DecisionError, DecisionView};
use crate::identity::{IdHash, IdKind};
use crate::validation::{Detail, Problems, Reader};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use std::time::{Duration, Instant};

/// `POST /api/v2`.
pub async fn decisions(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if !app.within_rate(&req) {
        return Err(ApiError::rate_limited());
    }
    let bot = crate::traffic::is_bot(req.headers());
    let (parts, body) = req.into_parts();
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms);
    let bytes = read_body(body, &parts.headers, app.config.max_body_bytes, deadline).await?;
    let started = Instant::now();
    let invalid = |e: ApiError| {
        app.decider.count_invalid();
        e
    };
    let request: KevelRequest = codec.decode(&bytes).map_err(invalid)?;
    let caller = Caller {
        admin: false,
        gpc: gpc(&parts.headers),
    };
    let (plan, mut problems) = plan(request, app.config.max_slots, || {
        format!("kevel-{:032x}", rand::random::<u128>())
    });

    // Every placement is checked before any is decided: a bad one refuses the request
    // whole, with nothing logged, reserved or counted for the others.
    for p in &plan.placements {
        if let Err(DecisionError::Invalid(details)) = app.decider.check(&p.request, caller) {
            for d in details {
                let d = p.kevel_detail(d);
                if !problems.contains(&d) {
                    problems.push(d);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(invalid(ApiError::invalid(problems)));
    }
    // Placements configured with publishable keys need one, as on /v1/decisions.
    for p in &plan.placements {
        check_placement_key(app, &parts.headers, p.request.placement.as_deref())?;
    }

    // Kevel answers a request without a user key with a new one; aftercart does too,
    // unless the site said this person does not consent. The new key identifies nobody
    // yet: it becomes the identifier `customer_id` when the site sends it back.
    let user_key = plan.user_key.clone().or_else(|| {
        (!caller.gpc && !plan.gdpr_refused).then(|| format!("ue1-{:032x}", rand::random::<u128>()))
    });

    let mut decisions = Vec::with_capacity(plan.placements.len());
    if bot {
        let placements: Vec<_> = (plan.placements.iter())
            .map(|p| p.request.placement.clone())
            .collect();
        log_bot(app, &placements).await?;
        for p in plan.placements {
            decisions.push((p.div_name, Answer::NoFill(())));
        }
    } else {
        let mut outcomes = Vec::with_capacity(plan.placements.len());
        for p in plan.placements {
            let outcome = decide_and_log(app, p.request, caller).await?;
            outcomes.push((p.div_name, p.multi, outcome));
        }
        let views: Vec<_> = (outcomes.iter())
            .map(|(div, multi, o)| {
                let view = DecisionView {
                    decision: &o.decision,
                    explain: None,
                    test: false,
                    public_url: &app.config.public_url,
                    currency: &app.config.currency,
                };
                (div, *multi, view)
            })
            .collect();
        let answers = answers(app, &views).await?;
        for ((div, _, _), answer) in views.iter().zip(answers) {
            decisions.push(((*div).clone(), answer));
        }
        for (_, _, outcome) in &outcomes {
            observe(app, outcome, started);
        }
    }
    let body = KevelResponse {
        user: UserOut { key: user_key },
        decisions,
    };
    Ok(Codec::of_response(&parts.headers).encode(StatusCode::OK, &body))
}

/// Each decision in Kevel's shape. Entities seen for the first time are numbered
/// first (durably, off the async workers); after that, it is map lookups only.
async fn answers(
    app: &App,
    views: &[(&String, bool, DecisionView<'_>)],
) -> Result<Vec<Answer>, ApiError> {
    let build = || -> Option<Vec<Answer>> {
        (views.iter())
            .map(|(_, multi, view)| answer(view, *multi, &app.kevel_ids))
            .collect()
    };
    if let Some(answers) = build() {
        return Ok(answers);
    }
    let wanted: Vec<_> = views.iter().flat_map(|(_, _, v)| entities(v)).collect();
    let ids = app.kevel_ids.clone();
    tokio::task::spawn_blocking(move || ids.assign(&wanted))
        .await
        .map_err(|_| ApiError::unavailable("the Kevel id registry task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot write the Kevel id registry");
            ApiError::unavailable("the Kevel id registry could not be written; retry")
        })?;
    build().ok_or_else(|| ApiError::unavailable("a Kevel id is missing; retry"))
}

/// The caller of a UserDB endpoint: the admin key in `X-Adzerk-ApiKey` (or as
/// `Authorization: Bearer`).
fn udb_admin(app: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(given) = headers.get("x-adzerk-apikey") else {
        return require(app, headers, &[]);
    };
    let who = (given.to_str().ok())
        .and_then(|k| app.access.principal_of(k.trim()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required (X-Adzerk-ApiKey: KEY)",
            )
        })?;
    if !who.is_admin() {
        return Err(ApiError::forbidden(Detail::new(
            "",
            format!(
                "a key with the role {:?} may not do this (allowed: admin)",
                who.role.as_str()
            ),
        )));
    }
    Ok(who)
}

/// Checks the `{networkId}` path segment.
fn network(segment: &str) -> Result<(), ApiError> {
    let ok = !segment.is_empty()
        && segment.len() <= 10
        && segment.bytes().all(|b| b.is_ascii_digit())
        && segment.parse::<u64>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(vec![Detail::new(
            "networkId",
            "must be a positive integer",
        )]))
    }
}

/// The longest user key accepted (aftercart's limit on identifiers).
const MAX_USER_KEY: usize = 256;

fn check_user_key(key: &str, path: &str) -> Result<(), ApiError> {
    let key = key.trim();
    let problem = if key.is_empty() {
        "must not be empty".to_string()
    } else if key.len() > MAX_USER_KEY {
        format!("must be at most {MAX_USER_KEY} characters")
    } else {
        return Ok(());
    };
    Err(ApiError::invalid(vec![Detail::new(path, problem)]))
}

/// The `userKey` query parameter, required.
fn user_key(query: &str) -> Result<String, ApiError> {
    let found = (query.split('&'))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "userKey")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        });
    let Some(key) = found else {
        return Err(ApiError::invalid(vec![Detail::new(
            "userKey",
            "is required",
        )]));
    };
    check_user_key(&key, "userKey")?;
    Ok(key.trim().to_string())
}

/// The identifier a user key is: `customer_id`.
fn customer_id(app: &App, key: &str) -> Result<IdHash, ApiError> {
    (app.hasher().hash_given(IdKind::CustomerId, key))
        .map_err(|e| ApiError::invalid(vec![Detail::new("userKey", e)]))
}

/// `GET /udb/{networkId}/read?userKey=K`: what aftercart holds about the person, with
/// their key; 404 when it holds nothing.
pub async fn udb_read(
    app: &App,
    req: Request<Incoming>,
    net: &str,
) -> Result<Response<Body>, ApiError> {
    udb_admin(app, req.headers())?;
    network(net)?;
    let key = user_key(req.uri().query().unwrap_or(""))?;
    let id = customer_id(app, &key)?;
    let profile = profile_of(app, id).ok_or_else(ApiError::not_found)?;
    #[derive(Serialize)]
    struct Read<P> {
        key: String,
        #[serde(flatten)]
        profile: P,
    }
    let body = Read { key, profile };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &body))
}

/// `DELETE /udb/{networkId}?userKey=K`: aftercart's erasure for `customer_id` K.
pub async fn udb_forget(
    app: &App,
    req: Request<Incoming>,
    net: &str,
) -> Result<Response<Body>, ApiError> {
    udb_admin(app, req.headers())?;
    network(net)?;
    let key = user_key(req.uri().query().unwrap_or(""))?;
    let id = customer_id(app, &key)?;
    let erased = erase(app, &[id]).await?;
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &erased))
}

/// `POST /udb/{networkId}/consent` `{"userKey": K, "consent": {...}}`: records the
/// person's consent. `consent` is Kevel's `{"gdpr": bool}` (both purposes) or
/// aftercart's `{"personalization": bool, "measurement": bool}` (each overrides
/// `gdpr` for its purpose); it replaces what was recorded for K before.
pub async fn udb_consent(
    app: &App,
    req: Request<Incoming>,
    net: &str,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    udb_admin(app, &parts.headers)?;
    network(net)?;
    let value = read_value(app, &parts, body, app.config.max_body_bytes).await?;
    let mut p = Problems::default();
    let (key, consent) = (|| {
        let mut r = Reader::object(&value, "", &mut p)?;
        let key = r.required_string("userKey", &mut p);
        let consent = r.required("consent", &mut p);
        // Kevel's ConsentRequest has no other field; anything else is a mistake.
        r.finish(&mut p);
        let mut c = Reader::object(consent?, "consent", &mut p)?;
        let before = p.0.len();
        let gdpr = c.bool("gdpr", &mut p);
        let personalization = c.bool("personalization", &mut p);
        let measurement = c.bool("measurement", &mut p);
        c.finish(&mut p);
        let consent = Consent {
            personalization: personalization.or(gdpr),
            measurement: measurement.or(gdpr),
        };
        if consent.is_unsaid() && p.0.len() == before {
            p.push(
                "consent",
                "give gdpr, or personalization and/or measurement (true or false)",
            );
        }
        Some((key?.to_string(), consent))
    })()
    .unzip();
    if let Some(k) = &key
        && let Err(e) = check_user_key(k, "userKey")
    {
        p.0.extend(e.details);
    }
    let (Some(key), Some(consent), true) = (key, consent, p.is_empty()) else {
        return Err(ApiError::invalid(p.0));
    };
    let key = key.trim().to_string();
    let id = customer_id(app, &key)?;
    let now = app.clock.now_ms();
    let store = app.consent.clone();
    tokio::task::spawn_blocking(move || store.set(id, consent, now))
        .await
        .map_err(|_| ApiError::unavailable("the consent task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot record consent");
            ApiError::unavailable("the consent could not be recorded; retry")
        })?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Recorded {
        user_key: String,
        consent: Consent,
    }
    Ok(Codec::of_response(&parts.headers).encode(
        StatusCode::OK,
        &Recorded {
            user_key: key,
            consent,
        },
    ))
}

/// `GET /v1/compat/kevel/ids/{n}` (admin or measurement key): the entity a number in a
/// Kevel decision stands for.
pub async fn id(app: &App, req: Request<Incoming>, n: &str) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[Role::Measurement])?;
    let number = n
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(vec![Detail::new(
                "n",
                format!("must be an integer from 1 to {MAX}"),
            )])
        })?;
    let (entity, key) = app.kevel_ids.name(number).ok_or_else(ApiError::not_found)?;
    #[derive(Serialize)]
    struct Named<'a> {
        id: u32,
        kind: &'static str,
        /// The Kevel decision fields that carry this number.
        fields: &'static [&'static str],
        #[serde(skip_serializing_if = "Option::is_none")]
        advertiser_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        campaign_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        creative_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<u32>,
    }
    let mut body = Named {
        id: number,
        kind: entity.as_str(),
        fields: entity.fields(),
        advertiser_id: None,
        campaign_id: None,
        creative_id: None,
        priority: None,
    };
    match entity {
        Entity::Advertiser => body.advertiser_id = Some(&key),
        Entity::Campaign => body.campaign_id = Some(&key),
        Entity::Creative => {
            let (campaign, creative) = key.split_once('/').unwrap_or(("", &key));
            body.campaign_id = Some(campaign);
            body.creative_id = Some(creative);
        }
        Entity::Priority => body.priority = key.parse().ok(),
    }
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &body))
}
