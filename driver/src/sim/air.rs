//! The simulator's air: a seeded TCP sender (full-size frames with a small share of short
//! ones, jittered around the offered rate, stalled when no ACK went over the air for a
//! timeout) and the seeded faults of the air (`slow-air`).

use super::cost::CostModel;
use super::rng::Rng;
use crate::chip::Air;

pub struct TcpAir {
    frame_full_bytes: u16,
    frame_small_bytes: u16,
    frame_small_share: f64,
    tcp_ack_timeout_ns: u64,
    slow_air_chance: f64,
    slow_air_ns: (u64, u64),
    traffic: Rng,
    /// Draws of the faults only (so a run without faults draws exactly as before).
    faults: Rng,
    offered_bytes_per_s: f64,
    /// When the last TCP ACK went over the air (the sender stalls without ACKs).
    last_ack_air_ns: u64,
}

impl TcpAir {
    pub fn new(cost: &CostModel, seed: u64) -> Self {
        TcpAir {
            frame_full_bytes: cost.frame_full_bytes,
            frame_small_bytes: cost.frame_small_bytes,
            frame_small_share: cost.frame_small_share,
            tcp_ack_timeout_ns: cost.tcp_ack_timeout_ns,
            slow_air_chance: cost.fault_slow_air_chance,
            slow_air_ns: cost.fault_slow_air_ns,
            traffic: Rng::new(seed, 1),
            faults: Rng::new(seed, 3),
            offered_bytes_per_s: 0.0,
            last_ack_air_ns: 0,
        }
    }
}

impl Air for TcpAir {
    fn start(&mut self, now_ns: u64, bytes_per_s: u64, from_idle: bool) {
        self.offered_bytes_per_s = bytes_per_s as f64;
        if from_idle {
            self.last_ack_air_ns = now_ns;
        }
    }

    fn next_frame(&mut self, from_ns: u64) -> (u64, u16) {
        let small = self.traffic.chance(self.frame_small_share);
        let len = if small { self.frame_small_bytes } else { self.frame_full_bytes };
        let mean_ns = len as f64 * 1e9 / self.offered_bytes_per_s;
        let jitter = 0.5 + self.traffic.unit();
        (from_ns + (mean_ns * jitter).max(1.0) as u64, len)
    }

    fn sender_ready(&mut self, at_ns: u64) -> bool {
        // No ACK for too long: the TCP sender has stopped (its window is full).
        at_ns.saturating_sub(self.last_ack_air_ns) <= self.tcp_ack_timeout_ns
    }

    fn data_sent(&mut self, at_ns: u64) {
        self.last_ack_air_ns = at_ns;
    }

    fn tx_extra_airtime_ns(&mut self) -> u64 {
        if self.slow_air_chance > 0.0 && self.faults.chance(self.slow_air_chance) {
            let (lo, hi) = self.slow_air_ns;
            return self.faults.range(lo, hi);
        }
        0
    }
}
