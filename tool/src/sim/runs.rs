//! Recorded stress runs: every `bench stress` (one seed, a swarm, or a comparison) is kept
//! under `.bench/stress/runs/N.json` with its id, so a PR or a baseline note names the run
//! it took its figures from (and its ramp and seeds) instead of "whatever ran last".

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What kind of run a record holds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// One seed: `report` is the simulator's report.
    Single,
    /// A swarm: `summary` holds the failure probability and kinds.
    Swarm,
    /// `--against`: `comparison` holds every figure's spread and the predictions checked.
    Against,
    /// `bench measure`: `summary` holds each variant's cost per RX packet, measured and
    /// modelled, and their ratios.
    Measure,
}

/// One recorded run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    pub kind: RunKind,
    pub variant: String,
    pub against: Option<String>,
    pub ramp: String,
    pub reps: u32,
    /// First and last seed (the same for one seed).
    pub seeds: (u64, u64),
    pub faults: Vec<String>,
    pub clean: bool,
    pub report: Option<serde_json::Value>,
    pub summary: Option<serde_json::Value>,
    pub comparison: Option<serde_json::Value>,
}

fn dir(root: &Path) -> PathBuf {
    crate::workspace::ledger::state_dir(root).join("stress").join("runs")
}

/// Records `rec` under the next free id (claimed with create-new, so parallel runs never
/// share one) and returns the id.
pub fn record(root: &Path, mut rec: RunRecord) -> Result<u64> {
    let d = dir(root);
    std::fs::create_dir_all(&d).or_env(format!("cannot create {}", d.display()))?;
    let mut id = ids(root)?.last().copied().unwrap_or(0) + 1;
    loop {
        let p = d.join(format!("{id}.json"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(_) => {
                rec.id = id;
                let text = serde_json::to_string_pretty(&rec).expect("a record serialises") + "\n";
                let tmp = d.join(format!(".{id}.json.tmp"));
                crate::fsutil::write_synced(&tmp, text.as_bytes(), false)?;
                std::fs::rename(&tmp, &p).or_env(format!("cannot write {}", p.display()))?;
                return Ok(id);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => id += 1,
            Err(e) => return Err(BenchError::env(format!("cannot create {}", p.display())).cause(e.to_string())),
        }
    }
}

/// The recorded ids, ascending.
pub fn ids(root: &Path) -> Result<Vec<u64>> {
    let d = dir(root);
    let mut ids: Vec<u64> = match std::fs::read_dir(&d) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    ids.sort_unstable();
    Ok(ids)
}

/// Run `id`; an unknown id is an error listing the recorded ones.
pub fn load(root: &Path, id: u64) -> Result<RunRecord> {
    let p = dir(root).join(format!("{id}.json"));
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(_) => {
            let known = ids(root)?;
            let hint = if known.is_empty() {
                "no stress run is recorded in this workspace yet: run `bench stress --variant V` first".to_string()
            } else {
                format!(
                    "recorded runs: {}",
                    known.iter().rev().take(20).map(|i| format!("#{i}")).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(BenchError::usage(format!("no stress run #{id}")).hint(hint));
        }
    };
    serde_json::from_str(&text).map_err(|e| {
        BenchError::usage(format!("{}:{}:{}: not a stress run record", p.display(), e.line(), e.column()))
            .cause(e.to_string())
            .hint("records are written by `bench stress`; remove a damaged one")
    })
}

impl RunRecord {
    /// A record to fill in: no report, summary or comparison yet; `record` gives the id.
    pub fn new(
        kind: RunKind,
        variant: &str,
        ramp: &str,
        reps: u32,
        seeds: (u64, u64),
        faults: Vec<String>,
        clean: bool,
    ) -> RunRecord {
        RunRecord {
            id: 0,
            kind,
            variant: variant.to_string(),
            against: None,
            ramp: ramp.to_string(),
            reps,
            seeds,
            faults,
            clean,
            report: None,
            summary: None,
            comparison: None,
        }
    }

    /// `ramp R x N, seed S` or `seeds A..B`, for footers and headings.
    pub fn describe(&self) -> String {
        let seeds = if self.seeds.0 == self.seeds.1 {
            format!("seed {}", self.seeds.0)
        } else {
            format!("seeds {}..{}", self.seeds.0, self.seeds.1)
        };
        if self.kind == RunKind::Measure {
            return format!("run #{}: bench measure, callgrind, ramp {}, {seeds}", self.id, self.ramp);
        }
        let faults = if self.faults.is_empty() { String::new() } else { format!(", faults {}", self.faults.join(",")) };
        format!("run #{}: ramp {} x{}, {seeds}{faults}", self.id, self.ramp, self.reps)
    }
}
