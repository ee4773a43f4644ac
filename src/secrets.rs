//! Per-deployment secrets kept in the data folder when the config does not give them.
//!
//! Every node of a fleet must share these (a token sealed on one node is opened on
//! another), so they are plain files an operator can copy, created once with mode 0600.

use std::io::Write;
use std::path::Path;

/// Reads a 32-byte secret stored as 64 hex characters at `path`, creating it with fresh
/// random bytes on first use.
pub fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_hex_key(text.trim()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} must hold 64 hex characters", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private(path, &hex(&key))?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Reads the admin key at `path`, creating a random one on first use. Returns the key
/// and whether it was just created (so the caller can say where it is).
pub fn load_or_create_admin_key(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 24] = rand::random();
            let key = format!("ak_{}", hex(&bytes));
            write_private(path, &key)?;
            Ok((key, true))
        }
        Err(e) => Err(e),
    }
}

/// Writes a file atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder. A crash leaves the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    atomically(path, false, |w| w.write_all(content))
}

/// Like [`write_atomic`], streaming the content through `write` (large checkpoints
/// need not be built in memory first).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    atomically(path, false, write)
}

/// Writes a secret (with a trailing newline) only its owner can read.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    write_private_atomic(path, format!("{content}\n").as_bytes())
}

/// Like [`write_atomic`], for a file only its owner can read (mode 0600).
pub fn write_private_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    atomically(path, true, |w| w.write_all(content))
}

/// Temp file (0600 when `private`), `write`, fsync, rename, fsync of the folder.
fn atomically(
    path: &Path,
    private: bool,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut w = std::io::BufWriter::new(opts.open(&tmp)?);
    write(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hex_key(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.secret");
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a, b, "the second start reads the same key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(
            load_or_create_key(&path).is_err(),
            "a damaged key is an error, not replaced"
        );
    }
}
