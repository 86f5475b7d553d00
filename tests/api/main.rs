//! The API tests: one binary, every test on SQLite and on PostgreSQL.

// Test code: a failed expectation should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod audit;
mod auth;
mod browser;
mod chains;
mod changes;
mod documents;
mod errors;
mod health;
mod identity;
mod instances;
mod ismap;
mod mail;
mod migrations;
pub mod obligations;
mod recent;
mod shutdown;
mod sqlite;
mod structure_chart;
mod tokens;
mod ui;
mod ui_actions;
mod ui_admin;
mod ui_documents;
pub mod ui_obligations;
pub mod ui_screens;
mod workflows;
