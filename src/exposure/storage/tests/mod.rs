//! Tests for the exposure log storage, grouped by what a user of the log relies on:
//! `round_trip` (records come back, offsets are stable, seeking works), `recovery` (torn tails
//! are cut, corruption is reported and never skipped), `faults` (failed writes and syncs leave
//! no partial frames), `retention`, `concurrent` (a reader tails a live writer) and `fuzz`
//! (no file content makes the log panic or return a record that was never written), plus an
//! ignored `throughput` timing test for release builds.
//!
//! Format recap: segments `{base:020}.seg` of `[len u32 LE][crc32 u32 LE][payload]` frames.
//! Recovery recap: in the last segment, an incomplete frame at the end, or a bad frame followed
//! only by zeros, is a torn tail (cut by the writer, "not yet" for readers); a bad frame with
//! non-zero data after it, or anything bad in an older segment, is corruption.

mod concurrent;
mod faults;
mod fuzz;
mod recovery;
mod retention;
mod round_trip;
mod throughput;

use super::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A deterministic payload of 1..=300 bytes for record `i`, distinct for nearby records.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 37 + i / 7) % 300;
    (0..len).map(|k| (i * 31 + k * 7 + 1) as u8).collect()
}

fn frames_of(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        encode_frame(p, &mut out);
    }
    out
}

fn open_writer(dir: &Path, max_segment_bytes: u64) -> (SegmentWriter, Recovery) {
    SegmentWriter::open(dir, max_segment_bytes, Arc::default()).expect("open writer")
}

/// Appends records `range` in batches of 1..=4; returns (offset, payload) per record.
fn write_records(w: &mut SegmentWriter, range: std::ops::Range<usize>) -> Vec<(u64, Vec<u8>)> {
    let mut written = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let n = (1 + i % 4).min(range.end - i);
        let payloads: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
        let mut offset = w.append(&frames_of(&payloads)).expect("append");
        for p in payloads {
            let size = (FRAME_HEADER + p.len()) as u64;
            written.push((offset, p));
            offset += size;
        }
        i += n;
    }
    written
}

/// Every record from the oldest one to the current end.
fn read_all(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut reader = LogReader::open(dir)?;
    let mut out = Vec::new();
    while let Some(record) = reader.next()? {
        out.push(record);
    }
    Ok(out)
}

fn last_segment(dir: &Path) -> PathBuf {
    list_segments(dir)
        .expect("list")
        .pop()
        .expect("a segment")
        .1
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open raw");
    f.write_all(bytes).expect("raw write");
}

/// XORs one byte of a file.
fn flip_byte(path: &Path, at: u64) {
    let mut data = fs::read(path).expect("read");
    data[at as usize] ^= 0x5a;
    fs::write(path, data).expect("write");
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn temp_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    (tmp, dir)
}
