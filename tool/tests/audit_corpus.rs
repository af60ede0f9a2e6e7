//! The contract audit against a corpus of driver changes, each a small crate on the
//! driver's own platform layer (`platform.rs`, `shared.rs`), half racy and half correct,
//! covering every way code reaches a field (helpers, trait methods by receiver, generics,
//! closures, function pointers, macros, aliases, statics), locks along control flow,
//! atomics used as lost updates, undeclared contexts, missing contracts and same-named
//! things of other types. Each case states its verdict in its first line:
//! `//! expect: clean` or `//! expect: Owner.field` (a violation naming that field).
//! Runs the real `bench audit --crate DIR --json`; prints precision and recall.

mod common;

use std::path::{Path, PathBuf};

const PRELUDE: &str = "#![no_std]\n#![allow(dead_code, unused, clippy::all)]\npub mod platform;\npub mod shared;\n\
pub use platform::{LockId, Memory, Ordering};\npub use shared::{Atomic, Owned, SingleWriter, SpinLock, SpinLockGuard};\n\
mod case;\npub use case::*;\n";

fn make_crate(dir: &Path, case: &str) {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("driver").join("src");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\npath = \"src/lib.rs\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), PRELUDE).unwrap();
    for f in ["platform.rs", "shared.rs"] {
        std::fs::copy(driver.join(f), dir.join("src").join(f)).unwrap();
    }
    std::fs::write(dir.join("src/case.rs"), case).unwrap();
}

struct Outcome {
    name: String,
    expect: String,
    code: i32,
    fields: Vec<String>,
    detail: String,
}

fn run_case(path: &PathBuf, scratch: &Path) -> Outcome {
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("//! expect: "))
        .expect("first line: //! expect: ...")
        .trim()
        .to_string();
    let dir = scratch.join(&name);
    make_crate(&dir, &text);
    let out =
        common::bench_command(scratch, scratch).args(["audit", "--crate"]).arg(&dir).arg("--json").output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let fields = serde_json::from_str::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| {
            v[0]["report"]["violations"]
                .as_array()
                .map(|a| a.iter().map(|x| x["field"].as_str().unwrap_or("").to_string()).collect())
        })
        .unwrap_or_default();
    Outcome {
        name,
        expect,
        code,
        fields,
        detail: format!("{}{}", stdout.chars().take(3000).collect::<String>(), String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn corpus_precision_and_recall_are_both_100_percent() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit/corpus");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let scratch = tempfile::tempdir().unwrap();
    // Two workers: the machine has two cores and each case is a cargo build.
    let chunks: Vec<Vec<PathBuf>> = (0..2).map(|k| cases.iter().skip(k).step_by(2).cloned().collect()).collect();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                let sp = scratch.path();
                s.spawn(move || c.iter().map(|p| run_case(p, sp)).collect::<Vec<_>>())
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let (mut tp, mut fp, mut tn, mut fneg) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for o in &outcomes {
        assert!(o.code == 0 || o.code == 1, "{}: the audit did not run (exit {}):\n{}", o.name, o.code, o.detail);
        if o.expect == "clean" {
            if o.code == 0 {
                tn += 1;
            } else {
                fp += 1;
                wrong.push(format!("{}: expected clean, got {:?}\n{}", o.name, o.fields, o.detail));
            }
        } else if o.code == 1 && o.fields.contains(&o.expect) {
            tp += 1;
        } else {
            fneg += 1;
            wrong.push(format!("{}: expected a violation on {}, got {:?}\n{}", o.name, o.expect, o.fields, o.detail));
        }
    }
    let precision = if tp + fp == 0 { 0.0 } else { 100.0 * tp as f64 / (tp + fp) as f64 };
    let recall = if tp + fneg == 0 { 0.0 } else { 100.0 * tp as f64 / (tp + fneg) as f64 };
    println!(
        "audit corpus: {} cases ({} racy, {} correct): precision {precision:.1}% ({tp} of {} reported), recall {recall:.1}% ({tp} of {} racy found)",
        outcomes.len(),
        tp + fneg,
        tn + fp,
        tp + fp,
        tp + fneg
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n----\n"));
}
