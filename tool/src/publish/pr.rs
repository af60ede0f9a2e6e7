//! Pull-request descriptions and cover letters rendered with minijinja from the variant,
//! its parent's latest baseline note, its notes, its audit, and (for local use) its build
//! record and simulated stress figures.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::workspace::notes::{self, Note};
use crate::workspace::variant::{Variant, Variants};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct NoteRef {
    title: String,
    file: String,
    srcversion: Option<String>,
    kernel: Option<String>,
}

impl NoteRef {
    fn of(n: &crate::workspace::notes::Note) -> Self {
        NoteRef {
            title: n.front.title.clone(),
            file: n.file.clone(),
            srcversion: n.front.srcversion.clone(),
            kernel: n.front.kernel.clone(),
        }
    }
}

/// What goes into a rendered PR. `local` adds the build ledger and the last stress run of
/// this workspace (not committed, so patches/ leaves them out). Long because it gathers
/// one template context from notes, predictions, the audit, the build and the stress run.
pub fn context(
    root: &Path,
    variants: &Variants,
    all_notes: &[Note],
    v: &Variant,
    local: bool,
) -> Result<minijinja::Value> {
    let of_kind = |kind: &str, name: &str| -> Vec<&Note> {
        let mut n: Vec<&Note> =
            all_notes.iter().filter(|n| n.front.kind == kind && n.front.variants.iter().any(|x| x == name)).collect();
        n.sort_by(|a, b| (&a.front.date, &a.file).cmp(&(&b.front.date, &b.file)));
        n
    };
    // The parent's latest baseline, or the nearest ancestor's.
    let mut baseline = None;
    let mut up = v.parent.clone();
    while let Some(p) = up {
        if let Some(n) = of_kind("baseline", &p).last() {
            let mut f = notes::baseline_figures(n)?;
            f.insert("file".into(), n.file.clone());
            f.insert("srcversion".into(), n.front.srcversion.clone().unwrap_or_else(|| "unknown".into()));
            f.entry("offered".into()).or_insert_with(|| "unknown rate".into());
            baseline = Some(f);
            break;
        }
        up = variants.get(&p)?.parent.clone();
    }
    let plan = of_kind("plan", &v.name).last().map(|n| {
        minijinja::context! {
            title => n.front.title, sections => n.sections(), predictions => n.front.predictions,
            checklist => n.front.checklist, srcversion => n.front.srcversion, board => n.front.board,
            rollback => n.front.rollback, file => n.file,
        }
    });
    let verdicts: Vec<minijinja::Value> = of_kind("verdict", &v.name)
        .iter()
        .map(|n| minijinja::context! { title => n.front.title, body => n.body.trim(), file => n.file })
        .collect();
    let motivation: Vec<NoteRef> = v
        .rationale
        .notes
        .iter()
        .filter_map(|path| all_notes.iter().find(|n| &n.file == path))
        .filter(|n| !n.front.variants.contains(&v.name) || n.front.kind == "finding")
        .map(NoteRef::of)
        .collect();
    // Findings about this variant's contracts (the audit's, and the Phase 6 lesson): cited
    // in the Contract section, where a reviewer checks the shared state.
    let findings: Vec<NoteRef> = of_kind("finding", &v.name).iter().map(|n| NoteRef::of(n)).collect();
    let report = crate::source::audit::audit_variant(root, variants, v)?;
    let mut moved = Vec::new();
    if let Some(p) = &v.parent {
        let d = crate::source::audit::delta(
            p,
            &crate::source::audit::audit_variant(root, variants, variants.get(p)?)?,
            &report,
        );
        for (f, a, b, single) in &d.moved_writers {
            let join = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            moved.push(format!(
                "`{f}`: written by {} before, by {} now{}",
                join(a),
                join(b),
                if *single { " (still single-writer)" } else { "" }
            ));
        }
    }
    let violations: Vec<minijinja::Value> = report
        .violations
        .iter()
        .map(|x| minijinja::context! { field => x.field, rule => x.rule, message => x.message })
        .collect();
    let build = if local {
        crate::workspace::ledger::read(root)?
            .into_iter()
            .rev()
            .find(|r| r.variant == v.name)
            .map(|r| minijinja::context! { path => r.path, srcversion => r.srcversion, id => r.id })
    } else {
        None
    };
    let stress = if local { read_stress(root, &v.name) } else { None };
    let summary = v.rationale.text.trim().split("\n\n").next().unwrap_or("").replace('\n', " ");
    Ok(minijinja::context! {
        title => format!("bes2600: {}", v.title.clone().unwrap_or_else(|| v.name.clone())),
        variant => minijinja::context! { name => v.name, summary => summary, scope => v.scope, features => v.features, status => v.status },
        parent => v.parent,
        baseline => baseline,
        plan => plan,
        verdicts => verdicts,
        motivation => motivation,
        audit => minijinja::context! { clean => report.clean(), violations => violations, moved => moved, findings => findings },
        build => build,
        stress => stress,
    })
}

fn read_stress(root: &Path, variant: &str) -> Option<minijinja::Value> {
    let p = crate::workspace::ledger::state_dir(root).join("stress").join(format!("{variant}.json"));
    let r = crate::sim::report::SimReport::parse(&std::fs::read(&p).ok()?, &p.display().to_string()).ok()?;
    Some(minijinja::Value::from_serialize(&serde_json::json!({
        "seed": r.data.seed, "verdict": if r.data.clean { "clean" } else { "FAILED" }, "stages": r.raw["stages"],
    })))
}

/// Renders `template` (a file) with `ctx`; errors name the template and line.
pub fn render_file(path: &Path, ctx: &minijinja::Value) -> Result<String> {
    let text = std::fs::read_to_string(path).or_usage(format!("cannot read template {}", path.display()))?;
    render(&path.display().to_string(), &text, ctx)
}

pub fn render(name: &str, text: &str, ctx: &minijinja::Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let fail = |e: minijinja::Error| {
        BenchError::usage(format!("template {name}:{}: {}", e.line().unwrap_or(0), e.kind()))
            .cause(e.detail().unwrap_or("").to_string())
    };
    env.add_template("t", text).map_err(fail)?;
    let out = env.get_template("t").expect("just added").render(ctx).map_err(fail)?;
    // Collapse runs of blank lines the template's conditionals leave.
    let mut clean = String::new();
    let mut blank = 0;
    for line in out.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        clean.push_str(line.trim_end());
        clean.push('\n');
    }
    Ok(clean.trim().to_string() + "\n")
}

/// The default template directory.
pub fn templates(root: &Path) -> std::path::PathBuf {
    root.join("tool").join("templates")
}
