//! The simulated stress ramp for the features this test binary was built with. The README's
//! test command runs it once per feature combination. A build is racy on `hw_bufs_used`
//! when it has `c-direct-rx` without `c-prep-atomic` (Patch C as it went to the board), and
//! racy on `wsm_tx_pending` when it has `c-direct-rx` without `c-prep-pending` (C v2 as the
//! seed posted it).
#![cfg(feature = "sim")]

use bes2600::sim::{default_ramp, run, Config, CostModel, FailureKind, Report, Stage};

const RACY: bool = cfg!(all(feature = "c-direct-rx", not(feature = "c-prep-atomic")));
/// Variant `c` as it went to the board: Patch B plus the direct RX delivery, no atomics.
const SEED_C: bool = cfg!(all(
    feature = "patch-b",
    feature = "c-direct-rx",
    not(feature = "c-prep-atomic"),
    not(feature = "c-prep-pending")
));
const RACY_PENDING: bool = cfg!(all(feature = "c-direct-rx", not(feature = "c-prep-pending")));

fn ramp(seed: u64) -> Report {
    run(&Config { seed, stages: default_ramp(), cost: CostModel::default(), probe: None }, |_, _| {})
}

fn one_stage(seed: u64, offered_mb_per_s: f64, duration_s: u64) -> Config {
    Config {
        seed,
        stages: vec![Stage { offered_mb_per_s, duration_ms: duration_s * 1000 }],
        cost: CostModel::default(),
        probe: None,
    }
}

#[test]
fn default_ramp_for_seeds_1_to_10() {
    // End of the 4 MB/s stage, in seconds after the warm-up: 5 + 10 + 30 minutes.
    let end_of_4mb_stage_s = (5 + 10 + 30) as f64 * 60.0;
    let mut flush_timeouts_of_c = 0;
    for seed in 1..=10 {
        let r = ramp(seed);
        if RACY {
            assert!(!r.clean(), "seed {seed}: a racy build ran clean");
            // The run-time contract check sees the race first, in every racy build.
            let c = r.contracts.first().unwrap_or_else(|| panic!("seed {seed}: no run-time contract report"));
            assert_eq!((c.field, c.context), ("Bes2600.hw_bufs_used", "rx_work"), "seed {seed}: {c:?}");
            // A lost update goes either way. Below zero: the seed's underflow WARN. Above:
            // the counter never returns to zero, and the next mac80211 flush waits for it
            // in vain and force-closes, naming the value (variant `c` shows the WARN on most
            // seeds and this on the others; other racy combinations may also just lose the
            // link).
            let Some(first) = r.first_underflow() else {
                if SEED_C {
                    let f = r.failures.iter().find(|f| f.1 == FailureKind::FlushTimeout);
                    let f = f.unwrap_or_else(|| {
                        panic!("seed {seed}: variant c without the underflow WARN or a flush timeout: {:?}", r.failures)
                    });
                    assert!(f.2.contains("hw_bufs_used=") && !f.2.contains("hw_bufs_used=0 "), "seed {seed}: {f:?}");
                    flush_timeouts_of_c += 1;
                }
                continue;
            };
            assert!(first.time_s <= end_of_4mb_stage_s, "seed {seed}: first underflow at {} s", first.time_s);
            // The counter goes negative in whichever writer releases last: the direct RX
            // helper, or the BH giving back a buffer it found no frame for.
            assert_eq!(first.call_path.last(), Some(&"wsm_release_tx_buffer"), "seed {seed}");
            match first.context {
                "rx_work" => {
                    assert_eq!(first.call_path.first(), Some(&"sdio_rx_work"), "seed {seed}");
                    assert!(
                        first.call_path.contains(&"bes2600_bh_handle_rx_skb"),
                        "seed {seed}: {:?}",
                        first.call_path
                    );
                }
                "bh" => assert_eq!(first.call_path.first(), Some(&"bes2600_bh"), "seed {seed}"),
                other => panic!("seed {seed}: underflow in {other}"),
            }
            assert!(r.failures.iter().any(|f| f.0 >= first.time_s), "seed {seed}: no failure after the WARN");
            assert!(c.time_s < first.time_s, "seed {seed}: the contract report comes before the underflow");
            assert!(!r.clean());
        } else if RACY_PENDING {
            // hw_bufs_used is atomic; the pending count is not: the C driver's own messages.
            assert!(r.first_underflow().is_none(), "seed {seed}: an underflow with c-prep-atomic");
            let c = r.contracts.first().unwrap_or_else(|| panic!("seed {seed}: no run-time contract report"));
            assert_eq!(c.field, "Bes2600.wsm_tx_pending", "seed {seed}: {c:?}");
            let f = r
                .failures
                .iter()
                .find(|f| matches!(f.1, FailureKind::PendingCount | FailureKind::LinkBreak))
                .unwrap_or_else(|| panic!("seed {seed}: no pending-count failure: {:?}", r.failures));
            assert!(
                f.2.contains("tx pending count error") || f.2.contains("link break between lmac and host"),
                "seed {seed}: {f:?}"
            );
        } else {
            assert!(r.clean(), "seed {seed}: {:?} {:?}", r.warns.first(), r.failures);
            assert_eq!(r.contract_count, 0, "seed {seed}: {:?}", r.contracts.first());
            assert_eq!(r.stages.len(), 4, "seed {seed}: whole ramp ran");
        }
    }
    // How often each way: the default ramp starts at 1 MB/s, where a BH woken for a frame
    // an earlier pass already sent gives back an empty buffer often enough that the leak
    // comes first on about half the seeds. The seed's own run shape (4 MB/s) shows the
    // WARN on 9 of 10 seeds: `tool/tests/cli_stress.rs` holds that.
    assert!(flush_timeouts_of_c < 10, "variant c: never the underflow WARN on 10 seeds");
}

