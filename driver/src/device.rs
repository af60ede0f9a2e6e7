//! `struct bes2600_common` of the model: every piece of state the data path shares
//! between contexts, each with its contract (see the crate docs for the convention).

use crate::platform::{LockId, Ordering, Platform, WakeReason};
use crate::ring::Ring;
use crate::shared::{Atomic, SingleWriter};
use crate::shared::{Owned, SpinLock};
use crate::wsm::{self, RxMsg};
use core::mem::MaybeUninit;

/// Most frames `sdio_tx_work` writes in one transfer.
pub const TX_XFER_MAX_FRAMES: usize = 16;
/// Largest TX frame of the model (a TCP ACK or a WSM command, with headers).
pub const TX_FRAME_MAX_BYTES: usize = 128;
pub const TX_XFER_MAX_BYTES: usize = TX_XFER_MAX_FRAMES * TX_FRAME_MAX_BYTES;

/// The features this build of the driver was compiled with.
pub const FEATURES: &[&str] = &[
    #[cfg(feature = "patch-b")]
    "patch-b",
    #[cfg(feature = "c-prep-atomic")]
    "c-prep-atomic",
    #[cfg(feature = "c-prep-pending")]
    "c-prep-pending",
    #[cfg(feature = "c-direct-rx")]
    "c-direct-rx",
];

/// Virtual interfaces the chip serves.
pub const WSM_MAX_VIFS: usize = 2;
/// Largest `numInpChBufs` the driver accepts from the startup indication.
pub const WSM_MAX_INPUT_BUFFERS: i32 = 32;
/// Capacity of `rx_queue` (skbs between `sdio_rx_work` and the BH).
pub const RX_QUEUE_CAP: usize = 256;
/// Capacity of the network stack's TX queue in the driver.
pub const TX_QUEUE_CAP: usize = 64;

/// What a TX frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// A data frame from the network stack.
    Data,
    /// A WSM command (it may take the input buffer kept for commands).
    Command,
}

/// A frame handed from the BH to `sdio_tx_work`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxDesc {
    /// Data or command.
    pub kind: TxKind,
    /// Message id; the BH stamps the sequence bits.
    pub id: u16,
    /// The virtual interface the frame belongs to.
    pub vif: u8,
    /// Frame bytes after the transmit-request header.
    pub frame_len: u16,
}

impl TxDesc {
    /// A free slot of a ring.
    pub const EMPTY: TxDesc = TxDesc { kind: TxKind::Data, id: 0, vif: 0, frame_len: 0 };
}

/// A command from `wsm_cmd_send` to its confirm (C `struct wsm_cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsmCmd {
    /// The frame until the BH hands it to the chip (C `ptr`).
    pub frame: Option<TxDesc>,
    /// The command's id while it is in flight; `WsmCmd::NONE` when no command is.
    pub id: u16,
    /// The confirm came; `ret` holds its result.
    pub done: bool,
    pub ret: i32,
}

impl WsmCmd {
    /// C's `wsm_cmd.cmd = 0xFFFF`: no command in flight.
    pub const NONE: u16 = 0xFFFF;
    pub const IDLE: WsmCmd = WsmCmd { frame: None, id: WsmCmd::NONE, done: false, ret: 0 };
}

/// The driver's shared state and its platform.
pub struct Bes2600<P: Platform> {
    /// contract: init
    pub plat: P,

    /// Set when the startup indication has been handled; before that the interrupt wakes
    /// the BH directly and no TX is possible.
    #[cfg_attr(not(feature = "c-direct-rx"), doc = "contract: writers(bh)")]
    #[cfg_attr(feature = "c-direct-rx", doc = "contract: writers(rx_work)")]
    pub fw_started: SingleWriter<P::Word>,
    /// `wsm_caps.numInpChBufs`: the chip's input buffers, from the startup indication.
    #[cfg_attr(not(feature = "c-direct-rx"), doc = "contract: writers(bh)")]
    #[cfg_attr(feature = "c-direct-rx", doc = "contract: writers(rx_work)")]
    pub num_inp_ch_bufs: SingleWriter<P::Word>,

    /// Buffers handed to the chip and not yet confirmed.
    /// contract: writers(bh)
    #[cfg(not(feature = "c-prep-atomic"))]
    pub hw_bufs_used: SingleWriter<P::Word>,
    /// Buffers handed to the chip and not yet confirmed.
    /// contract: atomic
    #[cfg(feature = "c-prep-atomic")]
    pub hw_bufs_used: Atomic<P::Word>,

