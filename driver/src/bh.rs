//! The BH: a single long-lived work item that waits on the `bh_rx`/`bh_tx` flags, drains
//! `rx_queue` (RX pass) and hands frames to `sdio_tx_work` (TX pass); and the TX buffer
//! accounting of `wsm_alloc_tx_buffer` / `wsm_release_tx_buffer`.

use crate::device::{Bes2600, TxDesc, TxKind, WSM_MAX_INPUT_BUFFERS};
use crate::platform::{Event, Frame, Ordering, Platform, Warning, Work};
use crate::wsm::{self, RxMsg};

/// The BH declares a missed interrupt after waiting this long with buffers outstanding.
pub const BH_MISSED_IRQ_TIMEOUT_MS: u32 = 5_000;

/// Why handling one received message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// `wsm_release_tx_buffer` returned -1.
    Release,
    /// The sequence number was not the expected one.
    Sequence,
    /// The startup indication carried an impossible buffer count.
    Startup,
}

impl<P: Platform> Bes2600<P> {
    /// The BH loop. Runs until `bh_term` or an error; each pass handles RX (when `bh_rx`
    /// was set, or on a missed-interrupt timeout) and then TX.
    ///
    /// context: bh
    pub fn bh_loop(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_bh");
        // Unbounded by design: the BH lives as long as the driver; it leaves on `bh_term`
        // or on an error.
        loop {
            let outstanding = self.hw_bufs_used_read();
            let timeout_ms = if outstanding > 0 { Some(BH_MISSED_IRQ_TIMEOUT_MS) } else { None };
            let ready = || {
                self.bh_rx.load(p, Ordering::Acquire) != 0
                    || self.bh_tx.load(p, Ordering::Acquire) != 0
                    || self.bh_term.load(p, Ordering::Acquire) != 0
            };
            let woken = p.bh_wait(&ready, timeout_ms);
            if self.bh_term.load(p, Ordering::Acquire) != 0 {
                return;
            }
            let mut rx = self.bh_rx.swap(p, 0, Ordering::AcqRel) != 0;
            let mut tx = self.bh_tx.swap(p, 0, Ordering::AcqRel) != 0;
            if !woken {
                let hw_bufs_used = self.hw_bufs_used_read();
                if hw_bufs_used > 0 {
                    // "Missed interrupt?": poll the chip once.
                    p.event(Event::MissedInterrupt { hw_bufs_used });
                    p.queue_work(Work::SdioRx);
                    rx = true;
                }
            }
            if rx {
                match self.bh_rx_helper() {
                    Ok(restart_tx) => tx |= restart_tx,
                    Err(_) => {
                        self.bh_error.set(p, 1);
                        p.event(Event::BhStopped);
                        return;
                    }
                }
            }
            if tx {
                self.bh_tx_helper();
            }
        }
    }

    /// Drains `rx_queue`. Returns whether a release asked for TX to restart.
    fn bh_rx_helper(&self) -> Result<bool, RxError> {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_bh_rx_helper");
        #[cfg_attr(feature = "c-direct-rx", allow(unused_mut))]
        let mut restart_tx = false;
        // Bound: the queue holds at most RX_QUEUE_CAP skbs; one more read sees it empty.
        for _ in 0..=crate::device::RX_QUEUE_CAP {
            let Some(msg) = self.pipe_read() else { break };
            #[cfg(not(feature = "c-direct-rx"))]
            {
                restart_tx |= self.handle_rx_skb(msg)?;
            }
            // After Patch C nothing fills rx_queue; a message here would be a bug of the
            // minimum-diff scope, dropped like an skb freed on an error path.
            #[cfg(feature = "c-direct-rx")]
            let _ = msg;
        }
        Ok(restart_tx)
    }

    /// `bes2600_sdio_pipe_read`: takes one skb off `rx_queue`.
    ///
    /// context: bh
    pub fn pipe_read(&self) -> Option<RxMsg> {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_sdio_pipe_read");
        let msg = self.rx_queue.lock(p).pop();
        if msg.is_none() {
            if self.fw_started.get(p) == 0 {
                // Before the firmware is up the interrupt wakes the BH; the read itself
                // is done by sdio_rx_work.
                p.queue_work(Work::SdioRx);
            }
            // Polling for confirms: removed by Patch B (confirms raise an interrupt).
            #[cfg(not(feature = "patch-b"))]
            if self.hw_bufs_used_read() > 0 {
                p.queue_work(Work::SdioRx);
            }
        }
        msg
    }

