//! The mailable patch series along a variant's parent chain: one patch per step from the
//! baseline, with its message from the notes, and the cover letter; and the check that
//! what is committed under patches/ is what the tree gives now.

use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::publish::pr;
use crate::source::materialise::{self, CfgSet};
use crate::workspace::notes;
use crate::workspace::variant::{Variant, Variants};
use std::collections::BTreeMap;
use std::path::Path;

fn tree(root: &Path, variants: &Variants, v: &Variant) -> Result<BTreeMap<String, String>> {
    let known = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
    let cfg = CfgSet { enabled: v.features.iter().cloned().collect(), known };
    Ok(materialise::crate_tree(&root.join("driver").join("src"), &cfg)?
        .into_iter()
        .map(|o| (format!("driver/src/{}", o.rel_path.display()), o.text))
        .collect())
}

/// A unified diff of two trees in git's format.
pub fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> (String, Vec<(String, usize, usize)>) {
    let mut out = String::new();
    let mut stat = Vec::new();
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let old = a.get(name).map(String::as_str).unwrap_or("");
        let new = b.get(name).map(String::as_str).unwrap_or("");
        if old == new {
            continue;
        }
        let d = similar::TextDiff::from_lines(old, new);
        let (mut plus, mut minus) = (0, 0);
        for c in d.iter_all_changes() {
            match c.tag() {
                similar::ChangeTag::Insert => plus += 1,
                similar::ChangeTag::Delete => minus += 1,
                similar::ChangeTag::Equal => {}
            }
        }
        stat.push((name.clone(), plus, minus));
        out += &format!("diff --git a/{name} b/{name}\n");
        let (from, to) = match (a.contains_key(name), b.contains_key(name)) {
            (false, _) => {
                out += "new file mode 100644\n";
                ("/dev/null".to_string(), format!("b/{name}"))
            }
            (_, false) => {
                out += "deleted file mode 100644\n";
                (format!("a/{name}"), "/dev/null".to_string())
            }
            _ => (format!("a/{name}"), format!("b/{name}")),
        };
        out += &d.unified_diff().context_radius(3).header(&from, &to).to_string();
    }
    (out, stat)
}

fn format_patch(
    n: usize,
    total: usize,
    subject: &str,
    message: &str,
    diff: &str,
    stat: &[(String, usize, usize)],
) -> String {
    let mut s = format!("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: bench <bench@localhost>\nSubject: [PATCH {n}/{total}] {subject}\n\n");
    s += message.trim();
    s += "\n---\n";
    let width = stat.iter().map(|(f, _, _)| f.len()).max().unwrap_or(0);
    for (f, p, m) in stat {
        s += &format!(" {f:<width$} | {:>4} {}{}\n", p + m, "+".repeat((*p).min(40)), "-".repeat((*m).min(40)));
    }
    let (p, m): (usize, usize) = stat.iter().fold((0, 0), |acc, (_, p, m)| (acc.0 + p, acc.1 + m));
    s += &format!(" {} files changed, {p} insertions(+), {m} deletions(-)\n\n", stat.len());
    s += diff;
    s += "-- \nbench\n";
    s
}

/// The series: file name -> contents.
pub fn series(root: &Path, variant: &str) -> Result<BTreeMap<String, String>> {
    let variants = Variants::load(root)?;
    let mut chain = vec![variants.get(variant)?.clone()];
    while let Some(p) = chain.last().expect("not empty").parent.clone() {
        chain.push(variants.get(&p)?.clone());
    }
    chain.reverse();
    let steps: Vec<(&Variant, &Variant)> = chain.windows(2).map(|w| (&w[0], &w[1])).collect();
    let all_notes = notes::load_all(root, &variants)?;
    let mut out = BTreeMap::new();
    let total = steps.len();
    for (i, (parent, child)) in steps.iter().enumerate() {
        let (d, stat) = diff(&tree(root, &variants, parent)?, &tree(root, &variants, child)?);
        let subject = format!("bes2600: {}", child.title.clone().unwrap_or_else(|| child.name.clone()));
        let message = format!(
            "{}\n\nVariant: {} (features: {})",
            child.rationale.text.trim(),
            child.name,
            child.features.join(", ")
        );
        let slug: String = child.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        out.insert(format!("{:04}-{slug}.patch", i + 1), format_patch(i + 1, total, &subject, &message, &d, &stat));
    }
    let v = variants.get(variant)?;
    let ctx = pr::context(root, &variants, &all_notes, v, false)?;
    let body = pr::render_file(&pr::templates(root).join("pr.md.j2"), &ctx)?;
    let (title, rest) = body.split_once('\n').unwrap_or((&body, ""));
    let cover = pr::render_file(
        &pr::templates(root).join("cover-letter.j2"),
        &minijinja::context! { count => total, title => title, body => rest.trim() },
    )?;
    out.insert("0000-cover-letter.patch".into(), cover);
    Ok(out)
}

/// What [`write_or_check`] did.
pub enum Written {
    /// The directory holds exactly the series.
    UpToDate(usize),
    /// Files written.
    Wrote(usize),
}

/// Writes the series of `variant` into `dir` (stale files removed, each file written to a
/// temporary and renamed), or with `check` only compares: a stale directory is a failure
/// naming the files.
pub fn write_or_check(root: &Path, variant: &str, dir: &Path, check: bool) -> Result<Written> {
    let want = series(root, variant)?;
    let existing: BTreeMap<String, String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".patch"))
                .filter_map(|e| {
                    Some((e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    if check {
        let stale: Vec<String> = want
            .iter()
            .filter(|(k, v)| existing.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(existing.keys().filter(|k| !want.contains_key(*k)).cloned())
            .collect();
        if stale.is_empty() {
            return Ok(Written::UpToDate(want.len()));
        }
        return Err(BenchError::new(Kind::Failed, format!("{} is stale: {}", dir.display(), stale.join(", ")))
            .hint(format!("regenerate with `bench patches --variant {variant}` and commit the result")));
    }
    std::fs::create_dir_all(dir).or_env(format!("cannot create {}", dir.display()))?;
    for k in existing.keys().filter(|k| !want.contains_key(*k)) {
        let _ = std::fs::remove_file(dir.join(k));
    }
    for (k, v) in &want {
        let p = dir.join(k);
        let tmp = dir.join(format!(".{k}.tmp"));
        crate::fsutil::write_synced(&tmp, v.as_bytes(), false)?;
        std::fs::rename(&tmp, &p).or_env(format!("cannot write {}", p.display()))?;
    }
    Ok(Written::Wrote(want.len()))
}
