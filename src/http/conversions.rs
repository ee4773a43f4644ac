//! `POST /v1/conversions`: purchases and refunds, acknowledged only once durable.

use super::codec::{Body, Codec, read_body};
use super::error::ApiError;
use crate::app::App;
use crate::conversion::{self, Rules};
use crate::delivery::profiles::item_keys;
use crate::exposure::Kind;
use crate::exposure::record::{ConversionType, H128};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    duplicates: usize,
}

pub async fn post(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    super::auth::require(app, &parts.headers, &[crate::access::Role::Ingest])?;
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms.max(30_000));
    let bytes = read_body(
        body,
        &parts.headers,
        app.config.max_batch_body_bytes,
        deadline,
    )
    .await?;
    let value: serde_json::Value = codec.decode(&bytes)?;
    let now = app.clock.now_ms();
    let rules = Rules {
        currency: &app.config.currency,
        now_ms: now,
        horizon_ms: app.config.dedup_horizon_days as i64 * 86_400_000,
        default_personalization: app.config.default_consent.personalization,
        default_measurement: app.config.default_consent.measurement,
        hasher: app.hasher(),
    };
    let batch = conversion::parse_batch(&value, &rules).map_err(|p| {
        let mismatch =
            p.0.iter()
                .any(|d| d.message.starts_with(conversion::CURRENCY_MISMATCH));
        let e = ApiError::invalid(p.0);
        if mismatch {
            ApiError {
                code: "currency_mismatch",
                ..e
            }
        } else {
            e
        }
    })?;

    // Duplicates: already counted, or repeated within this batch.
    let mut fresh = Vec::with_capacity(batch.len());
    let mut keys = Vec::with_capacity(batch.len());
    let mut in_batch = HashSet::with_capacity(batch.len());
    let mut purchases = Vec::new();
    for c in &batch {
        let key = app
            .ledger
            .conversion_key(c.channel.as_str(), &c.order_id, c.kind);
        if app.ledger.has_conversion(key) || !in_batch.insert(key) {
            continue;
        }
        keys.push((key, c.occurred_ms));
        // A conversion dated before an erasure of one of its identifiers belongs to
        // the erased person: it is kept, without identifiers, and links nothing.
        let erased = {
            let erasures = app
                .delivery
                .erasures
                .read()
                .unwrap_or_else(|e| e.into_inner());
            (c.ids.iter()).any(|h| {
                erasures
                    .erased_at(h.hash)
                    .is_some_and(|t| c.occurred_ms < t)
            })
        };
        let mut c = if erased {
            conversion::Conversion {
                ids: Vec::new(),
                ..c.clone()
            }
        } else {
            c.clone()
        };
        // A withdrawal the person recorded (see crate::consent) holds for their
        // purchases too, whatever the order system sends.
        let recorded = app.consent.for_request(&c.ids, &app.delivery.graph);
        c.personalization &= recorded.personalization != Some(false);
        c.measurement &= recorded.measurement != Some(false);
        let c = &c;
        let mut record = c.record(now, &app.config.currency);
        if erased {
            // Readers redact it (its order id too); the server's replay still sees the
            // order id, so the deduplication key outlives the erasure.
            record.reason = Some(crate::erasure::ERASED.into());
        }
        // With personalisation consent the identifiers of one order are one customer,
        // and the purchase feeds suppression.
        let profile = (c.personalization && !c.ids.is_empty())
            .then(|| {
                if let (Some(fleet), true) = (app.delivery.replication.get(), c.ids.len() > 1) {
                    fleet.decided(&c.ids, &[], now);
                }
                app.delivery.link(&c.ids)
            })
            .flatten()
            .map(|l| {
                if l.refused {
                    app.metrics.identity_links_refused.inc();
                }
                l.profile.0
            });
        if c.measurement {
            record.profile = profile.map(H128);
        }
        if let (Some(p), ConversionType::Purchase) = (profile, c.kind) {
            purchases.push((p, c.clone()));
        }
        fresh.push(record);
    }
    let duplicates = batch.len() - fresh.len();
    if !fresh.is_empty() {
        app.log
            .append_durable(Kind::Conversion, &fresh)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("{e}; nothing was recorded, retry later"))
            })?;
        // Marked only once durable: a failed write leaves nothing that would turn the
        // client's retry into a "duplicate".
        for (key, occurred) in keys {
            app.ledger.first_conversion(key, occurred);
        }
        for (profile, c) in purchases {
            let items = (c.items.iter())
                .flat_map(|i| {
                    item_keys(i.sku.as_deref(), i.category.as_deref(), i.brand.as_deref())
                })
                .collect::<Vec<u64>>();
            if let Some(fleet) = app.delivery.replication.get() {
                // Suppressed on every node of a fleet, not only here.
                fleet.purchased(&c.ids, c.occurred_ms, &items);
            }
            app.delivery
                .profiles
                .purchased(profile, c.occurred_ms, items);
            app.delivery.profiles.saw(profile, c.occurred_ms, 0, 1);
        }
        app.metrics
            .events
            .with_label_values(&["conversion"])
            .inc_by(fresh.len() as u64);
    }
    Ok(Codec::of_response(&parts.headers).encode(
        StatusCode::ACCEPTED,
        &Accepted {
            accepted: fresh.len(),
            duplicates,
        },
    ))
}
