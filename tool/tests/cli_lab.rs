//! The kernel lab end to end, against the lab `bench lab setup` made at BENCH_LAB_DIR
//! (scripts/test-all sets it up first): every variant's DKMS package builds into a .ko
//! whose modinfo srcversion is the predicted one and whose signer is the lab key; the
//! enforcing kernel refuses a copy with one byte changed; on two CPUs `c` fails every run
//! with a contract report naming hw_bufs_used and both contexts, and `c-v2` runs clean, on
//! the plain kernel and on the KCSAN kernel; the lab as a bisect oracle names `c`; stage, boot, roll back, boot shows the expected module each time,
//! for a module built here and for a package the lab chroot's DKMS builds and installs.
//!
//! One test function: the lab's chroot, dkms tree and disk are shared, so the steps run
//! in order. Without a lab it fails, naming the setup command, unless
//! BENCH_LAB_TESTS=skip says this machine cannot have one.

mod common;
use common::Ws;
use std::path::PathBuf;

fn lab_dir() -> Option<PathBuf> {
    if std::env::var("BENCH_LAB_TESTS").as_deref() == Ok("skip") {
        return None;
    }
    let dir = PathBuf::from(std::env::var("BENCH_LAB_DIR").unwrap_or_else(|_| "/var/tmp/bench-lab".into()));
    assert!(
        dir.join("stamps/initramfs").is_file(),
        "no kernel lab at {}: run `bench lab setup --dir {}` as root (or set BENCH_LAB_TESTS=skip)",
        dir.display(),
        dir.display()
    );
    Some(dir)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn kernel_lab_end_to_end() {
    let Some(dir) = lab_dir() else { return };
    let ws = Ws::new();
    let lab = dir.display().to_string();

    // Every variant builds with dkms for the lab kernel; srcversion as predicted.
    let mut srcversions = std::collections::BTreeMap::new();
    for v in ["baseline", "b", "c", "c-prep", "c-v2"] {
        let mut args = vec!["build", "--variant", v, "--kernel", "lab", "--lab-dir", &lab, "--json"];
        if v == "c" {
            args.push("--allow-violations");
        }
        let (code, out, err) = ws.bench(&args);
        assert_eq!(code, 0, "{v}: {err}");
        let b = &json(&out)[0];
        let m = &b["lab"];
        assert_eq!(m["srcversion"], b["srcversion"], "{v}: modinfo srcversion equals the prediction");
        assert_eq!(m["signer"], "bench lab key", "{v}");
        let version = std::path::Path::new(b["package"].as_str().unwrap()).file_name().unwrap().to_string_lossy()
            ["bes2600-".len()..]
            .to_string();
        assert_eq!(m["version"], version.as_str(), "{v}: modinfo's version is the package version");
        // Recorded, not yet required to be empty: the kernel's Rust flags warn on every
        // undocumented pub item of the driver (about 95 lines).
        assert!(m["compiler_warnings"].is_array(), "{v}");
        srcversions.insert(v, b["srcversion"].as_str().unwrap().to_string());
    }
    let distinct: std::collections::BTreeSet<&String> = srcversions.values().collect();
    assert_eq!(distinct.len(), 5, "every variant has its own srcversion: {srcversions:?}");

    // c on two CPUs without stall injection: every run fails, at its first cross-context
    // store, with the contract report naming hw_bufs_used and both contexts as the audit
    // names them (no retries: the check needs no lost update to happen). The tampered copy
    // is refused first.
    let (code, out, err) = ws.bench(&[
        "lab",
        "run",
        "--variant",
        "c",
        "--stress",
        "4:10",
        "--stall",
        "0:0",
        "--runs",
        "3",
        "--tamper",
        "--dir",
        &lab,
        "--json",
    ]);
    let runs = json(&out);
    assert_eq!(code, 1, "c must fail: {out}{err}");
    assert_eq!(runs["outcome"], "failed");
    assert_eq!(runs["failed"], 3, "c fails every run: {out}");
    for r in runs["runs"].as_array().unwrap() {
        let run = &r["run"];
        // Every field the run found broken is one the static audit names (no audit gap),
        // hw_bufs_used among them, written from bh and rx_work.
        let fields = r["fields"].as_array().unwrap();
        assert!(fields.iter().all(|f| f["audit"] == true), "{out}");
        assert!(
            fields
                .iter()
                .any(|f| f["field"] == "Bes2600.hw_bufs_used" && f["contexts"] == serde_json::json!(["bh", "rx_work"])),
            "{out}"
        );
        assert_eq!(run["tampered_refused"], true, "{out}");
        assert_eq!(run["cpus"], 2, "the VM runs on two CPUs: {out}");
        assert_eq!(run["srcversion"], srcversions["c"].as_str());
        assert!(run["result"]["contract_violations"].as_i64().unwrap() > 0, "{out}");
        assert!(
            run["warnings"].as_array().unwrap().iter().any(|w| {
                let w = w.as_str().unwrap();
                w.starts_with("bes2600: contract: Bes2600.hw_bufs_used: plain store from ")
                    && (w.contains("from rx_work") && w.ends_with("last written by bh")
                        || w.contains("from bh") && w.ends_with("last written by rx_work"))
            }),
            "{out}"
        );
    }

    // c-v2 under the same load, and with the stall injection on: clean every run.
    for stall in ["0:0", "4:200"] {
        let (code, out, err) = ws.bench(&[
            "lab",
            "run",
            "--variant",
            "c-v2",
            "--stall",
            stall,
            "--runs",
            "2",
            "--tamper",
            "--dir",
            &lab,
            "--json",
        ]);
        let runs = json(&out);
        assert_eq!(code, 0, "c-v2 must run clean: {out}{err}");
        assert_eq!(runs["failed"], 0, "{out}");
        for r in runs["runs"].as_array().unwrap() {
            let run = &r["run"];
            assert_eq!(r["outcome"], "clean", "{out}");
            assert_eq!(r["fields"], serde_json::json!([]), "{out}");
            assert_eq!(run["cpus"], 2, "{out}");
            assert_eq!(run["warnings"].as_array().unwrap().len(), 0);
            assert!(run["result"]["all"]["flushes"].as_i64().unwrap() > 0, "the flush ran: {out}");
            assert_eq!(run["result"]["all"]["cmd_timeouts"], 0, "{out}");
            assert_eq!(run["result"]["contract_violations"], 0, "{out}");
            assert_eq!(run["result"]["pending_count_errors"], 0, "{out}");
            assert!(run["result"]["rx_packets"].as_i64().unwrap() > 10_000, "{out}");
            assert_eq!(run["result"]["stalls"].as_i64().unwrap() > 0, stall != "0:0", "{out}");
        }
    }

    // The KCSAN kernel: KCSAN runs (it sets watchpoints) and finds nothing on c-v2's
    // accesses; c fails there too, and any KCSAN report on it names one of the fields the
    // audit finds written from two contexts, with a context on at least one side.
    let (code, out, err) =
        ws.bench(&["lab", "run", "--kcsan", "--variant", "c-v2", "--stall", "0:0", "--dir", &lab, "--json"]);
    let run = json(&out);
    assert_eq!(code, 0, "c-v2 must run clean under KCSAN: {out}{err}");
    assert_eq!(run["module"]["flavour"], "kcsan", "{out}");
    assert!(run["run"]["kcsan_counters"]["setup_watchpoints"].as_i64().unwrap() > 1000, "KCSAN watched: {out}");
    assert_eq!(run["run"]["kcsan"].as_array().unwrap().iter().filter(|r| r["field"].is_string()).count(), 0, "{out}");
    let (code, out, err) = ws.bench(&[
        "lab",
        "run",
        "--kcsan",
        "--variant",
        "c",
        "--stress",
        "4:20",
        "--stall",
        "0:0",
        "--dir",
        &lab,
        "--json",
    ]);
    let run = json(&out);
    assert_eq!(code, 1, "c must fail under KCSAN: {out}{err}");
    for r in run["run"]["kcsan"].as_array().unwrap().iter().filter(|r| r["field"].is_string()) {
        let field = r["field"].as_str().unwrap();
        assert!(
            ["Bes2600.hw_bufs_used", "Bes2600.hw_bufs_used_vif", "Bes2600.wsm_tx_pending"].contains(&field),
            "{field}: {out}"
        );
        assert!(r["accesses"].as_array().unwrap().iter().any(|a| a["context"].is_string()), "{out}");
    }

    // The lab as a bisect oracle: between b and c it names c.
    let oracle = format!("cmd:{} lab run --variant {{variant}} --runs 3 --dir {lab}", env!("CARGO_BIN_EXE_bench"));
    let (code, out, err) = ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", &oracle, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let log = json(&out);
    assert_eq!(log["found"], true, "{out}");
    assert!(log["conclusion"].as_str().unwrap().starts_with("first bad variant: c (parent b is good)"), "{out}");
    assert!(err.contains("lab runs of b: 3 boots") && err.contains("lab runs of c: 3 boots"), "{err}");

    // Stage b, then c-v2 (b goes to rollback), boot, roll back, boot.
    std::fs::write(
        ws.root.join("bench.toml"),
        format!("module = \"bes2600\"\n[targets.vm]\ntransport = \"lab\"\nroot = \"{lab}\"\n"),
    )
    .unwrap();
    for v in ["b", "c-v2"] {
        let (code, _, err) = ws.bench(&["stage", "--target", "vm", "--variant", v]);
        assert_eq!(code, 0, "stage {v}: {err}");
    }
    let boot = |expected: &str| {
        let (code, out, err) = ws.bench(&["lab", "boot", "--dir", &lab, "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(json(&out)["srcversion"], expected, "{out}");
    };
    boot(&srcversions["c-v2"]);
    let (code, _, err) = ws.bench(&["rollback", "--target", "vm"]);
    assert_eq!(code, 0, "{err}");
    boot(&srcversions["b"]);

    // The package instead of a module: the lab chroot's DKMS builds c-prep for the lab
    // kernel (signed with the lab key), its hook fills the same slots, and bench checks the
    // srcversion against the manifest's prediction. Boot, roll back, boot.
    let (code, out, err) = ws.bench(&["build", "--variant", "c-prep", "--json"]);
    assert_eq!(code, 0, "{err}");
    let tarball = json(&out)[0]["tarball"].as_str().unwrap().to_string();
    let (code, out, err) = ws.bench(&["stage", "--target", "vm", "--package", &tarball, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let staged = json(&out);
    assert_eq!(staged["active"]["arrived"], "dkms", "{out}");
    assert_eq!(staged["active"]["srcversion"], srcversions["c-prep"].as_str(), "{out}");
    assert_eq!(staged["previous"]["variant"], "b", "{out}");
    boot(&srcversions["c-prep"]);
    let (code, out, err) = ws.bench(&["target", "status", "vm"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("active") && l.contains("via dkms")), "{out}");
    let (code, _, err) = ws.bench(&["rollback", "--target", "vm"]);
    assert_eq!(code, 0, "{err}");
    boot(&srcversions["b"]);

    // Not set up: a clear error and 125 (could not test) from `lab run`.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = ws.bench(&["lab", "run", "--variant", "b", "--dir", &empty.path().display().to_string()]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("is not set up") && err.contains("bench lab setup"), "{err}");
}

/// The kernel's own checkpatch.pl (in the lab's kernel source) reports no error on any
/// patch of either version of the series.
#[test]
fn checkpatch_finds_no_error_in_the_series() {
    let Some(dir) = lab_dir() else { return };
    let checkpatch = dir.join("chroot/build/linux/scripts/checkpatch.pl");
    assert!(checkpatch.is_file(), "{} is part of the lab's kernel source", checkpatch.display());
    let ws = Ws::new();
    let v1 = ws.home.path().join("v1");
    assert_eq!(ws.bench(&["patches", "--variant", "c", "--out", v1.to_str().unwrap()]).0, 0);
    let mut checked = 0;
    for d in [ws.root.join("patches"), v1] {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".patch") || name.contains("cover-letter") {
                continue;
            }
            let out = std::process::Command::new("perl")
                .arg(&checkpatch)
                .args(["--no-tree", "--terse", "--show-types"])
                .arg(&p)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains(": ERROR:"), "{name}: {text}");
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "v2 has 3 patches, v1 has 2");
}
