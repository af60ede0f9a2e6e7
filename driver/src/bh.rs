//! The BH: a single long-lived work item that waits on the `bh_rx`/`bh_tx` flags, drains
//! `rx_queue` (RX pass) and hands frames to `sdio_tx_work` (TX pass); and the TX buffer
//! accounting of `wsm_alloc_tx_buffer` / `wsm_release_tx_buffer`.

use crate::device::{Bes2600, TxDesc, TxKind, WSM_MAX_INPUT_BUFFERS};
use crate::platform::{Event, Frame, Ordering, Platform, WaitQueue, Warning, Work};
use crate::wsm::{self, RxError, RxMsg};

/// The BH declares a missed interrupt after waiting this long with buffers outstanding.
pub const BH_MISSED_IRQ_TIMEOUT_MS: u32 = 5_000;

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
            let rx = self.bh_rx.swap(p, 0, Ordering::AcqRel) != 0;
            let mut tx = self.bh_tx.swap(p, 0, Ordering::AcqRel) != 0;
            if !woken {
                let hw_bufs_used = self.hw_bufs_used_read();
                if hw_bufs_used > 0 {
                    // "Missed interrupt? (N frames outstanding)": 5 s with frames out and
                    // no interrupt is fatal; the driver force-closes (C `bh.c:1356-1423`).
                    p.event(Event::MissedInterrupt { hw_bufs_used });
                    self.bh_error.set(p, 1);
                    return;
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
            // C counts the confirm down before it looks at the release's result
            // (`bh.c:1079-1083`): a failed release still ends the frame's pending count.
            let ret = self.wsm_release_tx_buffer(1);
            self.bh_dec_pending_count(space);
            if ret < 0 {
                return Err(RxError::Release);
            }
            restart_tx = ret > 0;
        }
        restart_tx |= self.wsm_handle_rx(msg)?;
        Ok(restart_tx)
    }

    /// `wsm_alloc_tx_buffer`: `hw_bufs_used++`, returning the new value.
    pub fn wsm_alloc_tx_buffer(&self) -> i32 {
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
        if after == 0 {
            // A flush waits for this (C `bh.c:238-241`).
            p.wake_up(WaitQueue::BufsReleased);
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
        if tx_burst == 0 {
            // Every buffer is out: the release that ends the throttle wakes the BH (C:
            // `tx_allowed` false, `goto done_rx`).
            return;
        }
        // Bound: at most numInpChBufs frames per pass, the chip's buffer count.
        for _ in 0..tx_burst {
            let used = self.wsm_alloc_tx_buffer();
            let Some((mut desc, more)) = self.wsm_get_tx(used >= num_inp_ch_bufs) else {
                self.wsm_release_tx_buffer(1);
                return;
            };
            let space = wsm::seq_space(desc.id);
            let seq = self.wsm_tx_seq[space].get(p);
            self.wsm_tx_seq[space].set(p, (seq + 1) & 7);
            desc.id = wsm::with_seq(desc.id, seq as u8);
            // Data frames only count against their vif (C `bh.c:1162`).
            if desc.kind == TxKind::Data {
                let vif = desc.vif as usize;
                #[cfg(not(feature = "c-prep-atomic"))]
                self.hw_bufs_used_vif[vif].add(p, 1);
                #[cfg(feature = "c-prep-atomic")]
                self.hw_bufs_used_vif[vif].fetch_add(p, 1, Ordering::Relaxed);
            }
            self.bh_inc_pending_count(space);
            // `bes2600_sdio_pipe_send` lists the frame and queues the TX work for every
            // frame (C `bes2600_sdio.c:1213`): a TX work already running on the other CPU
            // takes the first frames, and the next frame queues it again. C lists it before
            // the frame's vif and pending counts go up (`bh.c:1155-1175`); with Patch C's RX
            // in `sdio_rx_work` a running TX work can send it and its confirm be counted
            // down first ("tx pending count error", seen in the KCSAN lab run of c-v2). The
            // model lists the frame once it is counted: a deviation from C's order, for
            // every variant.
            if self.tx_bufferlist.lock(p).push(desc).is_err() {
                p.bug("tx_bufferlist holds more than numInpChBufs frames");
            }
            p.queue_work(Work::SdioTx);
            // C's `tx_helper` returns "work remains" only while `wsm_get_tx` saw frames
            // behind this one (`*burst`): a pass that emptied the queue ends here, without
            // the alloc/release of an empty `wsm_get_tx` (that pair happens only when the BH
            // was woken with nothing to send, or at the throttle point).
            if !more {
                return;
            }
        }
        // The budget read at the pass's start ran out with frames still queued. With
        // Patch C the confirms are released on the other CPU meanwhile, so buffers may be
        // free again, and no release will wake the BH (only one that ends a throttle
        // does): go round again, as C's `goto tx` re-reads `hw_bufs_used` for every frame
        // (`bh.c`, the BH's `tx:` loop). Found by the quiet link before `stop`: commands
        // had been waking the BH for such frames.
        self.bh_tx.store(p, 1, Ordering::Release);
    }

    /// `wsm_get_tx`: the pending command first; data only when `data_refused` is false.
    /// With the frame, whether frames wait behind it (C's `*burst > 1`, the bursting of a
    /// queue with a TXOP limit: `min(burst, queued + 1)`).
    fn wsm_get_tx(&self, data_refused: bool) -> Option<(TxDesc, bool)> {
        let p = &self.plat;
        // The command goes once (C `wsm_txed` clears `ptr`); its sender waits for the confirm.
        if let Some(cmd) = self.wsm_cmd.lock(p).frame.take() {
            // C sets `*burst = 1` for a command and waits for the next wake-up to send the
            // data behind it; the model goes on when data waits (a documented deviation:
            // nothing here would wake the BH for frames queued before the command).
            let data_waits = !self.tx_queue.lock(p).is_empty();
            return Some((cmd, data_waits));
        }
        // The last buffer is kept for commands; and while `tx_lock` is held data waits.
        if data_refused || self.tx_lock.load(p, Ordering::Acquire) > 0 {
            return None;
        }
        let mut queue = self.tx_queue.lock(p);
        let frame = queue.pop()?;
        Some((frame, !queue.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use crate::testplat::TestPlatform;
    use crate::wsm::{self, RxMsg};
    use crate::{Bes2600, TxKind};

    fn started(bufs: i32) -> Bes2600<TestPlatform> {
        let d = Bes2600::new(TestPlatform::default());
        d.num_inp_ch_bufs.set(&d.plat, bufs);
        d.fw_started.set(&d.plat, 1);
        d
    }

    fn msg(id: u16, seq: u8, body: &[u8]) -> RxMsg {
        let mut m = RxMsg { id: wsm::with_seq(id, seq), len: (4 + body.len()) as u16, body: [0; wsm::RX_BODY_KEPT] };
        m.body[..body.len()].copy_from_slice(body);
        m
    }

    #[test]
    fn release_returns_minus_one_with_a_warn_on_underflow() {
        let d = started(8);
        assert_eq!(d.wsm_release_tx_buffer(1), -1);
        assert_eq!(d.plat.warns.borrow().len(), 1);
    }

    #[test]
    fn release_returns_one_when_tx_had_been_throttled() {
        let d = started(8);
        for _ in 0..7 {
            d.wsm_alloc_tx_buffer();
        }
        assert_eq!(d.wsm_release_tx_buffer(1), 1, "before = 7 = numInpChBufs - 1");
        assert_eq!(d.wsm_release_tx_buffer(1), 0, "before = 6");
        assert_eq!(d.hw_bufs_used_read(), 5);
        assert!(d.plat.warns.borrow().is_empty());
    }

    #[test]
    fn sequence_mismatch_warns_and_fails() {
        let d = started(8);
        assert!(d.handle_rx_skb(msg(wsm::WSM_RECEIVE_IND_ID, 0, &[0; 4])).is_ok());
        assert!(d.handle_rx_skb(msg(wsm::WSM_RECEIVE_IND_ID, 2, &[0; 4])).is_err());
        assert_eq!(d.plat.warns.borrow().len(), 1);
    }

    #[test]
    fn confirms_release_one_and_multi_confirms_release_n() {
        let d = started(8);
        for _ in 0..5 {
            d.wsm_alloc_tx_buffer();
        }
        d.handle_rx_skb(msg(wsm::WSM_TRANSMIT_CNF_ID, 0, &[0, 0])).unwrap();
        assert_eq!(d.hw_bufs_used_read(), 4);
        d.handle_rx_skb(msg(wsm::WSM_MULTI_TRANSMIT_CNF_ID, 1, &[3, 0, 0, 0])).unwrap();
        assert_eq!(d.hw_bufs_used_read(), 1);
        d.handle_rx_skb(msg(0x0C02, 0, &[0, 0])).unwrap();
        assert_eq!(d.hw_bufs_used_read(), 0, "a vendor confirm releases one, in its own sequence space");
    }

    #[test]
    fn startup_indication_sets_num_inp_ch_bufs() {
        let d = Bes2600::new(TestPlatform::default());
        d.handle_rx_skb(msg(wsm::WSM_STARTUP_IND_ID, 0, &[12, 0])).unwrap();
        assert_eq!(d.num_inp_ch_bufs.get(&d.plat), 12);
        assert_eq!(d.fw_started.get(&d.plat), 1);
    }

    #[test]
    fn tx_pass_keeps_the_last_buffer_for_commands() {
        let d = started(4);
        for _ in 0..10 {
            d.xmit(0, 66);
        }
        d.bh_tx_helper();
        assert_eq!(d.hw_bufs_used_read(), 3, "data stops at numInpChBufs - 1");
        d.wsm_cmd.lock(&d.plat).frame =
            Some(crate::TxDesc { kind: TxKind::Command, id: wsm::WSM_READ_MIB_REQ_ID, vif: 0, frame_len: 8 });
        d.bh_tx_helper();
        assert_eq!(d.hw_bufs_used_read(), 4, "a command takes the last buffer");
        let mut list = d.tx_bufferlist.lock(&d.plat);
        let mut kinds = Vec::new();
        let mut seqs = Vec::new();
        while let Some(t) = list.pop() {
            kinds.push(t.kind);
            seqs.push(wsm::seq_of(t.id));
        }
        assert_eq!(kinds, [TxKind::Data, TxKind::Data, TxKind::Data, TxKind::Command]);
        assert_eq!(seqs, [0, 1, 2, 3]);
    }

    #[test]
    fn a_command_confirm_completes_the_command_in_flight_and_wakes_its_sender() {
        use crate::device::WsmCmd;
        use crate::platform::WaitQueue;
        let d = started(8);
        d.wsm_alloc_tx_buffer();
        *d.wsm_cmd.lock(&d.plat) = WsmCmd { frame: None, id: wsm::WSM_READ_MIB_REQ_ID, done: false, ret: -1 };
        d.handle_rx_skb(msg(wsm::WSM_READ_MIB_CNF_ID, 0, &[0, 0])).unwrap();
        let cmd = *d.wsm_cmd.lock(&d.plat);
        assert!(cmd.done && cmd.ret == 0, "{cmd:?}");
        assert_eq!(*d.plat.wake_ups.borrow(), [WaitQueue::BufsReleased, WaitQueue::CmdConfirm]);
        // A late confirm (its sender gave up) changes nothing and wakes nobody.
        *d.wsm_cmd.lock(&d.plat) = WsmCmd::IDLE;
        d.wsm_alloc_tx_buffer();
        d.handle_rx_skb(msg(wsm::WSM_READ_MIB_CNF_ID, 1, &[0, 0])).unwrap();
        assert_eq!(*d.wsm_cmd.lock(&d.plat), WsmCmd::IDLE);
        assert_eq!(d.plat.wake_ups.borrow().len(), 3, "only the emptied buffers' wake-up");
    }

    #[test]
    fn a_command_without_a_confirm_times_out_and_clears_the_slot() {
        use crate::device::WsmCmd;
        use crate::platform::Event;
        let d = started(8);
        assert_eq!(d.wsm_cmd_send(wsm::WSM_READ_MIB_REQ_ID, 8), -110, "never sent: -ETIMEDOUT");
        assert_eq!(*d.wsm_cmd.lock(&d.plat), WsmCmd::IDLE);
        assert!(d.plat.events.borrow().contains(&Event::CmdTimeout { id: wsm::WSM_READ_MIB_REQ_ID, sent: false }));
    }

    #[test]
    fn a_flush_with_buffers_out_times_out_and_says_how_many() {
        use crate::platform::Event;
        let d = started(8);
        d.wsm_alloc_tx_buffer();
        assert!(!d.bes2600_flush());
        assert!(d.plat.events.borrow().contains(&Event::FlushTimeout { hw_bufs_used: 1 }));
        assert_eq!(d.tx_lock.load(&d.plat, crate::platform::Ordering::Acquire), 0, "unlocked again");
        d.wsm_release_tx_buffer(1);
        assert!(d.bes2600_flush(), "nothing out: the flush returns at once");
    }

    #[test]
    fn rx_work_extracts_a_batch_and_checks_the_toggle() {
        let d = started(8);
        let mut batch = vec![0u8; 512];
        let mut off = wsm::put_msg(&mut batch, 0, wsm::with_seq(wsm::WSM_RECEIVE_IND_ID, 0), 8 + 100, &[0; 4]);
        off = wsm::put_msg(&mut batch, off, wsm::with_seq(wsm::WSM_RECEIVE_IND_ID, 1), 8 + 60, &[0; 4]);
        assert!(off < 512);
        // The toggle repeats on every read after the first: re-read 5 times, then give up,
        // without a WARN; the seventh byte is not read.
        d.plat.ctrl_bytes.borrow_mut().extend([0x81; 8]);
        d.plat.batches.borrow_mut().push_back(batch);
        assert_eq!(d.sdio_rx_work(), 1, "the second control byte repeats the toggle: stale");
        assert!(d.plat.warns.borrow().is_empty(), "a stale toggle is retried, not a WARN");
        let retries = d.plat.events.borrow().iter().filter(|e| **e == crate::platform::Event::StaleToggleRetry).count();
        assert_eq!(retries, 5);
        assert_eq!(d.plat.ctrl_bytes.borrow().len(), 8 - 1 - 6, "one good read and six stale ones");
        #[cfg(not(feature = "c-direct-rx"))]
        {
            assert_eq!(d.rx_queue.lock(&d.plat).len(), 2);
            assert!(d.plat.wakes.borrow().contains(&crate::platform::WakeReason::Rx));
            assert!(d.bh_rx_helper().is_ok());
        }
        #[cfg(feature = "c-direct-rx")]
        {
            assert_eq!(d.rx_queue.lock(&d.plat).len(), 0, "messages go straight to handle_rx_skb");
            assert!(d.plat.wakes.borrow().is_empty(), "no BH wake per batch");
        }
        assert_eq!(d.plat.delivered.borrow().as_slice(), &[100, 60]);
    }

    #[test]
    fn pipe_read_polls_for_confirms_only_without_patch_b() {
        let d = started(8);
        d.wsm_alloc_tx_buffer();
        assert!(d.pipe_read().is_none());
        let polled = d.plat.queued.borrow().contains(&crate::platform::Work::SdioRx);
        assert_eq!(polled, cfg!(not(feature = "patch-b")));
    }
}
