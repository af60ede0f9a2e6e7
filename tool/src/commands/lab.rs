//! `bench lab`: the kernel lab. `setup` makes (or finds cached) the chroot, the lab kernel
//! and the initramfs; `run` builds a variant with dkms for the lab kernel, boots it in QEMU,
//! loads it under stress and judges the run (exit 0 clean, 1 failed, 125 could not test:
//! a bisect oracle); `boot` boots the lab disk (what `bench stage --target` with a `lab`
//! target installed) and reports the loaded module.

use crate::error::{BenchError, Kind, Result};
use crate::lab::console::Outcome;
use crate::lab::{self, Lab};
use crate::ui::Ui;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCmd,
}

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Make the lab: a Debian unstable chroot (debootstrap) with the kernel source and
    /// Debian's Rust toolchain, a small Rust-enabled kernel that enforces module
    /// signatures with the lab's key, and a busybox initramfs. Cached per step: running it
    /// again when nothing changed takes seconds. Needs root and Debian's package registry.
    Setup(SetupArgs),
    /// Build VARIANT for the lab kernel, boot it under QEMU (-smp 2, software emulation),
    /// load it with a stress run and judge: exit 0 clean, 1 failed (a WARN, a wedge, a
    /// panic, a refused load, a broken contract, a KCSAN report on the driver with
    /// --kcsan), 125 could not test (no lab, no build, no result).
    Run(RunArgs),
    /// Boot the lab disk (a `lab` target's root) and print the module it loads.
    Boot(BootArgs),
}

