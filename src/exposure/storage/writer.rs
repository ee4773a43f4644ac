//! The segment writer: appends batches of whole frames to the last segment and rotates.
//!
//! Format: segments named by their 20-digit base offset, holding `[len][crc32][payload]` frames
//! (see the parent module). The invariants that make recovery decidable:
//!
//! - only whole, valid frames are ever written ([`validate_batch`]), so after a crash the only
//!   possible damage from this process is an incomplete write at the very end of the last
//!   segment;
//! - a failed write is cut back to where its batch began before anything else is written, so no
//!   partial frame is ever followed by more data (which would look like mid-file corruption);
//! - a segment is fsynced before the next one is created, so every segment but the last is
//!   complete on disk and only the last needs scanning on open.
//!
//! On open, the last segment is scanned completely. An incomplete frame at its end, or a bad
//! frame followed only by zero bytes, is a torn tail and is truncated; a bad frame followed by
//! non-zero data is corruption and fails the open, because cutting there would discard records
//! that were completely written.

use super::frame::{FrameRead, read_frame, rest_is_zero, validate_batch};
use super::{Faults, LogError, Recovery, io_error, list_segments, segment_path, sync_dir};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Read buffer for the recovery scan.
const SCAN_BUFFER: usize = 1 << 20;

/// Appends frames to the log. One writer per log directory (the caller guarantees it).
#[derive(Debug)]
pub struct SegmentWriter {
    dir: PathBuf,
    max_segment_bytes: u64,
    faults: Arc<Faults>,
    file: File,
    path: PathBuf,
    /// Base offset of the current segment.
    base: u64,
    /// Bytes of whole frames in the current segment; the file cursor sits here.
    len: u64,
    /// A failed write could not be cut back; the file may hold bytes past `len`.
    needs_repair: bool,
    /// A new segment was created but the directory fsync making it durable failed.
    dir_sync_pending: bool,
}

/// How the last segment ends.
enum Tail {
    /// Whole frames up to this length.
    Clean(u64),
    /// Whole frames up to this position, then a torn write.
    Torn(u64),
    /// A bad frame at this position with written data after it.
    Corrupt(u64, String),
}

