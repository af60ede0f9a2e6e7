//! The kernel entry, built only by the kernel lab (rustc sees `CONFIG_RUST` from the
//! kernel's `rustc_cfg`; cargo never compiles this file): the `bes2600` module, a platform
//! layer on the kernel crate's abstractions, and a stress run of the driver core against
//! the driver's chip ([`crate::chip`]) on a fixed-interval air.
//!
//! The platform is written as Rust-for-Linux drivers are: the device and everything its
//! contexts share live in one pinned [`KDevice`] in an [`Arc`] (no static), its locks are
//! `kernel::sync::SpinLock`s (the chip inside the SDIO bus lock), its wait queues
//! `CondVar`s, its work items `kernel::workqueue::Work` on `system_highpri`, each queued
//! item and each kthread holding a reference; its words are the kernel's `Atomic<i32>`, its
//! clock `Instant<Monotonic>`, its sleeps `kernel::time::delay`. Raw bindings remain where
//! the kernel crate has no abstraction (kthreads, `flush_work`), each with its `SAFETY:`.
//!
//! Loading with `stress_ms=N` runs the contexts the driver has on a board for N ms of
//! offered RX traffic: `irq` (a kthread polling the chip's interrupt line, as the MMC
//! core's SDIO IRQ thread does), `bh` (a kthread running `bh_loop`), `rx_work`/`tx_work`
//! (work items on `system_highpri_wq`), `net_tx` (a kthread sending the TCP ACKs the
//! received frames owe) and `cmd` (the loading task sends a READ_MIB every second). It then
//! stops them, prints one `bes2600: result` line of counters and a verdict, and stays
//! loaded so that `/sys/module/bes2600/srcversion` can be read. Without `stress_ms` it
//! only loads.
//!
//! Plain accesses are relaxed loads and stores of `Atomic<i32>` (`READ_ONCE`/`WRITE_ONCE`,
//! what a C `int` access compiles to), so a read-modify-write of a plain word is two
//! accesses and can lose an update, without undefined behaviour. Like KCSAN's delay
//! injection, `stall_every=N stall_us=D` stalls one plain load in N for D microseconds
//! after the load, which widens every load-to-store window so races show within seconds.
//!
//! The single-writer contract is checked at run time, as KCSAN's `ASSERT_EXCLUSIVE_WRITER`
//! checks it: every plain word remembers the context that last stored to it plainly, and a
//! plain store from another context is reported (`bes2600: contract: FIELD: ...`, with the
//! field and context names of the static audit) and fails the verdict, whether or not an
//! update was lost this time. So a race needs no luck to show.
//!
//! On a kernel with `CONFIG_KCSAN` (the lab's KCSAN flavour) the same contracts also become
//! KCSAN checks on the driver's own accesses, whatever rustc instruments (it instruments
//! nothing): a store to a single-writer field is `ASSERT_EXCLUSIVE_WRITER` plus a marked
//! write, a load of it a marked read (the contract lets readers anywhere see a stale value,
//! as `READ_ONCE` does). KCSAN then reports `BUG: KCSAN: assert: race` when another context
//! writes the field while one asserts it is the only writer. The module prints each named
//! field's address once (`bes2600: kcsan: field NAME at ADDR`), and every context runs
//! under an entry function named after it (`sdio_rx_work_fn`, `bh_thread`, `cmd_context`,
//! ...), so `bench lab run` turns KCSAN's addresses and stacks back into field and context
//! names.

use crate::chip::{Chip, ChipConfig, FixedAir};
use crate::platform::{CpuOp, Event, LockId, Memory, Ordering, Platform, WaitQueue, WakeReason, Warning, Work};
use crate::Bes2600;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering as O};
use kernel::bindings;
use kernel::ffi::{c_int, c_void};
use kernel::init::InPlaceInit;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};
use kernel::sync::lock::Guard;
use kernel::sync::{new_spinlock, Arc, ArcBorrow, CondVar, SpinLock};
use kernel::task::Task;
use kernel::time::{delay, msecs_to_jiffies, Delta, Instant, Monotonic};
use kernel::workqueue::{self, WorkItem};

/// modpost emits a srcversion for modules with a `version` entry (Rust's `module!` has
/// no version key). `bench build` writes the package version here (this file is not the
/// crate root, so srcversion does not change with it): `modinfo -F version` names the
/// package.
#[link_section = ".modinfo"]
#[used(compiler)]
static MODINFO_VERSION: [u8; 14] = *b"version=0.1.0\0";

/// Counters of one stress run (statistics only: relaxed atomics).
#[derive(Default)]
pub(crate) struct Counters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub acks_owed: AtomicU64,
    pub acks_sent: AtomicU64,
    pub irqs: AtomicU64,
    /// Handler runs for an interrupt the card still held (level-triggered).
    pub irq_reruns: AtomicU64,
    pub rx_work_runs: AtomicU64,
    pub tx_work_runs: AtomicU64,
    pub warns: AtomicU64,
    pub underflows: AtomicU64,
    pub seq_mismatches: AtomicU64,
    pub release_failed: AtomicU64,
    pub missed_irqs: AtomicU64,
    pub bh_stopped: AtomicU64,
    pub stalls: AtomicU64,
    pub pending_count_errors: AtomicU64,
    pub link_breaks: AtomicU64,
    pub contract_violations: AtomicU64,
    pub cmd_timeouts: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_timeouts: AtomicU64,
    plain_loads: AtomicU64,
}

