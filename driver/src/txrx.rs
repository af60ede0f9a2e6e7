//! Message dispatch (`wsm_handle_rx`), TX confirms, and the two producers of TX frames:
//! the network stack's transmit and WSM commands.

use crate::device::{Bes2600, TxDesc, TxKind, WSM_MAX_INPUT_BUFFERS, WSM_MAX_VIFS};
use crate::platform::{CpuOp, Event, Frame, Ordering, Platform};
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
            id if wsm::is_confirm(id) => {
                self.wsm_tx_confirm(msg.body[0]);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// The per-vif bookkeeping of one confirmed frame.
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

    /// Queues a WSM command; false when one is already waiting.
    ///
    /// context: cmd
    pub fn wsm_cmd_send(&self, id: u16, frame_len: u16) -> bool {
        let p = &self.plat;
        let _f = Frame::enter(p, "wsm_cmd_send");
        let placed = {
            let mut slot = self.wsm_cmd.lock(p);
            if slot.is_some() {
                false
            } else {
                *slot = Some(TxDesc { kind: TxKind::Command, id, vif: 0, frame_len });
                true
            }
        };
        if placed {
            self.bh_wakeup_tx();
        }
        placed
    }
}
