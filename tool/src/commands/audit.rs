//! `bench audit`: the contract audit of a variant's shared state, per feature.

use crate::error::{BenchError, Kind, Result};
use crate::source::audit::{self, Report};
use crate::ui::Ui;
use crate::workspace::variant::Variants;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Markdown,
}

#[derive(Args, Debug)]
#[command(after_help = "Reads the crate as the compiler does: rustc's MIR of the build with the variant's \
features (resolved calls, typed places, explicit guard drops) and rustdoc's JSON (fields, `contract:`, \
`context:`, `access:` and `callback-context:` lines). For every context, every shared field it reaches \
by any route (helpers, trait methods by receiver, generics, closures, fn pointers, macros, statics) and \
how: plain or atomic with its ordering, which locks are held. Fields are named by their owning type.

Verdicts: multi-context-write (plain writes from two contexts, no common lock); shared-plain-rmw and \
lost-update (a load then a store in one context, plain or atomic, or an ignored compare-exchange, while \
another writes); contract-contradicted (writers, atomic, owner, init); lock-bypass; missing-contract; \
unreached (touches shared state, no declared context reaches it). Calls into code outside the crate \
that are handed shared state are listed as not followed.

Exit status: 0 clean, 1 violations, 2 bad input (or the crate does not build), 3 environment.

Examples:
  bench audit --variant c                          Patch C: hw_bufs_used from rx_work and bh
  bench audit --variant c --explain hw_bufs_used   every access with its locks and call paths
  bench audit --all --json
  bench audit --crate path/to/crate --features x   any crate that follows the conventions")]