fn bump(c: &AtomicU64) -> u64 {
    c.fetch_add(1, O::Relaxed)
}

/// The contexts the run-time contract check tells apart (0: none, the loading task).
const CTX_NONE: u8 = 0;
const CTX_IRQ: u8 = 1;
const CTX_BH: u8 = 2;
const CTX_RX_WORK: u8 = 3;
const CTX_TX_WORK: u8 = 4;
const CTX_NET_TX: u8 = 5;
const CTX_CMD: u8 = 6;
const CTX_FLUSH: u8 = 7;

fn ctx_name(c: u8) -> &'static str {
    match c {
        CTX_IRQ => "irq",
        CTX_BH => "bh",
        CTX_RX_WORK => "rx_work",
        CTX_TX_WORK => "tx_work",
        CTX_NET_TX => "net_tx",
        CTX_CMD => "cmd",
        CTX_FLUSH => "flush",
        _ => "probe",
    }
}

/// The driver's contracts as KCSAN checks (`include/linux/kcsan-checks.h`), on a kernel
/// built with `CONFIG_KCSAN`; nothing otherwise.
mod kcsan {
    use kernel::ffi::{c_int, c_void};

    const WRITE: c_int = 1 << 0;
    const ATOMIC: c_int = 1 << 2;
    const ASSERT: c_int = 1 << 3;
    pub(super) const ON: bool = cfg!(CONFIG_KCSAN);

    fn check(ptr: *const c_void, access_type: c_int) {
        #[cfg(CONFIG_KCSAN)]
        {
            extern "C" {
                /// Exported by `kernel/kcsan/core.c`.
                fn __kcsan_check_access(ptr: *const c_void, size: usize, access_type: c_int);
            }
            // SAFETY: KCSAN only reads the address and size to watch them; `ptr` is a live
            // word of the device.
            unsafe { __kcsan_check_access(ptr, 4, access_type) }
        }
        let _ = (ptr, access_type);
    }
    /// `ASSERT_EXCLUSIVE_WRITER(*ptr)`: no other context writes it now.
    pub(super) fn assert_exclusive_writer(ptr: *const c_void) {
        check(ptr, ASSERT)
    }
    /// `WRITE_ONCE`.
    pub(super) fn marked_write(ptr: *const c_void) {
        check(ptr, ATOMIC | WRITE)
    }
    /// `READ_ONCE`.
    pub(super) fn marked_read(ptr: *const c_void) {
        check(ptr, ATOMIC)
    }
}

/// The kernel's chip: full-size frames at a fixed interval; 64 waiting messages hold a
/// full RX buffer (13 frames) and the confirms besides.
type KChip = Chip<FixedAir, 64>;

/// The simulator's chip figures, with a bound on the arrivals one call processes: a long
/// host stall must not pin the caller with the bus lock held.
const KCHIP_CONFIG: ChipConfig = ChipConfig { max_arrivals_per_advance: 4096, ..ChipConfig::DEFAULT };

/// A C `int`: the value (the kernel's `Atomic<i32>`, whose relaxed load and store are
/// `READ_ONCE`/`WRITE_ONCE`), the field it is (`Owner.field`, empty when unnamed), and the
/// context of the last plain store (for the contract check).
pub(crate) struct KWord {
    v: Atomic<i32>,
    field: &'static str,
    writer: AtomicU8,
}

impl KWord {
    fn addr(&self) -> *const c_void {
        (&self.v as *const Atomic<i32>).cast()
    }
}

/// One wait queue of the C driver (`wait_event_timeout` / `wake_up`): a condition
/// variable with the spinlock its waiters check their condition under.
#[pin_data]
struct WaitPoint {
    #[pin]
    lock: SpinLock<()>,
    #[pin]
    cv: CondVar,
}

impl WaitPoint {
    fn new(name: &'static CStr) -> impl PinInit<Self> {
        pin_init!(WaitPoint { lock <- new_spinlock!((), "bes2600_wait_lock"), cv <- CondVar::new(name, kernel::static_lock_class!()) })
    }

    /// `wait_event_timeout`: true once `ready()` holds, false at the deadline (`None`: no
    /// deadline). `ready` runs with this queue's lock held, so a waker that takes the lock
    /// before notifying cannot slip between the check and the sleep.
    fn wait(&self, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        let deadline = timeout_ms.map(|ms| Instant::<Monotonic>::now() + Delta::from_millis(ms as i64));
        let mut guard = self.lock.lock();
        // Bound: every pass either returns or sleeps until a notification, a signal or the
        // deadline, which the next pass checks.
        loop {
            if ready() {
                return true;
            }
            match deadline {
                None => {
                    let _ = self.cv.wait_interruptible(&mut guard);
                }
                Some(d) => {
                    let left_ms = (d - Instant::<Monotonic>::now()).as_millis();
                    if left_ms <= 0 {
                        return ready();
                    }
                    let _ = self.cv.wait_interruptible_timeout(&mut guard, msecs_to_jiffies(left_ms as u32));
                }
            }
        }
    }