    /// Per-vif share of `hw_bufs_used`.
    /// contract: writers(bh)
    #[cfg(not(feature = "c-prep-atomic"))]
    pub hw_bufs_used_vif: [SingleWriter<P::Word>; WSM_MAX_VIFS],
    /// Per-vif share of `hw_bufs_used`.
    /// contract: atomic
    #[cfg(feature = "c-prep-atomic")]
    pub hw_bufs_used_vif: [Atomic<P::Word>; WSM_MAX_VIFS],

    /// `wsm_tx_pending[]`: frames sent and not yet confirmed, per sequence space (0 normal,
    /// 1 special commands; C `bes2600.h:395`). The BH increments it after each send and
    /// arms the monitor timer on 0 -> 1; the RX bookkeeping decrements it after each
    /// confirm's release and disarms or re-arms the timer.
    /// contract: writers(bh)
    #[cfg(not(feature = "c-prep-pending"))]
    pub wsm_tx_pending: [SingleWriter<P::Word>; 2],
    /// `wsm_tx_pending[]` as an `atomic_t` (C-prep's missing part: bench's audit found it).
    /// contract: atomic
    #[cfg(feature = "c-prep-pending")]
    pub wsm_tx_pending: [Atomic<P::Word>; 2],

    /// Next expected RX sequence number per sequence space.
    #[cfg_attr(not(feature = "c-direct-rx"), doc = "contract: writers(bh)")]
    #[cfg_attr(feature = "c-direct-rx", doc = "contract: writers(rx_work)")]
    pub wsm_rx_seq: [SingleWriter<P::Word>; 2],
    /// Next TX sequence number per sequence space.
    /// contract: writers(bh)
    pub wsm_tx_seq: [SingleWriter<P::Word>; 2],

    /// `tx_lock`: while above zero, data frames wait and commands still go; the control
    /// paths (config, scan, join) take it around a change (C `wsm.c:1961-2106`).
    /// contract: atomic
    pub tx_lock: Atomic<P::Word>,

    /// BH wake flags: RX work to do, TX work to do, terminate.
    /// contract: atomic
    pub bh_rx: Atomic<P::Word>,
    /// contract: atomic
    pub bh_tx: Atomic<P::Word>,
    /// contract: atomic
    pub bh_term: Atomic<P::Word>,
    /// Set when the BH stopped on an error.
    /// contract: writers(bh)
    pub bh_error: SingleWriter<P::Word>,

    /// skbs from `sdio_rx_work` to the BH.
    /// contract: lock(rx_queue_lock)
    pub rx_queue: SpinLock<P::Word, Ring<RxMsg, RX_QUEUE_CAP>>,
    /// Frames from the BH to `sdio_tx_work`; never more than `numInpChBufs`.
    /// contract: lock(tx_bufferlock)
    pub tx_bufferlist: SpinLock<P::Word, Ring<TxDesc, { WSM_MAX_INPUT_BUFFERS as usize }>>,
    /// Data frames from the network stack waiting for a buffer.
    /// contract: lock(tx_queue_lock)
    pub tx_queue: SpinLock<P::Word, Ring<TxDesc, TX_QUEUE_CAP>>,
    /// `wsm_cmd`: the one command in flight, from `wsm_cmd_send` to its confirm.
    /// contract: lock(wsm_cmd_lock)
    pub wsm_cmd: SpinLock<P::Word, WsmCmd>,

    /// The last control byte toggle seen (bit 7); 0xFF before the first batch.
    /// contract: owner(rx_work)
    pub rx_last_toggle: Owned<u8>,
    /// DMA buffer for one RX batch.
    /// contract: owner(rx_work)
    pub rx_batch_buf: Owned<[u8; wsm::BATCH_MAX_BYTES]>,
    /// DMA buffer for one TX transfer.
    /// contract: owner(tx_work)
    pub tx_xfer_buf: Owned<[u8; TX_XFER_MAX_BYTES]>,
}

impl<P: Platform> Bes2600<P> {
    /// context: probe
    pub fn new(plat: P) -> Self {
        let mut slot = MaybeUninit::<Self>::zeroed();
        // SAFETY: `slot` is zero-filled and writable, and `init_zeroed_in_place` writes
        // every field that zero bytes do not already hold.
        unsafe {
            Self::init_zeroed_in_place(slot.as_mut_ptr(), plat);
            slot.assume_init()
        }
    }

