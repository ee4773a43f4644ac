//! Synthetic campaign sets and decision requests, for benches and load tests.
//!
//! The sets are built so that the number of campaigns a request matches stays about
//! the same at every size (around 50): campaigns target basket categories drawn from a
//! vocabulary that grows with the set, so a bench at 1k, 10k and 100k campaigns
//! measures how selection scales with what is loaded, not with what matches.

use crate::campaign::*;
use crate::money::Micros;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Campaigns posted per basket category; with ~3 categories per basket and most
/// campaigns passing the other predicates, a request matches about 50.
pub const CAMPAIGNS_PER_CATEGORY: usize = 24;
/// Campaigns with no basket targeting at all (run of network), at every size.
pub const RUN_OF_NETWORK: usize = 8;

const DEPARTMENTS: [&str; 12] = [
    "grocery",
    "household",
    "beauty",
    "electronics",
    "home",
    "apparel",
    "toys",
    "pets",
    "garden",
    "sports",
    "books",
    "health",
];
const TIMEZONES: [&str; 4] = [
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
];
const TIERS: [&str; 3] = ["silver", "gold", "platinum"];
const REGIONS: [&str; 6] = ["CA", "NY", "TX", "FL", "WA", "IL"];

fn category_count(campaigns: usize) -> usize {
    (campaigns / CAMPAIGNS_PER_CATEGORY).max(1)
}

/// The `i`th basket category of the vocabulary: `department/aisle-N`.
pub fn category(i: usize) -> String {
    format!(
        "{}/aisle-{}",
        DEPARTMENTS[i % DEPARTMENTS.len()],
        i / DEPARTMENTS.len()
    )
}

/// `n` campaigns, deterministic for a seed, all active from 2026 to 2031.
pub fn campaigns(n: usize, seed: u64) -> Vec<Campaign> {
    let mut rng = StdRng::seed_from_u64(seed);
    let cats = category_count(n);
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
    let end: DateTime<Utc> = DateTime::from_timestamp(1_924_991_999, 0).unwrap_or_default(); // 2030-12-31
    (0..n)
        .map(|i| {
            let advertiser = format!("adv-{}", i / 5);
            let cpc = rng.random_bool(0.3);
            let bid = if cpc {
                Bid {
                    model: BidModel::Cpc,
                    amount: Micros(rng.random_range(300_000..3_000_000)),
                }
            } else {
                Bid {
                    model: BidModel::Cpm,
                    amount: Micros(rng.random_range(8_000_000..40_000_000)),
                }
            };
            let mut t = Targeting::default();
            if i >= RUN_OF_NETWORK {
                t.basket.any_categories = vec![category(i % cats)];
            }
            if rng.random_bool(0.25) {
                t.channels = vec![
                    *[Channel::Online, Channel::App, Channel::InStore]
                        .choose(&mut rng)
                        .unwrap_or(&Channel::Online),
                ];
            }
            if rng.random_bool(0.8) {
                t.countries = vec!["US".into()];
            }
            if rng.random_bool(0.1) {
                t.regions = vec![REGIONS.choose(&mut rng).unwrap_or(&"CA").to_string()];
            }
            if rng.random_bool(0.2) {
                t.order_value.min = Some(Micros(rng.random_range(10..80) * 1_000_000));
            }
            if rng.random_bool(0.05) {
                t.loyalty_tiers = vec![TIERS.choose(&mut rng).unwrap_or(&"gold").to_string()];
            }
            if rng.random_bool(0.05) {
                t.dayparts = vec![Daypart {
                    days: vec![
                        Weekday::Mon,
                        Weekday::Tue,
                        Weekday::Wed,
                        Weekday::Thu,
                        Weekday::Fri,
                    ],
                    from_hour: 6,
                    to_hour: 22,
                }];
            }
            if rng.random_bool(0.05) {
                t.basket.none_categories = vec![category((i + 1) % cats)];
            }
            let product = rng.random_bool(0.3);
            let creative = Creative {
                id: format!("cr-{i}"),
                kind: if product {
                    CreativeKind::Product
                } else {
                    CreativeKind::Offer
                },
                headline: format!("Offer {i} from {advertiser}"),
                body: Some("A thank-you offer for your order.".into()),
                image_url: Some(format!("https://cdn.{advertiser}.example/{i}.png")),
                cta: Some("Claim".into()),
                click_url: format!("https://{advertiser}.example/c/{i}"),
                product: product.then(|| Product {
                    sku: format!("SKU-S{i}"),
                    name: format!("Product {i}"),
                    price: Micros(rng.random_range(1..100) * 1_000_000 - 10_000),
                }),
            };
            Campaign {
                id: format!("synth-{i}"),
                advertiser,
                name: format!("Synthetic campaign {i}"),
                status: Status::Active,
                start,
                end,
                timezone: Some(TIMEZONES[i % TIMEZONES.len()].to_string()),
                budget: Budget {
                    daily: Some(Micros(1_000_000_000)),
                    total: Some(Micros(100_000_000_000)),
                },
                pacing: Pacing::Even,
                bid,
                priority: DEFAULT_PRIORITY,
                frequency_caps: vec![FrequencyCap {
                    max: 3,
                    per_seconds: 86_400,
                }],
                competitive_category: Some(format!("cc-{}", i % 200)),
                holdout_percent: 0.0,
                targeting: t,
                conversion: ConversionRule {
                    categories: vec![category(i % cats)],
                    ..ConversionRule::default()
                },
                creatives: vec![creative],
            }
        })
        .collect()
}

