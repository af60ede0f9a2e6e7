//! `bench bench-build`: the build benchmark. Runs `bench build` (this binary) for one
//! variant into a scratch output and state directory: first a fresh build, then unchanged
//! rebuilds, and prints the wall times side by side. No kernel compile is involved.

use crate::error::{BenchError, Result};
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    after_help = "Goals: a build at most 1 s, an unchanged rebuild at most 100 ms, the audit of one variant at most 500 ms."
)]
pub struct BenchBuildArgs {
    /// Variant to build.
    #[arg(long, default_value = "c-v2")]
    pub variant: String,
    /// Unchanged rebuilds to time (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rebuilds: u32,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BenchBuildArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let scratch = tempdir()?;
    let exe =
        std::env::current_exe().map_err(|e| BenchError::env("cannot find the bench binary").cause(e.to_string()))?;
    let once = || -> Result<f64> {
        let start = Instant::now();
        let out = Command::new(&exe)
            .args(["build", "--variant", &args.variant, "--out"])
            .arg(scratch.join("dist"))
            .arg("--workspace")
            .arg(&root)
            .env("BENCH_STATE_DIR", scratch.join("state"))
            .output()
            .map_err(|e| BenchError::env("cannot run bench build").cause(e.to_string()))?;
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
    // The contract audit alone, in process: materialise + parse + analyse.
    let variants = crate::variant::Variants::load(&root)?;
    let v = variants.get(&args.variant)?;
    let mut audit_s: Vec<f64> = Vec::new();
    for _ in 0..args.rebuilds {
        let start = Instant::now();
        crate::audit::audit_variant(&root, &variants, v)?;
        audit_s.push(start.elapsed().as_secs_f64());
    }
    audit_s.sort_by(|a, b| a.total_cmp(b));
    ui.out(format!(
        "bench build --variant {} (process wall time, release or debug as this binary was built)",
        args.variant
    ));
    ui.out(format!("  fresh build        {:>7.1} ms   (goal 1000 ms)", fresh * 1e3));
    ui.out(format!("  unchanged rebuild  {:>7.1} ms   median of {} (goal 100 ms)", median * 1e3, again.len()));
    ui.out(format!("  ratio rebuild/fresh {:.2}", median / fresh));
    ui.out(format!(
        "  audit of one variant {:>5.1} ms   median of {}, in process (goal 500 ms)",
        audit_s[audit_s.len() / 2] * 1e3,
        audit_s.len()
    ));
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("bench-bench-build-{}", std::process::id()));
    std::fs::create_dir_all(&p)
        .map_err(|e| BenchError::env(format!("cannot create {}", p.display())).cause(e.to_string()))?;
    Ok(p)
}
