//! The simulator's shared core: virtual time, the per-context scheduling state, the chip,
//! the counters and the log. [`super::platform::SimPlatform`] reaches it from driver code;
//! [`super::run`] drives it.

use super::air::TcpAir;
use super::cost::CostModel;
use super::rng::Rng;
use crate::chip::Chip;
use crate::platform::{LockId, Warning};
use corosensei::Yielder;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// The host contexts, in scheduling-tie order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Irq = 0,
    RxWork = 1,
    TxWork = 2,
    Bh = 3,
    NetTx = 4,
    Cmd = 5,
    Flush = 6,
}

pub const NCTX: usize = 7;
pub const NO_CTX: usize = usize::MAX;

impl Ctx {
    pub const ALL: [Ctx; NCTX] = [Ctx::Irq, Ctx::RxWork, Ctx::TxWork, Ctx::Bh, Ctx::NetTx, Ctx::Cmd, Ctx::Flush];
    /// The names the driver's `context:` lines use.
    pub fn name(self) -> &'static str {
        match self {
            Ctx::Irq => "irq",
            Ctx::RxWork => "rx_work",
            Ctx::TxWork => "tx_work",
            Ctx::Bh => "bh",
            Ctx::NetTx => "net_tx",
            Ctx::Cmd => "cmd",
            Ctx::Flush => "flush",
        }
    }
}

/// What a context hands back to the scheduler when it suspends.
#[derive(Clone, Copy, Debug)]
pub enum Yield {
    /// Still on its CPU; resume after this many ns.
    Delay(u64),
    /// Off CPU (an SDIO transfer) until this time; then it needs a CPU again.
    Sleep(u64),
    /// Off CPU until woken (or until the deadline).
    Wait(Option<u64>),
    /// The work function returned.
    Done,
    /// The context will never run again (the BH left its loop, or a BUG).
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    /// Queued; wants a CPU at this time.
    Activating(u64),
    /// Wants a CPU now; waits in the run queue.
    Runnable,
    /// On a CPU; resumes at this time.
    OnCpu(u64),
    /// Off CPU until this time.
    Sleeping(u64),
    /// Waiting for a wake-up, with an optional deadline.
    Waiting(Option<u64>),
    Dead,
}

#[derive(Clone, Copy, Debug)]
pub struct CtxState {
    /// Set only through `set_state`, which keeps `due_ns` with it.
    state: State,
    /// When the context wants to run next (`u64::MAX`: not before something wakes it):
    /// what the scheduler scans at every step, kept beside the state.
    due_ns: u64,
    /// Queued and not yet started (`queue_work` returns false then).
    pub queued: bool,
    /// Between start and `Done`.
    pub running: bool,
    /// The next CPU grant starts a new run (counts a dispatch).
    pub starting: bool,
    pub on_cpu_since_ns: u64,
    pub locks_held: u32,
}

impl CtxState {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn due_ns(&self) -> u64 {
        self.due_ns
    }

    pub fn set_state(&mut self, state: State) {
        self.state = state;
        self.due_ns = match state {
            State::Activating(t) | State::OnCpu(t) | State::Sleeping(t) | State::Waiting(Some(t)) => t,
            State::Idle | State::Runnable | State::Waiting(None) | State::Dead => u64::MAX,
        };
    }

    fn new() -> Self {
        CtxState {
            state: State::Idle,
            due_ns: u64::MAX,
            queued: false,
            running: false,
            starting: false,
            on_cpu_since_ns: 0,
            locks_held: 0,
        }
    }
}

