//! Message dispatch (`wsm_handle_rx`), TX confirms, and the producers and gates of TX
//! frames: the network stack's transmit, WSM commands and their round trip (send, wait
//! for the confirm, time out), `tx_lock` and the flush that waits for every buffer.

use crate::device::{Bes2600, TxDesc, TxKind, WsmCmd, WSM_MAX_INPUT_BUFFERS, WSM_MAX_VIFS};
use crate::platform::{CpuOp, Event, Frame, Ordering, Platform, WaitQueue};
use crate::wsm::{self, RxError, RxMsg};

impl<P: Platform> Bes2600<P> {
    /// `wsm_handle_rx`: dispatch by message id. Returns whether TX must restart.
    pub(crate) fn wsm_handle_rx(&self, msg: RxMsg) -> Result<bool, RxError> {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_handle_rx");
        match wsm::msg_id(msg.id) {
            wsm::WSM_STARTUP_IND_ID => {
                let bufs = u16::from_le_bytes([msg.body[0], msg.body[1]]) as i32;
                if !(2..=WSM_MAX_INPUT_BUFFERS).contains(&bufs) {
                    return Err(RxError::Startup);
                }
                self.num_inp_ch_bufs.set(p, bufs);
                self.fw_started.set(p, 1);
                Ok(false)
            }
            wsm::WSM_RECEIVE_IND_ID => {
                p.cpu(CpuOp::HandleRx);
                p.netif_rx(msg.frame_len());
                Ok(false)
            }
            wsm::WSM_MULTI_TRANSMIT_CNF_ID => {
                let count = (msg.body[0] as usize).min(wsm::RX_BODY_KEPT - 1);
                for &vif in &msg.body[1..1 + count] {
                    self.wsm_tx_confirm(vif);
                }
                if count > 1 {
                    let ret = self.wsm_release_tx_buffer(count as i32 - 1);
                    if ret < 0 {
                        return Err(RxError::Release);
                    }
                    // The other confirms of the batch, each counted down (C `wsm.c:665`).
                    for _ in 1..count {
                        self.bh_dec_pending_count(wsm::seq_space(msg.id));
                    }
                    return Ok(ret > 0);
                }
                Ok(false)
            }
            wsm::WSM_TRANSMIT_CNF_ID => {
                self.wsm_tx_confirm(msg.body[0]);
                Ok(false)
            }
            id if wsm::is_confirm(id) => {
                self.wsm_cmd_confirm(id);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// A command's confirm: its result for the waiting sender, who is woken (C
    /// `wsm.c:2249-2360`). A confirm for no command in flight (it came after the sender
    /// gave up) is dropped.
    fn wsm_cmd_confirm(&self, confirm_id: u16) {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_cmd_confirm");
        let mine = {
            let mut cmd = self.wsm_cmd.lock(p);
            let mine = cmd.id != WsmCmd::NONE && (cmd.id | wsm::CONFIRM_BIT) == confirm_id;
            if mine {
                cmd.ret = 0;
                cmd.done = true;
            }
            mine
        };
        if mine {
            p.wake_up(WaitQueue::CmdConfirm);
        }
    }

    /// The per-vif bookkeeping of one confirmed data frame (C `wsm.c:629`: only transmit
    /// and multi-transmit confirms release a vif's share).
    fn wsm_tx_confirm(&self, vif: u8) {
        let p = &self.plat;
        let vif = (vif as usize).min(WSM_MAX_VIFS - 1);
        #[cfg(not(feature = "c-prep-atomic"))]
        self.hw_bufs_used_vif[vif].add(p, -1);
        #[cfg(feature = "c-prep-atomic")]
        self.hw_bufs_used_vif[vif].fetch_sub(p, 1, Ordering::Release);
    }

    /// The network stack hands a data frame down (`ndo_start_xmit`). Returns false when
    /// the queue was full and the frame dropped.
    ///
    /// context: net_tx
    pub fn xmit(&self, vif: u8, frame_len: u16) -> bool {
        let p = &self.plat;
        let _f = Frame::enter(p, "bes2600_tx");
        let desc = TxDesc { kind: TxKind::Data, id: wsm::WSM_TRANSMIT_REQ_ID, vif, frame_len };
        let queued = self.tx_queue.lock(p).push(desc).is_ok();
        if !queued {
            p.event(Event::TxQueueFull);
        }
        self.bh_wakeup_tx();
        queued
    }

    /// `wsm_lock_tx_async`: data frames wait from now on (commands still go).
    ///
    /// context: cmd
    pub fn wsm_lock_tx_async(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_lock_tx_async");
        self.tx_lock.fetch_add(p, 1, Ordering::AcqRel);
    }

    /// `wsm_unlock_tx`: the last unlock wakes the BH for the data frames that waited.
    ///
    /// context: cmd
    pub fn wsm_unlock_tx(&self) {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_unlock_tx");
        let before = self.tx_lock.fetch_sub(p, 1, Ordering::AcqRel);
        if before <= 0 {
            p.bug("wsm_unlock_tx without a lock");
        }
        if before == 1 {
            self.bh_wakeup_tx();
        }
    }

    /// `wsm_cmd_send`: places the command for the BH, wakes it, and waits up to 6 s for
    /// the confirm (C `wsm.c:1840-1955`). Returns the confirm's result, or the C driver's
    /// -ETIMEDOUT (never sent) / -EBUSY (sent, no confirm) after the timeout.
    ///
    /// context: cmd
    pub fn wsm_cmd_send(&self, id: u16, frame_len: u16) -> i32 {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_cmd_send");
        {
            let mut cmd = self.wsm_cmd.lock(p);
            if cmd.id != WsmCmd::NONE {
                // C: BUG_ON(wsm_cmd.ptr); the command semaphore keeps a second sender out.
                p.bug("wsm_cmd_send with a command in flight");
            }
            *cmd = WsmCmd {
                frame: Some(TxDesc { kind: TxKind::Command, id, vif: 0, frame_len }),
                id,
                done: false,
                ret: 0,
            };
        }
        self.bh_wakeup_tx();
        let confirmed = p.wait_event(WaitQueue::CmdConfirm, &|| self.wsm_cmd.lock(p).done, WSM_CMD_TIMEOUT_MS);
        let mut cmd = self.wsm_cmd.lock(p);
        let ret = if confirmed {
            cmd.ret
        } else {
            let sent = cmd.frame.is_none();
            p.event(Event::CmdTimeout { id, sent });
            if sent {
                -EBUSY
            } else {
                -ETIMEDOUT
            }
        };
        *cmd = WsmCmd::IDLE;
        ret
    }

    /// `wsm_lock_tx`: takes `tx_lock` and, as the first holder, flushes: waits until the
    /// chip has confirmed every buffer. mac80211's flush and the control paths call it.
    ///
    /// context: flush
    pub fn wsm_lock_tx(&self) -> bool {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_lock_tx");
        if self.tx_lock.fetch_add(p, 1, Ordering::AcqRel) == 0 {
            return self.wsm_flush_tx();
        }
        true
    }

    /// `wsm_flush_tx`: with `tx_lock` held, waits for `hw_bufs_used == 0`, woken by the
    /// release that empties it; after `WSM_CMD_LAST_CHANCE_TIMEOUT` the driver force-closes
    /// (C `wsm.c`, `bes2600_chrdev_wifi_force_close`).
    ///
    /// context: flush
    pub fn wsm_flush_tx(&self) -> bool {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_flush_tx");
        if self.tx_lock.load(p, Ordering::Acquire) <= 0 {
            p.bug("wsm_flush_tx without tx_lock");
        }
        if self.hw_bufs_used_read() == 0 {
            return true;
        }
        if p.wait_event(WaitQueue::BufsReleased, &|| self.hw_bufs_used_read() == 0, WSM_CMD_LAST_CHANCE_TIMEOUT_MS) {
            return true;
        }
        p.event(Event::FlushTimeout { hw_bufs_used: self.hw_bufs_used_read() });
        false
    }

    /// mac80211's flush: lock TX (flushing), then unlock (`bes2600_flush`).
    ///
    /// context: flush
    pub fn bes2600_flush(&self) -> bool {
        let flushed = self.wsm_lock_tx();
        self.wsm_unlock_tx();
        flushed
    }
}

/// `WSM_CMD_TIMEOUT`: how long `wsm_cmd_send` waits for a confirm.
pub const WSM_CMD_TIMEOUT_MS: u32 = 6_000;
/// `WSM_CMD_LAST_CHANCE_TIMEOUT` (bes2600: `HZ * 20 / 2`): how long a flush waits.
pub const WSM_CMD_LAST_CHANCE_TIMEOUT_MS: u32 = 10_000;
const ETIMEDOUT: i32 = 110;
const EBUSY: i32 = 16;
