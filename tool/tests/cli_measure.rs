//! `bench measure` as a user runs it: the real binary, valgrind's callgrind, the
//! repository as the workspace.

mod common;

use common::bench_in_repo as bench;

fn per_packet(v: &serde_json::Value, i: usize, what: &str) -> f64 {
    v["variants"][i]["per_rx_packet"][what].as_f64().unwrap()
}

#[test]
fn c_v2_against_b_counts_the_driver_s_instructions_beside_the_model_and_the_count_repeats() {
    let args = ["measure", "--variant", "c-v2", "--against", "b", "--ramp", "4:5s", "--json"];
    let (code, out, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["variants"][0]["variant"], "b");
    assert_eq!(v["variants"][1]["variant"], "c-v2");
    for i in 0..2 {
        // About 5,000 RX packets at 4 MB/s for 5 s; hundreds of driver instructions each.
        assert!(v["variants"][i]["rx_packets"].as_u64().unwrap() > 4000, "{out}");
        let instr = per_packet(&v, i, "driver_instructions");
        assert!((100.0..5000.0).contains(&instr), "{out}");
        assert!(per_packet(&v, i, "modelled_cpu_ns") > 0.0, "{out}");
        let by_file = v["variants"][i]["by_file"].as_object().unwrap();
        assert!(by_file.contains_key("bh.rs") && by_file.contains_key("wsm.rs"), "{out}");
        // The simulator's own files are never the driver's cost.
        assert!(by_file.keys().all(|f| !f.contains("sim") && f != "chip.rs"), "{out}");
    }
    // C v2 leaves rx_queue out of the RX path: fewer instructions per packet, not none.
    let r = &v["ratio"];
    let measured = r["measured"].as_f64().unwrap();
    let modelled = r["modelled"].as_f64().unwrap();
    assert!((0.5..1.0).contains(&measured), "{r}");
    assert!((0.3..1.0).contains(&modelled), "{r}");
    assert_eq!(r["disagree"].as_bool().unwrap(), (measured - modelled).abs() > 0.1 * measured.max(modelled), "{r}");
    // Instructions counted on the same seed are the same count again.
    let (code, again, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    let w: serde_json::Value = serde_json::from_str(&again).expect("JSON");
    for i in 0..2 {
        assert_eq!(v["variants"][i]["driver_instructions"], w["variants"][i]["driver_instructions"]);
    }
}

#[test]
fn the_table_names_what_is_counted_and_says_when_model_and_code_disagree() {
    let (code, out, err) = bench(&["measure", "--variant", "c-v2", "--against", "b", "--ramp", "4:5s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("instructions on the driver's source lines (callgrind)"), "{out}");
    assert!(out.contains("c-v2 against b: measured 0."), "{out}");
    assert!(out.contains("DISAGREE") || out.contains("agree within 10%"), "{out}");
    assert!(out.contains("callgrind_annotate reads it"), "{out}");
}

#[test]
fn bad_input_is_named() {
    let (code, _, err) = bench(&["measure", "--variant", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope"), "{err}");
    let (code, _, err) = bench(&["measure", "--variant", "c-v2", "--ramp", "4:5x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("4:5x"), "{err}");
    let (code, _, err) = bench(&["measure", "--variant", "baseline"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no parent") && err.contains("--against"), "{err}");
}

#[test]
fn the_pr_shows_the_measured_and_the_modelled_cost_side_by_side_and_names_the_run() {
    let home = tempfile::tempdir().expect("temp HOME");
    let run = |args: &[&str]| {
        let out = common::bench_command(&common::repo(), home.path())
            .env("BENCH_STATE_DIR", home.path().join("state"))
            .args(args)
            .output()
            .expect("bench runs");
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, _, err) = run(&["measure", "--variant", "c-v2", "--ramp", "4:5s"]);
    assert_eq!(code, 0, "{err}");
    // Against the parent by default; the id is what the PR takes.
    let id = err.split("recorded as measure run #").nth(1).and_then(|t| t.split(' ').next()).expect(&err).to_string();
    let (code, pr, err) = run(&["pr", "--variant", "c-v2", "--measure", &id]);
    assert_eq!(code, 0, "{err}");
    let saves = pr.split("## What this saves per RX frame").nth(1).expect(&pr);
    let saves = saves.split("\n## ").next().unwrap();
    assert!(saves.contains(&format!("Cost per RX packet against `c-prep` (run #{id}: bench measure")), "{saves}");
    assert!(saves.contains("| c-prep | ") && saves.contains("| c-v2 | "), "{saves}");
    assert!(saves.contains("Ratio to `c-prep`: modelled **0.") && saves.contains("measured **0."), "{saves}");
    assert!(saves.contains("They disagree"), "{saves}");
    assert!(
        pr.trim_end().ends_with(&format!("measure run #{id}: bench measure, callgrind, ramp 4:5s, seed 1.")),
        "{pr}"
    );
    // A measure run is not a stress run, and the other way round.
    let (code, _, err) = run(&["pr", "--variant", "c-v2", "--stress", &id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("pass it as --measure {id}")), "{err}");
    let (code, _, err) = run(&["pr", "--variant", "c-prep", "--measure", &id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is of `c-v2`, not `c-prep`"), "{err}");
}
