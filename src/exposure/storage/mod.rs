//! Storage for the exposure log: append-only segment files in one directory.
//!
//! # Format
//!
//! The log is a sequence of *frames*, each `[len: u32 LE][crc32: u32 LE][payload: len bytes]`,
//! where the CRC is `crc32fast::hash(payload)` and the payload is one MessagePack record that
//! this layer treats as opaque bytes. A payload is 1..=[`MAX_PAYLOAD`] bytes: a larger declared
//! length is corruption, and so is a zero length, because 8 zero bytes would otherwise be a
//! valid frame (the CRC of nothing is 0) and unwritten, zero-filled space at the end of a file
//! after a crash would read back as a run of empty records.
//!
//! Frames live in segment files named after their *base offset*, 20 digits zero-padded, with
//! the extension `.seg` (`00000000000000000000.seg`, `00000000000134217728.seg`). An offset is a
//! global byte position: a record's offset is its segment's base plus its position in the file,
//! and a new segment's base is the previous base plus the previous segment's final length. So
//! offsets increase strictly, survive restarts, and survive deleting old segments, which is what
//! lets a consumer store "where I got to" as one number. Bases are limited to below 2^63 so that
//! `base + position` can never overflow.
//!
//! # Recovery rules, and why
//!
//! Only the writer appends, always whole frames, and only ever to the *last* segment. Before it
//! starts a new segment it fsyncs the finished one, so every segment but the last is known to be
//! complete on disk; only the last one can end in a write that a crash interrupted. When the
//! writer opens, it therefore scans the last segment completely and decides per the first frame
//! that does not check out:
//!
//! - an incomplete frame at the end (a partial header, or a length reaching past end of file)
//!   is a *torn tail*: the crash cut the final write short;
//! - a bad frame (impossible length or CRC mismatch) after which the rest of the file is only
//!   zero bytes is also a torn tail: file systems may extend a file's size before its data
//!   reaches the disk, leaving zero-filled space after a crash;
//! - a bad frame followed by more non-zero data is *corruption*: no interrupted append can leave
//!   written data after a damaged frame, so something damaged the file after it was written.
//!
//! A torn tail is cut back to the last whole record (nothing after the cut was ever complete,
//! so no acknowledged record is lost), fsynced and reported in [`Recovery`]. Corruption is
//! returned as [`LogError::Corrupt`] and never skipped: skipping would silently drop records
//! (exposures that were billed), so an operator has to decide. Older segments are not scanned on
//! open; readers verify every CRC as they go and report corruption at its offset.
//!
//! Readers apply the same rules while a writer may be appending: an incomplete or torn-looking
//! frame at the end of the last segment is "not written yet" (they stop and retry later), and
//! anything bad elsewhere is [`LogError::Corrupt`].
//!
//! One log has one writer at a time; nothing here locks the directory, so the caller must
//! guarantee it (two writers would interleave frames and truncate each other's batches).

mod frame;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use frame::encode_frame;
pub use reader::LogReader;
pub use writer::SegmentWriter;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Bytes before each payload: the length and the CRC.
pub const FRAME_HEADER: usize = 8;
/// The largest payload a frame may declare; anything larger is corruption.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Segment bases at or above this would let `base + position` overflow a u64, so such file
/// names are rejected rather than trusted. No real log gets anywhere near it.
const MAX_BASE: u64 = i64::MAX as u64;
const SEGMENT_EXT: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;

/// Errors from opening, scanning and reading the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt record at offset {offset} in {path}: {reason}")]
    Corrupt {
        offset: u64,
        path: PathBuf,
        reason: String,
    },
    #[error("offset {offset} is not a record boundary or is before the oldest segment ({oldest})")]
    BadOffset { offset: u64, oldest: u64 },
}

/// Switches for fault injection in tests: when set, the next writes / syncs fail with an
/// io::Error. A failing write first writes part of the batch, like a real short write that
/// ran into a full disk, so the writer's clean-up path is exercised for real.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_writes: AtomicBool,
    pub fail_syncs: AtomicBool,
}

/// What opening found at the tail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// The offset the last segment was cut back to, if a torn tail was found.
    pub truncated_at: Option<u64>,
    /// How many bytes were cut.
    pub truncated_bytes: u64,
}

/// Segments present, sorted by base offset.
///
/// Files whose names are not exactly 20 digits plus `.seg` are ignored (temporary files,
/// editor droppings); a segment-shaped name with a base of 2^63 or more is an error.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let entries = fs::read_dir(dir).map_err(io_error(dir))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        let path = entry.path();
        if base > MAX_BASE {
            return Err(LogError::Corrupt {
                offset: base,
                path,
                reason: "segment base offset is 2^63 or more, which this log never produces".into(),
            });
        }
        segments.push((base, path));
    }
    segments.sort_unstable_by_key(|(base, _)| *base);
    Ok(segments)
}

/// Deletes whole segments that end at or before `offset` (never the last segment). Returns how
/// many were deleted. Used by retention.
///
/// Only a prefix of the log is deleted: it stops at the first segment still needed, so the
/// remaining segments stay contiguous (a reader treats a hole between segments as corruption).
pub fn delete_segments_before(dir: &Path, offset: u64) -> Result<usize, LogError> {
    let segments = list_segments(dir)?;
    let keep_last = segments.len().saturating_sub(1);
    let mut deleted = 0;
    for (base, path) in segments.iter().take(keep_last) {
        let len = match fs::metadata(path) {
            Ok(meta) => meta.len(),
            // Someone else (another retention run) got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(path)(e)),
        };
        if base.saturating_add(len) > offset {
            break;
        }
        match fs::remove_file(path) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path)(e)),
        }
    }
    if deleted > 0 {
        // Make the deletions durable, so a restart does not resurrect segments whose space a
        // caller already considers reclaimed.
        sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(deleted)
}

/// The path of the segment starting at `base`.
fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!(
        "{base:0width$}{SEGMENT_EXT}",
        width = SEGMENT_DIGITS
    ))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXT)?;
    // Exactly 20 ASCII digits, so that every base has exactly one file name.
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// fsync of a directory, which makes file creations and deletions in it durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened and fsynced this way off Unix; there the file system's own
/// metadata journaling is all we get.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Wraps an io::Error with the path it happened on.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}
