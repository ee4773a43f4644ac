//! The exposure log writer: records per second through the real writer with group
//! commit, beside the disk's own fsync'd sequential bandwidth on the same disk.
//!
//! - `log_append/writer`: 100,000 decision-sized records handed over by two producer
//!   tasks (as two request workers would), then one flush (write + fsync). Throughput is
//!   in records.
//! - `log_append/disk`: the same bytes written with plain 1 MiB `write` calls and one
//!   fsync at the end: what `dd bs=1M conv=fsync` measures, the ceiling for the writer.
//!
//! Targets: ≥ 500,000 records/s, and the writer's bytes/s ≥ 50% of the disk's.
//! `cargo bench --bench log_writer` (the data goes to a temporary folder on the disk of
//! `TMPDIR`; point it at the data disk to measure that one).

use aftercart::campaign::{BidModel, Channel};
use aftercart::exposure::record::{H128, LoggedId};
use aftercart::exposure::storage::Faults;
use aftercart::exposure::{ExposureLog, Kind, LogMetrics, Record, WriterConfig};
use aftercart::identity::IdKind;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 100_000;

/// A decision record as the server writes one: three identifiers, an order id.
fn decision_record(i: u64) -> Record {
    let mut r = Record::new(Kind::Decision, 1_795_012_200_000 + i as i64);
    r.decision_id = Some(H128(0x0123_4567_89ab_cdef_0000_0000_0000_0000 | i as u128));
    r.slot = Some((i % 3) as u8);
    r.campaign = Some(format!("cmp-campaign-{}", i % 1000));
    r.creative = Some(format!("cr-{}", i % 1000));
    r.advertiser = Some(format!("adv-{}", i % 200));
    r.placement = Some("order_confirmation".into());
    r.channel = Some(Channel::Online);
    r.location = Some("online".into());
    r.profile = Some(H128(i as u128 * 7919));
    r.ids = [IdKind::LoyaltyId, IdKind::EmailSha256, IdKind::DeviceId]
        .iter()
        .map(|&kind| LoggedId {
            kind,
            hash: H128(i as u128 * 31 + kind as u128),
        })
        .collect();
    r.transaction_id = Some(format!("ORD-{i}"));
    r.model = Some(BidModel::Cpm);
    r.price = Some(18_000);
    r
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let records: Arc<Vec<Record>> = Arc::new((0..RECORDS as u64).map(decision_record).collect());
    let mut bytes_per_record = 0usize;
    {
        let mut buf = Vec::new();
        records[0].encode(&mut buf);
        bytes_per_record = bytes_per_record.max(buf.len() + 8);
    }
    let mut group = c.benchmark_group("log_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(RECORDS as u64));

    group.bench_function(BenchmarkId::new("writer", RECORDS), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let config = WriterConfig {
                    dir: dir.path().join("log"),
                    segment_bytes: 128 << 20,
                    flush_interval: Duration::from_millis(10),
                    queue_capacity: 65_536,
                    queue_wait: Duration::from_secs(10),
                };
                let metrics = LogMetrics::register(&prometheus::Registry::new()).unwrap();
                let (log, _, _) =
                    ExposureLog::open(config, Arc::new(Faults::default()), metrics).unwrap();
                let started = std::time::Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for half in 0..2 {
                        let (log, records) = (log.clone(), records.clone());
                        tasks.push(tokio::spawn(async move {
                            for r in records.iter().skip(half).step_by(2) {
                                log.append(Kind::Decision, std::slice::from_ref(r))
                                    .await
                                    .unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                    log.flush().await.unwrap();
                });
                total += started.elapsed();
            }
            total
        })
    });

    group.bench_function(BenchmarkId::new("disk", RECORDS), |b| {
        let chunk = vec![0x5au8; 1 << 20];
        let total_bytes = RECORDS * bytes_per_record;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let started = std::time::Instant::now();
                let mut f = std::fs::File::create(dir.path().join("dd.bin")).unwrap();
                let mut left = total_bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    f.write_all(&chunk[..n]).unwrap();
                    left -= n;
                }
                f.sync_all().unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
    eprintln!(
        "log_append: {bytes_per_record} bytes per framed decision record; both variants write the same bytes"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
