//! A reader tailing a live writer sees only whole records, in order, and eventually all.

use super::*;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn reader_tails_a_live_writer() {
    const RECORDS: usize = 20_000;
    let (_tmp, dir) = temp_log();
    // Create the directory before the reader opens it.
    let (mut w, _) = open_writer(&dir, 64 << 10);

    let writer = thread::spawn(move || {
        let mut written = Vec::with_capacity(RECORDS);
        let mut i = 0;
        while i < RECORDS {
            let n = (1 + i % 3).min(RECORDS - i);
            written.extend(write_records(&mut w, i..i + n));
            i += n;
            if i % 500 == 0 {
                w.sync().expect("sync");
                thread::yield_now();
            }
        }
        written
    });

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let dir = dir.clone();
            thread::spawn(move || {
                // The second reader starts late, mid-stream.
                thread::sleep(Duration::from_millis(5 * r));
                let mut reader = LogReader::open(&dir).expect("reader");
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut seen = Vec::with_capacity(RECORDS);
                let mut buf = Vec::new();
                while seen.len() < RECORDS {
                    match reader.next_into(&mut buf).expect("no error while tailing") {
                        Some(offset) => {
                            // Whole records only: the payload is exactly the one written.
                            assert_eq!(buf, payload(seen.len()), "record {}", seen.len());
                            seen.push(offset);
                        }
                        None => {
                            assert!(Instant::now() < deadline, "reader stalled");
                            thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
                seen
            })
        })
        .collect();

    let written = writer.join().expect("writer thread");
    let offsets: Vec<u64> = written.iter().map(|(o, _)| *o).collect();
    for reader in readers {
        assert_eq!(reader.join().expect("reader thread"), offsets);
    }
    assert!(
        list_segments(&dir).expect("list").len() > 10,
        "rotated while read"
    );
}
