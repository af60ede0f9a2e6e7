//! Variants of the patch series: `variants/<name>.toml`, validated against the driver
//! crate's features (read with cargo_metadata), the parent chain, and the notes.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATUSES: &[&str] = &["proposed", "staged", "verified", "failed", "superseded"];

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
        if let Ok(text) = std::fs::read_to_string(&p) {
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
        for v in &self.list {
            let at = |msg: String| BenchError::usage(format!("{}: {msg}", v.file.display()));
            let stem = v.file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if v.name != stem {
                return Err(at(format!("name `{}` does not match the file name", v.name))
                    .hint(format!("rename the file to {}.toml or set name = \"{stem}\"", v.name)));
            }
            if !STATUSES.contains(&v.status.as_str()) {
                return Err(
                    at(format!("unknown status `{}`", v.status)).hint(format!("one of {}", STATUSES.join(", ")))
                );
            }
            for f in &v.features {
                if !self.driver_features.contains(f) {
                    return Err(at(format!("unknown feature `{f}`"))
                        .hint(format!("the driver crate has: {}", self.driver_features.join(", "))));
                }
            }
            for n in &v.rationale.notes {
                if !root.join(n).is_file() {
                    return Err(at(format!("rationale note `{n}` does not exist"))
                        .hint("notes are paths relative to the workspace, e.g. notes/2026-05-07-phase7-c.md"));
                }
            }
            if let Some(p) = &v.parent {
                let parent = self.list.iter().find(|x| &x.name == p).ok_or_else(|| {
                    at(format!("parent `{p}` does not exist")).hint(format!(
                        "known variants: {}",
                        self.list.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                // What the variant gets, as cargo enables it: a feature implied by a listed
                // one is kept, not dropped.
                let kept = with_implied(&v.features, &self.implies);
                for f in &with_implied(&parent.features, &self.implies) {
                    if !kept.contains(f) && !v.dropped.contains_key(f) {
                        return Err(at(format!("drops the parent's feature `{f}` without saying why"))
                            .hint(format!("keep it in features, or add [dropped] {f} = \"reason\"")));
                    }
                }
            }
            if let Some(r) = &v.reroll_of {
                if r == &v.name || !self.list.iter().any(|x| &x.name == r) {
                    return Err(at(format!("reroll_of `{r}` is not another variant")).hint(format!(
                        "reroll_of names the earlier version of this change; known variants: {}",
                        self.list.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            // Walk up: a cycle returns to a name already seen.
            let mut seen = vec![v.name.as_str()];
            let mut cur = v;
            while let Some(p) = &cur.parent {
                if seen.contains(&p.as_str()) {
                    seen.push(p);
                    return Err(at(format!("parent cycle: {}", seen.join(" -> ")))
                        .hint("a variant's parent chain must end at a variant without parent"));
                }
                seen.push(p);
                cur = self.list.iter().find(|x| &x.name == p).expect("parents checked above");
            }
        }
        Ok(())
    }
}

fn parse_file(path: &Path) -> Result<Variant> {
    let text = std::fs::read_to_string(path).or_usage(format!("cannot read {}", path.display()))?;
    let mut v: Variant = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(&text, s.start));
        BenchError::usage(format!("{}:{line}:{col}: {}", path.display(), e.message()))
            .hint("a variant is name, parent, features = [..], status, notes = [..]: see any file in variants/")
    })?;
    v.file = path.to_path_buf();
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
