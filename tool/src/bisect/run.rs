//! One bisection, start to end: the request, the steps each oracle verdict makes, and the
//! conclusion, along the variants' parent chain, between two feature sets (ddmin) or over
//! commits. The log it returns is what `bench bisect replay` runs again.

use super::oracle::{Outcome, Runner, Subject};
use super::Found;
use crate::bisect;
use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::ui::Ui;
use crate::workspace::variant::Variants;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Across {
    /// Binary search along the parent chain from --good to --bad.
    Variants,
    /// Delta debugging between the feature sets of --good and --bad.
    Features,
    /// Binary search over the commits between --good and --bad for --variant.
    Commits,
}

/// What to bisect (`bench bisect`'s flags, kept in the log as `args`).
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Good end: a variant (variants, features) or a commit (commits).
    #[arg(long)]
    pub good: Option<String>,
    /// Bad end: a variant (variants, features) or a commit (commits).
    #[arg(long)]
    pub bad: Option<String>,
    /// How to tell good from bad: audit | stress[:ramp=4:5m;seed=3;min-mib=1.2] |
    /// cmd:'COMMAND' (exit 0 good, 125 skip, 1-126 bad; {variant} {srcversion} {tree}
    /// {package} are replaced). A stress swarm (seeds=1..20) runs its seeds in order on
    /// all cores and stops at the first that fails: that seed is the verdict.
    #[arg(long, default_value = "stress")]
    pub oracle: String,
    /// What to bisect across.
    #[arg(long, value_enum, default_value = "variants")]
    pub across: Across,
    /// The variant whose features apply to every commit (with --across commits).
    #[arg(long)]
    pub variant: Option<String>,
    /// Follow only the first parent of merge commits.
    #[arg(long)]
    pub first_parent: bool,
    /// Seed for the stress oracle.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub n: usize,
    pub tested: String,
    pub features: Vec<String>,
    pub srcversion: String,
    pub result: Outcome,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Log {
    /// What was asked (`args` in the log file).
    pub args: Request,
    /// A culprit was found: a first bad variant or commit, or a minimal failing change.
    #[serde(default)]
    pub found: bool,
    pub steps: Vec<Step>,
    pub conclusion: String,
}

impl PartialEq for Request {
    fn eq(&self, o: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(o).ok()
    }
}

struct Ctx<'a> {
    ui: &'a Ui,
    runner: Runner,
    known: BTreeSet<String>,
    implies: std::collections::BTreeMap<String, Vec<String>>,
    steps: Vec<Step>,
    spinner: indicatif::ProgressBar,
}

impl Ctx<'_> {
    fn test(
        &mut self,
        label: &str,
        src: &Path,
        features: &BTreeSet<String>,
        package: Option<PathBuf>,
    ) -> Result<Outcome> {
        self.spinner.set_message(format!("step {}: {label}", self.steps.len() + 1));
        // Cargo enables what a feature implies: test the set cargo would build (delta
        // debugging proposes sets that leave an implied feature out).
        let listed: Vec<String> = features.iter().cloned().collect();
        let closed: BTreeSet<String> =
            crate::workspace::variant::with_implied(&listed, &self.implies).into_iter().collect();
        let features = &closed;
        let subject = Subject {
            label: label.to_string(),
            driver_src: src,
            features: features.clone(),
            known: &self.known,
            package,
        };
        let (v, cached) = self.runner.test(&subject)?;
        let step = Step {
            n: self.steps.len() + 1,
            tested: label.to_string(),
            features: features.iter().cloned().collect(),
            srcversion: v.srcversion.clone(),
            result: v.outcome,
            detail: v.detail.clone(),
        };
        self.spinner.suspend(|| {
            self.ui.status(format!(
                "step {:>2}: {:<28} {:<5} srcversion {}{}  {}",
                step.n,
                label,
                format!("{:?}", v.outcome).to_lowercase(),
                &v.srcversion[..v.srcversion.len().min(12)],
                if cached { " (cached)" } else { "" },
                v.detail
            ))
        });
        self.steps.push(step);
        Ok(v.outcome)
    }
}

fn feature_label(f: &BTreeSet<String>) -> String {
    format!("{{{}}}", f.iter().cloned().collect::<Vec<_>>().join(","))
}

