//! `bench stress`: runs the seed's Phase 7 stress ramp on a variant in the deterministic
//! simulator and prints the figures per stage in the seed's units.

use crate::error::{BenchError, Kind, Result};
use crate::sim;
use crate::sim::ramp::{self, DEFAULT_RAMP};
use crate::sim::report::SimReport;
use crate::sim::stress::{Runner, Swarm};
use crate::ui::Ui;
use crate::workspace::variant;
use clap::Args;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 clean, 1 a WARN, TX wedge, lost wake-up, firmware breach, dead link or BUG was recorded (usable as a \
bisect oracle), 2 bad input, 3 the simulator could not be built or run.

A swarm (--seeds A..B) runs every seed from A to B, in parallel on all cores (--jobs), and reports
the failure probability with a 95% Wilson interval, the first failing seed and the command that
replays it; its summary is the same whatever the number of jobs.

Examples:
  bench stress --variant c --seed 1             Patch C: the hw_bufs_used underflow
  bench stress --variant c-v2 --seeds 1..100 --ramp 4:5m   a swarm: how often does it fail?
  bench stress --variant c-v2 --ramp 4:5m       the fix, one 5-minute stage at 4 MB/s
  bench stress --variant b --reps 3 --json      the seed's N=3 ramp, for scripts
  bench stress --variant c-v2 --probes          each error path against a firmware failure"
)]
pub struct StressArgs {
    /// Variant to run (a file variants/NAME.toml): baseline, b, c, c-prep, c-v2.
    #[arg(long)]
    pub variant: String,
    /// Stages as RATE:DURATION, rate in MB/s (10^6 B/s offered over the air, 0.01 to 100),
    /// duration with s, m or h.
    #[arg(long, default_value = DEFAULT_RAMP)]
    pub ramp: String,
    /// Repeat the whole ramp N times in one run (the seed's N=3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// Seed of the simulation; the same seed gives the same report, byte for byte.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    pub seed: u64,
    /// A swarm: every seed from A to B (inclusive), e.g. 1..100.
    #[arg(long, value_name = "A..B", value_parser = crate::sim::stress::parse_seeds)]
    pub seeds: Option<(u64, u64)>,
    /// Simulations at once in a swarm (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256), requires = "seeds")]
    pub jobs: Option<u32>,
    /// Faults to switch on (comma-separated), each within what the driver must survive:
    /// slow-air (the firmware holds the air 5-40 ms on 2% of frames: confirms bunch, input
    /// buffers run out, TX throttles and restarts); stall (a woken work item or the BH
    /// starts 1-20 ms late on 5% of wake-ups, far below every driver timeout); stale-ctrl
    /// (5% of control-byte reads return the last value again: the toggle must catch it);
    /// spurious-irq (an interrupt the chip did not raise, on 30% of 100 ms periods);
    /// tx-heavy (a bulk upload keeps the TX queue full; 2 s of every 10 the RX sender
    /// pauses, so only the driver's TX restart wakes the BH, and in the pause the upload
    /// waits 200 ms of every 500, so nothing at all does); cmd-burst (20% of command
    /// periods send 8 commands back to back); preempt (a work item, the BH or a process
    /// context loses its CPU for 0.5-10 ms at a shared access outside every spinlock, as
    /// a preemptible kernel allows: other contexts run in the gap).
    #[arg(long, value_delimiter = ',', value_parser = crate::sim::stress::FAULTS)]
    pub faults: Vec<String>,
    /// Compare with another variant (its parent, usually) on the same seeds: every figure
    /// with its spread, and this variant's `[[predictions]]` checked (exit 1 if one is
    /// missed).
    #[arg(long, value_name = "VARIANT")]
    pub against: Option<String>,
    /// Probe the error paths instead of running the ramp: each firmware failure the driver
    /// cannot survive (hang, stuck-ctrl, ctrl-flood, oversize-batch, malformed-batch,
    /// spurious-confirm, late-confirm) is injected once, 2 s into a short 4 MB/s run, and the driver's
    /// answer is judged against what its error path promises. Exit 1 if one is not.
    /// Each probe runs its own stage: no --ramp, --reps, --seeds, --faults or --against.
    #[arg(long, conflicts_with_all = ["ramp", "reps", "seeds", "against", "faults"])]
    pub probes: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &StressArgs, ui: &Ui) -> Result<()> {
    let stages = ramp::parse(&args.ramp)?;
    let root = args.ws.root()?;
    let variants = variant::Variants::load(&root)?;
    let variant = variants.get(&args.variant)?;

    let spinner = ui.spinner(format!("building the simulator for variant {}", variant.name));
    let exe = sim::build::build(&root, variant);
    spinner.finish_and_clear();
    let exe = exe?;
    let runner = Runner { exe: &exe, variant: &variant.name, stages: &stages, reps: args.reps, faults: &args.faults };
    let jobs =
        args.jobs.map(|j| j as usize).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    if args.probes {
        return run_probes(ui, args, &runner);
    }
    if let Some(other) = &args.against {
        let other = variants.get(other)?;
        let spinner = ui.spinner(format!("building the simulator for variant {}", other.name));
        let other_exe = sim::build::build(&root, other);
        spinner.finish_and_clear();
        let other_exe = other_exe?;
        let other_runner = Runner { exe: &other_exe, variant: &other.name, ..runner };
        let range = args.seeds.unwrap_or((args.seed, args.seed));
        let n = 2 * (range.1 - range.0 + 1);
        let bar = ui.bar(n, format!("{} against {} on seeds {}..{}", variant.name, other.name, range.0, range.1));
        let tick = || bar.inc(1);
        let mine = runner.run_seeds(range, jobs, &tick);
        let theirs = other_runner.run_seeds(range, jobs, &tick);
        bar.finish_and_clear();
        let (mine, theirs): (Vec<_>, Vec<_>) =
            (mine?.into_iter().map(|r| r.1).collect(), theirs?.into_iter().map(|r| r.1).collect());
        let predictions = crate::workspace::notes::predictions_of(&root, &variants, variant)?;
        let c = sim::compare::compare(&theirs, &mine, &predictions);
        // The record's verdict is the stress verdict (every run of the variant clean); a
        // missed prediction is shown with the predictions, not as a failed stress run.
        let clean = mine.iter().all(|r| r.data.clean);
        let rec = record(args, sim::runs::RunKind::Against, range, clean);
        let id = sim::runs::record(
            &root,
            sim::runs::RunRecord {
                against: Some(other.name.clone()),
                comparison: Some(serde_json::json!({"rows": c.rows, "predictions": c.predictions})),
                ..rec
            },
        )?;
        ui.status(format!("recorded as stress run #{id} (bench pr --stress {id})"));
        return print_comparison(ui, args, &other.name, range, &c);
    }

    if let Some(range) = args.seeds {
        let n = range.1 - range.0 + 1;
        let bar = ui.bar(
            n,
            format!("swarm {} seeds {}..{} ({} at once)", variant.name, range.0, range.1, jobs.min(n as usize)),
        );
        let swarm = runner.swarm(range, jobs, &|| bar.inc(1));
        bar.finish_and_clear();
        let swarm = swarm?;
        let rec = record(args, sim::runs::RunKind::Swarm, range, swarm.failed == 0);
        let summary = serde_json::json!({"runs": swarm.runs.len(), "failed": swarm.failed,
            "failure_probability": swarm.probability(), "ci95": [swarm.ci95.0, swarm.ci95.1], "failure_kinds": swarm.kinds});
        let id = sim::runs::record(&root, sim::runs::RunRecord { summary: Some(summary), ..rec })?;
        ui.status(format!("recorded as stress run #{id}"));
        print_swarm(ui, args, &swarm);
        if swarm.failed == 0 {
            return Ok(());
        }
        return Err(BenchError::new(
            Kind::Failed,
            format!("variant `{}` failed on {} of {} seeds", variant.name, swarm.failed, swarm.runs.len()),
        ));
    }
    let bar = ui.bar(runner.total_s(), format!("stress {} seed {}", variant.name, args.seed));
    let report = runner.run(args.seed, &|s| bar.set_position(s));
    bar.finish_and_clear();
    let mut report = report?;
    report.annotate(&[
        ("variant", variant.name.clone().into()),
        ("ramp", args.ramp.clone().into()),
        ("reps", args.reps.into()),
    ]);
    let rec = record(args, sim::runs::RunKind::Single, (args.seed, args.seed), report.data.clean);
    let id = sim::runs::record(&root, sim::runs::RunRecord { report: Some(report.raw.clone()), ..rec })?;
    ui.status(format!(
        "recorded as stress run #{id} (bench pr --stress {id}, bench notes baseline --from-stress {id})"
    ));
    if args.json {
        ui.out(serde_json::to_string_pretty(&report.raw).expect("a Value serialises"));
    } else {
        render(ui, &report, args);
    }
    if report.data.clean {
        Ok(())
    } else {
        Err(BenchError::new(
            Kind::Failed,
            format!("variant `{}` failed the stress ramp (seed {})", variant.name, args.seed),
        )
        .hint(format!("replay with: {}", replay_command(args, &variant.name, args.seed))))
    }
}

