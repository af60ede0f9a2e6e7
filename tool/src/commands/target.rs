//! `bench target status|recover`: a target's slots and loaded module, and completing or
//! undoing an interrupted operation.

use crate::error::Result;
use crate::target::Target;
use crate::ui::Ui;
use crate::workspace::ledger;
use clap::{Args, Subcommand};

/// A target, as `--target T` (like stage and rollback) or positionally.
#[derive(Args, Debug)]
pub struct TargetName {
    /// Target name (a [targets.NAME] table in bench.toml).
    #[arg(long = "target", value_name = "T")]
    flag: Option<String>,
    /// The same, positional.
    #[arg(value_name = "TARGET", conflicts_with = "flag", required_unless_present = "flag")]
    positional: Option<String>,
}

impl TargetName {
    fn name(&self) -> &str {
        self.flag.as_deref().or(self.positional.as_deref()).unwrap_or_default()
    }
}

#[derive(Subcommand, Debug)]
pub enum TargetSub {
    /// Slots (active, rollback, forensics) of the target's kernel, how each module arrived
    /// (bench stage, the board's DKMS, or found installed), the installed and the loaded
    /// module, each mapped back to a variant through the build records.
    Status {
        #[command(flatten)]
        target: TargetName,
        #[arg(long)]
        json: bool,
    },
    /// Complete (or, before the staged module was verified, undo) an interrupted stage,
    /// rollback or DKMS install, from the target's journal.
    Recover {
        #[command(flatten)]
        target: TargetName,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    #[command(subcommand)]
    pub sub: TargetSub,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

/// Long because it prints both subcommands' results, text and JSON.
pub fn run(args: &TargetArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    match &args.sub {
        TargetSub::Recover { target, json } => {
            let mut t = Target::open(&root, target.name(), false)?;
            let what = t.recover()?;
            if *json {
                ui.out(
                    serde_json::to_string_pretty(&serde_json::json!({"target": t.name, "done": what}))
                        .expect("serialises"),
                );
            } else {
                ui.out(format!("{}: {what}", t.name));
            }
            Ok(())
        }
        TargetSub::Status { target, json } => {
            let t = Target::open(&root, target.name(), false)?;
            let s = t.status()?;
            let records = ledger::read(&root)?;
            let variant_of = |srcv: &str| -> Option<String> {
                records
                    .iter()
                    .rev()
                    .find(|r| !srcv.is_empty() && r.srcversion.starts_with(srcv))
                    .map(|r| format!("{} (build #{})", r.variant, r.id))
            };
            if *json {
                let slots: Vec<serde_json::Value> = s
                    .slots
                    .iter()
                    .map(|(name, m, ok)| serde_json::json!({"slot": name, "meta": m, "complete": ok, "build": variant_of(&m.srcversion)}))
                    .collect();
                ui.out(
                    serde_json::to_string_pretty(&serde_json::json!({
                        "target": t.name, "kernel": t.kver, "slots": slots, "loaded_srcversion": s.loaded_srcversion,
                        "installed_sha256": s.installed_sha256, "interrupted": s.journal, "lock_holder": s.lock_holder,
                    }))
                    .expect("serialises"),
                );
                return Ok(());
            }
            ui.out(format!("target {} (kernel {}, {}):", t.name, t.kver, t.moddir));
            for (name, m, ok) in &s.slots {
                ui.out(format!(
                    "  {:<34} {:<8} srcversion {:<24} sha256 {}… via {}{}{}",
                    name,
                    m.variant,
                    m.srcversion,
                    &m.sha256[..m.sha256.len().min(12)],
                    if m.arrived.is_empty() { "?" } else { &m.arrived },
                    if *ok { "" } else { "  INCOMPLETE" },
                    variant_of(&m.srcversion).map(|v| format!("  [{v}]")).unwrap_or_default()
                ));
            }
            let active_sha = s.slots.iter().find(|(n, _, _)| n == "active").map(|(_, m, _)| m.sha256.clone());
            ui.out(format!(
                "  installed: {}",
                match (&s.installed_sha256, &active_sha) {
                    (Some(i), Some(a)) if i == a => "the active slot's module".to_string(),
                    (Some(i), _) => format!("a module not in the active slot (sha256 {}…)", &i[..12.min(i.len())]),
                    (None, _) => "nothing".to_string(),
                }
            ));
            ui.out(format!(
                "  loaded: {}",
                match &s.loaded_srcversion {
                    Some(v) =>
                        format!("srcversion {v}{}", variant_of(v).map(|x| format!(" [{x}]")).unwrap_or_default()),
                    None => format!("no /sys/module/{}", t.module),
                }
            ));
            if let Some(j) = &s.journal {
                ui.out(format!("  INTERRUPTED: {} at step {}: run `bench target recover {}`", j.op, j.step, t.name));
            } else if let Some(h) = &s.lock_holder {
                ui.out(format!(
                    "  LOCKED by {h}: if that is no longer running, `bench target recover {}` clears it",
                    t.name
                ));
            }
            Ok(())
        }
    }
}
