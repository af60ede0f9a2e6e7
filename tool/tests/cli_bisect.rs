//! `bench bisect` across variants, features and commits, as a user runs it.

mod common;
use common::Ws;

fn log_of(ws: &Ws) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(ws.root.join(".bench/bisect/last.json")).unwrap()).unwrap()
}

#[test]
fn across_variants_names_c_and_finds_nothing_bad_up_to_c_v2() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", "stress"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("first bad variant: c (parent b is good)"), "{out}");
    let (code, out, err) = ws.bench(&["bisect", "--good", "b", "--bad", "c-v2", "--oracle", "stress"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("nothing along the chain b -> c-prep -> c-v2 is bad"), "{out}");
}

/// A command oracle's own output goes to stderr: bisect's stdout stays its conclusion, and
/// with --json a document a script can parse, whatever the command prints.
#[test]
fn a_command_oracles_output_never_mixes_into_bisects_stdout() {
    let ws = Ws::new();
    let oracle = "cmd:echo oracle-says-{variant}; echo to-stderr >&2; test {variant} != c";
    let (code, out, err) = ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", oracle, "--json"]);
    assert_eq!(code, 0, "{err}");
    let log: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(log["conclusion"].as_str().unwrap().starts_with("first bad variant: c"), "{out}");
    assert!(err.contains("oracle-says-b") && err.contains("oracle-says-c") && err.contains("to-stderr"), "{err}");
    let (code, out, _) = ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", oracle]);
    assert_eq!(code, 0);
    assert!(out.starts_with("first bad variant: c (parent b is good)"), "{out}");
}

/// The cache key covers the simulator: after a change to the simulator alone nothing is
/// answered from the cache; the simulator built for a tree is kept and reused when only
/// the oracle's parameters change.
#[test]
fn a_simulator_only_change_is_never_answered_from_the_cache() {
    let ws = Ws::new();
    let args = ["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:ramp=4:20s"];
    let (code, _, err) = ws.bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("(cached)"), "{err}");
    let (code, _, err) = ws.bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(cached)"), "the same inputs are cached: {err}");
    let sims = || std::fs::read_dir(ws.root.join("target/bench-bisect/sims")).map_or(0, |d| d.count());
    let kept = sims();
    assert!(kept >= 2, "a simulator kept per tree: {kept}");
    // Another seed: not cached, but no simulator is built again.
    let (code, _, err) = ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:ramp=4:20s;seed=2"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("(cached)"), "{err}");
    assert_eq!(sims(), kept, "the kept simulators were reused");
    // A swarm: its verdict is the first failing seed in order (c fails on every seed, so
    // seed 1; the seeds after it are not run).
    let (code, out, err) =
        ws.bench(&["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:ramp=4:20s;seeds=1..8"]);
    assert_eq!(code, 0, "{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("seed 1: ") && text.contains("(the first of seeds 1..8 to fail)"), "{text}");
    assert!(text.contains("seeds 1..8: clean"), "b runs every seed clean: {text}");
    // A comment in the simulator's own sources: the same driver srcversion, new answers.
    let cfg = ws.root.join("driver/src/sim/config.rs");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}// a simulator-only change\n")).unwrap();
    let (code, _, err) = ws.bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("(cached)"), "a simulator change must not reuse verdicts: {err}");
}

