//! The mailable patch series along a variant's parent chain, as `git format-patch` and b4
//! write it, made by the real git: each variant's materialised tree is committed in a
//! scratch repository (the base variant first, then one commit per step, each with its
//! message from the variant and a Signed-off-by), and `git format-patch --cover-letter
//! --base` writes the series. A variant that rerolls another (`reroll_of`) is version N+1
//! of the same change-id, with `[PATCH vN n/m]` subjects and `git range-diff` from the
//! previous version in the cover letter. And the check that what is committed under
//! patches/ is what the tree gives now.
//!
//! Commit and author dates come from the notes (the earliest note of each variant), never
//! from the clock, so the series is byte-identical on every machine with the same inputs.

use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::publish::pr;
use crate::source::materialise::{self, CfgSet};
use crate::workspace::notes::{self, Note};
use crate::workspace::variant::{Variant, Variants};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What series to write.
pub struct SeriesRequest<'a> {
    /// The series ends at this variant.
    pub variant: &'a str,
    /// It starts after this ancestor (default: the root of the chain).
    pub base: Option<&'a str>,
    /// The variant whose series this one rerolls (default: the variant's `reroll_of`).
    pub reroll_of: Option<&'a str>,
}

/// A mail identity, `Name <email>`.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// The sender: bench.toml's `[patches] from` (so a committed series is the same on every
/// machine), else git's configured `user.name` and `user.email`.
pub fn identity(root: &Path) -> Result<Identity> {
    let conf = crate::target::load_config(root)?;
    if let Some(from) = conf.patches.and_then(|p| p.from) {
        return parse_identity(&from).ok_or_else(|| {
            BenchError::usage(format!(
                "{}: [patches] from = \"{from}\" is not `Name <email>`",
                root.join("bench.toml").display()
            ))
            .hint("e.g. from = \"Jane Hacker <jane@example.org>\"")
        });
    }
    let cfg = git2::Repository::discover(root).and_then(|r| r.config()).and_then(|mut c| c.snapshot());
    let get = |k: &str| cfg.as_ref().ok().and_then(|c| c.get_string(k).ok()).filter(|v| !v.trim().is_empty());
    match (get("user.name"), get("user.email")) {
        (Some(name), Some(email)) => Ok(Identity { name, email }),
        _ => Err(BenchError::usage("no mail identity for the patches: git has no user.name and user.email")
            .hint("run `git config user.name \"Your Name\"` and `git config user.email you@example.org`, or set [patches] from = \"Name <email>\" in bench.toml")),
    }
}

fn parse_identity(s: &str) -> Option<Identity> {
    let (name, rest) = s.split_once('<')?;
    let email = rest.strip_suffix('>')?;
    let name = name.trim();
    (!name.is_empty() && email.contains('@') && !email.contains(['<', '>', ' ']))
        .then(|| Identity { name: name.to_string(), email: email.to_string() })
}

fn tree(root: &Path, variants: &Variants, v: &Variant) -> Result<BTreeMap<String, String>> {
    let known = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
    let cfg = CfgSet { enabled: v.features.iter().cloned().collect(), known };
    Ok(materialise::crate_tree(&root.join("driver").join("src"), &cfg)?
        .into_iter()
        .map(|o| (format!("driver/src/{}", o.rel_path.display()), o.text))
        .collect())
}

/// The variants from `base` (exclusive) to `tip` (inclusive), oldest first, and the base.
fn steps<'v>(variants: &'v Variants, tip: &str, base: Option<&str>) -> Result<(&'v Variant, Vec<&'v Variant>)> {
    let mut chain = vec![variants.get(tip)?];
    while let Some(p) = &chain.last().expect("not empty").parent {
        if Some(chain.last().expect("not empty").name.as_str()) == base {
            break;
        }
        chain.push(variants.get(p)?);
    }
    let first = chain.pop().expect("the tip at least");
    if let Some(b) = base {
        variants.get(b)?;
        if first.name != b {
            let names: Vec<&str> =
                std::iter::once(first.name.as_str()).chain(chain.iter().rev().map(|v| v.name.as_str())).collect();
            return Err(BenchError::usage(format!("`{b}` is not an ancestor of `{tip}`"))
                .hint(format!("--base takes a variant on the chain {}", names.join(" -> "))));
        }
    }
    if chain.is_empty() {
        return Err(BenchError::usage(format!("the series from `{}` to `{tip}` is empty", first.name))
            .hint("--base names an ancestor, not the variant itself"));
    }
    chain.reverse();
    Ok((first, chain))
}

