//! The loopback chip: the simulator's chip protocol (`sim::chip`) without `std`, floats or
//! allocation, so that the kernel lab's module can run the driver core against it in
//! real time. It keeps the protocol the core relies on: the startup indication with
//! numInpChBufs, the control byte with its toggle, batches of up to 16 messages within
//! 32 KiB, per-space sequence numbers both ways, input buffers that wedge the firmware when
//! overrun, airtime, confirms folded into multi-confirms, and the interrupt line. Frames
//! arrive at a fixed interval for the offered rate (no TCP sender model).
//!
//! # Invariants
//! `in_use <= num_inp_ch_bufs` while not wedged; `rx_bytes_held` counts the data bytes in
//! `fifo` and in the locked batch.

use crate::ring::Ring;
use crate::wsm;

/// Timing and sizes; the defaults are the simulator's calibrated chip figures.
#[derive(Clone, Copy, Debug)]
pub struct LoopbackConfig {
    pub batch_prepare_ns: u64,
    pub rx_buffer_bytes: u32,
    pub num_inp_ch_bufs: u16,
    pub airtime_base_ns: u64,
    pub airtime_ns_per_byte: u64,
    pub boot_ns: u64,
    pub multi_confirm_max: u8,
    pub frame_bytes: u16,
}

impl LoopbackConfig {
    pub const DEFAULT: LoopbackConfig = LoopbackConfig {
        batch_prepare_ns: 3_300_000,
        rx_buffer_bytes: 20_000,
        num_inp_ch_bufs: 16,
        airtime_base_ns: 150_000,
        airtime_ns_per_byte: 160,
        boot_ns: 100_000_000,
        multi_confirm_max: 16,
        frame_bytes: 1514,
    };
}

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

impl OutMsg {
    const EMPTY: OutMsg = OutMsg { id: 0, total_len: 0, body: [0; 20], body_len: 0, data: false };
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    done_at_ns: u64,
    command: bool,
    vif: u8,
}

/// The batch announced by the last control byte, until the host reads it.
#[derive(Clone, Copy, Debug)]
struct Locked {
    ctrl: u8,
    msgs: [OutMsg; wsm::BATCH_MAX_MSGS],
    count: usize,
    data_bytes: u32,
}

/// Firmware counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopbackStats {
    pub frames_arrived: u64,
    pub frames_dropped: u64,
    pub batches_sent: u64,
    pub tx_frames: u64,
    pub confirms_sent: u64,
    pub multi_confirms_sent: u64,
}

// The RX buffer holds at most 13 data messages and confirms fold into multi-confirms:
// 64 leaves room. At most numInpChBufs (16) frames are in flight.
const FIFO_CAP: usize = 64;
const IN_FLIGHT_CAP: usize = 32;

pub struct LoopbackChip {
    cfg: LoopbackConfig,
    start_ns: u64,
    offered_bytes_per_s: u64,
    next_arrival_at_ns: u64,
    booted: bool,
    fifo: Ring<OutMsg, FIFO_CAP>,
    rx_bytes_held: u32,
    locked: Option<Locked>,
    toggle: u8,
    batch_ready_at_ns: u64,
    irq_asserted: bool,
    in_use: u16,
    air_free_at_ns: u64,
    in_flight: Ring<InFlight, IN_FLIGHT_CAP>,
    rx_seq: [u8; 2],
    tx_seq_expected: [u8; 2],
    /// When and why the firmware stopped answering.
    pub wedged: Option<(u64, &'static str)>,
    pub stats: LoopbackStats,
}

impl LoopbackChip {
    /// A chip powered on at `now_ns`; it boots `cfg.boot_ns` later.
    pub fn new(cfg: LoopbackConfig, now_ns: u64) -> Self {
        LoopbackChip {
            cfg,
            start_ns: now_ns,
            offered_bytes_per_s: 0,
            next_arrival_at_ns: u64::MAX,
            booted: false,
            fifo: Ring::new(OutMsg::EMPTY),
            rx_bytes_held: 0,
            locked: None,
            toggle: 0,
            batch_ready_at_ns: 0,
            irq_asserted: false,
            in_use: 0,
            air_free_at_ns: 0,
            in_flight: Ring::new(InFlight { done_at_ns: 0, command: false, vif: 0 }),
            rx_seq: [0; 2],
            tx_seq_expected: [0; 2],
            wedged: None,
            stats: LoopbackStats::default(),
        }
    }