/// `n` varied decision request bodies for a set of `campaigns` campaigns: every
/// channel, baskets of one to five items, identifiers from a pool of shoppers.
pub fn requests(n: usize, campaigns: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let cats = category_count(campaigns);
    (0..n)
        .map(|i| {
            let channel = ["online", "online", "app", "in_store"][i % 4];
            let placement = if channel == "in_store" { "pos_receipt" } else { "order_confirmation" };
            let items: Vec<Value> = (0..rng.random_range(1..=5))
                .map(|_| {
                    let c = rng.random_range(0..cats);
                    json!({
                        "sku": format!("SKU-{}", rng.random_range(0..50_000)),
                        "category": category(c),
                        "brand": format!("Brand{}", rng.random_range(0..500)),
                        "price": rng.random_range(1..200) as f64 - 0.01,
                        "quantity": rng.random_range(1..3),
                    })
                })
                .collect();
            let total: f64 = items.iter().filter_map(|it| it["price"].as_f64()).sum();
            let shopper = rng.random_range(0..100_000);
            let mut body = json!({
                "placement": placement,
                "channel": channel,
                "slots": rng.random_range(1..=3),
                "transaction": {"id": format!("T-{seed}-{i}"), "total": (total * 100.0).round() / 100.0, "currency": "USD", "items": items},
                "customer": {"ids": {"device_id": format!("dev-{shopper}"), "loyalty_id": format!("L-{shopper}")}, "new_customer": rng.random_bool(0.2)},
                "context": {"country": "US", "region": REGIONS[shopper % REGIONS.len()]},
            });
            if rng.random_bool(0.3) {
                body["customer"]["loyalty_tier"] = json!(TIERS[shopper % TIERS.len()]);
            }
            if channel == "in_store" {
                body["context"]["store_id"] = json!(format!("store-{:03}", shopper % 200));
            }
            body
        })
        .collect()
}

/// Picks zero to three values of `vocab` (each list is present with probability `p`;
/// repeats are possible, as in a hand-written document).
fn some(rng: &mut StdRng, p: f64, vocab: &[&str]) -> Vec<String> {
    if !rng.random_bool(p) {
        return Vec::new();
    }
    (0..rng.random_range(1..=3))
        .map(|_| vocab.choose(rng).unwrap_or(&"x").to_string())
        .collect()
}

const MIX_PLACEMENTS: [&str; 3] = ["order_confirmation", "pos_receipt", "receipt_email"];
const MIX_COUNTRIES: [&str; 3] = ["US", "CA", "GB"];
const MIX_STORES: [&str; 3] = ["store-001", "store-002", "store-003"];
const MIX_CATEGORIES: [&str; 5] = ["grocery", "grocery/snacks", "pets", "pets/dog", "home"];
const MIX_SKUS: [&str; 3] = ["SKU-1", "SKU-2", "SKU-3"];
const MIX_BRANDS: [&str; 3] = ["acme", "sonix", "zest"];
/// Receive times of [`mixed_queries`]: 2026-11-18T00:00:00Z (a Wednesday) and on.
pub const MIX_WEEK_START_MS: i64 = 1_794_960_000_000;

/// `n` small campaigns exercising every targeting predicate in combination, over small
/// vocabularies so that requests from [`mixed_queries`] match some and fail others at
/// every stage: for tests that compare two implementations of matching or selection.
pub fn mixed_campaigns(n: usize, seed: u64) -> Vec<Campaign> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5ca1ab1e);
    let mut set = campaigns(n, seed);
    for (i, c) in set.iter_mut().enumerate() {
        let r = &mut rng;
        let t = &mut c.targeting;
        *t = Targeting::default();
        t.channels = [Channel::Online, Channel::InStore, Channel::App]
            .into_iter()
            .filter(|_| r.random_bool(0.3))
            .collect();
        t.placements = some(r, 0.2, &MIX_PLACEMENTS);
        t.countries = some(r, 0.4, &MIX_COUNTRIES);
        t.regions = some(r, 0.15, &REGIONS);
        t.store_ids = some(r, 0.1, &MIX_STORES);
        t.basket.any_categories = some(r, 0.4, &MIX_CATEGORIES);
        t.basket.none_categories = some(r, 0.15, &MIX_CATEGORIES);
        t.basket.any_skus = some(r, 0.1, &MIX_SKUS);
        t.basket.any_brands = some(r, 0.15, &MIX_BRANDS);
        if r.random_bool(0.2) {
            t.order_value.min = Some(Micros(r.random_range(0..100) * 1_000_000));
        }
        if r.random_bool(0.1) {
            t.order_value.max = Some(Micros(r.random_range(50..200) * 1_000_000));
        }
        t.loyalty_tiers = some(r, 0.1, &TIERS);
        t.customer = *[
            CustomerFilter::Any,
            CustomerFilter::New,
            CustomerFilter::Returning,
        ]
        .choose(r)
        .unwrap_or(&CustomerFilter::Any);
        if r.random_bool(0.15) {
            let from_hour = r.random_range(0..23);
            t.dayparts = vec![Daypart {
                days: vec![Weekday::Wed, Weekday::Thu],
                from_hour,
                to_hour: r.random_range(from_hour + 1..=24),
            }];
        }
        t.require_identity = r.random_bool(0.1);
        if r.random_bool(0.05) {
            c.status = Status::Paused;
        }
        if r.random_bool(0.05) {
            c.end = DateTime::from_timestamp_millis(MIX_WEEK_START_MS + 36 * 3_600_000)
                .unwrap_or_default();
        }
        c.priority = r.random_range(1..=3);
        c.advertiser = format!("Adv-{}", i % 7);
        c.competitive_category = r.random_bool(0.5).then(|| format!("cc-{}", i % 5));
    }
    set
}