    /// `wake_up`: the lock orders this after a waiter's check-then-sleep.
    fn wake(&self) {
        drop(self.lock.lock());
        self.cv.notify_all();
    }
}

/// The driver's contexts, as the run-time contract check tells them apart: which task runs
/// which context (kthreads for their whole life, a kworker for one run of a work item).
/// More slots than tasks that can run driver code at once.
struct ContextTable {
    tasks: [AtomicPtr<bindings::task_struct>; 8],
    contexts: [AtomicU8; 8],
}

impl ContextTable {
    const fn new() -> Self {
        ContextTable {
            tasks: [const { AtomicPtr::new(core::ptr::null_mut()) }; 8],
            contexts: [const { AtomicU8::new(CTX_NONE) }; 8],
        }
    }
    fn enter(&self, ctx: u8) {
        let me = Task::current_raw();
        for (task, c) in self.tasks.iter().zip(&self.contexts) {
            if task.load(O::Acquire) == me {
                c.store(ctx, O::Release);
                return;
            }
        }
        for (task, c) in self.tasks.iter().zip(&self.contexts) {
            if task.compare_exchange(core::ptr::null_mut(), me, O::AcqRel, O::Acquire).is_ok() {
                c.store(ctx, O::Release);
                return;
            }
        }
    }
    fn leave(&self) {
        let me = Task::current_raw();
        for (task, c) in self.tasks.iter().zip(&self.contexts) {
            if task.load(O::Acquire) == me {
                c.store(CTX_NONE, O::Release);
                task.store(core::ptr::null_mut(), O::Release);
            }
        }
    }
    fn current(&self) -> u8 {
        let me = Task::current_raw();
        self.tasks
            .iter()
            .zip(&self.contexts)
            .find(|(t, _)| t.load(O::Acquire) == me)
            .map_or(CTX_NONE, |(_, c)| c.load(O::Acquire))
    }
}

/// The kernel platform: what the driver core reaches through `&self`. Its locks, wait
/// queues and work items are pinned in the [`KDevice`] around it.
///
/// # Invariants
/// A `KPlat` only exists as `KDevice.dev.plat` of a `KDevice` in an [`Arc`]
/// ([`KDevice::new`] is the only constructor), so [`KPlat::device`] may go from the
/// platform to its device.
pub(crate) struct KPlat {
    /// The run's start: `now_ns` counts from it.
    epoch: Instant<Monotonic>,
    accepting_work: AtomicBool,
    /// When each TX-pending monitor timer fires, in ns of `now_ns` (0: disarmed); the
    /// irq kthread polls them, as a softirq timer would fire.
    pending_due_ns: [AtomicU64; 2],
    stall_every: u64,
    stall_us: u64,
    contexts: ContextTable,
    pub counters: Counters,
}

impl KPlat {
    /// The device this platform is part of.
    fn device(&self) -> &KDevice {
        // SAFETY: by the type's invariant `self` is `plat` of a `Bes2600<KPlat>` that is
        // `dev` of a live `KDevice`; the reference lives no longer than `self`.
        unsafe {
            let dev = kernel::container_of!(self as *const KPlat, Bes2600<KPlat>, plat);
            &*kernel::container_of!(dev, KDevice, dev)
        }
    }

    /// Runs `f` on the chip with the bus lock held.
    fn with_chip<R>(&self, f: impl FnOnce(&mut KChip, u64) -> R) -> R {
        let now = self.now_ns();
        let mut chip = self.device().chip.lock();
        f(&mut chip, now)
    }

    fn lock_of(&self, id: LockId) -> &SpinLock<()> {
        let d = self.device();
        match id {
            LockId::RxQueue => &d.rx_queue_lock,
            LockId::TxBuffer => &d.tx_buffer_lock,
            LockId::TxQueue => &d.tx_queue_lock,
            LockId::Cmd => &d.cmd_lock,
        }
    }

    fn queue(&self, wq: WaitQueue) -> &WaitPoint {
        match wq {
            WaitQueue::CmdConfirm => &self.device().cmd_wq,
            WaitQueue::BufsReleased => &self.device().flush_wq,
        }
    }

    fn stall_after_plain_load(&self) {
        if self.stall_every == 0 {
            return;
        }
        if bump(&self.counters.plain_loads) % self.stall_every == 0 {
            bump(&self.counters.stalls);
            delay::udelay(Delta::from_micros(self.stall_us as i64));
        }
    }
}

