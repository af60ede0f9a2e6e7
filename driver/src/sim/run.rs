//! The scheduler: one coroutine per host context, a run queue for the CPUs, the chip's
//! interrupt, the command timer, the stress ramp's stages and the failure checks. One
//! seed drives everything; virtual time only.

use super::config::{Config, WARMUP_NS};
use super::core::{Counters, Ctx, FailureKind, SimCore, State, Yield, NO_CTX};
use super::cost::CostModel;
use super::platform::SimPlatform;
use super::report::{Report, StageReport};
use crate::chip::FwFailure;
use crate::wsm;
use crate::Bes2600;
use corosensei::{Coroutine, CoroutineResult};
use std::rc::Rc;

/// The warm-up's flush: after the chip's boot (100 ms) and before the first command
/// (half the warm-up).
const IDLE_FLUSH_NS: u64 = WARMUP_NS / 4;

const CHECK_PERIOD_NS: u64 = 100_000_000;
/// How often TX starvation is sampled, and how long it may last: far above the time
/// between the stack queueing a frame and waking the BH (microseconds) and above the
/// `stall` fault's longest delay of a woken context (20 ms, and a woken context is not
/// asleep anyway).
const STARVE_SAMPLE_NS: u64 = 5_000_000;
const STARVE_LIMIT_NS: u64 = 50_000_000;
/// How long the BH may take to leave its loop once `stop` asked it to (the module's exit
/// waits for it): far above one BH pass, which ends in milliseconds.
const STOP_LIMIT_NS: u64 = 1_000_000_000;
/// The quiet link between the ramp's end and the module's exit (`rmmod` comes after the
/// interface went down): longer than the BH's missed-interrupt timeout (5 s), so a BH that
/// waits with that timeout sees it expire with every frame confirmed, and a `stop` that does
/// not wake a BH asleep with nothing to do is seen as one. No command wakes the BH then:
/// frames left waiting in the driver must be sent by the driver's own wake-ups.
const QUIET_BEFORE_STOP_NS: u64 = 6_000_000_000;
/// When, after the interface went down, the stack hands down its last frame (mac80211's
/// deauthentication): the BH sleeps by then, so only the driver's own wake-up in `xmit`
/// sends it (every other wake-up has stopped with the traffic and the commands).
const DEAUTH_AFTER_DOWN_NS: u64 = 200_000_000;
/// Larger than any frame on the air (an 802.3 frame and its 802.11 headers).
const RX_FRAME_MAX_BYTES: u64 = 2048;
/// Where in each 10 s of fault `tx-heavy` the RX sender's 2 s pause starts.
const TX_HEAVY_RX_PAUSE_FROM_MS: u64 = 8_000;
/// In that pause the upload itself waits this long of every `TX_HEAVY_QUIET_EVERY_MS`.
const TX_HEAVY_QUIET_FOR_MS: u64 = 200;
const TX_HEAVY_QUIET_EVERY_MS: u64 = 500;
/// Most upload frames one run of the stack's TX context hands down (fault `tx-heavy`).
const UPLOAD_BURST_MAX: u32 = 4096;
/// An upload frame: the largest payload a TX frame carries after its WSM headers.
const UPLOAD_FRAME_BYTES: u16 = (crate::device::TX_FRAME_MAX_BYTES - wsm::WSM_HDR_LEN - wsm::TX_REQ_HDR_LEN) as u16;
/// A spurious confirm's probe: how long the data traffic stops before the confirm comes
/// (the last ACKs' confirms are read within milliseconds).
const PROBE_QUIET_NS: u64 = 200_000_000;
/// Command periods between two TX-locking configuration changes (50 x 100 ms).
const TX_LOCK_EVERY_CMDS: u64 = 50;
/// Every this many command periods the command is a driver-to-MCU one (`MCU_CMD_REQ_ID`).
const MCU_CMD_EVERY_CMDS: u64 = 10;
/// A driver-to-MCU command: class `0x0C00` (C `WSM_BES2600_CMD_ID_LABLE`), sequence space 1
/// both ways; its confirm carries the same id.
const MCU_CMD_REQ_ID: u16 = 0x0C01;

type Co = Coroutine<(), Yield, ()>;

