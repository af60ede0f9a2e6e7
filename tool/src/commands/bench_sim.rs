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
#[command(after_help = "Each variant runs one full default ramp (75 virtual minutes) twice, side by side: \
without faults and with every fault (run-time contract checks are always on). Figures are wall and CPU \
seconds; speedup/core is virtual time over CPU time (the goal: at least 3000x). --swarm N then runs N seeds \
of the default variant on all cores (the goal: 100 seeds in at most 90 s on 2 cores). Builds are done \
first and not timed.")]
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
    /// Then a swarm: N seeds of the full default ramp of the default variant with every
    /// fault on, on all cores (the target: 100 seeds in at most 90 s on 2 cores).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10000))]
    pub swarm: u64,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

/// One timed run.
struct Row<'a> {
    variant: &'a str,
    faults: bool,
    wall_s: f64,
    cpu_s: f64,
    virtual_s: f64,
    packets: u64,
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
    // Each variant twice, side by side: without faults, then with every fault (contract
    // checks are always on in the simulator). CPU time is the child's, beside the wall.
    let all_faults: Vec<String> = sim::stress::FAULTS.iter().map(|f| f.to_string()).collect();
    let mut rows = Vec::new();
    for (v, exe) in variants.iter().zip(&exes) {
        for faults in [&[][..], &all_faults[..]] {
            let spinner = ui.spinner(format!("timing variant {} (faults: {})", v.name, faults.len()));
            let (c0, start) = (super::bench_build::cpu_s(), Instant::now());
            let mut cmd = Command::new(exe);
            cmd.args(["--seed", &args.seed.to_string()]);
            for f in faults {
                cmd.args(["--fault", f]);
            }
            let out = cmd.output().or_env(format!("cannot start {}", exe.display()))?;
            let (wall_s, cpu_s) = (start.elapsed().as_secs_f64(), super::bench_build::cpu_s() - c0);
            spinner.finish_and_clear();
            let report = SimReport::parse(&out.stdout, &format!("the simulator for `{}`", v.name))?.data;
            let packets: u64 = report.stages.iter().map(|s| s.rx_packets).sum();
            rows.push(Row {
                variant: v.name.as_str(),
                faults: !faults.is_empty(),
                wall_s,
                cpu_s,
                virtual_s: report.virtual_s,
                packets,
            });
        }
    }
    let swarm = if args.swarm > 0 {
        let v = all.default_variant(&root)?;
        let exe = sim::build::build(&root, v)?;
        let stages = ramp::parse(DEFAULT_RAMP)?;
        let runner = sim::stress::Runner { exe: &exe, variant: &v.name, stages: &stages, reps: 1, faults: &all_faults };
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bar = ui.bar_plain(args.swarm, format!("swarm of {} seeds of {}", args.swarm, v.name));
        let (c0, start) = (super::bench_build::cpu_s(), Instant::now());
        let reports = runner.run_seeds((1, args.swarm), jobs, &|| bar.inc(1))?;
        let (wall_s, cpu_s) = (start.elapsed().as_secs_f64(), super::bench_build::cpu_s() - c0);
        bar.finish_and_clear();
        let failed = reports.iter().filter(|(_, r)| !r.data.clean).count();
        let virtual_s: f64 = reports.iter().map(|(_, r)| r.data.virtual_s).sum();
        Some(serde_json::json!({"variant": v.name, "seeds": args.swarm, "jobs": jobs, "failed": failed,
            "wall_s": wall_s, "cpu_s": cpu_s, "virtual_s": virtual_s, "speedup_per_core": virtual_s / cpu_s.max(1e-9)}))
    } else {
        None
    };
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"variant": r.variant, "faults": r.faults, "wall_s": r.wall_s, "cpu_s": r.cpu_s,
                    "virtual_s": r.virtual_s, "rx_packets": r.packets,
                    "speedup_vs_real_time_per_core": r.virtual_s / r.cpu_s.max(1e-9)})
            })
            .collect();
        ui.out(
            serde_json::to_string_pretty(
                &serde_json::json!({"seed": args.seed, "ramp_s": ramp_s, "runs": list, "swarm": swarm}),
            )
            .expect("serialises"),
        );
        return Ok(());
    }
    ui.out(format!("default ramp {DEFAULT_RAMP} ({ramp_s} virtual s), seed {}, release build", args.seed));
    ui.out(format!(
        "{:<12} {:<7} {:>7} {:>7} {:>10} {:>11} {:>15} {:>12}",
        "variant", "faults", "wall_s", "cpu_s", "virtual_s", "rx_packets", "speedup/core", "cpu vs plain"
    ));
    for pair in rows.chunks(2) {
        for r in pair {
            ui.out(format!(
                "{:<12} {:<7} {:>7.2} {:>7.2} {:>10.1} {:>11} {:>14.0}x {:>11.2}x",
                r.variant,
                if r.faults { "all" } else { "none" },
                r.wall_s,
                r.cpu_s,
                r.virtual_s,
                r.packets,
                r.virtual_s / r.cpu_s.max(1e-9),
                r.cpu_s / pair[0].cpu_s.max(1e-9)
            ));
        }
    }
    if let Some(s) = &swarm {
        ui.out(format!(
            "swarm: {} seeds of {} (full ramp, every fault) on {} jobs: {:.1} s wall, {:.1} s CPU, {:.0}x real time per core, {} failed",
            s["seeds"], s["variant"].as_str().unwrap_or(""), s["jobs"], s["wall_s"].as_f64().unwrap_or(0.0),
            s["cpu_s"].as_f64().unwrap_or(0.0), s["speedup_per_core"].as_f64().unwrap_or(0.0), s["failed"]
        ));
    }
    ui.out("virtual_s < ramp when the variant failed and the run stopped at the dead link.");
    Ok(())
}
