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

/// Appends a record, giving it the next id. The ledger file is locked from reading the
/// last id to the end of the write, so parallel appends never share an id.
pub fn append(root: &Path, mut record: BuildRecord) -> Result<BuildRecord> {
    use std::io::Read;
    let p = path(root);
    std::fs::create_dir_all(p.parent().expect("has a parent")).or_env(format!("cannot create {}", p.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&p)
        .or_env(format!("cannot open {}", p.display()))?;
    f.lock().or_env(format!("cannot lock {}", p.display()))?;
    let mut text = String::new();
    f.read_to_string(&mut text).or_env(format!("cannot read {}", p.display()))?;
    let last = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find_map(|l| serde_json::from_str::<BuildRecord>(l).ok())
        .map_or(0, |r| r.id);
    record.id = last + 1;
    // A torn last line (a crash mid-append) was never a record: cut it off, so this
    // record starts a line of its own.
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        f.set_len(complete as u64).or_env(format!("cannot repair {}", p.display()))?;
    }
    let mut line = serde_json::to_string(&record).expect("a record serialises");
    line.push('\n');
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
        // The next append cuts the torn fragment off and starts its own line.
        assert_eq!(append(dir.path(), rec("d")).unwrap().id, 3);
        let all = read(dir.path()).unwrap();
        assert_eq!(all.iter().map(|r| (r.id, r.variant.as_str())).collect::<Vec<_>>(), [(1, "b"), (2, "c"), (3, "d")]);
    }

    #[test]
    fn parallel_appends_never_share_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || (0..10).map(|_| append(&root, rec("b")).unwrap().id).collect::<Vec<_>>())
            })
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=80).collect::<Vec<u64>>());
        assert_eq!(read(&root).unwrap().len(), 80);
    }
}
