//! `bench stress` as a user runs it: the real binary, a temporary HOME, fixed seeds, the
//! repository as the workspace; what it prints is snapshotted.

mod common;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bench(args: &[&str]) -> Run {
    let (code, stdout, stderr) = common::bench_in_repo(args);
    Run { code, stdout, stderr }
}

#[test]
fn patch_c_fails_the_default_ramp_with_the_underflow_warn() {
    let r = bench(&["stress", "--variant", "c", "--seed", "1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    insta::assert_snapshot!("stress_c_seed1", r.stdout);
    insta::assert_snapshot!("stress_c_seed1_stderr", r.stderr);
}

#[test]
fn c_v2_runs_a_stage_clean() {
    let r = bench(&["stress", "--variant", "c-v2", "--seed", "1", "--ramp", "4:2m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("stress_c_v2_4mb_2m", r.stdout);
}

fn json(args: &[&str]) -> serde_json::Value {
    let r = bench(args);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    serde_json::from_str(&r.stdout).expect("stdout is JSON")
}

#[test]
fn json_is_byte_identical_for_the_same_seed() {
    let args = ["stress", "--variant", "c", "--seed", "4", "--ramp", "2:3m", "--json"];
    let a = bench(&args);
    let b = bench(&args);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_str(&a.stdout).unwrap();
    assert_eq!(v["seed"], "4");
    assert_eq!(v["variant"], "c");
}

#[test]
fn c_prep_has_the_same_traffic_figures_as_b() {
    let args = |v: &'static str| ["stress", "--variant", v, "--seed", "2", "--ramp", "1:1m,4:2m", "--json"];
    let b = json(&args("b"));
    let c_prep = json(&args("c-prep"));
    assert_eq!(b["stages"], c_prep["stages"], "C-prep must change nothing functional");
    assert_ne!(b["features"], c_prep["features"]);
}

#[test]
fn reps_repeat_the_ramp() {
    let v = json(&["stress", "--variant", "b", "--ramp", "1:30s", "--reps", "3", "--json"]);
    assert_eq!(v["stages"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["stress", "--variant", "c-v3"], "bad_variant"),
        (&["stress", "--variant", "b", "--ramp", "0:5m"], "bad_rate"),
        (&["stress", "--variant", "b", "--ramp", "4:0m"], "bad_duration"),
        (&["stress", "--variant", "b", "--ramp", "4:5m;8:5m"], "bad_ramp"),
        (&["stress", "--variant", "b", "--seed", "one"], "bad_seed"),
        (&["stress", "--variant", "b", "--reps", "0"], "bad_reps"),
        (&["stress", "--variant", "b", "--probes", "--ramp", "4:1m"], "probes_with_a_ramp"),
        (&["stress", "--variant", "b", "--probes", "--reps", "2"], "probes_with_reps"),
        (&["stress", "--variant", "b", "--probes", "--seeds", "1..3"], "probes_with_seeds"),
    ];
    for (args, name) in cases {
        let r = bench(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} printed a result");
        // The list of known variants is the workspace's (it grows with new patches): the
        // seed's are checked in it, the snapshot keeps the rest of the text.
        let stderr = match r.stderr.split_once("Known variants: ") {
            Some((head, list)) => {
                for v in ["b", "baseline", "c", "c-prep", "c-v2", "c-v2-posted"] {
                    assert!(list.trim().split(", ").any(|x| x == v), "{v} missing from {list}");
                }
                format!("{head}Known variants: (the workspace's)\n")
            }
            None => r.stderr.clone(),
        };
        insta::assert_snapshot!(*name, stderr);
    }
}

#[test]
fn a_swarm_gives_the_failure_probability_the_same_on_any_number_of_jobs() {
    // C v2 as posted fails on every seed (the pending count), with its replay command.
    let one =
        bench(&["stress", "--variant", "c-v2-posted", "--seeds", "1..4", "--ramp", "4:1m", "--jobs", "1", "--json"]);
    let two =
        bench(&["stress", "--variant", "c-v2-posted", "--seeds", "1..4", "--ramp", "4:1m", "--jobs", "2", "--json"]);
    assert_eq!(one.code, 1, "{}", one.stderr);
    assert_eq!(one.stdout, two.stdout, "the summary does not depend on the jobs");
    let v: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["runs"], 4);
    assert_eq!(v["failed"], 4);
    assert_eq!(v["first_failing_seed"], 1);
    assert_eq!(v["replay"], "bench stress --variant c-v2-posted --seed 1 --ramp 4:1m --reps 1");
    let ci = v["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() > 0.4 && ci[1].as_f64().unwrap() == 1.0, "{ci:?}");
    assert!(v["per_seed"][0]["first_failure"].as_str().unwrap().starts_with("contract: Bes2600.wsm_tx_pending"));
    // The fix: clean on every seed, and the interval says how sure that is.
    let r = bench(&["stress", "--variant", "c-v2", "--seeds", "1..4", "--ramp", "4:1m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("failed 0 of 4 seeds: failure probability 0.0% (95% Wilson interval 0.0%-49.0%)"),
        "{}",
        r.stdout
    );
    let bad = bench(&["stress", "--variant", "c-v2", "--seeds", "9..3"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("the last seed is below the first"), "{}", bad.stderr);
}

#[test]
fn faults_are_named_and_switchable() {
    // slow-air bunches confirms: TX throttles and restarts far more often; b survives it.
    let r = bench(&["stress", "--variant", "b", "--seed", "2", "--ramp", "8:1m", "--faults", "slow-air", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["faults"][0]["name"], "slow-air");
    assert!(v["faults"][0]["fired"].as_i64().unwrap() > 0, "{}", r.stdout);
    let off = bench(&["stress", "--variant", "b", "--seed", "2", "--ramp", "8:1m", "--json"]);
    let w: serde_json::Value = serde_json::from_str(&off.stdout).unwrap();
    assert_eq!(w["faults"].as_array().unwrap().len(), 0, "off unless asked for");
    // The fix under the fault, on a swarm: its BH is woken only for TX, so a lost wake-up
    // would stall it (the simulator's own wait once dropped one).
    // (With the old wait, this swarm failed 3 of 6 seeds with a 5 s TX wedge.)
    let swarm =
        bench(&["stress", "--variant", "c-v2", "--seeds", "1..6", "--ramp", "4:3m,8:3m", "--faults", "slow-air"]);
    assert_eq!(swarm.code, 0, "{}{}", swarm.stdout, swarm.stderr);
    assert!(swarm.stdout.contains("failed 0 of 6 seeds"), "{}", swarm.stdout);
    // A failing seed's replay command keeps the faults it ran with.
    let posted = bench(&[
        "stress",
        "--variant",
        "c-v2-posted",
        "--seeds",
        "1..1",
        "--ramp",
        "4:1m",
        "--faults",
        "slow-air",
        "--json",
    ]);
    assert_eq!(posted.code, 1, "{}", posted.stderr);
    let p: serde_json::Value = serde_json::from_str(&posted.stdout).unwrap();
    assert_eq!(p["replay"], "bench stress --variant c-v2-posted --seed 1 --ramp 4:1m --reps 1 --faults slow-air");
    let bad = bench(&["stress", "--variant", "b", "--faults", "cosmic-rays"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("slow-air") && bad.stderr.contains("stall"), "names the known faults: {}", bad.stderr);
}

#[test]
fn scheduling_stalls_keep_the_sound_variants_clean_and_c_failing() {
    for v in ["b", "c-prep", "c-v2"] {
        let r = bench(&[
            "stress",
            "--variant",
            v,
            "--seeds",
            "1..4",
            "--ramp",
            "1:30s,4:1m,8:1m",
            "--faults",
            "stall,slow-air",
        ]);
        assert_eq!(r.code, 0, "{v}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("failed 0 of 4 seeds"), "{v}: {}", r.stdout);
    }
    let one = bench(&["stress", "--variant", "c-v2", "--seed", "3", "--ramp", "4:30s", "--faults", "stall", "--json"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let v: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["faults"][0]["name"], "stall");
    assert!(v["faults"][0]["fired"].as_i64().unwrap() > 100, "{}", one.stdout);
    // Same seed, same bytes, with the fault on.
    let again =
        bench(&["stress", "--variant", "c-v2", "--seed", "3", "--ramp", "4:30s", "--faults", "stall", "--json"]);
    assert_eq!(again.stdout, one.stdout);
    let c = bench(&["stress", "--variant", "c", "--seeds", "1..4", "--ramp", "4:30s", "--faults", "stall"]);
    assert_eq!(c.code, 1);
    assert!(c.stdout.contains("failed 4 of 4 seeds"), "{}", c.stdout);
}

#[test]
fn against_the_parent_every_figure_has_its_spread_and_predictions_are_checked() {
    let r = bench(&["stress", "--variant", "c-v2", "--against", "c-prep", "--seeds", "1..2", "--ramp", "4:20s"]);
    assert!(r.stdout.contains("prediction rx_queue_lock_per_s: 1914 -> 0: met"), "{}", r.stdout);
    // With the lock cost calibrated on the seed's 20% for b, c-v2's share falls further
    // than the author's 12-15%: a missed prediction is exit 1, with the figure.
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("prediction spinlock_cpu_pct: 20% -> 12-15%: MISSED (got 10."), "{}", r.stdout);
    assert!(r.stderr.contains("1 prediction(s) of c-v2 missed"), "{}", r.stderr);
    let v =
        json(&["stress", "--variant", "c-v2", "--against", "c-prep", "--seeds", "1..2", "--ramp", "4:20s", "--json"]);
    assert_eq!(
        v["predictions"][1]["check"]["missed"]["got"].as_f64().map(|g| (10.0..12.0).contains(&g)),
        Some(true),
        "{}",
        v["predictions"]
    );
    let rows = v["rows"].as_array().unwrap();
    let lock = rows.iter().find(|r| r["figure"] == "rx_queue_lock_per_s").unwrap();
    assert!(lock["against"]["mean"].as_f64().unwrap() > 1000.0, "the parent locks rx_queue: {lock}");
    assert_eq!(lock["variant"]["mean"], 0.0, "Patch C leaves it unused");
    let rx = rows.iter().find(|r| r["figure"] == "rx_work_per_s").unwrap();
    assert!(rx["against"]["min"].as_f64() <= rx["against"]["max"].as_f64());
    assert_eq!(v["predictions"][0]["check"]["met"]["got"], 0.0, "{}", v["predictions"]);
    // Patch C's direct RX leaves the BH free for TX: frames wait less in the driver (a
    // median within 25% at 4 MB/s, the histogram's resolution, is no change).
    let wait = rows.iter().find(|r| r["figure"] == "tx_wait_p50_ms").unwrap();
    let (parent, patched) = (wait["against"]["mean"].as_f64().unwrap(), wait["variant"]["mean"].as_f64().unwrap());
    assert!(parent > 0.0 && patched < parent * 0.8, "tx wait p50: c-prep {parent} ms, c-v2 {patched} ms");
}

#[test]
fn patch_c_on_the_seeds_run_shape_warns_within_30_s_then_wedges_on_at_least_90_of_100_seeds() {
    // The seed's board: the underflow WARN from sdio_rx_work at T+13s of a 4 MB/s run,
    // then the chip wedged and the host fell off the network. The issue asks for 9 of 10
    // seeds; 100 seeds measure the same rate with a tenth of the noise.
    let v = json(&["stress", "--variant", "c", "--seeds", "1..100", "--ramp", "4:404.8s", "--json"]);
    let runs = v["per_seed"].as_array().unwrap();
    assert_eq!(runs.len(), 100);
    let mut shaped = Vec::new();
    for run in runs {
        let Some(warn) = run["first_warn"].as_object() else { continue };
        let warn_s = warn["time_s"].as_f64().unwrap();
        let wedge_s = run["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "tx_wedge")
            .map(|f| f["time_s"].as_f64().unwrap());
        let underflow = warn["message"].as_str().unwrap().contains("hw_bufs_used -1 < 0");
        if underflow && (0.0..30.0).contains(&warn_s) && wedge_s.is_some_and(|w| w > warn_s) {
            shaped.push(run["seed"].as_u64().unwrap());
        }
    }
    assert!(shaped.len() >= 90, "WARN within 30 s then a TX wedge on {} of 100 seeds: {shaped:?}", shaped.len());
    // And the issue's own count, on its seeds 1..10.
    let first_ten = shaped.iter().filter(|&&s| s <= 10).count();
    assert!(first_ten >= 9, "WARN within 30 s then a TX wedge on {first_ten} of seeds 1..10: {shaped:?}");
    // The wedge says what holds TX: the flush waits for a count that cannot reach 0.
    let r = bench(&["stress", "--variant", "c", "--seed", "5", "--ramp", "4:404.8s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("tx_wedge: ") && r.stdout.contains("(tx_lock 1, hw_bufs_used -"), "{}", r.stdout);
    assert!(r.stdout.contains("Workqueue: bes_sdio sdio_rx_work [bes2600]"), "{}", r.stdout);
    assert!(r.stdout.contains("wsm_release_tx_buffer failed: -1"), "{}", r.stdout);
}

#[test]
fn probes_judge_every_error_path_and_fail_a_racy_variant() {
    let r = bench(&["stress", "--variant", "c-v2", "--probes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("stress_c_v2_probes", r.stdout);
    // Variant c's counters are written from two contexts: the contract reports fail each
    // probe run, with exit 1 and the names.
    let r = bench(&["stress", "--variant", "c", "--probes", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("stdout is JSON");
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(7), "{v}");
    assert!(r.stderr.contains("failed 7 of 7 error-path probes"), "{}", r.stderr);
    // A probe runs its own stage: a swarm or faults with it is refused.
    let r = bench(&["stress", "--variant", "c-v2", "--probes", "--seeds", "1..3"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
