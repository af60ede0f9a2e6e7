//! The error paths' probes: one firmware failure the driver cannot survive
//! ([`FwFailure`]), injected once into a short run, and the driver's answer judged against
//! what its error path promises: the missed-interrupt report and the commands' error codes
//! after a hang, a bounded re-read of a stuck control byte, a bounded run under a flooding
//! one, a batch too long refused unread, a malformed message reported with the messages
//! before it delivered and RX going on, a release below zero reported, a late confirm
//! taken for no other command.
//!
//! A normal run never takes these paths (the chip never fails so), so without the probes a
//! regression in them (a timeout that never expires, a bound off by one, a sign lost)
//! passes every swarm. The stress oracle runs each probe once after its swarm.

use super::config::{Stage, WARMUP_NS};
use crate::bh::BH_MISSED_IRQ_TIMEOUT_MS;
use crate::chip::{FwFailure, PROBE_BAD_LENS};
use crate::platform::Warning;
use crate::sdio::{RX_WORK_MAX_BATCHES, STALE_TOGGLE_RETRIES};
use crate::wsm;

/// When the failure is injected: 2 s into the probe's one stage (traffic flowing, frames
/// out, commands and flushes running).
pub const PROBE_AT_NS: u64 = WARMUP_NS + 2_000_000_000;
/// The probe's offered rate, MB/s.
const PROBE_OFFERED_MB_PER_S: f64 = 4.0;
/// The kernel's errno values a command's sender sees (`include/uapi/asm-generic/errno-base.h`).
const EBUSY: i32 = 16;
const ETIMEDOUT: i32 = 110;

/// How long a probe runs after the injection: a hang needs the BH's 5 s missed-interrupt
/// timeout, then a command that times out (6 s) after the BH left; the others answer in
/// milliseconds.
fn window_ms(f: FwFailure) -> u64 {
    match f {
        FwFailure::Hang => 14_000,
        // The held command's 6 s, then up to ten command periods to the next
        // driver-to-MCU command.
        FwFailure::LateConfirm => 9_000,
        _ => 2_000,
    }
}

/// The probe's ramp: one stage at 4 MB/s that lasts until the probe's window ends.
pub fn probe_stages(f: FwFailure) -> Vec<Stage> {
    let lead_ms = (PROBE_AT_NS - WARMUP_NS) / 1_000_000;
    vec![Stage { offered_mb_per_s: PROBE_OFFERED_MB_PER_S, duration_ms: lead_ms + window_ms(f) }]
}

/// What the run records for the probe from the injection on.
#[derive(Debug, Default)]
pub struct ProbeLog {
    /// The failure and when it was injected.
    pub injected: Option<(FwFailure, u64)>,
    /// Each run of `sdio_rx_work` that started after the injection and ended: batches it
    /// read, stale control bytes it re-read.
    pub rx_runs: Vec<(u64, u64)>,
    /// Each command sent after the injection: what `wsm_cmd_send` returned, whether the
    /// chip had received the command, and whether it had confirmed it (its own confirm).
    pub cmds: Vec<(i32, bool, bool)>,
    /// The probe's own frames the stack got: small (malformed batches), large (32 KiB).
    pub small_frames: u64,
    pub large_frames: u64,
    /// The BH left after an error (`BhStopped`).
    pub bh_stopped: u64,
    /// The return value each logged release failure carried (the seed's "failed: -1").
    pub release_rets: Vec<i32>,
}

impl ProbeLog {
    /// Since the injection (false before it, or without a probe).
    pub fn active(&self) -> bool {
        self.injected.is_some()
    }
}

/// A probe's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    /// The failure's name (`--probe`).
    pub name: &'static str,
    /// Whether the driver answered as its error path promises.
    pub passed: bool,
    /// What was expected and what was seen.
    pub detail: String,
}

/// What the run saw that the verdict needs besides the log.
pub struct Seen<'a> {
    /// The first missed-interrupt report, ns.
    pub missed_irq_ns: Option<u64>,
    /// Release failures the driver logged (`c-direct-rx`: it goes on).
    pub release_failed: u64,
    /// Every WARN kept, with its time, ns.
    pub warns: &'a [(u64, Warning)],
    /// The last frame the stack got, ns.
    pub last_rx_ns: u64,
    /// Whether the failure showed on the wire (the spurious confirm sent, the late
    /// confirm sent).
    pub failure_shown: bool,
}

