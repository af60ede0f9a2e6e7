//! The platform layer on virtual time: every shared access is a point where the scheduler
//! may switch to another context, so a lost update between a load and a store happens
//! for real; SDIO transfers sleep off CPU on one bus; work items, wake-ups and the network
//! stack follow the kernel's semantics.

/// How long after `wsm_lock_tx` data frames handed out before it may still reach the chip:
/// above the `stall` fault's longest delay of the TX work (20 ms).
const TX_LOCK_GRACE_NS: u64 = 50_000_000;

use super::core::{lock_index, Ctx, FailureKind, SimCore, State, WarnRecord, Yield, NO_CTX, WARN_RECORDS_KEPT};
use crate::platform::{CpuOp, Event, LockId, Memory, Ordering, Platform, WaitQueue, WakeReason, Warning, Work};
use std::cell::Cell;
use std::rc::Rc;

/// Spins on one lock longer than this are a soft lockup.
const SPIN_LIMIT_NS: u64 = 1_000_000_000;

pub struct SimPlatform {
    pub core: Rc<SimCore>,
}

impl SimPlatform {
    /// The context that waits on `wq`, and its wake flag.
    fn queue(&self, wq: WaitQueue) -> (Ctx, &Cell<bool>) {
        match wq {
            WaitQueue::CmdConfirm => (Ctx::Cmd, &self.core.cmd_woken),
            WaitQueue::BufsReleased => (Ctx::Flush, &self.core.flush_woken),
        }
    }

    /// `wait_event_timeout` for context `ctx`: prepare to wait (clear `woken`), check the
    /// condition, sleep until a wake-up or the deadline. A wake-up that comes while the
    /// condition is checked keeps the context from sleeping, as the kernel's
    /// prepare_to_wait does by setting the task state first.
    fn wait_on(&self, ctx: Ctx, woken: &Cell<bool>, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        let deadline = timeout_ms.map(|ms| self.core.now() + ms as u64 * 1_000_000);
        // Bound: each pass either returns or suspends until a wake-up or the deadline.
        loop {
            woken.set(false);
            if ready() {
                return true;
            }
            if let Some(d) = deadline {
                if self.core.now() >= d {
                    return false;
                }
            }
            if woken.get() {
                continue;
            }
            if self.core.ctx.borrow()[ctx as usize].locks_held > 0 {
                self.bug("scheduling while atomic: a wait with a spinlock held");
            }
            self.core.horizon_ns.set(0);
            self.yield_now(Yield::Wait(deadline));
        }
    }

    fn yield_now(&self, y: Yield) {
        let cur = self.core.current.get();
        assert_ne!(cur, NO_CTX, "driver code suspended outside a context");
        let yielder = self.core.yielders[cur].get();
        // SAFETY: `yielder` was stored by coroutine `cur` from the reference corosensei
        // gave it; that reference lives on the coroutine's own stack for as long as the
        // coroutine exists, and `current == cur` only while that coroutine is executing,
        // so we are on its stack now.
        unsafe { (*yielder).suspend(y) };
    }

    /// Spends `ns` of CPU; switches only if another event is due first.
    #[inline(always)]
    fn delay(&self, ns: u64) {
        let core = &self.core;
        if core.current.get() == NO_CTX {
            return;
        }
        let until = core.now() + ns;
        if until < core.horizon_ns.get() {
            core.now_ns.set(until);
        } else {
            self.yield_now(Yield::Delay(ns));
        }
    }

    /// One shared-memory access of `units` (an indivisible read-modify-write counts 2, so
    /// that a plain RMW and its atomic replacement take the same time). Each unit is
    /// interrupted with the context's chance; a countdown of units to the next interrupt
    /// (geometric, drawn when the last one lands) gives the same odds as a draw per unit.
    /// Fault `preempt` may take the context off its CPU after it.
    #[inline(always)]
    fn access(&self, units: u32) {
        if let Some(cur) = self.access_preempt_off(units) {
            if self.core.cost.fault_preempt_chance > 0.0 {
                self.fault_preempt(cur, units as u64);
            }
        }
    }

