//! `aftercart report` over a generated log: records per second, and memory at 10M.
//!
//! The log is what a busy deployment writes: shoppers with one to three identifiers
//! (an e-mail hash always, a device id and a loyalty card often) who come back over 30
//! days through the web, the app and stores, each visit an order (its `conversion`
//! record, in-store ones posted up to an hour late), a decision for it (one to three
//! offers, or a no-fill; `control` records for held-out shoppers of the campaigns with a
//! holdout), impressions, a few clicks, in-unit purchases and refunds, with campaign
//! documents up front. Baskets lean to each shopper's favourite brands, and so do the
//! offers, so attribution has work to do. Profiles on the records come from a real
//! identity graph fed the same links, as on the server.
//!
//! - `report_10m` (printed once, not timed by criterion): a 10M-record log written to
//!   `TMPDIR`, then the report run in a child process, so that its peak resident set
//!   (`VmHWM`) is the report's alone: throughput, peak RSS, profiles, identifiers.
//! - `report/full/1000000`: the whole report (both passes) over 1M records.
//! - `report_read/{wire,serde}/1000000`: reading every record of the same log with the
//!   report's allocation-free reader against `Record::decode` (serde into an owned
//!   `Record`): why the report has its own reader.
//!
//! Target: ≥ 1M records/s in bounded memory. `cargo bench --bench report`; pass
//! `report/` to skip the 10M figure, or `report_10m` for it alone. With
//! `AFTERCART_REPORT_BENCH_WRITE=DIR:N` it only writes an N-record log into the data
//! folder DIR, to try `aftercart report --data DIR` on.

use aftercart::campaign::{BidModel, Channel};
use aftercart::exposure::Record;
use aftercart::exposure::record::{ConversionType, H128, Kind, LoggedId, LoggedItem};
use aftercart::exposure::storage::{Faults, LogReader, SegmentWriter, encode_frame};
use aftercart::identity::graph::IdentityGraph;
use aftercart::identity::{IdHash, IdKind};
use aftercart::measure::{self, Options, wire};
use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: i64 = 1_795_000_000_000;
const DAYS: i64 = 30;
const CAMPAIGNS: usize = 200;
const BRANDS: usize = 300;
const CATEGORIES: [&str; 8] = [
    "grocery/snacks",
    "grocery/dairy",
    "grocery/beverages",
    "household",
    "beauty",
    "electronics/audio",
    "home/kitchen",
    "pets",
];
const CHILD: &str = "AFTERCART_REPORT_BENCH_CHILD";
/// `DIR:N`: only write an N-record log into the data folder DIR (to try the CLI on).
const WRITE: &str = "AFTERCART_REPORT_BENCH_WRITE";

struct Shopper {
    email: u128,
    device: Option<u128>,
    loyalty: Option<u128>,
    favourites: [usize; 3],
}

/// An identifier's hash: uniform, as the server's keyed HMAC makes them.
fn keyed(kind: u64, i: u128) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(&i.to_le_bytes(), kind)
}

