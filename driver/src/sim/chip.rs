//! The chip and its firmware, as the host sees them over SDIO: the RX buffer filled by
//! frames arriving over the air at the offered rate, the control byte with its toggle,
//! batches of up to 16 messages, input buffers for TX frames, airtime, confirms and
//! multi-confirms, the interrupt line, and the startup indication.
//!
//! # Invariants
//! `in_use <= num_inp_ch_bufs` (a frame beyond that asserts the firmware: the chip wedges);
//! `rx_bytes_held` counts data bytes in `fifo` and in the locked batch.

use super::cost::CostModel;
use super::rng::Rng;
use crate::wsm;
use std::collections::VecDeque;

/// A message the chip will send to the host.
#[derive(Clone, Copy, Debug)]
struct OutMsg {
    /// Id without sequence bits.
    id: u16,
    total_len: u16,
    body: [u8; 20],
    body_len: u8,
    /// Counts against the RX buffer (data frames).
    data: bool,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    done_at_ns: u64,
    command: bool,
    vif: u8,
}

/// Firmware counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChipStats {
    pub frames_arrived: u64,
    pub frames_dropped: u64,
    pub bytes_arrived: u64,
    pub batches_sent: u64,
    pub tx_frames: u64,
    pub tx_data_frames: u64,
    pub confirms_sent: u64,
    pub multi_confirms_sent: u64,
    /// Frames the TCP sender held back for want of ACKs.
    pub sender_stalled: u64,
    /// Times the `slow-air` fault held the air.
    pub fault_slow_air: u64,
    /// A data frame left exactly one input buffer free (the host's throttle point).
    pub data_at_throttle: u64,
    /// A command took the last input buffer (the one the host keeps for commands).
    pub command_took_last_buffer: u64,
}

pub struct Chip {
    cost: CostModel,
    traffic: Rng,
    /// Draws of the faults only (so a run without faults draws exactly as before).
    faults: Rng,
    offered_bytes_per_s: f64,
    next_arrival_at_ns: u64,
    next_arrival_len: u16,
    booted: bool,
    fifo: VecDeque<OutMsg>,
    rx_bytes_held: u32,
    locked: Option<(u8, Vec<OutMsg>, u32)>,
    toggle: u8,
    batch_ready_at_ns: u64,
    irq_asserted: bool,
    in_use: u16,
    air_free_at_ns: u64,
    in_flight: VecDeque<InFlight>,
    rx_seq: [u8; 2],
    tx_seq_expected: [u8; 2],
    /// When the last TCP ACK went over the air (the sender stalls without ACKs).
    last_ack_air_ns: u64,
    /// When and why the firmware stopped answering.
    pub wedged: Option<(u64, String)>,
    /// The first breach of the host protocol the firmware can see without wedging (a
    /// data frame in the input buffer the host keeps for commands), and how many.
    pub protocol_breach: Option<(u64, String)>,
    pub protocol_breaches: u64,
    pub stats: ChipStats,
}

impl Chip {
    pub fn new(cost: &CostModel, seed: u64) -> Self {
        Chip {
            cost: cost.clone(),
            traffic: Rng::new(seed, 1),
            faults: Rng::new(seed, 3),
            offered_bytes_per_s: 0.0,
            next_arrival_at_ns: u64::MAX,
            next_arrival_len: 0,
            booted: false,
            fifo: VecDeque::new(),
            rx_bytes_held: 0,
            locked: None,
            toggle: 0,
            batch_ready_at_ns: 0,
            irq_asserted: false,
            in_use: 0,
            air_free_at_ns: 0,
            in_flight: VecDeque::new(),
            rx_seq: [0; 2],
            tx_seq_expected: [0; 2],
            last_ack_air_ns: 0,
            wedged: None,
            protocol_breach: None,
            protocol_breaches: 0,
            stats: ChipStats::default(),
        }
    }

    /// Sets the offered rate (bytes per second over the air) from `now_ns` on.
    pub fn set_offered(&mut self, now_ns: u64, bytes_per_s: f64) {
        self.advance(now_ns);
        let was_idle = self.offered_bytes_per_s <= 0.0;
        self.offered_bytes_per_s = bytes_per_s;
        if bytes_per_s <= 0.0 {
            self.next_arrival_at_ns = u64::MAX;
        } else if was_idle {
            self.last_ack_air_ns = now_ns;
            self.schedule_arrival(now_ns);
        }
    }

    fn schedule_arrival(&mut self, from_ns: u64) {
        let small = self.traffic.chance(self.cost.frame_small_share);
        let len = if small { self.cost.frame_small_bytes } else { self.cost.frame_full_bytes };
        let mean_ns = len as f64 * 1e9 / self.offered_bytes_per_s;
        let jitter = 0.5 + self.traffic.unit();
        self.next_arrival_len = len;
        self.next_arrival_at_ns = from_ns + (mean_ns * jitter).max(1.0) as u64;
    }