    /// Sets the offered rate over the air from `now_ns` on; 0 stops the traffic.
    pub fn set_offered(&mut self, now_ns: u64, bytes_per_s: u64) {
        self.advance(now_ns);
        self.offered_bytes_per_s = bytes_per_s;
        self.next_arrival_at_ns = if bytes_per_s == 0 { u64::MAX } else { now_ns + self.arrival_interval_ns() };
    }

    fn arrival_interval_ns(&self) -> u64 {
        (self.cfg.frame_bytes as u64 * 1_000_000_000 / self.offered_bytes_per_s.max(1)).max(1)
    }

    /// Processes everything due up to `now_ns`: boot, TX completions and arrivals, in time
    /// order. Bound: each pass consumes one in-flight frame or one arrival, and arrivals
    /// are capped at 4096 per call so that a long gap cannot pin the caller.
    pub fn advance(&mut self, now_ns: u64) {
        if !self.booted && now_ns >= self.start_ns + self.cfg.boot_ns {
            self.booted = true;
            let n = self.cfg.num_inp_ch_bufs.to_le_bytes();
            self.push_out(wsm::WSM_STARTUP_IND_ID, &[n[0], n[1]], false, 6);
        }
        let mut arrivals = 0u32;
        loop {
            let done_at = self.in_flight.front().map_or(u64::MAX, |f| f.done_at_ns);
            let arrival_at = self.next_arrival_at_ns;
            if done_at.min(arrival_at) > now_ns {
                break;
            }
            if done_at <= arrival_at {
                if let Some(f) = self.in_flight.pop() {
                    self.tx_done(f);
                }
            } else {
                arrivals += 1;
                if arrivals > 4096 {
                    // Far behind (the host stalled): skip the backlog, as the air would.
                    self.next_arrival_at_ns = now_ns + self.arrival_interval_ns();
                    continue;
                }
                self.arrive();
                self.next_arrival_at_ns = arrival_at + self.arrival_interval_ns();
            }
        }
    }

    fn arrive(&mut self) {
        self.stats.frames_arrived += 1;
        let msg_len = (wsm::WSM_HDR_LEN + wsm::RX_IND_HDR_LEN + self.cfg.frame_bytes as usize) as u32;
        if self.wedged.is_some() || !self.booted || self.rx_bytes_held + msg_len > self.cfg.rx_buffer_bytes {
            self.stats.frames_dropped += 1;
            return;
        }
        if self.push_out(wsm::WSM_RECEIVE_IND_ID, &[0, 0, 0, 0], true, msg_len as u16) {
            self.rx_bytes_held += msg_len;
        } else {
            self.stats.frames_dropped += 1;
        }
    }

    /// Queues a message for the host; false when the queue is full.
    fn push_out(&mut self, id: u16, body: &[u8], data: bool, total_len: u16) -> bool {
        let mut b = [0u8; 20];
        b[..body.len()].copy_from_slice(body);
        let msg = OutMsg { id, total_len, body: b, body_len: body.len() as u8, data };
        if self.fifo.push(msg).is_err() {
            if !data {
                self.wedge(self.air_free_at_ns, "firmware: host queue overflow (a confirm was lost)");
            }
            return false;
        }
        true
    }

    fn tx_done(&mut self, f: InFlight) {
        self.in_use = self.in_use.saturating_sub(1);
        if self.wedged.is_some() {
            return;
        }
        self.stats.confirms_sent += 1;
        if f.command {
            self.push_out(wsm::WSM_READ_MIB_CNF_ID, &[f.vif, 0], false, 8);
            return;
        }
        let max = self.cfg.multi_confirm_max;
        if let Some(last) = self.fifo.back_mut() {
            if last.id == wsm::WSM_TRANSMIT_CNF_ID {
                let first = last.body[0];
                last.id = wsm::WSM_MULTI_TRANSMIT_CNF_ID;
                last.body[..3].copy_from_slice(&[2, first, f.vif]);
                last.body_len = 3;
                last.total_len = 4 + 3;
                self.stats.multi_confirms_sent += 1;
                return;
            }
            if last.id == wsm::WSM_MULTI_TRANSMIT_CNF_ID && last.body[0] < max {
                let n = last.body[0] as usize;
                last.body[0] += 1;
                last.body[1 + n] = f.vif;
                last.body_len += 1;
                last.total_len += 1;
                return;
            }
        }
        self.push_out(wsm::WSM_TRANSMIT_CNF_ID, &[f.vif, 0], false, 8);
    }

