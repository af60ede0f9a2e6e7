//! `wsm_tx_pending[]` and its monitor timers (C `bh.c:1292-1337`): the BH counts each
//! frame it sends in its sequence space and arms a 3 s timer on 0 -> 1
//! (`bes2600_bh_inc_pending_count`); the RX bookkeeping counts each confirm down, logs
//! "tx pending count error" at zero, and disarms the timer at 1 -> 0 or re-arms it
//! (`bes2600_bh_dec_pending_count`). The timer firing with frames still pending means the
//! chip stopped confirming: "link break between lmac and host", and the driver
//! force-closes (`bes2600_chrdev_wifi_force_close`).
//!
//! Before Patch C both sides ran in the BH. Patch C moves the decrement into
//! `sdio_rx_work`; the seed's C-prep converts only `hw_bufs_used` and `hw_bufs_used_vif[]`,
//! so the count stays a plain `int` written from two contexts unless `c-prep-pending`.

use crate::device::Bes2600;
#[cfg(feature = "c-prep-pending")]
use crate::platform::Ordering;
use crate::platform::{Event, Frame, Platform};

/// The monitor timer's timeout (`bh.c:1297`).
pub const PENDING_TIMEOUT_MS: u32 = 3_000;

impl<P: Platform> Bes2600<P> {
    /// `bes2600_bh_inc_pending_count`: after a frame of sequence space `space` is sent.
    pub fn bh_inc_pending_count(&self, space: usize) {
        let p = &self.plat;
        #[cfg(not(feature = "c-prep-pending"))]
        let before = self.wsm_tx_pending[space].add(p, 1);
        #[cfg(feature = "c-prep-pending")]
        let before = self.wsm_tx_pending[space].fetch_add(p, 1, Ordering::AcqRel);
        if before == 0 {
            p.mod_pending_timer(space, PENDING_TIMEOUT_MS);
        }
    }

    /// `bes2600_bh_dec_pending_count`: after a confirm of sequence space `space` released
    /// its buffer. The value before the decrement decides what happens to the timer, so
    /// with `c-prep-pending` the count and the timer move together.
    pub fn bh_dec_pending_count(&self, space: usize) {
        let p = &self.plat;
        #[cfg(not(feature = "c-prep-pending"))]
        let before = {
            let v = self.wsm_tx_pending[space].get(p);
            if v > 0 {
                self.wsm_tx_pending[space].set(p, v - 1);
            }
            v
        };
        #[cfg(feature = "c-prep-pending")]
        let before = {
            let v = self.wsm_tx_pending[space].fetch_sub(p, 1, Ordering::AcqRel);
            if v <= 0 {
                // Undo: the count never goes below zero, as in the C driver.
                self.wsm_tx_pending[space].fetch_add(p, 1, Ordering::AcqRel);
            }
            v
        };
        if before <= 0 {
            p.event(Event::TxPendingCountError { space: space as u8 });
        } else if before == 1 {
            p.del_pending_timer(space);
        } else {
            p.mod_pending_timer(space, PENDING_TIMEOUT_MS);
        }
    }

    /// The monitor timer of sequence space `space` fired: frames still pending after 3 s
    /// without a confirm is a link break, and the driver force-closes.
    ///
    /// context: timer
    pub fn bh_pending_timeout(&self, space: usize) {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_bh_pending_timeout");
        #[cfg(not(feature = "c-prep-pending"))]
        let pending = self.wsm_tx_pending[space].get(p);
        #[cfg(feature = "c-prep-pending")]
        let pending = self.wsm_tx_pending[space].load(p, Ordering::Acquire);
        if pending > 0 {
            let hw_bufs_used = self.hw_bufs_used_read();
            p.event(Event::LinkBreak { space: space as u8, pending, hw_bufs_used });
        }
    }
}
