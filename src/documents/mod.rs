//! Documents the municipality files, generated from the chains (BRIEF section 5). Rendering is
//! pure: the services load the data, these modules turn it into bytes, with a stable order so the
//! same data gives the same output.

pub mod committee;
pub mod history;
pub mod ismap;
pub mod pia;
pub mod significant;
pub mod structure_chart;
pub mod threshold;
