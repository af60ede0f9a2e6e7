//! The platform layer the core runs on: memory words (plain and atomic), spinlocks, work
//! queueing, BH wake-ups, the SDIO bus, the clock and kernel-style diagnostics. The
//! simulator implements it on virtual time; a kernel build implements it on the kernel's
//! primitives. The core holds no global state: everything goes through `&self`.

pub use core::sync::atomic::Ordering;

/// Which spinlock an acquisition is for, so a platform can account per lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockId {
    /// `sbus_priv->rx_queue_lock`: protects `rx_queue`.
    RxQueue,
    /// `tx_bufferlock`: protects `tx_bufferlist`.
    TxBuffer,
    /// The WSM TX queue lock: protects frames handed down by the network stack.
    TxQueue,
    /// The WSM command slot lock.
    Cmd,
}

impl LockId {
    /// Every lock, in report order.
    pub const ALL: [LockId; 4] = [LockId::RxQueue, LockId::TxBuffer, LockId::TxQueue, LockId::Cmd];
    /// The lock's name in the C driver.
    pub fn name(self) -> &'static str {
        match self {
            LockId::RxQueue => "rx_queue_lock",
            LockId::TxBuffer => "tx_bufferlock",
            LockId::TxQueue => "tx_queue_lock",
            LockId::Cmd => "wsm_cmd_lock",
        }
    }
}

/// Memory as the driver shares it between contexts.
///
/// Each primitive states what it does to the memory its `word` argument reaches in an
/// `access:` doc line; the contract audit reads them (and nothing else of this layer) to
/// tell loads, stores, atomic operations and lock acquisitions apart.
///
/// Plain accesses model a C `int` read or written with an ordinary instruction: a
/// read-modify-write built from them is a load and a separate store, and another context may
/// run in between. Atomic operations are indivisible.
pub trait Memory {
    /// One 32-bit word of shared memory.
    type Word;
    /// A word of shared memory holding `value`.
    fn new_word(&self, value: i32) -> Self::Word;
    /// A word that is a shared field of the driver (`Owner.field`, the audit's name), so a
    /// platform that checks contracts at run time can say which field a report is about.
    fn new_named_word(&self, value: i32, _field: &'static str) -> Self::Word {
        self.new_word(value)
    }
    /// access: load
    fn plain_load(&self, word: &Self::Word) -> i32;
    /// access: store
    fn plain_store(&self, word: &Self::Word, value: i32);
    /// access: atomic-load
    fn atomic_load(&self, word: &Self::Word, order: Ordering) -> i32;
    /// access: atomic-store
    fn atomic_store(&self, word: &Self::Word, value: i32, order: Ordering);
    /// Adds `delta` and returns the value before the addition.
    ///
    /// access: atomic-rmw
    fn atomic_fetch_add(&self, word: &Self::Word, delta: i32, order: Ordering) -> i32;
    /// Stores `value` and returns the value before.
    ///
    /// access: atomic-rmw
    fn atomic_swap(&self, word: &Self::Word, value: i32, order: Ordering) -> i32;
    /// Spins until the lock word is free, then takes it (`spin_lock`).
    ///
    /// access: lock
    fn spin_lock(&self, lock: &Self::Word, id: LockId);
    /// access: unlock
    fn spin_unlock(&self, lock: &Self::Word, id: LockId);
}

/// The work items of the data path. They run on one high-priority workqueue with
/// max_active 2; a work item never runs concurrently with itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// `sdio_rx_work`: reads the RX batches.
    SdioRx,
    /// `sdio_tx_work`: writes the frames the BH queued.
    SdioTx,
}

/// Why the BH is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// `bh_rx`: messages wait in `rx_queue` (or the firmware is not up yet).
    Rx,
    /// `bh_tx`: frames to send, or TX may restart after a release.
    Tx,
}

/// A wait queue other than the BH's, with the one context that waits on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitQueue {
    /// `wsm_cmd_wq`: a command's sender (`cmd`) waits for its confirm.
    CmdConfirm,
    /// `bh_evt_wq`: a flush (`flush`) waits for every TX buffer to be released.
    BufsReleased,
}

/// What a `WARN_ON` recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning {
    /// `wsm_release_tx_buffer`: `hw_bufs_used` went below zero.
    TxBufferUnderflow {
        /// The value after the decrement.
        hw_bufs_used: i32,
    },
    /// The RX sequence number of a message was not the expected one.
    RxSeqMismatch {
        /// Sequence space (0 normal, 1 special commands).
        space: u8,
        /// The number expected.
        expected: u8,
        /// The number the message carried.
        got: u8,
    },
    /// A message in an RX batch had an impossible length.
    BadRxLength {
        /// The length the message claimed.
        len: u16,
    },
}

