//! `bench bench-sim`: the simulator's speed benchmark. Runs the full default ramp of each
//! variant in release mode, side by side in one invocation, and prints wall time,
//! simulated packets per wall second and the speed-up over the ramp's real duration.

use crate::error::Result;
use crate::error::ResultExt;
use crate::sim;
use crate::sim::ramp::{self, DEFAULT_RAMP};
use crate::sim::report::SimReport;
use crate::ui::Ui;
use crate::workspace::variant;
use clap::Args;
use std::process::Command;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(after_help = "The goal is one full default ramp (75 virtual minutes) in at most 30 s of wall time \
per variant on a 2-core machine. Builds are done first and not timed.")]
pub struct BenchSimArgs {
    /// Variants to time (default: all).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Seed for every run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BenchSimArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let all = variant::Variants::load(&root)?;
    let names: Vec<String> = if args.variants.is_empty() {
        all.list.iter().map(|v| v.name.clone()).collect()
    } else {
        args.variants.clone()
    };
    let variants = names.iter().map(|n| all.get(n)).collect::<Result<Vec<_>>>()?;
    let ramp_s: u64 = ramp::parse(DEFAULT_RAMP)?.iter().map(|s| s.duration_s_ceil()).sum();
    let mut exes = Vec::new();
    for v in &variants {
        let spinner = ui.spinner(format!("building the simulator for variant {}", v.name));
        let exe = sim::build::build(&root, v);
        spinner.finish_and_clear();
        exes.push(exe?);
    }
    let mut rows = Vec::new();
    for (v, exe) in variants.iter().zip(&exes) {
        let spinner = ui.spinner(format!("timing variant {}", v.name));
        let start = Instant::now();
        let out = Command::new(exe)
            .args(["--seed", &args.seed.to_string()])
            .output()
            .or_env(format!("cannot start {}", exe.display()))?;
        let wall_s = start.elapsed().as_secs_f64();
        spinner.finish_and_clear();
        let report = SimReport::parse(&out.stdout, &format!("the simulator for `{}`", v.name))?.data;
        let packets: u64 = report.stages.iter().map(|s| s.rx_packets).sum();
        let virtual_s = report.virtual_s;
        rows.push((v.name.as_str(), wall_s, virtual_s, packets));
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, w, vs, p)| {
                serde_json::json!({"variant": n, "wall_s": w, "virtual_s": vs, "rx_packets": p,
                    "packets_per_wall_s": *p as f64 / w, "speedup_vs_real_time": vs / w})
            })
            .collect();
        ui.out(
            serde_json::to_string_pretty(&serde_json::json!({"seed": args.seed, "ramp_s": ramp_s, "runs": list}))
                .expect("serialises"),
        );
        return Ok(());
    }
    ui.out(format!("default ramp {DEFAULT_RAMP} ({ramp_s} virtual s), seed {}, release build", args.seed));
    ui.out(format!(
        "{:<9} {:>8} {:>10} {:>11} {:>13} {:>9}",
        "variant", "wall_s", "virtual_s", "rx_packets", "packets/wall_s", "speedup"
    ));
    for (n, w, vs, p) in &rows {
        ui.out(format!("{:<9} {:>8.2} {:>10.1} {:>11} {:>13.0} {:>8.0}x", n, w, vs, p, *p as f64 / w, vs / w));
    }
    ui.out("virtual_s < ramp when the variant failed and the run stopped at the dead link.");
    Ok(())
}