    /// Processes everything due up to `now_ns`: boot, arrivals and TX completions, in
    /// time order.
    pub fn advance(&mut self, now_ns: u64) {
        if !self.booted && now_ns >= self.cost.chip_boot_ns {
            self.booted = true;
            let n = self.cost.chip_num_inp_ch_bufs.to_le_bytes();
            self.push_out(wsm::WSM_STARTUP_IND_ID, &[n[0], n[1]], false, 6);
        }
        loop {
            let done_at = self.in_flight.front().map_or(u64::MAX, |f| f.done_at_ns);
            let arrival_at = self.next_arrival_at_ns;
            if done_at.min(arrival_at) > now_ns {
                break;
            }
            if done_at <= arrival_at {
                let f = self.in_flight.pop_front().expect("front exists");
                self.tx_done(f);
            } else {
                self.arrive(arrival_at);
            }
        }
    }

    fn arrive(&mut self, at_ns: u64) {
        if at_ns.saturating_sub(self.last_ack_air_ns) > self.cost.tcp_ack_timeout_ns {
            // No ACK for too long: the TCP sender has stopped (its window is full).
            self.stats.sender_stalled += 1;
            self.schedule_arrival(at_ns);
            return;
        }
        let len = self.next_arrival_len;
        self.stats.frames_arrived += 1;
        self.stats.bytes_arrived += len as u64;
        let msg_len = (wsm::WSM_HDR_LEN + wsm::RX_IND_HDR_LEN + len as usize) as u32;
        if self.wedged.is_some() || !self.booted || self.rx_bytes_held + msg_len > self.cost.chip_rx_buffer_bytes {
            self.stats.frames_dropped += 1;
        } else {
            self.rx_bytes_held += msg_len;
            self.push_out(wsm::WSM_RECEIVE_IND_ID, &[0, 0, 0, 0], true, msg_len as u16);
        }
        self.schedule_arrival(at_ns);
    }

    fn push_out(&mut self, id: u16, body: &[u8], data: bool, total_len: u16) {
        let mut b = [0u8; 20];
        b[..body.len()].copy_from_slice(body);
        self.fifo.push_back(OutMsg { id, total_len, body: b, body_len: body.len() as u8, data });
    }

    fn tx_done(&mut self, f: InFlight) {
        self.in_use -= 1;
        if self.wedged.is_some() {
            return;
        }
        self.stats.confirms_sent += 1;
        if !f.command {
            self.last_ack_air_ns = f.done_at_ns;
        }
        if f.command {
            self.push_out(wsm::WSM_READ_MIB_CNF_ID, &[f.vif, 0], false, 8);
            return;
        }
        // Fold into a confirm still waiting at the tail of the queue: a multi-confirm.
        if let Some(last) = self.fifo.back_mut() {
            let max = self.cost.chip_multi_confirm_max;
            match last.id {
                wsm::WSM_TRANSMIT_CNF_ID => {
                    let first = last.body[0];
                    last.id = wsm::WSM_MULTI_TRANSMIT_CNF_ID;
                    last.body[..3].copy_from_slice(&[2, first, f.vif]);
                    last.body_len = 3;
                    last.total_len = 4 + 3;
                    self.stats.multi_confirms_sent += 1;
                    return;
                }
                wsm::WSM_MULTI_TRANSMIT_CNF_ID if last.body[0] < max => {
                    let n = last.body[0] as usize;
                    last.body[0] += 1;
                    last.body[1 + n] = f.vif;
                    last.body_len += 1;
                    last.total_len += 1;
                    return;
                }
                _ => {}
            }
        }
        self.push_out(wsm::WSM_TRANSMIT_CNF_ID, &[f.vif, 0], false, 8);
    }

    fn has_batch_ready(&self, now_ns: u64) -> bool {
        self.wedged.is_none() && self.locked.is_none() && !self.fifo.is_empty() && now_ns >= self.batch_ready_at_ns
    }

    /// When the chip next needs the scheduler: the moment it would raise its interrupt.
    pub fn next_event_ns(&self) -> u64 {
        if self.wedged.is_some() || self.irq_asserted || self.locked.is_some() {
            return u64::MAX;
        }
        if !self.booted {
            return self.cost.chip_boot_ns;
        }
        if !self.fifo.is_empty() {
            return self.batch_ready_at_ns;
        }
        let done_at = self.in_flight.front().map_or(u64::MAX, |f| f.done_at_ns);
        done_at.min(self.next_arrival_at_ns)
    }