    /// [`Self::access`] with preemption disabled, as `spin_lock` disables it before it
    /// tries the lock and while it spins: interrupts still land, fault `preempt` does not
    /// count these units (so a spin cut into steps at any moments counts the same).
    /// Returns the running context (`None` outside every context: nothing is charged).
    #[inline(always)]
    fn access_preempt_off(&self, units: u32) -> Option<usize> {
        let core = &self.core;
        let cur = core.current.get();
        if cur == NO_CTX {
            return None;
        }
        let cost = &core.cost;
        let units = units as u64;
        let mut ns = units * cost.shared_access_ns;
        let left = &core.preempt_in_units[cur];
        let mut next = left.get();
        if next > units {
            left.set(next - units);
        } else {
            let chance = match Ctx::ALL[cur] {
                Ctx::Irq | Ctx::RxWork => cost.preempt_chance_irq_cpu,
                _ => cost.preempt_chance,
            };
            let mut rng = core.sched_rng.get();
            // 0: not drawn yet (the context's first access).
            if next == 0 {
                next = rng.trials_to_success(chance);
            }
            let mut units_left = units;
            // Bound: each pass consumes at least one of `units_left`, or ends.
            while next <= units_left {
                ns += rng.range(cost.preempt_min_ns, cost.preempt_max_ns);
                units_left -= next;
                next = rng.trials_to_success(chance);
            }
            left.set(next - units_left);
            core.sched_rng.set(rng);
        }
        self.delay(ns);
        Some(cur)
    }

    /// Fault `preempt`: on the access its countdown lands on, a preemptible context
    /// holding no spinlock (and not spinning for one) leaves its CPU for a while (it stays
    /// runnable: back on a CPU when one is free after that time).
    #[inline]
    fn fault_preempt(&self, cur: usize, units: u64) {
        // The countdown alone, inline: the draw and the landing are rare (a context that is
        // not preemptible keeps 0 and takes the slow path, which leaves at once).
        let left = &self.core.preempt_fault_in_units[cur];
        let next = left.get();
        if next > units {
            left.set(next - units);
            return;
        }
        self.fault_preempt_land(cur, units);
    }

    #[inline(never)]
    fn fault_preempt_land(&self, cur: usize, units: u64) {
        let core = &self.core;
        if !matches!(Ctx::ALL[cur], Ctx::Bh | Ctx::RxWork | Ctx::TxWork | Ctx::Cmd | Ctx::Flush) {
            return;
        }
        let left = &core.preempt_fault_in_units[cur];
        let mut rng = core.preempt_rng.get();
        let mut next = left.get();
        // 0: not drawn yet (the context's first access).
        if next == 0 {
            next = rng.trials_to_success(core.cost.fault_preempt_chance);
        }
        if next > units {
            left.set(next - units);
            core.preempt_rng.set(rng);
            return;
        }
        left.set(rng.trials_to_success(core.cost.fault_preempt_chance));
        // spin_lock disables preemption: a landing under a lock is not a preemption.
        if core.ctx.borrow()[cur].locks_held > 0 {
            core.preempt_rng.set(rng);
            return;
        }
        let (lo, hi) = core.cost.fault_preempt_ns;
        let off_cpu_ns = rng.range(lo, hi);
        core.preempt_rng.set(rng);
        core.preempts.set(core.preempts.get() + 1);
        core.horizon_ns.set(0);
        self.yield_now(Yield::Sleep(core.now() + off_cpu_ns));
    }

    /// Spin iterations (a pause, then one access to the lock word) that end before any
    /// other context's moment: nobody can release the lock in them, so they are counted
    /// in one step instead of run one by one. Stops before the iteration an interrupt
    /// lands on and just past the soft-lockup limit, so both are seen as in the loop.
    fn spin_ahead(&self, start_ns: u64) {
        let core = &self.core;
        let cur = core.current.get();
        if cur == NO_CTX {
            return;
        }
        let now = core.now();
        let horizon = core.horizon_ns.get();
        let iteration_ns = core.cost.spin_iteration_ns + core.cost.shared_access_ns;
        if iteration_ns == 0 || horizon <= now + iteration_ns {
            return;
        }
        let to_horizon = (horizon - now - 1) / iteration_ns;
        let to_lockup = (start_ns + SPIN_LIMIT_NS).saturating_sub(now) / iteration_ns + 1;
        let left = core.preempt_in_units[cur].get();
        let n = to_horizon.min(to_lockup).min(left.saturating_sub(1));
        if n > 0 {
            core.preempt_in_units[cur].set(left - n);
            core.now_ns.set(now + n * iteration_ns);
        }
    }