#[test]
fn same_seed_gives_byte_identical_json() {
    let config = one_stage(7, 4.0, 120);
    let a = run(&config, |_, _| {}).to_json();
    let b = run(&config, |_, _| {}).to_json();
    assert_eq!(a, b);
    let other = run(&Config { seed: 8, ..config }, |_, _| {}).to_json();
    assert_ne!(a, other, "the seed must matter");
}

#[test]
fn faults_are_reproducible_fire_and_are_named() {
    let mut config = one_stage(7, 4.0, 60);
    for (name, _) in bes2600::sim::FAULTS {
        config.cost.enable_fault(name).unwrap();
    }
    let a = run(&config, |_, _| {});
    assert_eq!(a.to_json(), run(&config, |_, _| {}).to_json(), "same seed, same bytes, faults on");
    let names: Vec<&str> = a.faults.iter().map(|f| f.0).collect();
    assert_eq!(names, bes2600::sim::FAULTS.iter().map(|f| f.0).collect::<Vec<_>>());
    // A racy build may end the minute early at its first fatal failure.
    if !RACY {
        for (name, fired) in &a.faults {
            assert!(*fired > 0, "fault {name} never fired in a minute at 4 MB/s");
        }
    }
    // A stale control byte is caught by the toggle and read again.
    let retries = a.coverage.iter().find(|c| c.0 == "stale_toggle_retries").map_or(0, |c| c.1);
    assert!(retries > 0, "stale-ctrl: no toggle retry");
}

#[test]
fn rx_queue_locks_and_bh_wakeups_follow_the_feature_set() {
    let r = run(&one_stage(3, 4.0, 60), |_, _| {});
    let s = &r.stages[0];
    if cfg!(feature = "c-direct-rx") {
        assert_eq!(s.delta.lock_acquisitions[0], 0, "rx_queue lock unused after Patch C");
        assert_eq!(s.delta.bh_wakeups_rx, 0, "no RX wake-ups of the BH");
    } else {
        let per_msg = s.lock_per_rx_msg(bes2600::platform::LockId::RxQueue);
        // Two per skb (queue, dequeue) and one per empty `pipe_read` (a BH pass with
        // nothing queued: the baseline's confirm polling, one `sdio_rx_work` per
        // `sdio_tx_work`, has many).
        let most = if cfg!(feature = "patch-b") { 2.5 } else { 3.0 };
        assert!((2.0..most).contains(&per_msg), "about 2 rx_queue locks per RX skb (below {most}), got {per_msg}");
        // One wake-up per batch, except when the BH's flag is still set from the batch
        // before (the wake is only on 0 -> 1).
        let per_batch = s.bh_rx_wakeups_per_rx_batch();
        assert!(per_batch >= 0.99, "at least about one BH wake-up per RX batch, got {per_batch}");
    }
}

