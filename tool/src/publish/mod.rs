//! What leaves the workbench for reviewers: PR descriptions and the patch series.

pub mod patches;
pub mod pr;
