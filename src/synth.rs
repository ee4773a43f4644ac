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
