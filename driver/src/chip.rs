//! The chip and its firmware, as the host sees them over SDIO: the RX buffer filled by
//! frames arriving over the air at the offered rate, the control byte with its toggle,
//! batches of up to 16 messages within 32 KiB, per-space sequence numbers both ways, input
//! buffers (numInpChBufs) that wedge the firmware when overrun, airtime, confirms folded
//! into multi-confirms, the interrupt line, and the startup indication.
//!
//! One chip, `no_std`, integer nanoseconds and no allocation: the simulator runs it on
//! virtual time and the kernel lab's module runs it in real time. What differs between the
//! two is only the air ([`Air`]): the simulator's seeded TCP sender with its faults, the
//! kernel's fixed interval ([`FixedAir`]).
//!
//! # Invariants
//! `in_use <= num_inp_ch_bufs` while not wedged (a frame beyond that asserts the firmware:
//! the chip wedges); `in_use` equals the frames in flight; `rx_bytes_held` counts the data
//! bytes in `fifo` and in the locked batch.

use crate::ring::Ring;
use crate::wsm;
use core::fmt;

/// The firmware's side of the WSM wire format, written apart from the driver's `wsm`
/// helpers (DESIGN.md section 4): a mistake in the driver's encoding must meet a chip that
/// decodes the bytes as the real firmware does, not the same mistake on both ends.
mod fw {
    /// Bits 13-15 of a message id: the sequence number.
    pub const fn seq_of(id: u16) -> u8 {
        ((id >> 13) & 0x7) as u8
    }
    /// The id with sequence number `seq`.
    pub const fn with_seq(id: u16, seq: u8) -> u16 {
        (id & !(0x7 << 13)) | (((seq & 0x7) as u16) << 13)
    }
    /// Sequence space 1 is the vendor class (`0x0C00` in bits 8-11), space 0 the rest.
    pub const fn seq_space(id: u16) -> usize {
        ((id >> 8) & 0xF == 0xC) as usize
    }
    /// The id without its sequence bits.
    pub const fn msg_id(id: u16) -> u16 {
        id & 0x0FFF
    }
    /// The requests this firmware model serves: a data frame, a MIB read, and the
    /// driver-to-MCU class (`0x0C00`, sequence space 1). `Some(true)` for a command.
    pub const fn request_is_command(id: u16) -> Option<bool> {
        match msg_id(id) {
            0x0004 => Some(false),
            0x0005 => Some(true),
            m if m & 0x0F00 == 0x0C00 => Some(true),
            _ => None,
        }
    }
    /// A command's confirm: the request id with the confirm bit (`0x0400`); the MCU class
    /// has it already.
    pub const fn confirm_of(request: u16) -> u16 {
        msg_id(request) | 0x0400
    }
    /// One TX message of a host transfer: id, total length, and the first body bytes.
    pub struct TxMsg {
        pub id: u16,
        pub len: u16,
        pub body: [u8; 4],
    }
    /// Splits a host transfer into its messages: `[len: u16 LE][id: u16 LE][body]`,
    /// padded to 4 bytes, ended by the end of the transfer or a zero length. `None` for a
    /// length shorter than the header or running past the transfer.
    pub fn parse(buf: &[u8], out: &mut [TxMsg; 16]) -> Option<usize> {
        let mut at = 0;
        let mut n = 0;
        while at + 4 <= buf.len() && n < out.len() {
            let len = u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
            if len == 0 {
                break;
            }
            if len < 4 || at + len > buf.len() {
                return None;
            }
            let mut body = [0u8; 4];
            let kept = (len - 4).min(4);
            body[..kept].copy_from_slice(&buf[at + 4..at + 4 + kept]);
            out[n] = TxMsg { id: u16::from_le_bytes([buf[at + 2], buf[at + 3]]), len: len as u16, body };
            n += 1;
            at += len.div_ceil(4) * 4;
        }
        Some(n)
    }
}

/// Timing and sizes of the chip; the simulator's cost model calibrates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipConfig {
    /// Firmware time to prepare the next RX batch after the host read one.
    pub batch_prepare_ns: u64,
    /// Bytes of RX buffer; a frame arriving to a full buffer is dropped over the air.
    pub rx_buffer_bytes: u32,
    /// Input buffers reported in the startup indication.
    pub num_inp_ch_bufs: u16,
    /// Air time of a frame before its bytes (preamble, headers, ACK), ns.
    pub airtime_base_ns: u64,
    /// Air time per frame byte at the link rate, ns.
    pub airtime_ns_per_byte: u64,
    /// From power-on to the startup indication.
    pub boot_ns: u64,
    /// Confirms one multi-confirm carries at most.
    pub multi_confirm_max: u8,
    /// Arrivals one `advance` processes at most; beyond it the backlog is skipped, as the
    /// air would drop it. A bound for the kernel (a long host stall must not pin the
    /// caller); the simulator leaves it unbounded so that every frame is counted.
    pub max_arrivals_per_advance: u32,
}

impl ChipConfig {
    /// The calibrated figures (DESIGN.md section 5; `sim::cost` says where each comes from).
    pub const DEFAULT: ChipConfig = ChipConfig {
        batch_prepare_ns: 3_300_000,
        rx_buffer_bytes: 20_000,
        num_inp_ch_bufs: 16,
        airtime_base_ns: 150_000,
        airtime_ns_per_byte: 160,
        boot_ns: 100_000_000,
        multi_confirm_max: 16,
        max_arrivals_per_advance: u32::MAX,
    };
}

