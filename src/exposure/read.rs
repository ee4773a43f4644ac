//! Reading records back: the library measurement code and the log consumers use.
//!
//! Records of erased people are redacted as they are read (see [`crate::erasure`]):
//! every consumer (`aftercart log`, `GET /v1/log`, reports) sees them without
//! identifiers, profile, transaction or order id. Only the server's own replay reads
//! them whole, to keep deduplication keys that must outlive an erasure.

use super::record::Record;
use super::storage::{LogError, LogReader};
use crate::erasure::Erasures;
use std::path::Path;

/// Decoded records in log order, from `from` (0 = the oldest record kept).
pub struct Records {
    reader: LogReader,
    payload: Vec<u8>,
    /// The offset asked for, until the first record is read: a bad frame there means
    /// the caller's offset is not a record boundary, not that the log is corrupt.
    unverified_start: Option<(u64, u64)>,
    /// Erasures known so far (the index, then every `erasure` record read).
    erasures: Erasures,
    redact: bool,
}

impl Records {
    /// Records from `from`, with erased people's records redacted.
    pub fn open(dir: &Path, from: u64) -> Result<Records, LogError> {
        let mut records = Self::open_unredacted(dir, from)?;
        records.erasures = Erasures::load(dir).map_err(|source| LogError::Io {
            path: dir.join(crate::erasure::INDEX),
            source,
        })?;
        records.redact = true;
        Ok(records)
    }

    /// Records as written, erased people's included: for the server's own replay.
    pub fn open_unredacted(dir: &Path, from: u64) -> Result<Records, LogError> {
        let mut reader = LogReader::open(dir)?;
        let start = if from == 0 {
            reader.oldest_offset()?
        } else {
            from
        };
        let oldest = reader.oldest_offset()?;
        reader.seek(start)?;
        Ok(Records {
            reader,
            payload: Vec::with_capacity(1024),
            unverified_start: Some((start, oldest)),
            erasures: Erasures::default(),
            redact: false,
        })
    }

    /// The next record with its offset, `None` at the current end of the log.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, LogError> {
        let read = self.reader.next_into(&mut self.payload);
        let start = self.unverified_start.take();
        let read = match (read, start) {
            (Err(LogError::Corrupt { offset, .. }), Some((start, oldest))) if offset == start => {
                return Err(LogError::BadOffset { offset, oldest });
            }
            (read, _) => read?,
        };
        let Some(offset) = read else {
            // Nothing there yet: the next call checks the start again.
            self.unverified_start = start;
            return Ok(None);
        };
        match Record::decode(&self.payload) {
            Ok(mut r) => {
                if self.redact {
                    self.erasures.note(&r);
                    self.erasures.redact(&mut r);
                }
                Ok(Some((offset, r)))
            }
            Err(e) => Err(LogError::Corrupt {
                offset,
                path: Default::default(),
                reason: format!("not a record: {e}"),
            }),
        }
    }

    /// Where the next record will be read from.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }
}

/// Up to `max` records from `from`, and the offset to continue from.
pub fn read_batch(
    dir: &Path,
    from: u64,
    max: usize,
) -> Result<(Vec<(u64, Record)>, u64), LogError> {
    let mut records = Records::open(dir, from)?;
    let mut out = Vec::new();
    while out.len() < max {
        match records.next_record()? {
            Some(r) => out.push(r),
            None => break,
        }
    }
    Ok((out, records.position()))
}
