//! The workspace lock: one process at a time writes `.bench/` state and `dist/` (the
//! signing key, the build cache, packages). Another `bench build` waits, saying for whom.
//! An advisory `flock` on `.bench/lock`, released when the process ends however it ends.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::ui::Ui;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Held until dropped.
pub struct WorkspaceLock {
    _file: std::fs::File,
}

/// Takes the workspace lock for `what` (e.g. "bench build --variant c-v2"), waiting for
/// another holder and naming it.
pub fn acquire(root: &Path, what: &str, ui: &Ui) -> Result<WorkspaceLock> {
    let dir = crate::workspace::ledger::state_dir(root);
    std::fs::create_dir_all(&dir).or_env(format!("cannot create {}", dir.display()))?;
    let p = dir.join("lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .or_env(format!("cannot open {}", p.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            ui.status(format!("waiting for the workspace lock ({})", holder.trim()));
            f.lock().or_env(format!("cannot lock {}", p.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(BenchError::env(format!("cannot lock {}", p.display())).cause(e.to_string()));
        }
    }
    // Who holds it, for the next one who waits (the lock, not this text, is what counts).
    let _ = f.set_len(0).and_then(|_| f.rewind()).and_then(|_| writeln!(f, "pid {}: {what}", std::process::id()));
    Ok(WorkspaceLock { _file: f })
}