/// The other side of the radio: when frames arrive for the host, and how long the air
/// holds a frame the host sends.
pub trait Air {
    /// Traffic at `bytes_per_s` starts (or changes) at `now_ns`; `from_idle` when it was 0.
    fn start(&mut self, now_ns: u64, bytes_per_s: u64, from_idle: bool);
    /// The next frame after `from_ns`: when it arrives and its length in bytes.
    fn next_frame(&mut self, from_ns: u64) -> (u64, u16);
    /// False when the sender holds the frame arriving at `at_ns` back (a TCP sender with a
    /// full window); the chip counts it and asks for the next one.
    fn sender_ready(&mut self, _at_ns: u64) -> bool {
        true
    }
    /// A data frame from the host went over the air at `at_ns` (for TCP: an ACK).
    fn data_sent(&mut self, _at_ns: u64) {}
    /// Extra time the air holds the next TX frame (a fault); 0 normally.
    fn tx_extra_airtime_ns(&mut self) -> u64 {
        0
    }
}

/// Frames of one size at a fixed interval for the offered rate: the kernel lab's air.
#[derive(Clone, Copy, Debug)]
pub struct FixedAir {
    /// Bytes of every frame the air offers.
    pub frame_bytes: u16,
    interval_ns: u64,
}

impl FixedAir {
    /// An air of `frame_bytes` frames.
    pub const fn new(frame_bytes: u16) -> Self {
        FixedAir { frame_bytes, interval_ns: u64::MAX }
    }
}

impl Air for FixedAir {
    fn start(&mut self, _now_ns: u64, bytes_per_s: u64, _from_idle: bool) {
        self.interval_ns = (self.frame_bytes as u64 * 1_000_000_000 / bytes_per_s.max(1)).max(1);
    }

    fn next_frame(&mut self, from_ns: u64) -> (u64, u16) {
        (from_ns.saturating_add(self.interval_ns), self.frame_bytes)
    }
}

/// Why the firmware stopped answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wedge {
    /// A transmit request the firmware cannot parse.
    MalformedTx,
    /// A request id the firmware does not know (the id without its sequence bits).
    UnknownRequest {
        /// The id.
        id: u16,
    },
    /// A transmit request out of sequence.
    TxSequence {
        /// The sequence number it carried.
        got: u8,
        /// The one the firmware expected.
        due: u8,
    },
    /// More frames than input buffers.
    InputBufferOverflow {
        /// Buffers in use with the frame that overflowed.
        in_use: u16,
    },
    /// The queue towards the host was full and a confirm had to be dropped.
    ConfirmLost,
}

impl fmt::Display for Wedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wedge::MalformedTx => write!(f, "firmware: malformed TX transfer"),
            Wedge::UnknownRequest { id } => write!(f, "firmware: unknown request id {id:#06x}"),
            Wedge::TxSequence { got, due } => write!(f, "firmware: TX sequence {got} where {due} was due"),
            Wedge::InputBufferOverflow { in_use } => {
                write!(f, "firmware: input buffer overflow (frame sent with all {in_use} numInpChBufs in use)")
            }
            Wedge::ConfirmLost => write!(f, "firmware: host queue overflow (a confirm was lost)"),
        }
    }
}

/// A breach of the host protocol the firmware sees without wedging: a data frame took the
/// input buffer the host keeps for commands (`in_use` of `num` after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breach {
    /// Input buffers in use after the data frame took one.
    pub in_use: u16,
    /// Input buffers the firmware has (`numInpChBufs`).
    pub num: u16,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "firmware: a data frame took the input buffer reserved for commands ({} of {} in use)",
            self.in_use, self.num
        )
    }
}

/// A firmware failure the host driver cannot survive but must detect and report (the
/// error paths' probes of the stress oracle): each is injected once, at a moment the
/// simulator picks, and the driver's answer is judged against what its error path promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwFailure {
    /// The firmware hangs: no interrupt, no confirm, no batch from now on; it still takes
    /// frames into its input buffers.
    Hang,
    /// The control register sticks at the last batch's value (the toggle never flips); the
    /// interrupt is raised once more.
    StuckCtrl,
    /// The control register announces a new one-block batch at every read (the toggle
    /// flips each time), after one more interrupt.
    CtrlFlood,
    /// A batch of exactly 32 KiB (16 messages of 2048 bytes, legal), then a control byte
    /// that announces one block more than a batch may hold.
    OversizeBatch,
    /// Two batches whose third message has a bad length: 2 (shorter than its header),
    /// then 4000 (past the batch's end); two good frames before it in each.
    MalformedBatch,
    /// A transmit confirm for a frame the host never sent, once the host has nothing out.
    SpuriousConfirm,
    /// The firmware answers one command late: its confirm comes only when the next
    /// driver-to-MCU command arrives (after the host gave up on it), ahead of that
    /// command's own confirm, which comes 20 ms later.
    LateConfirm,
}

/// Each firmware failure: its name on the command line, and what it does.
pub const FW_FAILURES: &[(FwFailure, &str, &str)] = &[
    (FwFailure::Hang, "hang", "the firmware stops answering: no interrupt, confirm or batch"),
    (FwFailure::StuckCtrl, "stuck-ctrl", "the control byte sticks at its last value"),
    (FwFailure::CtrlFlood, "ctrl-flood", "the control byte announces a new batch at every read"),
    (FwFailure::OversizeBatch, "oversize-batch", "a 32 KiB batch, then one announced a block longer"),
    (FwFailure::MalformedBatch, "malformed-batch", "messages of length 2 and 4000 inside a batch"),
    (FwFailure::SpuriousConfirm, "spurious-confirm", "a confirm for a frame the host never sent"),
    (FwFailure::LateConfirm, "late-confirm", "one command confirmed only after the host gave up on it"),
];