impl Memory for KPlat {
    type Word = KWord;
    fn new_word(&self, value: i32) -> Self::Word {
        self.new_named_word(value, "")
    }
    fn new_named_word(&self, value: i32, field: &'static str) -> Self::Word {
        KWord { v: Atomic::new(value), field, writer: AtomicU8::new(CTX_NONE) }
    }
    fn plain_load(&self, w: &Self::Word) -> i32 {
        kcsan::marked_read(w.addr());
        let v = w.v.load(Relaxed);
        self.stall_after_plain_load();
        v
    }
    fn plain_store(&self, w: &Self::Word, value: i32) {
        kcsan::assert_exclusive_writer(w.addr());
        // The single-writer contract: a plain word has one writer context.
        let me = self.contexts.current();
        if me != CTX_NONE {
            let before = w.writer.swap(me, O::AcqRel);
            if before == CTX_NONE && kcsan::ON && !w.field.is_empty() {
                // The word is at its final address by now (it is first stored by a context).
                pr_info!("kcsan: field {} at {:p}\n", w.field, w.addr());
            }
            if before != CTX_NONE && before != me && bump(&self.counters.contract_violations) < 4 {
                let field = if w.field.is_empty() { "(an unnamed word)" } else { w.field };
                pr_err!(
                    "contract: {}: plain store from {} to a single-writer field last written by {}\n",
                    field,
                    ctx_name(me),
                    ctx_name(before)
                );
            }
        }
        kcsan::marked_write(w.addr());
        w.v.store(value, Relaxed);
    }
    fn atomic_load(&self, w: &Self::Word, order: Ordering) -> i32 {
        match order {
            Ordering::Relaxed => w.v.load(Relaxed),
            _ => w.v.load(Acquire),
        }
    }
    fn atomic_store(&self, w: &Self::Word, value: i32, order: Ordering) {
        match order {
            Ordering::Relaxed => w.v.store(value, Relaxed),
            _ => w.v.store(value, Release),
        }
    }
    fn atomic_fetch_add(&self, w: &Self::Word, delta: i32, order: Ordering) -> i32 {
        match order {
            Ordering::Relaxed => w.v.fetch_add(delta, Relaxed),
            Ordering::Acquire => w.v.fetch_add(delta, Acquire),
            Ordering::Release => w.v.fetch_add(delta, Release),
            _ => w.v.fetch_add(delta, Full),
        }
    }
    fn atomic_swap(&self, w: &Self::Word, value: i32, order: Ordering) -> i32 {
        match order {
            Ordering::Relaxed => w.v.xchg(value, Relaxed),
            Ordering::Acquire => w.v.xchg(value, Acquire),
            Ordering::Release => w.v.xchg(value, Release),
            _ => w.v.xchg(value, Full),
        }
    }
    fn spin_lock(&self, _lock: &Self::Word, id: LockId) {
        // The driver core pairs each spin_lock with a spin_unlock (its guard's drop): the
        // kernel guard is released there, not here.
        core::mem::forget(self.lock_of(id).lock());
    }
    fn spin_unlock(&self, _lock: &Self::Word, id: LockId) {
        // SAFETY: this context took the lock in `spin_lock` (the driver core unlocks only
        // what it locked), so it owns it; dropping the guard unlocks it.
        drop(unsafe { Guard::new(self.lock_of(id), ()) });
    }
}