/// The driver functions a context is in (`Platform::enter` / `leave`), for the call path
/// of a report: a fixed array, not a growing list, since every driver call goes through it.
/// Deeper than `CALL_DEPTH_KEPT` frames, the depth is still counted and the path shows the
/// outer ones.
pub struct CallStack {
    frames: [Cell<&'static str>; CALL_DEPTH_KEPT],
    depth: Cell<usize>,
}

pub const CALL_DEPTH_KEPT: usize = 32;

impl Default for CallStack {
    fn default() -> Self {
        CallStack { frames: [const { Cell::new("") }; CALL_DEPTH_KEPT], depth: Cell::new(0) }
    }
}

impl CallStack {
    pub fn push(&self, function: &'static str) {
        let d = self.depth.get();
        if d < CALL_DEPTH_KEPT {
            self.frames[d].set(function);
        }
        self.depth.set(d + 1);
    }

    pub fn pop(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// Outermost first.
    pub fn path(&self) -> Vec<&'static str> {
        self.frames[..self.depth.get().min(CALL_DEPTH_KEPT)].iter().map(Cell::get).collect()
    }
}

/// Cumulative counters; a stage's figures are the difference of two snapshots.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub irqs: u64,
    pub ctrl_reads: u64,
    pub rx_batches: u64,
    pub tx_transfers: u64,
    pub acks_queued: u64,
    pub acks_dropped: u64,
    /// Frames `xmit` refused (returned false for), as the stack saw it.
    pub tx_refused: u64,
    pub dispatches: [u64; NCTX],
    pub cpu_ns: [u64; NCTX],
    pub lock_acquisitions: [u64; 4],
    pub lock_ns: [u64; 4],
    pub bus_busy_ns: u64,
    pub bh_wakeups: u64,
    /// Wake-ups for RX (`bh_rx` 0 -> 1).
    pub bh_wakeups_rx: u64,
    /// Wake-ups for TX made from RX context (a release returned 1: restart TX).
    pub bh_wakeups_tx_restart: u64,
    pub rx_msgs: u64,
    pub bh_starts: u64,
    pub warns: u64,
    pub missed_irqs: u64,
    pub release_failed: u64,
    /// "tx pending count error" lines (a decrement found the count at zero).
    pub pending_count_errors: u64,
    /// Run-time contract reports.
    pub contract_violations: u64,
    /// Monitor-timer expiries and re-arms (coverage of the pending-count machinery).
    pub pending_timer_arms: u64,
    /// Configuration changes that held TX (`wsm_lock_tx_async` .. `wsm_unlock_tx`).
    pub tx_lock_periods: u64,
    /// Commands whose sender waited for the confirm, and those that timed out.
    pub cmd_waits: u64,
    pub cmd_timeouts: u64,
    /// mac80211 flushes, those that had to wait for buffers, and those that timed out.
    pub flushes: u64,
    pub flush_waits: u64,
    pub flush_timeouts: u64,
    /// Re-reads of a stale control byte.
    pub stale_toggle_retries: u64,
    pub rx_queue_full: u64,
    pub frames_arrived: u64,
    pub frames_dropped: u64,
    pub bytes_arrived: u64,
    pub confirms: u64,
    pub multi_confirms: u64,
    pub tx_frames: u64,
    /// Data frames' waits in the driver, `xmit` to the SDIO write.
    pub tx_wait: super::latency::WaitHist,
}

pub fn lock_index(id: LockId) -> usize {
    match id {
        LockId::RxQueue => 0,
        LockId::TxBuffer => 1,
        LockId::TxQueue => 2,
        LockId::Cmd => 3,
    }
}

/// One WARN, as the kernel log would show it.
#[derive(Clone, Debug)]
pub struct WarnRecord {
    pub time_ns: u64,
    pub context: &'static str,
    pub call_path: Vec<&'static str>,
    pub warning: Warning,
}