/// Runs the configuration; `progress(done_ns, total_ns)` is called once per virtual second.
/// Long because it is the scheduler's event loop: one branch per kind of event (a
/// context, the chip's interrupt, a stage boundary, a monitor timer, a command, a check).
pub fn run(config: &Config, mut progress: impl FnMut(u64, u64)) -> Report {
    let core = Rc::new(SimCore::new(config.cost.clone(), config.seed));
    let drv = Rc::new(Bes2600::new(SimPlatform { core: core.clone() }));
    let mut cos: Vec<Co> = Ctx::ALL.iter().map(|&c| spawn(c, &core, &drv)).collect();

    let total_ns = WARMUP_NS + config.stages.iter().map(|s| s.duration_ns()).sum::<u64>() + QUIET_BEFORE_STOP_NS;
    let mut stage_index = 0usize;
    let mut stage_end_ns = WARMUP_NS;
    let mut stage_start = Counters::default();
    let mut stages: Vec<StageReport> = Vec::new();
    let mut next_cmd_ns = WARMUP_NS / 2;
    // The first flush comes with nothing out (booted, before the first command and the
    // traffic), as mac80211's flush before the first scan does: the empty case runs on
    // every seed, not only when a periodic flush happens to find the link idle.
    let mut next_flush_ns = IDLE_FLUSH_NS;
    let mut next_check_ns = CHECK_PERIOD_NS;
    let mut next_starve_ns = WARMUP_NS;
    let mut next_progress_ns = 1_000_000_000;
    let mut offered = 0.0;
    // Set once the ramp is over and `stop` was called: until when the BH may take to leave.
    let mut stop_deadline_ns: Option<u64> = None;
    // An error path's probe: its firmware failure, injected once.
    let mut probe_due_ns = if config.probe.is_some() { super::probe::PROBE_AT_NS } else { u64::MAX };
    let mut probe_quiet = false;
    // The deauthentication frame mac80211 sends as the interface goes down.
    let mut deauth_due_ns = u64::MAX;

    // The BH is started at probe time and lives on.
    core.ctx.borrow_mut()[Ctx::Bh as usize].set_state(State::Activating(0));
    core.ctx.borrow_mut()[Ctx::Bh as usize].starting = true;

    loop {
        // The scheduler's own timers change only in the branches below: their earliest is
        // taken once, and context steps (most of a run) go round the inner loop alone.
        let own_timers_ns = stage_end_ns
            .min(next_cmd_ns)
            .min(next_flush_ns)
            .min(next_check_ns)
            .min(next_starve_ns)
            .min(stop_deadline_ns.unwrap_or(u64::MAX))
            .min(probe_due_ns)
            .min(deauth_due_ns);
        let event = loop {
            // The chip's moment may have passed while a context ran (the interrupt is due
            // as soon as it can be raised).
            let chip_raw_ns = core.chip_next_event_ns();
            let chip_ns = chip_raw_ns.max(core.now());
            let [p0, p1] = &core.pending_timer_due_ns;
            let timer_ns = own_timers_ns.min(p0.get().unwrap_or(u64::MAX)).min(p1.get().unwrap_or(u64::MAX));
            let (ctx_ns, ctx_i, others_ns) = earliest_two(&core);
            if ctx_ns <= chip_ns && ctx_ns <= timer_ns {
                assert!(ctx_ns >= core.now(), "virtual time went backwards");
                core.now_ns.set(ctx_ns);
                // Until the next moment of anything else it may run on without switching.
                step_context(&core, &mut cos, ctx_i, others_ns.min(chip_raw_ns).min(timer_ns));
                if stop_deadline_ns.is_none() && !core.stop.get() {
                    continue;
                }
                // The checks after an event (below) may end the run.
                break None;
            }
            let pending_due = (0..2).filter_map(|s| core.pending_timer_due_ns[s].get().map(|t| (t, s))).min();
            break Some((chip_ns.min(timer_ns), chip_ns, pending_due));
        };
        let (now, chip_ns, pending_due) = event.unwrap_or((core.now(), u64::MAX, None));
        assert!(now >= core.now(), "virtual time went backwards");
        core.now_ns.set(now);
        if event.is_none() {
            // A context stepped: only the checks after an event apply.
        } else if chip_ns == now {
            if core.chip_mut().poll_irq(now) {
                core.counters.borrow_mut().irqs += 1;
                core.activate(Ctx::Irq as usize, core.cost.irq_thread_ns);
            }
        } else if stage_end_ns == now {
            if stage_index > 0 && stage_index <= config.stages.len() {
                let end = core.snapshot();
                let s = config.stages[stage_index - 1];
                stages.push(StageReport::new(stage_index, s, &stage_start, &end, &core.cost));
            }
            if stage_index == config.stages.len() {
                // The interface goes down: the traffic and the flushes stop, and the
                // commands once a configuration change in progress has ended; the link
                // stays quiet a while before the module's exit (below).
                core.chip_mut().set_offered(now, 0);
                core.link_down.set(true);
                offered = 0.0;
                next_flush_ns = u64::MAX;
                deauth_due_ns = now + DEAUTH_AFTER_DOWN_NS;
                stage_index += 1;
                stage_end_ns = now + QUIET_BEFORE_STOP_NS;
                continue;
            }
            if stage_index > config.stages.len() {
                // The module's exit: `stop` asks the BH to leave.
                as_debugger(&core, || drv.stop());
                stop_deadline_ns = Some(now + STOP_LIMIT_NS);
                stage_end_ns = u64::MAX;
                continue;
            }
            let s = config.stages[stage_index];
            stage_start = core.snapshot();
            offered = s.offered_mb_per_s * 1e6;
            core.chip_mut().set_offered(now, offered as u64);
            core.rx_paused.set(false);
            core.last_rx_progress_ns.set(now);
            if core.cost.fault_tx_heavy {
                core.activate(Ctx::NetTx as usize, 0);
            }
            stage_index += 1;
            stage_end_ns = now + s.duration_ns();
        } else if pending_due.is_some_and(|(t, _)| t == now) {
            // The softirq timer: it runs between context steps, as a timer interrupt does.
            let space = pending_due.map(|x| x.1).unwrap_or(0);
            core.pending_timer_due_ns[space].set(None);
            drv.bh_pending_timeout(space);
        } else if next_flush_ns == now {
            core.activate(Ctx::Flush as usize, 0);
            next_flush_ns = if now < WARMUP_NS {
                WARMUP_NS + core.cost.flush_period_ns / 2
            } else {
                next_flush_ns + core.cost.flush_period_ns
            };
        } else if next_cmd_ns == now {
            if core.link_down.get() && core.tx_locked_by_config.get().is_none() {
                // Down: no more commands once no configuration change holds TX.
                next_cmd_ns = u64::MAX;
                continue;
            }
            core.activate(Ctx::Cmd as usize, 0);
            next_cmd_ns += core.cost.cmd_period_ns;
        } else if deauth_due_ns == now {
            deauth_due_ns = u64::MAX;
            core.acks_owed.set(core.acks_owed.get() + 1);
            core.activate(Ctx::NetTx as usize, core.cost.softirq_ns);
        } else if probe_due_ns == now {
            probe_due_ns = u64::MAX;
            match config.probe {
                Some(FwFailure::SpuriousConfirm) if !probe_quiet => {
                    // A confirm for nothing is surely spurious to the driver too only once
                    // the data traffic stopped: before, the frame the driver counted but
                    // had not yet written takes it, and the count is only one off.
                    probe_quiet = true;
                    offered = 0.0;
                    core.chip_mut().set_offered(now, 0);
                    probe_due_ns = now + PROBE_QUIET_NS;
                }
                Some(f) => {
                    core.chip_mut().inject(now, f);
                    core.probe.borrow_mut().injected = Some((f, now));
                }
                None => {}
            }
        } else if stop_deadline_ns == Some(now) {
            core.fail(
                FailureKind::StopTimeout,
                format!("the BH did not leave its loop within {} ms of stop", STOP_LIMIT_NS / 1_000_000),
            );
            break;
        } else if next_starve_ns == now {
            check_starvation(&core, &drv);
            check_at_rest(&core, &drv);
            next_starve_ns += STARVE_SAMPLE_NS;
        } else {
            check_failures(&core, &drv, offered > 0.0);
            next_check_ns += CHECK_PERIOD_NS;
            // Fault `tx-heavy`: 2 s of every 10 the RX sender pauses and only the upload
            // runs (no ACKs then wake the BH: only the driver's own TX restart does).
            if core.cost.fault_tx_heavy && offered > 0.0 {
                let phase_ms = (now.saturating_sub(WARMUP_NS) / 1_000_000) % 10_000;
                let pause = phase_ms >= TX_HEAVY_RX_PAUSE_FROM_MS;
                // In the pause the upload itself waits 200 ms of every 500: nothing at all
                // comes down then, so frames the driver left queued with buffers free wait
                // for the driver's own wake-ups (a TX pass that ends with frames queued and
                // asks for no further pass is seen here, not only at the ramp's end).
                let quiet =
                    pause && (phase_ms - TX_HEAVY_RX_PAUSE_FROM_MS) % TX_HEAVY_QUIET_EVERY_MS < TX_HEAVY_QUIET_FOR_MS;
                if quiet != core.upload_quiet.get() {
                    core.upload_quiet.set(quiet);
                    if !quiet && !core.link_down.get() {
                        core.restart_upload();
                    }
                }
                // A pause (2 s) stays far below the dead-link limit (10 s), which keeps
                // judging the link through it.
                if pause != core.rx_paused.get() {
                    core.rx_paused.set(pause);
                    core.chip_mut().set_offered(now, if pause { 0 } else { offered as u64 });
                }
            }
            // Fault `spurious-irq`: the interrupt thread runs with nothing raised.
            if core.fault_fires(&core.spurious_irq_rng, core.cost.fault_spurious_irq_chance, &core.spurious_irqs) {
                core.activate(Ctx::Irq as usize, core.cost.irq_thread_ns);
            }
            if now >= next_progress_ns {
                progress(now, total_ns);
                next_progress_ns += 1_000_000_000;
            }
        }
        if stop_deadline_ns.is_some() && core.ctx.borrow()[Ctx::Bh as usize].state() == State::Dead {
            break;
        }
        // A probe's failure is fatal to the link by design: the run goes on to see the
        // driver's whole answer (its error codes, its BH leaving).
        if core.stop.get() && !core.probe.borrow().active() {
            if stage_index > 0 && stage_index <= config.stages.len() && stages.len() < stage_index {
                let end = core.snapshot();
                let s = config.stages[stage_index - 1];
                let mut r = StageReport::new(stage_index, s, &stage_start, &end, &core.cost);
                r.cut_short_at_s = Some((now - (stage_end_ns - s.duration_ns())) as f64 / 1e9);
                stages.push(r);
            }
            break;
        }
    }
    progress(core.now(), total_ns);
    // Force-unwinding the suspended contexts runs destructors of driver code; with no
    // current context they do not suspend.
    core.current.set(NO_CTX);
    drop(cos);
    let mut report = Report::new(config, &core, stages);
    report.probe = judge_probe(&core);
    drop(drv);
    report
}