    /// An SDIO transfer: waits for the bus, then sleeps off CPU for `duration_ns`.
    fn bus(&self, duration_ns: u64) {
        let core = &self.core;
        let cur = core.current.get();
        if core.ctx.borrow()[cur].locks_held > 0 {
            self.bug("scheduling while atomic: SDIO transfer with a spinlock held");
        }
        let start = core.now().max(core.bus_free_at_ns.get());
        let end = start + duration_ns;
        core.bus_free_at_ns.set(end);
        core.counters.borrow_mut().bus_busy_ns += duration_ns;
        core.horizon_ns.set(0);
        self.yield_now(Yield::Sleep(end));
    }

    fn ctx_name(&self) -> &'static str {
        let cur = self.core.current.get();
        if cur == NO_CTX {
            "none"
        } else {
            Ctx::ALL[cur].name()
        }
    }

    fn call_path(&self) -> Vec<&'static str> {
        let cur = self.core.current.get();
        if cur == NO_CTX {
            return Vec::new();
        }
        self.core.call_stacks[cur].path()
    }
}

/// One word of shared memory, with what the run-time contract check needs: the field it
/// is (when the driver named it), the context of its last plain store, and the value each
/// context last loaded plainly (to see an update lost between that load and its store).
pub struct SimWord {
    value: Cell<i32>,
    field: &'static str,
    writer: Cell<usize>,
    loaded: [Cell<Option<i32>>; super::core::NCTX],
}

impl SimWord {
    pub fn get(&self) -> i32 {
        self.value.get()
    }
}

impl SimPlatform {
    /// The single-writer contract of a plain word (the simulator's `ASSERT_EXCLUSIVE_WRITER`)
    /// and a lost update seen directly; reported, and the run goes on.
    fn check_plain_store(&self, word: &SimWord, value: i32) {
        let core = &self.core;
        let cur = core.current.get();
        if cur == NO_CTX || word.field.is_empty() {
            return;
        }
        let before = word.writer.replace(cur);
        if before != NO_CTX && before != cur {
            core.contract_violation(
                word.field,
                format!(
                    "plain store from {} to a single-writer field last written by {}",
                    Ctx::ALL[cur].name(),
                    Ctx::ALL[before].name()
                ),
                Ctx::ALL[cur].name(),
                self.call_path(),
            );
        }
        self.check_lost_update(word, value, "");
    }

    /// A lost update seen directly: this context loaded the word, another wrote it, and
    /// now this context stores over that write (`kind`: "" for plain accesses, "atomic "
    /// for an `atomic_read` then `atomic_set`: each atomic, the pair not).
    fn check_lost_update(&self, word: &SimWord, value: i32, kind: &str) {
        let core = &self.core;
        let cur = core.current.get();
        if cur == NO_CTX {
            return;
        }
        if let Some(seen) = word.loaded[cur].take() {
            if seen != word.value.get() {
                let field = if word.field.is_empty() { "(an unnamed word)" } else { word.field };
                core.contract_violation(
                    field,
                    format!(
                        "lost update: {} {kind}loaded {seen}, another context wrote {} before its {kind}store of {value}",
                        Ctx::ALL[cur].name(),
                        word.value.get()
                    ),
                    Ctx::ALL[cur].name(),
                    self.call_path(),
                );
            }
        }
    }

    /// Remembers what this context loaded, for [`Self::check_lost_update`].
    fn note_load(&self, word: &SimWord, value: i32) {
        let cur = self.core.current.get();
        if cur != NO_CTX {
            word.loaded[cur].set(Some(value));
        }
    }

    /// An indivisible read-modify-write starts afresh: no earlier load pairs with a
    /// later store across it.
    fn forget_load(&self, word: &SimWord) {
        let cur = self.core.current.get();
        if cur != NO_CTX {
            word.loaded[cur].set(None);
        }
    }
}

impl SimPlatform {
    /// Each data frame the chip accepted is the next one the driver accepted from the
    /// stack, with the same length: nothing lost, reordered or cut on the way. Each one's
    /// wait in the driver (since `xmit` accepted it) goes into the histogram.
    fn check_tx_frames(&self) {
        let core = &self.core;
        let chip = core.chip();
        let mut expected = core.tx_accepted.borrow_mut();
        let now = core.now();
        for (i, &got) in chip.tx_data_lens().iter().enumerate() {
            match expected.pop_front() {
                Some((want, accepted_ns)) if want == got => {
                    core.counters.borrow_mut().tx_wait.record(now - accepted_ns);
                }
                want => {
                    let want = want.map_or("no frame".to_string(), |(w, _)| format!("a {w}-byte frame"));
                    drop((chip, expected));
                    core.fail(
                        FailureKind::TxLost,
                        format!("data frame {} of a transfer reached the chip with {got} bytes where the stack had handed down {want}", i + 1),
                    );
                    return;
                }
            }
        }
    }
}

