//! itaku: an approval engine for municipal consignments and subcontract chains of personal data.

pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
