//! Publishing campaign changes (`aftercart::index::Publisher`), at 1k, 10k and 100k
//! synthetic campaigns (`aftercart::synth`):
//!
//! - group `publish`: one campaign replaced and live, incrementally (a delta rebuild)
//!   with an empty delta and with a delta just under the compaction threshold (the
//!   worst case), against a full `Snapshot::build` and store (the old way);
//! - group `selection_with_delta`: `select` at 100k with no delta, with 200 replaced
//!   campaigns, and with the delta just under the compaction threshold;
//! - then, outside criterion, `delta_cost`: the same comparison in interleaved
//!   batches, which drift on a noisy machine affects alike;
//! - and `latency`: decision latency percentiles at 100k on one thread while another
//!   replaces one campaign every 10 ms (with a compaction during the run), against the
//!   same without publishing, in alternating phases.
//!
//! Targets: a change live in ≤ 50 ms at 100k; p99 selection latency with publishing
//! ≤ 1.5× without; selection at 100k no slower with a delta.
//!
//! Run: `cargo bench --bench publish` (a few minutes on two cores); one part:
//! `-- publish/`, `-- selection_with_delta`, `-- delta_cost` or `-- latency`.

use aftercart::campaign::Campaign;
use aftercart::decision::select::{SelectionInput, select};
use aftercart::ids::DecisionId;
use aftercart::index::{
    COMPACTION_DIVISOR, CompiledCampaign, MIN_COMPACTION_THRESHOLD, Publisher, Query,
    SharedSnapshot, Snapshot,
};
use aftercart::synth;
use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The server's allocator: the publishing thread's allocations compete with the
/// deciding thread's as they would in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const LARGE: usize = 100_000;
const REQUESTS: usize = 4_096;
const SEED: u64 = 7;
/// 2026-11-18T15:00:00Z, a Wednesday inside every synthetic flight.
const NOW_MS: i64 = 1_795_014_000_000;

struct Prepared {
    query: Query,
    decision: DecisionId,
    slots: u8,
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

fn decide(snap: &Snapshot, r: &Prepared) {
    let input = SelectionInput {
        decision: r.decision,
        slots: r.slots,
        rules: None,
        explain: false,
        full_scan: false,
        creative_ok: None,
        gate: None,
    };
    black_box(select(snap, black_box(&r.query), &input));
}

/// A new version of `doc` as an upload would bring: same targeting, another bid.
fn version(doc: &Campaign, v: i64) -> Arc<CompiledCampaign> {
    let mut doc = doc.clone();
    doc.bid.amount.0 += v;
    synth::compiled(vec![doc]).pop().expect("one campaign")
}

fn shared(snap: Snapshot) -> SharedSnapshot {
    Arc::new(ArcSwap::from_pointee(snap))
}

/// `docs[..n]` as the base, then `docs[n..]` added in one publish: a delta of that size.
fn with_delta(docs: &[Campaign], n: usize) -> Publisher {
    let all = synth::compiled(docs.to_vec());
    let p = Publisher::new(shared(Snapshot::build(all[..n].to_vec())));
    p.publish(all[n..].to_vec(), Vec::new());
    p
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let threshold = MIN_COMPACTION_THRESHOLD.max(n / COMPACTION_DIVISOR);
        let docs = synth::campaigns(n + threshold - 1, SEED);
        let all = synth::compiled(docs[..n].to_vec());
        let base = Snapshot::build(all.clone());
        // Two versions of a base campaign from the middle of the set (with a basket
        // category, and a dead bit far into the set) and of a delta one, in turn.
        let (base_id, delta_id) = (n / 2 + 1, docs.len() - 1);
        let versions = [1, 2].map(|v| version(&docs[base_id], v));
        let delta_versions = [1, 2].map(|v| version(&docs[delta_id], v));

        group.sample_size(50);
        group.measurement_time(Duration::from_secs(3));
        let publisher = Publisher::new(shared(base));
        group.bench_with_input(BenchmarkId::new("incremental", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                publisher.publish(vec![versions[i % 2].clone()], Vec::new());
                i += 1;
            });
        });
        drop(publisher);

        let publisher = with_delta(&docs, n);
        let pending = publisher.shared().load().pending();
        assert!(pending < threshold, "the delta must not compact");
        eprintln!("publish: {n} campaigns, incremental_full_delta with {pending} pending");
        group.bench_with_input(BenchmarkId::new("incremental_full_delta", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                publisher.publish(vec![delta_versions[i % 2].clone()], Vec::new());
                i += 1;
            });
        });
        drop(publisher);

        if n >= LARGE {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(5));
        }
        let shared = shared(Snapshot::default());
        group.bench_with_input(BenchmarkId::new("rebuild", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let mut campaigns = all.clone();
                campaigns[base_id] = versions[i % 2].clone();
                shared.store(Arc::new(Snapshot::build(campaigns)));
                i += 1;
            });
        });
    }
    group.finish();
}

