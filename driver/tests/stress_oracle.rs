//! The stress oracle as one test: a swarm of the default ramp (seeds 1..=N on all cores,
//! faults on) must run clean: no WARN, wedge, dead link, BUG, firmware breach or run-time
//! contract report; then each error path's probe (one firmware failure the driver cannot
//! survive, `sim::probe`) must find the driver's answer as its error path promises. It judges as `bench stress --seeds` and the bisect's stress oracle do,
//! and it is what `scripts/mutation-score` measures: a mutant of the data path this test
//! does not fail is a regression the stress oracle would miss.
//!
//! Ignored in the normal run (the feature matrix runs the ramp already, seed by seed).
//! Run it for a clean feature set, e.g. variant c-v2's:
//! `cargo test --release -p bes2600 --features sim,patch-b,c-prep-atomic,c-prep-pending,c-direct-rx --test stress_oracle -- --ignored`
//! `BES2600_ORACLE_SEEDS=N` (default 6) and `BES2600_ORACLE_FAULTS=a,b` (default every
//! fault; `none` for none) change the swarm.
#![cfg(feature = "sim")]

use bes2600::chip::FW_FAILURES;
use bes2600::sim::{default_ramp, probe_stages, run, Config, CostModel, FAULTS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[test]
#[ignore = "the stress oracle, about 2 s per seed and core: run by scripts/mutation-score"]
fn a_swarm_of_the_default_ramp_runs_clean() {
    let seeds: u64 = std::env::var("BES2600_ORACLE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let faults: Vec<String> = match std::env::var("BES2600_ORACLE_FAULTS") {
        Ok(s) if s == "none" => Vec::new(),
        Ok(s) => s.split(',').map(String::from).collect(),
        Err(_) => FAULTS.iter().map(|f| f.0.to_string()).collect(),
    };
    let mut cost = CostModel::default();
    for f in &faults {
        cost.enable_fault(f).unwrap_or_else(|e| panic!("BES2600_ORACLE_FAULTS: {e}"));
    }
    let next = AtomicU64::new(1);
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                // The first failing seed ends the swarm: a killed mutant costs one ramp.
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed > seeds {
                        break;
                    }
                    let r = run(&Config { seed, stages: default_ramp(), cost: cost.clone(), probe: None }, |_, _| {});
                    if !r.clean() || r.contract_count > 0 {
                        let first = r
                            .contracts
                            .first()
                            .map(|c| format!("contract: {} in {}", c.field, c.context))
                            .or_else(|| r.warns.first().map(|w| format!("WARN in {}: {:?}", w.context, w.warning)))
                            .or_else(|| r.failures.first().map(|f| format!("{:?}: {}", f.1, f.2)))
                            .unwrap_or_default();
                        failures.lock().unwrap().push(format!("seed {seed}: {first}"));
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    // The error paths' probes: each firmware failure once, its answer judged.
    if failures.is_empty() {
        for &(f, name, _) in FW_FAILURES {
            let r = run(
                &Config { seed: 1, stages: probe_stages(f), cost: CostModel::default(), probe: Some(f) },
                |_, _| {},
            );
            if !r.clean() {
                let why = r.probe.as_ref().map_or(String::new(), |p| p.detail.clone());
                let first = r.contracts.first().map(|c| format!("; contract: {} in {}", c.field, c.context));
                failures.push(format!("probe {name}: {why}{}", first.unwrap_or_default()));
            }
        }
    }
    assert!(failures.is_empty(), "faults {faults:?}: {}", failures.join("; "));
}
