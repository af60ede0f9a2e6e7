//! The build ledger: one JSON line per build in `.bench/builds.jsonl`, appended with a
//! single `write` and an fsync, so a crash leaves at most a torn last line, which reading
//! skips.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    pub id: u64,
    pub time: String,
    pub variant: String,
    pub features: Vec<String>,
    pub commit: String,
    pub dirty: bool,
    pub srcversion: String,
    pub manifest_sha256: String,
    pub key_fingerprint: String,
    pub path: String,
}

/// bench's own state: `.bench/` in the workspace, or `BENCH_STATE_DIR`.
pub fn state_dir(root: &Path) -> PathBuf {
    std::env::var_os("BENCH_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| root.join(".bench"))
}

pub fn path(root: &Path) -> PathBuf {
    state_dir(root).join("builds.jsonl")
}

pub fn read(root: &Path) -> Result<Vec<BuildRecord>> {
    let p = path(root);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BenchError::env(format!("cannot read {}", p.display())).cause(e.to_string())),
    };
    // A line without its newline is a torn append (a crash mid-write): skip it.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut out = Vec::new();
    for (n, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: BuildRecord = serde_json::from_str(line).map_err(|e| {
            BenchError::env(format!("{}:{}: not a build record", p.display(), n + 1))
                .cause(e.to_string())
                .hint("the ledger is append-only JSON lines; move the damaged file aside to start a new one")
        })?;
        out.push(r);
    }
    Ok(out)
}

/// Appends a record, giving it the next id.
pub fn append(root: &Path, mut record: BuildRecord) -> Result<BuildRecord> {
    let p = path(root);
    let existing = read(root)?;
    record.id = existing.last().map_or(1, |r| r.id + 1);
    std::fs::create_dir_all(p.parent().expect("has a parent")).or_env(format!("cannot create {}", p.display()))?;
    let mut line = serde_json::to_string(&record).expect("a record serialises");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .or_env(format!("cannot open {}", p.display()))?;
    f.write_all(line.as_bytes()).and_then(|_| f.sync_all()).or_env(format!("cannot append to {}", p.display()))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(variant: &str) -> BuildRecord {
        BuildRecord {
            id: 0,
            time: "t".into(),
            variant: variant.into(),
            features: vec![],
            commit: "c".into(),
            dirty: false,
            srcversion: "ABC".into(),
            manifest_sha256: "m".into(),
            key_fingerprint: "k".into(),
            path: "p".into(),
        }
    }

    #[test]
    fn appends_number_records_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(append(dir.path(), rec("b")).unwrap().id, 1);
        assert_eq!(append(dir.path(), rec("c")).unwrap().id, 2);
        let mut f = std::fs::OpenOptions::new().append(true).open(path(dir.path())).unwrap();
        f.write_all(b"{\"id\":3,\"var").unwrap();
        let all = read(dir.path()).unwrap();
        assert_eq!(all.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    }
}
