//! Variants of the patch series: `variants/<name>.toml`, validated against the driver
//! crate's features (read with cargo_metadata), the parent chain, and the notes.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATUSES: &[&str] = &["proposed", "staged", "verified", "failed", "superseded"];
/// How sure a prediction is.
pub const CONFIDENCES: &[&str] = &["high", "medium", "low"];
/// The figures a prediction can name: what the simulator measures per stage (and `bench
/// stress --against` checks).
pub const FIGURES: [&str; 11] = [
    "observed_mib_per_s",
    "rx_work_per_s",
    "rx_work_per_1000_rx_packets",
    "tx_work_per_s",
    "rx_queue_lock_per_s",
    "rx_queue_lock_per_rx_packet",
    "bh_rx_wakeups_per_rx_batch",
    "bh_cpu_pct",
    "spinlock_cpu_pct",
    "tx_wait_p50_ms",
    "tx_wait_p99_ms",
];
/// Largest magnitude a predicted figure may have.
const MAX_PREDICTED: f64 = 1e15;

/// A prediction's value as the range it allows: a number, or text such as "20%", "0",
/// "1914/s" or "12-15%" (a unit or `%` after the figures is ignored). `None` when it is
/// none of these, or not finite, or a range whose ends are reversed.
pub fn prediction_range(v: &toml::Value) -> Option<(f64, f64)> {
    let ok = |x: f64| x.is_finite() && x.abs() <= MAX_PREDICTED;
    if let Some(x) = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
        return ok(x).then_some((x, x));
    }
    let text = v.as_str()?.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(text.len());
    let rest = text[end..].trim();
    if !(rest.is_empty() || rest == "%" || rest.chars().all(|c| c.is_ascii_alphabetic() || c == '/')) {
        return None;
    }
    let figures = &text[..end];
    let (a, b): (f64, f64) = match figures.split_once('-') {
        Some((a, b)) if !a.is_empty() => (a.parse().ok()?, b.parse().ok()?),
        _ => {
            let x = figures.parse().ok()?;
            (x, x)
        }
    };
    (ok(a) && ok(b) && a <= b).then_some((a, b))
}

/// A name that becomes a file name, a package version part and a patch subject: letters,
/// digits, `.`, `_` and `-`, starting with a letter or digit, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.len() <= 64
        && !name.contains("..")
}

/// `file:line` where an error about `key = value` points (`file` alone when nothing
/// matches): the first line from `start` (0-based) whose key is `key` and which holds the
/// value; else one holding the value quoted (an array spread over lines); else the key's
/// first line; else any line holding the value.
pub fn locate_from(file: &Path, text: &str, start: usize, key: &str, value: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |l: &str| {
        let l = l.trim_start();
        !key.is_empty() && l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('='))
    };
    let quoted = format!("\"{value}\"");
    let from = || start.min(lines.len())..lines.len();
    let found = from()
        .find(|&i| is_key(lines[i]) && lines[i].contains(value))
        .or_else(|| from().find(|&i| !value.is_empty() && lines[i].contains(&quoted)))
        .or_else(|| from().find(|&i| is_key(lines[i])))
        .or_else(|| from().find(|&i| !value.is_empty() && lines[i].contains(value)));
    match found {
        Some(i) => format!("{}:{}", file.display(), i + 1),
        None => file.display().to_string(),
    }
}