#[test]
fn across_features_reports_direct_rx_without_atomics() {
    let ws = Ws::new();
    let (code, out, err) =
        ws.bench(&["bisect", "--across", "features", "--good", "b", "--bad", "c", "--oracle", "audit"]);
    assert_eq!(code, 0, "{err}");
    // Patch C races on two counters: both preparations are needed.
    assert!(out.contains("c-direct-rx without c-prep-atomic, c-prep-pending"), "{out}");
    // The same inputs give the same log; replay runs every step again.
    let first = log_of(&ws);
    let (code, _, _) = ws.bench(&["bisect", "--across", "features", "--good", "b", "--bad", "c", "--oracle", "audit"]);
    assert_eq!(code, 0);
    assert_eq!(log_of(&ws), first);
    let (code, out, err) = ws.bench(&["bisect", "replay", ".bench/bisect/last.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("replayed ") && out.contains(" steps: identical."), "{out}");
    assert!(!err.contains("(cached)"), "replay runs the oracle again: {err}");
    // C v2 as the seed posted it: the direct delivery without the pending-count atomics.
    let (code, out, err) =
        ws.bench(&["bisect", "--across", "features", "--good", "b", "--bad", "c-v2-posted", "--oracle", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("minimal failing change: c-direct-rx without c-prep-pending "), "{out}");
}

#[test]
fn bad_input_is_named() {
    let ws = Ws::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["bisect", "--good", "c", "--bad", "b", "--oracle", "audit"], 2, "good and bad look swapped"),
        (&["bisect", "--good", "c-prep", "--bad", "c", "--oracle", "audit"], 2, "does not descend from"),
        (&["bisect", "--good", "b", "--bad", "c-v9", "--oracle", "audit"], 2, "unknown variant `c-v9`"),
        (&["bisect", "--good", "b", "--bad", "c", "--oracle", "cmd:no-such-tool-xyz {variant}"], 2, "cannot start"),
        (&["bisect", "--good", "b", "--bad", "c", "--oracle", "strss"], 2, "unknown oracle"),
        (
            &[
                "bisect",
                "--across",
                "commits",
                "--variant",
                "c-v2",
                "--good",
                "nope",
                "--bad",
                "HEAD",
                "--oracle",
                "audit",
            ],
            2,
            "unknown commit `nope`",
        ),
    ];
    for (args, code, needle) in cases {
        let (c, _, err) = ws.bench(args);
        assert_eq!(c, *code, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: wanted `{needle}` in {err}");
    }
}

/// A history of n commits with a regression (a marker line) injected at commit k.
fn history(ws: &Ws, n: usize, k: usize, unbuildable: &[usize]) -> Vec<String> {
    let bh = ws.root.join("driver/src/bh.rs");
    history_with(ws, n, k, unbuildable, || {
        let mut t = std::fs::read_to_string(&bh).unwrap();
        t.push_str("// INJECTED regression\n");
        std::fs::write(&bh, t).unwrap();
    })
}

/// `n` commits, each touching `ring.rs`; commit `k` also makes the edit `inject`; the
/// commits in `unbuildable` leave `wsm.rs` unparsable. The commit ids, oldest first.
fn history_with(ws: &Ws, n: usize, k: usize, unbuildable: &[usize], inject: impl Fn()) -> Vec<String> {
    let ring = ws.root.join("driver/src/ring.rs");
    let wsm = ws.root.join("driver/src/wsm.rs");
    let wsm_ok = std::fs::read_to_string(&wsm).unwrap();
    let mut ids = Vec::new();
    for i in 1..=n {
        let mut t = std::fs::read_to_string(&ring).unwrap();
        t.push_str(&format!("// step {i}\n"));
        std::fs::write(&ring, t).unwrap();
        if i == k {
            inject();
        }
        let broken = unbuildable.contains(&i);
        std::fs::write(&wsm, if broken { format!("{wsm_ok}\nfn broken( {{\n") } else { wsm_ok.clone() }).unwrap();
        ws.commit(&format!("step {i}"));
        let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&ws.root).output().unwrap();
        ids.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    ids
}

const ORACLE: &str = "cmd:! grep -q INJECTED {tree}/bh.rs";

/// `bench bisect --across commits` over the last `n` commits with the marker oracle.
fn bisect_commits(ws: &Ws, n: usize) -> (i32, String, String) {
    let good = format!("HEAD~{n}");
    ws.bench(&[
        "bisect",
        "--across",
        "commits",
        "--variant",
        "c-v2",
        "--good",
        &good,
        "--bad",
        "HEAD",
        "--oracle",
        ORACLE,
    ])
}

#[test]
fn across_commits_finds_k_within_log2_runs() {
    let ws = Ws::new();
    let n = 20;
    let k = 13;
    let ids = history(&ws, n, k, &[]);
    let (code, out, err) = bisect_commits(&ws, 20);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("first bad commit: {} step {k} ({k} of {n})", &ids[k - 1][..10])), "{out}");
    let steps = log_of(&ws)["steps"].as_array().unwrap().len();
    let bound = (n as f64).log2().ceil() as usize + 1;
    assert!(steps <= bound, "{steps} oracle runs > {bound}");
}

#[test]
fn across_commits_skips_unbuildable_commits() {
    let ws = Ws::new();
    let n = 16;
    let ids = history(&ws, n, 9, &[8, 9]);
    let (code, out, err) = bisect_commits(&ws, 16);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("cannot split: the first bad commit is one of"), "{out}");
    assert!(out.contains(&ids[8][..10]) && out.contains(&ids[9][..10]), "{out}");
    let ws2 = Ws::new();
    let ids2 = history(&ws2, n, 9, &[5, 12]);
    let (code, out, err) = bisect_commits(&ws2, 16);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("first bad commit: {}", &ids2[8][..10])), "{out}");
}

/// The stress oracle with the error paths' probes finds the commit that broke an error path
/// no swarm reaches (a stale control byte re-read without bound), and names the probe.
#[test]
fn across_commits_the_probes_find_an_error_path_regression() {
    let ws = Ws::new();
    let sdio = ws.root.join("driver/src/sdio.rs");
    let ids = history_with(&ws, 6, 4, &[], || {
        let t = std::fs::read_to_string(&sdio).unwrap();
        assert!(t.contains("stale_retries += 1;"));
        std::fs::write(&sdio, t.replacen("stale_retries += 1;", "stale_retries += 0;", 1)).unwrap();
    });
    let args = [
        "bisect",
        "--across",
        "commits",
        "--variant",
        "c-v2",
        "--good",
        "HEAD~6",
        "--bad",
        "HEAD",
        "--oracle",
        "stress:ramp=4:10s;probes=all",
    ];
    let (code, out, err) = ws.bench(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with(&format!("first bad commit: {} step 4 (4 of 6)", &ids[3][..10])), "{out}");
    assert!(
        err.contains("probe stuck-ctrl")
            || out.contains("probe stuck-ctrl")
            || log_of(&ws).to_string().contains("probe stuck-ctrl"),
        "the verdict names the probe:\n{out}\n{err}"
    );
}