impl Platform for KPlat {
    fn queue_work(&self, work: Work) -> bool {
        if !self.accepting_work.load(O::Acquire) {
            return false;
        }
        let device = self.device().arc();
        let queue = workqueue::system_highpri();
        match work {
            Work::SdioRx => queue.enqueue::<Arc<KDevice>, RX_WORK>(device).is_ok(),
            Work::SdioTx => queue.enqueue::<Arc<KDevice>, TX_WORK>(device).is_ok(),
        }
    }
    fn wake_bh(&self, _reason: WakeReason) {
        self.device().bh_wq.wake();
    }
    fn bh_wait(&self, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        self.device().bh_wq.wait(ready, timeout_ms)
    }
    fn wait_event(&self, wq: WaitQueue, ready: &dyn Fn() -> bool, timeout_ms: u32) -> bool {
        self.queue(wq).wait(ready, Some(timeout_ms))
    }
    fn wake_up(&self, wq: WaitQueue) {
        self.queue(wq).wake();
    }
    fn sdio_read_ctrl(&self) -> u8 {
        self.with_chip(|chip, now| chip.read_ctrl(now))
    }
    fn sdio_read_data(&self, buf: &mut [u8]) {
        self.with_chip(|chip, now| chip.read_data(now, buf));
    }
    fn sdio_write_data(&self, buf: &[u8]) {
        self.with_chip(|chip, now| chip.receive_tx(now, buf));
    }
    fn now_ns(&self) -> u64 {
        (Instant::<Monotonic>::now() - self.epoch).as_nanos() as u64
    }
    fn cpu(&self, _op: CpuOp) {}
    fn warn(&self, warning: Warning) {
        bump(&self.counters.warns);
        match warning {
            Warning::TxBufferUnderflow { hw_bufs_used } => {
                bump(&self.counters.underflows);
                pr_err!("wsm_release_tx_buffer: hw_bufs_used underflow ({})\n", hw_bufs_used);
            }
            Warning::RxSeqMismatch { space, expected, got } => {
                bump(&self.counters.seq_mismatches);
                pr_err!("rx sequence mismatch in space {}: expected {}, got {}\n", space, expected, got);
            }
            Warning::BadRxLength { len } => pr_err!("bad rx message length {}\n", len),
        }
        kernel::warn_on!(true);
    }
    fn event(&self, event: Event) {
        match event {
            Event::ReleaseFailed { ret } => {
                if bump(&self.counters.release_failed) < 4 {
                    pr_err!("wsm_release_tx_buffer failed: {}\n", ret);
                }
            }
            Event::MissedInterrupt { hw_bufs_used } => {
                if bump(&self.counters.missed_irqs) < 4 {
                    pr_err!("missed interrupt? ({} frames outstanding): force close\n", hw_bufs_used);
                }
            }
            Event::StaleToggleRetry => {}
            Event::BhStopped => {
                bump(&self.counters.bh_stopped);
                pr_err!("bh stopped on an error\n");
            }
            Event::TxQueueFull | Event::RxQueueFull => {}
            Event::TxPendingCountError { space } => {
                if bump(&self.counters.pending_count_errors) < 4 {
                    pr_err!("tx pending count error (space {})\n", space);
                }
            }
            Event::CmdTimeout { id, sent } => {
                if bump(&self.counters.cmd_timeouts) < 4 {
                    pr_err!(
                        "wsm_cmd_send: command 0x{:04X} timed out ({})\n",
                        id,
                        if sent { "-EBUSY" } else { "-ETIMEDOUT" }
                    );
                }
            }
            Event::FlushTimeout { hw_bufs_used } => {
                if bump(&self.counters.flush_timeouts) < 4 {
                    pr_err!("wsm_flush_tx: hw_bufs_used={} after 10 s: force close\n", hw_bufs_used);
                }
            }
            Event::LinkBreak { space, pending, hw_bufs_used } => {
                bump(&self.counters.link_breaks);
                pr_err!(
                    "link break between lmac and host (space {}: wsm_tx_pending={}, hw_bufs_used={}): force close\n",
                    space,
                    pending,
                    hw_bufs_used
                );
            }
        }
    }
    fn mod_pending_timer(&self, space: usize, timeout_ms: u32) {
        // Never 0: that means disarmed.
        let due = (self.now_ns() + timeout_ms as u64 * 1_000_000).max(1);
        self.pending_due_ns[space].store(due, O::Release);
    }
    fn del_pending_timer(&self, space: usize) {
        self.pending_due_ns[space].store(0, O::Release);
    }
    fn bug(&self, what: &'static str) -> ! {
        panic!("bes2600: BUG: {}", what)
    }
    fn enter(&self, _function: &'static str) {}
    fn leave(&self) {}
    fn netif_rx(&self, len: u16) {
        self.counters.rx_bytes.fetch_add(len as u64, O::Relaxed);
        // A TCP receiver ACKs every second frame.
        if bump(&self.counters.rx_packets) % 2 == 1 {
            bump(&self.counters.acks_owed);
        }
    }
}

/// Work item ids of the two work items of a [`KDevice`].
const RX_WORK: u64 = 0;
const TX_WORK: u64 = 1;

/// The device of one stress run and everything its contexts share, pinned in an [`Arc`]:
/// the driver core, the chip behind the SDIO host's bus lock, the driver's spinlocks, its
/// wait queues and its work items. Each kthread and each queued work item holds a
/// reference; the loading task holds one for the run and drops it last.
#[pin_data]
pub(crate) struct KDevice {
    dev: Bes2600<KPlat>,
    #[pin]
    chip: SpinLock<KChip>,
    #[pin]
    rx_queue_lock: SpinLock<()>,
    #[pin]
    tx_buffer_lock: SpinLock<()>,
    #[pin]
    tx_queue_lock: SpinLock<()>,
    #[pin]
    cmd_lock: SpinLock<()>,
    /// The BH's wait queue (`bh_wq`).
    #[pin]
    bh_wq: WaitPoint,
    /// `wsm_cmd_wq`.
    #[pin]
    cmd_wq: WaitPoint,
    /// `bh_evt_wq`: a flush waits there for `hw_bufs_used == 0`.
    #[pin]
    flush_wq: WaitPoint,
    #[pin]
    rx_work: kernel::workqueue::Work<KDevice, RX_WORK>,
    #[pin]
    tx_work: kernel::workqueue::Work<KDevice, TX_WORK>,
}

kernel::impl_has_work! {
    impl HasWork<Self, RX_WORK> for KDevice { self.rx_work }
    impl HasWork<Self, TX_WORK> for KDevice { self.tx_work }
}

impl WorkItem<RX_WORK> for KDevice {
    type Pointer = Arc<KDevice>;
    fn run(this: Arc<KDevice>) {
        sdio_rx_work_fn(&this);
    }
}

impl WorkItem<TX_WORK> for KDevice {
    type Pointer = Arc<KDevice>;
    fn run(this: Arc<KDevice>) {
        sdio_tx_work_fn(&this);
    }
}

impl KDevice {
    /// A device at rest, its chip offering nothing yet.
    fn new(stall_every: u32, stall_us: u32) -> Result<Arc<KDevice>> {
        let plat = KPlat {
            epoch: Instant::<Monotonic>::now(),
            accepting_work: AtomicBool::new(true),
            pending_due_ns: [AtomicU64::new(0), AtomicU64::new(0)],
            stall_every: stall_every as u64,
            stall_us: stall_us as u64,
            contexts: ContextTable::new(),
            counters: Counters::default(),
        };
        // The driver core is bigger than a kernel stack (its RX batch buffer alone is
        // 32 KiB): it is built field by field where it lives.
        // SAFETY: the closure zero-fills the slot (valid for writes of the type), then
        // writes every field of the device there; it never fails.
        let dev = unsafe {
            pin_init::init_from_closure::<Bes2600<KPlat>, Error>(move |slot| {
                core::ptr::write_bytes(slot, 0, 1);
                Bes2600::init_zeroed_in_place(slot, plat);
                Ok(())
            })
        };
        Arc::pin_init(
            kernel::try_pin_init!(KDevice {
                dev <- dev,
                chip <- new_spinlock!(KChip::new(KCHIP_CONFIG, FixedAir::new(1514), 0), "bes2600_sdio_bus"),
                rx_queue_lock <- new_spinlock!((), "rx_queue_lock"),
                tx_buffer_lock <- new_spinlock!((), "tx_bufferlock"),
                tx_queue_lock <- new_spinlock!((), "tx_queue_lock"),
                cmd_lock <- new_spinlock!((), "wsm_cmd_lock"),
                bh_wq <- WaitPoint::new(c"bes2600_bh_wq"),
                cmd_wq <- WaitPoint::new(c"bes2600_wsm_cmd_wq"),
                flush_wq <- WaitPoint::new(c"bes2600_bh_evt_wq"),
                rx_work <- kernel::new_work!("sdio_rx_work"),
                tx_work <- kernel::new_work!("sdio_tx_work"),
            }),
            GFP_KERNEL,
        )
    }