/// The date of a variant's earliest note (noon UTC), else `fallback`.
fn date_of(all_notes: &[Note], v: &Variant, fallback: &str) -> String {
    all_notes
        .iter()
        .filter(|n| n.front.variants.contains(&v.name))
        .map(|n| n.front.date.clone())
        .min()
        .map(|d| format!("{d}T12:00:00Z"))
        .unwrap_or_else(|| fallback.to_string())
}

/// A scratch git repository in which each variant's tree is one commit.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
    who: Identity,
}

impl Scratch {
    fn new(who: &Identity) -> Result<Scratch> {
        let dir = tempfile::tempdir().or_env("cannot create a scratch directory for git")?;
        let path = dir.path().to_path_buf();
        let s = Scratch { _dir: dir, path, who: who.clone() };
        s.git(&["init", "-q", "-b", "series"], None)?;
        Ok(s)
    }

    /// git with no user or system configuration, so the output is the same everywhere.
    fn git(&self, args: &[&str], date: Option<&str>) -> Result<String> {
        let mut c = Command::new("git");
        c.args(["-c", "core.autocrlf=false", "-c", "core.abbrev=12", "-c", "diff.renames=false"])
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", &self.who.name)
            .env("GIT_AUTHOR_EMAIL", &self.who.email)
            .env("GIT_COMMITTER_NAME", &self.who.name)
            .env("GIT_COMMITTER_EMAIL", &self.who.email)
            .env("TZ", "UTC")
            .env("LC_ALL", "C");
        if let Some(d) = date {
            c.env("GIT_AUTHOR_DATE", d).env("GIT_COMMITTER_DATE", d);
        }
        let out = c.output().or_env("cannot run git (the series is written by git format-patch)")?;
        if !out.status.success() {
            return Err(BenchError::env(format!("git {} failed", args.join(" ")))
                .cause(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Replaces the work tree's driver sources by `files` and commits them on `parent`
    /// (`None`: a root commit). Returns the commit id.
    fn commit(
        &self,
        parent: Option<&str>,
        files: &BTreeMap<String, String>,
        message: &str,
        date: &str,
    ) -> Result<String> {
        match parent {
            Some(p) => self.git(&["checkout", "-q", "--detach", p], None)?,
            None => String::new(), // the first commit: nothing to check out
        };
        let src = self.path.join("driver");
        if src.exists() {
            std::fs::remove_dir_all(&src).or_env(format!("cannot clear {}", src.display()))?;
        }
        for (name, text) in files {
            let p = self.path.join(name);
            std::fs::create_dir_all(p.parent().expect("a file in a directory"))
                .or_env(format!("cannot create {}", p.display()))?;
            std::fs::write(&p, text).or_env(format!("cannot write {}", p.display()))?;
        }
        self.git(&["add", "-A"], None)?;
        let f = self.path.join(".git").join("BENCH_MSG");
        std::fs::write(&f, message).or_env("cannot write the commit message")?;
        let f = f.to_str().ok_or_else(|| BenchError::env("the scratch directory's path is not UTF-8"))?;
        self.git(&["commit", "-q", "--allow-empty", "-s", "--cleanup=strip", "-F", f], Some(date))?;
        self.git(&["rev-parse", "HEAD"], None)
    }
}

/// The commit message of the step to `child`: its title as the subject, its rationale.
fn message(child: &Variant) -> String {
    format!(
        "bes2600: {}\n\n{}\n\nVariant: {} (features: {})\n",
        child.title.clone().unwrap_or_else(|| child.name.clone()),
        child.rationale.text.trim(),
        child.name,
        child.features.join(", ")
    )
}

/// One version of a series in the scratch repository: its base commit and its tip.
struct Committed {
    base: String,
    tip: String,
}

fn commit_series(
    scratch: &Scratch,
    root: &Path,
    variants: &Variants,
    all_notes: &[Note],
    base: &Variant,
    steps: &[&Variant],
) -> Result<Committed> {
    let first_date = steps.first().map(|s| date_of(all_notes, s, "2026-01-01T12:00:00Z")).expect("not empty");
    let base_date = date_of(all_notes, base, &first_date).min(first_date.clone());
    let base_msg = format!(
        "bes2600: {}\n\nThe materialised `{}` variant (bench).\n",
        base.title.clone().unwrap_or_else(|| base.name.clone()),
        base.name
    );
    let base_id = scratch.commit(None, &tree(root, variants, base)?, &base_msg, &base_date)?;
    let mut tip = base_id.clone();
    let mut date = base_date;
    for s in steps {
        date = date_of(all_notes, s, &date).max(date.clone());
        tip = scratch.commit(Some(&tip), &tree(root, variants, s)?, &message(s), &date)?;
    }
    Ok(Committed { base: base_id, tip })
}

/// The version of `v`'s series: 1, or one more than the series it rerolls.
fn version(variants: &Variants, v: &Variant, reroll_of: Option<&str>) -> Result<(u32, Vec<String>)> {
    let mut chain = Vec::new();
    let mut cur = reroll_of.map(str::to_string).or_else(|| v.reroll_of.clone());
    while let Some(name) = cur {
        if chain.contains(&name) || name == v.name {
            return Err(BenchError::usage(format!("reroll cycle: {} -> {}", v.name, chain.join(" -> ")))
                .hint("reroll_of names an earlier version of the same change"));
        }
        cur = variants.get(&name)?.reroll_of.clone();
        chain.push(name);
    }
    Ok((chain.len() as u32 + 1, chain))
}

/// A name as it may stand in a file name or a change-id.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// b4's change-id: the first version's date, a slug of its name, and 12 hex digits of a
/// hash of both, so every version of one change carries the same id.
fn change_id(all_notes: &[Note], first: &Variant) -> String {
    let date = date_of(all_notes, first, "2026-01-01");
    let slug = slug(&first.name);
    let digest = crate::fsutil::sha256_hex(format!("{}\0{}", first.name, date).as_bytes());
    format!("{}-bes2600-{slug}-{}", date[..10].replace('-', ""), &digest[..12])
}

/// The series: file name -> contents.
pub fn series(root: &Path, req: &SeriesRequest) -> Result<BTreeMap<String, String>> {
    let variants = Variants::load(root)?;
    let all_notes = notes::load_all(root, &variants)?;
    let who = identity(root)?;
    let (base, steps) = steps(&variants, req.variant, req.base)?;
    let tip = variants.get(req.variant)?;
    let (version, earlier) = version(&variants, tip, req.reroll_of)?;
    let scratch = Scratch::new(&who)?;
    let now = commit_series(&scratch, root, &variants, &all_notes, base, &steps)?;
    let mut args: Vec<String> = ["format-patch", "-q", "--cover-letter", "--signature=bench", "--no-numbered-files"]
        .into_iter()
        .map(String::from)
        .collect();
    args.push(format!("--base={}", now.base));
    args.push("-o".into());
    args.push("out".into());
    if version > 1 {
        // The previous version from the same base, for `git range-diff` in the cover letter.
        let prev = variants.get(&earlier[0])?;
        let (prev_base, prev_steps) = self::steps(&variants, &prev.name, Some(&base.name)).map_err(|e| {
            e.cause(format!("`{}` rerolls `{}`: both series must start at `{}`", tip.name, prev.name, base.name))
        })?;
        let before = commit_series(&scratch, root, &variants, &all_notes, prev_base, &prev_steps)?;
        args.push(format!("-v{version}"));
        args.push(format!("--range-diff={}..{}", before.base, before.tip));
        args.push("--creation-factor=95".into());
    }
    // The cover letter from the PR through the branch description, so git itself encodes
    // the subject and marks the charset.
    let first = earlier.last().map(|n| variants.get(n)).transpose()?.unwrap_or(tip);
    scratch.git(&["checkout", "-q", "-B", "series", &now.tip], None)?;
    scratch.git(&["config", "branch.series.description", &description(root, &variants, &all_notes, tip)?], None)?;
    args.push("--cover-from-description=subject".into());
    args.push(format!("{}..series", now.base));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    scratch.git(&argv, None)?;
    let tip_date = scratch.git(&["log", "-1", "--format=%aD", &now.tip], None)?;

    let mut out = BTreeMap::new();
    let dir = scratch.path.join("out");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .or_env(format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let prefix = if version > 1 { format!("v{version}-") } else { String::new() };
    for f in files {
        let text = std::fs::read_to_string(&f).or_env(format!("cannot read {}", f.display()))?;
        let fname = f.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let n: usize = fname.trim_start_matches(&prefix).get(..4).and_then(|d| d.parse().ok()).unwrap_or(0);
        if n == 0 {
            out.insert(
                format!("{prefix}0000-cover-letter.patch"),
                cover(&text, &tip_date, &change_id(&all_notes, first)),
            );
        } else {
            let slug: String = slug(&steps[n - 1].name);
            out.insert(format!("{prefix}{n:04}-{slug}.patch"), text);
        }
    }
    Ok(out)
}

/// The PR as a branch description: its title, a blank line, its body.
fn description(root: &Path, variants: &Variants, all_notes: &[Note], tip: &Variant) -> Result<String> {
    let ctx = pr::context(root, variants, all_notes, tip, pr::Inputs::default())?;
    let body = pr::render_file(&pr::templates(root).join("pr.md.j2"), &ctx)?;
    let (title, rest) = body.split_once('\n').unwrap_or((&body, ""));
    Ok(format!("{}\n\n{}\n", title.trim_start_matches("# ").trim(), rest.trim()))
}

/// Completes format-patch's cover letter: the date of the series' last commit (format-patch
/// dates a cover letter with the clock), and b4's `change-id:` after `base-commit:`.
fn cover(letter: &str, date: &str, change_id: &str) -> String {
    let mut text = String::with_capacity(letter.len() + 80);
    let mut dated = false;
    for line in letter.split_inclusive('\n') {
        if !dated && line.starts_with("Date: ") {
            text += &format!("Date: {date}\n");
            dated = true;
        } else {
            text += line;
            if line.starts_with("base-commit: ") {
                text += &format!("change-id: {change_id}\n");
            }
        }
    }
    text
}

/// The series a directory holds, read back from its patches' `Variant: NAME` lines: the
/// last patch's variant (the tip) and the first patch's (whose parent is the base). So
/// `bench patches --check` checks what is published, whatever the variant tree's tip is
/// now (a new variant on top does not make the published series stale).
pub fn published(dir: &Path) -> Option<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".patch") && !n.contains("cover-letter")
        })
        .collect();
    files.sort();
    let variant_of = |p: &PathBuf| -> Option<String> {
        let text = std::fs::read_to_string(p).ok()?;
        let line = text.lines().take_while(|l| *l != "---").find(|l| l.starts_with("Variant: "))?;
        Some(line["Variant: ".len()..].split_whitespace().next()?.to_string())
    };
    Some((variant_of(files.first()?)?, variant_of(files.last()?)?))
}

/// What [`write_or_check`] did.
pub enum Written {
    /// The directory holds exactly the series.
    UpToDate(usize),
    /// Files written.
    Wrote(usize),
}

/// Writes the series into `dir` (stale patch files removed, each file written to a
/// temporary and renamed), or with `check` only compares: a stale directory is a failure
/// naming the files.
pub fn write_or_check(root: &Path, req: &SeriesRequest, dir: &Path, check: bool) -> Result<Written> {
    let want = series(root, req)?;
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
            .hint(format!("regenerate with `bench patches --variant {}` and commit the result", req.variant)));
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