/// Runs a bisection; `use_cache` lets the oracle reuse verdicts by srcversion.
pub fn execute(root: &Path, a: &Request, ui: &Ui, use_cache: bool) -> Result<Log> {
    let variants = Variants::load(root)?;
    let known: BTreeSet<String> = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
    let mut runner = Runner::new(root, &a.oracle, a.seed)?;
    runner.use_cache = use_cache;
    let need =
        |x: &Option<String>, what: &str| x.clone().ok_or_else(|| BenchError::usage(format!("--{what} is required")));
    let (good, bad) = (need(&a.good, "good")?, need(&a.bad, "bad")?);
    if good == bad {
        return Err(BenchError::usage(format!("--good and --bad are both `{good}`: nothing lies between them"))
            .hint("--good names the last known-good point, --bad the first known-bad one"));
    }
    let mut ctx = Ctx {
        ui,
        runner,
        known,
        implies: variants.implies.clone(),
        steps: Vec::new(),
        spinner: ui.spinner("bisecting"),
    };
    let (found, conclusion) = match a.across {
        Across::Variants => across_variants(root, &variants, &good, &bad, &mut ctx)?,
        Across::Features => across_features(root, &variants, &good, &bad, &mut ctx)?,
        Across::Commits => across_commits(root, &variants, a, &good, &bad, &mut ctx)?,
    };
    ctx.spinner.finish_and_clear();
    Ok(Log { args: a.clone(), found, steps: ctx.steps, conclusion })
}

fn across_variants(root: &Path, variants: &Variants, good: &str, bad: &str, ctx: &mut Ctx) -> Result<(bool, String)> {
    let g = variants.get(good)?;
    let b = variants.get(bad)?;
    let src = root.join("driver").join("src");
    let ancestors = |from: &str| -> Result<Vec<String>> {
        let mut chain = vec![from.to_string()];
        while let Some(p) = variants.get(chain.last().expect("not empty"))?.parent.clone() {
            chain.push(p);
        }
        Ok(chain)
    };
    let up_from_bad = ancestors(&b.name)?;
    let Some(pos) = up_from_bad.iter().position(|n| n == &g.name) else {
        if ancestors(&g.name)?.contains(&b.name) {
            let f: BTreeSet<String> = g.features.iter().cloned().collect();
            if ctx.test(&g.name, &src, &f, None)? == Outcome::Bad {
                return Err(BenchError::usage(format!("the good end `{}` fails: good and bad look swapped", g.name))
                    .hint(format!("try --good {} --bad {}", b.name, g.name)));
            }
        }
        return Err(BenchError::usage(format!(
            "`{}` does not descend from `{}`: nothing to bisect between them",
            b.name, g.name
        ))
        .hint("--good must be an ancestor of --bad along the variants' parent chain"));
    };
    // Oldest first, without the good end: the candidates.
    let chain: Vec<String> = up_from_bad[..pos].iter().rev().cloned().collect();
    let feats = |n: &str| -> Result<BTreeSet<String>> { Ok(variants.get(n)?.features.iter().cloned().collect()) };
    let good_f = feats(&g.name)?;
    let mut good_checked = false;
    let found = {
        let mut test = |i: usize| -> Result<Outcome> {
            let f = feats(&chain[i])?;
            ctx.test(&chain[i], &src, &f, None)
        };
        bisect::linear(chain.len(), &mut test)?
    };
    let check_good = |ctx: &mut Ctx, good_checked: &mut bool| -> Result<()> {
        if !*good_checked {
            *good_checked = true;
            if ctx.test(&g.name, &src, &good_f, None)? == Outcome::Bad {
                return Err(BenchError::usage(format!(
                    "the good end `{}` fails the oracle too: good and bad swapped, or the regression is older",
                    g.name
                )));
            }
        }
        Ok(())
    };
    Ok(match found {
        Some(Found::First(0)) => {
            check_good(ctx, &mut good_checked)?;
            (true, format!("first bad variant: {} (parent {} is good)", chain[0], g.name))
        }
        Some(Found::First(i)) => (true, format!("first bad variant: {} (parent {} is good)", chain[i], chain[i - 1])),
        Some(Found::Range(s, e)) => {
            (false, format!("cannot split: the first bad variant is one of {}", chain[s..=e].join(", ")))
        }
        None => {
            check_good(ctx, &mut good_checked)?;
            (false, format!("nothing along the chain {} -> {} is bad", g.name, chain.join(" -> ")))
        }
    })
}