#[derive(Args, Debug)]
pub struct SetupArgs {
    /// The lab's directory (default: BENCH_LAB_DIR, else .bench/lab in the workspace).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also build the KCSAN flavour of the lab kernel (the same configuration plus KCSAN,
    /// about 10 more minutes from nothing; cached like the rest), for `bench lab run --kcsan`.
    #[arg(long)]
    pub kcsan: bool,
    /// Print the step times as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The variant to build and load.
    #[arg(long)]
    pub variant: String,
    /// One stage of offered RX traffic, MB/s:seconds (as `bench stress --stage`).
    #[arg(long, default_value = "4:10")]
    pub stress: String,
    /// Stall one plain load in N for US microseconds (N:US), as KCSAN's delay injection
    /// does, so that a lost update shows within seconds; `0:0` turns it off.
    #[arg(long, default_value = "4:200")]
    pub stall: String,
    /// Also try to load a copy of the module with one byte changed first (it must be
    /// refused: the lab kernel enforces signatures).
    #[arg(long)]
    pub tamper: bool,
    /// Boots of the same build; the failure rate is printed with its 95% Wilson interval,
    /// and any failed run fails the whole (exit 1), as a bisect oracle wants.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// CPUs of the VM (QEMU's multi-threaded TCG); a console showing fewer is "could not
    /// test" (exit 125).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub cpus: u32,
    /// Run on the lab's KCSAN kernel (`bench lab setup --kcsan`): the driver's contracts
    /// become KCSAN checks, and a `BUG: KCSAN:` report on the driver fails the run, named
    /// by field and contexts as `bench audit` names them.
    #[arg(long)]
    pub kcsan: bool,
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

#[derive(Args, Debug)]
pub struct BootArgs {
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &LabArgs, ui: &Ui) -> Result<()> {
    match &args.command {
        LabCmd::Setup(a) => setup(a, ui),
        LabCmd::Run(a) => match run_variant(a, ui) {
            Ok(()) => Ok(()),
            // Could not test: 125, as `git bisect run` reads it.
            Err(e) if e.kind == Kind::Environment => Err(BenchError { kind: Kind::CouldNotTest, ..e }),
            Err(e) => Err(e),
        },
        LabCmd::Boot(a) => boot(a, ui),
    }
}

fn setup(args: &SetupArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let lab = Lab::at(args.dir.as_deref(), &root);
    let started = std::time::Instant::now();
    let steps = lab::setup(&lab, args.kcsan, ui)?;
    let total = started.elapsed().as_secs_f64();
    let kver = lab.kernel_release()?;
    if args.json {
        let v = serde_json::json!({"dir": lab.dir, "kernel_release": kver, "steps": steps, "total_s": total});
        ui.out(serde_json::to_string_pretty(&v).expect("serialises"));
        return Ok(());
    }
    let kcsan =
        if args.kcsan { format!(", KCSAN kernel {}", lab.release_of(lab::Flavour::Kcsan)?) } else { String::new() };
    ui.out(format!("lab {} ready: kernel {kver}{kcsan}", lab.dir.display()));
    for s in &steps {
        ui.out(format!("  {:<12} {:>7.1} s{}", s.step, s.seconds, if s.cached { " (cached)" } else { "" }));
    }
    ui.out(format!("  {:<12} {:>7.1} s", "total", total));
    Ok(())
}

fn parse_pair(flag: &str, text: &str) -> Result<(f64, f64)> {
    let bad = || {
        BenchError::usage(format!("--{flag} {text}: expected two numbers A:B")).hint(if flag == "stress" {
            "for example --stress 4:10 (4 MB/s for 10 s)"
        } else {
            "for example --stall 4:200"
        })
    };
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let a: f64 = a.trim().parse().map_err(|_| bad())?;
    let b: f64 = b.trim().parse().map_err(|_| bad())?;
    if a < 0.0 || b < 0.0 || !a.is_finite() || !b.is_finite() {
        return Err(bad());
    }
    Ok((a, b))
}

fn run_variant(args: &RunArgs, ui: &Ui) -> Result<()> {
    let (mb_per_s, secs) = parse_pair("stress", &args.stress)?;
    let (stall_every, stall_us) = parse_pair("stall", &args.stall)?;
    if secs < 1.0 || secs > 3600.0 || mb_per_s <= 0.0 {
        return Err(BenchError::usage(format!(
            "--stress {}: the rate must be above 0 and the time 1 to 3600 s",
            args.stress
        )));
    }
    let root = args.ws.root()?;
    let lab = Lab::at(args.dir.as_deref(), &root);
    let req = crate::lab_run::RunRequest {
        variant: &args.variant,
        mb_per_s,
        secs,
        stall_every: stall_every as u64,
        stall_us: stall_us as u64,
        tamper: args.tamper,
        cpus: args.cpus,
        flavour: if args.kcsan { lab::Flavour::Kcsan } else { lab::Flavour::Plain },
    };
    if args.runs > 1 {
        let many = crate::lab_run::run_many(&root, &lab, &req, args.runs, ui)?;
        return print_runs(args, ui, &many);
    }
    let run = crate::lab_run::run_variant(&root, &lab, &req, ui)?;
    let (module, boot, o, outcome, problems) = (&run.module, &run.boot, &run.console, run.outcome, &run.problems);
    if args.json {
        let v = serde_json::json!({
            "variant": args.variant, "outcome": outcome, "module": module, "stress": {"mb_per_s": mb_per_s, "secs": secs},
            "stall": {"every": stall_every, "us": stall_us}, "boot_to_result_s": boot.seconds, "console_log": boot.log,
            "run": o, "problems": problems, "fields": run.fields,
        });
        ui.out(serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        let word = serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        ui.out(format!("lab run of {}: {word}", args.variant));
        let kcsan_note = if module.flavour == lab::Flavour::Kcsan { ", KCSAN" } else { "" };
        ui.out(format!(
            "  module      {} srcversion {} (kernel {}{kcsan_note})",
            module.ko.display(),
            module.srcversion,
            module.kernel_release
        ));
        ui.out(format!(
            "  vm          {} CPUs, boot to result {:.1} s, console {}",
            o.cpus,
            boot.seconds,
            boot.log.display()
        ));
        ui.out(format!(
            "  stress      {mb_per_s} MB/s for {secs} s, stall one plain load in {stall_every} for {stall_us} us"
        ));
        if let Some(refused) = o.tampered_refused {
            ui.out(format!("  tampered    {}", if refused { "refused by the kernel" } else { "LOADED" }));
        }
        if let Some(r) = &o.result {
            ui.out(format!(
                "  counters    rx_packets={} rx_bytes={} warns={} underflows={} hw_bufs_used={} stalls={}",
                r.rx_packets, r.rx_bytes, r.warns, r.underflows, r.hw_bufs_used, r.stalls
            ));
        }
        if module.flavour == lab::Flavour::Kcsan {
            let on_driver = o.kcsan.iter().filter(|r| r.in_driver()).count();
            let counter = |k: &str| o.kcsan_counters.get(k).map_or("?".to_string(), |n| n.to_string());
            ui.out(format!(
                "  kcsan       {on_driver} report(s) on the driver, {} on the kernel itself; {} watchpoints set up, {} data races, {} assert failures",
                o.kcsan.len() - on_driver,
                counter("setup_watchpoints"),
                counter("data_races"),
                counter("assert_failures"),
            ));
            for r in o.kcsan.iter().filter(|r| r.in_driver()).take(4) {
                ui.out(format!("              {}", r.summary()));
            }
        }
        for f in &run.fields {
            let audit = if f.audit { "the audit names it too" } else { "NOT named by the static audit: an audit gap" };
            ui.out(format!(
                "  field       {} written from {} (seen by {}): {audit}",
                f.field,
                f.contexts.join(" and "),
                f.seen_by.join(" and ")
            ));
        }
        for p in problems {
            ui.out(format!("  problem     {p}"));
        }
    }
    match outcome {
        Outcome::Clean => Ok(()),
        Outcome::Failed => Err(BenchError::new(Kind::Failed, format!("the lab run of {} failed", args.variant))
            .cause(problems.join("; "))
            .hint(format!("console log: {}", boot.log.display()))),
        Outcome::CouldNotTest => Err(BenchError::env(format!("the lab run of {} gave no result", args.variant))
            .hint(format!("console log: {}", boot.log.display()))),
    }
}

/// The summary of `--runs N`, and its exit status.
fn print_runs(args: &RunArgs, ui: &Ui, many: &crate::lab_run::Runs) -> Result<()> {
    let n = many.runs.len();
    let tested = n as u64 - many.could_not_test;
    let (lo, hi) = many.ci95;
    if args.json {
        let runs: Vec<serde_json::Value> = many
            .runs
            .iter()
            .map(|r| serde_json::json!({"outcome": r.outcome, "problems": r.problems, "fields": r.fields, "run": r.console, "console_log": r.boot.log}))
            .collect();
        let v = serde_json::json!({"variant": args.variant, "outcome": many.outcome(), "runs": runs, "failed": many.failed,
            "could_not_test": many.could_not_test, "ci95": [lo, hi]});
        ui.out(serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        ui.out(format!("lab runs of {}: {n} boots on {} CPUs, stress {}", args.variant, args.cpus, args.stress));
        for (i, r) in many.runs.iter().enumerate() {
            let word =
                serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            ui.out(format!("  run {:>2}  {word:<14} {}", i + 1, r.problems.first().map(String::as_str).unwrap_or("")));
        }
        ui.out(format!(
            "  failed {} of {tested} that tested: {:.0}% (95% Wilson interval {:.0}%-{:.0}%)",
            many.failed,
            100.0 * many.failed as f64 / tested.max(1) as f64,
            100.0 * lo,
            100.0 * hi
        ));
    }
    match many.outcome() {
        Outcome::Clean => Ok(()),
        Outcome::Failed => Err(BenchError::new(
            Kind::Failed,
            format!("the lab runs of {} failed {} of {tested} times", args.variant, many.failed),
        )),
        Outcome::CouldNotTest => Err(BenchError::env(format!("no lab run of {} could test", args.variant))),
    }
}

fn boot(args: &BootArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let lab = Lab::at(args.dir.as_deref(), &root);
    let spinner = ui.spinner("booting the lab disk");
    let boot = lab::boot(&lab, lab::Flavour::Plain, &[], 2, 120, "boot");
    spinner.finish_and_clear();
    let boot = boot?;
    let o = lab::console::parse_console(&boot.console);
    if args.json {
        let v = serde_json::json!({"srcversion": o.srcversion, "insmod_rc": o.insmod_rc, "boot_s": boot.seconds,
            "console_log": boot.log});
        ui.out(serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        ui.out(format!(
            "lab disk booted in {:.1} s: /sys/module/bes2600/srcversion {}",
            boot.seconds,
            o.srcversion.as_deref().unwrap_or("(no module loaded)")
        ));
    }
    match o.srcversion {
        Some(_) => Ok(()),
        None => Err(BenchError::new(Kind::Failed, "the lab disk's module did not load")
            .hint(format!("console log: {}", boot.log.display()))),
    }
}