impl Memory for SimPlatform {
    type Word = SimWord;

    fn new_word(&self, value: i32) -> SimWord {
        self.new_named_word(value, "")
    }
    fn new_named_word(&self, value: i32, field: &'static str) -> SimWord {
        SimWord {
            value: Cell::new(value),
            field,
            writer: Cell::new(NO_CTX),
            loaded: [const { Cell::new(None) }; super::core::NCTX],
        }
    }
    fn plain_load(&self, word: &SimWord) -> i32 {
        self.access(1);
        let v = word.value.get();
        self.note_load(word, v);
        v
    }
    fn plain_store(&self, word: &SimWord, value: i32) {
        self.access(1);
        self.check_plain_store(word, value);
        word.value.set(value)
    }
    fn atomic_load(&self, word: &SimWord, _order: Ordering) -> i32 {
        self.access(1);
        let v = word.value.get();
        self.note_load(word, v);
        v
    }
    fn atomic_store(&self, word: &SimWord, value: i32, _order: Ordering) {
        self.access(1);
        self.check_lost_update(word, value, "atomic ");
        word.value.set(value)
    }
    fn atomic_fetch_add(&self, word: &SimWord, delta: i32, _order: Ordering) -> i32 {
        self.access(2);
        self.forget_load(word);
        let before = word.value.get();
        word.value.set(before.wrapping_add(delta));
        before
    }
    fn atomic_swap(&self, word: &SimWord, value: i32, _order: Ordering) -> i32 {
        self.access(2);
        self.forget_load(word);
        word.value.replace(value)
    }
    fn spin_lock(&self, lock: &SimWord, id: LockId) {
        let core = &self.core;
        let start = core.now();
        let _ = self.access_preempt_off(1);
        while lock.value.get() != 0 {
            if core.now() - start > SPIN_LIMIT_NS {
                self.bug("soft lockup: spinning on a lock for 1 s");
            }
            self.spin_ahead(start);
            self.delay(core.cost.spin_iteration_ns);
            let _ = self.access_preempt_off(1);
        }
        lock.value.set(1);
        let li = lock_index(id);
        core.lock_since_ns[li].set(start);
        if core.current.get() != NO_CTX {
            core.ctx.borrow_mut()[core.current.get()].locks_held += 1;
        }
        core.counters.borrow_mut().lock_acquisitions[li] += 1;
        self.delay(core.cost.lock_pair_ns);
    }
    fn spin_unlock(&self, lock: &SimWord, id: LockId) {
        let core = &self.core;
        self.access(1);
        lock.value.set(0);
        let li = lock_index(id);
        core.counters.borrow_mut().lock_ns[li] += core.now() - core.lock_since_ns[li].get();
        if core.current.get() != NO_CTX {
            core.ctx.borrow_mut()[core.current.get()].locks_held -= 1;
        }
    }
}

impl Platform for SimPlatform {
    fn queue_work(&self, work: Work) -> bool {
        let i = match work {
            Work::SdioRx => Ctx::RxWork,
            Work::SdioTx => Ctx::TxWork,
        } as usize;
        self.core.activate(i, super::run::latency_of(&self.core.cost, i))
    }

    fn wake_bh(&self, reason: WakeReason) {
        let core = &self.core;
        {
            let mut c = core.counters.borrow_mut();
            c.bh_wakeups += 1;
            match (reason, Ctx::ALL[core.current.get().min(Ctx::Cmd as usize)]) {
                (WakeReason::Rx, _) => c.bh_wakeups_rx += 1,
                (WakeReason::Tx, Ctx::RxWork | Ctx::Irq) => c.bh_wakeups_tx_restart += 1,
                (WakeReason::Tx, _) => {}
            }
        }
        core.bh_woken.set(true);
        let mut ctx = core.ctx.borrow_mut();
        let bh = &mut ctx[Ctx::Bh as usize];
        if let State::Waiting(_) = bh.state() {
            bh.set_state(State::Sleeping(core.now() + core.cost.wake_ns));
            core.due_at(core.now() + core.cost.wake_ns);
        }
    }

    fn bh_wait(&self, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        self.wait_on(Ctx::Bh, &self.core.bh_woken, ready, timeout_ms)
    }

