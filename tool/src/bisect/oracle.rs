//! Bisect oracles: tell good from bad for one driver tree and feature set without hardware.
//! `audit` (the contract audit fails), `stress[:KEY=VALUE;...]` (the simulator records a
//! WARN, wedge or dead link, `min-mib` is not reached, or an error path's probe of
//! `probes=` fails; a tree whose simulator has no probes is skipped), `cmd:COMMAND` (exit 0 good, 125
//! skip, 1-127 bad, as with `git bisect run`; `{variant}`, `{srcversion}`, `{tree}` and
//! `{package}` are replaced). Results are cached by srcversion and oracle.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::sim::ramp::{self, Stage};
use crate::source::materialise::{self, CfgSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug, PartialEq)]
pub enum Oracle {
    Audit,
    /// The simulator over a ramp: bad when any seed of `seeds` (the runner's seed when
    /// `None`) WARNs, wedges or dies, or a stage stays below `min_mib_per_s`.
    Stress {
        stages: Vec<Stage>,
        seeds: Option<(u64, u64)>,
        faults: Vec<String>,
        min_mib_per_s: Option<f64>,
        /// Error paths' probes run after the seeds (`probes=all` or names).
        probes: Vec<String>,
    },
    Cmd(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Good,
    Bad,
    Skip,
}

impl Oracle {
    pub fn parse(text: &str) -> Result<Oracle> {
        let hint = "oracles: audit | stress[:ramp=4:5m;seed=3|seeds=1..20;faults=slow-air,stall;min-mib=1.2;probes=all|hang,late-confirm] | cmd:'COMMAND {variant} {srcversion} {tree} {package}'";
        if text == "audit" {
            return Ok(Oracle::Audit);
        }
        if let Some(cmd) = text.strip_prefix("cmd:") {
            if cmd.trim().is_empty() {
                return Err(BenchError::usage("cmd: oracle without a command").hint(hint));
            }
            return Ok(Oracle::Cmd(cmd.to_string()));
        }
        if text == "stress" || text.starts_with("stress:") {
            let mut stages = ramp::parse("4:5m")?;
            let mut seeds = None;
            let mut faults = Vec::new();
            let mut min = None;
            let mut probes = Vec::new();
            // Each option once (`seed` and `seeds` are one): a second one would silently win.
            let mut given: Vec<&str> = Vec::new();
            for opt in text.strip_prefix("stress:").unwrap_or("").split(';').filter(|o| !o.is_empty()) {
                let (k, v) = opt.split_once('=').ok_or_else(|| {
                    BenchError::usage(format!("stress oracle option `{opt}` is not KEY=VALUE")).hint(hint)
                })?;
                let slot = if k == "seeds" { "seed" } else { k };
                if given.contains(&slot) {
                    return Err(BenchError::usage(format!(
                        "stress oracle option `{k}` is given twice{}",
                        if slot == "seed" { " (`seed` and `seeds` are one option)" } else { "" }
                    ))
                    .hint(hint));
                }
                given.push(slot);
                match k {
                    "ramp" => stages = ramp::parse(v)?,
                    "seed" => {
                        let n: u64 = v.parse().map_err(|_| {
                            BenchError::usage(format!("stress oracle seed `{v}` is not a whole number")).hint(hint)
                        })?;
                        seeds = Some((n, n));
                    }
                    "seeds" => {
                        seeds = Some(
                            crate::sim::stress::parse_seeds(v)
                                .map_err(|e| BenchError::usage(format!("stress oracle seeds: {e}")).hint(hint))?,
                        )
                    }
                    "faults" => {
                        for f in v.split(',').filter(|f| !f.is_empty()) {
                            if !crate::sim::stress::FAULTS.contains(&f) {
                                return Err(BenchError::usage(format!("stress oracle fault `{f}` is not a fault"))
                                    .hint(format!("faults: {}", crate::sim::stress::FAULTS.join(", "))));
                            }
                            faults.push(f.to_string());
                        }
                    }
                    "probes" => {
                        let names: Vec<&str> = crate::sim::stress::PROBES.iter().map(|p| p.0).collect();
                        for p in v.split(',').filter(|p| !p.is_empty()) {
                            if p == "all" {
                                probes.extend(names.iter().map(|n| n.to_string()));
                            } else if names.contains(&p) {
                                probes.push(p.to_string());
                            } else {
                                return Err(BenchError::usage(format!("stress oracle probe `{p}` is not a probe"))
                                    .hint(format!("probes: all, {}", names.join(", "))));
                            }
                        }
                    }
                    "min-mib" => {
                        let m: f64 = v.parse().map_err(|_| {
                            BenchError::usage(format!("stress oracle min-mib `{v}` is not a number")).hint(hint)
                        })?;
                        if !(m.is_finite() && m > 0.0 && m <= 100.0) {
                            return Err(BenchError::usage(format!("stress oracle min-mib `{v}` is out of range"))
                                .hint("a throughput in MiB/s above 0 and at most 100"));
                        }
                        min = Some(m);
                    }
                    _ => return Err(BenchError::usage(format!("unknown stress oracle option `{k}`")).hint(hint)),
                }
            }
            return Ok(Oracle::Stress { stages, seeds, faults, min_mib_per_s: min, probes });
        }
        Err(BenchError::usage(format!("unknown oracle `{text}`")).hint(hint))
    }
}

/// One stress oracle run: the ramp, the seeds, the faults and the throughput floor.
struct SimRun<'a> {
    stages: &'a [Stage],
    seeds: (u64, u64),
    faults: &'a [String],
    min: Option<f64>,
    probes: &'a [String],
}

