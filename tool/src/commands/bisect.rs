//! `bench bisect`: finds the variant along the parent chain, the feature combination, or
//! the commit that brought a regression, with an oracle that needs no hardware. Every step
//! goes to a log that `bench bisect replay LOG` runs again and compares.

use crate::bisect::run::{execute, Log, Request};
use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::ui::Ui;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum BisectSub {
    /// Run a logged bisection again and check that every step gives the same result.
    Replay {
        /// The log file (`--log` of an earlier run; default .bench/bisect/last.json).
        log: PathBuf,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_help = "Exit status: 0 a culprit was found, 1 nothing between the ends is bad (or the range \
cannot be split), 2 bad input (unknown variant, unrelated ends, good end failing: swapped?), 3 could not test.

Examples:
  bench bisect --good b --bad c --oracle stress                 names c
  bench bisect --across features --good b --bad c-v2-posted --oracle audit   c-direct-rx without c-prep-pending
  bench bisect --across commits --variant c-v2 --good v1 --bad HEAD --oracle audit
  bench bisect replay .bench/bisect/last.json")]
pub struct BisectArgs {
    #[command(subcommand)]
    pub sub: Option<BisectSub>,
    #[command(flatten)]
    pub run: Request,
    /// Write the log here (default .bench/bisect/last.json).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Print the log as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BisectArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let default_log = crate::workspace::ledger::state_dir(&root).join("bisect").join("last.json");
    if let Some(BisectSub::Replay { log }) = &args.sub {
        let text = std::fs::read(log).or_usage(format!("cannot read {}", log.display()))?;
        let old: Log = serde_json::from_slice(&text).or_usage(format!("{} is not a bisect log", log.display()))?;
        let new = execute(&root, &old.args, ui, false)?;
        for (a, b) in old.steps.iter().zip(&new.steps) {
            if a != b {
                return Err(BenchError::new(Kind::Failed, format!("replay diverged at step {}", a.n))
                    .cause(format!("logged: {} {:?} ({})", a.tested, a.result, a.detail))
                    .cause(format!("now:    {} {:?} ({})", b.tested, b.result, b.detail)));
            }
        }
        if old.steps.len() != new.steps.len() || old.conclusion != new.conclusion {
            return Err(BenchError::new(Kind::Failed, "replay diverged")
                .cause(format!("logged: {} steps, {}", old.steps.len(), old.conclusion))
                .cause(format!("now:    {} steps, {}", new.steps.len(), new.conclusion)));
        }
        ui.out(format!("replayed {} steps: identical. {}", new.steps.len(), new.conclusion));
        return Ok(());
    }
    let log = execute(&root, &args.run, ui, true)?;
    let path = args.log.clone().unwrap_or(default_log);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).or_env(format!("cannot create {}", dir.display()))?;
    }
    crate::fsutil::write_synced(
        &path,
        (serde_json::to_string_pretty(&log).expect("serialises") + "\n").as_bytes(),
        false,
    )?;
    if args.json {
        ui.out(serde_json::to_string_pretty(&log).expect("serialises"));
    } else {
        ui.out(format!(
            "{} (oracle {}, seed {}; log {})",
            log.conclusion,
            log.args.oracle,
            log.args.seed,
            path.display()
        ));
    }
    if log.found {
        Ok(())
    } else {
        Err(BenchError::new(Kind::Failed, log.conclusion.clone()))
    }
}
