//! Cost measured on the driver's real code path, beside the cost model's. The variant's
//! simulator (built with line tables) runs under valgrind's callgrind; the instructions
//! executed on the driver's own source lines (every `driver/src/*.rs` but the files of
//! [`NOT_DRIVER_FILES`], wherever the compiler inlined them, so a new driver file counts
//! without an edit here) and the library code inlined into driver functions are the
//! driver's cost, divided by the RX packets the same run delivered. The simulator's
//! platform, chip and scheduler are not counted: on a board they are the kernel and the
//! chip. The model's figure is the CPU time the same run charged its contexts.

use super::callgrind;
use super::ramp::Stage;
use super::report::SimReport;
use crate::error::{BenchError, Result, ResultExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of `driver/src/` that are not the driver's code path: the chip model, the
/// platform layer and its implementations (the simulator's, under `sim/`, is excluded as a
/// subdirectory), the kernel glue. Everything else there is counted.
pub const NOT_DRIVER_FILES: [&str; 4] = ["chip.rs", "platform.rs", "testplat.rs", "kmod.rs"];

/// Ratios of measured and modelled cost further apart than this are called a disagreement.
pub const DISAGREE_ABOVE: f64 = 0.10;

#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub variant: String,
    pub rx_packets: u64,
    /// Instructions executed on the driver's source lines.
    pub driver_instructions: u64,
    /// Library code (core, alloc) inlined into driver functions, counted in the above.
    pub inlined_library_instructions: u64,
    /// Driver instructions per source file.
    pub by_file: BTreeMap<String, u64>,
    /// What the cost model charged the driver's contexts over the run (ns of CPU).
    pub modelled_cpu_ns: f64,
    /// Spinlock acquisitions over the run (every lock).
    pub lock_acquisitions: f64,
    /// The profile, for `callgrind_annotate`.
    pub profile: PathBuf,
}

impl Measurement {
    fn per_packet(&self, x: f64) -> f64 {
        if self.rx_packets == 0 {
            0.0
        } else {
            x / self.rx_packets as f64
        }
    }
    pub fn instructions_per_rx_packet(&self) -> f64 {
        self.per_packet(self.driver_instructions as f64)
    }
    pub fn modelled_ns_per_rx_packet(&self) -> f64 {
        self.per_packet(self.modelled_cpu_ns)
    }
    pub fn locks_per_rx_packet(&self) -> f64 {
        self.per_packet(self.lock_acquisitions)
    }
}

/// One variant measured against another: each cost per RX packet as a ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub variant: String,
    pub against: String,
    pub measured: f64,
    pub modelled: f64,
    pub disagree: bool,
}

pub fn ratio(mine: &Measurement, theirs: &Measurement) -> Ratio {
    let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let measured = div(mine.instructions_per_rx_packet(), theirs.instructions_per_rx_packet());
    let modelled = div(mine.modelled_ns_per_rx_packet(), theirs.modelled_ns_per_rx_packet());
    Ratio {
        variant: mine.variant.clone(),
        against: theirs.variant.clone(),
        measured,
        modelled,
        disagree: (measured - modelled).abs() > DISAGREE_ABOVE * measured.max(modelled),
    }
}