fn spawn(c: Ctx, core: &Rc<SimCore>, drv: &Rc<Bes2600<SimPlatform>>) -> Co {
    let core = core.clone();
    let drv = drv.clone();
    Coroutine::new(move |yielder, ()| {
        core.yielders[c as usize].set(yielder as *const _);
        loop {
            match c {
                Ctx::Irq => drv.irq_handler(),
                Ctx::RxWork => {
                    let started_ns = core.now();
                    let counts = || {
                        let c = core.counters.borrow();
                        (c.rx_batches, c.stale_toggle_retries)
                    };
                    let before = counts();
                    drv.sdio_rx_work();
                    if core.probe.borrow().injected.is_some_and(|(_, at)| started_ns >= at) {
                        let after = counts();
                        core.probe.borrow_mut().rx_runs.push((after.0 - before.0, after.1 - before.1));
                    }
                }
                Ctx::TxWork => drv.sdio_tx_work(),
                Ctx::Bh => {
                    core.counters.borrow_mut().bh_starts += 1;
                    drv.bh_loop();
                    yielder.suspend(Yield::Dead);
                }
                Ctx::NetTx => {
                    // Bound: each pass takes one owed ACK; the count only grows in
                    // netif_rx, which this context does not call.
                    while core.acks_owed.get() > 0 {
                        core.acks_owed.set(core.acks_owed.get() - 1);
                        core.counters.borrow_mut().acks_queued += 1;
                        if drv.xmit(0, core.cost.ack_frame_bytes) {
                            core.tx_accepted.borrow_mut().push_back((core.cost.ack_frame_bytes, core.now()));
                        } else {
                            core.counters.borrow_mut().tx_refused += 1;
                        }
                    }
                    // Fault `tx-heavy`: fill the queue until a frame is refused, then
                    // stop until frames reach the chip. Bound: the queue is finite; the
                    // cap only guards a driver that never refuses.
                    if core.cost.fault_tx_heavy
                        && !core.upload_stopped.get()
                        && !core.upload_quiet.get()
                        && !core.link_down.get()
                    {
                        for _ in 0..UPLOAD_BURST_MAX {
                            core.counters.borrow_mut().acks_queued += 1;
                            core.upload_frames.set(core.upload_frames.get() + 1);
                            if !drv.xmit(0, UPLOAD_FRAME_BYTES) {
                                core.counters.borrow_mut().tx_refused += 1;
                                core.upload_stopped.set(true);
                                break;
                            }
                            core.tx_accepted.borrow_mut().push_back((UPLOAD_FRAME_BYTES, core.now()));
                        }
                    }
                }
                Ctx::Cmd => {
                    // Every 5 s a configuration change holds TX for one command period, as
                    // mac80211's config callbacks do around a change.
                    let n = core.cmd_runs.get();
                    core.cmd_runs.set(n + 1);
                    if n % TX_LOCK_EVERY_CMDS == 0 {
                        core.tx_locked_by_config.set(Some(core.now()));
                        drv.wsm_lock_tx_async();
                        core.tx_surely_locked_by_config.set(Some(core.now()));
                        core.counters.borrow_mut().tx_lock_periods += 1;
                    }
                    // Waits for the confirm (up to 6 s); a timeout is an event and a failure.
                    // Fault `cmd-burst`: several in a row, each waiting for its confirm.
                    let burst =
                        core.fault_fires(&core.cmd_burst_rng, core.cost.fault_cmd_burst_chance, &core.cmd_bursts);
                    let count = if burst { core.cost.fault_cmd_burst_len } else { 1 };
                    for _ in 0..count {
                        // The caller (mac80211, wpa_supplicant's signal poll) sees the
                        // result: an error the driver did not report as a timeout is a
                        // failure too.
                        let commands = || core.chip().stats.commands();
                        let before = commands();
                        // One command in ten is a driver-to-MCU command (class 0x0C00): the
                        // only traffic of sequence space 1.
                        let id = if n % MCU_CMD_EVERY_CMDS == MCU_CMD_EVERY_CMDS - 1 {
                            MCU_CMD_REQ_ID
                        } else {
                            wsm::WSM_READ_MIB_REQ_ID
                        };
                        let sent_ns = core.now();
                        let space = wsm::seq_space(id);
                        let confirms = || core.chip().stats.cmd_confirms_pushed[space];
                        let confirms_before = confirms();
                        let ret = drv.wsm_cmd_send(id, 8);
                        let confirmed = confirms() > confirms_before;
                        if core.probe.borrow().injected.is_some_and(|(_, at)| sent_ns >= at) {
                            core.probe.borrow_mut().cmds.push((ret, commands() > before, confirmed));
                        }
                        if ret == 0 && commands() > before && !confirmed {
                            // Another command's confirm answered it (one that came late).
                            core.fail(
                                FailureKind::TxLost,
                                format!("wsm_cmd_send returned 0 for command {id:#06x} before the chip confirmed it"),
                            );
                        }
                        if ret != 0 {
                            core.fail(FailureKind::CmdTimeout, format!("wsm_cmd_send returned {ret}"));
                        } else if commands() == before {
                            // Success means the firmware answered: it must have had it.
                            core.fail(
                                FailureKind::TxLost,
                                "wsm_cmd_send returned 0 for a command the chip never received".into(),
                            );
                        }
                    }
                    if n % TX_LOCK_EVERY_CMDS == 1 {
                        core.tx_surely_locked_by_config.set(None);
                        drv.wsm_unlock_tx();
                        core.tx_locked_by_config.set(None);
                    }
                }
                Ctx::Flush => {
                    // mac80211's flush (before a scan, a channel change, suspend). Every
                    // other one is `bes2600_flush` as mac80211 calls it; the others are its
                    // two halves, checked while TX is still locked. The promise is the same:
                    // every frame the chip held when the flush was called has been confirmed
                    // to the host. Not "nothing in the chip": commands still go while TX is
                    // locked, and a flush preempted after it saw the count at 0 returns
                    // after one went out.
                    let n = {
                        let mut c = core.counters.borrow_mut();
                        c.flushes += 1;
                        c.flushes
                    };
                    let timeouts_before = core.counters.borrow().flush_timeouts;
                    let whole = n % 2 == 0;
                    let called = if whole { "bes2600_flush" } else { "wsm_lock_tx" };
                    let config_locked_before = core.tx_locked_by_config.get().is_some();
                    let sent_before = core.chip().stats.tx_frames;
                    let flushed = if whole { drv.bes2600_flush() } else { drv.wsm_lock_tx() };
                    // Only a flush that took the lock first waited for the buffers: under
                    // a configuration change's lock, held before or taken while the flush
                    // started, `wsm_lock_tx` returns at once.
                    let waited = !config_locked_before && core.tx_locked_by_config.get().is_none();
                    if flushed && waited {
                        check_flushed(&core, called, sent_before);
                    }
                    // A failed flush is the driver's force close whether or not it said
                    // why (mac80211 sees the failure).
                    if !flushed && core.counters.borrow().flush_timeouts == timeouts_before {
                        core.fail(
                            FailureKind::FlushTimeout,
                            format!("{called} returned false (the flush failed) without a flush timeout"),
                        );
                    }
                    if !whole {
                        drv.wsm_unlock_tx();
                    }
                }
            }
            yielder.suspend(Yield::Done);
        }
    })
}

