//! What a simulator run is given: the seed, the ramp's stages and the cost model.

use super::cost::CostModel;

/// One stage of the ramp: an offered rate for a duration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// Offered over the air, in MB/s (10^6 bytes per second).
    pub offered_mb_per_s: f64,
    /// Milliseconds (the seed's baseline ran 404.8 s).
    pub duration_ms: u64,
}

impl Stage {
    pub fn duration_ns(&self) -> u64 {
        self.duration_ms * 1_000_000
    }
}

/// The seed's Phase 7 ramp: 5 min at 1 MB/s, 10 at 2, 30 at 4, 30 at 8.
pub fn default_ramp() -> Vec<Stage> {
    vec![
        Stage { offered_mb_per_s: 1.0, duration_ms: 300_000 },
        Stage { offered_mb_per_s: 2.0, duration_ms: 600_000 },
        Stage { offered_mb_per_s: 4.0, duration_ms: 1_800_000 },
        Stage { offered_mb_per_s: 8.0, duration_ms: 1_800_000 },
    ]
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub stages: Vec<Stage>,
    pub cost: CostModel,
    /// An error path's probe: this firmware failure is injected once
    /// ([`super::probe::PROBE_AT_NS`]) and the driver's answer judged.
    pub probe: Option<crate::chip::FwFailure>,
}

/// Virtual time before the first stage: the chip boots and the firmware starts.
pub const WARMUP_NS: u64 = 1_000_000_000;