impl FwFailure {
    /// The name `--probe` takes.
    pub fn name(self) -> &'static str {
        FW_FAILURES.iter().find(|f| f.0 == self).map_or("?", |f| f.1)
    }
}

/// Frame bytes of the receive indications a probe's batches carry: no frame of the air
/// has these lengths, so the host's deliveries of them can be counted apart.
pub const PROBE_SMALL_FRAME_BYTES: u16 = 7;
/// The frames of the 32 KiB batch: 2048-byte messages.
pub const PROBE_LARGE_FRAME_BYTES: u16 = (2048 - wsm::WSM_HDR_LEN - wsm::RX_IND_HDR_LEN) as u16;
/// How much later than its airtime the command that brings a late confirm is confirmed
/// itself: the late confirm reaches the host in a batch of its own.
pub const PROBE_LATE_GAP_NS: u64 = 20_000_000;
/// The malformed messages' claimed lengths.
pub const PROBE_BAD_LENS: [u16; 2] = [2, 4000];

/// Firmware counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChipStats {
    /// Frames the air delivered to the chip.
    pub frames_arrived: u64,
    /// Frames dropped because the RX buffer was full.
    pub frames_dropped: u64,
    /// Bytes of the frames that arrived.
    pub bytes_arrived: u64,
    /// RX batches handed to the host.
    pub batches_sent: u64,
    /// Frames the host transmitted (data and commands).
    pub tx_frames: u64,
    /// Data frames among them.
    pub tx_data_frames: u64,
    /// Confirms sent to the host.
    pub confirms_sent: u64,
    /// Confirms that covered more than one frame.
    pub multi_confirms_sent: u64,
    /// Frames the sender held back (for TCP: for want of ACKs).
    pub sender_stalled: u64,
    /// TX frames the air held longer than their airtime (a fault).
    pub tx_delayed: u64,
    /// A data frame left exactly one input buffer free (the host's throttle point).
    pub data_at_throttle: u64,
    /// A command took the last input buffer (the one the host keeps for commands).
    pub command_took_last_buffer: u64,
    /// Data frames (receive indications) handed to the host in batches.
    pub data_msgs_sent: u64,
    /// Their frame bytes (without the WSM and receive-indication headers).
    pub data_bytes_sent: u64,
    /// Confirms of commands queued for the host, per sequence space (0: WSM commands,
    /// 1: driver-to-MCU commands).
    pub cmd_confirms_pushed: [u64; 2],
}

impl ChipStats {
    /// Commands the host transmitted.
    pub fn commands(&self) -> u64 {
        self.tx_frames - self.tx_data_frames
    }
}

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
    /// A probe's malformed message: only its header is written, with `total_len` as the
    /// claimed length, and it takes no sequence number.
    malformed: bool,
}

impl OutMsg {
    const EMPTY: OutMsg = OutMsg { id: 0, total_len: 0, body: [0; 20], body_len: 0, data: false, malformed: false };

    /// A probe's receive indication of `frame_bytes`.
    const fn probe_frame(frame_bytes: u16) -> OutMsg {
        let total_len = frame_bytes + (wsm::WSM_HDR_LEN + wsm::RX_IND_HDR_LEN) as u16;
        OutMsg { id: wsm::WSM_RECEIVE_IND_ID, total_len, body: [0; 20], body_len: 4, data: false, malformed: false }
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    done_at_ns: u64,
    command: bool,
    vif: u8,
    /// The request's id without its sequence bits (a command's confirm answers it).
    request: u16,
}

/// The batch announced by the last control byte, until the host reads it.
#[derive(Clone, Copy, Debug)]
struct Locked {
    ctrl: u8,
    msgs: [OutMsg; wsm::BATCH_MAX_MSGS],
    count: usize,
    data_bytes: u32,
}

// At most numInpChBufs (16) frames are in flight.
const IN_FLIGHT_CAP: usize = 32;

/// The chip. `FIFO` bounds the messages waiting for the host: the RX buffer bounds the
/// data frames among them (20000 bytes hold 13 full frames, or about 250 of the smallest),
/// and confirms fold into multi-confirms. A full queue drops a data frame over the air and
/// wedges the firmware on a confirm.
pub struct Chip<A: Air, const FIFO: usize> {
    cfg: ChipConfig,
    air: A,
    start_ns: u64,
    offered_bytes_per_s: u64,
    next_arrival_at_ns: u64,
    next_arrival_len: u16,
    booted: bool,
    fifo: Ring<OutMsg, FIFO>,
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
    pub wedged: Option<(u64, Wedge)>,
    /// The first protocol breach, and how many there were.
    pub protocol_breach: Option<(u64, Breach)>,
    /// Host protocol breaches seen (see `Breach`).
    pub protocol_breaches: u64,
    /// What the chip counted.
    pub stats: ChipStats,
    /// The data frames of the last host transfer, their lengths without the host's
    /// headers, in order ([`Chip::tx_data_lens`]).
    tx_data_lens: [u16; 16],
    tx_data_lens_count: usize,
    /// The injected firmware failure, once injected.
    failure: Option<FwFailure>,
    /// The interrupt a failure raises once more (stuck or flooding control byte).
    failure_irq: bool,
    /// Scripted batches left to announce before the queue's (oversize, malformed).
    script_left: u8,
    /// A spurious confirm waits for the host to have nothing out.
    spurious_due: bool,
    /// The last control byte that announced a batch.
    last_ctrl: u8,
    /// A late-confirm failure's held confirm (request id, vif), and whether it was sent.
    held_confirm: Option<(u16, u8)>,
    held_sent: bool,
}

impl<A: Air, const FIFO: usize> Chip<A, FIFO> {
    /// A chip powered on at `now_ns`; it boots `cfg.boot_ns` later.
    pub fn new(cfg: ChipConfig, air: A, now_ns: u64) -> Self {
        Chip {
            cfg,
            air,
            start_ns: now_ns,
            offered_bytes_per_s: 0,
            next_arrival_at_ns: u64::MAX,
            next_arrival_len: 0,
            booted: false,
            fifo: Ring::new(OutMsg::EMPTY),
            rx_bytes_held: 0,
            locked: None,
            toggle: 0,
            batch_ready_at_ns: 0,
            irq_asserted: false,
            in_use: 0,
            air_free_at_ns: 0,
            in_flight: Ring::new(InFlight { done_at_ns: 0, command: false, vif: 0, request: 0 }),
            rx_seq: [0; 2],
            tx_seq_expected: [0; 2],
            wedged: None,
            protocol_breach: None,
            protocol_breaches: 0,
            stats: ChipStats::default(),
            tx_data_lens: [0; 16],
            tx_data_lens_count: 0,
            failure: None,
            failure_irq: false,
            script_left: 0,
            spurious_due: false,
            last_ctrl: 0,
            held_confirm: None,
            held_sent: false,
        }
    }