/// Writes a log of about `records` records into `data/log`; returns how many.
fn generate(data: &Path, records: u64, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut w, _) =
        SegmentWriter::open(&data.join("log"), 256 << 20, Arc::new(Faults::default())).unwrap();
    let mut out = Out {
        w: &mut w,
        frames: Vec::with_capacity(4 << 20),
        payload: Vec::new(),
        n: 0,
    };
    for c in 0..CAMPAIGNS {
        let mut r = Record::new(Kind::Campaign, T0 - 86_400_000);
        r.campaign = Some(format!("cmp-{c:04}"));
        r.advertiser = Some(format!("adv-{:03}", c % 50));
        r.action = Some("upsert".into());
        r.version = Some(1);
        let rule = if c % 5 == 0 {
            json!({"skus": [], "categories": [CATEGORIES[c % CATEGORIES.len()]], "brands": []})
        } else {
            json!({"skus": [], "categories": [], "brands": [format!("Brand-{c}")]})
        };
        r.document = Some(
            json!({"id": format!("cmp-{c:04}"), "name": format!("Campaign {c}"),
                   "advertiser": format!("adv-{:03}", c % 50),
                   "holdout_percent": if c % 10 == 0 { 10.0 } else { 0.0 },
                   "bid": {"model": "cpm", "amount": 20.0}, "conversion": rule})
            .to_string(),
        );
        out.push(&r);
    }
    // About eight records a visit: one shopper per ten records, each back ~1.25 times.
    let shoppers: Vec<Shopper> = (0..(records / 10).max(10) as u128)
        .map(|i| Shopper {
            email: keyed(1, i),
            device: rng.random_bool(0.7).then_some(keyed(2, i)),
            loyalty: rng.random_bool(0.6).then_some(keyed(3, i)),
            favourites: [
                rng.random_range(0..BRANDS),
                rng.random_range(0..BRANDS),
                rng.random_range(0..BRANDS),
            ],
        })
        .collect();
    let graph = IdentityGraph::default();
    let span = DAYS * 86_400_000;
    let mut visit = 0u64;
    let mut refunds: Vec<(i64, String, Channel, Vec<LoggedId>, LoggedItem)> = Vec::new();
    while out.n < records {
        let ts = T0 + (out.n as f64 / records as f64 * span as f64) as i64;
        visit += 1;
        let who = &shoppers[rng.random_range(0..shoppers.len())];
        let channel = match rng.random_range(0..20) {
            0..=8 => Channel::Online,
            9..=12 => Channel::App,
            _ => Channel::InStore,
        };
        let mut ids = vec![LoggedId {
            kind: IdKind::EmailSha256,
            hash: H128(who.email),
        }];
        let extra = match channel {
            Channel::InStore => [(IdKind::LoyaltyId, who.loyalty), (IdKind::DeviceId, None)],
            _ => [(IdKind::DeviceId, who.device), (IdKind::LoyaltyId, None)],
        };
        if channel == Channel::InStore && who.loyalty.is_some() {
            ids.clear(); // at the till the card is the identifier, not the e-mail
        }
        for (kind, hash) in extra {
            if let Some(h) = hash {
                ids.push(LoggedId {
                    kind,
                    hash: H128(h),
                });
            }
        }
        let personalised = rng.random_bool(0.85);
        let profile = personalised
            .then(|| {
                let hashes: Vec<IdHash> = (ids.iter())
                    .map(|l| IdHash {
                        kind: l.kind,
                        hash: l.hash.0,
                    })
                    .collect();
                graph.link(&hashes).map(|l| H128(l.profile.0))
            })
            .flatten();
        // The order this visit is about.
        let order = format!("ORD-{visit}");
        let items: Vec<LoggedItem> = (0..rng.random_range(1..=4))
            .map(|_| {
                let brand = if rng.random_bool(0.6) {
                    who.favourites[rng.random_range(0..3)]
                } else {
                    rng.random_range(0..BRANDS)
                };
                LoggedItem {
                    sku: Some(format!("SKU-{brand}-{}", rng.random_range(0..20))),
                    category: Some(CATEGORIES[brand % CATEGORIES.len()].into()),
                    brand: Some(format!("Brand-{brand}")),
                    price: rng.random_range(1_000_000..60_000_000),
                    quantity: rng.random_range(1..=3),
                }
            })
            .collect();
        let mut conv = Record::new(Kind::Conversion, ts);
        conv.order_id = Some(order.clone());
        conv.conversion_type = Some(ConversionType::Purchase);
        conv.channel = Some(channel);
        conv.occurred = Some(match channel {
            Channel::InStore => ts - rng.random_range(0..3_600_000),
            _ => ts - 1_000,
        });
        conv.store_id = (channel == Channel::InStore).then(|| format!("store-{:03}", visit % 400));
        conv.total = Some(items.iter().map(|i| i.price * i64::from(i.quantity)).sum());
        conv.currency = Some("USD".into());
        conv.ids = ids.clone();
        conv.profile = profile;
        conv.items = items.clone();
        out.push(&conv);
        if rng.random_bool(0.02) {
            refunds.push((
                ts + 86_400_000,
                order.clone(),
                channel,
                ids.clone(),
                items[0].clone(),
            ));
        }
        // The decision made for it, a few hundred milliseconds later.
        let dts = ts + 300;
        let decision_id: u128 = rng.random();
        let base = |kind: Kind| {
            let mut r = Record::new(kind, dts);
            r.decision_id = Some(H128(decision_id));
            r.placement = Some(
                if channel == Channel::InStore {
                    "pos_receipt"
                } else {
                    "order_confirmation"
                }
                .into(),
            );
            r.channel = Some(channel);
            r.location = Some(conv.store_id.clone().unwrap_or_else(|| "online".into()));
            r.profile = profile;
            r.transaction_id = Some(order.clone());
            r
        };
        let mut batch: Vec<Record> = Vec::new();
        let offers = if rng.random_bool(0.1) {
            0
        } else {
            rng.random_range(1..=3)
        };
        let mut shown: Vec<(u8, String)> = Vec::new();
        for slot in 0..offers {
            let c = if rng.random_bool(0.5) {
                who.favourites[rng.random_range(0..3)] % CAMPAIGNS
            } else {
                rng.random_range(0..CAMPAIGNS)
            };
            let id = format!("cmp-{c:04}");
            let held_out = c % 10 == 0 && profile.is_some_and(|p| p.0 % 10 == 0);
            let mut r = base(if held_out {
                Kind::Control
            } else {
                Kind::Decision
            });
            r.slot = Some(slot);
            r.campaign = Some(id.clone());
            r.advertiser = Some(format!("adv-{:03}", c % 50));
            r.creative = Some(format!("cr-{c}"));
            r.model = Some(BidModel::Cpm);
            r.price = Some(20_000);
            if !held_out {
                shown.push((slot, id));
            }
            batch.push(r);
        }
        if shown.is_empty() {
            batch.insert(0, base(Kind::Nofill));
        }
        batch.sort_by_key(|r| r.kind == Kind::Control);
        batch[0].ids = ids.clone();
        for r in &batch {
            out.push(r);
        }
        for (slot, id) in shown {
            if !rng.random_bool(0.8) {
                continue;
            }
            let event = |kind: Kind, at: i64, cost: i64| {
                let mut r = Record::new(kind, at);
                r.decision_id = Some(H128(decision_id));
                r.slot = Some(slot);
                r.campaign = Some(id.clone());
                r.creative = Some(format!("cr-{id}"));
                r.placement = batch[0].placement.clone();
                r.channel = Some(channel);
                r.location = batch[0].location.clone();
                r.profile = profile;
                r.model = Some(BidModel::Cpm);
                r.price = Some(20_000);
                r.cost = Some(cost);
                r.decision_ts = Some(dts);
                r
            };
            out.push(&event(Kind::Impression, dts + 2_000, 20_000));
            if rng.random_bool(0.04) {
                out.push(&event(Kind::Click, dts + 9_000, 0));
                if rng.random_bool(0.1) {
                    let mut p = event(Kind::Purchase, dts + 30_000, 0);
                    p.cost = None;
                    p.order_id = Some(format!("ac_{visit}_{slot}"));
                    p.sku = Some(format!("SKU-{id}"));
                    p.quantity = Some(1);
                    p.price = Some(19_990_000);
                    p.total = Some(19_990_000);
                    p.currency = Some("USD".into());
                    p.occurred = Some(dts + 30_000);
                    out.push(&p);
                }
            }
        }
        while refunds.first().is_some_and(|r| r.0 <= ts) {
            let (at, order, ch, ids, item) = refunds.remove(0);
            let mut r = Record::new(Kind::Conversion, at);
            r.order_id = Some(order);
            r.conversion_type = Some(ConversionType::Refund);
            r.channel = Some(ch);
            r.occurred = Some(at);
            r.total = Some(item.price * i64::from(item.quantity));
            r.currency = Some("USD".into());
            r.ids = ids;
            r.items = vec![item];
            out.push(&r);
        }
    }
    out.flush();
    let written = out.n;
    w.sync().unwrap();
    written
}