    /// A new reference to this device.
    fn arc(&self) -> Arc<KDevice> {
        // SAFETY: every `KDevice` lives in an `Arc` (`new` is the only constructor), which
        // outlives `self`.
        let borrowed = unsafe { ArcBorrow::from_raw(self as *const KDevice) };
        borrowed.into()
    }

    /// Waits until neither work item is queued or running (each run drops the reference
    /// its queueing took).
    fn flush_work(&self) {
        // SAFETY: both work items were initialised by `new` and live as long as `self`;
        // `flush_work` only waits. The kernel crate's `Work` has no flush of its own.
        unsafe {
            bindings::flush_work(kernel::workqueue::Work::raw_get(&self.rx_work));
            bindings::flush_work(kernel::workqueue::Work::raw_get(&self.tx_work));
        }
    }
}

/// The rx_work context: one run of `sdio_rx_work` on a kworker (its own function, never
/// inlined, so a KCSAN stack names the context).
#[inline(never)]
fn sdio_rx_work_fn(k: &KDevice) {
    let d = &k.dev;
    bump(&d.plat.counters.rx_work_runs);
    d.plat.contexts.enter(CTX_RX_WORK);
    d.sdio_rx_work();
    d.plat.contexts.leave();
}

/// The tx_work context (as [`sdio_rx_work_fn`]).
#[inline(never)]
fn sdio_tx_work_fn(k: &KDevice) {
    let d = &k.dev;
    bump(&d.plat.counters.tx_work_runs);
    d.plat.contexts.enter(CTX_TX_WORK);
    d.sdio_tx_work();
    d.plat.contexts.leave();
}

fn should_stop() -> bool {
    // SAFETY: called from kthreads only. The kernel crate has no kthread abstraction.
    unsafe { bindings::kthread_should_stop() }
}

fn sleep_us(us: i64) {
    delay::fsleep(Delta::from_micros(us));
}

/// How long the interrupt line may stay held after its handler ran before the IRQ thread
/// runs the handler again (the MMC core's SDIO IRQ polling period).
const IRQ_REPOLL_NS: u64 = 10_000_000;

/// The irq context: a kthread polling the chip's interrupt line, as the MMC core's SDIO
/// IRQ thread does, and firing the TX-pending monitor timers that are due.
#[inline(never)]
fn irq_thread(k: &KDevice) {
    let d = &k.dev;
    d.plat.contexts.enter(CTX_IRQ);
    let mut handled_at_ns = 0u64;
    while !should_stop() {
        let (raised, held) = d.plat.with_chip(|chip, now| (chip.poll_irq(now), chip.irq_line()));
        let now = d.plat.now_ns();
        if raised {
            bump(&d.plat.counters.irqs);
            handled_at_ns = now;
            d.irq_handler();
        } else if held && now - handled_at_ns >= IRQ_REPOLL_NS {
            // The card still holds its interrupt 10 ms after the handler ran (nothing read
            // the control byte): the MMC core's IRQ thread polls pending interrupts every
            // 10 ms and runs the handler again. Without this an interrupt the BH took
            // before the firmware was up (fw_started still 0) would be lost for good.
            bump(&d.plat.counters.irq_reruns);
            handled_at_ns = now;
            d.irq_handler();
        } else {
            sleep_us(100);
        }
        // The monitor timers: the one that takes a due deadline runs the callback.
        let now = d.plat.now_ns();
        for space in 0..2 {
            let due = d.plat.pending_due_ns[space].load(O::Acquire);
            if due != 0
                && now >= due
                && d.plat.pending_due_ns[space].compare_exchange(due, 0, O::AcqRel, O::Relaxed).is_ok()
            {
                d.bh_pending_timeout(space);
            }
        }
    }
    d.plat.contexts.leave();
}

/// The bh context: `bh_loop` until it leaves, then wait to be stopped.
#[inline(never)]
fn bh_thread(k: &KDevice) {
    let d = &k.dev;
    d.plat.contexts.enter(CTX_BH);
    d.bh_loop();
    d.plat.contexts.leave();
    // kthread_stop() expects the thread to be there until it is called.
    while !should_stop() {
        sleep_us(1000);
    }
}

/// The net_tx context: sends the TCP ACKs the received frames owe.
#[inline(never)]
fn net_tx_thread(k: &KDevice) {
    let d = &k.dev;
    d.plat.contexts.enter(CTX_NET_TX);
    while !should_stop() {
        let owed = d.plat.counters.acks_owed.swap(0, O::Relaxed);
        // Bound: `owed` was taken at once; new ACKs wait for the next pass.
        for _ in 0..owed {
            bump(&d.plat.counters.acks_sent);
            d.xmit(0, 66);
        }
        if owed == 0 {
            sleep_us(200);
        }
    }
    d.plat.contexts.leave();
}

/// The cmd context: a READ_MIB whose sender waits for the confirm (its own function, never
/// inlined, so that a KCSAN stack names the context).
#[inline(never)]
fn cmd_context(d: &Bes2600<KPlat>) {
    d.plat.contexts.enter(CTX_CMD);
    d.wsm_cmd_send(crate::wsm::WSM_READ_MIB_REQ_ID, 8);
    d.plat.contexts.leave();
}

/// The flush context: mac80211's flush (as [`cmd_context`], its own function).
#[inline(never)]
fn flush_context(d: &Bes2600<KPlat>) {
    d.plat.contexts.enter(CTX_FLUSH);
    bump(&d.plat.counters.flushes);
    d.bes2600_flush();
    d.plat.contexts.leave();
}

/// A kthread running one context with its own reference to the device. The kernel crate
/// has no kthread abstraction: this is the one place that calls `kthread_*` directly.
struct Thread {
    task: *mut bindings::task_struct,
    /// The reference the thread runs with (from `Arc::into_raw`), released after it stopped.
    device: *const KDevice,
}

/// The C entry of every kthread: `data` is the thread's device reference, `body` its context.
unsafe extern "C" fn thread_main<const CTX: u8>(data: *mut c_void) -> c_int {
    // SAFETY: `data` came from `Arc::into_raw` in `Thread::start`, and `Thread::stop`
    // releases that reference only after `kthread_stop` returned, so the device outlives
    // this function.
    let k = unsafe { ArcBorrow::<KDevice>::from_raw(data.cast()) };
    match CTX {
        CTX_IRQ => irq_thread(&k),
        CTX_BH => bh_thread(&k),
        _ => net_tx_thread(&k),
    }
    0
}

impl Thread {
    fn start<const CTX: u8>(device: &Arc<KDevice>, name: &'static CStr) -> Result<Thread> {
        let data = Arc::into_raw(device.clone());
        // SAFETY: `thread_main` only reaches the device through `data`, which stays valid
        // until `stop`; `name` is a static C string used as the format.
        let task = unsafe {
            bindings::kthread_create_on_node(Some(thread_main::<CTX>), data as *mut c_void, -1, name.as_char_ptr())
        };
        if task.is_null() || (task as isize) < 0 && (task as isize) >= -4095 {
            // SAFETY: the thread was not created, so the reference is still ours.
            drop(unsafe { Arc::from_raw(data) });
            pr_err!("cannot start kthread {}\n", name.to_str().unwrap_or("?"));
            return Err(ENOMEM);
        }
        // SAFETY: `task` is a new kthread that has not run yet.
        unsafe { bindings::wake_up_process(task) };
        Ok(Thread { task, device: data })
    }
    fn stop(self) {
        // SAFETY: the task was started by `start` and is stopped once (self is consumed);
        // once `kthread_stop` returned the thread no longer uses its reference.
        unsafe {
            bindings::kthread_stop(self.task);
            drop(Arc::from_raw(self.device));
        }
    }
}

/// The loaded module (everything of a stress run is gone when `init` returns).
pub(crate) struct Bes2600Module;

impl kernel::Module for Bes2600Module {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let stress_ms = *crate::module_parameters::stress_ms.value();
        let rate_kbps = *crate::module_parameters::rate_kbps.value();
        let stall_every = *crate::module_parameters::stall_every.value();
        let stall_us = *crate::module_parameters::stall_us.value();
        pr_info!("loaded, features {:?}\n", crate::FEATURES);
        if stress_ms == 0 {
            return Ok(Bes2600Module);
        }
        pr_info!(
            "stress {} ms at {} KiB/s, stall one plain load in {} for {} us\n",
            stress_ms,
            rate_kbps,
            stall_every,
            stall_us
        );
        stress(stress_ms, rate_kbps, stall_every, stall_us)?;
        Ok(Bes2600Module)
    }
}

