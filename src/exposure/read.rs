//! Reading records back: the library measurement code and the log consumers use.

use super::record::Record;
use super::storage::{LogError, LogReader};
use std::path::Path;

/// Decoded records in log order, from `from` (0 = the oldest record kept).
pub struct Records {
    reader: LogReader,
    payload: Vec<u8>,
    /// The offset asked for, until the first record is read: a bad frame there means
    /// the caller's offset is not a record boundary, not that the log is corrupt.
    unverified_start: Option<(u64, u64)>,
}

impl Records {
    pub fn open(dir: &Path, from: u64) -> Result<Records, LogError> {
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
            Ok(r) => Ok(Some((offset, r))),
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
