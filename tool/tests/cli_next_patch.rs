//! The developer's next patch, end to end: a copy of the workspace gets two new driver
//! features (one sound, one racy), two variants on top of c-v2 and their notes, committed
//! over a few commits, and every command runs on them with no edit to bench: variants,
//! notes, audit (with its delta), stress with --against, build, verify, pr, patches with
//! --base, bisect across variants, features and commits, stage on a local target. The
//! seed's published series stays byte-identical.

mod common;
use common::Ws;
use std::path::Path;
use std::process::Command;

/// Replaces `from` (which must occur exactly once) by `to` in the file.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{}: the anchor must occur once: {from}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut t = std::fs::read_to_string(path).unwrap();
    t.push_str(text);
    std::fs::write(path, t).unwrap();
}

/// `zz-e2e-wake`: sdio_rx_work notes each RX batch through a new function (it implies
/// c-direct-rx). `zz-e2e-racy` is declared with it; its code comes in a later commit. The
/// anchors are lines every driver has (the manifest's `[features]`, function entries), and
/// the names are the test's own, so the workspace may hold patches of its own.
fn add_sound_feature(root: &Path) {
    edit(
        &root.join("driver/Cargo.toml"),
        "[features]\n",
        "[features]\nzz-e2e-wake = [\"c-direct-rx\"]\nzz-e2e-racy = []\n",
    );
    let sdio = root.join("driver/src/sdio.rs");
    edit(
        &sdio,
        "        let _f = Frame::enter(p, \"bes2600_sdio_extract_packets\");",
        "        let _f = Frame::enter(p, \"bes2600_sdio_extract_packets\");\n        #[cfg(feature = \"zz-e2e-wake\")]\n        self.e2e_note_batch(batch.len());",
    );
    append(
        &sdio,
        "\n#[cfg(feature = \"zz-e2e-wake\")]\nimpl<P: Platform> Bes2600<P> {\n    /// Notes an RX batch of `len` bytes (a hook for the end-to-end test's patch).\n    fn e2e_note_batch(&self, len: usize) {\n        let _f = Frame::enter(&self.plat, \"e2e_note_batch\");\n        let _ = len;\n    }\n}\n",
    );
    std::fs::write(
        root.join("variants/e2e-d.toml"),
        "name = \"e2e-d\"\nparent = \"c-v2\"\ntitle = \"Patch E2E — note every RX batch\"\nfeatures = [\"patch-b\", \"c-prep-atomic\", \"c-prep-pending\", \"zz-e2e-wake\"]\nstatus = \"proposed\"\n\n[rationale]\ntext = \"\"\"\nPatch E2E: sdio_rx_work notes every RX batch through a function of its own.\n\"\"\"\nnotes = [\"notes/2026-11-20-e2e-d-plan.md\"]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("variants/e2e-d-racy.toml"),
        "name = \"e2e-d-racy\"\nparent = \"e2e-d\"\ntitle = \"Patch E2E2 — count RX batches\"\nfeatures = [\"patch-b\", \"c-prep-atomic\", \"c-prep-pending\", \"zz-e2e-wake\", \"zz-e2e-racy\"]\nstatus = \"proposed\"\n\n[rationale]\ntext = \"\"\"\nCounts RX batches for debugfs.\n\"\"\"\nnotes = []\n",
    )
    .unwrap();
    std::fs::write(
        root.join("notes/2026-11-20-e2e-d-plan.md"),
        "+++\ndate = \"2026-11-20\"\nvariants = [\"e2e-d\"]\nkind = \"plan\"\ntitle = \"Patch E2E: note every RX batch (plan)\"\nrollback = \"/var/lib/bench/bes2600/slots/rollback/bes2600.ko\"\n\n[[predictions]]\nmetric = \"rx_queue_lock_per_s\"\nfrom = \"0\"\nto = \"0\"\nconfidence = \"high\"\n\n[[checklist]]\nitem = \"bench stress --variant e2e-d --against c-v2\"\n+++\n\n## What this saves per RX frame\n\nNothing: a hook.\n\n## Risks\n\nNone known.\n",
    )
    .unwrap();
    std::fs::write(
        root.join("notes/2026-11-21-e2e-d-racy-verdict.md"),
        "+++\ndate = \"2026-11-21\"\nvariants = [\"e2e-d-racy\"]\nkind = \"verdict\"\ntitle = \"Patch E2E2: the batch counter has two writers\"\nverdict = \"failed\"\n+++\n\n## Root cause\n\ne2e_batches is written by the BH and by sdio_rx_work.\n",
    )
    .unwrap();
}