    /// Injects a firmware failure from `now_ns` on: the stress oracle's probe of one of the
    /// driver's error paths. Once is enough: the chip does not recover.
    pub fn inject(&mut self, now_ns: u64, failure: FwFailure) {
        self.advance(now_ns);
        self.failure = Some(failure);
        match failure {
            FwFailure::StuckCtrl | FwFailure::CtrlFlood => self.failure_irq = true,
            FwFailure::OversizeBatch | FwFailure::MalformedBatch => self.script_left = 2,
            FwFailure::SpuriousConfirm => self.spurious_due = true,
            FwFailure::Hang | FwFailure::LateConfirm => {}
        }
    }

    /// Whether the injected failure has happened on the wire (a spurious confirm waits for
    /// the host to have nothing out; every other failure happens when injected).
    pub fn failure_shown(&self) -> bool {
        self.failure.is_some() && !self.spurious_due && (self.failure != Some(FwFailure::LateConfirm) || self.held_sent)
    }

    /// The injected failure stops the firmware's own work (hang, stuck or flooding control
    /// byte): no arrival, completion or confirm from then on.
    fn stopped(&self) -> bool {
        matches!(self.failure, Some(FwFailure::Hang | FwFailure::StuckCtrl | FwFailure::CtrlFlood))
    }

    /// The next sequence number of `id`'s space, as the id carries it.
    fn stamp(&mut self, id: u16) -> u16 {
        let space = fw::seq_space(id);
        let stamped = fw::with_seq(id, self.rx_seq[space]);
        self.rx_seq[space] = (self.rx_seq[space] + 1) & 7;
        stamped
    }

    /// Announces the next scripted batch of an oversize or malformed-batch failure.
    fn announce_script(&mut self) -> u8 {
        let step = 2 - usize::from(self.script_left);
        self.script_left -= 1;
        let mut locked = Locked { ctrl: 0, msgs: [OutMsg::EMPTY; wsm::BATCH_MAX_MSGS], count: 0, data_bytes: 0 };
        let blocks = match self.failure {
            Some(FwFailure::OversizeBatch) if step == 0 => {
                locked.count = wsm::BATCH_MAX_MSGS;
                locked.msgs = [OutMsg::probe_frame(PROBE_LARGE_FRAME_BYTES); wsm::BATCH_MAX_MSGS];
                wsm::BATCH_MAX_BYTES / wsm::SDIO_BLOCK_BYTES
            }
            Some(FwFailure::OversizeBatch) => wsm::BATCH_MAX_BYTES / wsm::SDIO_BLOCK_BYTES + 1,
            _ => {
                let good = OutMsg::probe_frame(PROBE_SMALL_FRAME_BYTES);
                let bad = OutMsg { total_len: PROBE_BAD_LENS[step], malformed: true, ..good };
                locked.msgs[..3].copy_from_slice(&[good, good, bad]);
                locked.count = 3;
                (2 * wsm::padded(good.total_len as usize) + wsm::WSM_HDR_LEN).div_ceil(wsm::SDIO_BLOCK_BYTES)
            }
        };
        for i in 0..locked.count {
            if !locked.msgs[i].malformed {
                locked.msgs[i].id = self.stamp(locked.msgs[i].id);
            }
        }
        self.toggle ^= wsm::CTRL_TOGGLE;
        locked.ctrl = blocks as u8 | self.toggle;
        self.last_ctrl = locked.ctrl;
        self.locked = Some(locked);
        self.last_ctrl
    }

