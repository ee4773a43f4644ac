//! The identity graph: what a link and a lookup cost, and what an identifier costs in
//! memory.
//!
//! - `identity_memory` (printed once, not timed by criterion): a graph of 10M
//!   identifiers (customers of one to four identifiers, linked in two requests each),
//!   heap bytes counted by a counting global allocator around the system allocator,
//!   beside the growth of the resident set; then checkpoint size, save and load times,
//!   and the longest wait of a link of new identifiers made during the save.
//! - `identity_lookup/{hit,miss}`: `profile_of` on a graph of 1M identifiers, in an
//!   order that defeats the cache; `hit_2_threads` the same on two threads at once
//!   (per lookup; near half of `hit` means no lock serialises them, on an idle machine);
//!   `dashmap_hit`, for scale, a `DashMap<u128, u128>` from identifier to profile, as
//!   simple a sharded map as there is (no members, no bound, no erasure).
//! - `identity_link/known`: a returning customer's three identifiers, already one
//!   profile: the common case on the decision path.
//! - `identity_link/new`: two identifiers never seen: a new profile; `new_2_threads`
//!   the same on two threads at once (per link: changes take no global lock either).
//! - `identity_link/merge`: two single-identifier profiles joined (set up untimed).
//!
//! Target: ≤ 64 bytes per identifier at 10M. `cargo bench --bench identity`; pass
//! `identity_link` or `identity_lookup` to skip the memory figure.

use aftercart::identity::IdHash;
use aftercart::identity::IdKind;
use aftercart::identity::graph::{GraphConfig, IdentityGraph};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, black_box};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Counts live heap bytes as requested (allocator overhead not included; the resident
/// set figure printed beside it includes it).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is
// only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const KINDS: [IdKind; 6] = IdKind::ALL;

/// The `n`th identifier: a well-spread 128-bit hash, as the keyed HMAC gives.
fn id(n: u64) -> IdHash {
    IdHash {
        kind: KINDS[(n % 6) as usize],
        hash: xxh3_128_with_seed(&n.to_le_bytes(), 0x1d),
    }
}

/// Links identifiers `0..count` as customers of one to four identifiers (2.5 on
/// average), each seen in two requests: the first with two of them, the second with
/// all. `customer` hears of each customer's first identifier and count. Also returns
/// the slowest customer's two links: a hash table doubling, or the scheduler.
fn build(count: u64, mut customer: impl FnMut(u64, u64)) -> (IdentityGraph, Duration) {
    let g = IdentityGraph::new(GraphConfig::default());
    let mut ids = Vec::with_capacity(4);
    let (mut n, mut c, mut slowest) = (0, 0, Duration::ZERO);
    while n < count {
        let k = (1 + c % 4).min(count - n);
        ids.clear();
        ids.extend((n..n + k).map(id));
        let started = Instant::now();
        g.link(&ids[..ids.len().min(2)]);
        g.link(&ids);
        slowest = slowest.max(started.elapsed());
        customer(n, k);
        n += k;
        c += 1;
    }
    (g, slowest)
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory_report(count: u64) {
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), resident_bytes());
    let started = Instant::now();
    let (g, slowest) = build(count, |_, _| {});
    let built = started.elapsed();
    let heap = LIVE.load(Ordering::Relaxed) - heap0;
    let stats = g.stats();
    let rss = resident_bytes()
        .zip(rss0)
        .map_or(String::from("unknown"), |(a, b)| {
            format!("{:.1}", (a - b) as f64 / count as f64)
        });
    eprintln!(
        "identity_memory: {} identifiers in {} profiles, built in {:.1} s ({:.0} ns per identifier, one thread; slowest customer {:.1} ms)",
        stats.identifiers,
        stats.profiles,
        built.as_secs_f64(),
        built.as_nanos() as f64 / count as f64,
        slowest.as_secs_f64() * 1e3
    );
    eprintln!(
        "identity_memory: heap {:.1} MB = {:.1} bytes per identifier (resident set grew {rss} bytes per identifier)",
        heap as f64 / 1e6,
        heap as f64 / count as f64
    );
    // A link of new identifiers waits while the save holds the graph; measure the
    // longest such wait from a second thread linking new customers throughout.
    let saving = std::sync::atomic::AtomicBool::new(true);
    let (checkpoint, saved, longest_wait, links) = std::thread::scope(|s| {
        let linker = s.spawn(|| {
            let (mut longest, mut links, mut n) = (Duration::ZERO, 0u64, count + 1_000);
            while saving.load(Ordering::Relaxed) {
                let started = Instant::now();
                g.link(&[id(n), id(n + 1)]);
                longest = longest.max(started.elapsed());
                links += 1;
                n += 2;
            }
            (longest, links)
        });
        let started = Instant::now();
        let mut checkpoint = Vec::new();
        g.save(&mut checkpoint).unwrap();
        let saved = started.elapsed();
        saving.store(false, Ordering::Relaxed);
        let (longest, links) = linker.join().unwrap();
        (checkpoint, saved, longest, links)
    });
    eprintln!(
        "identity_memory: during the save {links} links of new customers went on; the longest waited {:.1} ms",
        longest_wait.as_secs_f64() * 1e3
    );
    drop(g);
    let started = Instant::now();
    let h = IdentityGraph::load(&checkpoint[..], GraphConfig::default()).unwrap();
    let loaded = started.elapsed();
    // One point in time: the links made before the copy, none after.
    let restored = h.stats().identifiers;
    assert!((count..=count + 2 * links).contains(&restored));
    eprintln!(
        "identity_memory: checkpoint {:.1} MB ({:.1} bytes per identifier), saved to memory in {} ms, loaded in {} ms",
        checkpoint.len() as f64 / 1e6,
        checkpoint.len() as f64 / count as f64,
        saved.as_millis(),
        loaded.as_millis()
    );
}

