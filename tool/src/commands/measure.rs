//! `bench measure`: the driver's cost per RX packet counted on its real code path
//! (instructions, by callgrind) beside the cost model's, for a variant and the one it is
//! compared with.

use crate::error::{BenchError, Result};
use crate::sim;
use crate::sim::measure::{Measurement, Ratio, NOT_DRIVER_FILES};
use crate::sim::ramp;
use crate::ui::Ui;
use crate::workspace::variant;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "What is counted: instructions executed on the driver's own source lines \
(every driver/src/*.rs but chip.rs, platform.rs, testplat.rs and kmod.rs, wherever \
the compiler inlined them) and library code inlined into driver functions, under valgrind's \
callgrind, divided by the RX packets of the same simulated run. The simulator's platform, chip and \
scheduler are not counted. Beside it: the CPU time the cost model charged per RX packet in that run. \
The ratio of the two variants is printed for each; when they are more than 10% apart the model's \
saving is not the code's, and both are shown. Needs valgrind (Debian: apt-get install valgrind).

Exit status: 0 measured, 2 bad input, 3 the simulator could not be built or valgrind could not run.

Examples:
  bench measure --variant c-v2 --against b     Patch C v2's cost against the baseline's
  bench measure --variant c-v2 --json          against its parent (c-prep), for scripts")]
pub struct MeasureArgs {
    /// Variant to measure (a file variants/NAME.toml).
    #[arg(long)]
    pub variant: String,
    /// The variant to compare with (default: its parent).
    #[arg(long, value_name = "VARIANT")]
    pub against: Option<String>,
    /// Seed of the simulated run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stages of the run (RATE:DURATION, as `bench stress --ramp`); short: callgrind runs
    /// the simulator about 50 times slower.
    #[arg(long, default_value = "4:20s")]
    pub ramp: String,
    /// Print the figures as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &MeasureArgs, ui: &Ui) -> Result<()> {
    let stages = ramp::parse(&args.ramp)?;
    let root = args.ws.root()?;
    let variants = variant::Variants::load(&root)?;
    let mine = variants.get(&args.variant)?;
    let against = match (&args.against, &mine.parent) {
        (Some(a), _) => a.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(BenchError::usage(format!("variant `{}` has no parent to measure against", mine.name))
                .hint("name one: --against VARIANT"))
        }
    };
    let theirs = variants.get(&against)?;
    let mut measured = Vec::new();
    for v in [theirs, mine] {
        let spinner = ui.spinner(format!("building the simulator for variant {} (with line tables)", v.name));
        let exe = sim::build::build_with_line_tables(&root, v);
        spinner.finish_and_clear();
        let exe = exe?;
        let spinner = ui.spinner(format!("counting variant {}'s instructions under callgrind", v.name));
        let m = sim::measure::measure(&exe, &v.name, args.seed, &stages);
        spinner.finish_and_clear();
        measured.push(m?);
    }
    let r = sim::measure::ratio(&measured[1], &measured[0]);
    let json = serde_json::json!({"seed": args.seed, "ramp": args.ramp, "not_counted_files": NOT_DRIVER_FILES,
        "variants": measured.iter().map(|m| serde_json::json!({
            "variant": m.variant, "rx_packets": m.rx_packets, "driver_instructions": m.driver_instructions,
            "inlined_library_instructions": m.inlined_library_instructions, "by_file": m.by_file,
            "per_rx_packet": {"driver_instructions": m.instructions_per_rx_packet(),
                "modelled_cpu_ns": m.modelled_ns_per_rx_packet(), "lock_acquisitions": m.locks_per_rx_packet()},
            "profile": m.profile})).collect::<Vec<_>>(),
        "ratio": r});
    let id = sim::runs::record(
        &root,
        sim::runs::RunRecord {
            against: Some(theirs.name.clone()),
            summary: Some(json.clone()),
            ..sim::runs::RunRecord::new(
                sim::runs::RunKind::Measure,
                &mine.name,
                &args.ramp,
                1,
                (args.seed, args.seed),
                Vec::new(),
                true,
            )
        },
    )?;
    ui.status(format!("recorded as measure run #{id} (bench pr --measure {id})"));
    if args.json {
        ui.out(serde_json::to_string_pretty(&json).expect("serialises"));
        return Ok(());
    }
    print(ui, args, &measured, &r);
    Ok(())
}

fn print(ui: &Ui, args: &MeasureArgs, measured: &[Measurement], r: &Ratio) {
    ui.out(format!(
        "cost per RX packet, seed {}, ramp {}: measured = instructions on the driver's source lines (callgrind); modelled = the cost model's CPU time",
        args.seed, args.ramp
    ));
    ui.out(format!(
        "{:<10} {:>9} {:>14} {:>12} {:>14}",
        "variant", "rx_pkts", "measured_instr", "lock_acq", "modelled_cpu_us"
    ));
    for m in measured {
        ui.out(format!(
            "{:<10} {:>9} {:>14.1} {:>12.2} {:>14.1}",
            m.variant,
            m.rx_packets,
            m.instructions_per_rx_packet(),
            m.locks_per_rx_packet(),
            m.modelled_ns_per_rx_packet() / 1000.0
        ));
    }
    for m in measured {
        let files: Vec<String> =
            m.by_file.iter().map(|(f, ir)| format!("{f} {:.1}", *ir as f64 / m.rx_packets.max(1) as f64)).collect();
        ui.out(format!("  {} by file: {}", m.variant, files.join(", ")));
    }
    ui.out(format!(
        "{} against {}: measured {:.3}, modelled {:.3}{}",
        r.variant,
        r.against,
        r.measured,
        r.modelled,
        if r.disagree { "  DISAGREE: the model's saving is not the code's; show both" } else { "  (agree within 10%)" }
    ));
    for m in measured {
        ui.out(format!("profile: {} (callgrind_annotate reads it)", m.profile.display()));
    }
}
