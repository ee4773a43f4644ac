//! The log reader: returns whole, CRC-checked records from an offset onwards, segment after
//! segment, while a writer (possibly in another process) keeps appending.
//!
//! Format: segments named by their 20-digit base offset, holding `[len][crc32][payload]` frames
//! (see the parent module).
//!
//! Recovery rules as a reader sees them. A segment is *sealed* once a later segment exists: the
//! writer fsyncs a segment completely before creating the next one, so a sealed segment can only
//! end at a frame boundary, and anything incomplete or bad in it is corruption. In the last,
//! unsealed segment, an incomplete frame at the end is a write still in progress (or a torn
//! tail that the next writer open will cut): the reader stops there with `Ok(None)` and tries
//! again on the next call. A bad frame in the last segment followed only by zero bytes is also
//! a torn tail (zero-filled space left by a crash) and likewise "not written yet"; a bad frame
//! followed by non-zero data is corruption. Corruption is reported as [`LogError::Corrupt`] at
//! the record's offset and the position stays there: records are never skipped silently.
//!
//! Reading goes through a 1 MiB `BufReader`, so bulk reads cost one `read` syscall per MiB and
//! one memcpy plus one CRC per record; [`LogReader::next_into`] also reuses the payload buffer.

use super::frame::{FrameRead, read_frame, rest_is_zero};
use super::{LogError, io_error, list_segments};
use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Read buffer per open segment.
const READ_BUFFER: usize = 1 << 20;

/// Reads records from a starting offset; see the module docs.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    /// The open segment holding `position`; opened lazily.
    current: Option<Segment>,
    /// The offset the next record is read from.
    position: u64,
    /// `position` came from a seek into the middle of a segment and has not yet been confirmed
    /// by reading a valid frame there.
    unverified: bool,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    reader: BufReader<File>,
    /// A later segment exists, so this one is complete (see the module docs).
    sealed: bool,
}

impl Segment {
    /// Moves the read position back to `rel` within this segment (after an incomplete read).
    fn rewind(&mut self, rel: u64) -> Result<(), LogError> {
        self.reader
            .seek(SeekFrom::Start(rel))
            .map(drop)
            .map_err(io_error(&self.path))
    }
}

impl LogReader {
    /// Opens a reader positioned at the oldest record. The directory must exist; an empty
    /// directory is an empty log, and records appended later will be read.
    pub fn open(dir: &Path) -> Result<LogReader, LogError> {
        let position = oldest(&list_segments(dir)?);
        Ok(LogReader {
            dir: dir.to_path_buf(),
            current: None,
            position,
            unverified: false,
        })
    }

    /// The first offset in the log (base of the oldest segment; 0 for an empty log).
    pub fn oldest_offset(&self) -> Result<u64, LogError> {
        Ok(oldest(&list_segments(&self.dir)?))
    }

