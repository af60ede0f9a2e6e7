//! What git says about the workspace (through git2): the commit, whether the tree is
//! dirty (and a digest of what differs, so a dirty build has a version of its own), and the
//! commit time (used as the build time so rebuilds are byte-identical).

use crate::error::{BenchError, Result};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct GitInfo {
    pub commit: String,
    pub dirty: bool,
    /// For a dirty tree, the first 8 hex digits of a SHA-256 over every changed path, its
    /// status and its working-tree bytes (like `git describe --dirty`, plus what differs):
    /// two different dirty trees never share a version, the same edit always gives the same.
    pub dirty_digest: Option<String>,
    /// Commit time, seconds since the epoch.
    pub time_s: i64,
}

pub fn describe(root: &Path) -> Result<GitInfo> {
    let repo = git2::Repository::discover(root).map_err(|e| {
        BenchError::env(format!("{} is not in a git repository", root.display()))
            .cause(e.message().to_string())
            .hint("bench records the commit of every build: run it in a clone of the project")
    })?;
    let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(|e| {
        BenchError::env("the repository has no commit yet").cause(e.message().to_string()).hint("commit first")
    })?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false).recurse_untracked_dirs(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| BenchError::env("git status failed").cause(e.message().to_string()))?;
    let workdir = repo.workdir().unwrap_or(root).to_path_buf();
    let mut changed: Vec<(String, u32)> =
        statuses.iter().filter_map(|s| s.path().map(|p| (p.to_string(), s.status().bits()))).collect();
    changed.sort();
    let dirty_digest = (!changed.is_empty()).then(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (path, status) in &changed {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(status.to_le_bytes());
            // A deleted or unreadable path hashes as its name and status only.
            if let Ok(bytes) = std::fs::read(workdir.join(path)) {
                h.update(Sha256::digest(&bytes));
            }
        }
        h.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect::<String>()
    });
    Ok(GitInfo {
        commit: head.id().to_string(),
        dirty: dirty_digest.is_some(),
        dirty_digest,
        time_s: head.time().seconds(),
    })
}

impl GitInfo {
    /// The commit part of a version: `g` and seven hex digits, with `.dirty.DIGEST` for a
    /// dirty tree.
    pub fn version_tag(&self) -> String {
        let short = &self.commit[..7.min(self.commit.len())];
        match &self.dirty_digest {
            Some(d) => format!("g{short}.dirty.{d}"),
            None => format!("g{short}"),
        }
    }
}

/// RFC 3339 UTC for seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_778_176_090), "2026-05-07T17:48:10Z");
    }
}
