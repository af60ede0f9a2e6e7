//! `bench patches`: writes patches/ as a `git format-patch` style series, one patch per step
//! of the variant chain (materialised parent against materialised child), with the cover
//! letter from `bench pr`. `--check` fails when patches/ is stale.

use crate::error::Result;
use crate::publish::patches::{self, Written};
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Each patch applies with `git apply` to the materialised parent (paths driver/src/...). \
Only committed inputs are used (variants, notes, driver, templates), so CI can run --check.

Examples:
  bench patches                 write patches/ for the default variant's chain (the tree's tip)
  bench patches --check         exit 1 when patches/ differs from what would be written")]
pub struct PatchesArgs {
    /// The variant whose chain from the root is the series (default: bench.toml's
    /// default_variant, else the tip of the variant tree).
    #[arg(long)]
    pub variant: Option<String>,
    /// Compare with patches/ instead of writing; exit 1 when stale.
    #[arg(long)]
    pub check: bool,
    /// Output directory.
    #[arg(long, default_value = "patches")]
    pub out: PathBuf,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &PatchesArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let dir = if args.out.is_absolute() { args.out.clone() } else { root.join(&args.out) };
    let variants = crate::workspace::variant::Variants::load(&root)?;
    let variant = variants.named_or_default(&root, args.variant.as_deref())?;
    match patches::write_or_check(&root, &variant.name, &dir, args.check)? {
        Written::UpToDate(n) => ui.out(format!("patches/ is up to date ({n} files)")),
        Written::Wrote(n) => ui.out(format!("wrote {n} files to {}", dir.display())),
    }
    Ok(())
}