/// The context with the earliest due time (ties: lower index first), and the earliest
/// due time of all the others (what the first may run until without switching).
#[inline(always)]
fn earliest_two(core: &SimCore) -> (u64, usize, u64) {
    let mut best = (u64::MAX, NO_CTX);
    let mut second_ns = u64::MAX;
    for (i, s) in core.ctx.borrow().iter().enumerate() {
        let t = s.due_ns();
        if t < best.0 {
            second_ns = best.0;
            best = (t, i);
        } else if t < second_ns {
            second_ns = t;
        }
    }
    (best.0, best.1, second_ns)
}

/// Runs context `i`, whose time has come, until it suspends or passes `horizon_ns`.
/// Inlined, with `resume` and `earliest_two`, into the scheduler's inner loop: about 10%
/// less CPU per ramp, measured side by side (every step of a run goes through the three).
#[inline(always)]
fn step_context(core: &Rc<SimCore>, cos: &mut [Co], i: usize, horizon_ns: u64) {
    let state = core.ctx.borrow()[i].state();
    match state {
        State::OnCpu(_) => resume(core, cos, i, horizon_ns),
        State::Activating(_) | State::Sleeping(_) | State::Waiting(_) => {
            if core.cpus_busy.get() < core.cost.cpus {
                grant_cpu(core, i, core.now());
                resume(core, cos, i, horizon_ns);
            } else {
                core.ctx.borrow_mut()[i].set_state(State::Runnable);
                core.run_queue.borrow_mut().push_back(i);
            }
        }
        State::Idle | State::Runnable | State::Dead => unreachable!("context {i} stepped in {state:?}"),
    }
}