    /// `bes2600_bh_handle_rx_skb`: the per-message bookkeeping: sequence check, one TX
    /// buffer released per confirm, then dispatch. Returns whether TX must restart.
    ///
    /// Runs in the BH, or with `c-direct-rx` in `sdio_rx_work`.
    pub fn handle_rx_skb(&self, msg: RxMsg) -> Result<bool, RxError> {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_bh_handle_rx_skb");
        let space = wsm::seq_space(msg.id);
        let expected = self.wsm_rx_seq[space].get(p);
        let got = wsm::seq_of(msg.id);
        if got as i32 != expected {
            p.warn(Warning::RxSeqMismatch { space: space as u8, expected: expected as u8, got });
            return Err(RxError::Sequence);
        }
        self.wsm_rx_seq[space].set(p, (expected + 1) & 7);

        let mut restart_tx = false;
        if wsm::is_confirm(msg.id) {
            match self.wsm_release_tx_buffer(1) {
                ret if ret < 0 => return Err(RxError::Release),
                ret => restart_tx = ret > 0,
            }
        }
        restart_tx |= self.wsm_handle_rx(msg)?;
        Ok(restart_tx)
    }

    /// `wsm_alloc_tx_buffer`: `hw_bufs_used++`, returning the new value.
    fn wsm_alloc_tx_buffer(&self) -> i32 {
        let p = &self.plat;
        #[cfg(not(feature = "c-prep-atomic"))]
        let used = self.hw_bufs_used.add(p, 1) + 1;
        #[cfg(feature = "c-prep-atomic")]
        let used = self.hw_bufs_used.fetch_add(p, 1, Ordering::Relaxed) + 1;
        if used > self.num_inp_ch_bufs.get(p) {
            p.bug("hw_bufs_used > numInpChBufs");
        }
        used
    }

    /// `wsm_release_tx_buffer`: returns -1 (with a WARN) when `hw_bufs_used` went below
    /// zero, 1 when the value before the subtraction was `>= numInpChBufs - 1` (TX had been
    /// throttled: restart it), 0 otherwise.
    pub fn wsm_release_tx_buffer(&self, count: i32) -> i32 {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_release_tx_buffer");
        // The unlocked read-modify-write of the C driver: a plain load, then a plain store.
        #[cfg(not(feature = "c-prep-atomic"))]
        let before = self.hw_bufs_used.add(p, -count);
        #[cfg(feature = "c-prep-atomic")]
        let before = self.hw_bufs_used.fetch_sub(p, count, Ordering::Release);
        let after = before - count;
        if after < 0 {
            p.warn(Warning::TxBufferUnderflow { hw_bufs_used: after });
            return -1;
        }
        if before >= self.num_inp_ch_bufs.get(p) - 1 {
            1
        } else {
            0
        }
    }

    /// The TX pass: `tx_burst = numInpChBufs - hw_bufs_used`; per frame one buffer, a
    /// command always, a data frame only while a buffer stays free for commands.
    fn bh_tx_helper(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_bh_tx_helper");
        if self.fw_started.get(p) == 0 {
            return;
        }
        let num_inp_ch_bufs = self.num_inp_ch_bufs.get(p);
        let tx_burst = (num_inp_ch_bufs - self.hw_bufs_used_read()).clamp(0, WSM_MAX_INPUT_BUFFERS);
        let mut handed = 0;
        // Bound: at most numInpChBufs frames per pass, the chip's buffer count.
        for _ in 0..tx_burst {
            let used = self.wsm_alloc_tx_buffer();
            let Some(mut desc) = self.wsm_get_tx(used >= num_inp_ch_bufs) else {
                self.wsm_release_tx_buffer(1);
                break;
            };
            let space = wsm::seq_space(desc.id);
            let seq = self.wsm_tx_seq[space].get(p);
            self.wsm_tx_seq[space].set(p, (seq + 1) & 7);
            desc.id = wsm::with_seq(desc.id, seq as u8);
            if self.tx_bufferlist.lock(p).push(desc).is_err() {
                p.bug("tx_bufferlist holds more than numInpChBufs frames");
            }
            let vif = desc.vif as usize;
            #[cfg(not(feature = "c-prep-atomic"))]
            {
                self.hw_bufs_used_vif[vif].add(p, 1);
                self.wsm_tx_pending[vif].add(p, 1);
            }
            #[cfg(feature = "c-prep-atomic")]
            {
                self.hw_bufs_used_vif[vif].fetch_add(p, 1, Ordering::Relaxed);
                self.wsm_tx_pending[vif].fetch_add(p, 1, Ordering::Relaxed);
            }
            handed += 1;
        }
        if handed > 0 {
            p.queue_work(Work::SdioTx);
        }
    }

    /// `wsm_get_tx`: the pending command first; data only when `data_refused` is false.
    fn wsm_get_tx(&self, data_refused: bool) -> Option<TxDesc> {
        let p = &self.plat;
        if let Some(cmd) = self.wsm_cmd.lock(p).take() {
            debug_assert_eq!(cmd.kind, TxKind::Command);
            return Some(cmd);
        }
        if data_refused {
            return None;
        }
        self.tx_queue.lock(p).pop()
    }
}