struct Out<'a> {
    w: &'a mut SegmentWriter,
    frames: Vec<u8>,
    payload: Vec<u8>,
    n: u64,
}

impl Out<'_> {
    fn push(&mut self, r: &Record) {
        self.payload.clear();
        r.encode(&mut self.payload);
        encode_frame(&self.payload, &mut self.frames);
        self.n += 1;
        if self.frames.len() >= 4 << 20 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.w.append(&self.frames).unwrap();
        self.frames.clear();
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn log_records(data: &Path) -> u64 {
    let mut r = LogReader::open(&data.join("log")).unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    while r.next_into(&mut buf).unwrap().is_some() {
        n += 1;
    }
    n
}

/// In the child: one report over the log, then the figures as one line.
fn child(data: &Path) {
    let started = Instant::now();
    let report = measure::report(data, &Options::default()).unwrap();
    let elapsed = started.elapsed();
    println!(
        "records={} seconds={:.3} peak_rss_kib={} profiles={} identifiers={} campaigns={} purchases={} attributed_orders={}",
        report.log.records,
        elapsed.as_secs_f64(),
        vm_hwm_kib(),
        report.overall.profiles,
        report.overall.identifiers,
        report.campaigns.len(),
        report.overall.purchases,
        report.overall.attributed_orders,
    );
}

fn report_10m(records: u64) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    generate(dir.path(), records, 7);
    let bytes: u64 = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "report_10m: wrote {} records ({:.0} MiB) in {:.1} s",
        log_records(dir.path()),
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (n, secs, rss) = (field("records"), field("seconds"), field("peak_rss_kib"));
    eprintln!(
        "report_10m: {n:.0} records in {secs:.2} s: {:.2}M records/s; peak RSS {:.0} MiB ({:.0} bytes per profile) for {:.0} profiles and {:.0} identifiers",
        n / secs / 1e6,
        rss / 1024.0,
        rss * 1024.0 / field("profiles"),
        field("profiles"),
        field("identifiers"),
    );
    eprintln!("report_10m: {}", line.trim());
}

