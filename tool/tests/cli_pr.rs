//! `bench notes`, `bench pr` and `bench patches` as a user runs them.

mod common;
use common::{git, Ws};
use std::path::{Path, PathBuf};

#[test]
fn pr_for_c_reproduces_the_seed_structure_and_figures() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["pr", "--variant", "c"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bes2600: Patch C — direct-deliver RX SKBs from sdio_rx_work\n"), "{out}");
    let mut last = 0;
    for heading in [
        "## Pre-patch baseline",
        "## What this saves per RX frame",
        "## Contract",
        "## Minimum-diff scope",
        "## Phase 7 plan",
        "## Test plan",
        "## Phase 7 verdict",
        "## Root cause",
        "## Phase 6 contract analysis miss",
        "## Resolution",
        "## Rollback",
    ] {
        let at = out.find(heading).unwrap_or_else(|| panic!("no `{heading}` in:\n{out}"));
        assert!(at > last, "`{heading}` out of order");
        last = at;
    }
    for figure in [
        "387,532 RX packets",
        "578 MB",
        "**1.36 MiB/s observed receive**",
        "`sdio_rx_work` 34,994 dispatches → 86.4/s = **90.3 per 1000 RX pkts**",
        "`sdio_tx_work` 111,770 dispatches → 276.1/s",
        "redispatches: **0**",
        "srcversion 1B3B3ED0",
        "rx_queue->lock acquire rate: 1914/s → 0 (high confidence)",
        "_raw_spin_unlock_irqrestore CPU%: 20% → 12-15% (medium confidence)",
        "- [ ] Reload module on ohm",
        "Rollback module at `/var/tmp/bes2600.patchB.rollback.ko`",
        "**FAIL**",
    ] {
        assert!(out.contains(figure), "missing `{figure}` in:\n{out}");
    }
}

#[test]
fn derived_figures_are_computed_from_the_raw_counters() {
    let ws = Ws::new();
    let note = ws.root.join("notes/2026-05-07-b-baseline-4mb.md");
    let text = std::fs::read_to_string(&note).unwrap().replace("value = 34994", "value = 40480");
    std::fs::write(&note, text).unwrap();
    let (code, out, _) = ws.bench(&["pr", "--variant", "c"]);
    assert_eq!(code, 0);
    assert!(out.contains("`sdio_rx_work` 40,480 dispatches → 100.0/s = **104.5 per 1000 RX pkts**"), "{out}");
}

#[test]
fn pr_for_c_v2_has_its_clean_audit_and_the_c_verdict_as_motivation() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["pr", "--variant", "c-v2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Contract audit (`bench audit --variant c-v2`): **PASS**"), "{out}");
    let motivation = &out[out.find("## Motivation").expect("a motivation section")..];
    assert!(
        motivation.contains("Phase 7 verdict: FAILED") && motivation.contains("notes/2026-05-07-c-phase7-verdict.md"),
        "{out}"
    );
    assert!(out.contains("`Bes2600.wsm_rx_seq`: written by bh before, by rx_work now (still single-writer)"));
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2", "--format", "email"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Subject: [PATCH 0/1] bes2600: Patch C v2") && out.contains("From: Seed f1a5d7cc maintainers <"),
        "{out}"
    );
}