fn grant_cpu(core: &SimCore, i: usize, at_ns: u64) {
    core.cpus_busy.set(core.cpus_busy.get() + 1);
    let mut ctx = core.ctx.borrow_mut();
    let c = &mut ctx[i];
    c.set_state(State::OnCpu(at_ns));
    c.on_cpu_since_ns = core.now();
    if c.starting {
        c.starting = false;
        c.queued = false;
        c.running = true;
        core.counters.borrow_mut().dispatches[i] += 1;
    }
}

fn leave_cpu(core: &SimCore, i: usize) {
    let now = core.now();
    {
        let ctx = core.ctx.borrow();
        core.counters.borrow_mut().cpu_ns[i] += now - ctx[i].on_cpu_since_ns;
    }
    core.cpus_busy.set(core.cpus_busy.get() - 1);
    let next = core.run_queue.borrow_mut().pop_front();
    if let Some(j) = next {
        grant_cpu(core, j, now + core.cost.context_switch_ns);
    }
}

#[inline(always)]
fn resume(core: &Rc<SimCore>, cos: &mut [Co], i: usize, horizon_ns: u64) {
    core.horizon_ns.set(horizon_ns);
    core.current.set(i);
    let result = cos[i].resume(());
    core.current.set(NO_CTX);
    let y = match result {
        CoroutineResult::Yield(y) => y,
        CoroutineResult::Return(()) => Yield::Dead,
    };
    let now = core.now();
    match y {
        Yield::Delay(ns) => core.ctx.borrow_mut()[i].set_state(State::OnCpu(now + ns)),
        Yield::Sleep(until) => {
            leave_cpu(core, i);
            core.ctx.borrow_mut()[i].set_state(State::Sleeping(until));
        }
        Yield::Wait(deadline) => {
            leave_cpu(core, i);
            core.ctx.borrow_mut()[i].set_state(State::Waiting(deadline));
        }
        Yield::Done => {
            leave_cpu(core, i);
            let mut ctx = core.ctx.borrow_mut();
            let c = &mut ctx[i];
            c.running = false;
            if c.queued {
                c.set_state(State::Activating(now + latency_of(&core.cost, i)));
                c.starting = true;
            } else {
                c.set_state(State::Idle);
            }
        }
        Yield::Dead => {
            leave_cpu(core, i);
            core.ctx.borrow_mut()[i].set_state(State::Dead);
        }
    }
}

