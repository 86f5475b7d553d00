//! The JSON API under `/api/v1`.

pub mod auth;
pub mod instances;
pub mod workflows;