#[test]
fn pr_cites_only_the_build_and_stress_run_it_is_given_and_checks_the_predictions() {
    let ws = Ws::new();
    assert_eq!(ws.bench(&["build", "--variant", "c-v2"]).0, 0);
    let (code, _, err) =
        ws.bench(&["stress", "--variant", "c-v2", "--against", "c-prep", "--seeds", "1..2", "--ramp", "4:30s"]);
    // The lock CPU prediction (12-15%) is missed in the calibrated model (about 10.8%):
    // exit 1, and the run is recorded all the same.
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 prediction(s) of c-v2 missed"), "{err}");
    assert!(err.contains("recorded as stress run #1"), "{err}");
    let (code, _, err) = ws.bench(&["stress", "--variant", "c-v2", "--ramp", "4:20s", "--seed", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("recorded as stress run #2"), "{err}");

    // Nothing named: no build, no stress, and the footer says so; the predictions say how
    // to check them.
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2"]);
    assert_eq!(code, 0);
    assert!(!out.contains("## Simulated stress") && !out.contains("(build #"), "{out}");
    assert!(out.contains("build none given (--build ID); stress none given (--stress RUN)"), "{out}");

    // The comparison with the parent: the predictions with their simulated check.
    let (code, out, err) = ws.bench(&["pr", "--variant", "c-v2", "--stress", "1", "--build", "1"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "## What this saves per RX frame",
        "Simulated against `c-prep` (run #1: ramp 4:30s x1, seeds 1..2)",
        "rx_queue_lock_per_s: 1914 1/s → 0 1/s (high confidence): simulated 0.0, met",
        "spinlock_cpu_pct: 20% → 12-15% (medium confidence): simulated",
        "## Contract",
        "## Phase 7 plan",
        "## Test plan",
        "(build #1)",
        "Rollback module at `/var/lib/bench/bes2600/slots/rollback/bes2600.ko`",
        "## Simulated stress (bench stress run #1: ramp 4:30s x1, seeds 1..2, clean)",
        "stress run #1: ramp 4:30s x1, seeds 1..2; measure none given (--measure RUN).",
        "notes/2026-05-08-c-v2-phase4-plan.md",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
    // One seed: its own table, named.
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2", "--stress", "2"]);
    assert_eq!(code, 0);
    assert!(out.contains("## Simulated stress (bench stress run #2: ramp 4:20s x1, seed 3, clean)"), "{out}");

    // Wrong inputs are named.
    let (code, _, err) = ws.bench(&["pr", "--variant", "c", "--stress", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("stress run #1 is of `c-v2`, not `c`"), "{err}");
    let (code, _, err) = ws.bench(&["pr", "--variant", "c-v2", "--stress", "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("no stress run #9") && err.contains("#2, #1"), "{err}");
    let (code, _, err) = ws.bench(&["pr", "--variant", "c-v2", "--build", "7"]);
    assert_eq!(code, 2);
    assert!(err.contains("no build #7"), "{err}");
}

#[test]
fn a_plan_notes_own_sections_are_rendered_in_order_and_a_borrowed_baseline_says_whose() {
    let ws = Ws::new();
    let plan = ws.root.join("notes/2026-05-08-c-v2-phase4-plan.md");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, format!("{text}\n## Risks\n\nThe atomics cost.\n\n## Open questions\n\nNone yet.\n"))
        .unwrap();
    let (code, out, err) = ws.bench(&["pr", "--variant", "c-v2"]);
    assert_eq!(code, 0, "{err}");
    let risks = out.find("## Risks").expect("a section the template does not know is rendered");
    let open = out.find("## Open questions").expect("every section");
    assert!(risks < open, "in the note's order");
    assert!(
        out.contains("Note: `c-prep` has no baseline note; this is `b`'s, its nearest ancestor with one."),
        "{out}"
    );
}

#[test]
fn notes_list_validate_and_start_new_ones() {
    let ws = Ws::new();
    let (code, out, _) = ws.bench(&["notes"]);
    assert_eq!(code, 0);
    let notes = std::fs::read_dir(ws.root.join("notes")).unwrap().count();
    assert!(out.contains(&format!("{notes} notes, all valid")), "{out}");
    // A note for a variant that does not exist yet (its file will cite the note).
    let (code, out, err) =
        ws.bench(&["notes", "new", "--variant", "d-next", "--kind", "verdict", "--date", "2026-11-24"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().ends_with("notes/2026-11-24-d-next-verdict.md"), "{out}");
    assert!(err.contains("no variants/d-next.toml yet"), "{err}");
    // The template's blanks are refused until filled in.
    let (code, _, err) = ws.bench(&["notes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2026-11-24-d-next-verdict.md") && err.contains("is empty"), "{err}");
    let path = ws.root.join("notes/2026-11-24-d-next-verdict.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let filled = text
        .replace("verdict = \"\"", "verdict = \"clean\"")
        .replace("srcversion = \"\"", "srcversion = \"ABC\"")
        .replace("kernel = \"\"", "kernel = \"6.19.10\"");
    std::fs::write(&path, filled).unwrap();
    // Still unknown: the variant. Then the variant arrives, citing the note.
    let (code, _, err) = ws.bench(&["notes"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown variant `d-next`"), "{err}");
    std::fs::write(
        ws.root.join("variants/d-next.toml"),
        "name = \"d-next\"\nparent = \"c-v2\"\ntitle = \"next\"\nfeatures = [\"patch-b\", \"c-prep-atomic\", \"c-prep-pending\", \"c-direct-rx\"]\nstatus = \"proposed\"\n\n[rationale]\ntext = \"next\"\nnotes = [\"notes/2026-11-24-d-next-verdict.md\"]\n",
    )
    .unwrap();
    let (code, out, err) = ws.bench(&["notes", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), notes + 1, "the new note is listed");
    let (code, _, err) =
        ws.bench(&["notes", "new", "--variant", "d-next", "--kind", "verdict", "--date", "2026-11-24"]);
    assert_eq!(code, 2, "refuses to overwrite: {err}");
    assert!(err.contains("pass --date"), "{err}");
}

fn with_note(ws: &Ws, text: &str, args: &[&str]) -> (i32, String) {
    let p = ws.root.join("notes/zz-bad.md");
    std::fs::write(&p, text).unwrap();
    let (code, _, err) = ws.bench(args);
    std::fs::remove_file(&p).unwrap();
    (code, err)
}

#[test]
fn bad_notes_and_templates_are_named() {
    let ws = Ws::new();
    let head = "+++\ndate = \"2026-05-07\"\nkind = \"plan\"\ntitle = \"t\"\n";
    let cases = [
        (format!("{head}variants = [\"c\"]\nthis is not toml\n+++\n"), "notes/zz-bad.md:6:"),
        (format!("{head}variants = [\"c-v9\"]\n+++\n"), "notes/zz-bad.md: unknown variant `c-v9`"),
        (
            format!(
                "{head}variants = [\"c\"]\n[[predictions]]\nfrom = \"1\"\nto = \"0\"\nconfidence = \"high\"\n+++\n"
            ),
            "missing field `metric`",
        ),
    ];
    for (text, needle) in cases {
        let (code, err) = with_note(&ws, &text, &["notes"]);
        assert_eq!(code, 2, "{needle}: {err}");
        assert!(err.contains(needle), "wanted `{needle}` in {err}");
    }
    let tpl = ws.home.path().join("mine.md.j2");
    std::fs::write(&tpl, "line one\n{{ title }\n").unwrap();
    let (code, _, err) = ws.bench(&["pr", "--variant", "c", "--template", tpl.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("template {}:2:", tpl.display())), "{err}");
}

#[test]
fn patches_check_passes_then_fails_when_the_driver_changes() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["patches", "--check"]);
    assert_eq!(code, 0, "the committed patches/ are current: {out}{err}");
    let bh = ws.root.join("driver/src/bh.rs");
    let text = std::fs::read_to_string(&bh).unwrap().replace(
        "            #[cfg(not(feature = \"c-direct-rx\"))]\n            {\n                restart_tx |= self.handle_rx_skb(msg)?;\n            }",
        "            #[cfg(not(feature = \"c-direct-rx\"))]\n            {\n                // handled in the BH\n                restart_tx |= self.handle_rx_skb(msg)?;\n            }",
    );
    std::fs::write(&bh, text).unwrap();
    let (code, _, err) = ws.bench(&["patches", "--check"]);
    assert_eq!(code, 1);
    assert!(err.contains("is stale") && err.contains("regenerate with `bench patches --variant c-v2`"), "{err}");
    let (code, _, _) = ws.bench(&["patches"]);
    assert_eq!(code, 0);
    assert_eq!(ws.bench(&["patches", "--check"]).0, 0);
}

/// The materialised tree of `variant` (from its package: lib.rs is bes2600.rs there, with
/// a digest line appended) in a fresh directory.
fn materialised(ws: &Ws, variant: &str, into: &Path) -> PathBuf {
    let (code, out, err) =
        ws.bench(&["build", "--variant", variant, "--allow-violations", "--out", into.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pkg = Path::new(v[0]["package"].as_str().unwrap()).to_path_buf();
    let src = into.join("tree/driver/src");
    std::fs::create_dir_all(&src).unwrap();
    for e in std::fs::read_dir(&pkg).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let (target, text) = if name == "bes2600.rs" {
                ("lib.rs".to_string(), text[..text.rfind("\n/// SHA-256 of every source file").unwrap()].to_string())
            } else {
                (name, text)
            };
            std::fs::write(src.join(target), text).unwrap();
        }
    }
    into.join("tree")
}

/// `git am` of every patch of `dir` (cover letter left out) on a repository holding the
/// materialised `base`; the result must be the materialised `tip`, file for file.
fn am_gives(ws: &Ws, dir: &Path, base: &str, tip: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = materialised(ws, base, &tmp.path().join("base"));
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    let mut patches: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch") && !p.to_string_lossy().contains("cover-letter"))
        .collect();
    patches.sort();
    assert!(!patches.is_empty());
    for p in &patches {
        git(&repo, &["am", "-q", p.to_str().unwrap()]);
    }
    let want = materialised(ws, tip, &tmp.path().join("tip"));
    // A package's kmod.rs carries its version in the .modinfo line; the series does not.
    let plain =
        |text: String| -> String {
            text.lines()
                .map(|l| {
                    if l.starts_with("static MODINFO_VERSION:") {
                        "static MODINFO_VERSION: (the package's)"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
    for e in std::fs::read_dir(want.join("driver/src")).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            plain(std::fs::read_to_string(repo.join("driver/src").join(e.file_name())).unwrap()),
            plain(std::fs::read_to_string(e.path()).unwrap()),
            "{tip}: {:?} differs after git am",
            e.file_name()
        );
    }
}

#[test]
fn the_series_is_what_git_format_patch_writes_and_git_am_applies_every_version() {
    let ws = Ws::new();
    // v2 is the committed series (c-v2 rerolls c); v1 is Patch C's.
    let v1 = ws.home.path().join("v1");
    let (code, _, err) = ws.bench(&["patches", "--variant", "c", "--out", v1.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    am_gives(&ws, &ws.root.join("patches"), "baseline", "c-v2");
    am_gives(&ws, &v1, "baseline", "c");

    // Headers, parsed back by git mailinfo: the sender, the date, the version in the
    // subject, Signed-off-by.
    let v2_patch = ws.root.join("patches/v2-0003-c-v2.patch");
    let raw = std::fs::read_to_string(&v2_patch).unwrap();
    assert!(raw.starts_with("From ") && raw.lines().next().unwrap().len() == 5 + 40 + 25, "{}", &raw[..80]);
    assert!(raw.contains("\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"));
    assert!(raw.contains("Subject: [PATCH v2 3/3]"), "{}", &raw[..400]);
    let tmp = tempfile::tempdir().unwrap();
    let mi = std::process::Command::new("git")
        .args(["mailinfo", "msg", "patch"])
        .current_dir(tmp.path())
        .stdin(std::fs::File::open(&v2_patch).unwrap())
        .output()
        .unwrap();
    assert!(mi.status.success());
    let info = String::from_utf8(mi.stdout).unwrap();
    assert!(info.contains("Author: Seed f1a5d7cc maintainers\n"), "{info}");
    assert!(info.contains("Subject: bes2600: Patch C v2 — direct-deliver"), "{info}");
    assert!(info.contains("Date: Thu, 7 May 2026 12:00:00 +0000"), "{info}");
    let msg = std::fs::read_to_string(tmp.path().join("msg")).unwrap();
    assert!(msg.contains("Signed-off-by: Seed f1a5d7cc maintainers <maintainers@"), "{msg}");

    // The cover letter: shortlog, diffstat, base-commit, b4's change-id (the same in v1
    // and v2), and the range-diff showing C-prep arriving before C v2.
    let cover2 = std::fs::read_to_string(ws.root.join("patches/v2-0000-cover-letter.patch")).unwrap();
    let cover1 = std::fs::read_to_string(v1.join("0000-cover-letter.patch")).unwrap();
    assert!(cover1.contains("Subject: [PATCH 0/2]"), "{cover1}");
    for needle in [
        "Seed f1a5d7cc maintainers (3):",
        "files changed",
        "\nbase-commit: ",
        "\nchange-id: ",
        "Range-diff against v1:",
    ] {
        assert!(cover2.contains(needle), "cover letter lacks {needle}");
    }
    let id = |c: &str| c.lines().find(|l| l.starts_with("change-id: ")).unwrap().to_string();
    assert_eq!(id(&cover1), id(&cover2));
    assert!(
        cover2.lines().any(|l| l.starts_with("-:  ------------ > 2:") && l.contains("C-prep")),
        "the range-diff shows C-prep as new in v2"
    );
    assert!(!cover2.contains("*** SUBJECT HERE ***") && !cover2.contains("*** BLURB HERE ***"));

    // --base: only the steps after it; a base off the chain is a clear error.
    let tail = ws.home.path().join("tail");
    let (code, _, err) = ws.bench(&["patches", "--variant", "c-v2", "--base", "b", "--out", tail.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> =
        std::fs::read_dir(&tail).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["v2-0000-cover-letter.patch", "v2-0001-c-prep.patch", "v2-0002-c-v2.patch"]);
    am_gives(&ws, &tail, "b", "c-v2");
    let (code, _, err) = ws.bench(&["patches", "--variant", "c-v2", "--base", "c", "--out", tail.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`c` is not an ancestor of `c-v2`") && err.contains("baseline -> b -> c-prep -> c-v2"),
        "{err}"
    );
}

#[test]
fn the_sender_is_gits_identity_unless_bench_toml_names_one() {
    let ws = Ws::new();
    std::fs::write(ws.root.join("bench.toml"), "module = \"bes2600\"\n").unwrap();
    let out = ws.home.path().join("p");
    let (code, _, err) = ws.bench(&["patches", "--variant", "c-v2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "no identity anywhere: {err}");
    assert!(err.contains("git config user.email"), "{err}");
    git(&ws.root, &["config", "user.name", "Jane Hacker"]);
    git(&ws.root, &["config", "user.email", "jane@example.org"]);
    let (code, _, err) = ws.bench(&["patches", "--variant", "c-v2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let p = std::fs::read_to_string(out.join("v2-0001-b.patch")).unwrap();
    assert!(
        p.contains("From: Jane Hacker <jane@example.org>")
            && p.contains("Signed-off-by: Jane Hacker <jane@example.org>")
    );
    std::fs::write(ws.root.join("bench.toml"), "[patches]\nfrom = \"nobody\"\n").unwrap();
    let (code, _, err) = ws.bench(&["patches", "--variant", "c-v2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bench.toml") && err.contains("is not `Name <email>`"), "{err}");
}

#[test]
fn a_stress_run_becomes_the_parents_baseline_note() {
    let ws = Ws::new();
    let (code, _, err) = ws.bench(&["stress", "--variant", "c-prep", "--ramp", "2:10s,4:20s", "--seed", "2"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = ws.bench(&["notes", "baseline", "--from-stress", "1", "--date", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    let path = std::path::PathBuf::from(out.trim());
    assert!(path.ends_with("notes/2026-11-20-c-prep-baseline-run1.md"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("bench stress --variant c-prep --seed 2 --ramp 2:10s,4:20s --reps 1"), "{text}");
    assert!(text.contains("duration = { value = 20, unit = \"s\" }"), "the last stage by default: {text}");
    assert_eq!(ws.bench(&["notes"]).0, 0, "the note is valid");
    // c-v2's PR now shows its parent's own baseline, without the borrowed-baseline note.
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2"]);
    assert_eq!(code, 0);
    assert!(out.contains("(notes/2026-11-20-c-prep-baseline-run1.md)") && !out.contains("nearest ancestor"), "{out}");

    // Stage 1, a second baseline on the same date: refused, nothing left behind.
    let (code, _, err) = ws.bench(&["notes", "baseline", "--from-stress", "1", "--stage", "1", "--date", "2026-11-20"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists"), "{err}");
    for (args, needle) in [
        (vec!["--from-stress", "1", "--stage", "3"], "has no stage 3"),
        (vec!["--from-stress", "5"], "no stress run #5"),
        (vec!["--from-stress", "1", "--date", "2026-13-01"], "is not a date"),
    ] {
        let mut a = vec!["notes", "baseline"];
        a.extend(args);
        let (code, _, err) = ws.bench(&a);
        assert_eq!(code, 2, "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let notes = std::fs::read_dir(ws.root.join("notes")).unwrap().count();
    let (code, _, err) = ws.bench(&["stress", "--variant", "c-prep", "--seeds", "1..2", "--ramp", "4:5s"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ws.bench(&["notes", "baseline", "--from-stress", "2", "--date", "2026-11-21"]);
    assert_eq!(code, 2);
    assert!(err.contains("is a swarm run, not one seed"), "{err}");
    assert_eq!(std::fs::read_dir(ws.root.join("notes")).unwrap().count(), notes, "nothing written");
}
