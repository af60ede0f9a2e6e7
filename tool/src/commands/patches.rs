//! `bench patches`: writes patches/ as a `git format-patch` style series, one patch per step
//! of the variant chain (materialised parent against materialised child), with the cover
//! letter from `bench pr`. `--check` fails when patches/ is stale.

use crate::error::Result;
use crate::publish::patches::{self, Written};
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "The series is written by the real `git format-patch --cover-letter --base` from a scratch \
repository in which each variant's materialised tree is one commit: From <sha>, Date (the \
variant's earliest note), MIME headers, Signed-off-by, and a cover letter (the PR) with \
shortlog, diffstat, base-commit and b4's change-id. The sender is bench.toml's [patches] \
from, else git's user.name and user.email. A variant with `reroll_of` (or --reroll-of) is \
the next version: [PATCH vN n/m] and `git range-diff` from the previous version. `git am` \
applies each patch to the materialised parent. Only committed inputs are used (variants, \
notes, driver, templates), so CI can run --check.

Examples:
  bench patches                 write patches/ for the default variant's chain (the tree's tip)
  bench patches --check         exit 1 when patches/ differs from what would be written
  bench patches --variant c --out /tmp/v1      Patch C's series, v1
  bench patches --variant c-v2 --base b        only the steps after Patch B")]
pub struct PatchesArgs {
    /// The variant whose chain from the root is the series (default: bench.toml's
    /// default_variant, else the tip of the variant tree).
    #[arg(long)]
    pub variant: Option<String>,
    /// Start the series after this ancestor (default: the root of the chain).
    #[arg(long)]
    pub base: Option<String>,
    /// Write the series as the next version of this variant's (default: the variant's
    /// `reroll_of`): `[PATCH vN n/m]`, the same change-id, a range-diff in the cover letter.
    #[arg(long)]
    pub reroll_of: Option<String>,
    /// Compare with patches/ instead of writing; exit 1 when stale. Without --variant, the
    /// series the directory holds is checked (its patches name their variants).
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
    // --check with nothing named checks the series the directory holds.
    let published = if args.check && args.variant.is_none() && args.base.is_none() {
        patches::published(&dir).and_then(|(first, tip)| {
            let base = variants.get(&first).ok()?.parent.clone()?;
            variants.get(&tip).ok()?;
            Some((tip, base))
        })
    } else {
        None
    };
    let (variant, base) = match &published {
        Some((tip, base)) => (tip.clone(), Some(base.as_str())),
        None => (variants.named_or_default(&root, args.variant.as_deref())?.name.clone(), args.base.as_deref()),
    };
    let req = patches::SeriesRequest { variant: &variant, base, reroll_of: args.reroll_of.as_deref() };
    match patches::write_or_check(&root, &req, &dir, args.check)? {
        Written::UpToDate(n) => ui.out(format!("patches/ is up to date ({n} files)")),
        Written::Wrote(n) => ui.out(format!("wrote {n} files to {}", dir.display())),
    }
    Ok(())
}