/// What ends a run as failed besides WARNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// TX can no longer make progress (firmware assert, BH stopped, frames stuck).
    TxWedge,
    /// No RX progress for `link_dead_after_ns` while traffic was offered.
    LinkDead,
    /// A `BUG()` fired.
    Bug,
    /// "tx pending count error": the pending count went wrong (a lost update).
    PendingCount,
    /// "link break between lmac and host": the monitor timer fired with frames pending,
    /// and the driver force-closed.
    LinkBreak,
    /// The firmware saw a breach of the host protocol (a data frame in the buffer kept for
    /// commands).
    Protocol,
    /// A field's contract broken at run time (a second writer context of a single-writer
    /// field, or an update lost between a load and its store); the run goes on.
    Contract,
    /// A command's sender gave up waiting for its confirm (`wsm_cmd_send`, 6 s).
    CmdTimeout,
    /// A flush waited 10 s for the TX buffers and the driver force-closed.
    FlushTimeout,
    /// The BH waited 5 s with frames outstanding and no interrupt, and force-closed.
    MissedInterrupt,
    /// Frames waited in the driver with input buffers free while every driver context
    /// slept and the chip had nothing to say: only an unrelated event would send them
    /// (a lost wake-up, such as a TX restart nobody asked for).
    LostWakeup,
    /// Data frames the chip handed over never reached the stack and the driver did not
    /// count them as dropped.
    RxLost,
    /// A flush said every TX buffer was back while the chip still held frames in its
    /// input buffers (mac80211 then scans or changes channel with frames in flight).
    FlushIncomplete,
    /// At rest (nothing in the chip, nothing being handled) the driver still counts TX
    /// buffers in use: a leaked or lost update of `hw_bufs_used` or `hw_bufs_used_vif`.
    BufferCount,
    /// A data frame reached the chip with other bytes than the stack handed down (in the
    /// order the stack sent them), or a command the driver reported done never reached it.
    TxLost,
    /// After the ramp, `stop` (the module's exit) did not make the BH leave its loop.
    StopTimeout,
}

/// One run-time contract report.
#[derive(Clone, Debug)]
pub struct ContractRecord {
    pub time_ns: u64,
    /// `Owner.field`, as the static audit names it.
    pub field: &'static str,
    pub context: &'static str,
    pub what: String,
    pub call_path: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub time_ns: u64,
    pub kind: FailureKind,
    pub detail: String,
}

/// Most WARN records kept (the count goes on).
pub const WARN_RECORDS_KEPT: usize = 64;

/// The simulator's chip: the driver's one chip on the seeded TCP air. 512 waiting messages
/// hold a full RX buffer of the smallest frames (about 250) and the confirms besides.
pub type SimChip = Chip<TcpAir, 512>;