impl SegmentWriter {
    /// Opens (creating the dir if needed) for appending. Scans the LAST segment completely:
    /// a torn tail (an incomplete frame at the end, or a bad frame after which the rest of the
    /// file is only zero bytes or which extends past EOF) is truncated back to the last whole
    /// record, fsynced, and reported in [`Recovery`] (also `tracing::warn!`). A bad frame
    /// followed by more non-zero data is mid-file corruption: [`LogError::Corrupt`] with its
    /// offset. Older segments are not scanned here (readers check their CRCs).
    pub fn open(
        dir: &Path,
        max_segment_bytes: u64,
        faults: Arc<Faults>,
    ) -> Result<(SegmentWriter, Recovery), LogError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
            // The new directory's own entry must be durable too, or a crash can lose the
            // whole log along with the records we are about to acknowledge.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(io_error(parent))?;
            }
        }
        let segments = list_segments(dir)?;
        let mut recovery = Recovery::default();
        let (base, path, file, len) = match segments.last() {
            None => {
                let path = segment_path(dir, 0);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(io_error(&path))?;
                sync_dir(dir).map_err(io_error(dir))?;
                (0, path, file, 0)
            }
            Some((base, path)) => {
                let (base, path) = (*base, path.clone());
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_error(&path))?;
                let file_len = file.metadata().map_err(io_error(&path))?.len();
                let len = match scan_tail(&file).map_err(io_error(&path))? {
                    Tail::Clean(len) => len,
                    Tail::Corrupt(at, reason) => {
                        return Err(LogError::Corrupt {
                            offset: base + at,
                            path,
                            reason,
                        });
                    }
                    Tail::Torn(at) => {
                        file.set_len(at).map_err(io_error(&path))?;
                        // sync_all rather than sync_data: the shrunken size is the point.
                        file.sync_all().map_err(io_error(&path))?;
                        recovery = Recovery {
                            truncated_at: Some(base + at),
                            truncated_bytes: file_len.saturating_sub(at),
                        };
                        tracing::warn!(
                            segment = %path.display(),
                            truncated_at = base + at,
                            truncated_bytes = recovery.truncated_bytes,
                            "exposure log: cut a torn tail back to the last whole record"
                        );
                        at
                    }
                };
                file.seek(SeekFrom::Start(len)).map_err(io_error(&path))?;
                (base, path, file, len)
            }
        };
        let writer = SegmentWriter {
            dir: dir.to_path_buf(),
            max_segment_bytes,
            faults,
            file,
            path,
            base,
            len,
            needs_repair: false,
            dir_sync_pending: false,
        };
        Ok((writer, recovery))
    }

    /// Writes a buffer holding one or more whole frames; returns the offset of its first byte.
    ///
    /// Rotates to a new segment first when the current one is non-empty and the buffer would
    /// take it past `max_segment_bytes` (a single batch larger than the max goes whole into a
    /// fresh segment, so a batch never straddles segments). On rotation the finished segment
    /// and the directory are fsynced. A buffer that is not a sequence of valid frames is
    /// refused with `InvalidInput`. On a write error (real or injected) the file is cut back
    /// to where this batch began and the error returned; the writer stays usable.
    ///
    /// Appending does not fsync; call [`SegmentWriter::sync`] before acknowledging records.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<u64> {
        validate_batch(frames).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a batch of whole frames: {reason}"),
            )
        })?;
        self.repair()?;
        if frames.is_empty() {
            return Ok(self.end_offset());
        }
        if self.dir_sync_pending {
            self.sync_dir()?;
        }
        let batch_len = frames.len() as u64;
        if self.len > 0 && self.len.saturating_add(batch_len) > self.max_segment_bytes {
            self.rotate()?;
        }
        let start = self.len;
        match self.write_batch(frames) {
            Ok(()) => {
                self.len += batch_len;
                Ok(self.base + start)
            }
            Err(e) => {
                if let Err(cleanup) = self.cut_back() {
                    // Keep refusing to append until the partial batch is gone: data written
                    // after it would turn a torn write into mid-file corruption.
                    self.needs_repair = true;
                    tracing::error!(
                        segment = %self.path.display(),
                        error = %cleanup,
                        "exposure log: could not cut back a failed write; will retry"
                    );
                }
                Err(e)
            }
        }
    }

    /// fdatasync of the current segment (injected failure when `faults.fail_syncs`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.repair()?;
        if self.dir_sync_pending {
            self.sync_dir()?;
        }
        self.check_sync_fault()?;
        self.file.sync_data()
    }

    /// The offset the next append will get (= end of the log).
    pub fn end_offset(&self) -> u64 {
        self.base + self.len
    }

    fn write_batch(&mut self, frames: &[u8]) -> io::Result<()> {
        if self.faults.fail_writes.load(Ordering::SeqCst) {
            // Behave like a short write followed by ENOSPC: part of the batch lands.
            self.file.write_all(&frames[..frames.len() / 2])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.file.write_all(frames)
    }

    /// Truncates the file to the last whole batch and puts the cursor there.
    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.seek(SeekFrom::Start(self.len))?;
        Ok(())
    }

    fn repair(&mut self) -> io::Result<()> {
        if self.needs_repair {
            self.cut_back()?;
            self.needs_repair = false;
        }
        Ok(())
    }

    /// Finishes the current segment and starts the next at `base + len`.
    fn rotate(&mut self) -> io::Result<()> {
        // The finished segment must be complete on disk before its successor exists: that is
        // what lets recovery scan only the last segment.
        self.check_sync_fault()?;
        self.file.sync_data()?;
        let base = self.base + self.len;
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // An empty file can be left by an earlier rotation whose directory fsync failed; a
        // non-empty one means a second writer, and we must not clobber its data.
        if file.metadata()?.len() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("next segment {} already holds data", path.display()),
            ));
        }
        self.file = file;
        self.path = path;
        self.base = base;
        self.len = 0;
        // From here on we are committed to the new segment; if the directory fsync fails it is
        // retried before the next append or sync, so nothing is acknowledged without it.
        self.dir_sync_pending = true;
        self.sync_dir()
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        self.check_sync_fault()?;
        sync_dir(&self.dir)?;
        self.dir_sync_pending = false;
        Ok(())
    }

    fn check_sync_fault(&self) -> io::Result<()> {
        if self.faults.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected sync failure"));
        }
        Ok(())
    }
}

/// Scans a segment from its start and classifies how it ends.
fn scan_tail(file: &File) -> io::Result<Tail> {
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut payload = Vec::new();
    let mut pos = 0u64;
    loop {
        match read_frame(&mut reader, &mut payload)? {
            FrameRead::Whole(n) => pos += n,
            FrameRead::End => return Ok(Tail::Clean(pos)),
            FrameRead::Incomplete => return Ok(Tail::Torn(pos)),
            FrameRead::Bad(reason) => {
                return Ok(if rest_is_zero(&mut reader)? {
                    Tail::Torn(pos)
                } else {
                    Tail::Corrupt(pos, reason)
                });
            }
        }
    }
}
