//! Reading the log with two threads: a reader thread reads frames, checks their CRCs
//! and decodes records into what the pass needs (`produce`), in batches of up to
//! [`BATCH_RECORDS`] records; the calling thread consumes the batches in log order.
//!
//! Which thread decodes is balanced as the pass runs: the reader hands over a share of
//! the records undecoded ([`Work::Raw`], payload bytes in the batch) for the consumer to
//! decode itself. When batches pile up (the consumer is behind) the reader decodes more;
//! when the queue runs dry (the consumer waits) it decodes less. Decoding MessagePack is
//! the larger part of a pass, and how it should be split depends on the pass and on
//! what else the machine is doing, so it is measured rather than fixed.
//!
//! Batches go back to the reader to be reused, and at most [`IN_FLIGHT`] are queued, so
//! memory stays a few MiB whatever the size of the log.

use super::{Progress, ReportError};
use crate::exposure::storage::{LogError, LogReader, list_segments};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Batches queued between the threads.
const IN_FLIGHT: usize = 4;
/// A batch holds about this many payload bytes (or [`BATCH_RECORDS`] records).
const BATCH_BYTES: usize = 1 << 20;
const BATCH_RECORDS: usize = 2048;
/// The share of records handed over undecoded is counted in sixteenths.
const SHARES: u32 = 16;

/// A record as the reader hands it over.
pub enum Work<T> {
    /// Decoded by the reader.
    Done(T),
    /// For the consumer to decode: the payload is `bytes[start..end]` of the batch.
    Raw(u32, u32),
}

/// Records read, and what the reader made of them.
pub struct Batch<T> {
    /// Payloads handed over raw, and anything `produce` kept.
    pub bytes: Vec<u8>,
    /// Each record `produce` kept or that was handed over raw, with its offset.
    pub items: Vec<(u64, Work<T>)>,
    /// Records read into this batch (also those `produce` dropped).
    pub records: u64,
    /// Where reading got to.
    pub position: u64,
}

impl<T> Batch<T> {
    /// The payload of a record handed over raw.
    pub fn raw(&self, start: u32, end: u32) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }
}

/// What a pass read: offsets `[start, end)`, and how many records.
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub records: u64,
}

/// Turns one record (offset, payload) into an item, or drops it; may keep bytes in the
/// batch's buffer and refer to them by position.
pub type Produce<'a, T> =
    dyn Fn(u64, &[u8], &mut Vec<u8>) -> Result<Option<T>, ReportError> + Sync + 'a;

/// Streams the records in `[start, end)` (from the oldest and to the current end when
/// `None`) through `produce` on a reader thread and `consume` on this one.
pub fn stream<T: Send>(
    dir: &Path,
    start: Option<u64>,
    end: Option<u64>,
    pass: u8,
    produce: &Produce<T>,
    consume: &mut dyn FnMut(&Batch<T>) -> Result<(), ReportError>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Span, ReportError> {
    let mut reader = LogReader::open(dir)?;
    let start = match start {
        Some(s) => s,
        None => reader.oldest_offset()?,
    };
    reader.seek(start)?;
    let bytes_total = match end {
        Some(e) => e.saturating_sub(start),
        None => log_end(dir)?.saturating_sub(start),
    };
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch<T>, ReportError>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch<T>>();
    let consumed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let consumed = &consumed;
        let read = move || {
            let mut payload = Vec::with_capacity(4096);
            let mut sent = 0usize;
            let mut raw_share = SHARES / 4;
            loop {
                let mut batch = empty_rx.try_recv().unwrap_or_else(|_| Batch {
                    bytes: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
                    items: Vec::new(),
                    records: 0,
                    position: 0,
                });
                batch.bytes.clear();
                batch.items.clear();
                batch.records = 0;
                // Balance: a full queue means the consumer is the slower one.
                let queued = sent - consumed.load(Ordering::Relaxed);
                if queued >= IN_FLIGHT - 1 {
                    raw_share = raw_share.saturating_sub(1);
                } else if queued == 0 {
                    raw_share = (raw_share + 1).min(SHARES - 1);
                }
                let filled = fill(
                    &mut reader,
                    end,
                    produce,
                    raw_share,
                    &mut payload,
                    &mut batch,
                );
                batch.position = reader.position();
                let (done, message) = match filled {
                    Ok(done) => (done, Ok(batch)),
                    Err(e) => (true, Err(e)),
                };
                sent += 1;
                // A consumer that stopped (an error) has dropped its end: stop too.
                if full_tx.send(message).is_err() || done {
                    return;
                }
            }
        };
        std::thread::Builder::new()
            .name("report-reader".into())
            .spawn_scoped(s, read)
            .map_err(ReportError::Thread)?;
        let mut span = Span {
            start,
            end: start,
            records: 0,
        };
        for message in full_rx {
            let batch = message?;
            consume(&batch)?;
            consumed.fetch_add(1, Ordering::Relaxed);
            span.records += batch.records;
            span.end = batch.position;
            progress(Progress {
                pass,
                bytes_done: span.end - start,
                bytes_total: bytes_total.max(span.end - start),
                records: span.records,
            });
            let _ = empty_tx.send(batch);
        }
        Ok(span)
    })
}

/// Reads records into `batch` until it is full (`Ok(false)`) or the log or `end` is
/// reached (`Ok(true)`). `raw_share` sixteenths of them are handed over undecoded.
fn fill<T>(
    reader: &mut LogReader,
    end: Option<u64>,
    produce: &Produce<T>,
    raw_share: u32,
    payload: &mut Vec<u8>,
    batch: &mut Batch<T>,
) -> Result<bool, ReportError> {
    let mut n = 0u32;
    while batch.bytes.len() < BATCH_BYTES && (batch.records as usize) < BATCH_RECORDS {
        if end.is_some_and(|e| reader.position() >= e) {
            return Ok(true);
        }
        let Some(offset) = reader.next_into(payload)? else {
            return Ok(true);
        };
        batch.records += 1;
        n = (n + 1) % SHARES;
        if n < raw_share {
            let at = batch.bytes.len() as u32;
            batch.bytes.extend_from_slice(payload);
            let item = Work::Raw(at, batch.bytes.len() as u32);
            batch.items.push((offset, item));
        } else if let Some(item) = produce(offset, payload, &mut batch.bytes)? {
            batch.items.push((offset, Work::Done(item)));
        }
    }
    Ok(false)
}

/// The log's end offset as the segment files now stand.
fn log_end(dir: &Path) -> Result<u64, LogError> {
    let segments = list_segments(dir)?;
    let Some((base, path)) = segments.last() else {
        return Ok(0);
    };
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(base + len)
}
