//! `bench bench-build`: the build benchmark. Runs `bench build` (this binary) for one
//! variant into a scratch output and state directory: first a fresh build, then unchanged
//! rebuilds, and prints the wall times side by side. No kernel compile is involved.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    after_help = "Goals: a build at most 1 s, an unchanged rebuild at most 100 ms, the audit of one variant at most 2 s from a cold start and 300 ms cached (unchanged sources)."
)]
pub struct BenchBuildArgs {
    /// Variant to build (default: bench.toml's default_variant, else the tree's tip).
    #[arg(long)]
    pub variant: Option<String>,
    /// Unchanged rebuilds to time (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rebuilds: u32,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BenchBuildArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let variants = crate::workspace::variant::Variants::load(&root)?;
    let variant = variants.named_or_default(&root, args.variant.as_deref())?.name.clone();
    let scratch = tempdir()?;
    let exe = std::env::current_exe().or_env("cannot find the bench binary")?;
    let once = || -> Result<f64> {
        let start = Instant::now();
        let out = Command::new(&exe)
            .args(["build", "--variant", &variant, "--out"])
            .arg(scratch.join("dist"))
            .arg("--workspace")
            .arg(&root)
            .env("BENCH_STATE_DIR", scratch.join("state"))
            .output()
            .or_env("cannot run bench build")?;
        let secs = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(BenchError::env("bench build failed").cause(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(secs)
    };
    let fresh = once()?;
    let mut again: Vec<f64> = (0..args.rebuilds).map(|_| once()).collect::<Result<_>>()?;
    again.sort_by(|a, b| a.total_cmp(b));
    let median = again[again.len() / 2];
    let _ = std::fs::remove_dir_all(&scratch);
    // The contract audit, side by side in one run: cold (an empty build directory and
    // cache: cargo builds the MIR and rustdoc JSON, then the analysis) and cached (the
    // same sources again: the digest of every input finds the stored report).
    let v = variants.get(&variant)?;
    let (mut cold, mut cached) = (Vec::new(), Vec::new());
    for i in 0..args.rebuilds.max(1) {
        let work = scratch.with_file_name(format!("bench-audit-{}-{i}", std::process::id()));
        let c = crate::source::audit::CrateRef { dir: &root.join("driver"), features: &v.features, work: &work };
        cold.push(timed(|| crate::source::audit::audit_crate(&c).map(|_| ()))?);
        cached.push(timed(|| crate::source::audit::audit_crate(&c).map(|_| ()))?);
        let _ = std::fs::remove_dir_all(&work);
    }
    let med = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (cw, cc) = med(&mut cold);
    let (hw, hc) = med(&mut cached);
    ui.out(format!("bench build --variant {} (process wall time, release or debug as this binary was built)", variant));
    ui.out(format!("  fresh build        {:>7.1} ms   (goal 1000 ms)", fresh * 1e3));
    ui.out(format!("  unchanged rebuild  {:>7.1} ms   median of {} (goal 100 ms)", median * 1e3, again.len()));
    ui.out(format!("  ratio rebuild/fresh {:.2}", median / fresh));
    ui.out(format!(
        "  audit, cold         {:>7.1} ms wall {:>7.1} ms CPU (with cargo's)   median of {} (goal 2000 ms)",
        cw * 1e3,
        cc * 1e3,
        cold.len()
    ));
    ui.out(format!(
        "  audit, cached       {:>7.1} ms wall {:>7.1} ms CPU                  median of {} (goal 300 ms)",
        hw * 1e3,
        hc * 1e3,
        cached.len()
    ));
    ui.out(format!("  ratio cached/cold   {:.3} wall", hw / cw));
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("bench-bench-build-{}", std::process::id()));
    std::fs::create_dir_all(&p).or_env(format!("cannot create {}", p.display()))?;
    Ok(p)
}

/// CPU seconds of this process and its waited-for children, from /proc/self/stat.
pub(crate) fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<f64> = after.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of stat (utime stime cutime cstime) are 11..=14 after the command name.
    let ticks: f64 = f.get(11..15).map(|x| x.iter().sum()).unwrap_or(0.0);
    ticks / 100.0
}

/// (wall seconds, CPU seconds) of `f`.
fn timed(f: impl FnOnce() -> Result<()>) -> Result<(f64, f64)> {
    let (c0, start) = (cpu_s(), Instant::now());
    f()?;
    Ok((start.elapsed().as_secs_f64(), cpu_s() - c0))
}