    fn has_batch_ready(&self, now_ns: u64) -> bool {
        self.wedged.is_none() && self.locked.is_none() && !self.fifo.is_empty() && now_ns >= self.batch_ready_at_ns
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

    /// CMD52 read of the control byte (bits 0-6: the batch in 512-byte blocks, bit 7: the
    /// toggle). Reading acknowledges the interrupt.
    pub fn read_ctrl(&mut self, now_ns: u64) -> u8 {
        self.advance(now_ns);
        self.irq_asserted = false;
        if let Some(l) = &self.locked {
            return l.ctrl;
        }
        if !self.has_batch_ready(now_ns) {
            return 0;
        }
        let mut locked = Locked { ctrl: 0, msgs: [OutMsg::EMPTY; wsm::BATCH_MAX_MSGS], count: 0, data_bytes: 0 };
        let mut bytes = 0usize;
        while locked.count < wsm::BATCH_MAX_MSGS {
            let Some(next) = self.fifo.front() else { break };
            let size = wsm::padded(next.total_len as usize);
            if bytes + size > wsm::BATCH_MAX_BYTES {
                break;
            }
            let Some(mut m) = self.fifo.pop() else { break };
            let space = wsm::seq_space(m.id);
            m.id = wsm::with_seq(m.id, self.rx_seq[space]);
            self.rx_seq[space] = (self.rx_seq[space] + 1) & 7;
            if m.data {
                locked.data_bytes += m.total_len as u32;
            }
            bytes += size;
            locked.msgs[locked.count] = m;
            locked.count += 1;
        }
        self.toggle ^= wsm::CTRL_TOGGLE;
        locked.ctrl = bytes.div_ceil(wsm::SDIO_BLOCK_BYTES) as u8 | self.toggle;
        let ctrl = locked.ctrl;
        self.locked = Some(locked);
        ctrl
    }

    /// CMD53 read of the batch announced by the last control byte; returns its messages.
    pub fn read_data(&mut self, now_ns: u64, buf: &mut [u8]) -> usize {
        self.advance(now_ns);
        buf.fill(0);
        let Some(l) = self.locked.take() else { return 0 };
        let mut offset = 0;
        for m in &l.msgs[..l.count] {
            if offset + wsm::padded(m.total_len as usize) > buf.len() {
                break;
            }
            offset = wsm::put_msg(buf, offset, m.id, m.total_len as usize, &m.body[..m.body_len as usize]);
        }
        self.rx_bytes_held -= l.data_bytes;
        self.batch_ready_at_ns = now_ns + self.cfg.batch_prepare_ns;
        self.stats.batches_sent += 1;
        l.count
    }

    /// CMD53 write of TX frames.
    pub fn receive_tx(&mut self, now_ns: u64, buf: &[u8]) {
        self.advance(now_ns);
        if self.wedged.is_some() {
            return;
        }
        let mut frames = [wsm::RxMsg::EMPTY; wsm::BATCH_MAX_MSGS];
        let mut count = 0;
        let parsed = wsm::for_each_msg(buf, |m| {
            if count < frames.len() {
                frames[count] = m;
                count += 1;
            }
        });
        if parsed.is_err() {
            self.wedge(now_ns, "firmware: malformed TX transfer");
            return;
        }
        for m in &frames[..count] {
            let space = wsm::seq_space(m.id);
            let seq = wsm::seq_of(m.id);
            if seq != self.tx_seq_expected[space] {
                self.wedge(now_ns, "firmware: TX sequence out of order");
                return;
            }
            self.tx_seq_expected[space] = (seq + 1) & 7;
            if self.in_use >= self.cfg.num_inp_ch_bufs {
                self.wedge(now_ns, "firmware: input buffer overflow (frame sent with all numInpChBufs in use)");
                return;
            }
            self.in_use += 1;
            self.stats.tx_frames += 1;
            let airtime = self.cfg.airtime_base_ns + m.len as u64 * self.cfg.airtime_ns_per_byte;
            let done_at_ns = self.air_free_at_ns.max(now_ns) + airtime;
            self.air_free_at_ns = done_at_ns;
            let flight = InFlight { done_at_ns, command: m.body[1] == 1, vif: m.body[0] };
            if self.in_flight.push(flight).is_err() {
                self.wedge(now_ns, "firmware: more frames in flight than the chip tracks");
                return;
            }
        }
    }

    fn wedge(&mut self, now_ns: u64, why: &'static str) {
        if self.wedged.is_none() {
            self.wedged = Some((now_ns, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: u64 = LoopbackConfig::DEFAULT.boot_ns;

    fn booted_chip() -> LoopbackChip {
        let mut chip = LoopbackChip::new(LoopbackConfig::DEFAULT, 0);
        assert!(!chip.poll_irq(BOOT - 1), "no interrupt before boot");
        assert!(chip.poll_irq(BOOT), "startup indication raises the interrupt");
        chip
    }

    fn read_batch(chip: &mut LoopbackChip, t: u64) -> std::vec::Vec<wsm::RxMsg> {
        let ctrl = chip.read_ctrl(t);
        assert!(ctrl & wsm::CTRL_LEN_MASK > 0, "a batch is announced");
        let mut buf = std::vec![0u8; wsm::BATCH_MAX_BYTES];
        chip.read_data(t, &mut buf);
        let mut msgs = std::vec::Vec::new();
        wsm::for_each_msg(&buf, |m| msgs.push(m)).unwrap();
        msgs
    }

    #[test]
    fn startup_indication_carries_num_inp_ch_bufs_and_toggle_flips() {
        let mut chip = booted_chip();
        let msgs = read_batch(&mut chip, BOOT);
        assert_eq!(wsm::msg_id(msgs[0].id), wsm::WSM_STARTUP_IND_ID);
        assert_eq!(msgs[0].body[0] as u16, LoopbackConfig::DEFAULT.num_inp_ch_bufs);
        assert_eq!(chip.read_ctrl(BOOT), 0, "nothing pending right after a batch");
    }

    #[test]
    fn arrivals_follow_the_offered_rate_and_the_rx_buffer_bounds_a_batch() {
        let mut chip = booted_chip();
        read_batch(&mut chip, BOOT);
        chip.set_offered(BOOT, 1_514_000); // one frame per millisecond
        let t = BOOT + 10_000_000;
        let msgs = read_batch(&mut chip, t);
        assert_eq!(chip.stats.frames_arrived, 10);
        // 20000 bytes of RX buffer hold 13 frames of 1522 bytes; 10 fit.
        assert_eq!(msgs.len(), 10);
        assert!(msgs.iter().all(|m| wsm::msg_id(m.id) == wsm::WSM_RECEIVE_IND_ID));
        let seqs: std::vec::Vec<u8> = msgs.iter().map(|m| wsm::seq_of(m.id)).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 0, 1, 2], "sequence continues after the startup indication");
    }

    #[test]
    fn confirms_fold_into_a_multi_confirm() {
        let mut chip = booted_chip();
        read_batch(&mut chip, BOOT);
        let mut tx = [0u8; 64];
        let mut off = 0;
        for seq in 0..3 {
            off = wsm::put_msg(&mut tx, off, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, seq), 12, &[1, 0, 0, 0]);
        }
        chip.receive_tx(BOOT, &tx[..off]);
        let msgs = read_batch(&mut chip, BOOT + 10_000_000);
        assert_eq!(msgs.len(), 1);
        assert_eq!(wsm::msg_id(msgs[0].id), wsm::WSM_MULTI_TRANSMIT_CNF_ID);
        assert_eq!(&msgs[0].body[..4], &[3, 1, 1, 1]);
    }

    #[test]
    fn a_frame_beyond_the_input_buffers_wedges_the_firmware() {
        let mut chip = booted_chip();
        let n = LoopbackConfig::DEFAULT.num_inp_ch_bufs as u8;
        for i in 0..=n {
            let mut tx = [0u8; 16];
            let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, i & 7), 12, &[0, 0, 0, 0]);
            assert!(chip.wedged.is_none(), "frame {i} of {n} must fit");
            chip.receive_tx(BOOT, &tx[..off]);
        }
        let (_, why) = chip.wedged.expect("wedged");
        assert!(why.contains("input buffer overflow"), "{why}");
    }
}