    /// A flooding control byte's next batch: one small receive indication.
    fn announce_flood(&mut self) -> u8 {
        let mut locked = Locked { ctrl: 0, msgs: [OutMsg::EMPTY; wsm::BATCH_MAX_MSGS], count: 1, data_bytes: 0 };
        let mut m = OutMsg::probe_frame(PROBE_SMALL_FRAME_BYTES);
        m.id = self.stamp(m.id);
        locked.msgs[0] = m;
        self.toggle ^= wsm::CTRL_TOGGLE;
        locked.ctrl = 1 | self.toggle;
        self.last_ctrl = locked.ctrl;
        self.locked = Some(locked);
        self.last_ctrl
    }

    /// The air the chip runs on.
    pub fn air(&self) -> &A {
        &self.air
    }

    /// Sets the offered rate over the air from `now_ns` on; 0 stops the traffic.
    pub fn set_offered(&mut self, now_ns: u64, bytes_per_s: u64) {
        self.advance(now_ns);
        let was_idle = self.offered_bytes_per_s == 0;
        self.offered_bytes_per_s = bytes_per_s;
        if bytes_per_s == 0 {
            self.next_arrival_at_ns = u64::MAX;
            return;
        }
        self.air.start(now_ns, bytes_per_s, was_idle);
        if was_idle {
            self.schedule_arrival(now_ns);
        }
    }

    fn schedule_arrival(&mut self, from_ns: u64) {
        let (at_ns, len) = self.air.next_frame(from_ns);
        self.next_arrival_at_ns = at_ns;
        self.next_arrival_len = len;
    }

    /// Processes everything due up to `now_ns`: boot, TX completions and arrivals, in time
    /// order. Bound: each pass consumes one in-flight frame or one arrival, and arrivals
    /// are capped by `max_arrivals_per_advance`.
    pub fn advance(&mut self, now_ns: u64) {
        if !self.booted && now_ns >= self.start_ns + self.cfg.boot_ns {
            self.booted = true;
            let n = self.cfg.num_inp_ch_bufs.to_le_bytes();
            self.push_out(wsm::WSM_STARTUP_IND_ID, &[n[0], n[1]], false, 6);
        }
        if self.stopped() {
            return;
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
            } else if arrivals == self.cfg.max_arrivals_per_advance {
                // Far behind (the host stalled): skip the backlog, as the air would.
                self.schedule_arrival(now_ns);
            } else {
                arrivals += 1;
                self.arrive(arrival_at);
            }
        }
        if self.spurious_due && self.booted && self.wedged.is_none() && self.frames_unconfirmed_to_host() == 0 {
            self.spurious_due = false;
            self.push_out(wsm::WSM_TRANSMIT_CNF_ID, &[0, 0], false, 8);
        }
    }

    fn arrive(&mut self, at_ns: u64) {
        if !self.air.sender_ready(at_ns) {
            self.stats.sender_stalled += 1;
            self.schedule_arrival(at_ns);
            return;
        }
        let len = self.next_arrival_len;
        self.stats.frames_arrived += 1;
        self.stats.bytes_arrived += len as u64;
        let msg_len = (wsm::WSM_HDR_LEN + wsm::RX_IND_HDR_LEN + len as usize) as u32;
        if self.wedged.is_some() || !self.booted || self.rx_bytes_held + msg_len > self.cfg.rx_buffer_bytes {
            self.stats.frames_dropped += 1;
        } else if self.push_out(wsm::WSM_RECEIVE_IND_ID, &[0, 0, 0, 0], true, msg_len as u16) {
            self.rx_bytes_held += msg_len;
        } else {
            self.stats.frames_dropped += 1;
        }
        self.schedule_arrival(at_ns);
    }

    /// Queues a message for the host; false when the queue is full (a lost confirm wedges
    /// the firmware: the host would wait for it for ever).
    fn push_out(&mut self, id: u16, body: &[u8], data: bool, total_len: u16) -> bool {
        let mut b = [0u8; 20];
        b[..body.len()].copy_from_slice(body);
        let msg = OutMsg { id, total_len, body: b, body_len: body.len() as u8, data, malformed: false };
        if self.fifo.push(msg).is_err() {
            if !data {
                self.wedge(self.air_free_at_ns, Wedge::ConfirmLost);
            }
            return false;
        }
        true
    }

    fn tx_done(&mut self, f: InFlight) {
        assert!(self.in_use > 0, "chip: a TX completion with no input buffer in use");
        self.in_use -= 1;
        if self.wedged.is_some() {
            return;
        }
        self.stats.confirms_sent += 1;
        if f.command {
            let space = fw::seq_space(f.request);
            if self.failure == Some(FwFailure::LateConfirm)
                && !self.held_sent
                && self.held_confirm.is_none()
                && space == 0
            {
                self.held_confirm = Some((f.request, f.vif));
                return;
            }
            self.push_out(fw::confirm_of(f.request), &[f.vif, 0], false, 8);
            self.stats.cmd_confirms_pushed[space] += 1;
            return;
        }
        self.air.data_sent(f.done_at_ns);
        // Fold into a confirm still waiting at the tail of the queue: a multi-confirm.
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
        self.wedged.is_none()
            && !self.stopped()
            && self.locked.is_none()
            && (!self.fifo.is_empty() || self.script_left > 0)
            && now_ns >= self.batch_ready_at_ns
    }

    /// Nothing for the host: no message queued or announced, no interrupt raised.
    pub fn idle_towards_host(&self) -> bool {
        self.fifo.is_empty() && self.locked.is_none() && !self.irq_asserted
    }