/// `zz-e2e-racy`: a plain counter declared single-writer (bh) that sdio_rx_work writes too.
fn add_racy_code(root: &Path) {
    let device = root.join("driver/src/device.rs");
    edit(
        &device,
        "    /// The last control byte toggle seen (bit 7); 0xFF before the first batch.",
        "    /// RX batches seen, for debugfs.\n    /// contract: writers(bh)\n    #[cfg(feature = \"zz-e2e-racy\")]\n    pub e2e_batches: SingleWriter<P::Word>,\n\n    /// The last control byte toggle seen (bit 7); 0xFF before the first batch.",
    );
    edit(
        &device,
        "            field!((*slot).bh_error).write(named(\"Bes2600.bh_error\"));",
        "            field!((*slot).bh_error).write(named(\"Bes2600.bh_error\"));\n            #[cfg(feature = \"zz-e2e-racy\")]\n            field!((*slot).e2e_batches).write(named(\"Bes2600.e2e_batches\"));",
    );
    edit(
        &root.join("driver/src/sdio.rs"),
        "        let _f = Frame::enter(p, \"bes2600_sdio_extract_packets\");",
        "        let _f = Frame::enter(p, \"bes2600_sdio_extract_packets\");\n        #[cfg(feature = \"zz-e2e-racy\")]\n        self.e2e_batches.add(p, 1);",
    );
    edit(
        &root.join("driver/src/bh.rs"),
        "        let _f = Frame::enter(p, \"bes2600_bh_tx_helper\");",
        "        let _f = Frame::enter(p, \"bes2600_bh_tx_helper\");\n        #[cfg(feature = \"zz-e2e-racy\")]\n        self.e2e_batches.add(p, 1);",
    );
}

/// A commit outside the driver (the materialised trees, and so the published series,
/// are unchanged by it).
fn comment_commit(ws: &Ws, n: usize) {
    let news = ws.root.join("NEWS.md");
    let mut t = std::fs::read_to_string(&news).unwrap_or_default();
    t.push_str(&format!("- note {n}\n"));
    std::fs::write(&news, t).unwrap();
    ws.commit(&format!("a comment {n}"));
}

fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Long because it is one user's session, command after command, on one workspace.
#[test]
fn a_new_feature_variant_and_notes_go_through_every_command() {
    let ws = Ws::new();
    let published = all_bytes(&ws.root.join("patches"));
    add_sound_feature(&ws.root);
    ws.commit("e2e-d: note every RX batch");
    comment_commit(&ws, 1);
    add_racy_code(&ws.root);
    ws.commit("e2e-d-racy: count RX batches");
    comment_commit(&ws, 2);

    // The seed's series is byte-identical with the new features in the tree.
    let (code, out, err) = ws.bench(&["patches", "--check"]);
    assert_eq!(code, 0, "adding features rewrote published patches: {out}{err}");
    assert_eq!(all_bytes(&ws.root.join("patches")), published);

    let (code, out, err) = ws.bench(&["variants"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("e2e-d-racy") && out.contains("zz-e2e-wake"), "{out}");
    let (code, out, err) = ws.bench(&["notes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2026-11-20-e2e-d-plan.md"), "{out}");

    // Audit: d passes and its delta shows the new function; d-racy fails on the new
    // counter, and its delta shows it newly shared.
    let (code, out, err) = ws.bench(&["audit", "--variant", "e2e-d", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(j.to_string().contains("e2e_note_batch"), "the delta lists the added function: {out}");
    let (code, out, err) = ws.bench(&["audit", "--variant", "e2e-d-racy"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("Bes2600.e2e_batches"), "{out}");

    // Stress: d against its parent on the same seeds; d-racy fails at run time on the
    // counter.
    let (code, out, err) =
        ws.bench(&["stress", "--variant", "e2e-d", "--against", "c-v2", "--seeds", "1..2", "--ramp", "4:20s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("prediction rx_queue_lock_per_s: 0 -> 0: met"), "{out}");
    assert!(err.contains("recorded as stress run #1"), "{err}");
    let (code, out, _) = ws.bench(&["stress", "--variant", "e2e-d-racy", "--ramp", "4:20s"]);
    assert_eq!(code, 1);
    assert!(out.contains("Bes2600.e2e_batches"), "{out}");

    // Build and verify.
    let (code, out, err) = ws.bench(&["build", "--variant", "e2e-d", "--json"]);
    assert_eq!(code, 0, "{err}");
    let b: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tarball = b[0]["tarball"].as_str().unwrap().to_string();
    let (code, _, err) = ws.bench(&["verify", &tarball]);
    assert_eq!(code, 0, "{err}");

    // PR: the plan's sections (its own too), the predictions checked, the borrowed
    // baseline said.
    let (code, out, err) = ws.bench(&["pr", "--variant", "e2e-d", "--stress", "1", "--build", "1"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "bes2600: Patch E2E — note every RX batch",
        "## Risks",
        "rx_queue_lock_per_s: 0 → 0 (high confidence): simulated 0.0, met",
        "## Pre-patch baseline",
        "(build #1)",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }

    // Patches from c-v2: one patch, applying to c-v2's tree (checked by git am in cli_pr).
    let series = ws.home.path().join("d-series");
    let (code, _, err) =
        ws.bench(&["patches", "--variant", "e2e-d", "--base", "c-v2", "--out", series.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = all_bytes(&series).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0000-cover-letter.patch", "0001-e2e-d.patch"]);
    let patch = String::from_utf8(all_bytes(&series)[1].1.clone()).unwrap();
    assert!(patch.contains("+    fn e2e_note_batch(&self, len: usize) {"), "{patch}");
    assert!(!patch.contains("zz-e2e-wake\")]"), "the materialised patch has no cfg of its own feature");

    // Bisect across variants, features and commits.
    let (code, out, err) = ws.bench(&["bisect", "--good", "c-v2", "--bad", "e2e-d-racy", "--oracle", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("e2e-d-racy"), "{out}");
    let (code, out, err) =
        ws.bench(&["bisect", "--across", "features", "--good", "c-v2", "--bad", "e2e-d-racy", "--oracle", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("minimal failing change: zz-e2e-racy"), "{out}");
    let (code, out, err) = ws.bench(&[
        "bisect",
        "--across",
        "commits",
        "--variant",
        "e2e-d-racy",
        "--good",
        "HEAD~3",
        "--bad",
        "HEAD",
        "--oracle",
        "audit",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("e2e-d-racy: count RX batches"), "{out}");

    // Stage on a local target.
    let ko = ws.home.path().join("mod");
    let release = small_module(&ko);
    let target_root = ws.home.path().join("target-root");
    std::fs::create_dir_all(&target_root).unwrap();
    std::fs::write(
        ws.root.join("bench.toml"),
        format!(
            "module = \"bes2600\"\n[patches]\nfrom = \"T <t@t>\"\n[targets.board]\ntransport = \"local\"\nroot = \"{}\"\nkernel = \"{release}\"\n",
            target_root.display()
        ),
    )
    .unwrap();
    let (code, out, err) = ws.bench(&[
        "stage",
        "--target",
        "board",
        "--ko",
        ko.join("bes2600.ko").to_str().unwrap(),
        "--variant",
        "e2e-d",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("staged e2e-d on board (kernel {release})")), "{out}");
    let (code, out, err) = ws.bench(&["target", "status", "board"]);
    assert_eq!(code, 0, "{err}");
    let active = out.lines().find(|l| l.trim_start().starts_with("active")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(active.split_whitespace().nth(1), Some("e2e-d"), "{out}");
}

/// A small C module named bes2600.ko, built against Debian's headers; returns their
/// kernel release (the module's vermagic).
fn small_module(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let headers = std::fs::read_dir("/usr/src")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("Module.symvers").is_file())
        .expect("Debian kernel headers in /usr/src");
    std::fs::write(
        dir.join("bes2600.c"),
        "#include <linux/module.h>\nstatic int __init m_init(void) { return 0; }\nmodule_init(m_init);\nMODULE_LICENSE(\"GPL\");\n",
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := bes2600.o\n").unwrap();
    let make = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&headers)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let name = headers.file_name().unwrap().to_string_lossy().into_owned();
    name.strip_prefix("linux-headers-").unwrap_or(&name).to_string()
}
