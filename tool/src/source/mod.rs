//! The driver's source as a variant sees it: materialised for its features, and audited
//! against its contracts.

pub mod audit;
pub mod materialise;
