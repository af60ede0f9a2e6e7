//! `bench identify`: maps a srcversion prefix (as `modinfo` or the seed's notes show it,
//! like `84239431`) back to the builds in the ledger.

use crate::error::{BenchError, Kind, Result};
use crate::ui::Ui;
use crate::workspace::ledger;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Exit status: 0 at least one build matched, 1 none did, 2 bad input.")]
pub struct IdentifyArgs {
    /// A srcversion or its first hex digits (case does not matter).
    pub prefix: String,
    /// Print the matching build records as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &IdentifyArgs, ui: &Ui) -> Result<()> {
    let prefix = args.prefix.trim().trim_end_matches('…').to_ascii_uppercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) || prefix.len() > 23 {
        return Err(BenchError::usage(format!("`{}` is not a srcversion prefix", args.prefix))
            .hint("a srcversion is up to 23 hex digits, e.g. 84239431"));
    }
    let root = args.ws.root()?;
    let matches: Vec<_> = ledger::read(&root)?.into_iter().filter(|r| r.srcversion.starts_with(&prefix)).collect();
    if args.json {
        ui.out(serde_json::to_string_pretty(&matches).expect("serialises"));
    } else {
        for r in &matches {
            ui.out(format!(
                "{}  build #{}  variant {:<8} [{}]  commit {}{}  {}",
                r.srcversion,
                r.id,
                r.variant,
                r.features.join(", "),
                &r.commit[..12.min(r.commit.len())],
                if r.dirty { " (dirty)" } else { "" },
                r.path
            ));
        }
    }
    if matches.is_empty() {
        return Err(BenchError::new(Kind::Failed, format!("no build with srcversion {prefix}…"))
            .hint("the ledger knows builds made by `bench build` in this workspace (.bench/builds.jsonl)"));
    }
    Ok(())
}