pub struct SimCore {
    pub cost: CostModel,
    pub now_ns: Cell<u64>,
    /// A context may run on without switching while its time stays below this.
    pub horizon_ns: Cell<u64>,
    pub current: Cell<usize>,
    pub sched_rng: Cell<Rng>,
    /// Per context: shared-access units left up to and including the next one an
    /// interrupt lands on (drawn from `sched_rng`, geometric with the context's chance).
    pub preempt_in_units: [Cell<u64>; NCTX],
    /// The `stall` fault's own stream: switching it on changes nothing else's draws.
    pub stall_rng: Cell<Rng>,
    /// How often the `stall` fault fired.
    pub stalls: Cell<u64>,
    /// The `stale-ctrl` and `spurious-irq` faults' own streams, and how often each fired.
    pub stale_ctrl_rng: Cell<Rng>,
    pub stale_ctrls: Cell<u64>,
    pub spurious_irq_rng: Cell<Rng>,
    pub spurious_irqs: Cell<u64>,
    /// The last control byte the chip gave (what a stale read returns).
    pub last_ctrl: Cell<u8>,
    /// Since when TX has been starved (frames waiting, buffers free, nobody awake).
    pub starved_since_ns: Cell<Option<u64>>,
    /// Fault `tx-heavy`: the upload's queue is stopped (a frame was refused), and how many
    /// upload frames the stack handed down.
    pub upload_stopped: Cell<bool>,
    /// Fault `tx-heavy`: the upload waits (its application is between two writes), inside
    /// the RX sender's pause: the stack hands down nothing at all then.
    pub upload_quiet: Cell<bool>,
    /// The interface is down (after the ramp): the stack hands down nothing, not even the
    /// `tx-heavy` upload, and no command comes once no configuration change holds TX.
    pub link_down: Cell<bool>,
    pub upload_frames: Cell<u64>,
    /// The lengths of the data frames the driver accepted (`xmit` returned true), oldest
    /// first, until the chip receives them: TX must deliver each as it was handed down.
    /// (Each with the virtual time `xmit` accepted it.)
    pub tx_accepted: RefCell<VecDeque<(u16, u64)>>,
    /// Fault `tx-heavy`: the RX sender is paused (an upload-only spell).
    pub rx_paused: Cell<bool>,
    /// Fault `cmd-burst`: its own stream, and how many bursts it sent.
    pub cmd_burst_rng: Cell<Rng>,
    pub cmd_bursts: Cell<u64>,
    /// Fault `preempt`: its own stream, per context the shared-access units left up to
    /// and including the one it lands on, and how often a context was preempted.
    pub preempt_rng: Cell<Rng>,
    pub preempt_fault_in_units: [Cell<u64>; NCTX],
    pub preempts: Cell<u64>,
    /// Since when a configuration change may hold TX (between the locking command and the
    /// next one): set before `wsm_lock_tx_async` is called, cleared after `wsm_unlock_tx`
    /// returned.
    pub tx_locked_by_config: Cell<Option<u64>>,
    /// The same, narrowed to when the driver surely holds it: set once `wsm_lock_tx_async`
    /// returned, cleared before `wsm_unlock_tx` is called. A context preempted inside
    /// either call holds or frees `tx_lock` some time away from the runner's own mark;
    /// the wide mark above is for what may be held, this one for what must be.
    pub tx_surely_locked_by_config: Cell<Option<u64>>,
    pub yielders: [Cell<*const Yielder<(), Yield>>; NCTX],
    pub ctx: RefCell<[CtxState; NCTX]>,
    pub run_queue: RefCell<VecDeque<usize>>,
    pub cpus_busy: Cell<usize>,
    pub bus_free_at_ns: Cell<u64>,
    /// Reached through `chip()` and `chip_mut()` only: the second forgets the chip's next
    /// moment, which the scheduler otherwise asks for at every step.
    chip: RefCell<SimChip>,
    chip_next_ns: Cell<Option<u64>>,
    pub counters: RefCell<Counters>,
    pub lock_since_ns: [Cell<u64>; 4],
    pub call_stacks: [CallStack; NCTX],
    pub warns: RefCell<Vec<WarnRecord>>,
    /// The first run-time contract reports (the count goes on in `counters`).
    pub contract_records: RefCell<Vec<ContractRecord>>,
    pub failures: RefCell<Vec<Failure>>,
    pub acks_owed: Cell<u32>,
    pub frames_since_ack: Cell<u32>,
    pub last_rx_progress_ns: Cell<u64>,
    pub last_tx_write_ns: Cell<u64>,
    pub stop: Cell<bool>,
    /// Runs of the command context so far (which ones lock TX).
    pub cmd_runs: Cell<u64>,
    /// Set by every BH wake-up, cleared when the BH prepares to wait (`prepare_to_wait`):
    /// a wake-up between its condition check and its sleep is not lost.
    pub bh_woken: Cell<bool>,
    /// When each sequence space's TX-pending monitor timer fires (`None`: disarmed).
    pub pending_timer_due_ns: [Cell<Option<u64>>; 2],
    /// The same as `bh_woken` for the command sender's and the flush's wait queues.
    pub cmd_woken: Cell<bool>,
    pub flush_woken: Cell<bool>,
    /// The error-path probe's records, from the injection on.
    pub probe: RefCell<super::probe::ProbeLog>,
}

