//! A small durable journal of typed entries, for state that is not derived from the
//! exposure log: stored consent and the Kevel id registry.
//!
//! Entries are MessagePack payloads in the exposure log's framed segments (length, CRC,
//! torn-tail recovery; see [`crate::exposure::storage`]), written and fsynced before
//! [`Journal::append`] returns, so whatever a caller acknowledges survives a crash.
//! [`Journal::compact`] writes the whole current state as a snapshot (atomically) and
//! drops the segments it covers: the journal of a store that forgets (an erased
//! person's consent) does not keep what it forgot on disk past the next compaction.
//!
//! Opening replays the snapshot, then every entry after it, in order. An entry that
//! does not decode is refused rather than skipped: dropping one could silently change
//! what a store answers (a consent withdrawal, an id another id then takes), so the
//! operator has to look.

use crate::exposure::storage::{
    Faults, LogError, LogReader, SegmentWriter, delete_segments_before, encode_frame,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segments are small so that a compaction lets old ones go soon.
const SEGMENT_BYTES: u64 = 8 << 20;
/// Entries per frame (a frame holds at most 16 MiB; entries here are well under 1 KiB).
const ENTRIES_PER_FRAME: usize = 10_000;

/// The snapshot file: the state as entries, and the journal offset it covers.
#[derive(Deserialize)]
struct Snapshot<T> {
    offset: u64,
    entries: Vec<T>,
}

/// The same, as written (borrowing the entries).
#[derive(Serialize)]
struct SnapshotOut<'a, T> {
    offset: u64,
    entries: &'a [T],
}

pub struct Journal<T> {
    dir: PathBuf,
    writer: SegmentWriter,
    _entries: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens the journal in `dir` (created if needed) and returns it with every entry
    /// it holds: the snapshot's, then those appended after it.
    pub fn open(dir: &Path, faults: Arc<Faults>) -> Result<(Journal<T>, Vec<T>), LogError> {
        let (writer, recovery) = SegmentWriter::open(dir, SEGMENT_BYTES, faults)?;
        if let Some(at) = recovery.truncated_at {
            tracing::warn!(dir = %dir.display(), offset = at, "journal: cut a torn tail");
        }
        let unreadable = |path: PathBuf, e: String| LogError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        };
        let mut entries = Vec::new();
        let mut from = 0;
        let snapshot = snapshot_path(dir);
        match std::fs::read(&snapshot) {
            Ok(bytes) => {
                let snap: Snapshot<T> = rmp_serde::from_slice(&bytes)
                    .map_err(|e| unreadable(snapshot.clone(), e.to_string()))?;
                entries = snap.entries;
                from = snap.offset;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LogError::Io {
                    path: snapshot,
                    source,
                });
            }
        }
        let mut reader = LogReader::open(dir)?;
        reader.seek(from.max(reader.oldest_offset()?))?;
        let mut payload = Vec::new();
        while let Some(offset) = reader.next_into(&mut payload)? {
            let batch: Vec<T> = rmp_serde::from_slice(&payload).map_err(|e| {
                unreadable(dir.to_path_buf(), format!("entry at offset {offset}: {e}"))
            })?;
            entries.extend(batch);
        }
        let journal = Journal {
            dir: dir.to_path_buf(),
            writer,
            _entries: PhantomData,
        };
        Ok((journal, entries))
    }

    /// Appends `entries` and fsyncs: durable when this returns `Ok`.
    pub fn append(&mut self, entries: &[T]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::new();
        for chunk in entries.chunks(ENTRIES_PER_FRAME) {
            let payload = rmp_serde::to_vec(chunk).map_err(std::io::Error::other)?;
            encode_frame(&payload, &mut frames);
        }
        self.writer.append(&frames)?;
        self.writer.sync()
    }

    /// Replaces everything journalled so far by `state` (the store's whole current
    /// state): a snapshot written atomically, then the segments it covers deleted.
    pub fn compact(&mut self, state: &[T]) -> Result<(), LogError> {
        let offset = self.writer.end_offset();
        let path = snapshot_path(&self.dir);
        let bytes = rmp_serde::to_vec(&SnapshotOut {
            offset,
            entries: state,
        })
        .map_err(|e| LogError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::secrets::write_atomic(&path, &bytes)
            .map_err(|source| LogError::Io { path, source })?;
        delete_segments_before(&self.dir, offset)?;
        Ok(())
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entry = (u32, String);

    fn open(dir: &Path) -> (Journal<Entry>, Vec<Entry>) {
        Journal::open(dir, Arc::default()).unwrap()
    }

    #[test]
    fn entries_come_back_in_order_across_compactions() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, entries) = open(dir.path());
            assert!(entries.is_empty());
            j.append(&[(1, "a".into()), (2, "b".into())]).unwrap();
            j.compact(&[(2, "b".into())]).unwrap();
            j.append(&[(3, "c".into())]).unwrap();
        }
        let (_, entries) = open(dir.path());
        assert_eq!(entries, vec![(2, "b".into()), (3, "c".into())]);
    }

    #[test]
    fn an_unreadable_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, _) = Journal::<String>::open(dir.path(), Arc::default()).unwrap();
            j.append(&["text".to_string()]).unwrap();
        }
        // The same frames read as another type do not decode.
        assert!(Journal::<(u32, u32)>::open(dir.path(), Arc::default()).is_err());
    }
}