/// `n` queries for [`mixed_campaigns`]: values from the same vocabularies, some
/// unknown to every campaign, fields missing, receive times over two days.
pub fn mixed_queries(n: usize, seed: u64) -> Vec<crate::index::Query> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e3779b9);
    let r = &mut rng;
    let maybe = |r: &mut StdRng, vocab: &[&str]| {
        (r.random_bool(0.8)).then(|| {
            if r.random_bool(0.1) {
                "unknown".to_string()
            } else {
                vocab.choose(r).unwrap_or(&"x").to_string()
            }
        })
    };
    (0..n)
        .map(|_| {
            let mut q = crate::index::Query {
                channel: [
                    None,
                    Some(Channel::Online),
                    Some(Channel::InStore),
                    Some(Channel::App),
                ][r.random_range(0..4)],
                placement: maybe(r, &MIX_PLACEMENTS).unwrap_or_default(),
                country: maybe(r, &MIX_COUNTRIES),
                region: maybe(r, &REGIONS),
                store_id: maybe(r, &MIX_STORES),
                order_total: r
                    .random_bool(0.8)
                    .then(|| Micros(r.random_range(0..250) * 1_000_000)),
                loyalty_tier: maybe(r, &TIERS),
                new_customer: [None, Some(true), Some(false)][r.random_range(0..3)],
                identified: r.random_bool(0.7),
                now_ms: MIX_WEEK_START_MS + r.random_range(0..48 * 3_600_000),
                ..Default::default()
            };
            for _ in 0..r.random_range(0..4) {
                q.add_category(MIX_CATEGORIES.choose(r).unwrap_or(&"home"));
                q.add_sku(MIX_SKUS.choose(r).unwrap_or(&"SKU-1"));
                q.add_brand(MIX_BRANDS.choose(r).unwrap_or(&"acme"));
            }
            if r.random_bool(0.1) {
                q.add_category("unknown/aisle");
            }
            q
        })
        .collect()
}

/// Compiles campaigns (in UTC unless they name a zone), as the server does.
pub fn compiled(campaigns: Vec<Campaign>) -> Vec<std::sync::Arc<crate::index::CompiledCampaign>> {
    use std::sync::Arc;
    campaigns
        .into_iter()
        .map(|c| {
            Arc::new(crate::index::CompiledCampaign::compile(
                Arc::new(c),
                chrono_tz::UTC,
                None,
            ))
        })
        .collect()
}

/// Compiles and indexes campaigns (in UTC unless they name a zone), as the server does.
pub fn snapshot(campaigns: Vec<Campaign>) -> crate::index::Snapshot {
    crate::index::Snapshot::build(compiled(campaigns))
}

/// Validates a synthetic request body as the server would (default limits, full
/// consent, a fixed identity key), received at `now_ms`. Panics on an invalid body:
/// the generator only makes valid ones.
pub fn validated(body: Value, now_ms: i64) -> crate::decision::ValidRequest {
    use crate::decision::{ConsentDefaults, DecisionRequest, Limits};
    let hasher = crate::identity::IdentityHasher::new(&[0; 32]);
    let limits = Limits {
        max_slots: 10,
        max_items: 100,
    };
    let consent = ConsentDefaults {
        personalization: true,
        measurement: true,
        gpc: false,
    };
    let req: DecisionRequest = serde_json::from_value(body)
        .unwrap_or_else(|e| panic!("synthetic request does not parse: {e}"));
    req.validate(limits, "USD", consent, &hasher, now_ms)
        .unwrap_or_else(|p| panic!("synthetic request is invalid: {:?}", p.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_campaigns_are_valid_documents() {
        for c in campaigns(50, 1) {
            let v = serde_json::to_value(&c).unwrap();
            let back = parse_campaign(&v, "", ValidationRules::default())
                .unwrap_or_else(|p| panic!("{:?}", p.0));
            assert_eq!(back, c);
        }
    }
}