/// What is under test: a driver source tree and a feature set.
pub struct Subject<'a> {
    pub label: String,
    pub driver_src: &'a Path,
    pub features: BTreeSet<String>,
    pub known: &'a BTreeSet<String>,
    /// The package directory, when the subject is a named variant built by bench.
    pub package: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub srcversion: String,
    pub detail: String,
}

pub struct Runner {
    pub oracle: Oracle,
    pub oracle_text: String,
    pub seed: u64,
    pub workdir: PathBuf,
    cache: BTreeMap<String, Verdict>,
    cache_file: PathBuf,
    /// Off for replays: every step is run again.
    pub use_cache: bool,
    /// `rustc -V` (part of the cache key).
    rustc: String,
}

/// SHA-256 (16 hex digits) over every file under `dir`, by relative path, in order.
fn tree_digest(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).or_env(format!("cannot read {}", d.display()))? {
            let p = e.or_env(format!("cannot read {}", d.display()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.strip_prefix(dir).unwrap_or(f).to_string_lossy().as_bytes());
        h.update([0]);
        h.update(Sha256::digest(std::fs::read(f).or_env(format!("cannot read {}", f.display()))?));
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

impl Runner {
    pub fn new(root: &Path, oracle_text: &str, seed: u64) -> Result<Runner> {
        let oracle = Oracle::parse(oracle_text)?;
        let workdir = root.join("target").join("bench-bisect");
        let cache_file = crate::workspace::ledger::state_dir(root).join("bisect-cache.json");
        let cache = std::fs::read(&cache_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .arg("-V")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().replace(' ', "_"))
            .unwrap_or_default();
        Ok(Runner {
            oracle,
            oracle_text: oracle_text.to_string(),
            seed,
            workdir,
            cache,
            cache_file,
            use_cache: true,
            rustc,
        })
    }

    /// The cache key: everything the oracle builds and runs. The driver's srcversion
    /// leaves out the simulator (driver/src/sim, the sim program) and the toolchain, so
    /// the key also holds a digest of every file of the tree and `rustc -V`.
    fn key(&self, srcversion: &str, tree_digest: &str) -> String {
        format!("{srcversion} tree={tree_digest} rustc={} {} seed={}", self.rustc, self.oracle_text, self.seed)
    }

    /// Tests one subject. Returns the verdict and whether it came from the cache.
    pub fn test(&mut self, s: &Subject) -> Result<(Verdict, bool)> {
        let cfg = CfgSet { enabled: s.features.clone(), known: s.known.clone() };
        let tree = match materialise::crate_tree(s.driver_src, &cfg) {
            Ok(t) => t,
            Err(e) => {
                return Ok((
                    Verdict {
                        outcome: Outcome::Skip,
                        srcversion: "-".into(),
                        detail: format!("does not materialise: {}", e.message),
                    },
                    false,
                ));
            }
        };
        let (flat, srcversion) = crate::package::flat_sources(&tree)?;
        let key = self.key(&srcversion, &tree_digest(s.driver_src)?);
        if let Some(v) = self.cache.get(&key).filter(|_| self.use_cache) {
            return Ok((v.clone(), true));
        }
        let (outcome, detail) = match &self.oracle {
            Oracle::Audit => {
                // The audit reads the crate as the compiler builds it: the tree's own
                // driver crate with the subject's features.
                let features: Vec<String> = s.features.iter().cloned().collect();
                let crate_dir = s.driver_src.parent().unwrap_or(s.driver_src);
                let work = self.workdir.join("audit");
                match crate::source::audit::audit_crate(&crate::source::audit::CrateRef {
                    dir: crate_dir,
                    features: &features,
                    work: &work,
                }) {
                    Ok(r) if r.clean() => (Outcome::Good, "audit clean".to_string()),
                    Ok(r) => (
                        Outcome::Bad,
                        format!("{} violation(s), first: {}", r.violations.len(), r.violations[0].message),
                    ),
                    Err(e) => (Outcome::Skip, format!("audit could not build the crate: {}", e.message)),
                }
            }
            Oracle::Stress { stages, seeds, faults, min_mib_per_s, probes } => {
                let run = SimRun {
                    stages,
                    seeds: seeds.unwrap_or((self.seed, self.seed)),
                    faults,
                    min: *min_mib_per_s,
                    probes,
                };
                self.stress(s, &srcversion, &run)?
            }
            Oracle::Cmd(cmd) => self.cmd(s, cmd, &srcversion, &flat)?,
        };
        let v = Verdict { outcome, srcversion, detail };
        self.cache.insert(key, v.clone());
        if let Some(dir) = self.cache_file.parent() {
            let _ = std::fs::create_dir_all(dir);
            let _ = crate::fsutil::write_synced(
                &self.cache_file.with_extension("tmp"),
                &serde_json::to_vec_pretty(&self.cache).expect("serialises"),
                false,
            )
            .and_then(|_| {
                std::fs::rename(self.cache_file.with_extension("tmp"), &self.cache_file)
                    .map_err(|e| BenchError::env(e.to_string()))
            });
        }
        Ok((v, false))
    }

    /// The stress oracle: builds the candidate tree's simulator and runs the ramp. Long
    /// because a tree from another commit needs its own manifest and lock file.
    fn stress(&self, s: &Subject, srcversion: &str, run: &SimRun) -> Result<(Outcome, String)> {
        let mut enabled = s.features.clone();
        enabled.insert("sim".into());
        let tree = match materialise::crate_tree(s.driver_src, &CfgSet { enabled, known: s.known.clone() }) {
            Ok(t) => t,
            Err(e) => return Ok((Outcome::Skip, format!("simulator does not materialise: {}", e.message))),
        };
        // The simulator is built once per materialised tree (with its program) and kept.
        let sim_key = {
            let mut text = String::new();
            for o in &tree {
                text += &format!("{}\0{}\0", o.rel_path.display(), crate::fsutil::sha256_hex(o.text.as_bytes()));
            }
            let prog = std::fs::read(s.driver_src.join("bin").join("bes2600-sim.rs")).unwrap_or_default();
            text += &crate::fsutil::sha256_hex(&prog);
            text += &self.rustc;
            crate::fsutil::sha256_hex(text.as_bytes())[..16].to_string()
        };
        let kept = self.workdir.join("sims").join(format!("bes2600-sim-{sim_key}"));
        if kept.is_file() {
            return self.run_sim(&kept, s, run);
        }
        let dir = self.workdir.join(format!("src-{srcversion}"));
        let _ = std::fs::remove_dir_all(&dir);
        materialise::write_crate(
            &dir,
            &tree,
            "[dependencies]\ncorosensei = \"0.3\"\n\n[[bin]]\nname = \"bes2600-sim\"\npath = \"src/bin/bes2600-sim.rs\"\n",
        )?;
        let bin = s.driver_src.join("bin").join("bes2600-sim.rs");
        std::fs::create_dir_all(dir.join("src/bin")).map_err(|e| BenchError::env(e.to_string()))?;
        if std::fs::copy(&bin, dir.join("src/bin/bes2600-sim.rs")).is_err() {
            return Ok((Outcome::Skip, "no simulator program in this tree".into()));
        }
        let root = self.workdir.parent().and_then(|p| p.parent()).unwrap_or(Path::new("."));
        let _ = std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = self.workdir.join("target");
        let build = Command::new(&cargo)
            .args(["build", "--quiet", "--release", "--offline"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .or_env("cannot run cargo")?;
        if !build.status.success() {
            return Ok((Outcome::Skip, "the simulator does not build".into()));
        }
        std::fs::create_dir_all(kept.parent().expect("has a parent")).or_env("cannot keep the simulator")?;
        let tmp = kept.with_extension("tmp");
        std::fs::copy(target.join("release").join("bes2600-sim"), &tmp)
            .and_then(|_| std::fs::rename(&tmp, &kept))
            .or_env(format!("cannot keep the simulator as {}", kept.display()))?;
        self.run_sim(&kept, s, run)
    }

    /// Runs a built simulator over the ramp, seed by seed in order on all cores, up to the
    /// first that fails: that seed is the verdict's detail (the seeds after it are not
    /// run: on a bad step a swarm costs about as many runs as its first failing seed).
    fn run_sim(&self, exe: &Path, s: &Subject, run: &SimRun) -> Result<(Outcome, String)> {
        let runner =
            crate::sim::stress::Runner { exe, variant: &s.label, stages: run.stages, reps: 1, faults: run.faults };
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut reports = Vec::new();
        for (seed, r) in runner.run_seeds_to_first_failure(run.seeds, jobs) {
            match r {
                Ok(r) if !r.data.clean => {
                    let of = if run.seeds.0 < run.seeds.1 {
                        format!(" (the first of seeds {}..{} to fail)", run.seeds.0, run.seeds.1)
                    } else {
                        String::new()
                    };
                    return Ok((Outcome::Bad, format!("seed {seed}: {}{of}", r.first_failure())));
                }
                Ok(r) => reports.push((seed, r)),
                Err(e) => return Ok((Outcome::Skip, e.message)),
            }
        }
        let n = reports.len();
        if let Some(min) = run.min {
            for (seed, report) in &reports {
                if let Some(st) = report.data.stages.iter().find(|st| st.observed_mib_per_s < min) {
                    let got = st.observed_mib_per_s;
                    return Ok((
                        Outcome::Bad,
                        format!("seed {seed}: stage {} observed {got:.3} MiB/s < {min}", st.stage),
                    ));
                }
            }
        }
        for name in run.probes {
            match runner.probe(name, run.seeds.0) {
                Ok(p) if p.clean => {}
                Ok(p) => return Ok((Outcome::Bad, format!("probe {name}: {}", p.detail))),
                // A simulator from before the probes cannot answer: not testable.
                Err(e) => return Ok((Outcome::Skip, format!("probe {name}: {}", e.message))),
            }
        }
        let seeds =
            if n > 1 { format!("seeds {}..{}", run.seeds.0, run.seeds.1) } else { format!("seed {}", run.seeds.0) };
        let probed =
            if run.probes.is_empty() { String::new() } else { format!(", {} probes answered", run.probes.len()) };
        Ok((Outcome::Good, format!("{seeds}: clean{probed}")))
    }

    fn cmd(
        &self,
        s: &Subject,
        cmd: &str,
        srcversion: &str,
        flat: &[crate::package::PkgFile],
    ) -> Result<(Outcome, String)> {
        let tree_dir = self.workdir.join(format!("tree-{srcversion}"));
        let _ = std::fs::remove_dir_all(&tree_dir);
        std::fs::create_dir_all(&tree_dir).or_env(format!("cannot create {}", tree_dir.display()))?;
        for f in flat {
            crate::fsutil::write_synced(&tree_dir.join(&f.path), &f.bytes, false)?;
        }
        let mut text = cmd
            .replace("{variant}", &s.label)
            .replace("{srcversion}", srcversion)
            .replace("{tree}", &tree_dir.display().to_string());
        if text.contains("{package}") {
            match &s.package {
                Some(p) => text = text.replace("{package}", &p.display().to_string()),
                None => {
                    return Err(BenchError::usage("{package} is only available when bisecting variants")
                        .hint("use {tree} for the materialised sources"))
                }
            }
        }
        // The command's output goes to stderr: bisect's stdout is its conclusion (or JSON).
        let status =
            Command::new("sh").arg("-c").arg(&text).stdout(std::io::stderr()).status().map_err(|e| {
                BenchError::env(format!("the oracle command cannot start: {text}")).cause(e.to_string())
            })?;
        match status.code() {
            Some(0) => Ok((Outcome::Good, "exit 0".into())),
            Some(125) => Ok((Outcome::Skip, "exit 125".into())),
            Some(127) => Err(BenchError::usage(format!("the oracle command cannot start (exit 127): {text}"))
                .hint("check the command name and PATH; exit 1-126 means bad, 125 skip, 0 good")),
            Some(c) if (1..=126).contains(&c) => Ok((Outcome::Bad, format!("exit {c}"))),
            other => Err(BenchError::env(format!("the oracle command ended abnormally ({other:?}): {text}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oracles_and_rejects_bad_ones() {
        assert_eq!(Oracle::parse("audit").unwrap(), Oracle::Audit);
        let Oracle::Stress { stages, seeds, min_mib_per_s, .. } =
            Oracle::parse("stress:ramp=1:1m,4:2m;seed=7;min-mib=1.2").unwrap()
        else {
            panic!()
        };
        assert_eq!((stages.len(), seeds, min_mib_per_s), (2, Some((7, 7)), Some(1.2)));
        let Oracle::Stress { seeds, faults, .. } = Oracle::parse("stress:seeds=1..20;faults=slow-air,stall").unwrap()
        else {
            panic!("a stress oracle")
        };
        assert_eq!((seeds, faults), (Some((1, 20)), vec!["slow-air".to_string(), "stall".to_string()]));
        let Oracle::Stress { probes, .. } = Oracle::parse("stress:probes=hang,late-confirm").unwrap() else {
            panic!("a stress oracle")
        };
        assert_eq!(probes, vec!["hang".to_string(), "late-confirm".to_string()]);
        let Oracle::Stress { probes, .. } = Oracle::parse("stress:probes=all").unwrap() else { panic!() };
        assert_eq!(probes.len(), crate::sim::stress::PROBES.len());
        assert_eq!(Oracle::parse("cmd:true").unwrap(), Oracle::Cmd("true".into()));
        for bad in [
            "",
            "sress",
            "stress:speed=1",
            "stress:seed=x",
            "cmd:",
            "stress:seeds=5..1",
            "stress:faults=rain",
            "stress:probes=meteor",
            "stress:min-mib=nan",
            "stress:ramp=0.001:1m",
        ] {
            assert!(Oracle::parse(bad).is_err(), "{bad}");
        }
        for (twice, says) in [
            ("stress:seeds=1..3;seeds=1..4", "`seeds` is given twice (`seed` and `seeds` are one option)"),
            ("stress:seed=3;seeds=1..4", "`seeds` is given twice"),
            ("stress:ramp=4:1m;faults=stall;ramp=8:1m", "`ramp` is given twice"),
            ("stress:min-mib=1;min-mib=2", "`min-mib` is given twice"),
        ] {
            let e = Oracle::parse(twice).unwrap_err();
            assert!(e.message.contains(says), "{twice}: {}", e.message);
        }
    }
}