/// `--probes`: every error path's probe, one line each; exit 1 if one failed.
fn run_probes(ui: &Ui, args: &StressArgs, runner: &Runner) -> Result<()> {
    let probes = sim::stress::PROBES;
    let bar = ui.bar(probes.len() as u64, format!("probing the error paths of {}", args.variant));
    let outcomes: Result<Vec<_>> = probes
        .iter()
        .map(|(name, _)| {
            let o = runner.probe(name, args.seed);
            bar.inc(1);
            o
        })
        .collect();
    bar.finish_and_clear();
    let outcomes = outcomes?;
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.clean).map(|o| o.name.as_str()).collect();
    if args.json {
        let j = serde_json::json!({"variant": args.variant, "seed": args.seed, "probes": outcomes, "failed": failed});
        ui.out(serde_json::to_string_pretty(&j).expect("serialises"));
    } else {
        ui.out(format!("error paths of variant {}  seed {}", args.variant, args.seed));
        for (o, (_, what)) in outcomes.iter().zip(probes.iter()) {
            ui.out(format!("  {:<17} {:<6} {what}", o.name, if o.clean { "ok" } else { "FAILED" }));
            if !o.clean {
                ui.out(format!("    {}", o.detail));
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(BenchError::new(
        Kind::Failed,
        format!(
            "variant `{}` failed {} of {} error-path probes: {}",
            args.variant,
            failed.len(),
            probes.len(),
            failed.join(", ")
        ),
    )
    .hint(format!("replay one with: bench stress --variant {} --probes --json", args.variant)))
}

/// A run record of these arguments, without its results.
fn record(args: &StressArgs, kind: sim::runs::RunKind, seeds: (u64, u64), clean: bool) -> sim::runs::RunRecord {
    sim::runs::RunRecord::new(kind, &args.variant, &args.ramp, args.reps, seeds, args.faults.clone(), clean)
}

/// A WARN as the kernel logs it: the WARNING line with the function and the task, the
/// `Workqueue:` line when a work item ran it, the call trace innermost first, and the
/// driver's own error line for a release on the RX path that returned -1 (the seed's four
/// lines). The simulator does not model which CPU ran it, so no `CPU#` is shown.
fn kernel_warn_lines(w: &crate::sim::report::Warn) -> Vec<String> {
    let module = "[bes2600]";
    let func = w.call_path.last().map_or("?", String::as_str);
    let (task, workqueue) = match w.context.as_str() {
        "rx_work" => ("kworker (bes_sdio)", Some("sdio_rx_work")),
        "tx_work" => ("kworker (bes_sdio)", Some("sdio_tx_work")),
        "bh" => ("bes2600_bh", None),
        other => (other, None),
    };
    let mut out = vec![format!("WARNING: at {func} {module}: {task}")];
    if let Some(wq) = workqueue {
        out.push(format!("Workqueue: bes_sdio {wq} {module}"));
    }
    out.push("Call trace:".into());
    out.extend(w.call_path.iter().rev().map(|f| format!(" {f} {module}")));
    // The RX path reports the failed release (the seed's last line); the TX pass does not.
    if w.message.contains("returned -1") && w.call_path.iter().any(|f| f == "bes2600_bh_handle_rx_skb") {
        out.push(format!("bes2600_wlan mmc2:0001:1: {func} failed: -1"));
    }
    out
}

/// The command that runs one seed of this stress again, faults included.
fn replay_command(args: &StressArgs, variant: &str, seed: u64) -> String {
    let faults = if args.faults.is_empty() { String::new() } else { format!(" --faults {}", args.faults.join(",")) };
    format!("bench stress --variant {variant} --seed {seed} --ramp {} --reps {}{faults}", args.ramp, args.reps)
}

/// The comparison table; exit 1 when a prediction is missed.
fn print_comparison(
    ui: &Ui,
    args: &StressArgs,
    against: &str,
    (first, last): (u64, u64),
    c: &sim::compare::Comparison,
) -> Result<()> {
    use sim::compare::Check;
    if args.json {
        let v = serde_json::json!({"variant": args.variant, "against": against, "ramp": args.ramp, "seeds": [first, last],
            "rows": c.rows, "predictions": c.predictions});
        ui.out(serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        ui.out(format!("{} against {against}  ramp {} x{}  seeds {first}..{last}", args.variant, args.ramp, args.reps));
        ui.out(format!(
            "{:>5} {:<28} {:>24} {:>24} {:>7}",
            "stage",
            "figure",
            format!("{against} mean [min-max]"),
            format!("{} mean [min-max]", args.variant),
            "ratio"
        ));
        let cell = |s: &sim::compare::Spread| format!("{:.3} [{:.3}-{:.3}]", s.mean, s.min, s.max);
        for r in &c.rows {
            let ratio =
                if r.against.mean != 0.0 { format!("{:.3}", r.variant.mean / r.against.mean) } else { "-".into() };
            ui.out(format!(
                "{:>5} {:<28} {:>24} {:>24} {:>7}",
                r.stage,
                r.figure,
                cell(&r.against),
                cell(&r.variant),
                ratio
            ));
        }
        for p in &c.predictions {
            let what = match &p.check {
                Check::Met { got } => format!("met (got {got:.3})"),
                Check::Missed { got } => format!("MISSED (got {got:.3})"),
                Check::NotMeasurable { why } => format!("not measurable: {why}"),
            };
            ui.out(format!("prediction {}: {} -> {}: {what}", p.metric, p.from, p.to));
        }
    }
    let missed = c.predictions.iter().filter(|p| matches!(p.check, Check::Missed { .. })).count();
    if missed > 0 {
        return Err(BenchError::new(Kind::Failed, format!("{missed} prediction(s) of {} missed", args.variant)));
    }
    Ok(())
}

fn print_swarm(ui: &Ui, args: &StressArgs, swarm: &Swarm) {
    let (first, last) = swarm.seeds;
    let (n, k) = (swarm.runs.len() as u64, swarm.failed);
    let (lo, hi) = swarm.ci95;
    let variant = &args.variant;
    let first_failing = swarm.first_failing();
    if args.json {
        let j = serde_json::json!({
            "variant": variant,
            "ramp": args.ramp,
            "reps": args.reps,
            "faults": args.faults,
            "seeds": [first, last],
            "runs": n,
            "failed": k,
            "failure_probability": swarm.probability(),
            "ci95": [lo, hi],
            "failure_kinds": swarm.kinds,
            "first_failing_seed": first_failing.map(|f| f.seed),
            "replay": first_failing.map(|f| replay_command(args, variant, f.seed)),
            "per_seed": swarm.runs,
        });
        ui.out(serde_json::to_string_pretty(&j).expect("serialises"));
        return;
    }
    ui.out(format!(
        "swarm variant {variant}  seeds {first}..{last}  ramp {} x{}{}",
        args.ramp,
        args.reps,
        if args.faults.is_empty() { String::new() } else { format!("  faults {}", args.faults.join(",")) }
    ));
    ui.out(format!(
        "  failed {k} of {n} seeds: failure probability {:.1}% (95% Wilson interval {:.1}%-{:.1}%)",
        100.0 * swarm.probability(),
        100.0 * lo,
        100.0 * hi
    ));
    if !swarm.kinds.is_empty() {
        ui.out(format!(
            "  failure kinds: {}",
            swarm.kinds.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(f) = first_failing {
        ui.out(format!("  first failing seed {}: {}", f.seed, f.first_failure));
        ui.out(format!("  replay: {}", replay_command(args, variant, f.seed)));
    }
}

/// The report as the seed's table. Long because it prints every column and section.
fn render(ui: &Ui, report: &SimReport, args: &StressArgs) {
    let r = &report.data;
    ui.out(format!(
        "variant {}  features [{}]  seed {}  ramp {} x{}{}",
        args.variant,
        r.features.join(", "),
        args.seed,
        args.ramp,
        args.reps,
        if args.faults.is_empty() { String::new() } else { format!("  faults {}", args.faults.join(",")) }
    ));
    ui.out("units: offered MB/s = 10^6 B/s over the air; observed MiB/s = 2^20 B/s delivered to the stack");
    ui.out(format!(
        "{:>5} {:>7} {:>6} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8} {:>6} {:>8} {:>5}",
        "stage",
        "offered",
        "secs",
        "rx_pkts",
        "rx_MB",
        "obs_MiB/s",
        "rxwork/s",
        "per1000",
        "txwork/s",
        "rxq_lock/s",
        "rxq/pkt",
        "wake/bat",
        "bh_cpu",
        "lock_cpu",
        "warns"
    ));
    let per_rep = stages_per_rep(args);
    let label = |n: u64| -> String {
        match per_rep {
            Some(k) if args.reps > 1 => format!("r{}s{}", (n - 1) / k + 1, (n - 1) % k + 1),
            _ => n.to_string(),
        }
    };
    if args.reps > 1 {
        ui.out(format!("(rows rNsM: repetition N of the ramp, its stage M; {} repetitions)", args.reps));
    }
    for s in &r.stages {
        ui.out(format!(
            "{:>5} {:>7.1} {:>6.0} {:>10} {:>8.1} {:>9.3} {:>9.1} {:>9.1} {:>8.1} {:>10.1} {:>10.3} {:>8.3} {:>5.1}% {:>7.1}% {:>5}",
            label(s.stage),
            s.offered_mb_per_s,
            s.ran_s(),
            s.rx_packets,
            s.rx_mb,
            s.observed_mib_per_s,
            s.rx_work_per_s,
            s.rx_work_per_1000_rx_packets,
            s.tx_work_per_s,
            s.rx_queue_lock_per_s,
            s.rx_queue_lock_per_rx_packet,
            s.bh_rx_wakeups_per_rx_batch,
            s.cpu_pct_of_one_cpu.get("bh").copied().unwrap_or(f64::NAN),
            sim::compare::figure(s, "spinlock_cpu_pct").unwrap_or(f64::NAN),
            s.warns,
        ));
    }
    ui.out("lock_cpu: time in spin_lock_irqsave .. spin_unlock_irqrestore pairs, percent of one CPU (perf's _raw_spin_unlock_irqrestore share); per lock:");
    for s in &r.stages {
        let per: Vec<String> = s
            .locks
            .iter()
            .map(|(name, l)| format!("{name} {:.1}% ({:.0}/s)", l.cpu_pct_of_one_cpu, l.acquisitions_per_s))
            .collect();
        ui.out(format!("  stage {}: {}", label(s.stage), per.join(", ")));
    }
    if r.stages.iter().any(|s| s.tx_wait_ms.is_some()) {
        ui.out("tx wait: data frames in the driver, xmit to the SDIO write, ms (bucket bounds, at most 25% above):");
        for s in &r.stages {
            let Some(w) = &s.tx_wait_ms else { continue };
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            ui.out(format!(
                "  stage {}: p50 {}, p99 {}, max {} ({} frames)",
                label(s.stage),
                ms(w.p50),
                ms(w.p99),
                ms(w.max),
                w.frames
            ));
        }
    }
    if r.warn_count > 0 {
        ui.out(format!("WARNs: {} (first {} shown)", r.warn_count, r.warns.len().min(3)));
        for w in r.warns.iter().take(3) {
            ui.out(format!(
                "  [{:>10.6}] {}: {} (context {})\n               call path: {}",
                w.time_s,
                when(&r.stages, w.time_s, &label),
                w.message,
                w.context,
                w.call_path.join(" -> ")
            ));
        }
    }
    if let Some(w) = r.warns.first() {
        ui.out("the first WARN as the kernel's log shows it:");
        for line in kernel_warn_lines(w) {
            ui.out(format!("  {line}"));
        }
    }
    for x in &r.failures {
        ui.out(format!("FAILURE [{:>10.3}] {}: {}: {}", x.time_s, when(&r.stages, x.time_s, &label), x.kind, x.detail));
    }
    if !r.coverage.is_empty() {
        let ran: Vec<String> = r.coverage.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        let never: Vec<&str> = r.coverage.iter().filter(|(_, v)| **v == 0).map(|(k, _)| k.as_str()).collect();
        ui.out(format!("coverage: {}", if ran.is_empty() { "(none)".into() } else { ran.join(", ") }));
        if !never.is_empty() {
            ui.out(format!("never reached: {}", never.join(", ")));
        }
    }
    ui.out(format!("verdict: {} ({} virtual s simulated)", if r.clean { "clean" } else { "FAILED" }, r.virtual_s));
}

/// The ramp's stages per repetition (the ramp as given).
fn stages_per_rep(args: &StressArgs) -> Option<u64> {
    ramp::parse(&args.ramp).ok().map(|s| s.len() as u64)
}

/// Where `t` seconds after the ramp's start falls: "stage N T+S s" (the seed's "T+13s"),
/// the warm-up before the ramp (the firmware starting), or the module's stop after it.
fn when(stages: &[sim::report::StageFigures], t: f64, label: &dyn Fn(u64) -> String) -> String {
    if t < 0.0 {
        return "warm-up, before the ramp".into();
    }
    let mut start = 0.0;
    for s in stages {
        let end = start + s.ran_s();
        // The last stage holds its own end, and all of a run its failure cut short.
        let last = std::ptr::eq(s, stages.last().expect("not empty"));
        if t < end || (last && (t <= end || s.cut_short_at_s.is_some())) {
            return format!("stage {} T+{:.1}s", label(s.stage), t - start);
        }
        start = end;
    }
    if stages.is_empty() {
        return format!("T+{t:.1}s");
    }
    format!("after the ramp, at stop T+{:.1}s", t - start)
}

#[cfg(test)]
mod tests {
    use super::when;
    use crate::sim::report::StageFigures;

    fn stage(n: u64, duration_s: f64, cut_short_at_s: Option<f64>) -> StageFigures {
        StageFigures { stage: n, duration_s, cut_short_at_s, ..Default::default() }
    }

    #[test]
    fn a_moment_is_named_by_its_stage_or_by_the_warm_up_or_the_stop_around_the_ramp() {
        let label = |n: u64| n.to_string();
        let ramp = [stage(1, 10.0, None), stage(2, 20.0, None)];
        assert_eq!(when(&ramp, -0.5, &label), "warm-up, before the ramp");
        assert_eq!(when(&ramp, 3.0, &label), "stage 1 T+3.0s");
        assert_eq!(when(&ramp, 10.0, &label), "stage 2 T+0.0s");
        assert_eq!(when(&ramp, 30.0, &label), "stage 2 T+20.0s", "the last stage holds its own end");
        assert_eq!(when(&ramp, 31.0, &label), "after the ramp, at stop T+1.0s");
        // A run a failure ended: the failure's moment is the stage's cut.
        let cut = [stage(1, 10.0, None), stage(2, 20.0, Some(4.25))];
        assert_eq!(when(&cut, 14.25, &label), "stage 2 T+4.2s");
    }
}
