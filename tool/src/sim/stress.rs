//! Running the simulator: one seed with a progress bar, or a swarm of seeds on all cores
//! with the failure probability and its 95% Wilson interval.

use super::ramp::Stage;
use super::report::SimReport;
use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The simulator's faults, by the names `--faults` and the stress oracle's `faults=` take.
pub const FAULTS: [&str; 7] = ["slow-air", "stall", "stale-ctrl", "spurious-irq", "tx-heavy", "cmd-burst", "preempt"];

/// The error paths' probes: firmware failures the driver cannot survive, each injected once
/// into a short run of its own (`bes2600-sim --probe NAME`), by name and what it does.
pub const PROBES: [(&str, &str); 7] = [
    ("hang", "the firmware stops answering: the missed-interrupt report, then -EBUSY / -ETIMEDOUT"),
    ("stuck-ctrl", "the control byte sticks: 5 re-reads, then the RX work ends"),
    ("ctrl-flood", "a new batch at every read: the RX work yields after 64"),
    ("oversize-batch", "a 32 KiB batch read, then one a block longer refused unread"),
    ("malformed-batch", "messages of length 2 and 4000: reported, the frames before delivered, RX goes on"),
    ("spurious-confirm", "a confirm for nothing: the release below zero reported"),
    ("late-confirm", "a confirm after the sender gave up: -EBUSY, and taken for no other command"),
];

/// One probe's verdict, as the simulator gave it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ProbeOutcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// Passed, and nothing else broke (no BUG, no contract report, nothing before it).
    #[serde(default)]
    pub clean: bool,
}

/// `A..B`: seeds A to B inclusive.
pub fn parse_seeds(text: &str) -> std::result::Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("`{text}` is not A..B (e.g. 1..100)"))?;
    let b = b.trim_start_matches('=');
    let a: u64 = a.trim().parse().map_err(|_| format!("`{a}` is not a whole number (seeds are A..B, e.g. 1..100)"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("`{b}` is not a whole number (seeds are A..B, e.g. 1..100)"))?;
    if b < a {
        return Err(format!("`{text}`: the last seed is below the first"));
    }
    if b - a >= 10_000 {
        return Err(format!("`{text}`: at most 10000 seeds in one swarm"));
    }
    Ok((a, b))
}

/// One way to run a variant's simulator: its program, the ramp (repeated `reps` times) and
/// the faults switched on.
pub struct Runner<'a> {
    pub exe: &'a Path,
    pub variant: &'a str,
    pub stages: &'a [Stage],
    pub reps: u32,
    pub faults: &'a [String],
}