    /// Writes a new device into zero-filled memory field by field. A kernel stack (16 KiB)
    /// cannot hold a device (the RX batch buffer alone is 32 KiB), so the kernel entry
    /// builds it straight in the heap; `new` uses the same code.
    ///
    /// # Safety
    /// `slot` must be valid for writes of `Self`, zero-filled, and not hold a device.
    ///
    /// context: probe
    pub unsafe fn init_zeroed_in_place(slot: *mut Self, plat: P) {
        use core::ptr::addr_of_mut as field;
        // SAFETY: every write is to a field of `slot` (valid for writes: the caller's
        // contract); `ptr::write` drops nothing, so the zero bytes never act as a value.
        unsafe {
            field!((*slot).plat).write(plat);
            let p = &*core::ptr::addr_of!((*slot).plat);
            let named = |f: &'static str| SingleWriter::named(p, f, 0);
            let atomic = |f: &'static str| Atomic::named(p, f, 0);
            field!((*slot).fw_started).write(named("Bes2600.fw_started"));
            field!((*slot).num_inp_ch_bufs).write(named("Bes2600.num_inp_ch_bufs"));
            #[cfg(not(feature = "c-prep-atomic"))]
            {
                field!((*slot).hw_bufs_used).write(named("Bes2600.hw_bufs_used"));
                field!((*slot).hw_bufs_used_vif)
                    .write([named("Bes2600.hw_bufs_used_vif"), named("Bes2600.hw_bufs_used_vif")]);
            }
            #[cfg(feature = "c-prep-atomic")]
            {
                field!((*slot).hw_bufs_used).write(atomic("Bes2600.hw_bufs_used"));
                field!((*slot).hw_bufs_used_vif)
                    .write([atomic("Bes2600.hw_bufs_used_vif"), atomic("Bes2600.hw_bufs_used_vif")]);
            }
            #[cfg(not(feature = "c-prep-pending"))]
            field!((*slot).wsm_tx_pending).write([named("Bes2600.wsm_tx_pending"), named("Bes2600.wsm_tx_pending")]);
            #[cfg(feature = "c-prep-pending")]
            field!((*slot).wsm_tx_pending).write([atomic("Bes2600.wsm_tx_pending"), atomic("Bes2600.wsm_tx_pending")]);
            field!((*slot).wsm_rx_seq).write([named("Bes2600.wsm_rx_seq"), named("Bes2600.wsm_rx_seq")]);
            field!((*slot).wsm_tx_seq).write([named("Bes2600.wsm_tx_seq"), named("Bes2600.wsm_tx_seq")]);
            field!((*slot).tx_lock).write(atomic("Bes2600.tx_lock"));
            field!((*slot).bh_rx).write(atomic("Bes2600.bh_rx"));
            field!((*slot).bh_tx).write(atomic("Bes2600.bh_tx"));
            field!((*slot).bh_term).write(atomic("Bes2600.bh_term"));
            field!((*slot).bh_error).write(named("Bes2600.bh_error"));
            // An empty ring of RxMsg::EMPTY is all zero bytes (see the ring's test).
            SpinLock::init_around_zeroed(field!((*slot).rx_queue), p, LockId::RxQueue);
            field!((*slot).tx_bufferlist).write(SpinLock::new(p, LockId::TxBuffer, Ring::new(TxDesc::EMPTY)));
            field!((*slot).tx_queue).write(SpinLock::new(p, LockId::TxQueue, Ring::new(TxDesc::EMPTY)));
            field!((*slot).wsm_cmd).write(SpinLock::new(p, LockId::Cmd, WsmCmd::IDLE));
            field!((*slot).rx_last_toggle).write(Owned::new(0xFF));
            // rx_batch_buf and tx_xfer_buf start as the zero bytes they already are.
        }
    }

    /// Reads `hw_bufs_used` (`atomic_read` with `c-prep-atomic`).
    pub fn hw_bufs_used_read(&self) -> i32 {
        #[cfg(not(feature = "c-prep-atomic"))]
        let used = self.hw_bufs_used.get(&self.plat);
        #[cfg(feature = "c-prep-atomic")]
        let used = self.hw_bufs_used.load(&self.plat, Ordering::Acquire);
        used
    }

    /// Sets the BH's RX flag and wakes it on the 0 -> 1 transition only.
    pub fn bh_wakeup_rx(&self) {
        if self.bh_rx.swap(&self.plat, 1, Ordering::AcqRel) == 0 {
            self.plat.wake_bh(WakeReason::Rx);
        }
    }

    /// Sets the BH's TX flag and wakes it on the 0 -> 1 transition only.
    pub fn bh_wakeup_tx(&self) {
        if self.bh_tx.swap(&self.plat, 1, Ordering::AcqRel) == 0 {
            self.plat.wake_bh(WakeReason::Tx);
        }
    }

    /// Asks the BH to exit its loop.
    ///
    /// context: probe
    pub fn stop(&self) {
        self.bh_term.store(&self.plat, 1, Ordering::Release);
        self.plat.wake_bh(WakeReason::Tx);
    }
}