    fn wait_event(&self, wq: WaitQueue, ready: &dyn Fn() -> bool, timeout_ms: u32) -> bool {
        let (ctx, woken) = self.queue(wq);
        if wq == WaitQueue::BufsReleased {
            self.core.counters.borrow_mut().flush_waits += 1;
        } else {
            self.core.counters.borrow_mut().cmd_waits += 1;
        }
        self.wait_on(ctx, woken, ready, Some(timeout_ms))
    }

    fn wake_up(&self, wq: WaitQueue) {
        let core = &self.core;
        let (ctx, woken) = self.queue(wq);
        woken.set(true);
        let mut all = core.ctx.borrow_mut();
        let c = &mut all[ctx as usize];
        if let State::Waiting(_) = c.state() {
            c.set_state(State::Sleeping(core.now() + core.cost.wake_ns));
            core.due_at(core.now() + core.cost.wake_ns);
        }
    }

    fn sdio_read_ctrl(&self) -> u8 {
        self.bus(self.core.cost.cmd52_ns);
        self.core.counters.borrow_mut().ctrl_reads += 1;
        let core = &self.core;
        // Fault `stale-ctrl`: the last value again, the chip untouched (not acknowledged).
        if core.last_ctrl.get() != 0
            && core.fault_fires(&core.stale_ctrl_rng, core.cost.fault_stale_ctrl_chance, &core.stale_ctrls)
        {
            return core.last_ctrl.get();
        }
        let now = core.now();
        let ctrl = core.chip_mut().read_ctrl(now);
        if ctrl != 0 {
            core.last_ctrl.set(ctrl);
        }
        ctrl
    }

    fn sdio_read_data(&self, buf: &mut [u8]) {
        let cost = &self.core.cost;
        self.bus(cost.cmd53_overhead_ns + buf.len() as u64 * cost.sdio_ns_per_byte);
        let now = self.core.now();
        let msgs = self.core.chip_mut().read_data(now, buf);
        if msgs > 0 {
            let mut c = self.core.counters.borrow_mut();
            c.rx_batches += 1;
            c.rx_msgs += msgs as u64;
        }
    }

    fn sdio_write_data(&self, buf: &[u8]) {
        let cost = &self.core.cost;
        self.bus(cost.cmd53_overhead_ns + buf.len() as u64 * cost.sdio_ns_per_byte);
        let core = &self.core;
        let now = core.now();
        let data_before = core.chip().stats.tx_data_frames;
        core.chip_mut().receive_tx(now, buf);
        core.counters.borrow_mut().tx_transfers += 1;
        self.check_tx_frames();
        // A configuration change holds data: frames handed out before the lock may still
        // go (the lock is asynchronous), well within this grace; later ones broke it.
        let data_sent = core.chip().stats.tx_data_frames - data_before;
        if let Some(since) = core.tx_surely_locked_by_config.get() {
            if data_sent > 0 && now.saturating_sub(since) > TX_LOCK_GRACE_NS {
                core.fail(
                    FailureKind::Protocol,
                    format!(
                        "{data_sent} data frame(s) sent {} ms into a configuration change that holds TX (wsm_lock_tx)",
                        (now - since) / 1_000_000
                    ),
                );
            }
        }
        // Fault `tx-heavy`: frames left the driver's queue, so the stack's stopped queue
        // is started again (the driver's dequeue wakes mac80211's queues).
        if core.upload_stopped.get() && !core.upload_quiet.get() {
            core.restart_upload();
        }
        core.last_tx_write_ns.set(now);
        let wedged = core.chip().wedged;
        if let Some((_, why)) = wedged {
            core.fail(FailureKind::TxWedge, why.to_string());
        }
    }

    fn now_ns(&self) -> u64 {
        self.core.now()
    }

    fn cpu(&self, op: CpuOp) {
        let c = &self.core.cost;
        self.delay(match op {
            CpuOp::SkbAlloc => c.skb_alloc_ns,
            CpuOp::HandleRx => c.handle_rx_ns,
            CpuOp::TxBuild => c.tx_build_ns,
            CpuOp::IrqHandler => c.irq_handler_ns,
        });
    }

    fn warn(&self, warning: Warning) {
        let core = &self.core;
        core.counters.borrow_mut().warns += 1;
        let mut warns = core.warns.borrow_mut();
        if warns.len() < WARN_RECORDS_KEPT {
            warns.push(WarnRecord {
                time_ns: core.now(),
                context: self.ctx_name(),
                call_path: self.call_path(),
                warning,
            });
        }
    }