    /// Frames the host sent whose confirm it has not read yet: still in an input buffer,
    /// or confirmed in a message queued or announced towards the host.
    pub fn frames_unconfirmed_to_host(&self) -> u32 {
        let covered = |m: &OutMsg| match m.id {
            wsm::WSM_TRANSMIT_CNF_ID => 1,
            wsm::WSM_MULTI_TRANSMIT_CNF_ID => u32::from(m.body[0]),
            id if id & 0x0F00 == 0x0400 || id & 0x0F00 == 0x0C00 => 1,
            _ => 0,
        };
        let queued: u32 = self.fifo.iter().map(covered).sum();
        let announced: u32 = self.locked.as_ref().map_or(0, |l| l.msgs[..l.count].iter().map(covered).sum());
        u32::from(self.in_use) + queued + announced
    }

    /// Input buffers free for a data frame (one stays for commands), 0 when wedged.
    pub fn data_buffers_free(&self) -> u16 {
        if self.wedged.is_some() {
            return 0;
        }
        self.cfg.num_inp_ch_bufs.saturating_sub(1).saturating_sub(self.in_use)
    }

    /// When the chip next needs the scheduler: the moment it would raise its interrupt.
    pub fn next_event_ns(&self) -> u64 {
        if self.failure_irq && !self.irq_asserted {
            return 0;
        }
        if self.wedged.is_some() || self.irq_asserted || self.locked.is_some() || self.stopped() {
            return u64::MAX;
        }
        if !self.booted {
            return self.start_ns + self.cfg.boot_ns;
        }
        if !self.fifo.is_empty() || self.script_left > 0 {
            return self.batch_ready_at_ns;
        }
        let done_at = self.in_flight.front().map_or(u64::MAX, |f| f.done_at_ns);
        done_at.min(self.next_arrival_at_ns)
    }

    /// Raises the interrupt if a batch is ready and none is raised; true when it did.
    pub fn poll_irq(&mut self, now_ns: u64) -> bool {
        self.advance(now_ns);
        if self.failure_irq && !self.irq_asserted {
            self.failure_irq = false;
            self.irq_asserted = true;
            return true;
        }
        if !self.irq_asserted && self.has_batch_ready(now_ns) {
            self.irq_asserted = true;
            return true;
        }
        false
    }

    /// Whether the interrupt line is still asserted: raised by `poll_irq` and not yet
    /// acknowledged by a control-byte read. The card holds an SDIO interrupt until the
    /// function driver acknowledges it, so the MMC core runs the handler again.
    pub fn irq_line(&self) -> bool {
        self.irq_asserted
    }

    /// CMD52 read of the control byte: bits 0-6 the next batch's length in 512-byte
    /// blocks, bit 7 a toggle that flips with every batch. Reading acknowledges the
    /// interrupt.
    pub fn read_ctrl(&mut self, now_ns: u64) -> u8 {
        self.advance(now_ns);
        self.irq_asserted = false;
        match self.failure {
            Some(FwFailure::Hang) => return 0,
            Some(FwFailure::StuckCtrl) => return self.last_ctrl,
            _ => {}
        }
        if let Some(l) = &self.locked {
            return l.ctrl;
        }
        if self.failure == Some(FwFailure::CtrlFlood) {
            return self.announce_flood();
        }
        if !self.has_batch_ready(now_ns) {
            return 0;
        }
        if self.script_left > 0 {
            return self.announce_script();
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
            m.id = self.stamp(m.id);
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
        self.last_ctrl = ctrl;
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
            if m.malformed {
                // Only the header, claiming the bad length.
                if offset + wsm::WSM_HDR_LEN <= buf.len() {
                    buf[offset..offset + 2].copy_from_slice(&m.total_len.to_le_bytes());
                    buf[offset + 2..offset + 4].copy_from_slice(&m.id.to_le_bytes());
                }
                break;
            }
            if offset + wsm::padded(m.total_len as usize) > buf.len() {
                break;
            }
            if m.data {
                self.stats.data_msgs_sent += 1;
                self.stats.data_bytes_sent +=
                    (m.total_len as usize).saturating_sub(wsm::WSM_HDR_LEN + wsm::RX_IND_HDR_LEN) as u64;
            }
            offset = wsm::put_msg(buf, offset, m.id, m.total_len as usize, &m.body[..m.body_len as usize]);
        }
        self.rx_bytes_held -= l.data_bytes;
        self.batch_ready_at_ns = now_ns + self.cfg.batch_prepare_ns;
        self.stats.batches_sent += 1;
        l.count
    }

    /// The frame lengths of the data frames the last [`Chip::receive_tx`] accepted, in
    /// the order they came.
    pub fn tx_data_lens(&self) -> &[u16] {
        &self.tx_data_lens[..self.tx_data_lens_count]
    }

    /// CMD53 write of TX frames.
    pub fn receive_tx(&mut self, now_ns: u64, buf: &[u8]) {
        self.advance(now_ns);
        if self.wedged.is_some() {
            return;
        }
        self.tx_data_lens_count = 0;
        if self.failure == Some(FwFailure::Hang) {
            // A hung firmware still takes the frames into its buffers; none is confirmed.
            let mut frames: [fw::TxMsg; 16] = core::array::from_fn(|_| fw::TxMsg { id: 0, len: 0, body: [0; 4] });
            let count = fw::parse(buf, &mut frames).unwrap_or(0);
            for m in &frames[..count] {
                self.stats.tx_frames += 1;
                if m.body[1] != 1 {
                    self.stats.tx_data_frames += 1;
                }
            }
            return;
        }
        let mut frames: [fw::TxMsg; 16] = core::array::from_fn(|_| fw::TxMsg { id: 0, len: 0, body: [0; 4] });
        let Some(count) = fw::parse(buf, &mut frames) else {
            self.wedge(now_ns, Wedge::MalformedTx);
            return;
        };
        for m in &frames[..count] {
            if !self.accept_frame(now_ns, m) {
                return;
            }
        }
    }