/// Kernel-log events that are not WARNs but matter to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `dev_err(.., "wsm_release_tx_buffer failed: %d")` from the direct RX helper.
    ReleaseFailed {
        /// What `wsm_release_tx_buffer` returned.
        ret: i32,
    },
    /// The BH waited 5 s with buffers outstanding and no interrupt: "Missed interrupt?
    /// (N frames outstanding)", and the driver force-closes (C `bh.c:1356-1423`).
    MissedInterrupt {
        /// Frames outstanding.
        hw_bufs_used: i32,
    },
    /// The control byte repeated the last batch's toggle (a stale read): `sdio_rx_work`
    /// reads it again, up to 5 times, without a WARN (C `bes2600_sdio.c`, `retry <= 5`).
    StaleToggleRetry,
    /// The BH hit an error and stopped: no more TX or RX processing.
    BhStopped,
    /// The network stack's frame was dropped because the driver's TX queue was full.
    TxQueueFull,
    /// An skb was dropped because `rx_queue` was full (the BH is not draining it).
    RxQueueFull,
    /// `bes2600_bh_dec_pending_count` found the count at zero: "tx pending count error".
    TxPendingCountError {
        /// Sequence space of the count.
        space: u8,
    },
    /// The monitor timer fired with frames pending: "link break between lmac and host",
    /// and the driver force-closes.
    LinkBreak {
        /// Sequence space whose timer fired.
        space: u8,
        /// `wsm_tx_pending[space]` then.
        pending: i32,
        /// `hw_bufs_used` then.
        hw_bufs_used: i32,
    },
    /// `wsm_cmd_send` gave up waiting for the confirm of command `id` (6 s): -ETIMEDOUT
    /// while the command was never sent, -EBUSY once it was.
    CmdTimeout {
        /// The command's message id.
        id: u16,
        /// Whether it had been sent.
        sent: bool,
    },
    /// `wsm_flush_tx` waited `WSM_CMD_LAST_CHANCE_TIMEOUT` for `hw_bufs_used == 0`; the
    /// driver force-closes (C `wsm.c`, `bes2600_chrdev_wifi_force_close`).
    FlushTimeout {
        /// Frames still outstanding.
        hw_bufs_used: i32,
    },
}

/// CPU work the cost model charges for (no-ops in a kernel build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuOp {
    /// Allocate and fill one skb from a batch message.
    SkbAlloc,
    /// Per-message dispatch (`wsm_handle_rx` body).
    HandleRx,
    /// Build one TX frame.
    TxBuild,
    /// The interrupt handler body.
    IrqHandler,
}

/// The kernel services the data path uses besides memory.
pub trait Platform: Memory {
    /// `queue_work`: false if the item was already pending.
    fn queue_work(&self, work: Work) -> bool;
    /// Wakes the BH's wait queue (after the flag for `reason` went 0 -> 1).
    fn wake_bh(&self, reason: WakeReason);
    /// `wait_event_timeout` on the BH's wait queue: returns true when `ready()` held,
    /// false when `timeout_ms` passed first. `None` waits forever.
    fn bh_wait(&self, ready: &dyn Fn() -> bool, timeout_ms: Option<u32>) -> bool;
    /// `wait_event_timeout` on `wq`: true when `ready()` held, false when `timeout_ms`
    /// passed first. Only the queue's own context waits on it.
    fn wait_event(&self, wq: WaitQueue, ready: &dyn Fn() -> bool, timeout_ms: u32) -> bool;
    /// `wake_up` on `wq`.
    fn wake_up(&self, wq: WaitQueue);
    /// CMD52 read of the control register.
    fn sdio_read_ctrl(&self) -> u8;
    /// CMD53 read of `buf.len()` bytes from the data port.
    fn sdio_read_data(&self, buf: &mut [u8]);
    /// CMD53 write of `buf` to the data port.
    fn sdio_write_data(&self, buf: &[u8]);
    /// Monotonic time, ns.
    fn now_ns(&self) -> u64;
    /// Charges the CPU cost of `op` (the simulator's cost model; nothing in the kernel).
    fn cpu(&self, op: CpuOp);
    /// `WARN_ON`: logs with the call path and continues.
    fn warn(&self, warning: Warning);
    /// Logs `event` as the kernel would.
    fn event(&self, event: Event);
    /// `BUG()`: the invariant is broken; never returns.
    fn bug(&self, what: &'static str) -> !;
    /// `mod_timer` on the TX-pending monitor timer of sequence space `space`: it fires
    /// `timeout_ms` from now and calls [`crate::Bes2600::bh_pending_timeout`] in the
    /// `timer` context (softirq).
    fn mod_pending_timer(&self, space: usize, timeout_ms: u32);
    /// `del_timer` on that timer.
    fn del_pending_timer(&self, space: usize);
    /// Function entry, for call paths in WARNs (ftrace-like; free in a kernel build).
    fn enter(&self, function: &'static str);
    /// Leaves the function entered last (call paths in reports).
    fn leave(&self);
    /// Hands one received data frame of `len` bytes to the network stack.
    fn netif_rx(&self, len: u16);
}

/// Marks a function on the platform's call path until dropped.
pub struct Frame<'a, P: Platform>(&'a P);

impl<'a, P: Platform> Frame<'a, P> {
    /// Enters `function` until the frame is dropped.
    pub fn enter(platform: &'a P, function: &'static str) -> Self {
        platform.enter(function);
        Frame(platform)
    }
}

impl<P: Platform> Drop for Frame<'_, P> {
    fn drop(&mut self) {
        self.0.leave();
    }
}