impl SimCore {
    /// Draws from a fault's own stream: switching one fault on changes no other draw.
    pub fn fault_fires(&self, rng: &Cell<Rng>, chance: f64, fired: &Cell<u64>) -> bool {
        if chance <= 0.0 {
            return false;
        }
        let mut r = rng.get();
        let hit = r.chance(chance);
        rng.set(r);
        if hit {
            fired.set(fired.get() + 1);
        }
        hit
    }

    pub fn new(cost: CostModel, seed: u64) -> Self {
        SimCore {
            chip: RefCell::new(Chip::new(cost.chip, TcpAir::new(&cost, seed), 0)),
            chip_next_ns: Cell::new(None),
            cost,
            now_ns: Cell::new(0),
            horizon_ns: Cell::new(0),
            current: Cell::new(NO_CTX),
            sched_rng: Cell::new(Rng::new(seed, 2)),
            preempt_in_units: [const { Cell::new(0) }; NCTX],
            stall_rng: Cell::new(Rng::new(seed, 7)),
            stalls: Cell::new(0),
            stale_ctrl_rng: Cell::new(Rng::new(seed, 11)),
            stale_ctrls: Cell::new(0),
            spurious_irq_rng: Cell::new(Rng::new(seed, 13)),
            spurious_irqs: Cell::new(0),
            last_ctrl: Cell::new(0),
            starved_since_ns: Cell::new(None),
            upload_stopped: Cell::new(false),
            upload_quiet: Cell::new(false),
            link_down: Cell::new(false),
            upload_frames: Cell::new(0),
            tx_accepted: RefCell::new(VecDeque::new()),
            rx_paused: Cell::new(false),
            cmd_burst_rng: Cell::new(Rng::new(seed, 17)),
            preempt_rng: Cell::new(Rng::new(seed, 19)),
            preempt_fault_in_units: [const { Cell::new(0) }; NCTX],
            preempts: Cell::new(0),
            cmd_bursts: Cell::new(0),
            tx_locked_by_config: Cell::new(None),
            tx_surely_locked_by_config: Cell::new(None),
            yielders: std::array::from_fn(|_| Cell::new(std::ptr::null())),
            ctx: RefCell::new([CtxState::new(); NCTX]),
            run_queue: RefCell::new(VecDeque::new()),
            cpus_busy: Cell::new(0),
            bus_free_at_ns: Cell::new(0),
            counters: RefCell::new(Counters::default()),
            lock_since_ns: std::array::from_fn(|_| Cell::new(0)),
            call_stacks: std::array::from_fn(|_| CallStack::default()),
            warns: RefCell::new(Vec::new()),
            contract_records: RefCell::new(Vec::new()),
            failures: RefCell::new(Vec::new()),
            acks_owed: Cell::new(0),
            frames_since_ack: Cell::new(0),
            last_rx_progress_ns: Cell::new(0),
            last_tx_write_ns: Cell::new(0),
            stop: Cell::new(false),
            cmd_runs: Cell::new(0),
            bh_woken: Cell::new(false),
            pending_timer_due_ns: [Cell::new(None), Cell::new(None)],
            cmd_woken: Cell::new(false),
            flush_woken: Cell::new(false),
            probe: RefCell::new(super::probe::ProbeLog::default()),
        }
    }

    pub fn now(&self) -> u64 {
        self.now_ns.get()
    }

