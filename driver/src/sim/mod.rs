//! The deterministic simulator (std only): the driver's chip (`crate::chip`) on a seeded
//! TCP air, a seeded scheduler over the host
//! contexts on virtual time that can switch at every shared-state access, a calibrated
//! cost model, and kernel-like failures. One `u64` seed gives one byte-identical report.

pub mod air;
pub mod config;
pub mod core;
pub mod cost;
pub mod json;
pub mod latency;
pub mod platform;
pub mod probe;
pub mod report;
pub mod rng;
pub mod run;

pub use config::{default_ramp, Config, Stage};
pub use core::FailureKind;
pub use cost::{CostModel, FAULTS};
pub use probe::{probe_stages, ProbeReport};
pub use report::{ContractLine, Report};
pub use run::run;
