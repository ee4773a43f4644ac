//! What delivery controls cost a decision: `Decider::decide` (validation, selection,
//! tokens, records) on 100k synthetic campaigns, with and without them, in one group.
//!
//! - `plain`: campaigns without caps, budgets or holdouts; requests without
//!   personalisation consent, so nothing is linked or looked up per profile.
//! - `controls`: every campaign with a frequency cap, daily and total budgets with even
//!   pacing, and one in ten with a 10% holdout; requests carry a device id and a loyalty
//!   id of shoppers already known among 1M linked profiles, so each decision links,
//!   resolves a profile, checks caps, suppression, holdout and budget, reserves, and
//!   counts offers served.
//!
//! Target: `controls` within 1.5× of `plain`.
//!
//! Run: `cargo bench --bench delivery`.

use aftercart::campaign::{Budget, FrequencyCap, Pacing};
use aftercart::clock::ManualClock;
use aftercart::config::Config;
use aftercart::decision::{Caller, Decider, DecisionRequest, LiveState};
use aftercart::delivery::Delivery;
use aftercart::exposure::storage::Faults;
use aftercart::identity::graph::GraphConfig;
use aftercart::identity::{IdKind, IdentityHasher};
use aftercart::inventory::Inventory;
use aftercart::ledger::Ledger;
use aftercart::metrics::Metrics;
use aftercart::money::Micros;
use aftercart::synth;
use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Duration;

const CAMPAIGNS: usize = 100_000;
const KNOWN_PROFILES: usize = 1_000_000;
const REQUESTS: usize = 4_096;
const SEED: u64 = 7;
/// 2026-11-18T15:00:00Z, inside every synthetic flight.
const NOW_MS: i64 = 1_795_014_000_000;
const IDENTITY_KEY: [u8; 32] = [3; 32];

struct Setup {
    decider: Decider,
    requests: Vec<DecisionRequest>,
    _dir: tempfile::TempDir,
}

fn setup(controls: bool) -> Setup {
    let mut campaigns = synth::campaigns(CAMPAIGNS, SEED);
    if controls {
        for (i, c) in campaigns.iter_mut().enumerate() {
            c.frequency_caps = vec![FrequencyCap {
                max: 1_000,
                per_seconds: 86_400,
            }];
            c.budget = Budget {
                daily: Some(Micros(1_000_000_000_000)),
                total: Some(Micros(100_000_000_000_000)),
            };
            c.pacing = Pacing::Even;
            if i % 10 == 0 {
                c.holdout_percent = 10.0;
            }
        }
    }
    let snapshot = Arc::new(ArcSwap::from_pointee(synth::snapshot(campaigns)));
    let dir = tempfile::tempdir().unwrap();
    let inventory = Arc::new(
        Inventory::open(&dir.path().join("inventory"), Arc::new(Faults::default())).unwrap(),
    );
    let delivery = Arc::new(Delivery::new(600_000, GraphConfig::default()));
    let hasher = IdentityHasher::new(&IDENTITY_KEY);
    if controls {
        // Shoppers 0..1M with a device and a loyalty card each, already linked.
        for i in 0..KNOWN_PROFILES {
            let ids = [
                hasher.hash(IdKind::DeviceId, &format!("dev-{i}")),
                hasher.hash(IdKind::LoyaltyId, &format!("L-{i}")),
            ];
            delivery.link(&ids);
        }
    }
    let ledger = Arc::new(Ledger::new(hasher, inventory.clone(), delivery.clone()));
    let decider = Decider::new(
        snapshot,
        Arc::new(Config::default()),
        &[1; 32],
        &IDENTITY_KEY,
        ManualClock::new(NOW_MS),
        Metrics::new(),
        LiveState {
            inventory,
            delivery,
            ledger,
            consent: Arc::new(aftercart::consent::ConsentStore::in_memory()),
        },
    );
    let requests = synth::requests(REQUESTS, CAMPAIGNS, SEED)
        .into_iter()
        .map(|mut body| {
            if !controls {
                body["consent"] = serde_json::json!({"personalization": false});
            }
            serde_json::from_value(body).unwrap()
        })
        .collect();
    Setup {
        decider,
        requests,
        _dir: dir,
    }
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(6));
    for (name, controls) in [("plain", false), ("controls", true)] {
        let s = setup(controls);
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::new(name, CAMPAIGNS), &controls, |b, _| {
            b.iter(|| {
                n += 1;
                let mut req = s.requests[n as usize % REQUESTS].clone();
                // A fresh transaction each time: a repeated one would be a replay.
                if let Some(t) = req.transaction.as_mut() {
                    t.id = Some(format!("B-{n}"));
                }
                s.decider.decide(req, Caller::default()).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
