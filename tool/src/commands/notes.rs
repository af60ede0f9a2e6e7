//! `bench notes`: lists and validates the lab notes; `bench notes new` starts one.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::ui::Ui;
use crate::workspace::notes::{self, KINDS};
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
    if let Some(NotesSub::New { variant, kind, title, date }) = &args.sub {
        // The variant may not exist yet: its file will cite this note.
        if variant.is_empty() || !variant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(BenchError::usage(format!("`{variant}` is not a variant name"))
                .hint("letters, digits, - and _ (the name of its variants/NAME.toml)"));
        }
        if !root.join("variants").join(format!("{variant}.toml")).is_file() {
            ui.status(format!("note: no variants/{variant}.toml yet; cite this note from it when you add it"));
        }
        if !KINDS.contains(&kind.as_str()) {
            return Err(
                BenchError::usage(format!("unknown kind `{kind}`")).hint(format!("one of {}", KINDS.join(", ")))
            );
        }
        let date = date.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            crate::workspace::git::rfc3339(secs)[..10].to_string()
        });
        let title = title.clone().unwrap_or_else(|| format!("{variant} {kind}"));
        let extra = match kind.as_str() {
            "baseline" => "srcversion = \"\"\noffered = { value = 4, unit = \"MB/s\" }\n\n[measurements]\nduration = { value = 0, unit = \"s\" }\nrx_packets = { value = 0, unit = \"packets\" }\nrx_bytes = { value = 0, unit = \"MB\" }\nsdio_rx_work_dispatches = { value = 0, unit = \"dispatches\" }\nsdio_tx_work_dispatches = { value = 0, unit = \"dispatches\" }\n",
            "plan" => "rollback = \"\"\n\n[[predictions]]\nmetric = \"\"\nfrom = \"\"\nto = \"\"\nconfidence = \"medium\"\n\n[[checklist]]\nitem = \"\"\n",
            "verdict" => "verdict = \"\"\nsrcversion = \"\"\nkernel = \"\"\n",
            _ => "",
        };
        let text = format!("+++\ndate = \"{date}\"\nvariants = [\"{variant}\"]\nkind = \"{kind}\"\ntitle = \"{title}\"\n{extra}+++\n\n");
        let path = root.join("notes").join(format!("{date}-{variant}-{kind}.md"));
        if path.exists() {
            return Err(BenchError::usage(format!("{} exists", path.display()))
                .hint("pass --date to start another, or edit that one"));
        }
        std::fs::create_dir_all(root.join("notes")).or_env("cannot create notes/")?;
        crate::fsutil::write_synced(&path, text.as_bytes(), false)?;
        ui.out(format!("{}", path.display()));
        ui.status("fill in every empty value: `bench notes` refuses the note until then");
        return Ok(());
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
