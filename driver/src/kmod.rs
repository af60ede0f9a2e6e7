//! The kernel entry, built only by the kernel lab (rustc sees `CONFIG_RUST` from the
//! kernel's `rustc_cfg`; cargo never compiles this file): the `bes2600` module, a platform
//! layer on the kernel's spinlocks, `atomic_t`, a high-priority workqueue and a wait queue,
//! and a stress run of the driver core against the driver's chip ([`crate::chip`]) on a fixed-interval air.
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
//! Plain accesses are the kernel's `atomic_read`/`atomic_set` (`READ_ONCE`/`WRITE_ONCE`,
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
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering as O};
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_void};
use kernel::prelude::*;
use kernel::types::Opaque;

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

/// Which task runs which context: kthreads for their whole life, a kworker for one run of a
/// work item. More slots than tasks that can run driver code at once.
static CTX_TASKS: [AtomicPtr<bindings::task_struct>; 8] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 8];
static CTX_OF_TASK: [AtomicU8; 8] = [const { AtomicU8::new(CTX_NONE) }; 8];

fn current_task() -> *mut bindings::task_struct {
    // SAFETY: `current` is always valid in process context, where all contexts here run.
    unsafe { bindings::get_current() }
}

fn enter_ctx(ctx: u8) {
    let me = current_task();
    for (task, c) in CTX_TASKS.iter().zip(&CTX_OF_TASK) {
        if task.load(O::Acquire) == me {
            c.store(ctx, O::Release);
            return;
        }
    }
    for (task, c) in CTX_TASKS.iter().zip(&CTX_OF_TASK) {
        if task.compare_exchange(core::ptr::null_mut(), me, O::AcqRel, O::Acquire).is_ok() {
            c.store(ctx, O::Release);
            return;
        }
    }
}

fn leave_ctx() {
    let me = current_task();
    for (task, c) in CTX_TASKS.iter().zip(&CTX_OF_TASK) {
        if task.load(O::Acquire) == me {
            c.store(CTX_NONE, O::Release);
            task.store(core::ptr::null_mut(), O::Release);
        }
    }
}

fn current_ctx() -> u8 {
    let me = current_task();
    CTX_TASKS
        .iter()
        .zip(&CTX_OF_TASK)
        .find(|(t, _)| t.load(O::Acquire) == me)
        .map_or(CTX_NONE, |(_, c)| c.load(O::Acquire))
}

/// A C `int`: the value, the field it is (`Owner.field`, empty when unnamed), and the
/// context of the last plain store (for the contract check).
pub(crate) struct KWord {
    v: Opaque<bindings::atomic_t>,
    field: &'static str,
    writer: AtomicU8,
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

/// The kernel platform.
///
/// # Invariants
/// The spinlocks, work items and wait queue are initialised in place by
/// [`KPlat::init_in_place`] before any context starts and never move afterwards (the
/// device lives in one `KBox` for the whole run). `chip` is only touched with `chip_lock`
/// held (the SDIO host's bus lock).
pub(crate) struct KPlat {
    chip_lock: Opaque<bindings::spinlock_t>,
    chip: UnsafeCell<KChip>,
    locks: [Opaque<bindings::spinlock_t>; 4],
    rx_work: Opaque<bindings::work_struct>,
    tx_work: Opaque<bindings::work_struct>,
    bh_wq: Opaque<bindings::wait_queue_head>,
    /// `wsm_cmd_wq` and `bh_evt_wq`.
    cmd_wq: Opaque<bindings::wait_queue_head>,
    flush_wq: Opaque<bindings::wait_queue_head>,
    accepting_work: AtomicBool,
    /// When each TX-pending monitor timer fires, in ns of `ktime_get` (0: disarmed); the
    /// irq kthread polls them, as a softirq timer would fire.
    pending_due_ns: [AtomicU64; 2],
    stall_every: u64,
    stall_us: u64,
    pub counters: Counters,
}

impl KPlat {
    fn new(now_ns: u64, stall_every: u32, stall_us: u32) -> Self {
        KPlat {
            chip_lock: Opaque::zeroed(),
            chip: UnsafeCell::new(KChip::new(KCHIP_CONFIG, FixedAir::new(1514), now_ns)),
            locks: [Opaque::zeroed(), Opaque::zeroed(), Opaque::zeroed(), Opaque::zeroed()],
            rx_work: Opaque::zeroed(),
            tx_work: Opaque::zeroed(),
            bh_wq: Opaque::zeroed(),
            cmd_wq: Opaque::zeroed(),
            flush_wq: Opaque::zeroed(),
            accepting_work: AtomicBool::new(true),
            pending_due_ns: [AtomicU64::new(0), AtomicU64::new(0)],
            stall_every: stall_every as u64,
            stall_us: stall_us as u64,
            counters: Counters::default(),
        }
    }

