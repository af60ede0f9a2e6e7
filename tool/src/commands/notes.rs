//! `bench notes`: lists and validates the lab notes; `bench notes new` starts one.

use crate::error::Result;
use crate::ui::Ui;
use crate::workspace::new_note;
use crate::workspace::notes;
use crate::workspace::variant::Variants;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum NotesSub {
    /// Start a note from the template of its kind.
    New {
        /// The variant the note is about.
        #[arg(long)]
        variant: String,
        /// baseline, plan, verdict or finding.
        #[arg(long)]
        kind: String,
        /// Title (default: the variant and kind).
        #[arg(long)]
        title: Option<String>,
        /// Date YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
    /// Write a baseline note from a recorded one-seed stress run (its raw counters).
    #[command(
        after_help = "Example:\n  bench stress --variant c-prep --ramp 4:5m --seed 1   (prints: stress run #4)\n  bench notes baseline --from-stress 4\n\nThe note is the variant's baseline: a child's PR shows it as its pre-patch baseline."
    )]
    Baseline {
        /// The run id `bench stress` printed ("recorded as stress run #N").
        #[arg(long, value_name = "RUN")]
        from_stress: u64,
        /// Which stage's counters (default: the last).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
        stage: Option<u64>,
        /// Date YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
}

#[derive(Args, Debug)]
#[command(after_help = "A note is Markdown with a TOML front matter between +++ lines: date, variants, kind, \
title, and as needed srcversion, board, kernel, verdict, rollback, forensics, offered, \
[measurements] (raw counters and durations: { value, unit }), [[predictions]] (metric, from, to, \
confidence) and [[checklist]] (item, done). Rates and ratios are computed by bench, never typed in.")]
pub struct NotesArgs {
    #[command(subcommand)]
    pub sub: Option<NotesSub>,
    /// Print the notes as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &NotesArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    match &args.sub {
        Some(NotesSub::New { variant, kind, title, date }) => {
            if !root.join("variants").join(format!("{variant}.toml")).is_file() {
                ui.status(format!("note: no variants/{variant}.toml yet; cite this note from it when you add it"));
            }
            let path = new_note::from_template(&root, variant, kind, title.as_deref(), date.as_deref())?;
            ui.out(format!("{}", path.display()));
            ui.status("fill in every empty value: `bench notes` refuses the note until then");
            return Ok(());
        }
        Some(NotesSub::Baseline { from_stress, stage, date }) => {
            let path = new_note::baseline_from_run(&root, *from_stress, stage.map(|s| s as usize), date.as_deref())?;
            ui.out(format!("{}", path.display()));
            ui.status(
                "a baseline note of the simulator: its variant's children's PRs show it as their pre-patch baseline",
            );
            return Ok(());
        }
        None => {}
    }
    let variants = Variants::load(&root)?;
    let all = notes::load_all(&root, &variants)?;
    if args.json {
        ui.out(serde_json::to_string_pretty(&all).expect("serialises"));
        return Ok(());
    }
    ui.out(format!("{:<44} {:<10} {:<9} {:<14} {}", "note", "date", "kind", "variants", "title"));
    for n in &all {
        ui.out(format!(
            "{:<44} {:<10} {:<9} {:<14} {}",
            n.file,
            n.front.date,
            n.front.kind,
            n.front.variants.join(","),
            n.front.title
        ));
    }
    ui.out(format!("{} notes, all valid", all.len()));
    Ok(())
}