#[test]
fn patch_b_calibration_lands_near_the_seed_baseline() {
    if !cfg!(all(feature = "patch-b", not(feature = "c-direct-rx"))) {
        return;
    }
    let r = run(&one_stage(1, 4.0, 300), |_, _| {});
    let s = &r.stages[0];
    // Every figure of the seed's Patch B baseline within 10%: 957.3 RX packets/s, 1.36 MiB/s,
    // 86.4 rx_work/s, 90.3 per 1000 RX packets, 276.1 tx_work/s, no BH redispatch and 20% of
    // a CPU in `_raw_spin_unlock_irqrestore` (the seed's 1,914 rx_queue locks/s is two per
    // RX packet: the packets' figure; `rx_queue_locks_and_bh_wakeups_follow_the_feature_set` holds the two per skb).
    let near = |got: f64, want: f64| (got - want).abs() / want <= 0.10;
    assert!(near(s.rx_packets_per_s(), 957.3), "{}", s.rx_packets_per_s());
    assert!(near(s.observed_mib_per_s(), 1.36), "{}", s.observed_mib_per_s());
    assert!(near(s.rx_work_per_s(), 86.4), "{}", s.rx_work_per_s());
    assert!(near(s.rx_work_per_1000_rx_packets(), 90.3), "{}", s.rx_work_per_1000_rx_packets());
    assert!(near(s.tx_work_per_s(), 276.1), "{}", s.tx_work_per_s());
    assert_eq!(s.delta.bh_starts, 0, "BH redispatches");
    assert!(near(s.lock_cpu_pct(), 20.0), "{}", s.lock_cpu_pct());
}

/// Each error path's probe: a correct feature set answers every firmware failure as its
/// error path promises, and the verdict names what it expected; a racy one fails every
/// probe run on its contract reports (which a probe run keeps judging).
#[test]
fn error_path_probes_judge_the_drivers_answer() {
    for &(f, name, _) in bes2600::chip::FW_FAILURES {
        let r = run(
            &Config { seed: 1, stages: bes2600::sim::probe_stages(f), cost: CostModel::default(), probe: Some(f) },
            |_, _| {},
        );
        let p = r.probe.clone().expect("a probe run has a verdict");
        assert_eq!(p.name, name);
        // A racy variant's counts go wrong on their own (commands time out, the BH stops):
        // it is judged on its contract reports below, not on every answer.
        assert!(p.passed || RACY || RACY_PENDING, "probe {name}: {}", p.detail);
        assert!(p.detail.starts_with("expected "), "probe {name}: the verdict says what it expected: {}", p.detail);
        assert_eq!(r.clean(), !(RACY || RACY_PENDING), "probe {name}: contracts {}", r.contract_count);
        assert!(r.to_json().contains("\"probe\":"), "probe {name}: the JSON carries the verdict");
    }
}

/// The probes' verdicts fail when the driver's answer is not the promised one: a report
/// judged without the driver's side of it (nothing seen) fails every probe.
#[test]
fn a_probe_fails_when_the_answer_is_missing() {
    use bes2600::sim::probe::{judge, ProbeLog, Seen};
    for &(f, name, _) in bes2600::chip::FW_FAILURES {
        let log = ProbeLog { injected: Some((f, bes2600::sim::probe::PROBE_AT_NS)), ..ProbeLog::default() };
        let seen = Seen { missed_irq_ns: None, release_failed: 0, warns: &[], last_rx_ns: 0, failure_shown: true };
        let verdict = judge(&log, &seen).expect("injected");
        // Before Patch B a hang is judged on the commands alone, and none was sent here.
        let vacuous = name == "hang" && !cfg!(feature = "patch-b");
        assert_eq!(verdict.passed, vacuous, "probe {name}: {}", verdict.detail);
    }
}