fn stress(stress_ms: u32, rate_kbps: u32, stall_every: u32, stall_us: u32) -> Result {
    let device = KDevice::new(stall_every, stall_us)?;
    let bh = Thread::start::<CTX_BH>(&device, c"bes2600_bh")?;
    let irq = Thread::start::<CTX_IRQ>(&device, c"bes2600_irq")?;
    let net_tx = Thread::start::<CTX_NET_TX>(&device, c"bes2600_net_tx")?;
    let d = &device.dev;
    d.plat.with_chip(|chip, now| chip.set_offered(now, rate_kbps as u64 * 1024));
    // The run lasts stress_ms by the clock (a command or a flush may block for seconds),
    // and ends early once the driver has force-closed (a link break, a missed interrupt,
    // a flush timeout, the BH gone): the C driver is dead then, and its commands would
    // only time out one after the other.
    let c = &d.plat.counters;
    let force_closed = || {
        c.link_breaks.load(O::Relaxed)
            + c.missed_irqs.load(O::Relaxed)
            + c.flush_timeouts.load(O::Relaxed)
            + c.bh_stopped.load(O::Relaxed)
            > 0
    };
    let start = Instant::<Monotonic>::now();
    let mut elapsed_ms = 0u32;
    // Bound: each pass sleeps 100 ms or more, and the clock ends the loop.
    while start.elapsed().as_millis() < stress_ms as i64 && !force_closed() {
        sleep_us(100_000);
        elapsed_ms += 100;
        // The loading task plays the control side: a command per second (its sender waits
        // for the confirm) and a mac80211 flush every 3 s, each as its own context.
        if elapsed_ms % 1000 == 0 {
            cmd_context(d);
        }
        if elapsed_ms % 3000 == 1500 {
            flush_context(d);
        }
    }
    let rx_before_stop = d.plat.counters.rx_packets.load(O::Relaxed);
    d.plat.with_chip(|chip, now| chip.set_offered(now, 0));

    net_tx.stop();
    irq.stop();
    d.stop();
    bh.stop();
    d.plat.accepting_work.store(false, O::Release);
    // Twice: a work item may have queued the other before the first flush returned.
    for _ in 0..2 {
        device.flush_work();
    }
    report(d, rx_before_stop);
    Ok(())
}