/// From a context's wake-up (`queue_work`, the card interrupt, `netif_rx`) to it running.
pub(super) fn latency_of(cost: &CostModel, i: usize) -> u64 {
    match Ctx::ALL[i] {
        Ctx::Irq => cost.irq_thread_ns,
        Ctx::RxWork => cost.work_dispatch_ns,
        Ctx::TxWork => cost.tx_work_dispatch_ns,
        Ctx::NetTx => cost.softirq_ns,
        Ctx::Bh | Ctx::Cmd | Ctx::Flush => 0,
    }
}

/// The lost wake-up check: frames wait in the driver, the driver's own count leaves a
/// buffer free for data (`hw_bufs_used` below its throttle point) and TX is not locked,
/// and every context of the driver and the stack sleeps (the BH in its wait). Nothing in
/// the driver will send those frames: only a release that ends a throttle wakes the BH,
/// and it is not throttled. Held for `STARVE_LIMIT_NS` it is a failure. The driver's count
/// and not the chip's: a chip with confirms still to tell the host used to excuse the
/// wait, and with `c-direct-rx` no RX wakes the BH, so at 4 MB/s a driver that never woke
/// the BH for the frames the stack handed down (the BH going round a pass by itself) ran
/// clean.
fn check_starvation(core: &SimCore, drv: &Bes2600<SimPlatform>) {
    let now = core.now();
    let c = core.counters.borrow();
    let chip = core.chip();
    let waiting = c.acks_queued.saturating_sub(c.tx_refused).saturating_sub(chip.stats.tx_data_frames);
    drop(c);
    let asleep = core.ctx.borrow().iter().enumerate().all(|(i, x)| match Ctx::ALL[i] {
        Ctx::Bh => matches!(x.state(), State::Waiting(_)) && !x.queued,
        _ => !x.running && !x.queued,
    });
    drop(chip);
    let (used, tx_lock, bufs) = as_debugger(core, || {
        (
            drv.hw_bufs_used_read(),
            drv.tx_lock.load(&drv.plat, crate::platform::Ordering::Relaxed),
            drv.num_inp_ch_bufs.get(&drv.plat),
        )
    });
    let free = (bufs - 1 - used).max(0);
    let starved = waiting > 0 && asleep && core.tx_locked_by_config.get().is_none() && tx_lock == 0 && free > 0;
    if !starved {
        core.starved_since_ns.set(None);
        return;
    }
    let since = core.starved_since_ns.get().unwrap_or(now);
    core.starved_since_ns.set(Some(since));
    if now - since >= STARVE_LIMIT_NS {
        core.fail(
            FailureKind::LostWakeup,
            format!(
                "lost wake-up: {waiting} frames waited {} ms in the driver with {free} input buffers free while the BH slept with no wake-up pending",
                (now - since) / 1_000_000
            ),
        );
    }
}

