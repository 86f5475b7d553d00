//! itaku: the approval engine for consignments (委託) of municipal personal data and the chains
//! of subcontracts below them.

pub mod commands;
pub mod domain;
pub mod workflow;