    pub fn chip(&self) -> std::cell::Ref<'_, SimChip> {
        self.chip.borrow()
    }

    /// The chip, to change: its next moment is asked for again afterwards.
    pub fn chip_mut(&self) -> std::cell::RefMut<'_, SimChip> {
        self.chip_next_ns.set(None);
        self.chip.borrow_mut()
    }

    /// When the chip next needs the scheduler (`Chip::next_event_ns`, a function of the
    /// chip's state alone): kept until `chip_mut` is next called.
    #[inline]
    pub fn chip_next_event_ns(&self) -> u64 {
        if let Some(t) = self.chip_next_ns.get() {
            return t;
        }
        let t = self.chip.borrow().next_event_ns();
        self.chip_next_ns.set(Some(t));
        t
    }

    /// Something becomes due at `t_ns`: the running context may go on without switching
    /// only while its time stays below it (a switch only where an event is due keeps the
    /// same order of events as switching at every step, at a fraction of the cost).
    pub fn due_at(&self, t_ns: u64) {
        self.horizon_ns.set(self.horizon_ns.get().min(t_ns));
    }

    /// Queues context `i` to run after `latency_ns` (`queue_work` semantics: false when
    /// it is already queued; a running item runs once more after it finishes).
    pub fn activate(&self, i: usize, latency_ns: u64) -> bool {
        let mut ctx = self.ctx.borrow_mut();
        let c = &mut ctx[i];
        if c.queued || c.state() == State::Dead {
            return false;
        }
        c.queued = true;
        if !c.running && c.state() == State::Idle {
            // Fault `stall`: a woken work item or the BH starts late (the interrupt thread
            // and the stack's own contexts are not stalled).
            let mut stall_ns = 0;
            let stallable = matches!(Ctx::ALL[i], Ctx::RxWork | Ctx::TxWork | Ctx::Bh);
            if self.cost.fault_stall_chance > 0.0 && stallable {
                let mut rng = self.stall_rng.get();
                if rng.chance(self.cost.fault_stall_chance) {
                    let (lo, hi) = self.cost.fault_stall_ns;
                    stall_ns = rng.range(lo, hi);
                    self.stalls.set(self.stalls.get() + 1);
                }
                self.stall_rng.set(rng);
            }
            c.set_state(State::Activating(self.now() + latency_ns + stall_ns));
            self.due_at(self.now() + latency_ns + stall_ns);
            c.starting = true;
        }
        true
    }

    /// Fault `tx-heavy`: the stack's stopped upload queue starts again (the driver's
    /// dequeue wakes mac80211's queues, or the upload's quiet spell ended).
    pub fn restart_upload(&self) {
        self.upload_stopped.set(false);
        self.activate(Ctx::NetTx as usize, self.cost.softirq_ns);
    }

    /// Records a failure once per kind.
    /// A run-time contract report: kept (the first few), counted, and the run's first
    /// `Contract` failure; the run goes on, as KCSAN's do.
    pub fn contract_violation(
        &self,
        field: &'static str,
        what: String,
        context: &'static str,
        call_path: Vec<&'static str>,
    ) {
        self.counters.borrow_mut().contract_violations += 1;
        let mut recs = self.contract_records.borrow_mut();
        if recs.len() < WARN_RECORDS_KEPT {
            recs.push(ContractRecord {
                time_ns: self.now(),
                field,
                context,
                what: what.clone(),
                call_path: call_path.clone(),
            });
        }
        drop(recs);
        self.fail(
            FailureKind::Contract,
            format!("{field}: {what} (context {context}; call path {})", call_path.join(" -> ")),
        );
    }

    pub fn fail(&self, kind: FailureKind, detail: String) {
        let mut f = self.failures.borrow_mut();
        if f.iter().all(|x| x.kind != kind) {
            f.push(Failure { time_ns: self.now(), kind, detail });
        }
    }

    pub fn snapshot(&self) -> Counters {
        let mut c = *self.counters.borrow();
        let chip = self.chip.borrow().stats;
        c.frames_arrived = chip.frames_arrived;
        c.frames_dropped = chip.frames_dropped;
        c.bytes_arrived = chip.bytes_arrived;
        c.confirms = chip.confirms_sent;
        c.multi_confirms = chip.multi_confirms_sent;
        c.tx_frames = chip.tx_frames;
        // CPU time of contexts on a CPU right now, up to now.
        let now = self.now();
        for (i, s) in self.ctx.borrow().iter().enumerate() {
            if matches!(s.state(), State::OnCpu(_)) {
                c.cpu_ns[i] += now - s.on_cpu_since_ns;
            }
        }
        c
    }
}
