//! Pull-request descriptions and cover letters rendered with minijinja from the variant,
//! its parent's latest baseline note, its notes, its audit, and (for local use) its build
//! record and simulated stress figures.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::workspace::notes::{self, Note};
use crate::workspace::variant::{Variant, Variants};
use serde::Serialize;
use std::collections::BTreeMap;
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

/// The inputs of a PR beyond the committed notes and variants, each named explicitly (so
/// nothing depends on what ran last in the workspace) and listed in the PR's footer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs {
    /// A build record id of `bench build` (the ledger).
    pub build: Option<u64>,
    /// A stress run id of `bench stress` (one seed, a swarm, or `--against` the parent,
    /// whose predictions checks the PR shows).
    pub stress: Option<u64>,
    /// A measure run id of `bench measure` (the cost per RX packet, measured and modelled).
    pub measure: Option<u64>,
}

/// The headings the template places itself; a plan note's other sections follow them in
/// the note's order, so no section is dropped.
const PLACED: [&str; 4] = ["What this saves per RX frame", "Contract", "Phase 7 plan", "Test plan"];

/// What goes into a rendered PR. Long because it gathers one template context from notes,
/// predictions, the audit, the build and the stress run.
pub fn context(
    root: &Path,
    variants: &Variants,
    all_notes: &[Note],
    v: &Variant,
    inputs: Inputs,
) -> Result<minijinja::Value> {
    let of_kind = |kind: &str, name: &str| -> Vec<&Note> {
        let mut n: Vec<&Note> =
            all_notes.iter().filter(|n| n.front.kind == kind && n.front.variants.iter().any(|x| x == name)).collect();
        n.sort_by(|a, b| (&a.front.date, &a.file).cmp(&(&b.front.date, &b.file)));
        n
    };
    // The parent's latest baseline, or the nearest ancestor's (said so when it is not the
    // parent's own).
    let mut baseline = None;
    let mut up = v.parent.clone();
    while let Some(p) = up {
        if let Some(n) = of_kind("baseline", &p).last() {
            let mut f = notes::baseline_figures(n)?;
            f.insert("file".into(), n.file.clone());
            f.insert("srcversion".into(), n.front.srcversion.clone().unwrap_or_else(|| "unknown".into()));
            f.entry("offered".into()).or_insert_with(|| "unknown rate".into());
            f.insert("of".into(), p.clone());
            if v.parent.as_deref() != Some(p.as_str()) {
                f.insert(
                    "not_parents".into(),
                    format!(
                        "`{}` has no baseline note; this is `{p}`'s, its nearest ancestor with one",
                        v.parent.as_deref().unwrap_or("")
                    ),
                );
            }
            baseline = Some(f);
            break;
        }
        up = variants.get(&p)?.parent.clone();
    }
    let stress = inputs.stress.map(|id| stress_context(root, v, id)).transpose()?;
    let cost = inputs.measure.map(|id| cost_context(root, v, id)).transpose()?;
    let checks: BTreeMap<String, serde_json::Value> = stress.as_ref().and_then(|s| s.1.clone()).unwrap_or_default();
    let predicted = |metric: &str, from: &str, to: &str, confidence: &str| -> minijinja::Value {
        minijinja::context! { metric => metric, from => from, to => to, confidence => confidence,
        check => checks.get(metric).cloned() }
    };
    let mut predictions: Vec<minijinja::Value> = v
        .predictions
        .iter()
        .map(|p| {
            let unit = p.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
            predicted(
                &p.metric,
                &format!("{}{unit}", plain(&p.from)),
                &format!("{}{unit}", plain(&p.to)),
                &p.confidence,
            )
        })
        .collect();
    let plan_note = of_kind("plan", &v.name).last().copied();
    if let Some(n) = plan_note {
        predictions.extend(n.front.predictions.iter().map(|p| predicted(&p.metric, &p.from, &p.to, &p.confidence)));
    }
    let plan = plan_note.map(|n| {
        let other: Vec<minijinja::Value> = n
            .sections_in_order()
            .into_iter()
            .filter(|(h, _)| !PLACED.contains(&h.as_str()))
            .map(|(h, t)| minijinja::context! { heading => h, text => t })
            .collect();
        minijinja::context! {
            title => n.front.title, sections => n.sections(), other_sections => other,
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
    let build = match inputs.build {
        Some(id) => {
            let records = crate::workspace::ledger::read(root)?;
            let r = records.iter().find(|r| r.id == id).ok_or_else(|| {
                BenchError::usage(format!("no build #{id} in this workspace's ledger")).hint(format!(
                    "builds of `{}`: {}",
                    v.name,
                    {
                        let ids: Vec<String> =
                            records.iter().filter(|r| r.variant == v.name).map(|r| format!("#{}", r.id)).collect();
                        if ids.is_empty() {
                            format!("none yet: bench build --variant {}", v.name)
                        } else {
                            ids.join(", ")
                        }
                    }
                ))
            })?;
            if r.variant != v.name {
                return Err(BenchError::usage(format!("build #{id} is of `{}`, not `{}`", r.variant, v.name)));
            }
            Some(minijinja::context! { path => r.path, srcversion => r.srcversion, id => r.id, commit => r.commit })
        }
        None => None,
    };
    let mut used_notes: Vec<String> = all_notes
        .iter()
        .filter(|n| n.front.variants.contains(&v.name) || v.rationale.notes.contains(&n.file))
        .map(|n| n.file.clone())
        .collect();
    if let Some(b) = &baseline {
        used_notes.push(b["file"].clone());
    }
    used_notes.sort();
    used_notes.dedup();
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
        stress => stress.map(|s| s.0),
        cost => cost,
        predictions => predictions,
        inputs => minijinja::context! { notes => used_notes, variant_file => format!("variants/{}.toml", v.name) },
    })
}

/// A TOML prediction value as written (a string without quotes).
fn plain(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The stress section of run `id`, and the predictions it checked by metric.
fn stress_context(
    root: &Path,
    v: &Variant,
    id: u64,
) -> Result<(minijinja::Value, Option<BTreeMap<String, serde_json::Value>>)> {
    let r = crate::sim::runs::load(root, id)?;
    if r.kind == crate::sim::runs::RunKind::Measure {
        return Err(BenchError::usage(format!("run #{id} is a `bench measure` run, not a stress run"))
            .hint(format!("pass it as --measure {id}")));
    }
    if r.variant != v.name {
        return Err(BenchError::usage(format!("stress run #{id} is of `{}`, not `{}`", r.variant, v.name)).hint(
            format!(
                "run `bench stress --variant {} --against {}` and pass its id",
                v.name,
                v.parent.as_deref().unwrap_or("PARENT")
            ),
        ));
    }
    let checks = r.comparison.as_ref().and_then(|c| c["predictions"].as_array()).map(|list| {
        list.iter()
            .filter_map(|p| Some((p["metric"].as_str()?.to_string(), p["check"].clone())))
            .collect::<BTreeMap<_, _>>()
    });
    let value = serde_json::json!({
        "id": r.id, "kind": r.kind, "describe": r.describe(), "against": r.against,
        "verdict": if r.clean { "clean" } else { "FAILED" },
        "stages": r.report.as_ref().map(|rep| rep["stages"].clone()),
        "rows": r.comparison.as_ref().map(|c| c["rows"].clone()),
        "summary": r.summary,
    });
    Ok((minijinja::Value::from_serialize(&value), checks))
}

/// The cost section of measure run `id`: each variant's cost per RX packet, measured and
/// modelled, and the two ratios (the template shows both, and says when they disagree).
fn cost_context(root: &Path, v: &Variant, id: u64) -> Result<minijinja::Value> {
    let r = crate::sim::runs::load(root, id)?;
    let measure_hint = || {
        format!(
            "run `bench measure --variant {} --against {}` and pass its id",
            v.name,
            v.parent.as_deref().unwrap_or("PARENT")
        )
    };
    if r.kind != crate::sim::runs::RunKind::Measure {
        return Err(
            BenchError::usage(format!("run #{id} is a stress run, not a `bench measure` run")).hint(measure_hint())
        );
    }
    if r.variant != v.name {
        return Err(BenchError::usage(format!("measure run #{id} is of `{}`, not `{}`", r.variant, v.name))
            .hint(measure_hint()));
    }
    let s = r.summary.clone().unwrap_or_default();
    let value = serde_json::json!({
        "id": r.id, "describe": r.describe(), "against": r.against,
        "variants": s["variants"], "ratio": s["ratio"],
    });
    Ok(minijinja::Value::from_serialize(&value))
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