pub struct AuditArgs {
    /// Variant to audit.
    #[arg(long, required_unless_present_any = ["all", "crate_dir"], conflicts_with_all = ["all", "crate_dir"])]
    pub variant: Option<String>,
    /// Audit every variant.
    #[arg(long, conflicts_with = "crate_dir")]
    pub all: bool,
    /// Audit any crate that follows the conventions (the directory holding its Cargo.toml)
    /// instead of a variant of the workspace's driver.
    #[arg(long = "crate", value_name = "DIR")]
    pub crate_dir: Option<std::path::PathBuf>,
    /// With --crate: Cargo features to build it with (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "crate_dir")]
    pub features: Vec<String>,
    /// Show every path from each context to each access of FIELD.
    #[arg(long, value_name = "FIELD")]
    pub explain: Option<String>,
    /// Print the audit as JSON.
    #[arg(long)]
    pub json: bool,
    /// Output for people: a table, or Markdown for packages and PRs.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &AuditArgs, ui: &Ui) -> Result<()> {
    if let Some(dir) = &args.crate_dir {
        return run_crate(args, dir, ui);
    }
    let root = args.ws.root()?;
    let variants = Variants::load(&root)?;
    let names: Vec<String> = match &args.variant {
        Some(v) => vec![variants.get(v)?.name.clone()],
        None => variants.list.iter().map(|v| v.name.clone()).collect(),
    };
    let mut failed = Vec::new();
    let mut json = Vec::new();
    for name in &names {
        let v = variants.get(name)?;
        let report = audit::audit_variant(&root, &variants, v)?;
        let delta = match &v.parent {
            Some(p) => Some(audit::delta(p, &audit::audit_variant(&root, &variants, variants.get(p)?)?, &report)),
            None => None,
        };
        if !report.clean() {
            failed.push(name.clone());
        }
        if let Some(field) = &args.explain {
            explain(ui, name, &report, field)?;
            continue;
        }
        if args.json {
            json.push(serde_json::json!({"variant": name, "clean": report.clean(), "report": report, "delta": delta}));
        } else {
            match args.format {
                Format::Markdown => ui.out(audit::markdown(name, &report, delta.as_ref())),
                Format::Table => table(ui, name, &report, delta.as_ref()),
            }
        }
    }
    if args.json {
        ui.out(serde_json::to_string_pretty(&json).expect("serialises"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(BenchError::new(Kind::Failed, format!("contract violations in {}", failed.join(", ")))
            .hint("see the call paths above; `bench audit --variant V --explain FIELD` shows every path"))
    }
}

fn run_crate(args: &AuditArgs, dir: &std::path::Path, ui: &Ui) -> Result<()> {
    if !dir.join("Cargo.toml").is_file() {
        return Err(BenchError::usage(format!("no Cargo.toml in {}", dir.display()))
            .hint("--crate takes the directory that holds the crate's Cargo.toml"));
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let work = dir.join("target").join("bench");
    let report = audit::audit_crate(&audit::CrateRef { dir, features: &args.features, work: &work })?;
    if let Some(field) = &args.explain {
        explain(ui, &name, &report, field)?;
    } else if args.json {
        ui.out(
            serde_json::to_string_pretty(
                &serde_json::json!([{"crate": name, "clean": report.clean(), "report": report}]),
            )
            .expect("serialises"),
        );
    } else {
        match args.format {
            Format::Markdown => ui.out(audit::markdown(&name, &report, None)),
            Format::Table => table(ui, &name, &report, None),
        }
    }
    if report.clean() {
        Ok(())
    } else {
        Err(BenchError::new(Kind::Failed, format!("contract violations in {name}"))
            .hint("see the call paths above; `bench audit --crate DIR --explain FIELD` shows every path"))
    }
}

fn table(ui: &Ui, name: &str, r: &Report, d: Option<&audit::Delta>) {
    ui.out(format!(
        "audit {name}: {} ({} violations; contexts: {})",
        if r.clean() { "PASS" } else { "FAIL" },
        r.violations.len(),
        r.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    for v in &r.violations {
        ui.out(format!("  VIOLATION {} [{}]: {}", v.field, v.rule, v.message));
        for e in v.evidence.iter().take(6) {
            let held =
                if e.locks_held.is_empty() { String::new() } else { format!(" holding {}", e.locks_held.join(", ")) };
            let load = e.load_site.as_ref().map(|l| format!(" (loaded at {l})")).unwrap_or_default();
            ui.out(format!("    {:<10} {} at {}{load}{held}", e.context, e.access.label(), e.site));
            ui.out(format!("               path: {}", e.call_path.join(" -> ")));
        }
    }
    ui.out(format!("  {:<28} {:<22} {:<22} {:<30} {}", "field", "contract", "writers", "readers", "plain RMW in"));
    for f in &r.fields {
        let j = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        ui.out(format!(
            "  {:<28} {:<22} {:<22} {:<30} {}",
            f.field,
            f.contract.as_ref().map_or("(none)".into(), |c| c.to_string()),
            j(&f.writers),
            j(&f.readers),
            j(&f.rmw_contexts)
        ));
    }
    if let Some(d) = d {
        ui.out(format!("  against {}:", d.parent));
        for (f, a, b) in &d.moved_functions {
            ui.out(format!(
                "    call moved   {f}: {} -> {}",
                a.iter().cloned().collect::<Vec<_>>().join(","),
                b.iter().cloned().collect::<Vec<_>>().join(",")
            ));
        }
        for (f, a, b, single) in &d.moved_writers {
            ui.out(format!(
                "    writer moved {f}: {} -> {}{}",
                a.iter().cloned().collect::<Vec<_>>().join(","),
                b.iter().cloned().collect::<Vec<_>>().join(","),
                if *single { " (still single-writer: not a violation)" } else { "" }
            ));
        }
        let j = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        for f in &d.added_fields {
            ui.out(format!("    field added  {f}"));
        }
        for f in &d.removed_fields {
            ui.out(format!("    field gone   {f}"));
        }
        for (f, c) in &d.added_functions {
            ui.out(format!("    call added   {f}: {}", j(c)));
        }
        for (f, c) in &d.removed_functions {
            ui.out(format!("    call gone    {f}: was {}", j(c)));
        }
        for (f, a, b) in &d.platform_ops {
            let show = |s: &std::collections::BTreeSet<String>| if s.is_empty() { "-".to_string() } else { j(s) };
            ui.out(format!("    platform op  {f}: {} -> {}", show(a), show(b)));
        }
        for (f, a, b) in &d.newly_shared {
            ui.out(format!("    now shared   {f}: {a} and {b}"));
        }
        for v in &d.new_violations {
            ui.out(format!("    new violation: {v}"));
        }
        for v in &d.fixed_violations {
            ui.out(format!("    fixed: {v}"));
        }
    }
    if !r.unresolved.is_empty() {
        ui.out(format!(
            "  not followed ({} calls defined outside the crate, handed shared state):",
            r.unresolved.len()
        ));
        for u in &r.unresolved {
            let first = u.sites.iter().next().cloned().unwrap_or_default();
            let more = if u.sites.len() > 1 { format!(" (+{} more)", u.sites.len() - 1) } else { String::new() };
            ui.out(format!("    {} at {first}{more}", u.call));
        }
    }
}

fn explain(ui: &Ui, name: &str, r: &Report, field: &str) -> Result<()> {
    let found = r.find_field(field);
    let f = match found.as_slice() {
        [f] => *f,
        [] => {
            let known: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
            let bare: Vec<&str> = known.iter().map(|k| k.rsplit(['.', ' ']).next().unwrap_or(k)).collect();
            let mut e = BenchError::usage(format!("no shared field `{field}` in {name}"));
            if let Some(n) = crate::workspace::variant::nearest(field, &known)
                .or_else(|| crate::workspace::variant::nearest(field, &bare))
            {
                e = e.hint(format!("did you mean `{n}`?"));
            }
            return Err(e);
        }
        many => {
            return Err(BenchError::usage(format!("`{field}` names {} fields in {name}", many.len())).hint(format!(
                "name one by its owner: {}",
                many.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let field = f.field.as_str();
    ui.out(format!(
        "{field} in {name}: contract {}, declared at {}",
        f.contract.as_ref().map_or("(none)".into(), |c| c.to_string()),
        f.declared_at
    ));
    // Every access once, then every call path that reaches it.
    let mut groups: std::collections::BTreeMap<_, Vec<&audit::Reach>> = std::collections::BTreeMap::new();
    for reach in r.reaches.iter().filter(|x| x.field == field) {
        groups
            .entry((reach.context.clone(), reach.access.clone(), reach.site.clone(), reach.locks_held.clone()))
            .or_default()
            .push(reach);
    }
    for reaches in groups.values() {
        let reach = reaches[0];
        let held = if reach.locks_held.is_empty() {
            " holding no lock".to_string()
        } else {
            format!(" holding {}", reach.locks_held.join(", "))
        };
        let load = reach.load_site.as_ref().map(|l| format!(" (loaded at {l})")).unwrap_or_default();
        ui.out(format!("  [{}] {} at {}{load}{held}", reach.context, reach.access.label(), reach.site));
        let paths: std::collections::BTreeSet<String> = reaches.iter().map(|x| x.call_path.join(" -> ")).collect();
        for p in paths {
            ui.out(format!("      {p}"));
        }
    }
    Ok(())
}