/// Judges the driver's answer to the injected failure.
pub fn judge(log: &ProbeLog, seen: &Seen) -> Option<ProbeReport> {
    let (f, at_ns) = log.injected?;
    let bad_lens: Vec<(u64, u16)> = seen
        .warns
        .iter()
        .filter(|w| w.0 >= at_ns)
        .filter_map(|w| match w.1 {
            Warning::BadRxLength { len } => Some((w.0, len)),
            _ => None,
        })
        .collect();
    let (passed, detail) = match f {
        FwFailure::Hang => judge_hang(log, seen, at_ns),
        FwFailure::StuckCtrl => judge_rx_runs(
            &log.rx_runs,
            |r| r.1,
            STALE_TOGGLE_RETRIES as u64,
            "re-reads of the stuck control byte, then the run ends",
        ),
        FwFailure::CtrlFlood => judge_rx_runs(
            &log.rx_runs,
            |r| r.0,
            RX_WORK_MAX_BATCHES as u64,
            "batches (RX_WORK_MAX_BATCHES), then the run yields",
        ),
        FwFailure::OversizeBatch => {
            let over = (wsm::BATCH_MAX_BYTES / wsm::SDIO_BLOCK_BYTES + 1) * wsm::SDIO_BLOCK_BYTES;
            let lens: Vec<u16> = bad_lens.iter().map(|b| b.1).collect();
            let ok = log.large_frames == wsm::BATCH_MAX_MSGS as u64 && lens == [over as u16];
            (
                ok,
                format!(
                    "expected the 32 KiB batch's {} frames delivered and one bad-length WARN of {over} bytes (read refused); saw {} frames and bad-length WARNs {lens:?}",
                    wsm::BATCH_MAX_MSGS,
                    log.large_frames
                ),
            )
        }
        FwFailure::MalformedBatch => {
            let lens: Vec<u16> = bad_lens.iter().map(|b| b.1).collect();
            let last_warn_ns = bad_lens.last().map_or(u64::MAX, |b| b.0);
            let rx_after = seen.last_rx_ns > last_warn_ns;
            let ok = log.small_frames == 4 && lens == PROBE_BAD_LENS && rx_after;
            (
                ok,
                format!(
                    "expected the 4 good frames before the bad messages delivered, bad-length WARNs {PROBE_BAD_LENS:?} and RX going on after them; saw {} frames, WARNs {lens:?}, RX after: {rx_after}",
                    log.small_frames
                ),
            )
        }
        FwFailure::LateConfirm => {
            let held = log.cmds.iter().filter(|c| c.0 == -EBUSY).count();
            let early: Vec<String> = log
                .cmds
                .iter()
                .filter(|c| c.0 == 0 && !c.2)
                .map(|c| format!("{} (before its own confirm)", c.0))
                .collect();
            let ok = seen.failure_shown && held == 1 && early.is_empty();
            (
                ok,
                format!(
                    "expected the command answered late to fail with -EBUSY (-{EBUSY}) and no command to succeed before its own confirm; late confirm sent: {}, -EBUSY {held} times, {} commands after it, early successes: {}",
                    seen.failure_shown,
                    log.cmds.len(),
                    if early.is_empty() { "none".to_string() } else { early.join(", ") }
                ),
            )
        }
        FwFailure::SpuriousConfirm => {
            // Logged as the kernel log shows it: the release's -1.
            let logged = !log.release_rets.is_empty() && log.release_rets.iter().all(|&r| r == -1);
            let ok = !seen.failure_shown || log.bh_stopped > 0 || logged;
            (
                ok,
                format!(
                    "expected the release below zero reported (the BH stops, or with c-direct-rx a release failure is logged with -1); saw {} release failures logged (returns {:?}), BH stopped {} times",
                    seen.release_failed, log.release_rets, log.bh_stopped
                ),
            )
        }
    };
    Some(ProbeReport { name: f.name(), passed, detail })
}

/// A hang: the BH reports the missed interrupt within its timeout (plus the 6 s a command
/// may keep it from waiting), and every command sent after the hang fails with -EBUSY when
/// the chip took it, -ETIMEDOUT when it never left the driver.
///
/// Before Patch B the BH polls for confirms: every empty poll wakes it again, so its
/// missed-interrupt timeout never expires and a hung chip is never reported (a weakness of
/// the baseline Patch B removes). Without `patch-b` only the commands are judged.
fn judge_hang(log: &ProbeLog, seen: &Seen, at_ns: u64) -> (bool, String) {
    let limit_ns = at_ns + (BH_MISSED_IRQ_TIMEOUT_MS as u64 + 6_000) * 1_000_000;
    let polls = cfg!(not(feature = "patch-b"));
    let detected = seen.missed_irq_ns.filter(|&t| t <= limit_ns).or(polls.then_some(0));
    let wrong: Vec<String> = log
        .cmds
        .iter()
        .filter(|c| c.0 != if c.1 { -EBUSY } else { -ETIMEDOUT })
        .map(|c| format!("{} for a command {}", c.0, if c.1 { "the chip took" } else { "never sent" }))
        .collect();
    let ok = detected.is_some() && wrong.is_empty();
    let detected = detected.filter(|_| !polls);
    let taken = log.cmds.iter().filter(|c| c.1).count();
    let when = match detected.or(seen.missed_irq_ns) {
        Some(t) => format!("reported {:.1} s after the hang", (t - at_ns) as f64 / 1e9),
        None if polls => "never reported (not required: the BH polls for confirms before Patch B)".into(),
        None => "never reported".into(),
    };
    (
        ok,
        format!(
            "expected the missed interrupt reported within {:.0} s and commands failing with -EBUSY (-{EBUSY}) when sent, -ETIMEDOUT (-{ETIMEDOUT}) when not; missed interrupt {when}; {} commands after the hang ({taken} taken by the chip){}",
            (limit_ns - at_ns) as f64 / 1e9,
            log.cmds.len(),
            if wrong.is_empty() { String::new() } else { format!(", wrong results: {}", wrong.join(", ")) }
        ),
    )
}

/// Every `sdio_rx_work` run after the injection counted exactly `want` of something.
fn judge_rx_runs(runs: &[(u64, u64)], of: impl Fn(&(u64, u64)) -> u64, want: u64, what: &str) -> (bool, String) {
    let counts: Vec<u64> = runs.iter().map(of).collect();
    let ok = !counts.is_empty() && counts.iter().all(|&c| c == want);
    let seen = if counts.is_empty() {
        "no run of sdio_rx_work ended".to_string()
    } else {
        // The count of each value: the baseline's confirm polling runs the work thousands
        // of times.
        let mut tally = std::collections::BTreeMap::new();
        for &c in &counts {
            *tally.entry(c).or_insert(0u64) += 1;
        }
        let tally: Vec<String> = tally.iter().map(|(v, n)| format!("{v} in {n}")).collect();
        format!("{} runs counted {}", counts.len(), tally.join(", "))
    };
    (ok, format!("expected each run of sdio_rx_work to make {want} {what}; {seen}"))
}
