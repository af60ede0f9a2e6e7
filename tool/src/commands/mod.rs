//! One file per command: its clap arguments, one call into the library, and what it prints.

pub mod audit;
pub mod bench_build;
pub mod bench_sim;
pub mod bisect;
pub mod build;
pub mod identify;
pub mod lab;
pub mod measure;
pub mod notes;
pub mod patches;
pub mod pr;
pub mod rollback;
pub mod sign_module;
pub mod stage;
pub mod stress;
pub mod target;
pub mod variants;
pub mod verify;