fn selection_with_delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("selection_with_delta");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let docs = synth::campaigns(LARGE, SEED);
    let base = Snapshot::build(synth::compiled(docs.clone()));
    let reqs = requests(LARGE);
    let most = base.compaction_threshold() / 2;
    let variants = [
        ("none", replaced(&base, &docs, 0)),
        ("200_replaced", replaced(&base, &docs, 200)),
        ("threshold_replaced", replaced(&base, &docs, most)),
    ];
    for (name, snap) in &variants {
        eprintln!("selection_with_delta: {name}, {} pending", snap.pending());
        group.bench_with_input(BenchmarkId::new(*name, LARGE), &LARGE, |b, _| {
            let mut i = 0;
            b.iter(|| {
                decide(snap, &reqs[i % reqs.len()]);
                i += 1;
            });
        });
    }
    group.finish();
}

/// Replaced base campaigns, spread over the set: each is dead in the base (its
/// postings still gathered, then dropped) and live in the delta.
fn replaced(base: &Snapshot, docs: &[Campaign], count: usize) -> Snapshot {
    let step = docs.len() / count.max(1);
    let upserts: Vec<_> = (0..count).map(|k| version(&docs[k * step], 1)).collect();
    base.with_changes(&upserts, &[])
}

/// The `selection_with_delta` comparison again (and its two halves: removed campaigns
/// only, added only), robust to drift on a noisy machine: the variants take turns, a
/// batch of every request each, and the medians of the per-decision batch means are
/// compared.
fn delta_cost() {
    const ROUNDS: usize = 40;
    let docs = synth::campaigns(LARGE, SEED);
    let base = Snapshot::build(synth::compiled(docs.clone()));
    let reqs = requests(LARGE);
    let most = base.compaction_threshold() / 2;
    // What each half of a replacement costs: a dead base campaign, a delta one.
    let removed: Vec<Arc<str>> = (0..200)
        .map(|k| docs[k * (LARGE / 200)].id.as_str().into())
        .collect();
    let added = synth::compiled(synth::campaigns(LARGE + 200, SEED)[LARGE..].to_vec());
    let variants = [
        ("none", replaced(&base, &docs, 0)),
        ("200_replaced", replaced(&base, &docs, 200)),
        ("threshold_replaced", replaced(&base, &docs, most)),
        ("200_removed", base.with_changes(&[], &removed)),
        ("200_added", base.with_changes(&added, &[])),
    ];
    let mut means = variants.each_ref().map(|_| Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        for ((_, snap), means) in variants.iter().zip(means.iter_mut()) {
            let start = Instant::now();
            for r in &reqs {
                decide(snap, r);
            }
            means.push(start.elapsed().as_nanos() as f64 / reqs.len() as f64 / 1_000.0);
        }
    }
    let medians = means.map(|mut m| {
        m.sort_by(f64::total_cmp);
        m[m.len() / 2]
    });
    for ((name, snap), median) in variants.iter().zip(medians) {
        eprintln!(
            "delta_cost: {name:<18} {:>5} pending  {median:.2} µs per decision  ({:.2}× none)",
            snap.pending(),
            median / medians[0]
        );
    }
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[u32], q: f64) -> u32 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn summary(name: &str, v: &mut [u32]) -> u32 {
    v.sort_unstable();
    let us = |ns: u32| ns as f64 / 1_000.0;
    eprintln!(
        "latency: {name:<16} {:>9} decisions  p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>9.2} µs",
        v.len(),
        us(quantile(v, 0.5)),
        us(quantile(v, 0.99)),
        us(quantile(v, 0.999)),
        us(v[v.len() - 1]),
    );
    quantile(v, 0.99)
}

