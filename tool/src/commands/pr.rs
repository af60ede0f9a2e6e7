//! `bench pr`: the pull-request description of a variant (Markdown for forges, or a cover
//! letter for mail), every figure computed from notes, audit and build records.

use crate::error::Result;
use crate::publish::pr;
use crate::ui::Ui;
use crate::workspace::notes;
use crate::workspace::variant::Variants;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrFormat {
    Markdown,
    Email,
}

#[derive(Args, Debug)]
#[command(after_help = "Sources: variants/NAME.toml (title, rationale, scope), the parent's latest baseline \
note (raw counters; rates and ratios computed here), the variant's plan and verdict notes, the notes its \
rationale cites (motivation), the contract audit, and the build, stress run and measure run you name \
(--build ID, --stress RUN, --measure RUN: nothing is taken from whatever ran last). The footer lists every input. Templates: tool/templates/pr.md.j2 and cover-letter.j2.

Examples:
  bench pr --variant c
  bench stress --variant c-v2 --against c-prep --seeds 1..5 --ramp 4:60s   (prints: stress run #7)
  bench pr --variant c-v2 --stress 7 --build 3     predictions with their simulated check
  bench measure --variant c-v2                     (prints: measure run #8)
  bench pr --variant c-v2 --stress 7 --measure 8   the cost per RX packet, measured and modelled
  bench pr --variant c-v2 --format email --out cover.txt
  bench pr --variant c --template my-pr.md.j2")]
pub struct PrArgs {
    /// Variant to describe.
    #[arg(long)]
    pub variant: String,
    /// Markdown for a forge, or a mail cover letter.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: PrFormat,
    /// Your own minijinja template for the description.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Cite this build (`bench build` prints its id: "build #N").
    #[arg(long, value_name = "ID")]
    pub build: Option<u64>,
    /// Show this stress run (`bench stress` prints its id); a run `--against` the parent
    /// also checks the predictions.
    #[arg(long, value_name = "RUN")]
    pub stress: Option<u64>,
    /// Show this measure run (`bench measure` prints its id): the cost per RX packet,
    /// measured on the code and modelled, side by side.
    #[arg(long, value_name = "RUN")]
    pub measure: Option<u64>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &PrArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let variants = Variants::load(&root)?;
    let v = variants.get(&args.variant)?;
    let all = notes::load_all(&root, &variants)?;
    let ctx = pr::context(
        &root,
        &variants,
        &all,
        v,
        pr::Inputs { build: args.build, stress: args.stress, measure: args.measure },
    )?;
    let template = args.template.clone().unwrap_or_else(|| pr::templates(&root).join("pr.md.j2"));
    let body = pr::render_file(&template, &ctx)?;
    let text = match args.format {
        PrFormat::Markdown => body,
        PrFormat::Email => {
            let (title, rest) = body.split_once('\n').unwrap_or((&body, ""));
            let from = crate::publish::patches::identity(&root)?.to_string();
            let cover = minijinja::context! { count => 1, title => title, body => rest.trim(), from => from };
            pr::render_file(&pr::templates(&root).join("cover-letter.j2"), &cover)?
        }
    };
    match &args.out {
        Some(p) => {
            crate::fsutil::write_synced(p, text.as_bytes(), false)?;
            ui.status(format!("wrote {}", p.display()));
        }
        None => ui.out(text.trim_end()),
    }
    Ok(())
}