/// Runs `exe` (a simulator built with line tables) under callgrind for `seed` over
/// `stages`, keeping the profile beside the binary.
pub fn measure(exe: &Path, variant: &str, seed: u64, stages: &[Stage]) -> Result<Measurement> {
    // Written under a name of this process's own and renamed once read, so two runs at
    // once never read each other's half-written profile.
    let profile = exe.with_file_name(format!("callgrind.seed{seed}.out"));
    let written = exe.with_file_name(format!("callgrind.seed{seed}.{}.out", std::process::id()));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", written.display())).arg(exe);
    cmd.arg("--seed").arg(seed.to_string());
    for s in stages {
        cmd.arg("--stage").arg(s.sim_arg());
    }
    let out = cmd.output().map_err(|e| {
        BenchError::env("cannot run valgrind (callgrind counts the driver's instructions)")
            .cause(e.to_string())
            .hint("install valgrind (Debian: apt-get install valgrind)")
    })?;
    if !matches!(out.status.code(), Some(0) | Some(1)) {
        return Err(BenchError::env(format!("valgrind failed on the simulator of `{variant}` (seed {seed})"))
            .cause(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let report = SimReport::parse(&out.stdout, &format!("the simulator for `{variant}` under callgrind"))?;
    let text = std::fs::read_to_string(&written).or_env(format!("cannot read {}", written.display()))?;
    let parsed = callgrind::parse(&text).map_err(|e| {
        // Nothing half-read stays behind under this process's name.
        let _ = std::fs::remove_file(&written);
        BenchError::env(format!("{} line {}: not a callgrind profile bench can read", profile.display(), e.line))
            .cause(e.what)
    })?;
    std::fs::rename(&written, &profile).or_env(format!(
        "cannot rename {} to {}",
        written.display(),
        profile.display()
    ))?;
    if parsed.event != "Ir" {
        return Err(BenchError::env(format!(
            "{}: its first event is `{}`, not `Ir` (instructions)",
            profile.display(),
            parsed.event
        )));
    }
    let mut m = Measurement {
        variant: variant.to_string(),
        rx_packets: report.data.stages.iter().map(|s| s.rx_packets).sum(),
        driver_instructions: 0,
        inlined_library_instructions: 0,
        by_file: BTreeMap::new(),
        modelled_cpu_ns: report
            .data
            .stages
            .iter()
            .map(|s| s.cpu_pct_of_one_cpu.values().sum::<f64>() / 100.0 * s.ran_s() * 1e9)
            .sum(),
        lock_acquisitions: report
            .data
            .stages
            .iter()
            .map(|s| s.locks.values().map(|l| l.acquisitions_per_s).sum::<f64>() * s.ran_s())
            .sum(),
        profile,
    };
    for ((file, function), ir) in &parsed.cost {
        if let Some(name) = driver_file(file) {
            m.driver_instructions += ir;
            *m.by_file.entry(name.to_string()).or_insert(0) += ir;
        } else if is_library(file) && is_driver_function(function) {
            m.driver_instructions += ir;
            m.inlined_library_instructions += ir;
        }
    }
    Ok(m)
}

/// `<name>` of a `driver/src/<name>` file of the driver's code path, as the line tables
/// spell it (a file directly in `driver/src/`, not one of [`NOT_DRIVER_FILES`]).
fn driver_file(file: &str) -> Option<&str> {
    let path = Path::new(file);
    let name = path.file_name()?.to_str()?;
    let in_src = path.parent().is_some_and(|dir| dir.ends_with("driver/src"));
    (in_src && name.ends_with(".rs") && !NOT_DRIVER_FILES.contains(&name)).then_some(name)
}

/// Rust's own library (core, alloc, std), whose source paths start `/rustc/<commit>/`.
fn is_library(file: &str) -> bool {
    file.starts_with("/rustc/")
}

/// A symbol of a driver module, e.g. `bes2600::bh::<impl bes2600::device::Bes2600<P>>::bh_loop`
/// (any module of the crate but the simulator's and those of [`NOT_DRIVER_FILES`]).
fn is_driver_function(function: &str) -> bool {
    let Some(rest) = function.trim_start_matches('<').strip_prefix("bes2600::") else { return false };
    let Some((module, _)) = rest.split_once("::") else { return false };
    let not_driver = module == "sim" || NOT_DRIVER_FILES.iter().any(|f| f.trim_end_matches(".rs") == module);
    !not_driver && module.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_lines_count_wherever_inlined_and_the_simulator_does_not() {
        assert_eq!(driver_file("/w/main/driver/src/bh.rs"), Some("bh.rs"));
        assert_eq!(driver_file("/w/main/driver/src/sim/platform.rs"), None);
        assert_eq!(driver_file("/w/main/driver/src/chip.rs"), None);
        assert_eq!(driver_file("/rustc/abc/library/core/src/ptr/mod.rs"), None);
        // A driver file the seed's series never had counts too; the platform layer does not.
        assert_eq!(driver_file("/w/main/driver/src/scan.rs"), Some("scan.rs"));
        assert_eq!(driver_file("/w/main/driver/src/platform.rs"), None);
        assert_eq!(driver_file("/w/main/driver/src/bin/bes2600-sim.rs"), None);
        assert!(is_driver_function("bes2600::scan::start"));
        assert!(!is_driver_function("bes2600::platform::Frame::enter"));
        assert!(!is_driver_function("<bes2600::sim::platform::SimPlatform as bes2600::platform::Memory>::plain_load"));
        assert!(is_driver_function("bes2600::bh::<impl bes2600::device::Bes2600<P>>::bh_loop"));
        assert!(is_driver_function("<bes2600::ring::Ring<T> as core::ops::Drop>::drop"));
        assert!(is_driver_function("bes2600::wsm::put_msg"));
        assert!(!is_driver_function("bes2600::sim::run::spawn::{{closure}}"));
        assert!(!is_driver_function("bes2600::chip::Chip<A,_>::advance"));
        assert!(!is_driver_function("bes2600_sim::main"));
    }

    fn m(variant: &str, instructions: u64, modelled_ns: f64) -> Measurement {
        Measurement {
            variant: variant.into(),
            rx_packets: 100,
            driver_instructions: instructions,
            inlined_library_instructions: 0,
            by_file: BTreeMap::new(),
            modelled_cpu_ns: modelled_ns,
            lock_acquisitions: 0.0,
            profile: PathBuf::new(),
        }
    }

    #[test]
    fn ratios_disagree_when_more_than_a_tenth_apart() {
        let r = ratio(&m("c-v2", 38_400, 16_366.0), &m("b", 44_900, 25_858.0));
        assert!((r.measured - 0.855).abs() < 0.001, "{r:?}");
        assert!((r.modelled - 0.633).abs() < 0.001, "{r:?}");
        assert!(r.disagree);
        let r = ratio(&m("x", 95, 100.0), &m("y", 100, 100.0));
        assert!(!r.disagree, "{r:?}");
    }
}
