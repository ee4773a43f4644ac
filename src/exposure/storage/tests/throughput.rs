//! Reader throughput; run with `cargo test --release -- --ignored throughput --nocapture`.

use super::*;
use std::time::Instant;

#[test]
#[ignore = "timing; run in release"]
fn reader_sustains_over_a_million_records_per_second() {
    const RECORDS: usize = 2_000_000;
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 128 << 20);
    let mut batch = Vec::new();
    for i in 0..RECORDS {
        let mut p = vec![0u8; 200];
        p[..8].copy_from_slice(&(i as u64).to_le_bytes());
        encode_frame(&p, &mut batch);
        if batch.len() > 1 << 20 {
            w.append(&batch).expect("append");
            batch.clear();
        }
    }
    w.append(&batch).expect("append");
    drop(w);

    let started = Instant::now();
    let mut reader = LogReader::open(&dir).expect("reader");
    let mut buf = Vec::new();
    let mut n = 0usize;
    while reader.next_into(&mut buf).expect("next").is_some() {
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "next_into: {n} records in {:?}: {rate:.0}/s",
        started.elapsed()
    );
    assert_eq!(n, RECORDS);
    assert!(rate > 1_000_000.0, "{rate:.0} records/s");

    let started = Instant::now();
    let mut reader = LogReader::open(&dir).expect("reader");
    let mut n = 0usize;
    while reader.next().expect("next").is_some() {
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("next: {n} records in {:?}: {rate:.0}/s", started.elapsed());
}
