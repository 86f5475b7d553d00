//! The JSON API under `/api/v1`.

pub mod admin;
pub mod applications;
pub mod auth;
pub mod chains;
pub mod changes;
pub mod documents;
pub mod evidence;
pub mod instances;
pub mod ismap;
pub mod obligations;
pub mod openapi;
pub mod structure_chart;
pub mod workflows;