/// Visits `0..n` in a scattered order (a stride coprime to `n`), so that successive
/// lookups do not share cache lines.
fn scattered(i: u64, n: u64) -> u64 {
    (i.wrapping_mul(2_654_435_761)) % n
}

fn bench(c: &mut Criterion) {
    const SIZE: u64 = 1_000_000;
    let mut returning = Vec::new();
    let (g, _) = build(SIZE, |first, k| {
        if k >= 3 {
            returning.push(first);
        }
    });

    let mut group = c.benchmark_group("identity_lookup");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function(BenchmarkId::new("hit", SIZE), |b| {
        b.iter(|| {
            i += 1;
            black_box(g.profile_of(id(scattered(i, SIZE))))
        })
    });
    group.bench_function(BenchmarkId::new("miss", SIZE), |b| {
        b.iter(|| {
            i += 1;
            black_box(g.profile_of(id(SIZE + i)))
        })
    });
    let plain: dashmap::DashMap<u128, u128> = (0..SIZE)
        .map(|n| {
            let x = id(n);
            (x.hash, g.profile_of(x).unwrap().0)
        })
        .collect();
    group.bench_function(BenchmarkId::new("dashmap_hit", SIZE), |b| {
        b.iter(|| {
            i += 1;
            black_box(plain.get(&id(scattered(i, SIZE)).hash).map(|p| *p))
        })
    });
    drop(plain);
    group.bench_function(BenchmarkId::new("hit_2_threads", SIZE), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let g = &g;
                    s.spawn(move || {
                        for i in 0..iters {
                            black_box(g.profile_of(id(scattered(i * 2 + t, SIZE))));
                        }
                    });
                }
            });
            started.elapsed() / 2
        })
    });
    group.finish();

    let mut group = c.benchmark_group("identity_link");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("known", SIZE), |b| {
        b.iter(|| {
            i += 1;
            let n = returning[scattered(i, returning.len() as u64) as usize];
            black_box(g.link(&[id(n), id(n + 1), id(n + 2)]))
        })
    });
    let mut fresh = SIZE * 2;
    group.bench_function(BenchmarkId::new("new", SIZE), |b| {
        b.iter(|| {
            fresh += 2;
            black_box(g.link(&[id(fresh), id(fresh + 1)]))
        })
    });
    group.bench_function(BenchmarkId::new("new_2_threads", SIZE), |b| {
        b.iter_custom(|iters| {
            let first = fresh;
            fresh += 4 * iters;
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let g = &g;
                    s.spawn(move || {
                        for i in 0..iters {
                            let n = first + 4 * i + 2 * t;
                            black_box(g.link(&[id(n), id(n + 1)]));
                        }
                    });
                }
            });
            started.elapsed() / 2
        })
    });
    group.bench_function(BenchmarkId::new("merge", SIZE), |b| {
        b.iter_batched(
            || {
                fresh += 2;
                let (x, y) = (id(fresh), id(fresh + 1));
                g.link(&[x]);
                g.link(&[y]);
                [x, y]
            },
            |pair| black_box(g.link(&pair)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !listing
        && (filters.is_empty()
            || filters
                .iter()
                .any(|f| "identity_memory".contains(f.as_str())))
    {
        memory_report(10_000_000);
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