fn bench(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), N, 11);
    let records = log_records(dir.path());
    let log = dir.path().join("log");

    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(BenchmarkId::new("full", N), |b| {
        b.iter(|| black_box(measure::report(dir.path(), &Options::default()).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("report_read");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let read_all = |decode: &dyn Fn(&[u8]) -> i64| {
        let mut r = LogReader::open(&log).unwrap();
        let mut buf = Vec::new();
        let mut sum = 0i64;
        while r.next_into(&mut buf).unwrap().is_some() {
            sum = sum.wrapping_add(decode(&buf));
        }
        sum
    };
    group.bench_function(BenchmarkId::new("wire", N), |b| {
        b.iter(|| read_all(&|p| wire::read(p).unwrap().ts))
    });
    group.bench_function(BenchmarkId::new("serde", N), |b| {
        b.iter(|| read_all(&|p| Record::decode(p).unwrap().ts))
    });
    group.finish();
}

fn main() {
    if let Some(data) = std::env::var_os(CHILD) {
        return child(Path::new(&data));
    }
    if let Some((dir, n)) = std::env::var(WRITE)
        .ok()
        .as_deref()
        .and_then(|v| v.rsplit_once(':'))
    {
        let n = generate(Path::new(dir), n.parse().expect("DIR:N"), 7);
        return eprintln!("wrote {n} records into {dir}/log");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !listing && (filters.is_empty() || filters.iter().any(|f| "report_10m".contains(f.as_str())))
    {
        report_10m(10_000_000);
    }
    if filters.iter().any(|f| f.as_str() == "report_10m") {
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