impl Runner<'_> {
    /// Virtual seconds of one run.
    pub fn total_s(&self) -> u64 {
        self.stages.iter().map(|s| s.duration_s_ceil()).sum::<u64>() * self.reps as u64
    }

    /// Runs one seed; `progress(virtual_s)` follows the run.
    pub fn run(&self, seed: u64, progress: &dyn Fn(u64)) -> Result<SimReport> {
        let mut cmd = Command::new(self.exe);
        cmd.arg("--seed").arg(seed.to_string()).arg("--progress");
        for f in self.faults {
            cmd.arg("--fault").arg(f);
        }
        for _ in 0..self.reps {
            for s in self.stages {
                cmd.arg("--stage").arg(s.sim_arg());
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .or_env(format!("cannot start {}", self.exe.display()))?;
        let mut sim_stderr = String::new();
        if let Some(err) = child.stderr.take() {
            for line in BufReader::new(err).lines().map_while(std::result::Result::ok) {
                match line.strip_prefix("progress ").and_then(|r| r.split_once(' ')) {
                    // The simulator counts the warm-up second; the ramp starts after it.
                    Some((done_ms, _)) => progress(done_ms.parse::<u64>().unwrap_or(0).saturating_sub(1000) / 1000),
                    None => {
                        sim_stderr.push_str(&line);
                        sim_stderr.push('\n');
                    }
                }
            }
        }
        let output = child.wait_with_output().or_env("the simulator did not finish")?;
        let code = output.status.code();
        if !matches!(code, Some(0) | Some(1)) {
            return Err(BenchError::env(format!(
                "the simulator for `{}` failed (status {code:?}, seed {seed})",
                self.variant
            ))
            .cause(sim_stderr.trim().to_string()));
        }
        SimReport::parse(&output.stdout, &format!("the simulator for `{}` (seed {seed})", self.variant))
    }

    /// Runs one error path's probe (its own short stage; the ramp, reps and faults are not
    /// used).
    pub fn probe(&self, name: &str, seed: u64) -> Result<ProbeOutcome> {
        let output = Command::new(self.exe)
            .args(["--seed", &seed.to_string(), "--probe", name])
            .output()
            .or_env(format!("cannot start {}", self.exe.display()))?;
        let code = output.status.code();
        if !matches!(code, Some(0) | Some(1)) {
            return Err(BenchError::env(format!(
                "the simulator for `{}` failed on probe {name} (status {code:?})",
                self.variant
            ))
            .cause(String::from_utf8_lossy(&output.stderr).trim().to_string()));
        }
        let what = format!("the simulator for `{}` (probe {name})", self.variant);
        let report = SimReport::parse(&output.stdout, &what)?;
        let mut outcome: ProbeOutcome = report
            .raw
            .get("probe")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .ok_or_else(|| BenchError::env(format!("{what} wrote no probe verdict")))?;
        outcome.clean = report.data.clean;
        if outcome.passed && !outcome.clean {
            let first = report.data.failures.iter().find(|f| f.kind == "bug" || f.kind == "contract");
            outcome.detail = match first {
                Some(f) => format!("{}; but {}: {}", outcome.detail, f.kind, f.detail),
                None => format!("{}; but the run was not clean before the failure", outcome.detail),
            };
        }
        Ok(outcome)
    }

    /// Runs every seed of `first..=last`, `jobs` at once; `tick` after each run. The result
    /// does not depend on the order the runs finished in.
    pub fn swarm(&self, (first, last): (u64, u64), jobs: usize, tick: &(dyn Fn() + Sync)) -> Result<Swarm> {
        let reports = self.run_seeds((first, last), jobs, tick)?;
        let runs = reports.iter().map(|(seed, r)| SeedOutcome::of(*seed, r)).collect();
        Ok(Swarm::of(first, last, runs))
    }

    /// The seeds of `first..=last` in order up to the first that does not run clean (a
    /// failing report or an error), `jobs` at once: the seeds before it, all clean, and
    /// it. No seed after it is started once it is known; one already running is waited
    /// for and left out. The result is the same on any number of jobs.
    pub fn run_seeds_to_first_failure(&self, seeds: (u64, u64), jobs: usize) -> Vec<(u64, Result<SimReport>)> {
        first_failure_in_order(seeds, jobs, |seed| self.run(seed, &|_| {}), |r| r.as_ref().is_ok_and(|r| r.data.clean))
    }

    /// Every seed of `first..=last`, `jobs` at once, in seed order whatever the order they
    /// finished in (the first error in seed order, if any).
    pub fn run_seeds(&self, seeds: (u64, u64), jobs: usize, tick: &(dyn Fn() + Sync)) -> Result<Vec<(u64, SimReport)>> {
        // Every run counts as clean here: no seed is left out.
        let run = |seed| {
            let r = self.run(seed, &|_| {});
            tick();
            r
        };
        first_failure_in_order(seeds, jobs, run, |_| true).into_iter().map(|(seed, r)| r.map(|r| (seed, r))).collect()
    }
}

/// One seed of a swarm.
#[derive(Clone, Debug, Serialize)]
pub struct SeedOutcome {
    pub seed: u64,
    pub clean: bool,
    pub first_failure: String,
    pub contract_violations: u64,
    /// The first WARN: its virtual time (s) and message, as the single run reports it.
    pub first_warn: Option<SeedWarn>,
    /// Each kind of failure once, with the virtual time (s) it was first seen, in order.
    pub failures: Vec<SeedFailure>,
    /// Kinds of failure, `warn` when the run only WARNed.
    #[serde(skip)]
    pub kinds: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedWarn {
    pub time_s: f64,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedFailure {
    pub kind: String,
    pub time_s: f64,
}

impl SeedOutcome {
    fn of(seed: u64, r: &SimReport) -> Self {
        let mut kinds: Vec<String> = r.data.failures.iter().map(|f| f.kind.clone()).collect();
        if kinds.is_empty() && !r.data.clean {
            kinds.push("warn".into());
        }
        SeedOutcome {
            seed,
            clean: r.data.clean,
            first_failure: r.first_failure(),
            contract_violations: r.data.contract_violations,
            first_warn: r.data.warns.first().map(|w| SeedWarn { time_s: w.time_s, message: w.message.clone() }),
            failures: r.data.failures.iter().map(|f| SeedFailure { kind: f.kind.clone(), time_s: f.time_s }).collect(),
            kinds,
        }
    }
}

/// A swarm's summary.
#[derive(Clone, Debug)]
pub struct Swarm {
    pub seeds: (u64, u64),
    pub runs: Vec<SeedOutcome>,
    pub failed: u64,
    /// The 95% Wilson interval of the failure probability, as fractions.
    pub ci95: (f64, f64),
    /// How many failures of each kind, over the failing seeds.
    pub kinds: BTreeMap<String, u64>,
}

impl Swarm {
    fn of(first: u64, last: u64, runs: Vec<SeedOutcome>) -> Self {
        let failed = runs.iter().filter(|r| !r.clean).count() as u64;
        let mut kinds = BTreeMap::new();
        for k in runs.iter().filter(|r| !r.clean).flat_map(|r| &r.kinds) {
            *kinds.entry(k.clone()).or_default() += 1;
        }
        let ci95 = wilson(failed, runs.len() as u64);
        Swarm { seeds: (first, last), runs, failed, ci95, kinds }
    }

    pub fn first_failing(&self) -> Option<&SeedOutcome> {
        self.runs.iter().find(|r| !r.clean)
    }

    pub fn probability(&self) -> f64 {
        self.failed as f64 / self.runs.len().max(1) as f64
    }
}

/// The 95% Wilson score interval of `k` failures in `n` runs, as fractions.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let den = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / den;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / den;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Runs `run` on the seeds of `first..=last` in order, `jobs` at once, up to the first
/// result `clean` does not accept: returns the results of the seeds before it (all
/// clean) and its own, in seed order. Seeds are handed out in order and none is started
/// past a known unclean one, so every seed before the first unclean one has run: the
/// answer does not depend on `jobs` or on the order the runs finish in.
pub fn first_failure_in_order<T: Send>(
    (first, last): (u64, u64),
    jobs: usize,
    run: impl Fn(u64) -> T + Sync,
    clean: impl Fn(&T) -> bool + Sync,
) -> Vec<(u64, T)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(first);
    // The smallest seed known to be unclean (u64::MAX: none yet).
    let unclean_from = AtomicU64::new(u64::MAX);
    let results: std::sync::Mutex<Vec<(u64, T)>> = std::sync::Mutex::new(Vec::new());
    let count = last.saturating_sub(first).saturating_add(1);
    std::thread::scope(|s| {
        for _ in 0..(jobs as u64).clamp(1, count.max(1)) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed > last || seed > unclean_from.load(Ordering::SeqCst) || seed < first {
                    break;
                }
                let r = run(seed);
                if !clean(&r) {
                    unclean_from.fetch_min(seed, Ordering::SeqCst);
                }
                results.lock().expect("no worker panics holding it").push((seed, r));
            });
        }
    });
    let stop = unclean_from.into_inner();
    let mut results: Vec<(u64, T)> =
        results.into_inner().expect("workers joined").into_iter().filter(|(seed, _)| *seed <= stop).collect();
    results.sort_by_key(|r| r.0);
    results
}

