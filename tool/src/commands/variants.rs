//! `bench variants`: the variant tree with features, status and the last built srcversion.

use crate::error::Result;
use crate::ui::Ui;
use crate::workspace::ledger;
use crate::workspace::variant::{Variant, Variants};
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Validates every variants/*.toml on the way (features against the driver crate, \
parents, notes); exit 2 names the file and what is wrong.")]
pub struct VariantsArgs {
    /// Print the variants as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print each variant's feature set (with what they imply, sorted) on a line of its
    /// own, comma-separated: for scripts that build every variant's set.
    #[arg(long, conflicts_with = "json")]
    pub feature_sets: bool,
    /// Print one variant's feature set (with what it implies, in cargo's order),
    /// comma-separated: what `cargo --features` takes to build that variant.
    #[arg(long, value_name = "VARIANT", conflicts_with_all = ["json", "feature_sets"])]
    pub features_of: Option<String>,
    /// Print the name of the variant commands use when none is named (bench.toml's
    /// `default_variant`, else the tree's one tip that has not failed).
    #[arg(long, conflicts_with_all = ["json", "feature_sets", "features_of"])]
    pub default: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &VariantsArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let variants = Variants::load(&root)?;
    let records = ledger::read(&root)?;
    let last_srcversion = |name: &str| -> Option<String> {
        records.iter().rev().find(|r| r.variant == name).map(|r| r.srcversion.clone())
    };
    if args.feature_sets {
        for v in &variants.list {
            let mut f = v.features.clone();
            f.sort();
            ui.out(f.join(","));
        }
        return Ok(());
    }
    if args.default {
        ui.out(variants.default_variant(&root)?.name.clone());
        return Ok(());
    }
    if let Some(name) = &args.features_of {
        ui.out(variants.get(name)?.features.join(","));
        return Ok(());
    }
    if args.json {
        let list: Vec<serde_json::Value> = variants
            .list
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name, "parent": v.parent, "features": v.features, "status": v.status,
                    "last_srcversion": last_srcversion(&v.name),
                })
            })
            .collect();
        ui.out(serde_json::to_string_pretty(&list).expect("serialises"));
        return Ok(());
    }
    // The name column fits the deepest, longest name.
    fn width(all: &Variants, v: &Variant, depth: usize) -> usize {
        let own = 2 * depth + v.name.len();
        all.list
            .iter()
            .filter(|c| c.parent.as_deref() == Some(v.name.as_str()))
            .map(|c| width(all, c, depth + 1))
            .fold(own, usize::max)
    }
    let w = variants.list.iter().filter(|v| v.parent.is_none()).map(|v| width(&variants, v, 0)).fold(14, usize::max);
    fn walk(ui: &Ui, all: &Variants, v: &Variant, depth: usize, w: usize, last: &dyn Fn(&str) -> Option<String>) {
        ui.out(format!(
            "{:<w$} {:<10} {:<24} [{}]",
            format!("{}{}", "  ".repeat(depth), v.name),
            v.status,
            last(&v.name).map_or("-".to_string(), |s| s),
            v.features.join(", ")
        ));
        for child in all.list.iter().filter(|c| c.parent.as_deref() == Some(v.name.as_str())) {
            walk(ui, all, child, depth + 1, w, last);
        }
    }
    ui.out(format!("{:<w$} {:<10} {:<24} {}", "variant", "status", "last srcversion", "features"));
    for root_variant in variants.list.iter().filter(|v| v.parent.is_none()) {
        walk(ui, &variants, root_variant, 0, w, &last_srcversion);
    }
    Ok(())
}