    /// # Safety
    /// Call once, at the platform's final address, before any context uses it.
    unsafe fn init_in_place(&self) {
        // SAFETY: the pointers are to this platform's own fields, which never move (see the
        // type's invariants); the names and lock classes are statics.
        unsafe {
            bindings::__spin_lock_init(
                self.chip_lock.get(),
                c"bes2600_sdio_bus".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
            for lock in &self.locks {
                bindings::__spin_lock_init(
                    lock.get(),
                    c"bes2600_lock".as_ptr().cast(),
                    kernel::static_lock_class!().as_ptr(),
                );
            }
            bindings::init_work_with_key(
                self.rx_work.get(),
                Some(sdio_rx_work_fn),
                false,
                c"sdio_rx_work".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
            bindings::init_work_with_key(
                self.tx_work.get(),
                Some(sdio_tx_work_fn),
                false,
                c"sdio_tx_work".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
            bindings::__init_waitqueue_head(
                self.bh_wq.get(),
                c"bes2600_bh_wq".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
            bindings::__init_waitqueue_head(
                self.cmd_wq.get(),
                c"bes2600_wsm_cmd_wq".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
            bindings::__init_waitqueue_head(
                self.flush_wq.get(),
                c"bes2600_bh_evt_wq".as_ptr().cast(),
                kernel::static_lock_class!().as_ptr(),
            );
        }
    }

    /// Runs `f` on the chip with the bus lock held.
    fn with_chip<R>(&self, f: impl FnOnce(&mut KChip, u64) -> R) -> R {
        let now = self.now_ns();
        // SAFETY: the lock was initialised in place (invariants); the chip is only
        // reached with it held, so this is the only reference.
        unsafe {
            bindings::spin_lock(self.chip_lock.get());
            let r = f(&mut *self.chip.get(), now);
            bindings::spin_unlock(self.chip_lock.get());
            r
        }
    }

    fn stall_after_plain_load(&self) {
        if self.stall_every == 0 {
            return;
        }
        if bump(&self.counters.plain_loads) % self.stall_every == 0 {
            bump(&self.counters.stalls);
            // SAFETY: busy-waiting is allowed in every context this platform runs in.
            unsafe { bindings::udelay(self.stall_us as _) };
        }
    }
}

impl Memory for KPlat {
    type Word = KWord;
    fn new_word(&self, value: i32) -> Self::Word {
        self.new_named_word(value, "")
    }
    fn new_named_word(&self, value: i32, field: &'static str) -> Self::Word {
        KWord { v: Opaque::new(bindings::atomic_t { counter: value }), field, writer: AtomicU8::new(CTX_NONE) }
    }
    fn plain_load(&self, w: &Self::Word) -> i32 {
        kcsan::marked_read(w.v.get().cast());
        // SAFETY: `w` is a live atomic_t of this device.
        let v = unsafe { bindings::atomic_read(w.v.get()) };
        self.stall_after_plain_load();
        v
    }
    fn plain_store(&self, w: &Self::Word, value: i32) {
        let at: *const c_void = w.v.get().cast();
        kcsan::assert_exclusive_writer(at);
        // The single-writer contract: a plain word has one writer context.
        let me = current_ctx();
        if me != CTX_NONE {
            let before = w.writer.swap(me, O::AcqRel);
            if before == CTX_NONE && kcsan::ON && !w.field.is_empty() {
                // The word is at its final address by now (it is first stored by a context).
                pr_info!("kcsan: field {} at {:p}\n", w.field, at);
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
        kcsan::marked_write(at);
        // SAFETY: as in `plain_load`.
        unsafe { bindings::atomic_set(w.v.get(), value) }
    }
    fn atomic_load(&self, w: &Self::Word, order: Ordering) -> i32 {
        // SAFETY: as in `plain_load`.
        unsafe {
            match order {
                Ordering::Relaxed => bindings::atomic_read(w.v.get()),
                _ => bindings::atomic_read_acquire(w.v.get()),
            }
        }
    }
    fn atomic_store(&self, w: &Self::Word, value: i32, order: Ordering) {
        // SAFETY: as in `plain_load`.
        unsafe {
            match order {
                Ordering::Relaxed => bindings::atomic_set(w.v.get(), value),
                _ => bindings::atomic_set_release(w.v.get(), value),
            }
        }
    }
    fn atomic_fetch_add(&self, w: &Self::Word, delta: i32, order: Ordering) -> i32 {
        // SAFETY: as in `plain_load`.
        unsafe {
            match order {
                Ordering::Relaxed => bindings::atomic_fetch_add_relaxed(delta, w.v.get()),
                Ordering::Acquire => bindings::atomic_fetch_add_acquire(delta, w.v.get()),
                Ordering::Release => bindings::atomic_fetch_add_release(delta, w.v.get()),
                _ => bindings::atomic_fetch_add(delta, w.v.get()),
            }
        }
    }
    fn atomic_swap(&self, w: &Self::Word, value: i32, order: Ordering) -> i32 {
        // SAFETY: as in `plain_load`.
        unsafe {
            match order {
                Ordering::Relaxed => bindings::atomic_xchg_relaxed(w.v.get(), value),
                Ordering::Acquire => bindings::atomic_xchg_acquire(w.v.get(), value),
                Ordering::Release => bindings::atomic_xchg_release(w.v.get(), value),
                _ => bindings::atomic_xchg(w.v.get(), value),
            }
        }
    }
    fn spin_lock(&self, _lock: &Self::Word, id: LockId) {
        // Each LockId names exactly one lock of the device: the kernel spinlock for it
        // lives here.
        // SAFETY: initialised in place before any context started.
        unsafe { bindings::spin_lock(self.locks[id as usize].get()) }
    }
    fn spin_unlock(&self, _lock: &Self::Word, id: LockId) {
        // SAFETY: as in `spin_lock`; the caller holds it.
        unsafe { bindings::spin_unlock(self.locks[id as usize].get()) }
    }
}

impl KPlat {
    fn queue(&self, wq: WaitQueue) -> *mut bindings::wait_queue_head {
        match wq {
            WaitQueue::CmdConfirm => self.cmd_wq.get(),
            WaitQueue::BufsReleased => self.flush_wq.get(),
        }
    }

    /// `wait_event_timeout` on `wq`: prepare to wait, check, sleep until a wake-up or
    /// the deadline (`None`: no deadline).
    fn wait_on(&self, wq: *mut bindings::wait_queue_head, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        let deadline = timeout_ms.map(|ms| jiffies().wrapping_add(kernel::time::msecs_to_jiffies(ms)));
        // Bound: every pass either returns or sleeps until a wake-up or the deadline.
        loop {
            let entry: Opaque<bindings::wait_queue_entry> = Opaque::uninit();
            // SAFETY: `entry` lives on this stack frame until `finish_wait` below removes
            // it from the queue; the queue was initialised in place.
            unsafe {
                bindings::init_wait(entry.get());
                bindings::prepare_to_wait_event(wq, entry.get(), bindings::TASK_INTERRUPTIBLE as c_int);
            }
            let outcome = if ready() {
                Some(true)
            } else {
                match deadline {
                    None => {
                        // SAFETY: sleeping is allowed in every context that waits (the BH
                        // kthread, the loading task as cmd and flush).
                        unsafe { bindings::schedule_timeout(c_long::MAX) };
                        None
                    }
                    Some(d) => {
                        let left = d.wrapping_sub(jiffies()) as c_long;
                        if left <= 0 {
                            Some(ready())
                        } else {
                            // SAFETY: as above.
                            unsafe { bindings::schedule_timeout(left) };
                            None
                        }
                    }
                }
            };
            // SAFETY: `entry` was prepared on this queue above.
            unsafe { bindings::finish_wait(wq, entry.get()) };
            if let Some(r) = outcome {
                return r;
            }
        }
    }
}

impl Platform for KPlat {
    fn queue_work(&self, work: Work) -> bool {
        if !self.accepting_work.load(O::Acquire) {
            return false;
        }
        let w = match work {
            Work::SdioRx => self.rx_work.get(),
            Work::SdioTx => self.tx_work.get(),
        };
        // SAFETY: the work item was initialised in place and outlives the run: the
        // module cancels it synchronously before freeing the device.
        unsafe {
            bindings::queue_work_on(bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int, bindings::system_highpri_wq, w)
        }
    }
    fn wake_bh(&self, _reason: WakeReason) {
        // SAFETY: the wait queue was initialised in place.
        unsafe { bindings::__wake_up(self.bh_wq.get(), bindings::TASK_NORMAL, 1, core::ptr::null_mut()) };
    }
    fn bh_wait(&self, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool {
        self.wait_on(self.bh_wq.get(), ready, timeout_ms)
    }
    fn wait_event(&self, wq: WaitQueue, ready: &dyn Fn() -> bool, timeout_ms: u32) -> bool {
        self.wait_on(self.queue(wq), ready, Some(timeout_ms))
    }
    fn wake_up(&self, wq: WaitQueue) {
        // SAFETY: the wait queues were initialised in place.
        unsafe { bindings::__wake_up(self.queue(wq), bindings::TASK_NORMAL, 1, core::ptr::null_mut()) };
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
        // SAFETY: reading the monotonic clock is always allowed.
        unsafe { bindings::ktime_get() as u64 }
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

fn jiffies() -> kernel::ffi::c_ulong {
    // SAFETY: `jiffies` is a word the timer interrupt updates; a volatile read is how C
    // reads it.
    unsafe { core::ptr::read_volatile(&raw const bindings::jiffies) }
}

/// The device of the run in progress (one per module).
static DEV: AtomicPtr<Bes2600<KPlat>> = AtomicPtr::new(core::ptr::null_mut());

fn dev() -> &'static Bes2600<KPlat> {
    // SAFETY: the contexts that call this start after DEV is set and are stopped (threads
    // joined, work cancelled) before the device is freed.
    unsafe { &*DEV.load(O::Acquire) }
}

unsafe extern "C" fn sdio_rx_work_fn(_work: *mut bindings::work_struct) {
    let d = dev();
    bump(&d.plat.counters.rx_work_runs);
    enter_ctx(CTX_RX_WORK);
    d.sdio_rx_work();
    leave_ctx();
}

unsafe extern "C" fn sdio_tx_work_fn(_work: *mut bindings::work_struct) {
    let d = dev();
    bump(&d.plat.counters.tx_work_runs);
    enter_ctx(CTX_TX_WORK);
    d.sdio_tx_work();
    leave_ctx();
}

fn should_stop() -> bool {
    // SAFETY: called from kthreads only.
    unsafe { bindings::kthread_should_stop() }
}

fn sleep_us(us: u64) {
    // SAFETY: sleeping is allowed in the kthreads and the loading task.
    unsafe { bindings::fsleep(us as _) }
}

unsafe extern "C" fn irq_thread(_data: *mut c_void) -> c_int {
    let d = dev();
    enter_ctx(CTX_IRQ);
    while !should_stop() {
        if d.plat.with_chip(|chip, now| chip.poll_irq(now)) {
            bump(&d.plat.counters.irqs);
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
    leave_ctx();
    0
}

unsafe extern "C" fn bh_thread(_data: *mut c_void) -> c_int {
    enter_ctx(CTX_BH);
    dev().bh_loop();
    leave_ctx();
    // kthread_stop() expects the thread to be there until it is called.
    while !should_stop() {
        sleep_us(1000);
    }
    0
}

unsafe extern "C" fn net_tx_thread(_data: *mut c_void) -> c_int {
    let d = dev();
    enter_ctx(CTX_NET_TX);
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
    leave_ctx();
    0
}

/// The cmd context: a READ_MIB whose sender waits for the confirm. Its own function (never
/// inlined) so that a KCSAN stack names the context.
#[inline(never)]
fn cmd_context(d: &Bes2600<KPlat>) {
    enter_ctx(CTX_CMD);
    d.wsm_cmd_send(crate::wsm::WSM_READ_MIB_REQ_ID, 8);
    leave_ctx();
}

/// The flush context: mac80211's flush (as [`cmd_context`], its own function).
#[inline(never)]
fn flush_context(d: &Bes2600<KPlat>) {
    enter_ctx(CTX_FLUSH);
    bump(&d.plat.counters.flushes);
    d.bes2600_flush();
    leave_ctx();
}

struct Thread(*mut bindings::task_struct);

impl Thread {
    fn start(f: unsafe extern "C" fn(*mut c_void) -> c_int, name: &'static CStr) -> Result<Thread> {
        // SAFETY: `f` only reaches the device through DEV, which is set; `name` is a
        // static C string used as the format.
        let task = unsafe { bindings::kthread_create_on_node(Some(f), core::ptr::null_mut(), -1, name.as_char_ptr()) };
        if task.is_null() || (task as isize) < 0 && (task as isize) >= -4095 {
            pr_err!("cannot start kthread {}\n", name.to_str().unwrap_or("?"));
            return Err(ENOMEM);
        }
        // SAFETY: `task` is a new kthread that has not run yet.
        unsafe { bindings::wake_up_process(task) };
        Ok(Thread(task))
    }
    fn stop(self) {
        // SAFETY: the task was started by `start` and is stopped once (self is consumed).
        unsafe { bindings::kthread_stop(self.0) };
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
    // SAFETY: reading the clock is always allowed.
    let now = unsafe { bindings::ktime_get() as u64 };
    // The device is bigger than a kernel stack (its RX batch buffer alone is 32 KiB): it is
    // built field by field in zeroed heap memory.
    let mut slot = KBox::<Bes2600<KPlat>>::new_uninit(GFP_KERNEL | kernel::alloc::flags::__GFP_ZERO)?;
    // SAFETY: the allocation is zero-filled, writable and holds no device yet.
    let device = unsafe {
        Bes2600::init_zeroed_in_place(slot.as_mut_ptr(), KPlat::new(now, stall_every, stall_us));
        slot.assume_init()
    };
    // SAFETY: the device is at its final address and no context has started.
    unsafe { device.plat.init_in_place() };
    DEV.store(&*device as *const _ as *mut _, O::Release);

    let bh = Thread::start(bh_thread, c"bes2600_bh")?;
    let irq = Thread::start(irq_thread, c"bes2600_irq")?;
    let net_tx = Thread::start(net_tx_thread, c"bes2600_net_tx")?;
    let d = dev();
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
    // SAFETY: reading the clock is always allowed.
    let clock_ms = || unsafe { bindings::ktime_get() as u64 } / 1_000_000;
    let start_ms = clock_ms();
    let mut elapsed_ms = 0u32;
    // Bound: each pass sleeps 100 ms or more, and the clock ends the loop.
    while clock_ms().saturating_sub(start_ms) < stress_ms as u64 && !force_closed() {
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
    // Twice: a work item may have queued the other before the first cancel returned.
    for _ in 0..2 {
        // SAFETY: the work items were initialised in place; no more can be queued.
        unsafe {
            bindings::cancel_work_sync(d.plat.rx_work.get());
            bindings::cancel_work_sync(d.plat.tx_work.get());
        }
    }
    report(d, rx_before_stop);
    DEV.store(core::ptr::null_mut(), O::Release);
    drop(device);
    Ok(())
}

fn report(d: &Bes2600<KPlat>, rx_packets: u64) {
    let c = &d.plat.counters;
    let get = |a: &AtomicU64| a.load(O::Relaxed);
    let (wedged, stats) = d.plat.with_chip(|chip, _| (chip.wedged.map(|(_, why)| why), chip.stats));
    let hw_bufs_used = d.hw_bufs_used_read();
    pr_info!(
        "result rx_packets={} rx_bytes={} acks_sent={} irqs={} rx_work_runs={} tx_work_runs={} warns={} underflows={} seq_mismatches={} release_failed={} missed_irqs={} bh_stopped={} stalls={} hw_bufs_used={} chip_frames_arrived={} chip_frames_dropped={} chip_tx_frames={} chip_batches={} pending_count_errors={} link_breaks={} contract_violations={} cmd_timeouts={} flushes={} flush_timeouts={}\n",
        rx_packets,
        get(&c.rx_bytes),
        get(&c.acks_sent),
        get(&c.irqs),
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
