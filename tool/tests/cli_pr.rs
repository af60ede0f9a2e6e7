//! `bench notes`, `bench pr` and `bench patches` as a user runs them.

mod common;
use common::{sh, Ws};
use std::path::Path;

#[test]
fn pr_for_c_reproduces_the_seed_structure_and_figures() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["pr", "--variant", "c", "--no-local"]);
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
    let (code, out, _) = ws.bench(&["pr", "--variant", "c", "--no-local"]);
    assert_eq!(code, 0);
    assert!(out.contains("`sdio_rx_work` 40,480 dispatches → 100.0/s = **104.5 per 1000 RX pkts**"), "{out}");
}

#[test]
fn pr_for_c_v2_has_its_clean_audit_and_the_c_verdict_as_motivation() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["pr", "--variant", "c-v2", "--no-local"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Contract audit (`bench audit --variant c-v2`): **PASS**"), "{out}");
    let motivation = &out[out.find("## Motivation").expect("a motivation section")..];
    assert!(
        motivation.contains("Phase 7 verdict: FAILED") && motivation.contains("notes/2026-05-07-c-phase7-verdict.md"),
        "{out}"
    );
    assert!(out.contains("`Bes2600.wsm_rx_seq`: written by bh before, by rx_work now (still single-writer)"));
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2", "--format", "email", "--no-local"]);
    assert_eq!(code, 0);
    assert!(out.contains("Subject: [PATCH 0/1] bes2600: Patch C v2"), "{out}");
}

#[test]
fn pr_includes_the_build_record_and_stress_figures_when_present() {
    let ws = Ws::new();
    assert_eq!(ws.bench(&["build", "--variant", "c-v2"]).0, 0);
    assert_eq!(ws.bench(&["stress", "--variant", "c-v2", "--ramp", "4:1m"]).0, 0);
    let (code, out, _) = ws.bench(&["pr", "--variant", "c-v2"]);
    assert_eq!(code, 0);
    assert!(out.contains("(build #1)"), "{out}");
    assert!(out.contains("## Simulated stress (bench stress, seed 1, clean)"), "{out}");
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

#[test]
fn each_patch_applies_to_the_materialised_parent() {
    let ws = Ws::new();
    let chain = ["baseline", "b", "c-prep", "c-v2"];
    let patches = ["0001-b.patch", "0002-c-prep.patch", "0003-c-v2.patch"];
    for (i, patch) in patches.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let materialise = |variant: &str, into: &Path| {
            // The package holds the materialised sources (lib.rs as bes2600.rs, plus the
            // digest line): rebuild the plain tree from it.
            let (code, out, err) =
                ws.bench(&["build", "--variant", variant, "--out", into.to_str().unwrap(), "--json"]);
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
                        (
                            "lib.rs".to_string(),
                            text[..text.rfind("\n/// SHA-256 of every source file").unwrap()].to_string(),
                        )
                    } else {
                        (name, text)
                    };
                    std::fs::write(src.join(target), text).unwrap();
                }
            }
            into.join("tree")
        };
        let parent = materialise(chain[i], &dir.path().join("p"));
        let child = materialise(chain[i + 1], &dir.path().join("c"));
        let apply = sh(&parent, "git", &["apply", ws.root.join("patches").join(patch).to_str().unwrap()]);
        assert!(apply.status.success(), "{patch}: {}", String::from_utf8_lossy(&apply.stderr));
        for e in std::fs::read_dir(child.join("driver/src")).unwrap() {
            let e = e.unwrap();
            assert_eq!(
                std::fs::read_to_string(parent.join("driver/src").join(e.file_name())).unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
                "{patch}: {:?} differs after applying",
                e.file_name()
            );
        }
    }
}