/// [`locate_from`] from the first line.
pub fn locate(file: &Path, text: &str, key: &str, value: &str) -> String {
    locate_from(file, text, 0, key, value)
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rationale {
    pub text: String,
    /// Notes (paths relative to the workspace) the rationale rests on.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    pub metric: String,
    pub from: toml::Value,
    pub to: toml::Value,
    #[serde(default)]
    pub unit: Option<String>,
    pub confidence: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// One-line title for pull requests and patch subjects.
    #[serde(default)]
    pub title: Option<String>,
    pub features: Vec<String>,
    pub status: String,
    pub rationale: Rationale,
    /// What is knowingly left dead (the seed's "Minimum-diff scope").
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub predictions: Vec<Prediction>,
    /// The variant this one is the next version of (Patch C v2 rerolls Patch C): its patch
    /// series is version N+1 of the same change, with a range-diff from the previous one.
    #[serde(default)]
    pub reroll_of: Option<String>,
    /// Parent features this variant drops, each with the reason.
    #[serde(default)]
    pub dropped: BTreeMap<String, String>,
    #[serde(skip)]
    pub file: PathBuf,
    /// The file's text, for errors that point at a line.
    #[serde(skip)]
    pub source: String,
}

/// All variants of a workspace, validated.
#[derive(Clone, Debug)]
pub struct Variants {
    pub list: Vec<Variant>,
    pub driver_features: Vec<String>,
    /// What each driver feature implies (the manifest's `[features]` table).
    pub implies: BTreeMap<String, Vec<String>>,
}

/// A variant's features with everything they imply in the driver's `[features]` table
/// (`d-rx-cleanup = ["c-direct-rx"]`), as cargo enables them: the listed ones first, then
/// the implied ones in the order they are reached. The materialiser, the audit and the
/// simulator then see the same tree cargo builds.
pub fn with_implied(features: &[String], implies: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut queue: std::collections::VecDeque<String> = features.iter().cloned().collect();
    // Bound: each feature is added once; the table is finite.
    while let Some(f) = queue.pop_front() {
        if out.contains(&f) {
            continue;
        }
        if let Some(more) = implies.get(&f) {
            queue.extend(more.iter().cloned());
        }
        out.push(f);
    }
    out
}

impl Variants {
    pub fn load(root: &Path) -> Result<Variants> {
        let dir = root.join("variants");
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            BenchError::usage(format!("cannot read {}", dir.display()))
                .cause(e.to_string())
                .hint("each variant is a file variants/<name>.toml")
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut list = Vec::new();
        for f in files {
            list.push(parse_file(&f)?);
        }
        list.sort_by(|a: &Variant, b: &Variant| a.name.cmp(&b.name));
        let (driver_features, implies) = driver_features(root)?;
        let mut v = Variants { list, driver_features, implies };
        v.validate(root)?;
        for var in &mut v.list {
            var.features = with_implied(&var.features, &v.implies);
        }
        Ok(v)
    }

    /// The variant a command works on when none is named: bench.toml's `default_variant`,
    /// else the tip of the variant tree (a variant nobody names as parent and whose status
    /// is not `failed`) when there is exactly one; several tips are an error naming them.
    pub fn default_variant(&self, root: &Path) -> Result<&Variant> {
        #[derive(serde::Deserialize)]
        struct Defaults {
            default_variant: Option<String>,
        }
        let p = root.join("bench.toml");
        if p.exists() {
            let text = crate::fsutil::read_text(&p)?;
            let d: Defaults = toml::from_str(&text).or_usage(format!("{}: not valid TOML", p.display()))?;
            if let Some(name) = d.default_variant {
                return self.get(&name).map_err(|e| e.cause(format!("default_variant in {}", p.display())));
            }
        }
        let tips: Vec<&Variant> = self
            .list
            .iter()
            .filter(|v| v.status != "failed" && !self.list.iter().any(|o| o.parent.as_deref() == Some(v.name.as_str())))
            .collect();
        match tips.as_slice() {
            [one] => Ok(one),
            [] => Err(BenchError::usage("no variant to default to: every variant is failed or has a child")
                .hint("name one with --variant, or set default_variant in bench.toml")),
            many => Err(BenchError::usage(format!(
                "the variant tree has {} tips ({}): which one?",
                many.len(),
                many.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
            .hint("name one with --variant, or set default_variant = \"NAME\" in bench.toml")),
        }
    }

    /// `name`, or the default variant when `None`.
    pub fn named_or_default(&self, root: &Path, name: Option<&str>) -> Result<&Variant> {
        match name {
            Some(n) => self.get(n),
            None => self.default_variant(root),
        }
    }

    pub fn get(&self, name: &str) -> Result<&Variant> {
        if let Some(v) = self.list.iter().find(|v| v.name == name) {
            return Ok(v);
        }
        let known: Vec<&str> = self.list.iter().map(|v| v.name.as_str()).collect();
        let mut err = BenchError::usage(format!("unknown variant `{name}`"));
        err = match nearest(name, &known) {
            Some(near) => err.hint(format!("did you mean `{near}`? Known variants: {}", known.join(", "))),
            None => err.hint(format!("known variants: {}", known.join(", "))),
        };
        Err(err)
    }

    fn validate(&self, root: &Path) -> Result<()> {
        // Structure first (names, parents, cycles): the feature checks below walk the chain.
        for v in &self.list {
            self.validate_identity(v)?;
        }
        for v in &self.list {
            self.validate_content(v, root)?;
        }
        Ok(())
    }

    fn validate_identity(&self, v: &Variant) -> Result<()> {
        let at = |key: &str, value: &str, msg: String| {
            BenchError::usage(format!("{}: {msg}", locate(&v.file, &v.source, key, value)))
        };
        let stem = v.file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !valid_name(&v.name) {
            return Err(at("name", &v.name, format!("variant name `{}` is not allowed", v.name))
                .hint("a variant name is letters, digits, `.`, `_` and `-` (it names files and patches), e.g. name = \"c-v3\""));
        }
        if v.name != stem {
            return Err(at("name", &v.name, format!("name `{}` does not match the file name", v.name))
                .hint(format!("rename the file to {}.toml or set name = \"{stem}\"", v.name)));
        }
        if !STATUSES.contains(&v.status.as_str()) {
            return Err(at("status", &v.status, format!("unknown status `{}`", v.status))
                .hint(format!("one of {}", STATUSES.join(", "))));
        }
        if let Some(p) = &v.parent {
            if !self.list.iter().any(|x| &x.name == p) {
                let known: Vec<&str> = self.list.iter().map(|x| x.name.as_str()).collect();
                let hint = match nearest(p, &known) {
                    Some(n) => format!("did you mean `{n}`? Known variants: {}", known.join(", ")),
                    None => format!("known variants: {}", known.join(", ")),
                };
                return Err(at("parent", p, format!("parent `{p}` does not exist")).hint(hint));
            }
        }
        // Walk up: a cycle returns to a name already seen.
        let mut seen = vec![v.name.as_str()];
        let mut cur = v;
        while let Some(p) = &cur.parent {
            if seen.contains(&p.as_str()) {
                seen.push(p);
                return Err(at("parent", p, format!("parent cycle: {}", seen.join(" -> ")))
                    .hint("a variant's parent chain must end at a variant without parent"));
            }
            seen.push(p);
            match self.list.iter().find(|x| &x.name == p) {
                Some(next) => cur = next,
                None => break, // named by its own file's check
            }
        }
        Ok(())
    }

    fn validate_content(&self, v: &Variant, root: &Path) -> Result<()> {
        let at = |key: &str, value: &str, msg: String| {
            BenchError::usage(format!("{}: {msg}", locate(&v.file, &v.source, key, value)))
        };
        for f in &v.features {
            if !self.driver_features.contains(f) {
                let known: Vec<&str> = self.driver_features.iter().map(String::as_str).collect();
                let near = nearest(f, &known).map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
                return Err(at("features", f, format!("unknown feature `{f}`"))
                    .hint(format!("{near}the driver crate has: {}", self.driver_features.join(", "))));
            }
        }
        for n in &v.rationale.notes {
            let inside = Path::new(n).starts_with("notes")
                && Path::new(n).components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(at("notes", n, format!("rationale note `{n}` is not a path inside notes/"))
                    .hint("notes are paths relative to the workspace, e.g. notes/2026-05-07-phase7-c.md"));
            }
            if !root.join(n).is_file() {
                return Err(at("notes", n, format!("rationale note `{n}` does not exist"))
                    .hint("notes are paths relative to the workspace, e.g. notes/2026-05-07-phase7-c.md"));
            }
        }
        if let Some(parent) = v.parent.as_ref().and_then(|p| self.list.iter().find(|x| &x.name == p)) {
            // What the variant gets, as cargo enables it: a feature implied by a listed
            // one is kept, not dropped.
            let kept = with_implied(&v.features, &self.implies);
            for f in &with_implied(&parent.features, &self.implies) {
                if !kept.contains(f) && !v.dropped.contains_key(f) {
                    return Err(at("features", "", format!("drops the parent's feature `{f}` without saying why"))
                        .hint(format!("keep it in features, or add [dropped] {f} = \"reason\"")));
                }
            }
        }
        if let Some(r) = &v.reroll_of {
            if r == &v.name || !self.list.iter().any(|x| &x.name == r) {
                return Err(at("reroll_of", r, format!("reroll_of `{r}` is not another variant")).hint(format!(
                    "reroll_of names the earlier version of this change; known variants: {}",
                    self.list.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        for p in &v.predictions {
            // Point into this prediction's table: from its metric line on.
            let start = v.source.lines().position(|l| l.contains(&format!("\"{}\"", p.metric))).unwrap_or(0);
            validate_prediction(p, |key, value, msg| {
                BenchError::usage(format!("{}: {msg}", locate_from(&v.file, &v.source, start, key, value)))
            })?;
        }
        Ok(())
    }
}

/// A variant's prediction is checked by the simulator: it names one of its figures, says
/// from and to as numbers or ordered ranges, and how sure it is.
fn validate_prediction(p: &Prediction, at: impl Fn(&str, &str, String) -> BenchError) -> Result<()> {
    let shown = |v: &toml::Value| v.as_str().map_or_else(|| v.to_string(), String::from);
    if FIGURES.contains(&p.metric.as_str()) {
        for (key, value) in [("from", &p.from), ("to", &p.to)] {
            if prediction_range(value).is_none() {
                return Err(at(key, &shown(value), format!("prediction `{}`: {key} = {value} is not a figure", p.metric))
                    .hint("a finite number (1914, 0.5), a number with a unit or % (\"20%\", \"1914/s\"), or a range low-high (\"12-15%\")"));
            }
        }
    } else {
        // A metric the simulator does not measure is a board-only prediction (the seed's
        // `observed_rx_at_4mb`), kept as written; one a letter or two from a figure is a typo.
        if let Some(n) = nearest(&p.metric, &FIGURES) {
            return Err(at("metric", &p.metric, format!("prediction metric `{}` is not a simulator figure", p.metric))
                .hint(format!("did you mean `{n}`? Figures: {}", FIGURES.join(", "))));
        }
        for (key, value) in [("from", &p.from), ("to", &p.to)] {
            if let Some(x) = value.as_float().filter(|x| !x.is_finite() || x.abs() > MAX_PREDICTED) {
                return Err(at(
                    key,
                    &shown(value),
                    format!("prediction `{}`: {key} = {x} is not a finite figure", p.metric),
                )
                .hint(format!("a number of magnitude at most {MAX_PREDICTED:e}, or text")));
            }
        }
    }
    if !CONFIDENCES.contains(&p.confidence.as_str()) {
        return Err(at("confidence", &p.confidence, format!("unknown confidence `{}`", p.confidence))
            .hint(format!("one of {}", CONFIDENCES.join(", "))));
    }
    Ok(())
}

fn parse_file(path: &Path) -> Result<Variant> {
    let text = crate::fsutil::read_text(path)?;
    let mut v: Variant = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(&text, s.start));
        BenchError::usage(format!("{}:{line}:{col}: {}", path.display(), e.message()))
            .hint("a variant is name, parent, features = [..], status, notes = [..]: see any file in variants/")
    })?;
    v.file = path.to_path_buf();
    v.source = text;
    Ok(v)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The driver's patch-series features, and what each implies among them.
fn driver_features(root: &Path) -> Result<(Vec<String>, BTreeMap<String, Vec<String>>)> {
    let meta = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("driver").join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| {
            BenchError::env("cannot read the driver crate's features (cargo metadata)").cause(e.to_string())
        })?;
    let pkg = meta
        .packages
        .iter()
        .find(|p| p.name == "bes2600")
        .ok_or_else(|| BenchError::env("the workspace has no package `bes2600`"))?;
    // `sim` and `default` are not patch-series features.
    let names: Vec<String> = pkg.features.keys().filter(|k| *k != "sim" && *k != "default").cloned().collect();
    let implies = pkg
        .features
        .iter()
        .filter(|(k, _)| names.contains(k))
        .map(|(k, v)| (k.clone(), v.iter().filter(|x| names.contains(x)).cloned().collect()))
        .collect();
    Ok((names, implies))
}

/// The closest name by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(name, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 3)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    #[test]
    fn implied_features_are_enabled_as_cargo_enables_them() {
        let implies: BTreeMap<String, Vec<String>> = [
            ("d-rx-cleanup".to_string(), vec!["c-direct-rx".to_string()]),
            ("c-direct-rx".to_string(), vec![]),
            ("e".to_string(), vec!["d-rx-cleanup".to_string(), "patch-b".to_string()]),
        ]
        .into();
        let got = with_implied(&["patch-b".into(), "e".into()], &implies);
        assert_eq!(got, ["patch-b", "e", "d-rx-cleanup", "c-direct-rx"]);
        assert_eq!(with_implied(&["c-direct-rx".into()], &implies), ["c-direct-rx"]);
    }

    #[test]
    fn the_repository_variants_load_and_chain() {
        let v = Variants::load(&workspace()).unwrap();
        assert_eq!(v.get("c-v2").unwrap().features, ["patch-b", "c-prep-atomic", "c-prep-pending", "c-direct-rx"]);
        assert_eq!(v.get("c-v2-posted").unwrap().features, ["patch-b", "c-prep-atomic", "c-direct-rx"]);
        assert_eq!(v.get("c-v2-posted").unwrap().status, "failed");
        assert_eq!(v.get("c-v2").unwrap().parent.as_deref(), Some("c-prep"));
        let none = tempfile::tempdir().unwrap();
        // The default is the tree's one tip that is not failed (c-v2 in the seed; a new
        // variant on top of it becomes the tip).
        let tip = v.default_variant(none.path()).unwrap();
        assert_ne!(tip.status, "failed");
        assert!(!v.list.iter().any(|x| x.parent.as_deref() == Some(tip.name.as_str())), "{} has a child", tip.name);
        std::fs::write(none.path().join("bench.toml"), "default_variant = \"b\"\n").unwrap();
        assert_eq!(v.default_variant(none.path()).unwrap().name, "b");
        assert_eq!(v.get("c").unwrap().status, "failed");
        let err = v.get("c-v3").unwrap_err();
        assert!(err.hint.unwrap().contains("did you mean `c-v2`?"));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("x", 0), (1, 1));
    }
}