    /// Raises the interrupt if a batch is ready and none is raised; true when it did.
    pub fn poll_irq(&mut self, now_ns: u64) -> bool {
        self.advance(now_ns);
        if !self.irq_asserted && self.has_batch_ready(now_ns) {
            self.irq_asserted = true;
            return true;
        }
        false
    }

    /// CMD52 read of the control byte: bits 0-6 the next batch's length in 512-byte
    /// blocks, bit 7 a toggle that flips with every batch. Reading acknowledges the
    /// interrupt.
    pub fn read_ctrl(&mut self, now_ns: u64) -> u8 {
        self.advance(now_ns);
        self.irq_asserted = false;
        if let Some((ctrl, _, _)) = &self.locked {
            return *ctrl;
        }
        if !self.has_batch_ready(now_ns) {
            return 0;
        }
        let mut msgs = Vec::with_capacity(wsm::BATCH_MAX_MSGS);
        let mut bytes = 0usize;
        let mut data_bytes = 0u32;
        while msgs.len() < wsm::BATCH_MAX_MSGS {
            let Some(next) = self.fifo.front() else { break };
            let size = wsm::padded(next.total_len as usize);
            if bytes + size > wsm::BATCH_MAX_BYTES {
                break;
            }
            let mut m = self.fifo.pop_front().expect("front exists");
            let space = wsm::seq_space(m.id);
            m.id = wsm::with_seq(m.id, self.rx_seq[space]);
            self.rx_seq[space] = (self.rx_seq[space] + 1) & 7;
            if m.data {
                data_bytes += m.total_len as u32;
            }
            bytes += size;
            msgs.push(m);
        }
        self.toggle ^= wsm::CTRL_TOGGLE;
        let blocks = bytes.div_ceil(wsm::SDIO_BLOCK_BYTES) as u8;
        let ctrl = blocks | self.toggle;
        self.locked = Some((ctrl, msgs, data_bytes));
        ctrl
    }

    /// CMD53 read of the batch announced by the last control byte.
    pub fn read_data(&mut self, now_ns: u64, buf: &mut [u8]) -> usize {
        self.advance(now_ns);
        buf.fill(0);
        let Some((_, msgs, data_bytes)) = self.locked.take() else { return 0 };
        let mut offset = 0;
        for m in &msgs {
            if offset + wsm::padded(m.total_len as usize) > buf.len() {
                break;
            }
            offset = wsm::put_msg(buf, offset, m.id, m.total_len as usize, &m.body[..m.body_len as usize]);
        }
        self.rx_bytes_held -= data_bytes;
        self.batch_ready_at_ns = now_ns + self.cost.chip_batch_prepare_ns;
        self.stats.batches_sent += 1;
        msgs.len()
    }

    /// CMD53 write of TX frames.
    pub fn receive_tx(&mut self, now_ns: u64, buf: &[u8]) {
        self.advance(now_ns);
        if self.wedged.is_some() {
            return;
        }
        let mut frames = Vec::new();
        let parsed = wsm::for_each_msg(buf, |m| frames.push(m));
        if parsed.is_err() {
            self.wedge(now_ns, "firmware: malformed TX transfer".into());
            return;
        }
        for m in frames {
            let space = wsm::seq_space(m.id);
            let seq = wsm::seq_of(m.id);
            if seq != self.tx_seq_expected[space] {
                self.wedge(
                    now_ns,
                    format!("firmware: TX sequence {} where {} was due", seq, self.tx_seq_expected[space]),
                );
                return;
            }
            self.tx_seq_expected[space] = (seq + 1) & 7;
            if self.in_use >= self.cost.chip_num_inp_ch_bufs {
                self.wedge(
                    now_ns,
                    format!(
                        "firmware: input buffer overflow (frame sent with all {} numInpChBufs in use)",
                        self.in_use
                    ),
                );
                return;
            }
            let command = m.body[1] == 1;
            // The host keeps the last input buffer for commands (a data frame is refused when
            // it would take it): otherwise a command can starve behind data.
            if !command && self.in_use + 1 >= self.cost.chip_num_inp_ch_bufs {
                self.protocol_breaches += 1;
                if self.protocol_breach.is_none() {
                    self.protocol_breach = Some((
                        now_ns,
                        format!(
                            "firmware: a data frame took the input buffer reserved for commands ({} of {} in use)",
                            self.in_use + 1,
                            self.cost.chip_num_inp_ch_bufs
                        ),
                    ));
                }
            }
            self.in_use += 1;
            if command && self.in_use == self.cost.chip_num_inp_ch_bufs {
                self.stats.command_took_last_buffer += 1;
            }
            if !command && self.in_use + 1 == self.cost.chip_num_inp_ch_bufs {
                self.stats.data_at_throttle += 1;
            }
            self.stats.tx_frames += 1;
            if !command {
                self.stats.tx_data_frames += 1;
            }
            let airtime = self.cost.chip_tx_airtime_base_ns + m.len as u64 * self.cost.chip_tx_airtime_ns_per_byte;
            let mut done_at_ns = self.air_free_at_ns.max(now_ns) + airtime;
            if self.cost.fault_slow_air_chance > 0.0 && self.faults.chance(self.cost.fault_slow_air_chance) {
                let (lo, hi) = self.cost.fault_slow_air_ns;
                done_at_ns += self.faults.range(lo, hi);
                self.stats.fault_slow_air += 1;
            }
            self.air_free_at_ns = done_at_ns;
            self.in_flight.push_back(InFlight { done_at_ns, command, vif: m.body[0] });
        }
    }

