//! The simulator seen from the tool: built per variant, run over a ramp.

pub mod build;
pub mod callgrind;
pub mod compare;
pub mod measure;
pub mod ramp;
pub mod report;
pub mod runs;
pub mod stress;