/// Delta debugging between two feature sets, then which absent features would have
/// prevented the failure. Long because both searches and the conclusion share the sets.
fn across_features(root: &Path, variants: &Variants, good: &str, bad: &str, ctx: &mut Ctx) -> Result<(bool, String)> {
    let src = root.join("driver").join("src");
    let g: BTreeSet<String> = variants.get(good)?.features.iter().cloned().collect();
    let b: BTreeSet<String> = variants.get(bad)?.features.iter().cloned().collect();
    if ctx.test(&format!("{good} {}", feature_label(&g)), &src, &g, None)? == Outcome::Bad {
        return Err(BenchError::usage(format!("the good end `{good}` fails: good and bad look swapped")));
    }
    if ctx.test(&format!("{bad} {}", feature_label(&b)), &src, &b, None)? != Outcome::Bad {
        return Ok((false, format!("nothing to find: `{bad}` passes the oracle")));
    }
    // Changes from good to bad: features added (+) and removed (-).
    let changes: Vec<(bool, String)> =
        b.difference(&g).map(|f| (true, f.clone())).chain(g.difference(&b).map(|f| (false, f.clone()))).collect();
    let apply = |cs: &[(bool, String)]| -> BTreeSet<String> {
        let mut s = g.clone();
        for (add, f) in cs {
            if *add {
                s.insert(f.clone());
            } else {
                s.remove(f);
            }
        }
        s
    };
    let minimal = {
        let mut test = |cs: &[(bool, String)]| -> Result<Outcome> {
            let set = apply(cs);
            ctx.test(&feature_label(&set), &src, &set, None)
        };
        bisect::ddmin(changes, &mut test)?
    };
    let failing = apply(&minimal);
    // Which features the bad end lacks that would have prevented its failure: single
    // additions first, then a minimal set (ddmin over all of them), if all of them do.
    let absent: Vec<String> = ctx.known.iter().filter(|f| *f != "sim" && !b.contains(*f)).cloned().collect();
    let mut needs_absent = Vec::new();
    for f in &absent {
        let mut with = b.clone();
        with.insert(f.clone());
        if ctx.test(&feature_label(&with), &src, &with, None)? == Outcome::Good {
            needs_absent.push(f.clone());
        }
    }
    if needs_absent.is_empty() && absent.len() > 1 {
        let mut all = b.clone();
        all.extend(absent.iter().cloned());
        if ctx.test(&feature_label(&all), &src, &all, None)? == Outcome::Good {
            // ddmin on the additions, with the outcome inverted: a minimal set that fixes it.
            let mut test = |cs: &[String]| -> Result<Outcome> {
                let mut set = b.clone();
                set.extend(cs.iter().cloned());
                Ok(match ctx.test(&feature_label(&set), &src, &set, None)? {
                    Outcome::Good => Outcome::Bad,
                    Outcome::Bad => Outcome::Good,
                    o => o,
                })
            };
            needs_absent = bisect::ddmin(absent.clone(), &mut test)?;
        }
    }
    let change_text: Vec<String> =
        minimal.iter().map(|(add, f)| if *add { f.clone() } else { format!("removing {f}") }).collect();
    Ok((
        true,
        if needs_absent.is_empty() {
            format!("minimal failing change: {} (set {})", change_text.join(" + "), feature_label(&failing))
        } else {
            format!(
                "minimal failing change: {} without {} (set {}; `{bad}` passes with {} added)",
                change_text.join(" + "),
                needs_absent.join(", "),
                feature_label(&failing),
                needs_absent.join(" + ")
            )
        },
    ))
}

/// Binary search over the commits between the ends, each commit's driver tree tested with
/// the variant's features. Long because the search, the good-end check and the
/// conclusion's wording share the commit list.
fn across_commits(
    root: &Path,
    variants: &Variants,
    a: &Request,
    good: &str,
    bad: &str,
    ctx: &mut Ctx,
) -> Result<(bool, String)> {
    let vname = a.variant.clone().ok_or_else(|| BenchError::usage("--variant is required with --across commits"))?;
    let features: BTreeSet<String> = variants.get(&vname)?.features.iter().cloned().collect();
    let repo = git2::Repository::discover(root)
        .map_err(|e| BenchError::env("not a git repository").cause(e.message().to_string()))?;
    let resolve = |rev: &str| -> Result<git2::Oid> {
        repo.revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| BenchError::usage(format!("unknown commit `{rev}`")).cause(e.message().to_string()))
    };
    let (good_id, bad_id) = (resolve(good)?, resolve(bad)?);
    if !repo.graph_descendant_of(bad_id, good_id).unwrap_or(false) {
        return Err(BenchError::usage(format!("`{bad}` does not descend from `{good}`: unrelated commits"))
            .hint("--good must be an ancestor of --bad"));
    }
    let commits = commits_between(&repo, good_id, bad_id, a.first_parent)?;
    let scratch = root.join("target").join("bench-bisect").join("trees");
    let extract = |id: git2::Oid| extract_driver(&repo, id, &scratch);
    let short = |id: git2::Oid| id.to_string()[..10].to_string();
    let found = {
        let mut test = |i: usize| -> Result<Outcome> {
            let src = extract(commits[i])?;
            ctx.test(&short(commits[i]), &src, &features, None)
        };
        bisect::linear(commits.len(), &mut test)?
    };
    let check_good = |ctx: &mut Ctx| -> Result<()> {
        let src = extract(good_id)?;
        if ctx.test(&short(good_id), &src, &features, None)? == Outcome::Bad {
            return Err(BenchError::usage(format!(
                "the good end `{good}` fails the oracle: good and bad swapped, or the regression is older"
            )));
        }
        Ok(())
    };
    let describe = |id: git2::Oid| -> String {
        repo.find_commit(id)
            .map(|c| format!("{} {}", short(id), c.summary().unwrap_or("")))
            .unwrap_or_else(|_| short(id))
    };
    Ok(match found {
        Some(Found::First(0)) => {
            check_good(ctx)?;
            (true, format!("first bad commit: {} ({} of {})", describe(commits[0]), 1, commits.len()))
        }
        Some(Found::First(i)) => {
            (true, format!("first bad commit: {} ({} of {})", describe(commits[i]), i + 1, commits.len()))
        }
        Some(Found::Range(s, e)) => (
            false,
            format!(
                "cannot split: the first bad commit is one of {} (commits {}..={} of {})",
                commits[s..=e].iter().map(|c| short(*c)).collect::<Vec<_>>().join(" "),
                s + 1,
                e + 1,
                commits.len()
            ),
        ),
        None => {
            check_good(ctx)?;
            (false, format!("nothing between {good} and {bad} is bad"))
        }
    })
}

