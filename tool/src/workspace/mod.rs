//! Finding the bench workspace: the nearest directory, from `--workspace`, `BENCH_WORKSPACE`
//! or the current directory upwards, that holds `driver/Cargo.toml`.

pub mod git;
pub mod ledger;
pub mod lock;
pub mod new_note;
pub mod notes;
pub mod variant;

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use std::path::{Path, PathBuf};

/// The `--workspace` option every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkspaceArg {
    /// The bench workspace (default: found from the current directory). Global: it may
    /// come after a subcommand too (`bench notes new --workspace W ...`).
    #[arg(long, global = true)]
    pub workspace: Option<PathBuf>,
}

impl WorkspaceArg {
    pub fn root(&self) -> Result<PathBuf> {
        find(self.workspace.as_deref())
    }
}

/// The workspace this run found: errors show its files relative to it, as a user types
/// them (`variants/c-v2.toml:12`), whatever the directory bench was started from.
static FOUND: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The workspace found by this run, if any.
pub fn found() -> Option<&'static Path> {
    FOUND.get().map(PathBuf::as_path)
}

pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
    let start = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("BENCH_WORKSPACE") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_dir().or_env("cannot read the current directory")?,
        },
    };
    let mut dir = start.as_path();
    loop {
        if dir.join("driver").join("Cargo.toml").is_file() {
            let _ = FOUND.set(dir.to_path_buf());
            return Ok(dir.to_path_buf());
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return Err(BenchError::usage(format!("no bench workspace at or above {}", start.display())).hint(
                "run bench inside the repository (the directory holding driver/ and tool/), or pass --workspace DIR",
            )),
        }
    }
}
