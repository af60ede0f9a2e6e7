//! `bench stage`: puts a module on a target, keeping the one it replaces in the rollback
//! slot (or in forensics with --failed); or hands the target a DKMS package that its own
//! DKMS builds and installs for its kernel, into the same slots. Never reboots.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::target::{StageOptions, Target};
use crate::ui::Ui;
use crate::workspace::ledger;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Steps: lock the target, journal, copy to a staging file, verify its sha256, read its \
srcversion with the target's modinfo, move the current rollback to forensics, the current active module to \
rollback (or to forensics with --failed), install, depmod, verify again, unlock. Every change is a temporary \
file, sync and a rename; an interrupted stage is finished or undone by `bench target recover`.

With --package, the target builds the module itself: bench verifies the package (its manifest signed by the \
workspace key), copies the .dkms.tar.gz there and runs the target's dkms (ldtarball unless that version is \
known, build and install for the target's kernel, with the target's dkms_options); the package's install hook \
(bench-slots.sh, the same slot library bench uses) keeps the replaced module in the rollback slot; bench then \
checks that the active slot is the package's and that its srcversion is the one the manifest predicted. On a \
`lab` target the lab chroot's DKMS builds it for the lab kernel, signed with the lab key.

Exit status: 0 staged, 1 the srcversion DKMS built differs from the prediction (it is active; roll back) or \
modinfo reads none (rolled back at once), 2 bad input or target busy, 3 the target failed (nothing activated \
unless it says so).

