//! The SDIO side: the interrupt handler, `sdio_rx_work` (control byte, batch read,
//! `extract_packets`) and `sdio_tx_work` (up to 16 frames per transfer).

use crate::device::{Bes2600, TxKind, TX_FRAME_MAX_BYTES, TX_XFER_MAX_FRAMES};
use crate::platform::{CpuOp, Event, Frame, Platform, Warning, Work};
use crate::wsm;

/// Most batches one run of `sdio_rx_work` reads before it yields the workqueue. The chip
/// reports one batch per control-byte read; a well-behaved chip runs dry long before this,
/// and the bound keeps a stuck control register from pinning the work item forever.
pub const RX_WORK_MAX_BATCHES: usize = 64;
/// Re-reads of a stale control byte before `sdio_rx_work` gives up for this run.
pub const STALE_TOGGLE_RETRIES: u32 = 5;

impl<P: Platform> Bes2600<P> {
    /// The SDIO interrupt (the MMC core's IRQ thread).
    ///
    /// context: irq
    pub fn irq_handler(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_sdio_irq_handler");
        p.cpu(CpuOp::IrqHandler);
        if self.fw_started.get(p) != 0 {
            p.queue_work(Work::SdioRx);
        } else {
            self.bh_wakeup_rx();
        }
    }

    /// Reads batches while the control byte reports one pending; returns how many.
    ///
    /// context: rx_work
    pub fn sdio_rx_work(&self) -> usize {
        let p = &self.plat;
        let _f = Frame::enter(p, "sdio_rx_work");
        // SAFETY: both buffers are owned by rx_work, which never runs concurrently with
        // itself, and no other reference to them exists in this function.
        let (batch_buf, last_toggle) = unsafe { (self.rx_batch_buf.get(), self.rx_last_toggle.get()) };
        let mut batches = 0;
        let mut stale_retries = 0;
        // Bound: every pass reads a batch or counts a stale read, and both are bounded.
        while batches < RX_WORK_MAX_BATCHES {
            let ctrl = p.sdio_read_ctrl();
            let blocks = (ctrl & wsm::CTRL_LEN_MASK) as usize;
            if blocks == 0 {
                break;
            }
            let toggle = ctrl & wsm::CTRL_TOGGLE;
            // The chip flips the toggle with every new batch; the same toggle twice means
            // the control byte is stale (0xFF before the first batch matches neither): read
            // it again, a few times, as the C driver does.
            if toggle == *last_toggle {
                stale_retries += 1;
                if stale_retries > STALE_TOGGLE_RETRIES {
                    break;
                }
                p.event(Event::StaleToggleRetry);
                continue;
            }
            *last_toggle = toggle;
            let len = blocks * wsm::SDIO_BLOCK_BYTES;
            if len > wsm::BATCH_MAX_BYTES {
                p.warn(Warning::BadRxLength { len: len.min(u16::MAX as usize) as u16 });
                break;
            }
            p.sdio_read_data(&mut batch_buf[..len]);
            self.extract_packets(&batch_buf[..len]);
            batches += 1;
            stale_retries = 0;
            #[cfg(not(feature = "c-direct-rx"))]
            self.bh_wakeup_rx();
        }
        // An empty run still tells the BH to look, so it can poll again (the baseline's
        // confirm polling loop lives on this wake).
        #[cfg(not(feature = "c-direct-rx"))]
        if batches == 0 {
            self.bh_wakeup_rx();
        }
        batches
    }

    /// `bes2600_sdio_extract_packets`: one skb per message of the batch.
    fn extract_packets(&self, batch: &[u8]) {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_sdio_extract_packets");
        let parsed = wsm::for_each_msg(batch, |msg| {
            p.cpu(CpuOp::SkbAlloc);
            #[cfg(not(feature = "c-direct-rx"))]
            if self.rx_queue.lock(p).push(msg).is_err() {
                p.event(crate::platform::Event::RxQueueFull);
            }
            #[cfg(feature = "c-direct-rx")]
            match self.handle_rx_skb(msg) {
                Ok(true) => self.bh_wakeup_tx(),
                Ok(false) => {}
                Err(crate::wsm::RxError::Release) => p.event(crate::platform::Event::ReleaseFailed { ret: -1 }),
                Err(_) => {}
            }
        });
        if let Err(bad) = parsed {
            p.warn(Warning::BadRxLength { len: bad.len });
        }
    }

    /// Writes up to 16 frames from `tx_bufferlist` in one transfer; before Patch B it then
    /// queues `sdio_rx_work` to poll for the confirms.
    ///
    /// context: tx_work
    pub fn sdio_tx_work(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "sdio_tx_work");
        // SAFETY: the transfer buffer is owned by tx_work, which never runs concurrently
        // with itself.
        let buf = unsafe { self.tx_xfer_buf.get() };
        let mut offset = 0;
        let more = {
            let mut list = self.tx_bufferlist.lock(p);
            for _ in 0..TX_XFER_MAX_FRAMES {
                let Some(desc) = list.pop() else { break };
                p.cpu(CpuOp::TxBuild);
                let total = wsm::WSM_HDR_LEN + wsm::TX_REQ_HDR_LEN + desc.frame_len as usize;
                if total > TX_FRAME_MAX_BYTES {
                    p.bug("TX frame larger than TX_FRAME_MAX_BYTES");
                }
                let kind = match desc.kind {
                    TxKind::Data => 0,
                    TxKind::Command => 1,
                };
                offset = wsm::put_msg(buf, offset, desc.id, total, &[desc.vif, kind, 0, 0]);
            }
            !list.is_empty()
        };
        if offset > 0 {
            p.sdio_write_data(&buf[..offset]);
        }
        if more {
            p.queue_work(Work::SdioTx);
        }
        // Confirm polling, removed by Patch B together with pipe_read's re-queue: the seed's
        // Patch B baseline has 86 rx_work dispatches/s against 276 tx_work/s, which rules
        // out one rx_work per tx_work.
        #[cfg(not(feature = "patch-b"))]
        p.queue_work(Work::SdioRx);
    }
}