    /// One TX frame into an input buffer and onto the air; false when it wedged the chip.
    fn accept_frame(&mut self, now_ns: u64, m: &fw::TxMsg) -> bool {
        if fw::request_is_command(m.id).is_none() {
            self.wedge(now_ns, Wedge::UnknownRequest { id: fw::msg_id(m.id) });
            return false;
        }
        let space = fw::seq_space(m.id);
        let seq = fw::seq_of(m.id);
        let due = self.tx_seq_expected[space];
        if seq != due {
            self.wedge(now_ns, Wedge::TxSequence { got: seq, due });
            return false;
        }
        self.tx_seq_expected[space] = (seq + 1) & 7;
        let num = self.cfg.num_inp_ch_bufs;
        if self.in_use >= num {
            self.wedge(now_ns, Wedge::InputBufferOverflow { in_use: self.in_use });
            return false;
        }
        let command = m.body[1] == 1;
        // The host keeps the last input buffer for commands (a data frame is refused when
        // it would take it): otherwise a command can starve behind data.
        if !command && self.in_use + 1 >= num {
            self.protocol_breaches += 1;
            if self.protocol_breach.is_none() {
                self.protocol_breach = Some((now_ns, Breach { in_use: self.in_use + 1, num }));
            }
        }
        self.in_use += 1;
        if command && self.in_use == num {
            self.stats.command_took_last_buffer += 1;
        }
        if !command && self.in_use + 1 == num {
            self.stats.data_at_throttle += 1;
        }
        self.stats.tx_frames += 1;
        if !command {
            self.stats.tx_data_frames += 1;
            // The frame's own bytes, as the air will carry them (the host's WSM and
            // transmit-request headers stripped): the simulator compares them with what
            // the stack handed down.
            let frame_len = (m.len as usize).saturating_sub(wsm::WSM_HDR_LEN + wsm::TX_REQ_HDR_LEN);
            if self.tx_data_lens_count < self.tx_data_lens.len() {
                self.tx_data_lens[self.tx_data_lens_count] = frame_len as u16;
                self.tx_data_lens_count += 1;
            }
        }
        let airtime = self.cfg.airtime_base_ns + m.len as u64 * self.cfg.airtime_ns_per_byte;
        let mut done_at_ns = self.air_free_at_ns.max(now_ns) + airtime;
        if command && fw::seq_space(m.id) == 1 {
            if let Some((request, vif)) = self.held_confirm.take() {
                // The late confirm goes first, in a batch of its own.
                self.held_sent = true;
                self.push_out(fw::confirm_of(request), &[vif, 0], false, 8);
                self.stats.cmd_confirms_pushed[0] += 1;
                done_at_ns += PROBE_LATE_GAP_NS;
            }
        }
        let extra_ns = self.air.tx_extra_airtime_ns();
        if extra_ns > 0 {
            done_at_ns += extra_ns;
            self.stats.tx_delayed += 1;
        }
        self.air_free_at_ns = done_at_ns;
        // in_use bounds the frames in flight, so this fails only for a config with more
        // input buffers than the ring tracks: the firmware wedges as on an overflow.
        if self.in_flight.push(InFlight { done_at_ns, command, vif: m.body[0], request: fw::msg_id(m.id) }).is_err() {
            self.in_use -= 1;
            self.wedge(now_ns, Wedge::InputBufferOverflow { in_use: self.in_use });
            return false;
        }
        true
    }

