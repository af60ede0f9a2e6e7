//! `bench rollback`: restores the rollback slot on a target; the replaced module is kept
//! in forensics.

use crate::error::Result;
use crate::target::Target;
use crate::ui::Ui;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Steps: lock, journal, move the active module to forensics, the rollback module to \
active, install, depmod, verify, unlock. Never reboots.")]
pub struct RollbackArgs {
    /// Target name (a [targets.NAME] table in bench.toml).
    #[arg(long)]
    pub target: String,
    /// Print every step without changing the target.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the active module after the rollback as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &RollbackArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let mut t = Target::open(&root, &args.target, args.dry_run)?;
    let meta = t.rollback()?;
    if args.dry_run {
        ui.out(format!("dry run: would roll back {} ({} steps):", t.name, t.log.len()));
        for l in &t.log {
            ui.out(format!("  {l}"));
        }
        return Ok(());
    }
    if args.json {
        ui.out(
            serde_json::to_string_pretty(&serde_json::json!({"target": t.name, "kernel": t.kver, "active": meta,
                "replaced_to": "forensics"}))
            .expect("serialises"),
        );
        return Ok(());
    }
    ui.out(format!(
        "rolled back {}: active is now {} (srcversion {}); the replaced module is in forensics",
        t.name, meta.variant, meta.srcversion
    ));
    ui.out(format!("  not loaded: reboot the board, or `rmmod {m}; modprobe {m}`", m = t.module));
    Ok(())
}
