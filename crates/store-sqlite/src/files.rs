//! The store's files are the vault's alone: password hashes, sealed secrets and the audit log live
//! there. The database is created 0600 before SQLite opens it (SQLite gives its WAL and
//! shared-memory files the database's mode), the data dir must be 0700, and a store that another
//! user of the machine could read is refused with the command that fixes it.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Refuses `path` (the data dir, or the database) if group or others have any access to it.
pub fn refuse_if_open(path: &Path, fix: &'static str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Exposed {
            path: path.display().to_string(),
            mode,
            fix,
        });
    }
    Ok(())
}

/// Creates an empty database file with mode 0600 if there is none, so that nothing SQLite creates
/// next to it is ever readable by others, whatever the umask.
pub fn create_private_file(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| io_error(path, e))
}

/// SQLite's companions of a database file.
pub fn sidecars(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Sets an existing file to 0600 if others can reach it (a WAL left by an older version).
pub fn tighten(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, e)),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(path, e))?;
    }
    Ok(())
}