    /// The offset the next call to [`LogReader::next`] reads from.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Positions at `offset`, which must be a record boundary: the start of a segment, a
    /// position returned by or reached through reading, or the end of the log.
    ///
    /// An offset before the oldest segment (including inside a deleted segment) or past the
    /// end of its segment is [`LogError::BadOffset`]. Whether an offset *inside* a segment is a
    /// record boundary cannot be checked without reading the segment from its start, so seek
    /// trusts the caller there; the next call to `next()` verifies the frame it lands on (sane
    /// length, matching CRC) and returns [`LogError::Corrupt`] if it does not check out. A wrong
    /// offset near the live end of the last segment may instead look like a frame still being
    /// written (`Ok(None)`). On error the reader keeps its previous position.
    pub fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let (segment, rel) = self.locate(offset)?;
        self.current = segment;
        self.position = offset;
        self.unverified = rel != 0;
        Ok(())
    }

    /// The next record: `Ok(Some((offset, payload)))`, or `Ok(None)` at the current end of the
    /// log (call again later to see new records). Moves to the next segment at the end of
    /// one. A CRC mismatch or impossible length that is not at the live tail is
    /// [`LogError::Corrupt`] with the record's offset.
    #[allow(clippy::should_implement_trait)] // fallible, and None is "not yet", not "never"
    pub fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let mut payload = Vec::new();
        Ok(self
            .next_into(&mut payload)?
            .map(|offset| (offset, payload)))
    }

    /// Like [`LogReader::next`], but reads the payload into `payload` (replacing its contents,
    /// reusing its allocation) and returns the record's offset.
    pub fn next_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<u64>, LogError> {
        loop {
            if self.current.is_none() {
                match self.locate(self.position)?.0 {
                    Some(segment) => self.current = Some(segment),
                    None => return Ok(None),
                }
            }
            let Some(seg) = self.current.as_mut() else {
                return Ok(None);
            };
            let start = self.position;
            let rel = start - seg.base;
            let found = read_frame(&mut seg.reader, payload).map_err(io_error(&seg.path))?;
            match found {
                FrameRead::Whole(n) => {
                    self.position += n;
                    self.unverified = false;
                    return Ok(Some(start));
                }
                FrameRead::End if seg.sealed => {
                    if !self.advance()? {
                        return Ok(None);
                    }
                }
                FrameRead::End => {
                    // A later segment means the writer has finished this one; read again
                    // before moving on, in case it appended more just before rotating.
                    if !later_segment_exists(&self.dir, seg.base)? {
                        return Ok(None);
                    }
                    seg.sealed = true;
                }
                FrameRead::Incomplete => {
                    seg.rewind(rel)?;
                    if seg.sealed {
                        let reason = "record cut short by the end of a finished segment";
                        return Err(self.corrupt(reason.into()));
                    }
                    // Either still being written (wait), or finished just now (read again).
                    if !later_segment_exists(&self.dir, seg.base)? {
                        return Ok(None);
                    }
                    seg.sealed = true;
                }
                FrameRead::Bad(reason) => {
                    let torn_tail = !seg.sealed
                        && rest_is_zero(&mut seg.reader).map_err(io_error(&seg.path))?;
                    seg.rewind(rel)?;
                    if !torn_tail {
                        return Err(self.corrupt(reason));
                    }
                    // Zeros after a bad frame at the end of the last segment: a crashed
                    // writer's torn tail, which its next open cuts. If a later segment exists
                    // the cut never happened, so the next pass reports it as corruption.
                    if !later_segment_exists(&self.dir, seg.base)? {
                        return Ok(None);
                    }
                    seg.sealed = true;
                }
            }
        }
    }

    /// At the end of a sealed segment: opens the segment that starts where it ended. Returns
    /// false if there is none after all (someone removed the last segment by hand).
    fn advance(&mut self) -> Result<bool, LogError> {
        let Some(seg) = self.current.as_mut() else {
            return Ok(true);
        };
        let segments = list_segments(&self.dir)?;
        let Some((next_base, _)) = segments.iter().find(|(base, _)| *base > seg.base) else {
            seg.sealed = false;
            return Ok(false);
        };
        if *next_base != self.position {
            let oldest = oldest(&segments);
            if self.position < oldest {
                // Retention deleted the segments after the one we were still reading.
                return Err(LogError::BadOffset {
                    offset: self.position,
                    oldest,
                });
            }
            return Err(LogError::Corrupt {
                offset: self.position,
                path: seg.path.clone(),
                reason: format!(
                    "segment ends at offset {} but the next segment starts at {next_base}",
                    self.position
                ),
            });
        }
        self.current = None;
        Ok(true)
    }

    /// Opens the segment holding `offset` with its read position there. `None` for offset 0
    /// of an empty log. Also returns the position within the segment.
    fn locate(&self, offset: u64) -> Result<(Option<Segment>, u64), LogError> {
        let segments = list_segments(&self.dir)?;
        let oldest = oldest(&segments);
        if segments.is_empty() && offset == 0 {
            return Ok((None, 0));
        }
        // The last segment whose base is at or before `offset`.
        let idx = segments.partition_point(|(base, _)| *base <= offset);
        let Some((base, path)) = idx.checked_sub(1).and_then(|i| segments.get(i)) else {
            return Err(LogError::BadOffset { offset, oldest });
        };
        let sealed = idx < segments.len();
        let mut file = match File::open(path) {
            Ok(file) => file,
            // Deleted by retention since we listed the directory.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let oldest = self.oldest_offset()?;
                return Err(LogError::BadOffset { offset, oldest });
            }
            Err(e) => return Err(io_error(path)(e)),
        };
        let len = file.metadata().map_err(io_error(path))?.len();
        let rel = offset - base;
        if rel > len {
            // Past the end of the log, or in a hole between segments.
            return Err(LogError::BadOffset { offset, oldest });
        }
        file.seek(SeekFrom::Start(rel)).map_err(io_error(path))?;
        let segment = Segment {
            base: *base,
            path: path.clone(),
            reader: BufReader::with_capacity(READ_BUFFER, file),
            sealed,
        };
        Ok((Some(segment), rel))
    }

    /// The error for a bad record at the current position.
    fn corrupt(&self, mut reason: String) -> LogError {
        if self.unverified {
            reason.push_str(
                " (the position came from seek() into the middle of a segment; \
                 if it was not a record boundary, the offset passed to seek() was wrong)",
            );
        }
        let path = self
            .current
            .as_ref()
            .map_or_else(|| self.dir.clone(), |seg| seg.path.clone());
        LogError::Corrupt {
            offset: self.position,
            path,
            reason,
        }
    }
}

fn oldest(segments: &[(u64, PathBuf)]) -> u64 {
    segments.first().map_or(0, |(base, _)| *base)
}

fn later_segment_exists(dir: &Path, base: u64) -> Result<bool, LogError> {
    Ok(list_segments(dir)?.iter().any(|(b, _)| *b > base))
}