    fn wedge(&mut self, now_ns: u64, why: String) {
        if self.wedged.is_none() {
            self.wedged = Some((now_ns, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booted_chip() -> Chip {
        let cost = CostModel::default();
        let mut chip = Chip::new(&cost, 1);
        assert!(chip.poll_irq(cost.chip_boot_ns), "startup indication raises the interrupt");
        chip
    }

    #[test]
    fn startup_indication_carries_num_inp_ch_bufs_and_toggle_flips() {
        let mut chip = booted_chip();
        let t = CostModel::default().chip_boot_ns;
        let ctrl = chip.read_ctrl(t);
        assert_eq!(ctrl & wsm::CTRL_LEN_MASK, 1);
        assert_eq!(ctrl & wsm::CTRL_TOGGLE, wsm::CTRL_TOGGLE);
        let mut buf = [0u8; 512];
        assert_eq!(chip.read_data(t, &mut buf), 1);
        let mut msgs = Vec::new();
        wsm::for_each_msg(&buf, |m| msgs.push(m)).unwrap();
        assert_eq!(wsm::msg_id(msgs[0].id), wsm::WSM_STARTUP_IND_ID);
        assert_eq!(msgs[0].body[0] as u16, CostModel::default().chip_num_inp_ch_bufs);
        assert_eq!(chip.read_ctrl(t), 0, "nothing pending right after a batch");
    }

    #[test]
    fn confirms_fold_into_a_multi_confirm() {
        let mut chip = booted_chip();
        let t = CostModel::default().chip_boot_ns;
        let _ = chip.read_ctrl(t);
        let mut buf = [0u8; 512];
        chip.read_data(t, &mut buf);
        let mut tx = [0u8; 64];
        let mut off = 0;
        for seq in 0..3 {
            off = wsm::put_msg(&mut tx, off, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, seq), 12, &[1, 0, 0, 0]);
        }
        chip.receive_tx(t, &tx[..off]);
        let later = t + 10_000_000;
        let ctrl = chip.read_ctrl(later);
        assert!(ctrl & wsm::CTRL_LEN_MASK > 0);
        chip.read_data(later, &mut buf);
        let mut msgs = Vec::new();
        wsm::for_each_msg(&buf, |m| msgs.push(m)).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(wsm::msg_id(msgs[0].id), wsm::WSM_MULTI_TRANSMIT_CNF_ID);
        assert_eq!(&msgs[0].body[..4], &[3, 1, 1, 1]);
    }

    #[test]
    fn a_frame_beyond_the_input_buffers_wedges_the_firmware() {
        let mut chip = booted_chip();
        let t = CostModel::default().chip_boot_ns;
        let n = CostModel::default().chip_num_inp_ch_bufs as u8;
        // One transfer carries at most 16 frames: send numInpChBufs + 1 one by one.
        for i in 0..=n {
            let mut tx = [0u8; 16];
            let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, i & 7), 12, &[0, 0, 0, 0]);
            assert!(chip.wedged.is_none(), "frame {i} of {n} must fit");
            chip.receive_tx(t, &tx[..off]);
        }
        let (_, why) = chip.wedged.clone().expect("wedged");
        assert!(why.contains("input buffer overflow"), "{why}");
        let (_, breach) = chip.protocol_breach.clone().expect("the last data frame took the command buffer");
        assert!(breach.contains("reserved for commands"), "{breach}");
    }

    #[test]
    fn data_may_fill_all_but_the_last_buffer_and_a_command_the_last() {
        let mut chip = booted_chip();
        let t = CostModel::default().chip_boot_ns;
        let n = CostModel::default().chip_num_inp_ch_bufs as u8;
        for i in 0..n {
            let mut tx = [0u8; 16];
            let kind = if i + 1 == n { 1 } else { 0 };
            let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, i & 7), 12, &[0, kind, 0, 0]);
            chip.receive_tx(t, &tx[..off]);
        }
        assert!(chip.wedged.is_none() && chip.protocol_breach.is_none(), "{:?}", chip.protocol_breach);
    }
}