fn report(d: &Bes2600<KPlat>, rx_packets: u64) {
    let c = &d.plat.counters;
    let get = |a: &AtomicU64| a.load(O::Relaxed);
    let (wedged, stats) = d.plat.with_chip(|chip, _| (chip.wedged.map(|(_, why)| why), chip.stats));
    let hw_bufs_used = d.hw_bufs_used_read();
    pr_info!(
        "result rx_packets={} rx_bytes={} acks_sent={} irqs={} irq_reruns={} rx_work_runs={} tx_work_runs={} warns={} underflows={} seq_mismatches={} release_failed={} missed_irqs={} bh_stopped={} stalls={} hw_bufs_used={} chip_frames_arrived={} chip_frames_dropped={} chip_tx_frames={} chip_batches={} pending_count_errors={} link_breaks={} contract_violations={} cmd_timeouts={} flushes={} flush_timeouts={}\n",
        rx_packets,
        get(&c.rx_bytes),
        get(&c.acks_sent),
        get(&c.irqs),
        get(&c.irq_reruns),
        get(&c.rx_work_runs),
        get(&c.tx_work_runs),
        get(&c.warns),
        get(&c.underflows),
        get(&c.seq_mismatches),
        get(&c.release_failed),
        get(&c.missed_irqs),
        get(&c.bh_stopped),
        get(&c.stalls),
        hw_bufs_used,
        stats.frames_arrived,
        stats.frames_dropped,
        stats.tx_frames,
        stats.batches_sent,
        get(&c.pending_count_errors),
        get(&c.link_breaks),
        get(&c.contract_violations),
        get(&c.cmd_timeouts),
        get(&c.flushes),
        get(&c.flush_timeouts),
    );
    if let Some(why) = wedged {
        // `Wedge` implements core's Display; the kernel's formatter takes `Arguments`.
        pr_err!("chip wedged: {}\n", format_args!("{}", why));
    }
    let clean = get(&c.warns) == 0
        && wedged.is_none()
        && get(&c.bh_stopped) == 0
        && get(&c.pending_count_errors) == 0
        && get(&c.link_breaks) == 0
        && get(&c.contract_violations) == 0
        && get(&c.cmd_timeouts) == 0
        && get(&c.missed_irqs) == 0
        && get(&c.flush_timeouts) == 0
        && rx_packets > 0;
    pr_info!("verdict {}\n", if clean { "clean" } else { "failed" });
}