Examples:
  bench stage --target ohm --ko bes2600.ko --variant c --dry-run
  bench stage --target ohm --ko bes2600.ko --variant c
  bench stage --target ohm --ko bes2600.ko --variant c --failed   (the current one is broken: keep it as forensics)
  bench stage --target ohm --package dist/bes2600-VERSION.dkms.tar.gz   (the board's DKMS builds it)")]
pub struct StageArgs {
    /// Target name (a [targets.NAME] table in bench.toml).
    #[arg(long)]
    pub target: String,
    /// The kernel module to stage.
    #[arg(long, conflicts_with = "package")]
    pub ko: Option<PathBuf>,
    /// A package's .dkms.tar.gz (or its dist/ directory) for the target's own DKMS to build
    /// and install for its kernel.
    #[arg(long, value_name = "PKG")]
    pub package: Option<PathBuf>,
    /// With --package: a DKMS tarball that is not a signed bench package (no manifest, so
    /// no srcversion prediction to check).
    #[arg(long, requires = "package")]
    pub no_verify: bool,
    /// The variant the module was built from (recorded in the slot; its last build record
    /// is linked).
    #[arg(long)]
    pub variant: Option<String>,
    /// The module being replaced is broken: keep it in forensics instead of rollback.
    #[arg(long, conflicts_with = "package")]
    pub failed: bool,
    /// Stage a module whose vermagic names another kernel release than the target runs.
    #[arg(long, conflicts_with = "package")]
    pub force: bool,
    /// rmmod + modprobe afterwards, and check /sys/module/NAME/srcversion.
    #[arg(long)]
    pub reload: bool,
    /// Print every step without changing the target.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the staged slot as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &StageArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    // The target first: an unknown target is the error to report, whatever the module.
    let mut t = Target::open(&root, &args.target, args.dry_run)?;
    if let Some(pkg) = &args.package {
        return stage_package(args, &root, &mut t, pkg, ui);
    }
    let ko = match (&args.ko, &args.variant) {
        (Some(ko), _) => ko.clone(),
        (None, Some(v)) => crate::lab::newest_module(&root, v)?,
        (None, None) => {
            return Err(BenchError::usage("give --ko FILE, or --variant V to stage V's newest lab build")
                .hint("bench build --variant V --kernel lab builds the module for the kernel lab"))
        }
    };
    let ko = &ko;
    let bytes = std::fs::read(ko).or_usage(format!("cannot read {}", ko.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(BenchError::usage(format!("{} is not a kernel module (no ELF header)", ko.display())));
    }
    let variant = args.variant.clone().unwrap_or_else(|| "unknown".into());
    let build = ledger::read(&root)?
        .into_iter()
        .rev()
        .find(|r| r.variant == variant)
        .map(|r| r.id.to_string())
        .unwrap_or_default();
    let spinner = ui.spinner(format!("staging {variant} on {}", t.name));
    let opts = StageOptions {
        failed: args.failed,
        force: args.force,
        corrupt_upload: std::env::var_os("BENCH_FAULT_CORRUPT_UPLOAD").is_some(),
    };
    let staged = t.stage(&bytes, &variant, &build, opts);
    spinner.finish_and_clear();
    let staged = staged?;
    let meta = &staged.meta;
    if args.dry_run {
        ui.out(format!("dry run: would stage {} on {} ({} steps):", ko.display(), t.name, t.log.len()));
        for l in &t.log {
            ui.out(format!("  {l}"));
        }
        return Ok(());
    }
    let describe = |m: &crate::target::Meta| format!("{} (srcversion {})", m.variant, m.srcversion);
    if args.json {
        ui.out(
            serde_json::to_string_pretty(&serde_json::json!({"target": t.name, "active": meta, "kernel": t.kver,
                "unchanged": staged.unchanged, "previous": staged.previous, "displaced_to_forensics": staged.displaced,
                "previous_slot": staged.previous.as_ref().map(|_| if args.failed { "forensics" } else { "rollback" })}))
            .expect("serialises"),
        );
    } else if staged.unchanged {
        ui.out(format!(
            "{} is already the active module on {} ({}): nothing changed",
            ko.display(),
            t.name,
            describe(meta)
        ));
        return Ok(());
    } else {
        ui.out(format!(
            "staged {variant} on {} (kernel {}): srcversion {}, sha256 {}",
            t.name, t.kver, meta.srcversion, meta.sha256
        ));
        ui.out(format!("  installed {}/{}.ko, depmod done", t.moddir, t.module));
        match &staged.previous {
            Some(p) => ui.out(format!(
                "  the previous module, {}, is in the {} slot",
                describe(p),
                if args.failed { "forensics" } else { "rollback" }
            )),
            None => ui.out("  there was no active module: nothing to roll back to yet"),
        }
        if let Some(d) = &staged.displaced {
            ui.out(format!("  the old rollback module, {}, moved to forensics", describe(d)));
        }
    }
    if args.reload {
        let loaded = t.reload()?;
        if loaded != meta.srcversion {
            return Err(BenchError::env(format!(
                "after reload /sys/module/{}/srcversion is {loaded}, not {}",
                t.module, meta.srcversion
            )));
        }
        ui.out(format!("  reloaded: /sys/module/{}/srcversion = {loaded}", t.module));
    } else if !args.json {
        ui.out(format!("  not loaded: reboot the board, or `rmmod {m}; modprobe {m}` (or --reload)", m = t.module));
    }
    Ok(())
}

/// `--package`: the target's DKMS builds and installs it; the package's hook fills the slots.
fn stage_package(
    args: &StageArgs,
    root: &std::path::Path,
    t: &mut Target,
    pkg: &std::path::Path,
    ui: &Ui,
) -> Result<()> {
    let tarball = crate::package::tarball_of(pkg)?;
    let id = crate::package::identify_for_stage(root, &tarball, args.no_verify)?;
    if let Some(v) = args.variant.as_ref().filter(|v| **v != id.variant && !args.no_verify) {
        return Err(BenchError::usage(format!("the package is variant `{}`, not `{v}`", id.variant)));
    }
    let bytes = std::fs::read(&tarball).or_usage(format!("cannot read {}", tarball.display()))?;
    let spinner = ui.spinner(format!("the DKMS of {} builds {} {}", t.name, t.module, id.version));
    let staged = t.stage_package(&bytes, &id);
    spinner.finish_and_clear();
    let staged = staged?;
    if args.dry_run {
        ui.out(format!("dry run: would hand {} to the DKMS of {} ({} steps):", tarball.display(), t.name, t.log.len()));
        for l in &t.log {
            ui.out(format!("  {l}"));
        }
        return Ok(());
    }
    let meta = &staged.meta;
    if args.json {
        ui.out(
            serde_json::to_string_pretty(&serde_json::json!({"target": t.name, "kernel": t.kver, "active": meta,
                "unchanged": staged.unchanged, "previous": staged.previous, "displaced_to_forensics": staged.displaced,
                "predicted_srcversion": id.predicted_srcversion}))
            .expect("serialises"),
        );
        return Ok(());
    }
    if staged.unchanged {
        ui.out(format!("{} {} is already the active module on {}: nothing changed", t.module, id.version, t.name));
        return Ok(());
    }
    let check = match &id.predicted_srcversion {
        Some(p) => format!(" (the package predicted {p}: equal)"),
        None => " (not a verified package: no prediction to check)".to_string(),
    };
    ui.out(format!(
        "the DKMS of {} built and installed {} {} for kernel {}: srcversion {}{check}",
        t.name, t.module, id.version, t.kver, meta.srcversion
    ));
    match &staged.previous {
        Some(p) => ui.out(format!(
            "  the previous module, {} (srcversion {}), is in the rollback slot",
            p.variant, p.srcversion
        )),
        None => ui.out("  there was no active module: nothing to roll back to yet"),
    }
    if let Some(d) = &staged.displaced {
        ui.out(format!("  the old rollback module, {} (srcversion {}), moved to forensics", d.variant, d.srcversion));
    }
    ui.out(format!("  not loaded: reboot the board, or `rmmod {m}; modprobe {m}`", m = t.module));
    Ok(())
}
