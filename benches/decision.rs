//! Selection cost: how long `select` takes for one decision request, through the
//! targeting indexes and by a full scan of every loaded campaign, at 1k, 10k and 100k
//! synthetic campaigns (`aftercart::synth`).
//!
//! The synthetic sets keep the number of campaigns a request matches about the same at
//! every size (~50; the mean is printed once per size), so the curve shows how selection
//! scales with what is loaded, not with what matches.
//!
//! Targets: index median ≤ 10 µs at 100k; index ≥ 10× faster than the scan at 100k;
//! index at 100k ≤ 2× index at 1k.
//!
//! Run: `cargo bench --bench decision` (a few minutes on two cores); one size or
//! variant: `cargo bench --bench decision -- 'selection/index'`.

use aftercart::decision::select::{SelectionInput, select};
use aftercart::ids::DecisionId;
use aftercart::index::{Query, Snapshot};
use aftercart::synth;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Requests per size, cycled one per iteration.
const REQUESTS: usize = 4_096;
const SEED: u64 = 7;
/// 2026-11-18T15:00:00Z, a Wednesday inside every synthetic flight.
const NOW_MS: i64 = 1_795_014_000_000;

/// One prepared decision: the query, its id and slot count.
struct Prepared {
    query: Query,
    decision: DecisionId,
    slots: u8,
}

fn snapshot(n: usize) -> Snapshot {
    synth::snapshot(synth::campaigns(n, SEED))
}

fn requests(n: usize) -> Vec<Prepared> {
    synth::requests(REQUESTS, n, SEED)
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let valid = synth::validated(body, NOW_MS);
            Prepared {
                query: valid.query,
                decision: DecisionId(((NOW_MS as u128) << 80) | i as u128),
                slots: valid.slots,
            }
        })
        .collect()
}

fn mean_matching(snap: &Snapshot, reqs: &[Prepared]) -> f64 {
    let mut buf = Vec::new();
    let total: usize = reqs
        .iter()
        .map(|r| {
            snap.matching(&r.query, true, &mut buf);
            buf.len()
        })
        .sum();
    total as f64 / reqs.len() as f64
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("selection");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let snap = snapshot(n);
        let reqs = requests(n);
        eprintln!(
            "selection: {n} campaigns, {} requests, mean matching campaigns per request {:.1}",
            reqs.len(),
            mean_matching(&snap, &reqs)
        );
        for (name, full_scan) in [("index", false), ("scan", true)] {
            // The scan is linear in the set: fewer samples at the large sizes keep the
            // whole run to a few minutes.
            let (samples, secs) = match (full_scan, n) {
                (false, _) => (100, 3),
                (true, 100_000) => (10, 5),
                (true, _) => (20, 3),
            };
            group.sample_size(samples);
            group.measurement_time(Duration::from_secs(secs));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    let r = &reqs[i % reqs.len()];
                    i += 1;
                    let input = SelectionInput {
                        decision: r.decision,
                        slots: r.slots,
                        rules: None,
                        explain: false,
                        full_scan,
                        creative_ok: None,
                        gate: None,
                    };
                    black_box(select(&snap, black_box(&r.query), &input))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