    fn wedge(&mut self, now_ns: u64, why: Wedge) {
        if self.wedged.is_none() {
            self.wedged = Some((now_ns, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const BOOT: u64 = ChipConfig::DEFAULT.boot_ns;

    fn booted_chip() -> Chip<FixedAir, 64> {
        let mut chip = Chip::new(ChipConfig::DEFAULT, FixedAir::new(1514), 0);
        assert!(!chip.poll_irq(BOOT - 1), "no interrupt before boot");
        assert!(chip.poll_irq(BOOT), "startup indication raises the interrupt");
        chip
    }

    fn read_batch(chip: &mut Chip<FixedAir, 64>, t: u64) -> Vec<wsm::RxMsg> {
        let ctrl = chip.read_ctrl(t);
        assert!(ctrl & wsm::CTRL_LEN_MASK > 0, "a batch is announced");
        let mut buf = std::vec![0u8; wsm::BATCH_MAX_BYTES];
        chip.read_data(t, &mut buf);
        let mut msgs = Vec::new();
        wsm::for_each_msg(&buf, |m| msgs.push(m)).unwrap();
        msgs
    }

    fn send(chip: &mut Chip<FixedAir, 64>, t: u64, seq: u8, kind: u8) {
        let mut tx = [0u8; 16];
        let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(wsm::WSM_TRANSMIT_REQ_ID, seq & 7), 12, &[0, kind, 0, 0]);
        chip.receive_tx(t, &tx[..off]);
    }

    #[test]
    fn startup_indication_carries_num_inp_ch_bufs_and_toggle_flips() {
        let mut chip = booted_chip();
        let ctrl = chip.read_ctrl(BOOT);
        assert_eq!(ctrl & wsm::CTRL_LEN_MASK, 1);
        assert_eq!(ctrl & wsm::CTRL_TOGGLE, wsm::CTRL_TOGGLE);
        let mut buf = [0u8; 512];
        assert_eq!(chip.read_data(BOOT, &mut buf), 1);
        let mut msgs = Vec::new();
        wsm::for_each_msg(&buf, |m| msgs.push(m)).unwrap();
        assert_eq!(wsm::msg_id(msgs[0].id), wsm::WSM_STARTUP_IND_ID);
        assert_eq!(msgs[0].body[0] as u16, ChipConfig::DEFAULT.num_inp_ch_bufs);
        assert_eq!(chip.read_ctrl(BOOT), 0, "nothing pending right after a batch");
        let later = BOOT + 10_000_000;
        send(&mut chip, BOOT, 0, 1);
        let ctrl = chip.read_ctrl(later);
        assert_eq!(ctrl & wsm::CTRL_TOGGLE, 0, "the toggle flips with the next batch");
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
        let seqs: Vec<u8> = msgs.iter().map(|m| wsm::seq_of(m.id)).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 0, 1, 2], "sequence continues after the startup indication");
        // Left unread, the buffer fills at 13 frames and the rest drop over the air.
        let t2 = t + ChipConfig::DEFAULT.batch_prepare_ns + 40_000_000;
        let msgs = read_batch(&mut chip, t2);
        assert_eq!(msgs.len(), 13);
        assert_eq!(chip.stats.frames_dropped, chip.stats.frames_arrived - 23);
    }

    #[test]
    fn a_bounded_advance_skips_the_backlog() {
        let cfg = ChipConfig { max_arrivals_per_advance: 5, ..ChipConfig::DEFAULT };
        let mut chip: Chip<FixedAir, 64> = Chip::new(cfg, FixedAir::new(1514), 0);
        chip.set_offered(0, 1_514_000);
        chip.advance(1_000_000_000);
        assert_eq!(chip.stats.frames_arrived, 5);
        // The backlog is gone: the next frame comes one interval after the skip.
        chip.advance(1_000_999_999);
        assert_eq!(chip.stats.frames_arrived, 5);
        chip.advance(1_001_000_000);
        assert_eq!(chip.stats.frames_arrived, 6);
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
        assert_eq!(chip.stats.confirms_sent, 3);
    }

    #[test]
    fn a_driver_to_mcu_command_runs_in_sequence_space_1_and_unknown_requests_wedge() {
        let mut chip = booted_chip();
        read_batch(&mut chip, BOOT);
        // Space 1 has its own sequence, starting at 0 both ways, beside space 0's.
        let mut tx = [0u8; 64];
        let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(0x0C01, 0), 12, &[0, 1, 0, 0]);
        let off = wsm::put_msg(&mut tx, off, wsm::with_seq(wsm::WSM_READ_MIB_REQ_ID, 0), 12, &[0, 1, 0, 0]);
        chip.receive_tx(BOOT, &tx[..off]);
        assert!(chip.wedged.is_none(), "{:?}", chip.wedged);
        let msgs = read_batch(&mut chip, BOOT + 10_000_000);
        let got: Vec<(u16, u8)> = msgs.iter().map(|m| (wsm::msg_id(m.id), wsm::seq_of(m.id))).collect();
        assert_eq!(got, [(0x0C01, 0), (wsm::WSM_READ_MIB_CNF_ID, 1)], "each space counts its own messages");
        assert_eq!(chip.tx_data_lens(), &[] as &[u16], "commands are not data frames");
        // A request the firmware does not serve.
        let off = wsm::put_msg(&mut tx, 0, wsm::with_seq(0x0123, 1), 12, &[0, 1, 0, 0]);
        chip.receive_tx(BOOT + 20_000_000, &tx[..off]);
        assert_eq!(chip.wedged.map(|w| w.1), Some(Wedge::UnknownRequest { id: 0x0123 }));
    }

    #[test]
    fn a_frame_beyond_the_input_buffers_wedges_the_firmware() {
        let mut chip = booted_chip();
        let n = ChipConfig::DEFAULT.num_inp_ch_bufs as u8;
        for i in 0..=n {
            assert!(chip.wedged.is_none(), "frame {i} of {n} must fit");
            send(&mut chip, BOOT, i, 0);
        }
        let (_, why) = chip.wedged.expect("wedged");
        assert_eq!(why, Wedge::InputBufferOverflow { in_use: 16 });
        assert!(why.to_string().contains("input buffer overflow"), "{why}");
        let (_, breach) = chip.protocol_breach.expect("the last data frame took the command buffer");
        assert!(breach.to_string().contains("reserved for commands"), "{breach}");
    }

    #[test]
    fn a_frame_out_of_sequence_wedges_the_firmware() {
        let mut chip = booted_chip();
        send(&mut chip, BOOT, 0, 0);
        send(&mut chip, BOOT, 2, 0);
        assert_eq!(chip.wedged.map(|w| w.1), Some(Wedge::TxSequence { got: 2, due: 1 }));
    }

    #[test]
    fn data_may_fill_all_but_the_last_buffer_and_a_command_the_last() {
        let mut chip = booted_chip();
        let n = ChipConfig::DEFAULT.num_inp_ch_bufs as u8;
        for i in 0..n {
            send(&mut chip, BOOT, i, if i + 1 == n { 1 } else { 0 });
        }
        assert!(chip.wedged.is_none() && chip.protocol_breach.is_none(), "{:?}", chip.protocol_breach);
        assert_eq!(chip.stats.command_took_last_buffer, 1);
    }
}