    fn event(&self, event: Event) {
        let core = &self.core;
        let mut c = core.counters.borrow_mut();
        match event {
            Event::ReleaseFailed { ret } => {
                c.release_failed += 1;
                drop(c);
                let mut probe = core.probe.borrow_mut();
                if probe.active() {
                    probe.release_rets.push(ret);
                }
            }
            Event::MissedInterrupt { hw_bufs_used } => {
                c.missed_irqs += 1;
                drop(c);
                core.fail(
                    FailureKind::MissedInterrupt,
                    format!("bes2600_bh: Missed interrupt? ({hw_bufs_used} frames outstanding): force close"),
                );
                core.stop.set(true);
            }
            Event::StaleToggleRetry => c.stale_toggle_retries += 1,
            Event::RxQueueFull => c.rx_queue_full += 1,
            Event::TxQueueFull => c.acks_dropped += 1,
            Event::BhStopped => {
                drop(c);
                core.probe.borrow_mut().bh_stopped += 1;
                core.fail(FailureKind::TxWedge, "BH stopped after an error: no more TX".into());
            }
            Event::TxPendingCountError { space } => {
                c.pending_count_errors += 1;
                drop(c);
                core.fail(
                    FailureKind::PendingCount,
                    format!(
                        "bes2600_bh_dec_pending_count: tx pending count error (space {space}) in {}",
                        self.ctx_name()
                    ),
                );
            }
            Event::CmdTimeout { id, sent } => {
                c.cmd_timeouts += 1;
                drop(c);
                core.fail(
                    FailureKind::CmdTimeout,
                    format!(
                        "wsm_cmd_send: command 0x{id:04X} timed out after 6 s ({})",
                        if sent { "sent, no confirm: -EBUSY" } else { "never sent: -ETIMEDOUT" }
                    ),
                );
            }
            Event::FlushTimeout { hw_bufs_used } => {
                c.flush_timeouts += 1;
                drop(c);
                core.fail(
                    FailureKind::FlushTimeout,
                    format!("wsm_flush_tx: hw_bufs_used={hw_bufs_used} after 10 s: force close"),
                );
                core.stop.set(true);
            }
            Event::LinkBreak { space, pending, hw_bufs_used } => {
                drop(c);
                core.fail(
                    FailureKind::LinkBreak,
                    format!(
                        "link break between lmac and host (timer, space {space}: wsm_tx_pending={pending}, hw_bufs_used={hw_bufs_used}): force close"
                    ),
                );
                core.stop.set(true);
            }
        }
    }

    fn mod_pending_timer(&self, space: usize, timeout_ms: u32) {
        let core = &self.core;
        core.counters.borrow_mut().pending_timer_arms += 1;
        core.pending_timer_due_ns[space].set(Some(core.now() + timeout_ms as u64 * 1_000_000));
    }

    fn del_pending_timer(&self, space: usize) {
        self.core.pending_timer_due_ns[space].set(None);
    }

    fn bug(&self, what: &'static str) -> ! {
        self.core.fail(FailureKind::Bug, format!("BUG in {}: {}", self.ctx_name(), what));
        self.core.stop.set(true);
        // Bound: a dead context is never resumed again.
        loop {
            self.yield_now(Yield::Dead);
        }
    }

    fn enter(&self, function: &'static str) {
        let cur = self.core.current.get();
        if cur != NO_CTX {
            self.core.call_stacks[cur].push(function);
        }
    }

    fn leave(&self) {
        let cur = self.core.current.get();
        if cur != NO_CTX {
            self.core.call_stacks[cur].pop();
        }
    }

    fn netif_rx(&self, len: u16) {
        let core = &self.core;
        {
            let mut c = core.counters.borrow_mut();
            c.rx_packets += 1;
            c.rx_bytes += len as u64;
        }
        if core.probe.borrow().active() {
            let mut probe = core.probe.borrow_mut();
            match len {
                crate::chip::PROBE_SMALL_FRAME_BYTES => probe.small_frames += 1,
                crate::chip::PROBE_LARGE_FRAME_BYTES => probe.large_frames += 1,
                _ => {}
            }
        }
        core.last_rx_progress_ns.set(core.now());
        let since = core.frames_since_ack.get() + 1;
        if since >= core.cost.ack_every_frames {
            core.frames_since_ack.set(0);
            core.acks_owed.set(core.acks_owed.get() + 1);
            core.activate(Ctx::NetTx as usize, core.cost.softirq_ns);
        } else {
            core.frames_since_ack.set(since);
        }
    }
}