/// The commits after `good` up to `bad`, oldest first (first parents only when asked).
fn commits_between(
    repo: &git2::Repository,
    good: git2::Oid,
    bad: git2::Oid,
    first_parent: bool,
) -> Result<Vec<git2::Oid>> {
    let git = |e: git2::Error| BenchError::env(e.message().to_string());
    let mut walk = repo.revwalk().map_err(git)?;
    walk.push(bad).and_then(|_| walk.hide(good)).map_err(git)?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE).map_err(git)?;
    if first_parent {
        walk.simplify_first_parent().map_err(git)?;
    }
    Ok(walk.filter_map(|c| c.ok()).collect())
}

/// Writes the `driver/` tree of commit `id` under `scratch/ID/` and returns its `src/`.
fn extract_driver(repo: &git2::Repository, id: git2::Oid, scratch: &Path) -> Result<PathBuf> {
    let dir = scratch.join(id.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let tree = repo.find_commit(id).and_then(|c| c.tree()).map_err(|e| BenchError::env(e.message().to_string()))?;
    let mut failed = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |prefix, entry| {
        let path = format!("{prefix}{}", entry.name().unwrap_or(""));
        if !path.starts_with("driver/") {
            return if "driver/".starts_with(&path) || path == "driver" {
                git2::TreeWalkResult::Ok
            } else {
                git2::TreeWalkResult::Skip
            };
        }
        if entry.kind() == Some(git2::ObjectType::Blob) {
            if let Ok(blob) = repo.find_blob(entry.id()) {
                let p = dir.join(&path);
                if let Err(e) = std::fs::create_dir_all(p.parent().expect("has a parent"))
                    .and_then(|_| std::fs::write(&p, blob.content()))
                {
                    failed = Some(e.to_string());
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| BenchError::env(e.message().to_string()))?;
    if let Some(e) = failed {
        return Err(BenchError::env(format!("cannot write {}", dir.display())).cause(e));
    }
    write_workspace_root(repo, &tree, &dir)?;
    Ok(dir.join("driver").join("src"))
}

/// The commit's own workspace manifest and lock file beside its driver, with the driver
/// as the only member: the driver inherits its edition and version from the workspace,
/// and the extracted tree sits inside this workspace's directory, where cargo would
/// otherwise take it for a stray member of ours.
fn write_workspace_root(repo: &git2::Repository, tree: &git2::Tree, dir: &Path) -> Result<()> {
    let blob = |name: &str| -> Option<Vec<u8>> {
        let entry = tree.get_name(name)?;
        Some(repo.find_blob(entry.id()).ok()?.content().to_vec())
    };
    let mut manifest: toml::Table =
        blob("Cargo.toml").and_then(|b| String::from_utf8(b).ok()).and_then(|t| t.parse().ok()).unwrap_or_default();
    let ws = manifest.entry("workspace").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = ws.as_table_mut() {
        t.insert("members".into(), toml::Value::Array(vec![toml::Value::String("driver".into())]));
        t.remove("default-members");
        t.remove("exclude");
    }
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).or_env(format!("cannot write {}", dir.join(name).display()))
    };
    write("Cargo.toml", toml::to_string(&manifest).unwrap_or_default().as_bytes())?;
    if let Some(lock) = blob("Cargo.lock") {
        write("Cargo.lock", &lock)?;
    }
    Ok(())
}