/// A flush's promise, checked after it returned true: the frames the chip had received
/// when it was called (the first `sent_before`) have all been confirmed to the host since.
/// Frames sent after the call may still be out (commands, or anything once TX unlocked).
fn check_flushed(core: &SimCore, flush: &str, sent_before: u64) {
    let chip = core.chip();
    let confirmed = chip.stats.tx_frames - u64::from(chip.frames_unconfirmed_to_host());
    if confirmed < sent_before && chip.wedged.is_none() {
        let out = sent_before - confirmed;
        drop(chip);
        core.fail(
            FailureKind::FlushIncomplete,
            format!("{flush} returned true with {out} frames sent before it still unconfirmed to the host"),
        );
    }
}

/// The driver's buffer counts at rest: when no frame is in the chip or in a confirm the
/// host has not read, and no context that moves buffers is between steps (the BH waits,
/// `sdio_rx_work`, `sdio_tx_work` and the interrupt thread are idle), `hw_bufs_used` and
/// every `hw_bufs_used_vif` must be 0. A leaked or lost count shows here within
/// `STARVE_SAMPLE_NS` of the link going quiet, not 10 s later as a flush timeout.
fn check_at_rest(core: &SimCore, drv: &Bes2600<SimPlatform>) {
    let quiet = core.ctx.borrow().iter().enumerate().all(|(i, x)| match Ctx::ALL[i] {
        Ctx::RxWork | Ctx::TxWork | Ctx::Irq => !x.running && !x.queued,
        Ctx::Bh => matches!(x.state(), State::Waiting(_)) && !x.queued,
        _ => true,
    });
    let chip = core.chip();
    let out = chip.frames_unconfirmed_to_host() > 0 || chip.wedged.is_some() || !chip.idle_towards_host();
    drop(chip);
    if !quiet || out {
        return;
    }
    let (used, vifs) = as_debugger(core, || {
        let vifs: Vec<i32> = (0..crate::device::WSM_MAX_VIFS).map(|v| vif_count(drv, v)).collect();
        (drv.hw_bufs_used_read(), vifs)
    });
    if used != 0 || vifs.iter().any(|&c| c != 0) {
        core.fail(
            FailureKind::BufferCount,
            format!(
                "at rest (no frame in the chip, every confirm read and handled) hw_bufs_used is {used} and hw_bufs_used_vif {vifs:?}: both must be 0"
            ),
        );
    }
}

/// Reads driver state as a debugger would, between context steps: outside any context, so
/// with no cost and no contract bookkeeping.
fn as_debugger<T>(core: &SimCore, read: impl FnOnce() -> T) -> T {
    let running = core.current.replace(NO_CTX);
    let value = read();
    core.current.set(running);
    value
}