#[cfg(test)]
mod tests {
    use super::first_failure_in_order;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_first_unclean_seed_in_order_whatever_the_jobs() {
        // Seeds 7 and 12 fail; 7 is the answer on any number of jobs, with the seeds
        // before it all run and clean.
        for jobs in [1, 2, 3, 8, 64] {
            let r = first_failure_in_order((1, 40), jobs, |seed| seed != 7 && seed != 12, |&ok| ok);
            let seeds: Vec<u64> = r.iter().map(|x| x.0).collect();
            assert_eq!(seeds, (1..=7).collect::<Vec<_>>(), "jobs {jobs}");
            assert!(!r.last().unwrap().1 && r[..6].iter().all(|x| x.1), "jobs {jobs}");
        }
    }

    #[test]
    fn no_seed_is_started_past_a_known_failure() {
        // One job: the verdict of seed 3 is known before any later seed is handed out.
        let started = AtomicU64::new(0);
        let r = first_failure_in_order(
            (1, 1000),
            1,
            |seed| {
                started.fetch_add(1, Ordering::SeqCst);
                seed != 3
            },
            |&ok| ok,
        );
        assert_eq!((r.len(), started.load(Ordering::SeqCst)), (3, 3));
    }

    #[test]
    fn every_seed_when_all_are_clean_and_the_ends_are_kept() {
        let r = first_failure_in_order((5, 9), 2, |seed| seed, |_| true);
        assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
        let r = first_failure_in_order((u64::MAX - 1, u64::MAX), 2, |seed| seed, |_| true);
        assert_eq!(r.len(), 2);
    }
}
