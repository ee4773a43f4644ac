//! Writing the campaigns folder: uploads and deletes that a crash can never leave
//! half done.
//!
//! One campaign is one `{id}.json`. A change of one or many campaigns is written as a
//! set, all or nothing, even across a crash:
//!
//! 1. every new document goes into a staging folder `.staging-<nonce>/` and is fsynced;
//! 2. a `COMMIT` marker is written there and fsynced: from now on the change happens;
//! 3. each document is renamed into place (atomic per file), the folder fsynced, and
//!    the staging folder removed.
//!
//! [`CampaignFolder::recover`] (at start, before the folder is loaded) finishes a
//! committed set and discards an uncommitted one. Every file is thus either its old or
//! its new version, and a batch is either entirely old or entirely new. Hidden names
//! (`.staging-*`, `.deleted/`) are skipped by the folder loader.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const STAGING_PREFIX: &str = ".staging-";
const COMMIT: &str = "COMMIT";
/// Where deleted campaigns' files go.
pub const DELETED: &str = ".deleted";

/// The campaigns folder, for writing.
#[derive(Clone, Debug)]
pub struct CampaignFolder {
    dir: PathBuf,
}

/// A file's content before a change, to put back if the change must be undone.
#[derive(Debug)]
pub struct Previous {
    id: String,
    content: Option<Vec<u8>>,
}

impl CampaignFolder {
    pub fn new(dir: &Path) -> CampaignFolder {
        CampaignFolder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Finishes any committed change a crash interrupted and discards uncommitted ones.
    /// Returns how many staged sets were finished.
    pub fn recover(&self) -> io::Result<usize> {
        let mut finished = 0;
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with(STAGING_PREFIX) || !path.is_dir() {
                continue;
            }
            if path.join(COMMIT).exists() {
                self.move_into_place(&path)?;
                finished += 1;
                tracing::warn!(staging = %path.display(), "finished a campaign change a crash interrupted");
            } else {
                tracing::warn!(staging = %path.display(), "discarded an uncommitted campaign change");
            }
            fs::remove_dir_all(&path)?;
        }
        sync_dir(&self.dir)?;
        Ok(finished)
    }

    /// Writes `documents` (id, bytes) as one all-or-nothing set. Returns what each file
    /// held before, for [`CampaignFolder::undo`].
    pub fn write_set(&self, documents: &[(String, Vec<u8>)]) -> io::Result<Vec<Previous>> {
        fs::create_dir_all(&self.dir)?;
        let mut previous = Vec::with_capacity(documents.len());
        for (id, _) in documents {
            let content = match fs::read(self.path_of(id)) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            previous.push(Previous {
                id: id.clone(),
                content,
            });
        }
        let nonce = crate::secrets::hex(&rand::random::<[u8; 8]>());
        let staging = self.dir.join(format!("{STAGING_PREFIX}{nonce}"));
        let staged = (|| {
            fs::create_dir(&staging)?;
            for (id, bytes) in documents {
                write_synced(&staging.join(format!("{id}.json")), bytes)?;
            }
            sync_dir(&staging)?;
            write_synced(&staging.join(COMMIT), b"")?;
            sync_dir(&staging)
        })();
        if let Err(e) = staged {
            // Not committed: as if nothing happened.
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        self.move_into_place(&staging)?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&staging)?;
        Ok(previous)
    }

    /// Puts back what [`CampaignFolder::write_set`] replaced (after a later step of the
    /// change failed). Best effort, file by file: each file is atomic.
    pub fn undo(&self, previous: &[Previous]) -> io::Result<()> {
        for p in previous {
            match &p.content {
                Some(bytes) => crate::secrets::write_atomic(&self.path_of(&p.id), bytes)?,
                None => match fs::remove_file(self.path_of(&p.id)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
            }
        }
        sync_dir(&self.dir)
    }

    /// Moves campaign `id`'s file to `.deleted/{id}.{at_ms}.json`; returns where.
    pub fn delete(&self, id: &str, at_ms: i64) -> io::Result<PathBuf> {
        let deleted = self.dir.join(DELETED);
        fs::create_dir_all(&deleted)?;
        let to = deleted.join(format!("{id}.{at_ms}.json"));
        fs::rename(self.path_of(id), &to)?;
        sync_dir(&deleted)?;
        sync_dir(&self.dir)?;
        Ok(to)
    }

    /// Undoes [`CampaignFolder::delete`].
    pub fn undelete(&self, id: &str, moved_to: &Path) -> io::Result<()> {
        fs::rename(moved_to, self.path_of(id))?;
        sync_dir(&self.dir)
    }

    fn move_into_place(&self, staging: &Path) -> io::Result<()> {
        for entry in fs::read_dir(staging)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".json") {
                fs::rename(&path, self.dir.join(name))?;
            }
        }
        sync_dir(&self.dir)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_set_replaces_files_and_can_be_undone() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CampaignFolder::new(dir.path());
        fs::write(folder.path_of("a"), b"old a").unwrap();
        let prev = folder
            .write_set(&[
                ("a".into(), b"new a".to_vec()),
                ("b".into(), b"new b".to_vec()),
            ])
            .unwrap();
        assert_eq!(fs::read(folder.path_of("a")).unwrap(), b"new a");
        assert_eq!(files(dir.path()), ["a.json", "b.json"], "no staging left");
        folder.undo(&prev).unwrap();
        assert_eq!(fs::read(folder.path_of("a")).unwrap(), b"old a");
        assert!(!folder.path_of("b").exists());
    }

    #[test]
    fn recovery_finishes_committed_sets_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CampaignFolder::new(dir.path());
        fs::write(folder.path_of("a"), b"old a").unwrap();
        // A crash after the commit marker, one file already moved.
        let done = dir.path().join(".staging-1");
        fs::create_dir(&done).unwrap();
        fs::write(done.join("b.json"), b"new b").unwrap();
        fs::write(done.join(COMMIT), b"").unwrap();
        fs::write(folder.path_of("c"), b"new c").unwrap();
        // A crash before it.
        let torn = dir.path().join(".staging-2");
        fs::create_dir(&torn).unwrap();
        fs::write(torn.join("a.json"), b"half").unwrap();

        assert_eq!(folder.recover().unwrap(), 1);
        assert_eq!(files(dir.path()), ["a.json", "b.json", "c.json"]);
        assert_eq!(fs::read(folder.path_of("a")).unwrap(), b"old a");
        assert_eq!(fs::read(folder.path_of("b")).unwrap(), b"new b");
    }

    #[test]
    fn deletes_move_the_file_aside() {
        let dir = tempfile::tempdir().unwrap();
        let folder = CampaignFolder::new(dir.path());
        fs::write(folder.path_of("a"), b"a").unwrap();
        let moved = folder.delete("a", 42).unwrap();
        assert_eq!(moved, dir.path().join(DELETED).join("a.42.json"));
        assert!(!folder.path_of("a").exists());
        folder.undelete("a", &moved).unwrap();
        assert!(folder.path_of("a").exists());
    }
}