/// Decision latency at 100k, one deciding thread, with and without another thread
/// publishing a replaced campaign every 10 ms, in alternating phases so that drift on
/// the machine affects both alike. The delta starts close to the compaction threshold
/// so that a background compaction runs during the publishing phases too.
fn latency() {
    const PHASE: Duration = Duration::from_secs(2);
    const ROUNDS: usize = 3;
    const EVERY: Duration = Duration::from_millis(10);
    let docs = synth::campaigns(LARGE, SEED);
    let base = Snapshot::build(synth::compiled(docs.clone()));
    let threshold = base.compaction_threshold();
    let publisher = Arc::new(Publisher::new(shared(base)));
    // Each replaced base campaign is two pending changes (its delta copy, its dead
    // original): start 300 publishes short of a compaction.
    let prefill = (threshold.saturating_sub(300)) / 2;
    // Enough for the run: a hundred publishes a second.
    let versions: Vec<_> = (docs.iter().take(prefill + 2_000))
        .map(|d| version(d, 1))
        .collect();
    publisher.publish(versions[..prefill].to_vec(), Vec::new());
    let reqs = requests(LARGE);

    // 0: not publishing, 1: publishing, 2: stop.
    let phase = Arc::new(AtomicUsize::new(0));
    let decider = {
        let (shared, phase) = (publisher.shared().clone(), phase.clone());
        thread::spawn(move || {
            let mut samples = [Vec::with_capacity(1 << 22), Vec::with_capacity(1 << 22)];
            let mut i = 0;
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == 2 {
                    return samples;
                }
                let r = &reqs[i % reqs.len()];
                i += 1;
                let start = Instant::now();
                let snap = shared.load();
                decide(&snap, r);
                drop(snap);
                let ns = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                samples[p].push(ns);
            }
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (publisher, phase, done) = (publisher.clone(), phase.clone(), done.clone());
        thread::spawn(move || {
            let mut took = Vec::new();
            let mut next = prefill;
            let mut tick = Instant::now();
            while !done.load(Ordering::Relaxed) {
                tick += EVERY;
                if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                if phase.load(Ordering::Relaxed) != 1 {
                    continue;
                }
                let c = versions[next % versions.len()].clone();
                next += 1;
                let start = Instant::now();
                publisher.publish(vec![c], Vec::new());
                took.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            took
        })
    };
    for _ in 0..ROUNDS {
        for p in [0, 1] {
            phase.store(p, Ordering::Relaxed);
            thread::sleep(PHASE);
        }
    }
    phase.store(2, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let [mut quiet, mut busy] = decider.join().expect("decider");
    let mut took = writer.join().expect("writer");
    publisher.wait_for_compaction();

    eprintln!(
        "latency: {LARGE} campaigns, {ROUNDS} rounds of {PHASE:?} per mode, a change every {EVERY:?}"
    );
    let without = summary("no publishing", &mut quiet);
    let with = summary("publishing", &mut busy);
    eprintln!(
        "latency: p99 with / without publishing = {:.2} (target ≤ 1.5)",
        with as f64 / without as f64
    );
    took.sort_unstable();
    let ms = |us: u32| us as f64 / 1_000.0;
    eprintln!(
        "latency: {} publishes, each live after p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target ≤ 50 ms); compactions {:?}",
        took.len(),
        ms(quantile(&took, 0.5)),
        ms(quantile(&took, 0.99)),
        ms(took[took.len() - 1]),
        publisher.compaction_stats(),
    );
}

/// Criterion's flags that take a value, to tell a filter from a flag's value.
const VALUE_FLAGS: [&str; 16] = [
    "--measurement-time",
    "--warm-up-time",
    "--sample-size",
    "--save-baseline",
    "--baseline",
    "--load-baseline",
    "--color",
    "--output-format",
    "--profile-time",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--nresamples",
    "--plotting-backend",
    "--format",
    "--baseline-lenient",
];

/// The parts of this bench, as a filter names them.
const PARTS: [&str; 4] = ["publish", "selection_with_delta", "delta_cost", "latency"];

/// The filter given on the command line, if any.
fn filter(args: &[String]) -> Option<&str> {
    let mut filter = None;
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if VALUE_FLAGS.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
        }
    }
    filter
}

/// Whether to prepare `part` (a 100k set takes a while): unless the filter names
/// another part. Within a part, criterion applies the filter.
fn wanted(filter: Option<&str>, part: &str) -> bool {
    filter.is_none_or(|f| !PARTS.iter().any(|&p| p != part && f.starts_with(p)))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = filter(&args);
    let mut c = Criterion::default().configure_from_args();
    if wanted(filter, "publish") {
        publish(&mut c);
    }
    if wanted(filter, "selection_with_delta") {
        selection_with_delta(&mut c);
    }
    c.final_summary();
    // Not a criterion benchmark: only under `cargo bench` (not `cargo test`'s quick
    // pass over benches), with no filter or `latency`.
    let benching = args.iter().any(|a| a == "--bench");
    if benching && filter.is_none_or(|f| f.starts_with("delta_cost")) {
        delta_cost();
    }
    if benching && filter.is_none_or(|f| f.starts_with("latency")) {
        latency();
    }
}