/// The probe's verdict, from its log and what the run saw.
fn judge_probe(core: &SimCore) -> Option<super::probe::ProbeReport> {
    let warns: Vec<(u64, crate::platform::Warning)> =
        core.warns.borrow().iter().map(|w| (w.time_ns, w.warning)).collect();
    let failures = core.failures.borrow();
    let counters = core.counters.borrow();
    let seen = super::probe::Seen {
        missed_irq_ns: failures.iter().find(|f| f.kind == FailureKind::MissedInterrupt).map(|f| f.time_ns),
        release_failed: counters.release_failed,
        warns: &warns,
        last_rx_ns: core.last_rx_progress_ns.get(),
        failure_shown: core.chip().failure_shown(),
    };
    super::probe::judge(&core.probe.borrow(), &seen)
}

/// `hw_bufs_used_vif[vif]` as the driver keeps it.
fn vif_count(drv: &Bes2600<SimPlatform>, vif: usize) -> i32 {
    #[cfg(not(feature = "c-prep-atomic"))]
    let n = drv.hw_bufs_used_vif[vif].get(&drv.plat);
    #[cfg(feature = "c-prep-atomic")]
    let n = drv.hw_bufs_used_vif[vif].load(&drv.plat, crate::platform::Ordering::Relaxed);
    n
}

fn check_failures(core: &SimCore, drv: &Bes2600<SimPlatform>, traffic_offered: bool) {
    let now = core.now();
    let cost = &core.cost;
    let wedged = core.chip().wedged;
    if let Some((_, why)) = wedged {
        core.fail(FailureKind::TxWedge, why.to_string());
    }
    let breach = core.chip().protocol_breach;
    if let Some((_, why)) = breach {
        core.fail(FailureKind::Protocol, why.to_string());
    }
    let c = core.counters.borrow();
    let chip_data = core.chip().stats.tx_data_frames;
    let waiting = c.acks_queued.saturating_sub(c.tx_refused).saturating_sub(chip_data);
    let stalled_ns = now.saturating_sub(core.last_tx_write_ns.get());
    // The driver's own count of frames dropped at a full queue (its TxQueueFull events)
    // is the frames it refused, once the stack's context is out of `xmit`.
    let (reported, refused) = (c.acks_dropped, c.tx_refused);
    drop(c);
    if reported != refused && !core.ctx.borrow()[Ctx::NetTx as usize].running {
        core.fail(
            FailureKind::TxLost,
            format!("the driver reported {reported} frames dropped at a full TX queue but refused {refused}"),
        );
    }
    if waiting > 0 && stalled_ns >= cost.tx_wedge_after_ns && core.last_tx_write_ns.get() > 0 {
        // What holds TX: a flush waiting for a count that cannot reach 0 holds `tx_lock`
        // (variant c).
        let (used, tx_lock) = as_debugger(core, || {
            (drv.hw_bufs_used_read(), drv.tx_lock.load(&drv.plat, crate::platform::Ordering::Relaxed))
        });
        core.fail(
            FailureKind::TxWedge,
            format!(
                "{waiting} frames waiting in the driver and none written for {:.1} s (tx_lock {tx_lock}, hw_bufs_used {used})",
                stalled_ns as f64 / 1e9
            ),
        );
    }
    // Every data frame the chip handed over reaches the stack or is counted as dropped;
    // at most a full rx_queue and a batch are between the two at any moment.
    let c = core.counters.borrow();
    let (handed, handed_bytes) = {
        let stats = core.chip().stats;
        (stats.data_msgs_sent, stats.data_bytes_sent)
    };
    let accounted = c.rx_packets + c.rx_queue_full;
    let (rx_bytes, dropped) = (c.rx_bytes, c.rx_queue_full);
    drop(c);
    let in_between = (crate::device::RX_QUEUE_CAP + wsm::BATCH_MAX_MSGS) as u64;
    // The stack gets each frame's own length (no drops: a dropped frame's length is not
    // counted anywhere).
    let bytes_slack = in_between * RX_FRAME_MAX_BYTES;
    if dropped == 0 && handed_bytes.abs_diff(rx_bytes) > bytes_slack {
        core.fail(
            FailureKind::RxLost,
            format!("the stack got {rx_bytes} bytes in the frames the chip handed over with {handed_bytes}"),
        );
    }
    if handed > accounted + in_between {
        core.fail(
            FailureKind::RxLost,
            format!(
                "{} of {handed} data frames the chip handed over never reached the stack and none was counted as dropped",
                handed - accounted
            ),
        );
    }
    if traffic_offered && now - core.last_rx_progress_ns.get() >= cost.link_dead_after_ns {
        core.fail(
            FailureKind::LinkDead,
            format!("no RX progress for {} s while traffic was offered", cost.link_dead_after_ns / 1_000_000_000),
        );
        core.stop.set(true);
    }
}
